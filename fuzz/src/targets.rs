//! The targets. Each splits its input the way its seeds are written
//! (`fuzz/seeds/TARGET/`), so that mutations keep the structure.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use wasmban::config::ini::{Ini, parse};
use wasmban::config::interp::{Vars, substitute_tags};
use wasmban::config::values::{parse_bool, parse_reference, parse_time, split_references};
use wasmban::daemon::control::{Request, parse_request};
use wasmban::jail::IgnoreList;
use wasmban::plugin::Manifest;

use crate::grammar::Choices;
use crate::oracle::PythonRe;

/// The first line and the rest.
fn split_line(text: &str) -> (&str, &str) {
    text.split_once('\n').unwrap_or((text, ""))
}

/// A configuration file: parsed, every option of every section read with
/// interpolation (plain and `get_ex`), fail2ban's tags substituted over a
/// section's values, and every value read as each kind of value the
/// configuration has (times, booleans, references, address lists).
pub fn ini(data: &[u8]) {
    // Every option of every section is read: bounded, so that one input
    // stays a few milliseconds (fail2ban's jail.conf has ~100 sections).
    let text = String::from_utf8_lossy(&data[..data.len().min(16 * 1024)]);
    let Ok(parsed) = parse(&text, Path::new("fuzz.conf")) else {
        return;
    };
    let ini = Ini::from_parsed(parsed);
    let vars = Vars::from([("name".to_string(), "sshd".to_string())]);
    let mut sections: Vec<String> = ini.sections.keys().take(8).cloned().collect();
    sections.push("DEFAULT".into());
    for section in &sections {
        let mut options: Vec<String> = ini.defaults.keys().cloned().collect();
        if let Some(own) = ini.sections.get(section) {
            options.extend(own.keys().cloned());
        }
        let mut values = BTreeMap::new();
        for option in &options {
            let _ = ini.get_ex(section, option, &vars);
            if let Ok(Some(value)) = ini.get(section, option, &vars) {
                assert!(
                    value.len() <= wasmban::config::interp::MAX_EXPANDED,
                    "[{section}] {option} expanded past the bound"
                );
                values.insert(option.clone(), value);
            }
        }
        for value in values.values() {
            let _ = parse_time(value);
            let _ = parse_bool(value);
            for reference in split_references(value) {
                if let Ok(r) = parse_reference(&reference) {
                    let _ = r.param_map();
                }
            }
            let _ = IgnoreList::parse(value);
        }
        let ignore: HashSet<String> = HashSet::from(["ip".to_string()]);
        if let Ok(tags) = substitute_tags(&values, &ignore, |name| ini.get(section, name, &vars)) {
            for value in tags.values() {
                assert!(
                    value.len() <= wasmban::config::interp::MAX_EXPANDED,
                    "[{section}] a tag expanded past the bound"
                );
            }
        }
    }
}

/// A control request: parsed, and what parses survives a round trip; and
/// the same bytes as a request head to the metrics endpoint.
pub fn control(data: &[u8]) {
    // The other thing a peer can send: a request head to the metrics
    // endpoint.
    let _ = wasmban::metrics::http::parse_head(data);
    let Ok(request) = parse_request(data) else {
        return;
    };
    let text = serde_json::to_string(&request).expect("a request always encodes");
    let again: Request = serde_json::from_str(&text).expect("an encoded request parses");
    assert_eq!(request, again);
    if let Request::Ban { ip, .. } | Request::Unban { ip: Some(ip), .. } = &request
        && let Some(address) = wasmban::jail::ids::canonical_ip(ip)
    {
        let _ = wasmban::jail::ids::needs_force(address);
    }
}

/// A plugin manifest (`wasmban.toml`).
pub fn manifest(data: &[u8]) {
    let _ = Manifest::parse(&String::from_utf8_lossy(data));
}

/// A failregex on the first line, a log line after it.
pub fn dialect(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (regex, line) = split_line(&text);
    regex_filter::fuzzing::dialect(regex, line);
}

/// A `datepattern` on the first line (empty: the default templates), a TZ
/// string on the second, the log line after.
pub fn date(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, rest) = split_line(&text);
    let (tz, line) = split_line(rest);
    let pattern = (!pattern.is_empty()).then_some(pattern);
    regex_filter::fuzzing::date(pattern, line, 1_796_000_000.0, tz);
}

/// Filter options as `key = value` lines up to an empty line, then the
/// log text (a record separator, 0x1e, ends a batch).
pub fn filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, lines) = text.split_once("\n\n").unwrap_or((&text, ""));
    let options: Vec<(String, String)> = head
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if options.iter().map(|(_, v)| v.len()).sum::<usize>() > 4096 {
        return;
    }
    regex_filter::fuzzing::filter(options, lines, 1_796_000_000.0);
}

/// The backtracker against Python's `re`: the pattern is drawn from a
/// grammar of fail2ban's failregexes (the choices are the input's first
/// bytes), the line is the rest; a difference in whether it matched, or in
/// any group's span, is a finding.
pub fn backtrack(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = (count as usize).min(rest.len());
    let (choices, line) = rest.split_at(count);
    let (pattern, multiline) = Choices::new(choices).pattern();
    // The backtracker runs on ASCII only (other lines go to the general
    // engines): keep the line ASCII, so that every case is a comparison.
    let line: String = line.iter().map(|&b| (b & 0x7f) as char).take(300).collect();
    let expanded = regex_filter::fuzzing::expand_tags(&pattern);
    let regex_filter::fuzzing::Search::Found(ours) = regex_filter::fuzzing::backtrack(&expanded, multiline, &line)
    else {
        return;
    };
    let Some(theirs) = PythonRe::shared(|python| python.search(&expanded, multiline, &line)) else {
        return;
    };
    let Ok(theirs) = theirs else {
        // Python refuses the pattern: fail2ban would not load it.
        return;
    };
    assert_eq!(
        ours, theirs,
        "backtracker and Python's re differ\n  pattern: {expanded:?}\n  multiline: {multiline}\n  line: {line:?}"
    );
}
