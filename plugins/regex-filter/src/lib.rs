//! The regex filter: runs a fail2ban filter definition (`failregex`,
//! `ignoreregex`, with `<HOST>`-style tags) over batches of lines.

use regex::Regex;
use wasmban_plugin_sdk::{Failure, Filter, LineNote, Options, Scan};

/// fail2ban's address tags, as named groups.
const IP4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
const IP6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?";
const DNS: &str = r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?";

/// Expand `<HOST>`, `<ADDR>`, `<IP4>`, `<IP6>`, `<DNS>` and `<F-NAME>...</F-NAME>`.
pub fn expand_tags(pattern: &str) -> String {
    let ip4 = format!("(?P<ip4>{IP4})");
    let ip6 = format!(r"\[?(?P<ip6>{IP6})\]?");
    let addr = format!("(?:{ip4}|{ip6})");
    let host = format!("(?:{ip4}|{ip6}|(?P<dns>{DNS}))");
    let mut out = pattern
        .replace("<HOST>", &host)
        .replace("<ADDR>", &addr)
        .replace("<IP4>", &ip4)
        .replace("<IP6>", &ip6)
        .replace("<DNS>", &format!("(?P<dns>{DNS})"));
    // <F-NAME>...</F-NAME> becomes a group named after the tag, lower-cased.
    while let Some(start) = out.find("<F-") {
        let Some(end) = out[start..].find('>') else { break };
        let name = out[start + 3..start + end].to_string();
        let close = format!("</F-{name}>");
        let open_len = end + 1;
        let Some(close_at) = out[start + open_len..].find(&close) else { break };
        let inner = out[start + open_len..start + open_len + close_at].to_string();
        let group = format!("(?P<{}>{})", name.to_ascii_lowercase(), inner);
        out.replace_range(start..start + open_len + close_at + close.len(), &group);
    }
    out
}

fn compile_list(options: &Options, key: &str) -> Result<Vec<Regex>, String> {
    options
        .get_or(key, "")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, pattern)| {
            Regex::new(&expand_tags(pattern))
                .map_err(|e| format!("option `{key}`, pattern {} ({pattern:?}): {e}", i + 1))
        })
        .collect()
}

pub struct RegexFilter {
    failregex: Vec<Regex>,
    ignoreregex: Vec<Regex>,
}

impl Filter for RegexFilter {
    fn new(options: Options) -> Result<Self, String> {
        let failregex = compile_list(&options, "failregex")?;
        if failregex.is_empty() {
            return Err("option `failregex` is empty: a filter needs at least one pattern".into());
        }
        Ok(RegexFilter { failregex, ignoreregex: compile_list(&options, "ignoreregex")? })
    }

    fn feed(&mut self, lines: &str, _now: f64, notes: bool) -> Scan {
        let mut scan = Scan::default();
        for (index, line) in lines.split('\n').enumerate() {
            let mut ignored = false;
            for (rule, re) in self.failregex.iter().enumerate() {
                let Some(caps) = re.captures(line) else { continue };
                if self.ignoreregex.iter().any(|ig| ig.is_match(line)) {
                    ignored = true;
                    break;
                }
                let host = ["fid", "id", "ip4", "ip6", "dns"]
                    .iter()
                    .find_map(|g| caps.name(g))
                    .map(|m| m.as_str().to_string());
                let Some(host) = host else { continue };
                let fields = re
                    .capture_names()
                    .flatten()
                    .filter_map(|n| caps.name(n).map(|m| (n.to_string(), m.as_str().to_string())))
                    .collect();
                scan.failures.push(Failure {
                    line: index as u32,
                    host,
                    time: None,
                    rule: rule as u32,
                    fields,
                    matches: vec![line.to_string()],
                });
                break;
            }
            if notes {
                scan.notes.push(LineNote { time: None, ignored });
            }
        }
        scan
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_filter!(RegexFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(fail: &str, ignore: &str) -> RegexFilter {
        RegexFilter::new(Options::new(vec![("failregex".into(), fail.into()), ("ignoreregex".into(), ignore.into())]))
            .unwrap()
    }

    #[test]
    fn finds_hosts_and_fields() {
        let mut f = filter(r"Failed password for <F-USER>\S+</F-USER> from <HOST> port", "");
        let scan = f.feed(
            "sshd[1]: Failed password for root from 192.0.2.4 port 22\nnothing here\nsshd[2]: Failed password for bob from 2001:db8::5 port 1",
            0.0,
            true,
        );
        assert_eq!(scan.failures.len(), 2);
        assert_eq!(scan.failures[0].host, "192.0.2.4");
        assert_eq!(scan.failures[0].line, 0);
        assert!(scan.failures[0].fields.contains(&("user".into(), "root".into())));
        assert_eq!(scan.failures[1].host, "2001:db8::5");
        assert_eq!(scan.failures[1].line, 2);
        assert_eq!(scan.notes.len(), 3);
    }

    #[test]
    fn ignoreregex_drops_a_match() {
        let mut f = filter(r"from <HOST>", r"trusted");
        let scan = f.feed("login from 192.0.2.9 trusted\nlogin from 192.0.2.8", 0.0, true);
        assert_eq!(scan.failures.len(), 1);
        assert!(scan.notes[0].ignored);
    }

    #[test]
    fn bad_pattern_names_the_option() {
        let err = RegexFilter::new(Options::new(vec![("failregex".into(), "(unclosed <HOST>".into())])).err().unwrap();
        assert!(err.contains("`failregex`"), "{err}");
    }
}
