//! fail2ban's runtime `set JAIL KEY VALUE...` and `get JAIL KEY` on a
//! jail's configuration. A `set` makes a changed copy of the configuration,
//! checked as the configuration files are; the running jail then rebuilds
//! only the part the key touches. As in fail2ban, a change lasts until the
//! next reload.

use serde_json::{Value, json};

use crate::config::jail::Jail;
use crate::daemon::status::BanView;

/// What a change touches in the running jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// Typed jail options: the tracker, the ban time, `usedns`, `logpath`.
    Options,
    /// The filter's definition: a new filter instance (and source, when
    /// the filter decides what is read).
    Filter,
}

/// Jail options changed by setting one value.
const ONE_VALUE_OPTIONS: &[&str] = &[
    "bantime",
    "findtime",
    "maxretry",
    "maxmatches",
    "maxtracked",
    "usedns",
    "ignoreself",
    "bantime.increment",
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
];

/// The keys `set` changes (besides banip, unbanip, attempt and idle, which
/// are commands rather than settings).
pub const SETTABLE: &str = "bantime, findtime, maxretry, maxmatches, maxtracked, maxlines, usedns, ignoreself, \
     addignoreip/delignoreip, addlogpath/dellogpath, addfailregex/delfailregex, addignoreregex/delignoreregex, \
     prefregex, datepattern, logtimezone, logencoding, bantime.increment/factor/formula/multipliers/maxtime/rndtime/overalljails";

/// The key whose `get` answers a `set` of `key` (fail2ban answers
/// `set JAIL addfailregex` with the list of failregexes).
pub fn answered_by(key: &str) -> &str {
    match key {
        "addignoreip" | "delignoreip" => "ignoreip",
        "addlogpath" | "dellogpath" => "logpath",
        "addfailregex" | "delfailregex" => "failregex",
        "addignoreregex" | "delignoreregex" => "ignoreregex",
        other => other,
    }
}

/// `jail` with `set KEY ARGS` applied, and what that touches.
pub fn edit(jail: &Jail, key: &str, args: &[String]) -> Result<(Jail, Touches), String> {
    let name = &jail.name;
    let mut next = jail.clone();
    let one = || match args {
        [value] => Ok(value.as_str()),
        _ => Err(format!("set {name} {key} takes one value")),
    };
    let touches = match key {
        k if ONE_VALUE_OPTIONS.contains(&k) => {
            let value = one()?;
            // Checked even while bantime.increment is off, as fail2ban
            // checks them when they are set.
            let numbers = match k {
                "bantime.factor" => value.trim().parse::<f64>().is_ok(),
                "bantime.multipliers" => value.split_whitespace().all(|m| m.parse::<f64>().is_ok()),
                _ => true,
            };
            if !numbers {
                return Err(format!(
                    "set {name} {k} {value}: give a number (multipliers: numbers separated by spaces)"
                ));
            }
            next.options.insert(k.to_string(), value.to_string());
            Touches::Options
        }
        "addignoreip" => {
            if args.is_empty() {
                return Err(format!("set {name} addignoreip takes one address, network or host name or more"));
            }
            let mut entries = ignoreip_entries(&next);
            for ip in args {
                if !entries.contains(ip) {
                    entries.push(ip.clone());
                }
            }
            next.options.insert("ignoreip".into(), entries.join(" "));
            Touches::Options
        }
        "delignoreip" => {
            let ip = one()?;
            let mut entries = ignoreip_entries(&next);
            let before = entries.len();
            entries.retain(|e| e != ip);
            if entries.len() == before {
                return Err(format!("{ip} is not in the ignoreip of jail {name}"));
            }
            next.options.insert("ignoreip".into(), entries.join(" "));
            Touches::Options
        }
        "addlogpath" => {
            let (path, start) = match args {
                [path] => (path, "head"),
                [path, start] if start.eq_ignore_ascii_case("head") || start.eq_ignore_ascii_case("tail") => {
                    (path, start.as_str())
                }
                [_, _] => return Err("File option must be 'head' or 'tail'".into()),
                _ => return Err("Only one file can be added at a time".into()),
            };
            if next.logpath.iter().any(|e| e.split_whitespace().next() == Some(path.as_str())) {
                return Err(format!("{path} is already monitored by jail {name}"));
            }
            next.logpath.push(format!("{path} {}", start.to_ascii_lowercase()));
            next.options.insert("logpath".into(), next.logpath.join("\n"));
            Touches::Options
        }
        "dellogpath" => {
            let path = one()?;
            let before = next.logpath.len();
            next.logpath.retain(|e| e.split_whitespace().next() != Some(path));
            if next.logpath.len() == before {
                return Err(format!("{path} is not monitored by jail {name}"));
            }
            next.options.insert("logpath".into(), next.logpath.join("\n"));
            Touches::Options
        }
        "addfailregex" | "addignoreregex" => {
            let regex = one()?;
            let option = answered_by(key);
            let def = filter_definition(&mut next, key)?;
            let mut list = def.list(option);
            list.push(regex.to_string());
            def.options.insert(option.to_string(), list.join("\n"));
            Touches::Filter
        }
        "delfailregex" | "delignoreregex" => {
            let option = answered_by(key);
            let text = one()?;
            let def = filter_definition(&mut next, key)?;
            let mut list = def.list(option);
            let index = text.trim().parse::<usize>().ok().filter(|i| *i < list.len()).ok_or_else(|| {
                format!(
                    "set {name} {key} {text}: give the index of a {option} (0 to {}; `get {name} {option}` lists them)",
                    list.len().saturating_sub(1)
                )
            })?;
            list.remove(index);
            def.options.insert(option.to_string(), list.join("\n"));
            Touches::Filter
        }
        "prefregex" | "datepattern" | "maxlines" => {
            let value = one()?.to_string();
            let def = filter_definition(&mut next, key)?;
            def.options.insert(key.to_string(), value);
            def.maxlines().map_err(|e| e.to_string())?;
            Touches::Filter
        }
        "logencoding" => {
            let value = one()?;
            if !crate::config::values::is_utf8_encoding(value) {
                return Err(format!(
                    "set {name} logencoding {value}: wasmban reads logs as UTF-8 (auto); convert the log, \
                     or have the service write UTF-8"
                ));
            }
            next.options.insert("logencoding".into(), value.to_string());
            return Ok((next, Touches::Options));
        }
        "logtimezone" => {
            let zone = one()?.trim().to_string();
            next.options.insert("logtimezone".into(), zone.clone());
            next.logtimezone = (!zone.is_empty()).then_some(zone);
            Touches::Filter
        }
        "ignorecommand" | "ignorecache" | "addjournalmatch" | "deljournalmatch" => {
            return Err(format!(
                "set {name} {key}: not changed at run time by wasmban; put it in jail.local and run \
                 `wasmban reload {name}`"
            ));
        }
        other => {
            return Err(format!(
                "Invalid command {other:?} (no set action or not yet implemented); wasmban sets {SETTABLE}"
            ));
        }
    };
    if touches == Touches::Options {
        next.retype_options()?;
        if next.findtime <= 0 {
            return Err(format!("set {name} findtime {}: give a positive time", one().unwrap_or_default()));
        }
        if next.maxretry == 0 {
            return Err(format!("set {name} maxretry 0: give 1 or more"));
        }
        crate::daemon::assemble::usedns(&next)?;
    }
    Ok((next, touches))
}

fn ignoreip_entries(jail: &Jail) -> Vec<String> {
    let text = jail.options.get("ignoreip").map(String::as_str).unwrap_or("");
    text.split([' ', ',', '\n', '\t']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn is_single_address(entry: &str) -> bool {
    let (addr, prefix) = entry.split_once('/').map_or((entry, None), |(a, p)| (a, Some(p)));
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => prefix.is_none_or(|p| p.parse::<u8>().ok() == Some(if ip.is_ipv4() { 32 } else { 128 })),
        Err(_) => false,
    }
}

/// The jail's filter definition, when its options can be changed (a
/// pack's filter keeps its regexes inside the pack).
fn filter_definition<'a>(
    jail: &'a mut Jail,
    key: &str,
) -> Result<&'a mut crate::config::filter::FilterDefinition, String> {
    let name = jail.name.clone();
    match &mut jail.filter {
        None => Err(format!("set {name} {key}: the jail has no filter")),
        Some((reference, def)) if def.pack_filter().is_some() => Err(format!(
            "set {name} {key}: the filter {} comes from a filter pack, whose regexes are its own; \
             use an ini filter (filter.d) to change them at run time",
            reference.name
        )),
        Some((_, def)) => Ok(def),
    }
}

/// A jail's setting for `get JAIL KEY`, as fail2ban's server answers it
/// (the configuration the jail runs, its files, its bans).
pub fn get(jail: &Jail, files: &[String], banned: &[BanView], idle: bool, key: &str) -> Result<Value, String> {
    let filter_def = jail.filter.as_ref().map(|(_, def)| def);
    let filter_list = |option: &str| filter_def.map(|d| d.list(option)).unwrap_or_default();
    let filter_value = |option: &str| filter_def.and_then(|d| d.get(option)).map(str::to_string);
    Ok(match key {
        "bantime" => json!(jail.ban_time.base),
        "findtime" => json!(jail.findtime),
        "maxretry" => json!(jail.maxretry),
        "maxmatches" => json!(jail.maxmatches),
        "maxtracked" => json!(jail.maxtracked),
        "maxlines" => json!(filter_def.map(|d| d.maxlines().unwrap_or(1)).unwrap_or(1)),
        "logpath" => json!(files),
        "actions" => json!(jail.actions.iter().map(|(r, _)| r.name.clone()).collect::<Vec<_>>()),
        "banip" => json!(banned.iter().map(|b| b.id.clone()).collect::<Vec<_>>()),
        "failregex" | "ignoreregex" => json!(filter_list(key)),
        "prefregex" => json!(filter_value("prefregex").unwrap_or_default()),
        "datepattern" => json!(filter_value("datepattern")),
        "journalmatch" => json!(filter_value("journalmatch").map(|m| vec![m])),
        "ignoreip" => {
            // As fail2ban lists them: networks and names, then single addresses.
            let (single, other): (Vec<String>, Vec<String>) =
                ignoreip_entries(jail).into_iter().partition(|e| is_single_address(e));
            json!(other.into_iter().chain(single).collect::<Vec<_>>())
        }
        "ignoreself" => json!(jail.ignoreself),
        "usedns" => json!(crate::daemon::assemble::usedns(jail).map(|u| format!("{u:?}").to_ascii_lowercase())?),
        "logencoding" => json!("UTF-8"),
        "logtimezone" => json!(jail.logtimezone),
        "idle" => json!(idle),
        "ignorecommand" | "ignorecache" => json!(jail.options.get(key).cloned().unwrap_or_default()),
        "bantime.increment" => json!(jail.ban_time.increment.is_some()),
        "bantime.maxtime" | "bantime.rndtime" => match jail.options.get(key).filter(|v| !v.trim().is_empty()) {
            Some(v) => json!(crate::config::values::parse_time(v)?),
            None => Value::Null,
        },
        k if k.starts_with("bantime.") => json!(jail.options.get(k).cloned()),
        other => {
            return Err(format!(
                "Invalid command {other:?} (no get action or not yet implemented); wasmban answers {}, \
                 logpath, actions, banip, journalmatch, idle (the resolved configuration: `wasmban -d`)",
                SETTABLE
                    .replace("addignoreip/delignoreip", "ignoreip")
                    .replace("addlogpath/dellogpath, ", "")
                    .replace("addfailregex/delfailregex", "failregex")
                    .replace("addignoreregex/delignoreregex", "ignoreregex")
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::jail::Jails;

    fn jail() -> (tempfile::TempDir, Jail) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("filter.d")).unwrap();
        std::fs::write(dir.path().join("filter.d/svc.conf"), "[Definition]\nfailregex = ^fail <HOST>$\n").unwrap();
        std::fs::write(
            dir.path().join("jail.conf"),
            "[DEFAULT]\naction =\n[svc]\nenabled = true\nfilter = svc\nlogpath = /var/log/a.log\nignoreip = 10.0.0.1\n",
        )
        .unwrap();
        let (mut jails, errors) = Jails::load(dir.path()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        (dir, jails.enabled.remove(0))
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_are_typed_as_the_files_would_be() {
        let (_d, j) = jail();
        let (next, touches) = edit(&j, "bantime", &args(&["1h"])).unwrap();
        assert_eq!((next.ban_time.base, touches), (3600, Touches::Options));
        let (next, _) = edit(&next, "bantime.increment", &args(&["true"])).unwrap();
        let (next, _) = edit(&next, "bantime.maxtime", &args(&["2h"])).unwrap();
        assert_eq!(next.ban_time.increment.as_ref().and_then(|i| i.maxtime), Some(7200));
        assert_eq!(get(&next, &[], &[], false, "bantime.increment").unwrap(), json!(true));
        let err = edit(&j, "bantime.factor", &args(&["lots"])).unwrap_err();
        assert!(err.contains("bantime.factor") && err.contains("give a number"), "{err}");
        let (on, _) = edit(&j, "bantime.increment", &args(&["yes"])).unwrap();
        let err = edit(&on, "bantime.maxtime", &args(&["soon"])).unwrap_err();
        assert!(err.contains("[svc] bantime.maxtime"), "{err}");
        assert!(edit(&j, "findtime", &args(&["0"])).unwrap_err().contains("positive"));
        assert!(edit(&j, "usedns", &args(&["maybe"])).unwrap_err().contains("yes, warn, no or raw"));
        assert!(edit(&j, "maxretry", &args(&["3", "4"])).unwrap_err().contains("one value"));
        let (next, _) = edit(&j, "maxtracked", &args(&["5000"])).unwrap();
        assert_eq!(get(&next, &[], &[], false, "maxtracked").unwrap(), json!(5000));
        assert!(edit(&j, "maxtracked", &args(&["0"])).unwrap_err().contains("at least 1"));
    }

    #[test]
    fn ignoreip_and_logpath_lists_grow_and_shrink() {
        let (_d, j) = jail();
        let (next, _) = edit(&j, "addignoreip", &args(&["192.0.2.0/24", "10.0.0.1", "2001:db8::1"])).unwrap();
        assert_eq!(
            get(&next, &[], &[], false, "ignoreip").unwrap(),
            json!(["192.0.2.0/24", "10.0.0.1", "2001:db8::1"])
        );
        assert!(next.ignoreip.covers("192.0.2.9".parse().unwrap()));
        let (next, _) = edit(&next, "delignoreip", &args(&["10.0.0.1"])).unwrap();
        assert!(!next.ignoreip.covers("10.0.0.1".parse().unwrap()));
        assert!(edit(&next, "delignoreip", &args(&["10.0.0.1"])).unwrap_err().contains("not in the ignoreip"));
        assert!(edit(&j, "addignoreip", &args(&["not an address!"])).unwrap_err().contains("ignoreip entry"));

        let (next, _) = edit(&j, "addlogpath", &args(&["/var/log/b.log", "tail"])).unwrap();
        assert_eq!(next.logpath, ["/var/log/a.log", "/var/log/b.log tail"]);
        assert!(edit(&next, "addlogpath", &args(&["/var/log/b.log"])).unwrap_err().contains("already"));
        assert!(edit(&j, "addlogpath", &args(&["/x", "middle"])).unwrap_err().contains("'head' or 'tail'"));
        let (next, _) = edit(&next, "dellogpath", &args(&["/var/log/a.log"])).unwrap();
        assert_eq!(next.logpath, ["/var/log/b.log tail"]);
        assert!(edit(&next, "dellogpath", &args(&["/var/log/a.log"])).unwrap_err().contains("not monitored"));
    }

    #[test]
    fn regex_lists_are_edited_by_index() {
        let (_d, j) = jail();
        let (next, touches) = edit(&j, "addfailregex", &args(&["^bad <HOST>$"])).unwrap();
        assert_eq!(touches, Touches::Filter);
        assert_eq!(get(&next, &[], &[], false, "failregex").unwrap(), json!(["^fail <HOST>$", "^bad <HOST>$"]));
        let (next, _) = edit(&next, "delfailregex", &args(&["0"])).unwrap();
        assert_eq!(get(&next, &[], &[], false, "failregex").unwrap(), json!(["^bad <HOST>$"]));
        assert!(edit(&next, "delfailregex", &args(&["5"])).unwrap_err().contains("0 to 0"));
        let (next, _) = edit(&next, "addignoreregex", &args(&["trusted"])).unwrap();
        assert_eq!(get(&next, &[], &[], false, "ignoreregex").unwrap(), json!(["trusted"]));
        assert!(edit(&next, "maxlines", &args(&["none"])).is_err());
        // The zone goes to a new filter instance, which checks it.
        let (next, touches) = edit(&next, "logtimezone", &args(&["UTC+0200"])).unwrap();
        assert_eq!(
            (touches, get(&next, &[], &[], false, "logtimezone").unwrap()),
            (Touches::Filter, json!("UTC+0200"))
        );
        let (next, _) = edit(&next, "logtimezone", &args(&[""])).unwrap();
        assert_eq!(next.logtimezone, None);
    }

    #[test]
    fn what_is_not_changed_at_run_time_is_refused_with_what_to_do() {
        let (_d, j) = jail();
        assert!(edit(&j, "logencoding", &args(&["latin-1"])).unwrap_err().contains("UTF-8"));
        assert!(edit(&j, "logencoding", &args(&["utf-8"])).is_ok());
        assert!(edit(&j, "ignorecommand", &args(&["/bin/true"])).unwrap_err().contains("jail.local"));
        assert!(edit(&j, "colour", &args(&["red"])).unwrap_err().contains("Invalid command"));
        assert!(get(&j, &[], &[], false, "colour").unwrap_err().contains("Invalid command"));
    }
}
