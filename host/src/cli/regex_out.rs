//! `wasmban regex -o OUT`: one line per failure found, as fail2ban-regex's
//! `-o` prints it: a token (`id`, `ip`, `msg`, `matches`, a captured field
//! such as `user`), or a template with tags (`<ip> for <F-USER>`).

use crate::wit::types::Failure;

/// The values of the field `name` the failure captured.
fn field<'a>(failure: &'a Failure, name: &str) -> Vec<&'a str> {
    failure.fields.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// What `token` stands for in `failure`; `None` when it names nothing
/// the failure has (fail2ban-regex prints `None` then).
fn value(failure: &Failure, token: &str) -> Option<String> {
    let ip = failure.host.parse::<std::net::IpAddr>().ok();
    match token {
        "id" | "fid" | "ip" | "host" => Some(failure.host.clone()),
        "ip4" => ip.filter(|a| a.is_ipv4()).map(|a| a.to_string()),
        "ip6" => ip.filter(|a| a.is_ipv6()).map(|a| a.to_string()),
        "msg" => Some(failure.matches.join("\n")),
        "matches" => {
            Some(format!("[{}]", failure.matches.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")))
        }
        "time" => failure.time.map(|t| format!("{t:.1}")),
        name => {
            let name = name.strip_prefix("F-").map(str::to_ascii_lowercase).unwrap_or_else(|| name.to_string());
            let values = field(failure, &name);
            (!values.is_empty()).then(|| values.join(", "))
        }
    }
}

/// Unix time `t` as Python's `datetime.fromtimestamp(t, local zone)
/// .isoformat()` writes it (`2026-12-04T11:28:44.272514+00:00`; no
/// fraction when it is 0), as fail2ban-regex shows journal entries.
pub fn iso_local(t: f64) -> String {
    let secs = t.floor();
    let micros = ((t - secs) * 1e6).round() as u32;
    let (secs, micros) = if micros >= 1_000_000 { (secs + 1.0, 0) } else { (secs, micros) };
    let tm = crate::timezone::local_time(secs as i64);
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    let fraction = if micros > 0 { format!(".{micros:06}") } else { String::new() };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{sign}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// The line `-o OUT` prints for `failure`.
pub fn line(out: &str, failure: &Failure) -> String {
    if !out.contains('<') {
        // A bare token; F-NAME names the token itself, as fail2ban-regex
        // looks it up (its fields are named without F-).
        let found = if out.starts_with("F-") { None } else { value(failure, out) };
        return found.unwrap_or_else(|| "None".into());
    }
    let mut text = String::with_capacity(out.len() + 32);
    let mut rest = out;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) if !after[..end].contains('<') => {
                let tag = &after[..end];
                text.push_str(&value(failure, tag).unwrap_or_default());
                rest = &after[end + 1..];
            }
            _ => {
                text.push('<');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            line: 0,
            host: "192.0.2.1".into(),
            time: Some(1.0),
            rule: 0,
            fields: vec![("user".into(), "root".into())],
            matches: vec!["Failed password for root from 192.0.2.1".into()],
        }
    }

    #[test]
    fn tokens_and_templates() {
        let f = failure();
        assert_eq!(line("ip", &f), "192.0.2.1");
        assert_eq!(line("user", &f), "root");
        assert_eq!(line("F-USER", &f), "None");
        assert_eq!(line("ip6", &f), "None");
        assert_eq!(line("msg", &f), "Failed password for root from 192.0.2.1");
        assert_eq!(line("<ip> for <F-USER> <F-NONE>!", &f), "192.0.2.1 for root !");
        assert_eq!(line("a < b <ip>", &f), "a < b 192.0.2.1");
    }
}
