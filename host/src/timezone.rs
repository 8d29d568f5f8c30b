//! The host's local time zone as a POSIX TZ rule, for plugins: they have no
//! time zone database, and a rule string is all they need to turn local
//! log timestamps into unix time.

use std::path::Path;

/// The rule for `TZ` if set (a POSIX string, or a zone name looked up in
/// the system's zoneinfo), else for `/etc/localtime`; `UTC0` when nothing
/// can be read.
pub fn local_rule() -> String {
    match std::env::var("TZ") {
        Ok(tz) if !tz.is_empty() => rule_for(&tz),
        _ => footer_of(Path::new("/etc/localtime")).unwrap_or_else(|| "UTC0".into()),
    }
}

/// Unix time `secs` broken down in the host's zone (its `tm_gmtoff` is the
/// offset then).
pub fn local_time(secs: i64) -> libc::tm {
    let secs = secs as libc::time_t;
    // SAFETY: localtime_r only writes the tm it is given.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    }
}

/// The current calendar year (UTC), which decides the years `%ExY` accepts.
pub fn current_year() -> i64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    civil_from_days(secs as i64 / 86400).0
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's algorithm; any day, before the epoch too).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The rule for one `TZ` value.
pub fn rule_for(tz: &str) -> String {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    let zone_file = if name.starts_with('/') {
        Some(Path::new(name).to_path_buf())
    } else if !name.contains("..") {
        Some(Path::new("/usr/share/zoneinfo").join(name))
    } else {
        None
    };
    if let Some(rule) = zone_file.as_deref().filter(|p| p.is_file()).and_then(footer_of) {
        return rule;
    }
    name.to_string()
}

/// TZif files (version 2 and later) end with the POSIX rule for times past
/// their table, between two newlines.
fn footer_of(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    if !bytes.starts_with(b"TZif") || bytes.last() != Some(&b'\n') {
        return None;
    }
    let body = &bytes[..bytes.len() - 1];
    let start = body.iter().rposition(|&b| b == b'\n')? + 1;
    let rule = std::str::from_utf8(&body[start..]).ok()?;
    (!rule.is_empty()).then(|| rule.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_year_is_plausible() {
        let y = current_year();
        assert!((2025..2100).contains(&y), "{y}");
    }

    #[test]
    fn posix_strings_pass_through() {
        assert_eq!(rule_for("CET-01CEST-02,M3.5.0,M10.5.0"), "CET-01CEST-02,M3.5.0,M10.5.0");
    }

    #[test]
    fn zone_names_become_rules_when_zoneinfo_is_installed() {
        if Path::new("/usr/share/zoneinfo/Europe/Zurich").is_file() {
            assert_eq!(rule_for("Europe/Zurich"), "CET-1CEST,M3.5.0,M10.5.0/3");
        }
    }
}
