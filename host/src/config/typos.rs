//! Keys of jail files that look like a mistyped jail option (`maxretries`,
//! `bantim`): fail2ban ignores them without a word, and the admin believes
//! the jail has a setting it does not have. A key is only suspect when it
//! is close to a jail option, is not a name actions commonly take, and is
//! not used by any `%(key)s` or `<key>` of the jail files (a helper such as
//! Debian's `action_`).

use std::collections::HashSet;

use crate::config::filter::FILTER_OPTIONS;
use crate::config::ini::Ini;
use crate::config::jail::JAIL_OPTIONS;

/// Jail options besides [`JAIL_OPTIONS`] and [`FILTER_OPTIONS`] that a
/// typo may be meant for.
const MORE_JAIL_OPTIONS: &[&str] = &["enabled", "filter", "action", "logpath", "backend", "logencoding"];

/// Names jail files commonly give actions, which are never suspect.
const ACTION_PARAMS: &[&str] = &[
    "port",
    "protocol",
    "chain",
    "banaction",
    "banaction_allports",
    "mta",
    "destemail",
    "sender",
    "sendername",
    "name",
    "blocktype",
    "returntype",
    "known",
    "mode",
];

/// One suspect key: where it is, and the option it is probably meant to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    /// `file:line`.
    pub where_: String,
    /// The section (`DEFAULT` for defaults).
    pub section: String,
    /// The key as written.
    pub key: String,
    /// The jail option it is closest to.
    pub meant: &'static str,
}

impl std::fmt::Display for Suspect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: [{}] {} is not an option fail2ban or wasmban reads, and nothing uses it; did you mean {}?",
            self.where_, self.section, self.key, self.meant
        )
    }
}

/// The suspect keys of `ini` (a jail configuration), in file order.
pub fn suspects(ini: &Ini) -> Vec<Suspect> {
    let targets: Vec<&'static str> =
        JAIL_OPTIONS.iter().chain(FILTER_OPTIONS).chain(MORE_JAIL_OPTIONS).copied().collect();
    let used = referenced_names(ini);
    let sections = std::iter::once(("DEFAULT", &ini.defaults)).chain(
        ini.sections
            .iter()
            .filter(|(name, _)| name.as_str() != "INCLUDES" && !name.starts_with("KNOWN/"))
            .map(|(name, options)| (name.as_str(), options)),
    );
    let mut found = Vec::new();
    for (section, options) in sections {
        for (key, raw) in options {
            let key_lower = key.to_ascii_lowercase();
            // `key?family=inet6` and the like are variants of their key.
            let base = key_lower.split('?').next().unwrap_or_default();
            if targets.contains(&base) || ACTION_PARAMS.contains(&base) || used.contains(base) {
                continue;
            }
            if let Some(meant) = closest(base, &targets) {
                let suspect =
                    Suspect { where_: raw.origin.to_string(), section: section.to_string(), key: key.clone(), meant };
                found.push(((raw.origin.file.clone(), raw.origin.line), suspect));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, suspect)| suspect).collect()
}

/// Every name a value of `ini` refers to, as `%(name)s` or `<name>`.
fn referenced_names(ini: &Ini) -> HashSet<String> {
    let mut names = HashSet::new();
    let values = ini.defaults.values().chain(ini.sections.values().flat_map(|s| s.values()));
    for raw in values {
        let text = raw.text.as_str();
        for (open, close) in [("%(", ")s"), ("<", ">")] {
            let mut rest = text;
            while let Some(start) = rest.find(open) {
                let after = &rest[start + open.len()..];
                match after.find(close) {
                    Some(end) => {
                        let name = after[..end].trim_start_matches("known/").to_ascii_lowercase();
                        names.insert(name.split('?').next().unwrap_or_default().to_string());
                        rest = &after[end..];
                    }
                    None => break,
                }
            }
        }
    }
    names
}

/// The option `key` is probably a typo of: within one edit for short keys,
/// two or three for longer ones (an insertion, deletion, substitution or swap of
/// neighbours each count one).
fn closest(key: &str, options: &[&'static str]) -> Option<&'static str> {
    if key.len() < 4 {
        return None;
    }
    let allowed = match key.len() {
        ..=6 => 1,
        7..=9 => 2,
        _ => 3,
    };
    options
        .iter()
        .map(|option| (edit_distance(key, option), *option))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, option)| option)
}

/// Optimal string alignment distance over bytes (the keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ini::{Ini, parse};

    fn ini(text: &str) -> Ini {
        Ini::from_parsed(parse(text, std::path::Path::new("jail.local")).unwrap())
    }

    #[test]
    fn typos_of_jail_options_are_named_with_what_was_meant() {
        let found = suspects(&ini("[DEFAULT]\nbantme = 1h\naction_ = x\naction = %(action_)s\n\
             [sshd]\nenabled = true\nmaxretries = 3\nfindtmie = 10m\nport = ssh\nlogpaht = /var/log/auth.log\n\
             ports = 22\nmy_own_thing = 1\nmaxretry?family=inet6 = 2\n"));
        let said: Vec<(String, &str)> = found.iter().map(|s| (s.key.clone(), s.meant)).collect();
        assert_eq!(
            said,
            [
                ("bantme".to_string(), "bantime"),
                ("maxretries".to_string(), "maxretry"),
                ("findtmie".to_string(), "findtime"),
                ("logpaht".to_string(), "logpath")
            ]
        );
        assert!(found[1].to_string().starts_with("jail.local:7: [sshd] maxretries is not an option"), "{}", found[1]);
    }

    #[test]
    fn distances_count_swaps_as_one() {
        assert_eq!(edit_distance("findtmie", "findtime"), 1);
        assert_eq!(edit_distance("maxretries", "maxretry"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
