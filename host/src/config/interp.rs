//! Interpolation (`%(name)s`, `%(section/name)s`, `%(known/name)s`,
//! `%(__name__)s`) as Python's configparser and fail2ban do it, and
//! fail2ban's recursive `<tag>` substitution.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::config::ConfigError;
use crate::config::ini::{Ini, Options, RawValue};

/// Values given from outside the files, such as a jail's
/// `filter = sshd[mode=aggressive]`: they take precedence over the section
/// and are visible to `%(name)s`. Keys are lower-cased.
pub type Vars = BTreeMap<String, String>;

/// Python's limit on nested interpolation.
const MAX_DEPTH: usize = 10;
/// fail2ban's limit on how often one tag may be replaced in one value.
const MAX_TAG_REPLACE: usize = 25;
/// No value may expand beyond this: nested references multiply a value's
/// size (ten levels of a 1 MB value took `check` to 19 GB), and no real
/// filter or action comes near it (apache-badbots' list is ~10 KB).
pub const MAX_EXPANDED: usize = 1 << 20;

fn too_large(what: &str) -> String {
    format!(
        "{what} expands to more than {} KiB; nested references multiply a value's size: shorten the values it \
         refers to, or refer to them fewer times",
        MAX_EXPANDED >> 10
    )
}

impl Ini {
    fn own_options(&self, section: &str) -> Option<&Options> {
        match section.strip_prefix("KNOWN/") {
            Some(base) => self.known.get(base),
            None => self.sections.get(section),
        }
    }

    fn lookup_raw(&self, section: &str, option: &str) -> Option<&RawValue> {
        self.own_options(section).and_then(|o| o.get(option)).or_else(|| self.defaults.get(option))
    }

    fn section_exists(&self, section: &str) -> bool {
        section == "DEFAULT" || self.own_options(section).is_some()
    }

    /// Python's `get(section, option, vars=vars)`: the value from `vars`,
    /// the section or `[DEFAULT]`, interpolated. `None` when the section or
    /// option does not exist.
    pub fn get(&self, section: &str, option: &str, vars: &Vars) -> Result<Option<String>, ConfigError> {
        let option = option.to_lowercase();
        if !self.section_exists(section) {
            return Ok(None);
        }
        let (text, where_) = match vars.get(&option) {
            Some(v) => (v.clone(), "given parameters".to_string()),
            None => match self.lookup_raw(section, &option) {
                Some(raw) => (raw.text.clone(), raw.origin.to_string()),
                None => return Ok(None),
            },
        };
        let mut out = String::with_capacity(text.len());
        self.interpolate(section, &option, &where_, &text, vars, 0, &mut out)?;
        Ok(Some(out))
    }

    /// fail2ban's `get_ex`: like [`Ini::get`], but an option named
    /// `section/option` or `known/option` is looked up there.
    pub fn get_ex(&self, section: &str, option: &str, vars: &Vars) -> Result<Option<String>, ConfigError> {
        if let Some((sec, opt)) = split_section_option(option) {
            let candidates: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec!["DEFAULT".to_string()],
                _ => vec![sec.to_string()],
            };
            for candidate in candidates {
                if let Some(v) = self.get(&candidate, opt, &Vars::new())? {
                    return Ok(Some(v));
                }
            }
        }
        self.get(section, option, vars)
    }

    /// The raw value `%(name)s` refers to, seen from `section`.
    fn reference(&self, section: &str, name: &str, vars: &Vars) -> Option<String> {
        if name == "__name__" {
            return Some(section.to_string());
        }
        if let Some(v) = vars.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.own_options(section).and_then(|o| o.get(name)) {
            return Some(v.text.clone());
        }
        if let Some((sec, opt)) = split_section_option(name) {
            let found = match sec.to_lowercase().as_str() {
                "default" => None,
                "known" => self.known.get(section).and_then(|o| o.get(opt)),
                _ => match self.sections.get(sec) {
                    Some(o) => o.get(opt),
                    None => return None,
                },
            };
            return found.or_else(|| self.defaults.get(opt)).map(|v| v.text.clone());
        }
        self.defaults.get(name).map(|v| v.text.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn interpolate(
        &self,
        section: &str,
        option: &str,
        where_: &str,
        mut rest: &str,
        vars: &Vars,
        depth: usize,
        out: &mut String,
    ) -> Result<(), ConfigError> {
        let fail = |message: String| ConfigError::Value {
            where_: where_.to_string(),
            section: section.to_string(),
            option: option.to_string(),
            message,
        };
        if depth > MAX_DEPTH {
            return Err(fail("interpolation nested too deeply (does a value refer to itself?)".into()));
        }
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            match rest.as_bytes().get(1) {
                Some(b'%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some(b'(') => {
                    let Some(close) = rest.find(")s") else {
                        return Err(fail(format!("bad interpolation {:?}: expected %(name)s", cut(rest))));
                    };
                    let name = rest[2..close].to_lowercase();
                    if name.is_empty() || name.contains(')') {
                        return Err(fail(format!("bad interpolation {:?}: expected %(name)s", cut(rest))));
                    }
                    rest = &rest[close + 2..];
                    let Some(value) = self.reference(section, &name, vars) else {
                        return Err(fail(format!(
                            "%({name})s refers to an option that is not defined in [{section}] or [DEFAULT]"
                        )));
                    };
                    if value.contains('%') {
                        self.interpolate(section, option, where_, &value, vars, depth + 1, out)?;
                    } else {
                        out.push_str(&value);
                    }
                    if out.len() > MAX_EXPANDED {
                        return Err(fail(too_large("the value")));
                    }
                }
                _ => {
                    return Err(fail(format!(
                        "'%' must be followed by '%' or '(' (found {:?}); write %% for a literal percent sign",
                        cut(rest)
                    )));
                }
            }
        }
        out.push_str(rest);
        Ok(())
    }
}

fn cut(s: &str) -> &str {
    let end = s.char_indices().nth(30).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

/// `section/option` as fail2ban writes it: a word (letters, digits, `_`,
/// `-`) before the first slash.
fn split_section_option(name: &str) -> Option<(&str, &str)> {
    let (sec, opt) = name.split_once('/')?;
    let word = !sec.is_empty() && sec.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    (word && !opt.is_empty() && !opt.contains(char::is_whitespace) && !opt.contains('>')).then_some((sec, opt))
}

/// The next `<tag>` in `value` at or after `from`: `<` then characters other
/// than space, `<` and `>`, then `>`.
fn next_tag(value: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = value.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let mut j = i + 1;
            while j < bytes.len() && !matches!(bytes[j], b' ' | b'<' | b'>') {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'>' && j > i + 1 {
                return Some((i, j + 1));
            }
        }
        i += 1;
    }
    None
}

/// fail2ban's `<tag>` substitution: replace `<name>` in every value by the
/// value of `name` (from `tags`, else from `extra`), repeatedly, so that
/// `<mdre-<mode>>` first becomes `<mdre-normal>` and then its value. Tags
/// that name nothing (`<HOST>`, `<F-USER>`) are left for the regex engine.
pub fn substitute_tags(
    tags: &BTreeMap<String, String>,
    ignore: &HashSet<String>,
    mut extra: impl FnMut(&str) -> Result<Option<String>, ConfigError>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut tags = tags.clone();
    let mut done: HashSet<String> = HashSet::new();
    let mut counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let mut extra_cache: HashMap<String, Option<String>> = HashMap::new();
    let names: Vec<String> = tags.keys().cloned().collect();
    loop {
        let mut again = false;
        for tag in &names {
            if ignore.contains(tag) || done.contains(tag) {
                continue;
            }
            let original = tags[tag].clone();
            let mut value = original.clone();
            let mut replaced = counts.get(tag).cloned().unwrap_or_default();
            let mut pos = 0;
            while let Some((start, end)) = next_tag(&value, pos) {
                let inner = value[start + 1..end - 1].to_string();
                if ignore.contains(&inner) {
                    pos = end;
                    continue;
                }
                if inner == *tag || *replaced.get(&inner).unwrap_or(&1) > MAX_TAG_REPLACE {
                    return Err(ConfigError::Value {
                        where_: "tag substitution".into(),
                        section: "Definition".into(),
                        option: tag.clone(),
                        message: format!("<{inner}> refers back to itself and cannot be resolved"),
                    });
                }
                let replacement = match tags.get(&inner) {
                    Some(v) => Some(v.clone()),
                    None => match extra_cache.get(&inner) {
                        Some(v) => v.clone(),
                        None => {
                            let v = extra(&inner)?;
                            extra_cache.insert(inner.clone(), v.clone());
                            v
                        }
                    },
                };
                let Some(replacement) = replacement else {
                    pos = end;
                    continue;
                };
                let occurrences = value.matches(&format!("<{inner}>")).count();
                if value.len() + occurrences * replacement.len() > MAX_EXPANDED {
                    return Err(ConfigError::Value {
                        where_: "tag substitution".into(),
                        section: "Definition".into(),
                        option: tag.clone(),
                        message: too_large(&format!("<{inner}> in it")),
                    });
                }
                value = value.replace(&format!("<{inner}>"), &replacement);
                *replaced.entry(inner).or_insert(0) += 1;
                pos = start;
            }
            if value != original {
                if next_tag(&value, 0).is_some() {
                    counts.insert(tag.clone(), replaced);
                    again = true;
                }
                tags.insert(tag.clone(), value.clone());
            }
            if !value.contains('<') {
                done.insert(tag.clone());
            }
        }
        if !again {
            return Ok(tags);
        }
    }
}

/// How a `[Definition]` option that the caller's variables also set is
/// taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// The variable replaces the definition's value (filters: a jail may
    /// set its own `failregex`).
    Replaces,
    /// Only the parameters (`name[k=v]`) replace it (actions).
    ParamsOnly,
}

/// fail2ban's reading of a definition file (filter or action) for one use:
/// the `options` of `[Definition]` interpolated with `vars` (the jail's
/// options under the parameters), then the parameters and the `[Init]`
/// values they do not set (each Init value also as `known/NAME`) over them,
/// then `<tag>` substitution, leaving conditional tags (`name?family=..`)
/// and those in `keep` for later.
pub fn combine_definition(
    ini: &Ini,
    options: &[&str],
    params: &Vars,
    vars: &Vars,
    given: Given,
    keep: &[&str],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut combined = BTreeMap::new();
    for option in options {
        if let Some(v) = vars.get(*option) {
            if given == Given::Replaces {
                combined.insert(option.to_string(), v.clone());
            }
            continue;
        }
        if let Some(v) = ini.get("Definition", option, vars)? {
            combined.insert(option.to_string(), v);
        }
    }
    let mut init: BTreeMap<String, String> = params.clone().into_iter().collect();
    if let Some(section) = ini.sections.get("Init") {
        let mut names: Vec<&String> = section.keys().collect();
        names.sort();
        for opt in names {
            let value = ini.get("Init", opt, &Vars::new())?.unwrap_or_default();
            if !opt.starts_with("known/") {
                init.insert(format!("known/{opt}"), value.clone());
            }
            init.entry(opt.clone()).or_insert(value);
        }
    }
    combined.extend(init);
    let mut ignore: HashSet<String> =
        combined.keys().filter_map(|k| k.split_once('?').map(|(base, _)| base.to_string())).collect();
    ignore.extend(keep.iter().map(|t| t.to_string()));
    substitute_tags(&combined, &ignore, |tag| ini.get_ex("Definition", tag, vars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ini::parse;
    use std::path::Path;

    fn ini(text: &str) -> Ini {
        let mut ini = Ini::default();
        let parsed = parse(text, Path::new("t.conf")).unwrap();
        ini.defaults = parsed.defaults;
        for (name, opts) in parsed.sections {
            ini.sections.insert(name, opts);
        }
        ini
    }

    #[test]
    fn python_interpolation() {
        let i =
            ini("[DEFAULT]\nd = D\n[s]\na = %(b)s-%(d)s\nb = B%%\nn = %(__name__)s\nx = %(other/y)s\n[other]\ny = Y\n");
        let v = Vars::new();
        assert_eq!(i.get("s", "a", &v).unwrap().unwrap(), "B%-D");
        assert_eq!(i.get("s", "n", &v).unwrap().unwrap(), "s");
        assert_eq!(i.get("s", "x", &v).unwrap().unwrap(), "Y");
        assert_eq!(i.get("s", "missing", &v).unwrap(), None);
    }

    #[test]
    fn vars_override_and_feed_interpolation() {
        let i = ini("[s]\nmode = normal\nre = x-%(mode)s\n");
        let vars: Vars = [("mode".to_string(), "aggressive".to_string())].into();
        assert_eq!(i.get("s", "re", &vars).unwrap().unwrap(), "x-aggressive");
        assert_eq!(i.get("s", "mode", &vars).unwrap().unwrap(), "aggressive");
    }

    #[test]
    fn errors_name_the_option_and_the_missing_reference() {
        let i = ini("[s]\na = %(nope)s\nb = 50%\n");
        let e = i.get("s", "a", &Vars::new()).unwrap_err().to_string();
        assert!(e.contains("t.conf:2") && e.contains("[s] a") && e.contains("%(nope)s"), "{e}");
        let e = i.get("s", "b", &Vars::new()).unwrap_err().to_string();
        assert!(e.contains("%%"), "{e}");
        let e = ini("[s]\na = %(a)s\n").get("s", "a", &Vars::new()).unwrap_err().to_string();
        assert!(e.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn nested_tags_resolve_through_the_extra_lookup() {
        let tags: BTreeMap<String, String> = [
            ("failregex".to_string(), "^a <HOST>\n<mdre-<mode>>".to_string()),
            ("mode".to_string(), "ddos".to_string()),
        ]
        .into();
        let out = substitute_tags(&tags, &HashSet::new(), |name| {
            Ok(match name {
                "mdre-ddos" => Some("^b <HOST> <extra>".to_string()),
                "extra" => Some("x".to_string()),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(out["failregex"], "^a <HOST>\n^b <HOST> x");
    }

    #[test]
    fn nested_expansion_is_bounded_and_names_the_key() {
        let big = "x".repeat(200_000);
        let text = format!("[Definition]\na = {big}\nb = %(a)s%(a)s%(a)s\nc = %(b)s%(b)s%(b)s\nd = %(c)s%(c)s%(c)s\n");
        let ini = ini(&text);
        assert_eq!(ini.get("Definition", "b", &Vars::new()).unwrap().unwrap().len(), 600_000);
        let err = ini.get("Definition", "d", &Vars::new()).unwrap_err().to_string();
        assert!(err.contains("more than 1024 KiB") && err.contains("d"), "{err}");
    }

    #[test]
    fn tag_substitution_is_bounded() {
        let mut tags = BTreeMap::new();
        tags.insert("a".to_string(), "<b><b><b><b>".to_string());
        tags.insert("b".to_string(), "<c><c><c><c>".to_string());
        tags.insert("c".to_string(), "<d><d><d><d>".to_string());
        tags.insert("d".to_string(), "y".repeat(100_000));
        let err = substitute_tags(&tags, &HashSet::new(), |_| Ok(None)).unwrap_err().to_string();
        assert!(err.contains("more than 1024 KiB"), "{err}");
    }

    #[test]
    fn self_reference_is_an_error() {
        let tags: BTreeMap<String, String> = [("a".to_string(), "<a>".to_string())].into();
        assert!(substitute_tags(&tags, &HashSet::new(), |_| Ok(None)).is_err());
    }
}
