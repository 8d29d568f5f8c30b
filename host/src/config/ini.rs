//! fail2ban's INI dialect: Python configparser rules as fail2ban configures
//! them, plus `[INCLUDES] before/after`, `NAME.local` beside every file,
//! conditional sections (`[Init?family=inet6]`) and `known/` values.
//!
//! Parsing rules (Python's, which fail2ban configs are written against):
//! option names are lower-cased; the first `=` or `:` separates name and
//! value; a line indented deeper than its option continues the value; full
//! lines starting with `#` or `;` are comments anywhere, also inside values;
//! ` ;` starts an inline comment; blank lines inside a value are kept.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// Where a value was written, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the option's first line.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One option's raw (uninterpolated) value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    /// The text, continuation lines joined by `\n`.
    pub text: String,
    /// Where it was written.
    pub origin: Origin,
}

/// Options of one section, in no particular order.
pub type Options = HashMap<String, RawValue>;

/// One parsed file, before includes are resolved.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    /// `[DEFAULT]` options.
    pub defaults: Options,
    /// Other sections in file order.
    pub sections: Vec<(String, Options)>,
}

impl ParsedFile {
    fn section(&self, name: &str) -> Option<&Options> {
        self.sections.iter().find(|(n, _)| n == name).map(|(_, o)| o)
    }
}

/// Strip an inline `;` comment: Python requires whitespace before it.
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Parse one file's text.
pub fn parse(text: &str, file: &Path) -> Result<ParsedFile, ConfigError> {
    let mut parsed = ParsedFile::default();
    // (section index or None for DEFAULT), current option, its indent.
    let mut section: Option<Option<usize>> = None;
    let mut current: Option<(String, usize)> = None;
    let err = |line: usize, message: String| ConfigError::Parse { file: file.to_path_buf(), line, message };

    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let raw_line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let trimmed = raw_line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let value = strip_inline_comment(raw_line);
        let indent = value.len() - value.trim_start().len();
        let value_trimmed = value.trim();
        if value_trimmed.is_empty() {
            // A blank line inside a multi-line value is kept (Python's
            // empty_lines_in_values); trailing ones are trimmed at the end.
            if let (Some(sec), Some((name, _))) = (section, &current) {
                let opts = match sec {
                    None => &mut parsed.defaults,
                    Some(i) => &mut parsed.sections[i].1,
                };
                if let Some(v) = opts.get_mut(name) {
                    v.text.push('\n');
                }
            }
            continue;
        }
        if let (Some(sec), Some((name, option_indent))) = (section, &current)
            && indent > *option_indent
        {
            let opts = match sec {
                None => &mut parsed.defaults,
                Some(i) => &mut parsed.sections[i].1,
            };
            if let Some(v) = opts.get_mut(name) {
                v.text.push('\n');
                v.text.push_str(value_trimmed);
            }
            continue;
        }
        if value_trimmed.starts_with('[') {
            let Some(end) = value_trimmed.rfind(']') else {
                return Err(err(number, format!("section header {value_trimmed:?} has no closing `]`")));
            };
            let name = value_trimmed[1..end].to_string();
            if name.is_empty() {
                return Err(err(number, "empty section name `[]`".into()));
            }
            current = None;
            if name == "DEFAULT" {
                section = Some(None);
            } else {
                let existing = parsed.sections.iter().position(|(n, _)| *n == name);
                let i = existing.unwrap_or_else(|| {
                    parsed.sections.push((name, Options::new()));
                    parsed.sections.len() - 1
                });
                section = Some(Some(i));
            }
            continue;
        }
        let Some(sec) = section else {
            return Err(err(number, format!("{value_trimmed:?} comes before any [section] header")));
        };
        let Some(split) = value.find(['=', ':']) else {
            return Err(err(number, format!("expected `name = value`, found {value_trimmed:?}")));
        };
        let name = value[..split].trim().to_lowercase();
        if name.is_empty() {
            return Err(err(number, format!("option without a name: {value_trimmed:?}")));
        }
        let text = value[split + 1..].trim().to_string();
        let opts = match sec {
            None => &mut parsed.defaults,
            Some(i) => &mut parsed.sections[i].1,
        };
        opts.insert(name.clone(), RawValue { text, origin: Origin { file: file.to_path_buf(), line: number } });
        current = Some((name, indent));
    }
    // Python strips trailing whitespace (and kept blank lines) of each value.
    for opts in std::iter::once(&mut parsed.defaults).chain(parsed.sections.iter_mut().map(|(_, o)| o)) {
        for v in opts.values_mut() {
            let trimmed_len = v.text.trim_end().len();
            v.text.truncate(trimmed_len);
        }
    }
    Ok(parsed)
}

/// Read and parse one file.
pub fn parse_file(path: &Path) -> Result<ParsedFile, ConfigError> {
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::Read { file: path.to_path_buf(), message: e.to_string() })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Read {
        file: path.to_path_buf(),
        message: "not valid UTF-8; save it as UTF-8".into(),
    })?;
    parse(&text, path)
}

/// The sorted `*.EXT` files of `dir` (none if it does not exist).
fn sorted_glob(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext) && p.is_file())
        .collect();
    files.sort();
    files
}

/// [`layered_files`] of `base`, or an error naming what was looked for
/// when there are none.
pub fn require_layered_files(kind: &'static str, name: &str, base: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let files = layered_files(base);
    if files.is_empty() {
        return Err(ConfigError::NotFound {
            kind,
            name: name.to_string(),
            looked: format!("{0}.conf and {0}.local", base.display()),
        });
    }
    Ok(files)
}

/// The files fail2ban reads for a configuration base name such as
/// `DIR/jail`: `jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local`,
/// those that exist.
pub fn layered_files(base: &Path) -> Vec<PathBuf> {
    let with_ext = |ext: &str| {
        let mut s = base.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let dir = with_ext(".d");
    let mut files = vec![with_ext(".conf")];
    files.extend(sorted_glob(&dir, "conf"));
    files.push(with_ext(".local"));
    files.extend(sorted_glob(&dir, "local"));
    files.retain(|f| f.is_file());
    files
}

/// A merged configuration: fail2ban's view after reading several files in
/// order, each with its includes.
#[derive(Debug, Clone, Default)]
pub struct Ini {
    /// `[DEFAULT]`, merged.
    pub defaults: Options,
    /// Sections by name, merged; conditional sections are folded into their
    /// base section with keys `name?cond`.
    pub sections: BTreeMap<String, Options>,
    /// For each section, the values that later files overrode (`known/`).
    pub known: HashMap<String, Options>,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
}

impl Ini {
    /// Read `files` in order, each preceded by its `before` includes and
    /// followed by its `after` includes (recursively), and each include
    /// followed by its `.local` when one exists.
    pub fn read(files: &[PathBuf]) -> Result<Ini, ConfigError> {
        let mut ini = Ini::default();
        let mut cache: HashMap<PathBuf, ParsedFile> = HashMap::new();
        let mut order = Vec::new();
        for file in files {
            expand_includes(file, files, &mut Vec::new(), &mut cache, &mut order)?;
        }
        for file in order {
            let parsed = cache.get(&file).cloned().unwrap_or_default();
            ini.merge(parsed);
            ini.files.push(file);
        }
        Ok(ini)
    }

    /// Read one explicitly named file (and its `.local`), with includes:
    /// how `fail2ban-regex` reads a filter given by path.
    pub fn read_explicit(file: &Path) -> Result<Ini, ConfigError> {
        if !file.is_file() {
            return Err(ConfigError::Read { file: file.to_path_buf(), message: "no such file".into() });
        }
        Ini::read(&[file.to_path_buf()])
    }

    /// One file's parsed text on its own, without includes (tests and
    /// the fuzz targets build configurations from text this way).
    pub fn from_parsed(parsed: ParsedFile) -> Ini {
        let mut ini = Ini::default();
        ini.merge(parsed);
        ini
    }

    fn merge(&mut self, parsed: ParsedFile) {
        self.defaults.extend(parsed.defaults);
        for (name, options) in parsed.sections {
            let (base, options) = match name.split_once('?') {
                Some((base, cond)) if !base.is_empty() && base.chars().all(|c| c.is_alphanumeric() || c == '_') => (
                    base.to_string(),
                    options.into_iter().map(|(k, v)| (format!("{k}?{cond}"), v)).collect::<Options>(),
                ),
                _ => (name, options),
            };
            let section = self.sections.entry(base.clone()).or_default();
            let known = self.known.entry(base).or_default();
            for (k, v) in options {
                if let Some(previous) = section.insert(k.clone(), v) {
                    known.insert(k, previous);
                }
            }
        }
    }

    /// Whether a section exists.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    /// The raw value of `option` in `section`, falling back to `[DEFAULT]`.
    pub fn raw(&self, section: &str, option: &str) -> Option<&RawValue> {
        self.sections.get(section).and_then(|s| s.get(option)).or_else(|| self.defaults.get(option))
    }
}

/// `file` with its includes, appended to `order` (each file once).
fn expand_includes(
    file: &Path,
    listed: &[PathBuf],
    stack: &mut Vec<PathBuf>,
    cache: &mut HashMap<PathBuf, ParsedFile>,
    order: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    let mut candidates = vec![file.to_path_buf()];
    let local = file.with_extension("local");
    // A `.local` named in the list itself is read in its own place.
    if file.extension().is_some_and(|e| e == "conf") && local.is_file() && !listed.contains(&local) {
        candidates.push(local);
    }
    for candidate in candidates {
        if stack.contains(&candidate) || !candidate.is_file() {
            continue;
        }
        if !cache.contains_key(&candidate) {
            let parsed = parse_file(&candidate)?;
            cache.insert(candidate.clone(), parsed);
        }
        let parsed = &cache[&candidate];
        let dir = candidate.parent().map(Path::to_path_buf).unwrap_or_default();
        let includes = |key: &str| -> Vec<PathBuf> {
            parsed
                .section("INCLUDES")
                .and_then(|s| s.get(key))
                .map(|v| v.text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| dir.join(l)).collect())
                .unwrap_or_default()
        };
        let (before, after) = (includes("before"), includes("after"));
        stack.push(candidate.clone());
        for inc in before {
            expand_includes(&inc, &[], stack, cache, order)?;
        }
        order.push(candidate.clone());
        for inc in after {
            expand_includes(&inc, &[], stack, cache, order)?;
        }
        stack.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> ParsedFile {
        parse(text, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn continuation_comments_and_blank_lines() {
        let f = p(
            "[Definition]\nfailregex = ^a\n            # a comment\n            ^b ; inline\n\n            ^c\nNext: x=y\n",
        );
        let d = f.section("Definition").unwrap();
        assert_eq!(d["failregex"].text, "^a\n^b\n\n^c");
        assert_eq!(d["next"].text, "x=y");
        assert_eq!(d["next"].origin.line, 7);
    }

    #[test]
    fn regex_semicolons_without_space_are_kept() {
        let f = p("[D]\nre = a;b\n");
        assert_eq!(f.section("D").unwrap()["re"].text, "a;b");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("key = value\n", Path::new("/x/jail.local")).unwrap_err().to_string();
        assert!(e.contains("/x/jail.local:1") && e.contains("before any [section]"), "{e}");
        let e = parse("[a]\njust words\n", Path::new("f.conf")).unwrap_err().to_string();
        assert!(e.contains("f.conf:2") && e.contains("name = value"), "{e}");
    }

    #[test]
    fn later_files_override_and_remember_known_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conf"), "[INCLUDES]\nbefore = common.conf\n[s]\nx = 1\n").unwrap();
        std::fs::write(dir.path().join("common.conf"), "[DEFAULT]\nd = 0\n[s]\nx = 0\ny = 0\n").unwrap();
        std::fs::write(dir.path().join("a.local"), "[s]\nx = 2\n[s?family=inet6]\nx = 6\n").unwrap();
        let ini = Ini::read_explicit(&dir.path().join("a.conf")).unwrap();
        let names: Vec<_> = ini.files.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["common.conf", "a.conf", "a.local"]);
        assert_eq!(ini.raw("s", "x").unwrap().text, "2");
        assert_eq!(ini.raw("s", "y").unwrap().text, "0");
        assert_eq!(ini.raw("s", "d").unwrap().text, "0");
        assert_eq!(ini.raw("s", "x?family=inet6").unwrap().text, "6");
        assert_eq!(ini.known["s"]["x"].text, "1");
    }

    #[test]
    fn layered_files_follow_fail2ban_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("jail.d")).unwrap();
        for f in ["jail.conf", "jail.local", "jail.d/b.conf", "jail.d/a.conf", "jail.d/a.local"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let names: Vec<String> =
            layered_files(&d.join("jail")).iter().map(|f| f.strip_prefix(d).unwrap().display().to_string()).collect();
        assert_eq!(names, ["jail.conf", "jail.d/a.conf", "jail.d/b.conf", "jail.local", "jail.d/a.local"]);
    }
}
