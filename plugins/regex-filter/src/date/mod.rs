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

mod detector;
mod strptime;

pub use detector::Detector;
use strptime::strptime;
pub use strptime::zone_offset;

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
        .any(|d| body.match_indices(d).any(|(i, _)| i == 0 || body.as_bytes()[i - 1] != b'%'));
    if alpha {
        regex = format!("(?iu){regex}");
    }
    build(display_name(pattern), &regex, begin, end, Reader::Strptime)
}

/// fail2ban's name of a strptime directive (`%b` is `MON`), as its
/// fail2ban-regex lists date templates; None for those it shows as written.
fn directive_name(directive: char) -> Option<&'static str> {
    Some(match directive {
        'a' => "DAY",
        'A' => "DAYNAME",
        'b' => "MON",
        'B' => "MONTH",
        'd' => "Day",
        'H' => "24hour",
        'I' => "12hour",
        'j' => "Yearday",
        'm' => "Month",
        'M' => "Minute",
        'p' => "AMPM",
        'S' => "Second",
        'U' | 'W' => "Yearweek",
        'w' => "Weekday",
        'y' => "Year2",
        'Y' => "Year",
        'z' => "Zone offset",
        'f' => "Microseconds",
        'Z' => "Zone name",
        _ => return None,
    })
}

/// A strptime pattern named as fail2ban names it: each directive by its
/// name (`%ExY` is `ExYear`; `%k` stays `%k`).
fn display_name(pattern: &str) -> String {
    let mut name = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            name.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => name.push('%'),
            Some('E') if chars.peek() == Some(&'x') => {
                chars.next();
                match chars.next() {
                    Some(d) => match directive_name(d) {
                        Some(n) => {
                            name.push_str("Ex");
                            name.push_str(n);
                        }
                        None => {
                            name.push_str("%Ex");
                            name.push(d);
                        }
                    },
                    None => name.push_str("%Ex"),
                }
            }
            Some(d) => match directive_name(d) {
                Some(n) => name.push_str(n),
                None => {
                    name.push('%');
                    name.push(d);
                }
            },
            None => name.push('%'),
        }
    }
    name
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

#[cfg(test)]
mod tests;
