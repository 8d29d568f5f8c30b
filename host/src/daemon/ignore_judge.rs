//! A jail's `ignorecommand` (or `ignoreplugin`): a component asked, after
//! `ignoreip` and `ignoreself`, whether a failing address is never to be
//! counted, with fail2ban's `ignorecache` in front of it.
//!
//! fail2ban's stock `apache-fakegooglebot` command (a Python script that
//! checks Googlebot by reverse and forward DNS) is carried out by the
//! built-in `crawler-verify` component, which needs DNS lookups only;
//! every other command runs in `command-ignore`, through the shell the
//! admin grants it.

use std::collections::HashMap;

use crate::config::jail::Jail;
use crate::config::values::parse_reference;
use crate::plugin::{IgnoreInstance, Registry, Runtime};
use crate::wit::types::Failure;

/// The end of fail2ban's Googlebot-checking ignorecommand.
const FAKEGOOGLEBOT_SCRIPT: &str = "filter.d/ignorecommands/apache-fakegooglebot";

/// Which component judges, with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnorePlan {
    /// The plugin's name.
    pub plugin: String,
    /// Its options.
    pub options: Vec<(String, String)>,
}

/// The jail's plan, if it has `ignorecommand` or `ignoreplugin`.
pub fn plan(jail: &Jail) -> Result<Option<IgnorePlan>, String> {
    let value = |key: &str| jail.options.get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    match (value("ignorecommand"), value("ignoreplugin")) {
        (Some(_), Some(_)) => {
            Err("has both ignorecommand and ignoreplugin: give one (ignoreplugin runs a component, ignorecommand a \
                 shell command)"
                .into())
        }
        (Some(command), None) => {
            let program = command.split_whitespace().next().unwrap_or_default();
            if program.ends_with(FAKEGOOGLEBOT_SCRIPT) {
                // The script checks Googlebot by DNS: the same check, in
                // a component that is granted DNS lookups and nothing else.
                return Ok(Some(IgnorePlan { plugin: "crawler-verify".into(), options: Vec::new() }));
            }
            Ok(Some(IgnorePlan { plugin: "command-ignore".into(), options: vec![("ignorecommand".into(), command)] }))
        }
        (None, Some(reference)) => {
            let r = parse_reference(&reference).map_err(|e| format!("ignoreplugin = {reference:?}: {e}"))?;
            Ok(Some(IgnorePlan { plugin: r.name, options: r.params }))
        }
        (None, None) => Ok(None),
    }
}

/// fail2ban's `ignorecache`: answers kept by a key made of the failure's
/// tags, `max-count` of them, each for `max-time` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoreCache {
    key: String,
    max_count: usize,
    max_time: f64,
    answers: HashMap<String, (f64, bool)>,
}

impl IgnoreCache {
    /// From `key="<ip>", max-count=100, max-time=5m`.
    pub fn parse(value: &str) -> Result<IgnoreCache, String> {
        let r = parse_reference(&format!("cache[{value}]"))?;
        let mut cache = IgnoreCache { key: String::new(), max_count: 100, max_time: 300.0, answers: HashMap::new() };
        for (k, v) in r.params {
            match k.as_str() {
                "key" => cache.key = v,
                "max-count" => {
                    cache.max_count = v.trim().parse().map_err(|_| format!("max-count = {v:?}: give a number"))?
                }
                "max-time" => cache.max_time = crate::config::values::parse_time(&v)? as f64,
                other => return Err(format!("unknown option {other:?}; use key, max-count and max-time")),
            }
        }
        if cache.key.trim().is_empty() {
            return Err("give the key answers are kept by, such as key=\"<ip>\"".into());
        }
        Ok(cache)
    }

    /// The key for `ip` in `failure`: the template with `<ip>` and the
    /// captures (`<F-USER>`) filled in.
    fn key_for(&self, ip: &str, failure: &Failure) -> String {
        let mut key = self.key.replace("<ip>", ip).replace("<fid>", ip);
        for (name, value) in &failure.fields {
            let tag = format!("<F-{}>", name.strip_prefix("F-").unwrap_or(name).to_ascii_uppercase());
            key = key.replace(&tag, value);
        }
        key
    }

    fn get(&self, key: &str, now: f64) -> Option<bool> {
        self.answers.get(key).filter(|(at, _)| now - at < self.max_time).map(|(_, v)| *v)
    }

    fn put(&mut self, key: String, answer: bool, now: f64) {
        if self.answers.len() >= self.max_count {
            let max_time = self.max_time;
            self.answers.retain(|_, (at, _)| now - *at < max_time);
        }
        if self.answers.len() >= self.max_count
            && let Some(oldest) = self.answers.iter().min_by(|a, b| a.1.0.total_cmp(&b.1.0)).map(|(k, _)| k.clone())
        {
            self.answers.remove(&oldest);
        }
        if self.max_count > 0 {
            self.answers.insert(key, (now, answer));
        }
    }
}

/// A jail's running judge.
pub struct IgnoreJudge {
    jail: String,
    instance: IgnoreInstance,
    cache: Option<IgnoreCache>,
}

impl IgnoreJudge {
    /// Build `jail`'s judge, if it has one.
    pub fn assemble(jail: &Jail, runtime: &Runtime, registry: &Registry) -> Result<Option<IgnoreJudge>, String> {
        let Some(plan) = plan(jail)? else {
            if jail.options.get("ignorecache").is_some_and(|c| !c.trim().is_empty()) {
                tracing::warn!("[{}] ignorecache without ignorecommand: nothing to keep answers of", jail.name);
            }
            return Ok(None);
        };
        let cache = match jail.options.get("ignorecache").map(|c| c.trim()).filter(|c| !c.is_empty()) {
            Some(c) => Some(IgnoreCache::parse(c).map_err(|e| format!("ignorecache = {c}: {e}"))?),
            None => None,
        };
        let key = if plan.plugin == "command-ignore" { "ignorecommand" } else { "ignoreplugin" };
        let plugin = runtime.load_named(registry, &plan.plugin).map_err(|e| format!("{key}: {e}"))?;
        let instance = plugin.ignore(plan.options).map_err(|e| format!("{key}: {e}"))?;
        Ok(Some(IgnoreJudge { jail: jail.name.clone(), instance, cache }))
    }

    /// Whether to ignore `ip`, found failing in `failure` at `now`. A
    /// command that fails counts the failure, as in fail2ban.
    pub fn ignores(&mut self, ip: &str, failure: &Failure, now: f64) -> bool {
        let key = self.cache.as_ref().map(|c| c.key_for(ip, failure));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(answer) = cache.get(key, now)
        {
            return answer;
        }
        let answer = match self.instance.ignore(ip, failure) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!("[{}] {e}; the failure of {ip} counts", self.jail);
                false
            }
        };
        if let (Some(cache), Some(key)) = (&mut self.cache, key) {
            cache.put(key, answer, now);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(user: &str) -> Failure {
        Failure {
            line: 0,
            host: "192.0.2.1".into(),
            time: None,
            rule: 0,
            fields: vec![("user".into(), user.into())],
            matches: Vec::new(),
        }
    }

    #[test]
    fn the_cache_keeps_answers_by_key_for_max_time_and_max_count() {
        let mut c = IgnoreCache::parse(r#"key="<ip>:<F-USER>", max-count=2, max-time=5m"#).unwrap();
        let key = c.key_for("192.0.2.1", &failure("root"));
        assert_eq!(key, "192.0.2.1:root");
        c.put(key.clone(), true, 1000.0);
        assert_eq!(c.get(&key, 1299.0), Some(true));
        assert_eq!(c.get(&key, 1300.0), None, "kept for max-time only");
        c.put("b".into(), false, 1001.0);
        c.put("c".into(), false, 1002.0);
        assert_eq!((c.get(&key, 1002.0), c.get("c", 1002.0)), (None, Some(false)), "the oldest made room");
        assert!(IgnoreCache::parse("max-count=1").unwrap_err().contains("key"));
        assert!(IgnoreCache::parse(r#"key="<ip>", size=3"#).unwrap_err().contains("size"));
    }

    #[test]
    fn fail2bans_googlebot_script_runs_as_the_dns_component_and_other_commands_in_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jail.conf"),
            "[DEFAULT]\naction =\n[bot]\nenabled = true\nfilter =\nlogpath = /dev/null\n\
             ignorecommand = /etc/fail2ban/filter.d/ignorecommands/apache-fakegooglebot <ip>\n\
             [other]\nenabled = true\nfilter =\nlogpath = /dev/null\nignorecommand = /usr/local/bin/known <ip>\n\
             [both]\nenabled = true\nfilter =\nlogpath = /dev/null\nignorecommand = x\nignoreplugin = crawler-verify\n",
        )
        .unwrap();
        let (jails, _) = crate::config::jail::Jails::load(dir.path()).unwrap();
        let by_name = |n: &str| jails.enabled.iter().find(|j| j.name == n).unwrap();
        assert_eq!(plan(by_name("bot")).unwrap().unwrap().plugin, "crawler-verify");
        let other = plan(by_name("other")).unwrap().unwrap();
        assert_eq!(other.plugin, "command-ignore");
        assert_eq!(other.options, [("ignorecommand".to_string(), "/usr/local/bin/known <ip>".to_string())]);
        assert!(plan(by_name("both")).unwrap_err().contains("give one"));
    }
}
