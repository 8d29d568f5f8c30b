//! An example filter pack: web servers' JSON access logs (nginx with a
//! JSON `log_format`, Caddy, Traefik), read as JSON rather than matched
//! with regular expressions.
//!
//! - `http-auth-rate`: bans an address that draws `rate` answers with a
//!   `status` (401 by default) within `window` seconds: one failure is
//!   reported when the rate is reached, so the jail's `maxretry = 1` bans
//!   at once. Counting per address with a sliding window, over fields
//!   found by name at any depth, is what a regex cannot do well.
//! - `http-status`: one failure per answer with a `status` in a list
//!   (default 401,403), for the jail to count as usual.
//!
//! The address is read from `addr-field` (default: the first of
//! `remote_addr`, `client_ip`, `remote_ip`, `ClientHost`, at any depth), the
//! time from `time` / `ts` / `time_local` (ISO 8601 or unix seconds), the
//! status from `status` / `DownstreamStatus`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde_json::Value;
use wasmban_plugin_sdk::{Failure, FilterInfo, FilterPack, LineNote, Options, PackInfo, Sample, Scan};

const ADDR_FIELDS: &[&str] = &["remote_addr", "client_ip", "remote_ip", "ClientHost"];
const TIME_FIELDS: &[&str] = &["time", "ts", "time_local", "StartUTC"];
const STATUS_FIELDS: &[&str] = &["status", "DownstreamStatus"];
/// Addresses tracked at most; the stalest are forgotten first.
const TRACKED_LIMIT: usize = 100_000;

/// The first field named `name` anywhere in `value`, depth first.
fn find<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(name).or_else(|| map.values().find_map(|v| find(v, name))),
        _ => None,
    }
}

fn find_any<'a>(value: &'a Value, names: &[String]) -> Option<&'a Value> {
    names.iter().find_map(|n| find(value, n))
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `2026-11-25T10:00:00.123+01:00` (or `Z`, or a space for `T`) as unix seconds.
fn parse_iso8601(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let digits: String = rest[1..].chars().filter(char::is_ascii_digit).collect();
            let hours: i64 = digits.get(0..2)?.parse().ok()?;
            let minutes: i64 = digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
            sign * (hours * 3600 + minutes * 60)
        }
    };
    Some((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset) as f64 + frac)
}

/// nginx's `$time_local`: `25/Nov/2026:10:00:00 +0100`.
fn parse_clf(text: &str) -> Option<f64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (date, zone) = text.split_once(' ')?;
    let mut parts = date.splitn(3, '/');
    let day: i64 = parts.next()?.parse().ok()?;
    let name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? as i64 + 1;
    let rest = parts.next()?;
    let iso = format!("{}-{month:02}-{day:02}T{}{}", rest.get(0..4)?, rest.get(5..13)?, zone);
    parse_iso8601(&iso)
}

fn time_of(value: &Value, fields: &[String]) -> Option<f64> {
    match find_any(value, fields)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| parse_iso8601(s)).or_else(|| parse_clf(s)),
        _ => None,
    }
}

fn status_of(value: &Value, fields: &[String]) -> Option<u16> {
    match find_any(value, fields)? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn address_of(value: &Value, fields: &[String]) -> Option<String> {
    let text = find_any(value, fields)?.as_str()?;
    // "203.0.113.5:51234" (Traefik) or "[2001:db8::1]:443".
    let bare = text.parse::<IpAddr>().ok().or_else(|| {
        let (host, _port) = text.rsplit_once(':')?;
        host.trim_matches(['[', ']']).parse::<IpAddr>().ok()
    })?;
    Some(match bare {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)).to_string(),
        v4 => v4.to_string(),
    })
}

fn list_option(options: &Options, key: &str, default: &[&str]) -> Vec<String> {
    match options.get(key) {
        Some(v) => v.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        None => default.iter().map(|s| s.to_string()).collect(),
    }
}

fn number_option(options: &Options, key: &str, default: f64) -> Result<f64, String> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| *n > 0.0)
            .ok_or_else(|| format!("option `{key}` = {v:?}: expected a positive number")),
    }
}

/// Which answers count, and how.
enum Rule {
    /// `rate` answers within `window` seconds.
    Rate { rate: usize, window: f64, seen: HashMap<String, VecDeque<f64>> },
    /// Every answer.
    Each,
}

/// One configured filter of the pack.
pub struct JsonAccess {
    statuses: Vec<u16>,
    addr_fields: Vec<String>,
    time_fields: Vec<String>,
    status_fields: Vec<String>,
    rule: Rule,
}

impl JsonAccess {
    fn judge(&mut self, line: &str, now: f64) -> (Option<f64>, Option<(String, u16, bool)>) {
        let Ok(value) = serde_json::from_str::<Value>(line) else { return (None, None) };
        let time = time_of(&value, &self.time_fields);
        let (Some(status), Some(addr)) =
            (status_of(&value, &self.status_fields), address_of(&value, &self.addr_fields))
        else {
            return (time, None);
        };
        if !self.statuses.contains(&status) {
            return (time, None);
        }
        let at = time.unwrap_or(now);
        let fire = match &mut self.rule {
            Rule::Each => true,
            Rule::Rate { rate, window, seen } => {
                if seen.len() >= TRACKED_LIMIT && !seen.contains_key(&addr) {
                    let horizon = at - *window;
                    seen.retain(|_, times| times.back().is_some_and(|t| *t >= horizon));
                    if seen.len() >= TRACKED_LIMIT {
                        seen.clear();
                    }
                }
                let times = seen.entry(addr.clone()).or_default();
                times.push_back(at);
                while times.front().is_some_and(|t| *t < at - *window) {
                    times.pop_front();
                }
                if times.len() >= *rate {
                    times.clear();
                    true
                } else {
                    false
                }
            }
        };
        (time, Some((addr, status, fire)))
    }
}

impl FilterPack for JsonAccess {
    fn describe() -> PackInfo {
        let line = |addr: &str, status: u16, second: u32| {
            format!(
                r#"{{"time":"2026-11-25T10:00:{second:02}+00:00","remote_addr":"{addr}","request":"POST /login HTTP/1.1","status":{status}}}"#
            )
        };
        let mut rate_samples: Vec<Sample> =
            (0..9).map(|i| Sample { line: line("203.0.113.5", 401, i), expect: None }).collect();
        rate_samples.push(Sample { line: line("198.51.100.7", 200, 9), expect: None });
        rate_samples.push(Sample { line: line("203.0.113.5", 401, 10), expect: Some("203.0.113.5".into()) });
        rate_samples.push(Sample { line: "not json at all".into(), expect: None });
        PackInfo {
            name: "json-access".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            filters: vec![
                FilterInfo {
                    name: "http-auth-rate".into(),
                    description: "an address drawing `rate` (10) answers with `status` (401) within `window` (60) seconds"
                        .into(),
                    logpath: Some("/var/log/nginx/access.json".into()),
                    journalmatch: None,
                    samples: rate_samples,
                },
                FilterInfo {
                    name: "http-status".into(),
                    description: "each answer with a `status` in the list (401,403), for the jail to count".into(),
                    logpath: Some("/var/log/nginx/access.json".into()),
                    journalmatch: None,
                    samples: vec![
                        Sample { line: line("198.51.100.7", 403, 1), expect: Some("198.51.100.7".into()) },
                        Sample { line: line("198.51.100.8", 200, 2), expect: None },
                        Sample {
                            line: r#"{"ts":1764064800.5,"logger":"http.log.access","request":{"remote_ip":"2001:db8::9","method":"GET"},"status":401}"#.into(),
                            expect: Some("2001:db8::9".into()),
                        },
                        Sample {
                            line: r#"{"StartUTC":"2026-11-25T10:00:03Z","ClientHost":"192.0.2.44","DownstreamStatus":401}"#.into(),
                            expect: Some("192.0.2.44".into()),
                        },
                    ],
                },
            ],
        }
    }

    fn new(filter: &str, options: Options) -> Result<Self, String> {
        let (default_statuses, rule) = match filter {
            "http-auth-rate" => {
                let rate = number_option(&options, "rate", 10.0)?;
                if rate.fract() != 0.0 {
                    return Err(format!("option `rate` = {rate}: expected a whole number of answers"));
                }
                (
                    vec!["401"],
                    Rule::Rate {
                        rate: rate as usize,
                        window: number_option(&options, "window", 60.0)?,
                        seen: HashMap::new(),
                    },
                )
            }
            "http-status" => (vec!["401", "403"], Rule::Each),
            other => return Err(format!("this pack has no filter {other:?}; it has http-auth-rate and http-status")),
        };
        let key = if matches!(rule, Rule::Rate { .. }) { "status" } else { "statuses" };
        let mut statuses = Vec::new();
        for s in list_option(&options, key, &default_statuses) {
            statuses.push(s.parse::<u16>().map_err(|_| format!("option `{key}`: {s:?} is not an HTTP status"))?);
        }
        Ok(JsonAccess {
            statuses,
            addr_fields: list_option(&options, "addr-field", ADDR_FIELDS),
            time_fields: list_option(&options, "time-field", TIME_FIELDS),
            status_fields: list_option(&options, "status-field", STATUS_FIELDS),
            rule,
        })
    }

    fn feed(&mut self, lines: &str, now: f64, notes: bool) -> Scan {
        let mut scan = Scan::default();
        for (index, line) in lines.split('\n').enumerate() {
            let (time, verdict) = self.judge(line, now);
            let fired = matches!(&verdict, Some((_, _, true)));
            if let Some((addr, status, true)) = &verdict {
                scan.failures.push(Failure {
                    line: index as u32,
                    host: addr.clone(),
                    time,
                    rule: 0,
                    fields: vec![("status".into(), status.to_string())],
                    matches: vec![line.to_string()],
                });
            }
            if notes {
                scan.notes.push(LineNote {
                    time,
                    hits: if verdict.is_some() { vec![0] } else { vec![] },
                    matched: fired,
                    // Counted towards the rate, not (yet) a failure.
                    ignored: verdict.is_some() && !fired,
                });
            }
        }
        scan
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_pack!(JsonAccess);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(filter: &str, options: &[(&str, &str)], lines: &[String]) -> Vec<Option<String>> {
        let opts = Options::new(options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let mut f = JsonAccess::new(filter, opts).unwrap();
        lines.iter().map(|l| f.feed(l, 0.0, false).failures.first().map(|x| x.host.clone())).collect()
    }

    #[test]
    fn every_sample_gets_its_verdict() {
        for info in JsonAccess::describe().filters {
            let lines: Vec<String> = info.samples.iter().map(|s| s.line.clone()).collect();
            let expected: Vec<Option<String>> = info.samples.iter().map(|s| s.expect.clone()).collect();
            assert_eq!(run(&info.name, &[], &lines), expected, "{}", info.name);
        }
    }

    #[test]
    fn the_window_slides() {
        let line = |s: u32| {
            format!(r#"{{"time":"2026-11-25T10:{:02}:{:02}Z","remote_addr":"192.0.2.1","status":401}}"#, s / 60, s % 60)
        };
        // Three 401s, but never three within 10 seconds.
        let lines: Vec<String> = [0, 8, 16, 24].iter().map(|s| line(*s)).collect();
        assert!(run("http-auth-rate", &[("rate", "3"), ("window", "10")], &lines).iter().all(Option::is_none));
        let lines: Vec<String> = [0, 4, 8].iter().map(|s| line(*s)).collect();
        assert_eq!(run("http-auth-rate", &[("rate", "3"), ("window", "10")], &lines)[2].as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn times_and_addresses_in_their_usual_forms() {
        assert_eq!(parse_iso8601("1970-01-02T00:00:00Z"), Some(86400.0));
        assert_eq!(parse_iso8601("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_clf("02/Jan/1970:00:00:00 +0000"), Some(86400.0));
        let v: Value = serde_json::from_str(r#"{"ClientHost":"[2001:db8::1]:443"}"#).unwrap();
        assert_eq!(address_of(&v, &["ClientHost".to_string()]).as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn bad_options_and_names_are_errors_that_say_so() {
        assert!(JsonAccess::new("nope", Options::default()).err().unwrap().contains("http-auth-rate"));
        let o = Options::new(vec![("rate".into(), "many".into())]);
        assert!(JsonAccess::new("http-auth-rate", o).err().unwrap().contains("`rate`"));
    }
}
