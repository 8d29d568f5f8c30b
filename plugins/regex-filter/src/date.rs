//! Finding and reading the timestamp of a log line the way fail2ban does:
//! templates built from strptime-style patterns (with fail2ban's `%Ex...`
//! extensions and word/line boundary rules), tried in an order that adapts
//! to which template matched before, and turned into unix time with the
//! year, day and zone defaults of fail2ban's strptime.

use std::cell::OnceCell;

use fancy_regex::Regex;

use crate::backtrack::{self, Outcome, Program, same_bytes};
use crate::dialect::translate;
use crate::tz::{TzRule, civil_from_days, days_from_civil, days_in_month};

/// What a template is anchored to, as fail2ban flags it.
const LINE_BEGIN: u8 = 8;
const LINE_END: u8 = 4;
const WORD_BEGIN: u8 = 2;
const WORD_END: u8 = 1;

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Alternation of names, longest first (stable), as Python's strptime builds it.
fn names_group(group: &str, names: &[String]) -> String {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.len()));
    format!("(?P<{group}>{})", sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("|"))
}

/// Zone abbreviation: one capital, or three to five.
const ZONE_ABBR: &str = "[A-Z](?:[A-Z]{2,4})?";

/// The regex of one strptime directive (after `%`), or `None` if unknown.
fn directive(name: &str, year_prefix: &str) -> Option<String> {
    let abbr = |v: &[&str]| v.iter().map(|s| s[..3].to_string()).collect::<Vec<_>>();
    let full = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Some(match name {
        "a" => names_group("a", &abbr(&WEEKDAYS)),
        "A" => names_group("A", &full(&WEEKDAYS)),
        "b" => names_group("b", &abbr(&MONTHS)),
        "B" => names_group("B", &full(&MONTHS)),
        "d" => r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])".into(),
        "f" => r"(?P<f>[0-9]{1,6})".into(),
        "H" => r"(?P<H>[0-1]?\d|2[0-3])".into(),
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])".into(),
        "G" => r"(?P<G>\d\d\d\d)".into(),
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])".into(),
        "m" => r"(?P<m>0?[1-9]|1[0-2])".into(),
        "M" => r"(?P<M>[0-5]?\d)".into(),
        "p" => r"(?P<p>am|pm)".into(),
        "S" => r"(?P<S>[0-5]?\d|6[0-1])".into(),
        "U" => r"(?P<U>5[0-3]|[0-4]\d|\d)".into(),
        "W" => r"(?P<W>5[0-3]|[0-4]\d|\d)".into(),
        "V" => r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)".into(),
        "w" => r"(?P<w>[0-6])".into(),
        "u" => r"(?P<u>[1-7])".into(),
        "y" => r"(?P<y>\d\d)".into(),
        "Y" => r"(?P<Y>\d{4})".into(),
        "z" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)".into(),
        "Z" => r"(?P<Z>Z|[A-Z]{3,5})".into(),
        "k" => r" ?(?P<H>[0-2]?\d)".into(),
        "l" => r" ?(?P<I>1?\d)".into(),
        "%" => "%".into(),
        "ExZ" => format!("(?P<Z>{ZONE_ABBR})"),
        "Exz" => format!(r"(?P<z>(?:{ZONE_ABBR})?[+-][01]\d(?::?\d{{2}})?|{ZONE_ABBR})"),
        "Exd" => r"(?P<d>[1-2]\d|0[1-9]|3[0-1])".into(),
        "Exm" => r"(?P<m>0[1-9]|1[0-2])".into(),
        "ExH" => r"(?P<H>[0-1]\d|2[0-3])".into(),
        "Exk" => r" ?(?P<H>[0-1]?\d|2[0-3])".into(),
        "Exl" => r" ?(?P<I>1[0-2]|\d)".into(),
        "ExM" => r"(?P<M>[0-5]\d)".into(),
        "ExS" => r"(?P<S>[0-5]\d|6[0-1])".into(),
        "ExY" => format!(r"(?P<Y>{year_prefix}\d)"),
        "Exy" => r"(?P<y>\d{2})".into(),
        _ => return None,
    })
}

/// `%ExY` accepts years of the recent past and near future: the centuries
/// (first three digits) of last year, three years ahead, and every third
/// year since 2000.
pub fn year_prefix(current_year: i64) -> String {
    let mut prefixes: Vec<String> = vec![(current_year - 1).to_string(), (current_year + 3).to_string()];
    let mut y = 2000;
    while y <= current_year {
        prefixes.push(y.to_string());
        y += 3;
    }
    let mut cents: Vec<String> = prefixes.iter().map(|y| y[..3].to_string()).collect();
    cents.sort();
    cents.dedup();
    format!("(?:{})", cents.join("|"))
}

/// Replace `%X` directives in a date pattern. Error on an unknown one.
fn expand_directives(pattern: &str, year_prefix: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let name = if after.starts_with("Ex") && after.len() >= 3 && directive(&after[..3], year_prefix).is_some() {
            &after[..3]
        } else {
            after.get(..1).unwrap_or("")
        };
        let Some(re) = directive(name, year_prefix) else {
            return Err(format!("unknown directive %{name} (write %% for a literal percent sign)"));
        };
        out.push_str(&re);
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `regex` has a capturing group: `(` not escaped and not `(?`.
fn has_capture_group(regex: &str) -> bool {
    let b = regex.as_bytes();
    (0..b.len()).any(|i| b[i] == b'(' && b.get(i + 1) != Some(&b'?') && (i == 0 || b[i - 1] != b'\\'))
}

/// Strip a leading `(?flags)` group (re-added after the boundary rules).
fn split_global_flags(regex: &str) -> (String, String) {
    if let Some(start) = regex.find("(?") {
        let rest = &regex[start + 2..];
        let letters: String = rest.chars().take_while(|c| c.is_ascii_lowercase()).collect();
        if !letters.is_empty()
            && rest[letters.len()..].starts_with(')')
            && (start == 0 || &regex[start - 1..start] != "\\")
        {
            let flags = format!("(?{letters})");
            let mut without = regex.to_string();
            without.replace_range(start..start + flags.len(), "");
            return (flags, without);
        }
    }
    (String::new(), regex.to_string())
}

fn leading_parens_and_flags(regex: &str) -> &str {
    let mut r = regex.trim_start_matches('(');
    if let Some(rest) = r.strip_prefix("(?") {
        let letters = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').count();
        if letters > 0 && rest[letters..].starts_with(')') {
            r = &rest[letters + 1..];
        }
    }
    r
}

/// Begins at a line start or with `**`: no word boundary is added.
fn no_word_bound_begin(regex: &str) -> bool {
    let r = leading_parens_and_flags(regex);
    r.starts_with('^') || r.trim_start_matches('(').starts_with("**") || r.starts_with("(?:^") || r.starts_with("(^")
}

/// Ends at a line end, `\b`, `\s` or `**`: no word boundary is added.
fn no_word_bound_end(regex: &str) -> bool {
    let escaped_before = |s: &str, n: usize| s.len() > n && s.as_bytes()[s.len() - n - 1] == b'\\';
    if (regex.ends_with('$') && !escaped_before(regex, 1)) || (regex.ends_with("$)") && !escaped_before(regex, 2)) {
        return true;
    }
    if (regex.ends_with("\\b") || regex.ends_with("\\s")) && !escaped_before(regex, 2) {
        return true;
    }
    regex.trim_end_matches(')').ends_with("**")
}

fn anchored_at_line_begin(regex: &str) -> bool {
    let mut r = regex;
    if let Some(rest) = r.strip_prefix("(?") {
        let letters = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').count();
        if letters > 0 && rest[letters..].starts_with(')') {
            r = &rest[letters + 1..];
        }
    }
    r.starts_with('^')
        || ((r.starts_with("(?:^") || r.starts_with("(^"))
            && !r.trim_start_matches("(?:^").trim_start_matches("(^").starts_with('|'))
}

fn anchored_at_line_end(regex: &str) -> bool {
    let b = regex.as_bytes();
    let n = b.len();
    let check = |dollar: usize| dollar == 0 || !matches!(b[dollar - 1], b'\\' | b'|');
    (regex.ends_with('$') && check(n - 1)) || (regex.ends_with("$)") && check(n - 2))
}

/// How a template reads the date it matched.
#[derive(Debug, Clone, PartialEq)]
enum Reader {
    Strptime,
    Epoch { long: bool, group: usize },
    Tai64n,
}

/// One date template.
pub struct Template {
    pub name: String,
    /// Unique in its detector (templates move as they are reordered).
    id: usize,
    /// The template's regex in fancy-regex's syntax.
    translated: String,
    /// Built on first use: of the default set's templates, a log needs one
    /// or two.
    engines: OnceCell<Engines>,
    flags: u8,
    weight: f64,
    reader: Reader,
    hits: u64,
    last_used: f64,
    distance: usize,
}

/// What runs a template: the backtracker on ASCII lines, fancy-regex on
/// the others (built when the first one comes).
struct Engines {
    program: Option<Program>,
    fancy: OnceCell<Result<Regex, String>>,
    /// The groups `strptime` reads: (group index, field), by index.
    fields: Vec<(usize, usize)>,
}

/// The strptime fields a template's groups can hold, by their directive
/// letter (the group's name); `Fields` is indexed by position here.
const FIELD_NAMES: [&str; 14] = ["Y", "y", "m", "B", "b", "d", "H", "I", "p", "M", "S", "z", "Z", "j"];

/// The text of each strptime field in a date (see `FIELD_NAMES`).
type Fields<'a> = [Option<&'a str>; FIELD_NAMES.len()];

fn field(name: &str) -> usize {
    FIELD_NAMES.iter().position(|n| *n == name).unwrap_or(usize::MAX)
}

/// Indices in `Fields`, named as the directives (as in `FIELD_NAMES`).
#[allow(non_upper_case_globals)]
mod at {
    pub const Y: usize = 0;
    pub const y: usize = 1;
    pub const m: usize = 2;
    pub const B: usize = 3;
    pub const b: usize = 4;
    pub const d: usize = 5;
    pub const H: usize = 6;
    pub const I: usize = 7;
    pub const p: usize = 8;
    pub const M: usize = 9;
    pub const S: usize = 10;
    pub const z: usize = 11;
    pub const Z: usize = 12;
    pub const j: usize = 13;
}

/// The last date read: template name, date text, host time bits, result.
type ReadMemo = (usize, String, u64, Option<f64>);

impl Template {
    fn engines(&self) -> &Engines {
        self.engines.get_or_init(|| {
            let fields = match fancy_regex::Expr::parse_tree(&self.translated) {
                Ok(tree) => {
                    let mut fields: Vec<(usize, usize)> = tree
                        .named_groups
                        .iter()
                        .flat_map(|(n, idx)| idx.iter().map(move |i| (*i, field(n))))
                        .filter(|(_, f)| *f < FIELD_NAMES.len())
                        .collect();
                    fields.sort();
                    fields
                }
                Err(_) => Vec::new(),
            };
            Engines { program: Program::new(&self.translated).ok(), fancy: OnceCell::new(), fields }
        })
    }

    /// Build its engines now and report a regex they cannot build.
    fn check(&self) -> Result<(), String> {
        let engines = self.engines();
        if engines.program.is_none() {
            self.fancy()?;
        }
        Ok(())
    }

    fn fancy(&self) -> Result<&Regex, String> {
        self.engines()
            .fancy
            .get_or_init(|| Regex::new(&self.translated).map_err(|e| format!("date pattern {:?}: {e}", self.name)))
            .as_ref()
            .map_err(String::clone)
    }

    /// Search `hay` from `from`; on a match, the span of every group
    /// (group 0 the whole match) in `spans`.
    /// Also returns how much of `hay` the answer depends on (see
    /// `Program::search_reach`) when `want_reach` and it is known.
    fn captures(
        &self,
        hay: &str,
        ascii: bool,
        from: usize,
        want_reach: bool,
        spans: &mut Vec<Option<(usize, usize)>>,
        scratch: &mut Scratch,
    ) -> (bool, Option<usize>) {
        spans.clear();
        let engines = self.engines();
        if ascii && let Some(program) = &engines.program {
            let (outcome, reach) = if want_reach {
                let (outcome, reach) =
                    program.search_reach(hay.as_bytes(), from, &mut scratch.slots, &mut scratch.backtrack);
                (outcome, Some(reach))
            } else {
                (program.search(hay.as_bytes(), from, &mut scratch.slots, &mut scratch.backtrack), None)
            };
            match outcome {
                Outcome::Match => {
                    let slots = &scratch.slots;
                    spans.extend((0..program.group_count()).map(|g| {
                        let (s, e) = (slots[2 * g], slots[2 * g + 1]);
                        (s != backtrack::NONE && e != backtrack::NONE).then_some((s, e))
                    }));
                    return (true, reach);
                }
                Outcome::NoMatch => return (false, reach),
                Outcome::GaveUp => {}
            }
        }
        let Ok(re) = self.fancy() else { return (false, None) };
        match re.captures_from_pos(hay, from) {
            Ok(Some(caps)) => {
                spans.extend((0..caps.len()).map(|g| caps.get(g).map(|m| (m.start(), m.end()))));
                (true, None)
            }
            _ => (false, None),
        }
    }
}

/// Reusable memory for template searches.
#[derive(Default)]
struct Scratch {
    slots: Vec<usize>,
    backtrack: backtrack::Scratch,
    spans: Vec<Option<(usize, usize)>>,
}

/// How the begin of a template is bounded.
#[derive(Clone, Copy, PartialEq)]
enum Begin {
    None,
    Word,
    Line,
}

fn build(name: String, regex: &str, begin: Begin, end: bool, reader: Reader) -> Result<Template, String> {
    let regex = regex.trim();
    let (flags_group, mut regex) = split_global_flags(regex);
    let bound_begin = begin != Begin::None && !no_word_bound_begin(&regex);
    let bound_end = end && !no_word_bound_end(&regex);
    if !has_capture_group(&regex) {
        // Group the body (between a leading ^ and a trailing $).
        let (head, body) = match regex.strip_prefix('^') {
            Some(b) => ("^", b.to_string()),
            None => ("", regex.clone()),
        };
        let (body, tail) = match body.strip_suffix('$') {
            Some(b) => (b.to_string(), "$"),
            None => (body, ""),
        };
        regex = format!("{head}({body}){tail}");
    }
    let mut flags = 0;
    let mut name = name;
    if bound_begin {
        if begin == Begin::Word {
            flags |= WORD_BEGIN;
            regex = format!(r"(?=^|\b|\W){regex}");
        } else {
            flags |= LINE_BEGIN;
            regex = format!(r"^(?:\W{{0,2}})?{regex}");
            if !name.starts_with("{^LN-BEG}") {
                name = format!("{{^LN-BEG}}{name}");
            }
        }
    }
    if bound_end {
        flags |= WORD_END;
        regex.push_str(r"(?=\b|\W|$)");
    }
    if flags & LINE_BEGIN == 0 && anchored_at_line_begin(&regex) {
        flags |= LINE_BEGIN;
    }
    if flags & LINE_END == 0 && anchored_at_line_end(&regex) {
        flags |= LINE_END;
    }
    let regex = regex.replace("**", "");
    let full = format!("{flags_group}{regex}");
    let translated = translate(&full, false);
    fancy_regex::Expr::parse_tree(&translated).map_err(|e| format!("date pattern {name:?}: {e}"))?;
    Ok(Template {
        name,
        id: 0,
        translated,
        engines: OnceCell::new(),
        flags,
        weight: 1.0,
        reader,
        hits: 0,
        last_used: 0.0,
        distance: usize::MAX,
    })
}

const EPOCH: &str = r"\d{10,11}\b(?:\.\d{3,6})?";
const LONG_EPOCH: &str = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?";

/// Build the template for one pattern as written in `datepattern` (or in
/// the default set).
pub fn template(pattern: &str, year_prefix: &str) -> Result<Template, String> {
    let upper = pattern.to_ascii_uppercase();
    let line_begin_only = |p: &str| p.starts_with("{^LN-BEG}") || p.starts_with('^');
    if !pattern.contains('%') {
        let bare = upper.trim_start_matches("{^LN-BEG}").trim_start_matches('^');
        if bare == "EPOCH" || bare == "LEPOCH" {
            let long = bare == "LEPOCH";
            let re = if long { LONG_EPOCH } else { EPOCH };
            let name = if long { "LongEpoch" } else { "Epoch" };
            return if line_begin_only(&upper) {
                build(
                    format!("{{^LN-BEG}}{name}"),
                    &format!(r"((?P<square>(?<=^\[))?{re})(?(square)(?=\]))"),
                    Begin::Line,
                    true,
                    Reader::Epoch { long, group: 1 },
                )
            } else {
                build(
                    name.to_string(),
                    &format!(
                        r"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))(?:{re}))(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))"
                    ),
                    Begin::None,
                    true,
                    Reader::Epoch { long, group: 1 },
                )
            };
        }
        if bare == "TAI64N" {
            let begin = if line_begin_only(&upper) { Begin::Line } else { Begin::None };
            return build("TAI64N".into(), "@[0-9a-f]{24}", begin, true, Reader::Tai64n);
        }
    }
    // A pattern embedding {EPOCH} / {LEPOCH}.
    for (tag, long) in [("{LEPOCH}", true), ("{EPOCH}", false)] {
        if let Some(at) = upper.find(tag) {
            let re = if long { LONG_EPOCH } else { EPOCH };
            let regex = format!("({}({re}){})", &pattern[..at], &pattern[at + tag.len()..]);
            return build(pattern.to_string(), &regex, Begin::Word, true, Reader::Epoch { long, group: 2 });
        }
    }
    let (mut begin, mut end, mut body) = (Begin::Word, true, pattern);
    if let Some(rest) = body.strip_prefix("{UNB}") {
        begin = Begin::None;
        end = false;
        body = rest;
    }
    if begin == Begin::Word
        && let Some(rest) = body.strip_prefix("{^LN-BEG}")
    {
        begin = Begin::Line;
        body = rest;
    }
    let mut regex = expand_directives(body, year_prefix).map_err(|e| format!("datepattern {pattern:?}: {e}"))?;
    let alpha = ["%a", "%A", "%b", "%B", "%p", "%c"]
        .iter()
        .any(|d| body.match_indices(d).any(|(i, _)| i == 0 || &body[i - 1..i] != "%"));
    if alpha {
        regex = format!("(?iu){regex}");
    }
    build(pattern.to_string(), &regex, begin, end, Reader::Strptime)
}

/// The default template set, each pattern in fail2ban's order.
const DEFAULT_PATTERNS: [&str; 17] = [
    // 2005-01-23T21:59:59.981746, 2005/01/23 21:59:59, 2006.12.21 06:43:20
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    // Sun Jan 23 21:59:59.011 2005
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    // Sun Jan 23 2005 21:59:59.011
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    // 23/01/2005 21:59:59, 23/01/05 21:59:59, 17-07-2008 17:23:25
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    // 31/Oct/2006:09:22:55 -0000, 26-Jul-2007 15:20:52.252 +0200
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    // 05/20/2008:01:57:39
    r"%m/%d/%ExY:%H:%M:%S",
    // 01-27-2012 16:22:44.252
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    // a time alone at the start of a line
    r"{^LN-BEG}%H:%M:%S",
    // <09/16/08@05:03:30>
    r"^<%m/%d/%Exy@%H:%M:%S>",
    // 130322 11:46:11
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    // Jan 23, 2005 9:59:59 PM
    r"%b %d, %ExY %I:%M:%S %p",
    // Apr-27-13 02:33:06
    r"^%b-%d-%Exy %k:%M:%S",
    // 20050123T215959, 20050123 215959
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    // PDT Apr 16 21:05:29
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    // +00:00 Jan 23 21:59:59.011 2005
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
];

/// The default set: a line-anchored copy (weighted 100) of every template
/// that is not anchored already, then the templates themselves.
fn default_templates(year_prefix: &str) -> Result<Vec<Template>, String> {
    let mut anchored = Vec::new();
    let mut plain = Vec::new();
    for pattern in DEFAULT_PATTERNS {
        let t = template(pattern, year_prefix)?;
        if !t.name.starts_with("{^LN-BEG}") && !t.name.starts_with('^') {
            let mut copy = template(&format!("{{^LN-BEG}}{pattern}"), year_prefix)?;
            if copy.name != t.name {
                copy.weight = 100.0;
                anchored.push(copy);
            }
        }
        plain.push(t);
    }
    anchored.extend(plain);
    Ok(anchored)
}

/// Strip the boundaries a template adds, to embed its pattern in `{DATE}`.
fn unbound(pattern: &str) -> &str {
    let p = pattern.strip_prefix("{UNB}").unwrap_or(pattern);
    p.strip_prefix("{^LN-BEG}").unwrap_or(p)
}

/// A template's match in a line.
#[derive(Clone, Debug)]
pub struct DateMatch {
    /// The whole match.
    pub start: usize,
    pub end: usize,
    /// The date text (the template's first group).
    pub ds: usize,
    pub de: usize,
    /// Where the search ran (`line[..to]`, from `from`), to find the
    /// groups again when the date must be read.
    from: usize,
    to: usize,
    /// Found by `search_line`, whose memo holds the spans of its groups.
    remembered: bool,
}

impl DateMatch {
    /// The match whose group spans are `spans` (0: whole, 1: the date).
    fn of(spans: &[Option<(usize, usize)>], from: usize, to: usize) -> Option<DateMatch> {
        let whole = spans.first().copied().flatten()?;
        let date = spans.get(1).copied().flatten().unwrap_or(whole);
        Some(DateMatch { start: whole.0, end: whole.1, ds: date.0, de: date.1, from, to, remembered: false })
    }
}

/// What the last whole-line search of a template looked at, and found.
struct SearchMemo {
    template: usize,
    /// The line up to `reach` (the whole line when the search looked at
    /// where it ends).
    text: String,
    reach: usize,
    len: usize,
    /// What it found: the span of every group (empty: no match).
    spans: Vec<Option<(usize, usize)>>,
}

impl SearchMemo {
    /// Whether a search of `line` must give the same answer: it starts
    /// with everything the remembered search looked at (and, if that
    /// search looked at the end of its line, ends there too). Only ASCII
    /// lines: the remembered answer is the backtracker's.
    fn applies_to(&self, line: &str, ascii: bool) -> bool {
        ascii
            && if self.reach <= self.len {
                line.len() >= self.reach && same_bytes(&line.as_bytes()[..self.reach], self.text.as_bytes())
            } else {
                line.len() == self.len && same_bytes(line.as_bytes(), self.text.as_bytes())
            }
    }
}

/// The date detector of one filter.
pub struct Detector {
    templates: Vec<Template>,
    last_pos: (usize, Option<char>, Option<char>),
    last_end: (usize, Option<char>, Option<char>),
    last_index: usize,
    first_unused: usize,
    /// Zone for timestamps without one (`logtimezone`), minutes east.
    pub default_offset: Option<i64>,
    /// The last date read: template, text and host time, and the result.
    read_memo: Option<ReadMemo>,
    search_memo: Option<SearchMemo>,
    /// The last answer of `date_of`, when a line like the last one gets it
    /// again (see there).
    repeat: Option<Repeat>,
    scratch: Scratch,
}

/// What `date_of` answered for the last line.
struct Repeat {
    index: usize,
    now: u64,
    found: DateMatch,
    time: Option<f64>,
}

impl Detector {
    /// A detector for a filter's `datepattern` (None: the default set).
    pub fn new(datepattern: Option<&str>, year_prefix: &str) -> Result<Detector, String> {
        let mut templates: Vec<Template> = Vec::new();
        let mut names = std::collections::HashSet::new();
        let mut add = |t: Template, templates: &mut Vec<Template>| {
            if names.insert(t.name.clone()) {
                templates.push(t);
            }
        };
        match datepattern {
            None => {
                for t in default_templates(year_prefix)? {
                    add(t, &mut templates);
                }
            }
            Some(patterns) => {
                for pattern in patterns.split('\n').map(str::trim).filter(|p| !p.is_empty()) {
                    let upper = pattern.to_ascii_uppercase();
                    if upper == "{^LN-BEG}" || upper == "{DEFAULT}" {
                        for t in default_templates(year_prefix)? {
                            if upper == "{DEFAULT}" || t.flags & LINE_BEGIN != 0 {
                                add(t, &mut templates);
                            }
                        }
                    } else if upper.contains("{DATE}") {
                        let at = upper.find("{DATE}").unwrap_or(0);
                        for p in DEFAULT_PATTERNS {
                            let embedded = format!("{}{}{}", &pattern[..at], unbound(p), &pattern[at + 6..]);
                            // EPOCH and TAI64N keep their own readers.
                            let t = if p == "EPOCH" || p == "TAI64N" {
                                template(&format!("{}{p}{}", &pattern[..at], &pattern[at + 6..]), year_prefix)
                                    .or_else(|_| template(p, year_prefix))?
                            } else {
                                template(&embedded, year_prefix)?
                            };
                            add(t, &mut templates);
                        }
                    } else if upper == "{NONE}" {
                        add(template("{UNB}^", year_prefix)?, &mut templates);
                    } else {
                        let t = template(pattern, year_prefix)?;
                        t.check()?;
                        add(t, &mut templates);
                    }
                }
            }
        }
        for (id, t) in templates.iter_mut().enumerate() {
            t.id = id;
        }
        Ok(Detector {
            templates,
            last_pos: (1, None, None),
            last_end: (usize::MAX, None, None),
            last_index: usize::MAX,
            first_unused: 0,
            default_offset: None,
            read_memo: None,
            search_memo: None,
            repeat: None,
            scratch: Scratch::default(),
        })
    }

    fn search(t: &Template, scratch: &mut Scratch, line: &str, from: usize, to: usize) -> Option<DateMatch> {
        let to = to.min(line.len());
        let hay = &line[..to];
        let from = from.min(hay.len());
        let mut spans = std::mem::take(&mut scratch.spans);
        let (found, _) = t.captures(hay, backtrack::is_ascii(hay), from, false, &mut spans, scratch);
        let m = found.then(|| DateMatch::of(&spans, from, to)).flatten();
        scratch.spans = spans;
        m
    }

    /// `search` of a template over a whole line, answered without a search
    /// when the line starts with what the last one of the same template
    /// looked at (lines of one second share their timestamp).
    fn search_line(
        t: &Template,
        scratch: &mut Scratch,
        memo: &mut Option<SearchMemo>,
        line: &str,
        ascii: bool,
    ) -> Option<DateMatch> {
        let to = line.len();
        if let Some(memo) = memo.as_ref()
            && memo.template == t.id
            && memo.applies_to(line, ascii)
        {
            return DateMatch::of(&memo.spans, 0, to).map(|m| DateMatch { remembered: true, ..m });
        }
        let (mut text, mut spans) = match memo.take() {
            Some(m) => (m.text, m.spans),
            None => Default::default(),
        };
        let (found, reach) = t.captures(line, ascii || backtrack::is_ascii(line), 0, true, &mut spans, scratch);
        if !found {
            spans.clear();
        }
        let m = DateMatch::of(&spans, 0, to);
        if let Some(reach) = reach {
            text.clear();
            text.push_str(if reach <= line.len() { &line[..reach] } else { line });
            *memo = Some(SearchMemo { template: t.id, text, reach, len: line.len(), spans });
        }
        m.map(|m| DateMatch { remembered: reach.is_some(), ..m })
    }

    fn char_before(line: &str, at: usize) -> Option<char> {
        if at == 0 {
            // Python's line[-1:0] is empty.
            return None;
        }
        line[..at.min(line.len())].chars().next_back()
    }

    fn char_at(line: &str, at: usize) -> Option<char> {
        line.get(at..).and_then(|s| s.chars().next())
    }

    /// Find the date of `line` and read it: the match, the template's
    /// index and the time (None: a date that does not read). `now` is unix
    /// seconds (what templates without a full date complete it from).
    ///
    /// Lines of the same second mostly look the same up to past their
    /// date: when the last line's answer came from the remembered search
    /// of the template found last, and this line starts with everything
    /// that search looked at, the answer is the same, and so is the time
    /// (same date text, same `now`). Only the counters `find` keeps move.
    pub fn date_of(
        &mut self,
        line: &str,
        ascii: bool,
        now: f64,
        tz: &TzRule,
    ) -> Option<(DateMatch, usize, Option<f64>)> {
        if let Some(repeat) = &self.repeat
            && repeat.index == self.last_index
            && repeat.now == now.to_bits()
            && let Some(t) = self.templates.get(repeat.index)
            && let Some(memo) = &self.search_memo
            && memo.template == t.id
            && memo.applies_to(line, ascii)
        {
            let (i, time) = (repeat.index, repeat.time);
            let m = DateMatch { to: line.len(), ..repeat.found };
            let t = &mut self.templates[i];
            t.hits += 1;
            t.last_used = now;
            if self.first_unused == i {
                self.first_unused += 1;
            }
            self.last_pos = (m.start, Self::char_before(line, m.start), Self::char_at(line, m.start));
            self.last_end = (
                m.end,
                if m.end == 0 { line.chars().next_back() } else { Self::char_before(line, m.end) },
                Self::char_at(line, m.end),
            );
            return Some((m, i, time));
        }
        self.repeat = None;
        let (m, i) = self.find(line, ascii, now)?;
        let time = if m.ds < m.de { self.read(i, &m, line, now, tz) } else { None };
        if m.remembered && i == self.last_index {
            self.repeat = Some(Repeat { index: i, now: now.to_bits(), found: m.clone(), time });
        }
        Some((m, i, time))
    }

    /// Find the date in `line`: the match and the template's index.
    /// `ascii`: the line is ASCII (false: not known).
    pub fn find(&mut self, line: &str, ascii: bool, now: f64) -> Option<(DateMatch, usize)> {
        let n = self.templates.len();
        if n == 0 {
            return None;
        }
        let mut found: Option<(DateMatch, usize)> = None;
        let mut best_alternative: Option<(DateMatch, usize)> = None;
        let mut skip = usize::MAX;
        let i = self.last_index;
        if i < n {
            let t = &self.templates[i];
            let m = if t.flags & (LINE_BEGIN | LINE_END) != 0 {
                skip = i;
                Self::search_line(t, &mut self.scratch, &mut self.search_memo, line, ascii)
            } else {
                let (distance, end) = (self.last_pos.0, self.last_end.0);
                let begin_ok = Self::char_before(line, distance) == self.last_pos.1
                    || (Self::char_at(line, distance) == self.last_pos.2
                        && !self.last_pos.2.is_some_and(char::is_alphanumeric));
                let end_ok = Self::char_at(line, end) == self.last_end.2
                    || (Self::char_before(line, end) == self.last_end.1
                        && !self.last_end.1.is_some_and(char::is_alphanumeric));
                if begin_ok
                    && end_ok
                    && distance <= line.len()
                    && end <= line.len()
                    && line.is_char_boundary(distance)
                    && line.is_char_boundary(end)
                {
                    Self::search(t, &mut self.scratch, line, distance, end)
                } else {
                    skip = i;
                    Self::search(t, &mut self.scratch, line, 0, line.len())
                }
            };
            if let Some(m) = m {
                if n == 1
                    || t.flags & (LINE_BEGIN | LINE_END) != 0
                    || (m.start == self.last_pos.0 && m.end == self.last_end.0)
                {
                    found = Some((m, i));
                } else {
                    best_alternative = Some((m, i));
                }
            }
        }
        if found.is_none() {
            let mut idx = 0;
            while idx < n {
                if idx == skip {
                    idx += 1;
                    continue;
                }
                let t = &self.templates[idx];
                if let Some(m) = Self::search(t, &mut self.scratch, line, 0, line.len()) {
                    let s = m.start;
                    if idx + 1 >= n || t.flags & (LINE_BEGIN | LINE_END) != 0 {
                        found = Some((m, idx));
                        break;
                    }
                    if s == 0 && t.hits > 0 && self.templates[idx + 1].hits == 0 {
                        found = Some((m, idx));
                        break;
                    }
                    if s > t.distance || s > self.last_pos.0 {
                        if best_alternative.as_ref().is_none_or(|b| s < b.0.start) {
                            best_alternative = Some((m, idx));
                        }
                        idx += 1;
                        continue;
                    }
                    found = Some((m, idx));
                    break;
                }
                idx += 1;
            }
            if found.is_none() {
                found = best_alternative;
            }
        }
        let (m, mut i) = found?;
        let (s, e) = (m.start, m.end);
        let t = &mut self.templates[i];
        t.hits += 1;
        t.last_used = now;
        t.distance = s;
        if self.first_unused == i {
            self.first_unused += 1;
        }
        self.last_pos = (s, Self::char_before(line, s), Self::char_at(line, s));
        self.last_end =
            (e, if e == 0 { line.chars().next_back() } else { Self::char_before(line, e) }, Self::char_at(line, e));
        if i != 0 && i != self.last_index {
            i = self.reorder(i);
        }
        self.last_index = i;
        Some((m, i))
    }

    fn weight(t: &Template) -> f64 {
        t.hits as f64 * t.weight / (t.distance.max(1) as f64)
    }

    /// Move a template that just matched towards the front.
    fn reorder(&mut self, num: usize) -> usize {
        /// Templates unused for this long may be overtaken.
        const UNUSED_TIME: f64 = 300.0;
        let t = &self.templates[num];
        let untime = t.last_used - UNUSED_TIME;
        let weight = Self::weight(t);
        let mut pos = if self.first_unused < num { self.first_unused } else { num / 2 };
        let movable = |templates: &[Template], pos: usize| {
            weight > Self::weight(&templates[pos]) || untime > templates[pos].last_used
        };
        if !movable(&self.templates, pos) {
            if pos == num - 1 {
                return num;
            }
            pos = num - 1;
            if !movable(&self.templates, pos) {
                return num;
            }
        }
        let t = self.templates.remove(num);
        self.templates.insert(pos, t);
        while self.first_unused < self.templates.len() && self.templates[self.first_unused].hits > 0 {
            self.first_unused += 1;
        }
        pos
    }

    /// The unix time of the date the template at `index` matched in `line`.
    pub fn read(&mut self, index: usize, m: &DateMatch, line: &str, now: f64, tz: &TzRule) -> Option<f64> {
        let t = self.templates.get(index)?;
        let text = &line[m.ds..m.de];
        if let Some((id, memo_text, memo_now, time)) = &self.read_memo
            && *id == t.id
            && same_bytes(memo_text.as_bytes(), text.as_bytes())
            && *memo_now == now.to_bits()
        {
            return *time;
        }
        let time = self.read_uncached(index, m, line, now, tz);
        let id = self.templates[index].id;
        match &mut self.read_memo {
            Some((memo_id, memo_text, memo_now, memo_time)) => {
                *memo_id = id;
                memo_text.clear();
                memo_text.push_str(text);
                *memo_now = now.to_bits();
                *memo_time = time;
            }
            None => self.read_memo = Some((id, text.to_string(), now.to_bits(), time)),
        }
        time
    }

    fn read_uncached(&mut self, index: usize, m: &DateMatch, line: &str, now: f64, tz: &TzRule) -> Option<f64> {
        let t = &self.templates[index];
        match t.reader {
            Reader::Epoch { long, group } => {
                // The epoch digits: the date group, or (for {EPOCH} inside a
                // pattern) the first run of digits in it.
                let text = &line[m.ds..m.de];
                let v = if group == 1 {
                    text.trim_start_matches('[')
                } else {
                    let start = text.find(|c: char| c.is_ascii_digit())?;
                    let digits = &text[start..];
                    let end = digits.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(digits.len());
                    &digits[..end]
                };
                let mut f: f64 = v.parse().ok()?;
                if long && v.len() >= 13 {
                    f /= if v.len() >= 16 && !v.contains('.') { 1_000_000.0 } else { 1000.0 };
                }
                Some(f)
            }
            Reader::Tai64n => {
                let v = &line[m.ds..m.de];
                i64::from_str_radix(v.get(2..17)?, 16).ok().map(|s| s as f64)
            }
            Reader::Strptime => {
                // The groups: remembered by the search, or found again.
                let hay = &line[..m.to];
                let mut spans = std::mem::take(&mut self.scratch.spans);
                let found = match &self.search_memo {
                    Some(memo) if m.remembered => {
                        spans.clear();
                        spans.extend_from_slice(&memo.spans);
                        true
                    }
                    _ => t.captures(hay, backtrack::is_ascii(hay), m.from, false, &mut spans, &mut self.scratch).0,
                };
                let mut fields: Fields<'_> = Default::default();
                if found {
                    // A name given to several groups: the first that took part.
                    for &(i, f) in &t.engines().fields {
                        if fields[f].is_none() {
                            fields[f] = spans.get(i).copied().flatten().map(|(s, e)| &hay[s..e]);
                        }
                    }
                }
                let time = strptime(&fields, now, tz, self.default_offset);
                self.scratch.spans = spans;
                time
            }
        }
    }
}

/// Offsets (minutes east of UTC) of zone abbreviations.
fn zone_abbreviation(abbr: &str) -> Option<i64> {
    const TABLE: &[(f64, &[&str])] = &[
        (-12.0, &["Y"]),
        (-11.0, &["X", "NUT", "SST"]),
        (-10.0, &["W", "CKT", "HAST", "HST", "TAHT", "TKT"]),
        (-9.0, &["V", "AKST", "GAMT", "GIT", "HADT", "HNY"]),
        (-8.0, &["U", "AKDT", "CIST", "HAY", "HNP", "PST", "PT"]),
        (-7.0, &["T", "HAP", "HNR", "MST", "PDT"]),
        (-6.0, &["S", "CST", "EAST", "GALT", "HAR", "HNC", "MDT"]),
        (-5.0, &["R", "CDT", "COT", "EASST", "ECT", "EST", "ET", "HAC", "HNE", "PET"]),
        (-4.0, &["Q", "AST", "BOT", "CLT", "COST", "EDT", "FKT", "GYT", "HAE", "HNA", "PYT"]),
        (-3.0, &["P", "ADT", "ART", "BRT", "CLST", "FKST", "GFT", "HAA", "PMST", "PYST", "SRT", "UYT", "WGT"]),
        (-2.0, &["O", "BRST", "FNT", "PMDT", "UYST", "WGST"]),
        (-1.0, &["N", "AZOT", "CVT", "EGT"]),
        (0.0, &["Z", "EGST", "GMT", "UTC", "WET", "WT"]),
        (1.0, &["A", "CET", "DFT", "WAT", "WEDT", "WEST"]),
        (2.0, &["B", "CAT", "CEDT", "CEST", "EET", "SAST", "WAST"]),
        (3.0, &["C", "EAT", "EEDT", "EEST", "IDT", "MSK"]),
        (4.0, &["D", "AMT", "AZT", "GET", "GST", "KUYT", "MSD", "MUT", "RET", "SAMT", "SCT"]),
        (5.0, &["E", "AMST", "AQTT", "AZST", "HMT", "MAWT", "MVT", "PKT", "TFT", "TJT", "TMT", "UZT", "YEKT"]),
        (6.0, &["F", "ALMT", "BIOT", "BTT", "IOT", "KGT", "NOVT", "OMST", "YEKST"]),
        (7.0, &["G", "CXT", "DAVT", "HOVT", "ICT", "KRAT", "NOVST", "OMSST", "THA", "WIB"]),
        (
            8.0,
            &[
                "H", "ACT", "AWST", "BDT", "BNT", "CAST", "HKT", "IRKT", "KRAST", "MYT", "PHT", "SGT", "ULAT", "WITA",
                "WST",
            ],
        ),
        (9.0, &["I", "AWDT", "IRKST", "JST", "KST", "PWT", "TLT", "WDT", "WIT", "YAKT"]),
        (10.0, &["K", "AEST", "ChST", "PGT", "VLAT", "YAKST", "YAPT"]),
        (11.0, &["L", "AEDT", "LHDT", "MAGT", "NCT", "PONT", "SBT", "VLAST", "VUT"]),
        (12.0, &["M", "ANAST", "ANAT", "FJT", "GILT", "MAGST", "MHT", "NZST", "PETST", "PETT", "TVT", "WFT"]),
        (13.0, &["FJST", "NZDT"]),
        (11.5, &["NFT"]),
        (10.5, &["ACDT", "LHST"]),
        (9.5, &["ACST"]),
        (6.5, &["CCT", "MMT"]),
        (5.75, &["NPT"]),
        (5.5, &["SLT"]),
        (4.5, &["AFT", "IRDT"]),
        (3.5, &["IRST"]),
        (-2.5, &["HAT", "NDT"]),
        (-3.5, &["HNT", "NST", "NT"]),
        (-4.5, &["HLV", "VET"]),
        (-9.5, &["MART", "MIT"]),
    ];
    if abbr.is_empty() {
        return Some(0);
    }
    TABLE.iter().find(|(_, names)| names.contains(&abbr)).map(|(h, _)| (h * 60.0) as i64)
}

/// A zone as written in a log or in `logtimezone`: an abbreviation, an
/// offset (`+02`, `-0430`, `+05:30`), or both (`CET+0100`). Minutes east.
pub fn zone_offset(text: &str) -> Option<i64> {
    if matches!(text, "Z" | "UTC" | "GMT") {
        return Some(0);
    }
    let split = text.find(['+', '-']).unwrap_or(text.len());
    let (abbr, offset) = text.split_at(split);
    let base = zone_abbreviation(abbr)?;
    if offset.is_empty() {
        return Some(base);
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    let minutes = match digits.len() {
        1 | 2 => digits.parse::<i64>().ok()? * 60,
        4 => digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?,
        _ => return None,
    };
    Some(base + sign * minutes)
}

fn month_of(name: &str) -> Option<u32> {
    let b = name.as_bytes();
    if !name.is_ascii() {
        let lower = name.to_lowercase();
        return MONTHS.iter().position(|m| *m == lower || m[..3] == *lower).map(|i| i as u32 + 1);
    }
    if b.len() < 3 {
        return None;
    }
    // The first three letters tell the month; the rest must be its name.
    let abbr = [b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase(), b[2].to_ascii_lowercase()];
    let i = MONTHS.iter().position(|m| m.as_bytes()[..3] == abbr)?;
    (b.len() == 3 || MONTHS[i].eq_ignore_ascii_case(name)).then_some(i as u32 + 1)
}

/// Python's `int()` of a date field: surrounding whitespace allowed.
fn int_of(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    // Plain ASCII digits (what dates hold) without the general parser.
    if !b.is_empty() && b.len() <= 18 && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')));
    }
    text.trim().parse::<i64>().ok()
}

/// fail2ban's strptime: the time of the named groups of a date match.
fn strptime(fields: &Fields<'_>, now: f64, tz: &TzRule, default_offset: Option<i64>) -> Option<f64> {
    let get = |at: usize| fields[at];
    let num = |at: usize| get(at).and_then(int_of);
    let mut year = num(at::Y);
    if let Some(y) = num(at::y) {
        year = Some(if y <= 2000 { y + 2000 } else { y });
    }
    let mut month = num(at::m).map(|m| m as u32);
    if let Some(b) = get(at::B).or(get(at::b)) {
        month = Some(month_of(b)?);
    }
    let mut day = num(at::d).map(|d| d as u32);
    let mut hour = num(at::H).unwrap_or(0);
    if let Some(h) = num(at::I) {
        let pm = get(at::p).map(str::to_lowercase);
        hour = match pm.as_deref() {
            Some("pm") if h != 12 => h + 12,
            Some("pm") => h,
            _ if h == 12 => 0,
            _ => h,
        };
    }
    let minute = num(at::M).unwrap_or(0);
    let second = num(at::S).unwrap_or(0);
    let mut offset: Option<i64> = None;
    for key in [at::z, at::Z] {
        if let Some(z) = get(key) {
            offset = Some(zone_offset(z)?);
        }
    }
    // Local "now" as fail2ban's MyTime.now() sees it.
    let now_secs = now.floor() as i64;
    let now_local = now_secs + tz.offset_at(now_secs);
    let (now_y, now_m, now_d) = civil_from_days(now_local.div_euclid(86400));
    let assume_year = year.is_none();
    let year = year.unwrap_or(now_y);
    if let (None, Some(j)) = (month.or(day.map(|_| 0)), num(at::j)) {
        let (y, m, d) = civil_from_days(days_from_civil(year, 1, 1) + j - 1);
        if y == year {
            month = Some(m);
            day = Some(d);
        }
    }
    let assume_today = month.is_none() && day.is_none();
    let (month, day) = if assume_today { (now_m, now_d) } else { (month?, day?) };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 61
    {
        return None;
    }
    let naive = |y: i64| days_from_civil(y, month, day) * 86400 + hour * 3600 + minute * 60 + second.min(59);
    let mut result = naive(year);
    if offset.is_none() {
        offset = default_offset;
    }
    if let Some(o) = offset {
        result -= o * 60;
    }
    if assume_today && result > now_local {
        result -= 86400;
    }
    if assume_year && result > now_local + 86400 {
        if month == 2 && day == 29 {
            return None;
        }
        result = naive(year - 1) - offset.unwrap_or(0) * 60;
    }
    Some(match offset {
        Some(_) => result as f64,
        None => tz.local_to_utc(result) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
    const NOW: f64 = 1124013600.0; // 2005-08-14 12:00 CEST

    fn detect(d: &mut Detector, line: &str) -> Option<(String, f64)> {
        let tz = TzRule::parse(TZ).unwrap();
        let (m, i) = d.find(line, line.is_ascii(), NOW)?;
        Some((line[m.ds..m.de].to_string(), d.read(i, &m, line, NOW, &tz)?))
    }

    #[test]
    fn syslog_dates_get_this_year_or_last() {
        let mut d = Detector::new(None, &year_prefix(2026)).unwrap();
        let (text, t) = detect(&mut d, "Aug 14 11:58:59 host sshd[1]: x").unwrap();
        assert_eq!(text, "Aug 14 11:58:59");
        assert_eq!(t, NOW - 61.0);
        // Later in the year than now: last year.
        let (_, t) = detect(&mut d, "Dec 31 23:59:59 host x").unwrap();
        assert_eq!(t, 1104533999.0);
    }

    #[test]
    fn iso_with_zone_and_epoch() {
        let mut d = Detector::new(None, &year_prefix(2026)).unwrap();
        let (text, t) = detect(&mut d, "2005-01-23T21:59:59+0100 x").unwrap();
        assert_eq!(text, "2005-01-23T21:59:59+0100");
        assert_eq!(t, 1106513999.0);
        let mut d = Detector::new(None, &year_prefix(2026)).unwrap();
        let (_, t) = detect(&mut d, "1106513999.500 x").unwrap();
        assert_eq!(t, 1106513999.5);
    }

    #[test]
    fn custom_patterns() {
        let mut d = Detector::new(Some("^%Y/%m/%d %H:%M:%S"), &year_prefix(2026)).unwrap();
        let (_, t) = detect(&mut d, "2005/01/23 21:59:59 x").unwrap();
        assert_eq!(t, 1106513999.0);
        assert!(Detector::new(Some("%Q"), &year_prefix(2026)).is_err());
    }

    #[test]
    fn field_indices_follow_their_names() {
        let named = [
            ("Y", at::Y),
            ("y", at::y),
            ("m", at::m),
            ("B", at::B),
            ("b", at::b),
            ("d", at::d),
            ("H", at::H),
            ("I", at::I),
            ("p", at::p),
            ("M", at::M),
            ("S", at::S),
            ("z", at::z),
            ("Z", at::Z),
            ("j", at::j),
        ];
        assert_eq!(named.len(), FIELD_NAMES.len());
        for (name, index) in named {
            assert_eq!(field(name), index, "{name}");
        }
        assert_eq!(month_of("SEPT"), None);
        assert_eq!(month_of("Se"), None);
        assert_eq!(month_of("MAYO"), None);
        assert_eq!(int_of("07"), Some(7));
        assert_eq!(int_of(" 7"), Some(7));
        assert_eq!(int_of("-3"), Some(-3));
        assert_eq!(int_of(""), None);
        assert_eq!(int_of("1x"), None);
        assert_eq!(month_of("sEp"), Some(9));
        assert_eq!(month_of("December"), Some(12));
    }

    #[test]
    fn zones() {
        assert_eq!(zone_offset("CEST"), Some(120));
        assert_eq!(zone_offset("-0430"), Some(-270));
        assert_eq!(zone_offset("+05:30"), Some(330));
        assert_eq!(zone_offset("UTC+02"), Some(120));
        assert_eq!(zone_offset("XYZW"), None);
    }
}
