//! The regex filter: fail2ban's filter semantics for any `filter.d` file,
//! as a sandboxed component.
//!
//! Per line: the date is found and cut out (`date`), `prefregex` must match
//! and its `<F-CONTENT>` is what the failregexes see, every failregex is
//! tried (or only up to the first match, as the daemon does), ignoreregex
//! drops matches, and `<F-MLFID>` filters merge the lines of one connection
//! (`<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`). With `maxlines > 1`
//! the regexes run in multi-line mode over a buffer of recent lines.

mod date;
mod dialect;
mod tz;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;

use fancy_regex::Regex;
use wasmban_plugin_sdk::{Failure, Filter, LineNote, Options, Scan};

use date::Detector;
use tz::TzRule;

/// A compiled fail2ban regex with its group bookkeeping.
/// The engine that gives the exact answer.
enum Engine {
    /// Needs look-around, backreferences or conditionals.
    Fancy(Regex),
    /// Plain: the regex crate directly, without fancy-regex's wrapper.
    Plain(regex::Regex),
}

struct Compiled {
    re: Engine,
    /// The relaxed superset, when the exact regex needs fancy features:
    /// "no match" from it is exact and cheap.
    quick: Option<regex::Regex>,
    /// The relaxed superset's text, for the failregex set.
    relaxed: String,
    /// For a plain pattern: the same pattern without Unicode classes, used
    /// on ASCII buffers, where every class (`\w`, `\S`, `.`, `\b`, case
    /// folding) means the same either way. Its automata are far smaller,
    /// which is what capture search time is made of.
    ascii: Option<regex::bytes::Regex>,
    names: Vec<String>,
    /// `alt_NAME[_N]` groups folded into NAME.
    alt: Vec<(String, String)>,
    /// `tuple_NAME[_N]` groups combined into NAME.
    tuple: Vec<(String, String)>,
    skiplines: usize,
}

/// A line split around its date: the buffer sees `pre + post`, matches
/// report `pre + date + post`.
#[derive(Clone, Debug, Default)]
struct TupleLine {
    pre: String,
    date: String,
    post: String,
}

impl TupleLine {
    fn original(&self) -> String {
        format!("{}{}{}", self.pre, self.date, self.post)
    }
    fn without_date(&self) -> String {
        format!("{}{}", self.pre, self.post)
    }
}

fn buffer_of(lines: &[TupleLine]) -> String {
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l.pre);
        buf.push_str(&l.post);
        buf.push('\n');
    }
    buf
}

/// A match of one regex against a buffer.
struct Hit {
    groups: BTreeMap<String, String>,
    matched: Vec<TupleLine>,
    unmatched: Vec<TupleLine>,
}

impl Compiled {
    fn new(option: &str, index: usize, python: &str, multiline: bool) -> Result<Compiled, String> {
        let expanded = dialect::expand_tags(python, true);
        if expanded.trim().is_empty() {
            return Err(format!("option `{option}`, pattern {}: empty regex", index + 1));
        }
        let translated = dialect::translate(&expanded, multiline);
        let re = Regex::new(&translated)
            .map_err(|e| format!("option `{option}`, pattern {} ({python:?}): {e}", index + 1))?;
        let relaxed = dialect::relax(&translated);
        let quick = if relaxed != translated { regex::Regex::new(&relaxed).ok() } else { None };
        let names: Vec<String> = re.capture_names().flatten().map(str::to_string).collect();
        let (re, ascii) = match regex::Regex::new(&translated) {
            Ok(plain) if relaxed == translated => {
                let ascii = regex::bytes::RegexBuilder::new(&translated).unicode(false).build().ok();
                (Engine::Plain(plain), ascii)
            }
            _ => (Engine::Fancy(re), None),
        };
        let mut alt = Vec::new();
        let mut tuple = Vec::new();
        for name in &names {
            for (prefix, list) in [("alt_", &mut alt), ("tuple_", &mut tuple)] {
                if let Some(rest) = name.strip_prefix(prefix).filter(|r| !r.is_empty()) {
                    let base = match rest.rsplit_once('_') {
                        Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
                        _ => rest,
                    };
                    list.push((name.clone(), dialect::group_name(base)));
                }
            }
        }
        alt.sort();
        tuple.sort();
        let skiplines = names.iter().filter(|n| n.starts_with("skiplines")).count();
        Ok(Compiled { re, quick, relaxed, ascii, names, alt, tuple, skiplines })
    }

    fn has_any(&self, groups: &[&str]) -> bool {
        groups.iter().any(|g| self.names.iter().any(|n| n == g))
    }

    /// Search `buf`; `org` are the lines it was built from.
    fn search(&self, buf: &str, org: &[TupleLine]) -> Option<Hit> {
        if let Some(quick) = &self.quick
            && !quick.is_match(buf)
        {
            return None;
        }
        // The two engines answer with different capture types; both are
        // read through `group`: (start, end, text) of a named group.
        let collect = |whole: (usize, usize), group: &dyn Fn(&str) -> Option<String>| {
            let groups: BTreeMap<String, String> =
                self.names.iter().filter_map(|n| group(n).map(|v| (n.clone(), v))).collect();
            let skipped: String = (0..self.skiplines).filter_map(|n| group(&format!("skiplines{n}"))).collect();
            (whole.0, whole.1, groups, skipped)
        };
        let (whole_start, whole_end, mut groups, skipped) = match &self.re {
            Engine::Plain(_) if self.ascii.is_some() && buf.is_ascii() => {
                let re = self.ascii.as_ref()?;
                let caps = re.captures(buf.as_bytes())?;
                let whole = caps.get(0)?;
                // An ASCII buffer: every span is valid UTF-8.
                let text = |m: regex::bytes::Match<'_>| String::from_utf8_lossy(m.as_bytes()).into_owned();
                collect((whole.start(), whole.end()), &|n| caps.name(n).map(text))
            }
            Engine::Plain(re) => {
                let caps = re.captures(buf)?;
                let whole = caps.get(0)?;
                collect((whole.start(), whole.end()), &|n| caps.name(n).map(|m| m.as_str().to_string()))
            }
            Engine::Fancy(re) => {
                // A pattern that backtracks past fancy-regex's limit counts
                // as no match; the admin is told, at most once per 1000.
                let caps = match re.captures(buf) {
                    Ok(caps) => caps?,
                    Err(e) => {
                        gave_up(&e.to_string());
                        return None;
                    }
                };
                let whole = caps.get(0)?;
                collect((whole.start(), whole.end()), &|n| caps.name(n).map(|m| m.as_str().to_string()))
            }
        };
        for (k, n) in &self.alt {
            if let Some(v) = groups.get(k).filter(|v| !v.is_empty()).cloned()
                && groups.get(n).is_none_or(|v| v.is_empty())
            {
                groups.insert(n.clone(), v);
            }
        }
        for (k, n) in &self.tuple {
            let v = groups.get(k).cloned().unwrap_or_default();
            let t = groups.get(n).cloned().unwrap_or_default();
            groups.insert(n.clone(), format!("{t},{v}"));
        }
        if org.len() <= 1 {
            return Some(Hit { groups, matched: org.to_vec(), unmatched: Vec::new() });
        }
        let start = buf[..whole_start + 1.min(buf.len() - whole_start)].rfind('\n').map(|p| p + 1).unwrap_or(0);
        let end = match buf[whole_end.saturating_sub(1)..].find('\n') {
            Some(p) => whole_end.saturating_sub(1) + p + 1,
            None => buf.len(),
        };
        let first = buf[..start].matches('\n').count().min(org.len());
        let last = buf[..end].matches('\n').count().min(org.len()).max(first);
        let mut matched: Vec<TupleLine> = org[first..last].to_vec();
        let mut unmatched: Vec<TupleLine> = org[..first].to_vec();
        let mut from = 0;
        for line in skipped.lines() {
            if let Some(pos) = matched[from..].iter().position(|t| t.without_date() == line) {
                unmatched.push(matched.remove(from + pos));
                from += pos;
            }
        }
        unmatched.extend(org[last..].iter().cloned());
        Some(Hit { groups, matched, unmatched })
    }
}

/// Count a regex that gave up on a line, and say so in the daemon log for
/// the first and then every thousandth time.
fn gave_up(why: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    if n == 1 || n.is_multiple_of(1000) {
        wasmban_plugin_sdk::log::warn(&format!(
            "a regex gave up on a line and counted it as not matching ({why}); {n} time(s) so far. \
             A pattern with nested repetition such as (a+)+ can backtrack without end: simplify it."
        ));
    }
}

fn truthy(groups: &BTreeMap<String, String>, key: &str) -> bool {
    groups.get(key).is_some_and(|v| !v.is_empty())
}

/// What fail2ban keeps per failure while merging the lines of one connection.
#[derive(Clone, Debug, Default)]
struct Fail {
    groups: BTreeMap<String, String>,
    users: Option<BTreeSet<String>>,
    matches: Option<Vec<TupleLine>>,
    nofail_matches: Option<Vec<TupleLine>>,
    pending: bool,
}

impl Fail {
    fn update_users(&mut self) -> Option<&BTreeSet<String>> {
        if let Some(user) = self.groups.get("user").filter(|u| !u.is_empty()).cloned() {
            self.users.get_or_insert_with(BTreeSet::new).insert(user);
        }
        self.users.as_ref()
    }
}

/// What one line produced, for the line note.
#[derive(Default)]
struct LineOutcome {
    failures: Vec<(usize, String, Fail)>,
    /// Rules that matched (fail2ban's failure list, helpers included).
    hits: Vec<u32>,
    /// A match that is not a helper (NOFAIL).
    matched: bool,
    /// An ignoreregex dropped a match, or a match was only a helper.
    ignored: bool,
}

/// fail2ban's connection cache: at most 100 entries, five minutes each.
struct MlfidCache {
    entries: HashMap<String, (f64, Fail)>,
    order: VecDeque<String>,
}

impl MlfidCache {
    const MAX: usize = 100;
    const MAX_AGE: f64 = 300.0;

    fn get(&mut self, key: &str, now: f64) -> Option<Fail> {
        match self.entries.get(key) {
            Some((expires, _)) if *expires <= now => {
                self.unset(key);
                None
            }
            Some((_, f)) => Some(f.clone()),
            None => None,
        }
    }
    fn set(&mut self, key: &str, fail: Fail, now: f64) {
        if !self.entries.contains_key(key) {
            if self.entries.len() >= Self::MAX {
                self.entries.retain(|_, (e, _)| *e > now);
                self.order.retain(|k| self.entries.contains_key(k));
                while self.entries.len() >= Self::MAX {
                    let Some(old) = self.order.pop_front() else { break };
                    self.entries.remove(&old);
                }
            }
            self.order.push_back(key.to_string());
        }
        let expires = self.entries.get(key).map(|(e, _)| *e).unwrap_or(now + Self::MAX_AGE);
        self.entries.insert(key.to_string(), (expires, fail));
    }
    fn unset(&mut self, key: &str) {
        self.entries.remove(key);
        self.order.retain(|k| k != key);
    }
}

/// An id as fail2ban prints it: a valid IP in canonical form (an
/// IPv4-mapped IPv6 as IPv4), any other text as captured.
fn canonical_id(id: &str) -> String {
    use std::net::IpAddr;
    match id.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        Ok(ip) => ip.to_string(),
        Err(_) => id.to_string(),
    }
}

/// Which failregexes can possibly match a buffer, found in one pass.
///
/// The set runs in ASCII mode over bytes, which lets it use a DFA (Unicode
/// word boundaries would not); on an ASCII buffer ASCII and Unicode classes
/// agree, so it is consulted only for ASCII buffers.
struct Candidates {
    set: regex::bytes::RegexSet,
    /// Set index to failregex index.
    members: Vec<usize>,
    /// Failregexes the set could not hold: always tried.
    always: Vec<usize>,
}

impl Candidates {
    fn new(failregex: &[Compiled]) -> Option<Candidates> {
        let mut members = Vec::new();
        let mut always = Vec::new();
        let mut patterns = Vec::new();
        let ascii = |p: &str| regex::bytes::RegexBuilder::new(p).unicode(false).build().is_ok();
        for (i, re) in failregex.iter().enumerate() {
            if ascii(&re.relaxed) {
                members.push(i);
                patterns.push(re.relaxed.clone());
            } else {
                always.push(i);
            }
        }
        let set = regex::bytes::RegexSetBuilder::new(&patterns).unicode(false).size_limit(64 << 20).build().ok()?;
        Some(Candidates { set, members, always })
    }

    fn of(&self, buf: &str, count: usize) -> Vec<bool> {
        if !buf.is_ascii() {
            return vec![true; count];
        }
        let mut possible = vec![false; count];
        for i in self.set.matches(buf.as_bytes()).iter() {
            possible[self.members[i]] = true;
        }
        for &i in &self.always {
            possible[i] = true;
        }
        possible
    }
}

pub struct RegexFilter {
    prefregex: Option<Compiled>,
    failregex: Vec<Compiled>,
    candidates: Option<Candidates>,
    /// Single-line filters: the failregexes unanchored and relaxed, in one
    /// ASCII set over the whole buffer. No match means no failregex can
    /// match any part of it, so the prefregex and failregexes are skipped.
    gate: Option<regex::bytes::RegexSet>,
    ignoreregex: Vec<Compiled>,
    maxlines: usize,
    buffer: Vec<TupleLine>,
    detector: Option<Detector>,
    tz: TzRule,
    journal: bool,
    check_all: bool,
    last_date: Option<f64>,
    last_time_text: String,
    mlfid: MlfidCache,
}

fn compile_list(options: &Options, key: &str, multiline: bool) -> Result<Vec<Compiled>, String> {
    options
        .get_or(key, "")
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, p)| Compiled::new(key, i, p, multiline))
        .collect()
}

impl Filter for RegexFilter {
    fn new(options: Options) -> Result<Self, String> {
        let maxlines: usize = match options.get("maxlines") {
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("option `maxlines` = {v:?}: expected a whole number of at least 1"))?,
            None => 1,
        };
        let prefregex = match options.get("prefregex").filter(|p| !p.trim().is_empty()) {
            Some(p) => Some(Compiled::new("prefregex", 0, p, false)?),
            None => None,
        };
        let failregex = compile_list(&options, "failregex", maxlines > 1)?;
        if failregex.is_empty() {
            return Err("option `failregex` is empty: a filter needs at least one pattern".into());
        }
        let id_groups = ["fid", "ip4", "ip6", "dns", "mlfid"];
        let pref_has_id = prefregex.as_ref().is_some_and(|p| p.has_any(&id_groups));
        for (i, re) in failregex.iter().enumerate() {
            if !re.has_any(&id_groups) && !pref_has_id {
                return Err(format!(
                    "option `failregex`, pattern {}: no failure-id group (<HOST>, <ADDR>, <F-ID>...)",
                    i + 1
                ));
            }
        }
        let ignoreregex = compile_list(&options, "ignoreregex", false)?;
        let year: i64 = options.get("year").and_then(|y| y.parse().ok()).unwrap_or(2026);
        let journal = options.get("journal").is_some_and(|v| v == "1" || v == "true");
        let detector = if journal {
            None
        } else {
            let mut d =
                Detector::new(options.get("datepattern").filter(|p| !p.trim().is_empty()), &date::year_prefix(year))
                    .map_err(|e| format!("option `datepattern`: {e}"))?;
            if let Some(tz) = options.get("logtimezone").filter(|t| !t.trim().is_empty()) {
                d.default_offset = Some(date::zone_offset(tz.trim()).ok_or_else(|| {
                    format!(
                        "option `logtimezone` = {tz:?}: unknown zone; use UTC, UTC+0200 or an abbreviation such as CET"
                    )
                })?);
            }
            Some(d)
        };
        let tz = match options.get("timezone") {
            Some(rule) => {
                TzRule::parse(rule).ok_or_else(|| format!("option `timezone` = {rule:?}: not a POSIX TZ rule"))?
            }
            None => TzRule::utc(),
        };
        let candidates = Candidates::new(&failregex);
        let gate = if maxlines == 1 && failregex.iter().all(|r| r.skiplines == 0) {
            let patterns: Vec<String> = failregex.iter().map(|r| dialect::unanchor(&r.relaxed)).collect();
            regex::bytes::RegexSetBuilder::new(&patterns).unicode(false).size_limit(64 << 20).build().ok()
        } else {
            None
        };
        Ok(RegexFilter {
            prefregex,
            candidates,
            gate,
            failregex,
            ignoreregex,
            maxlines,
            buffer: Vec::new(),
            detector,
            tz,
            journal,
            check_all: options.get("check-all").is_some_and(|v| v == "1" || v == "true"),
            last_date: None,
            last_time_text: String::new(),
            mlfid: MlfidCache { entries: HashMap::new(), order: VecDeque::new() },
        })
    }

    fn feed(&mut self, lines: &str, now: f64, notes: bool) -> Scan {
        let mut scan = Scan::default();
        for (index, line) in lines.split('\n').enumerate() {
            let (time, outcome) = self.process_line(line, now);
            for (rule, id, fail) in outcome.failures {
                let mut fields: Vec<(String, String)> = fail
                    .groups
                    .iter()
                    .filter(|(k, _)| k.as_str() != "content")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(users) = &fail.users {
                    fields.extend(users.iter().map(|u| ("users".to_string(), u.clone())));
                }
                scan.failures.push(Failure {
                    line: index as u32,
                    host: id,
                    time,
                    rule: rule as u32,
                    fields,
                    matches: fail.matches.unwrap_or_default().iter().map(TupleLine::original).collect(),
                });
            }
            if notes {
                scan.notes.push(LineNote {
                    time,
                    hits: outcome.hits,
                    matched: outcome.matched,
                    ignored: outcome.ignored,
                });
            }
        }
        scan
    }
}

impl RegexFilter {
    /// Date handling of one line, then the search.
    fn process_line(&mut self, line: &str, now: f64) -> (Option<f64>, LineOutcome) {
        if self.journal {
            let tuple = TupleLine { pre: String::new(), date: String::new(), post: line.to_string() };
            self.last_date = Some(now);
            return (Some(now), self.find_failure(tuple, now));
        }
        let mut date: Option<f64> = None;
        // The line split around its date; None: the line whole, undated.
        let mut split: Option<TupleLine> = None;
        // Whether the line takes the last date (and its text).
        let mut inherit = false;
        let recent = |last: Option<f64>| last.is_some_and(|d| d > now - 60.0);
        let detected = self.detector.as_mut().and_then(|d| d.find(line, now));
        if let Some((m, index)) = detected {
            let (ds, de) = (m.ds, m.de);
            if ds == de && recent(self.last_date) {
                // An optional date that is absent: the last one, if recent.
                inherit = true;
                date = self.last_date;
            } else {
                let tuple = TupleLine {
                    pre: line[..ds].to_string(),
                    date: line[ds..de].to_string(),
                    post: line[de..].to_string(),
                };
                if ds < de {
                    date = self.detector.as_ref().and_then(|d| d.read(index, &m, line, now, &self.tz));
                    if let Some(d) = date {
                        self.last_time_text = tuple.date.clone();
                        self.last_date = Some(d);
                    }
                } else {
                    date = Some(now);
                }
                split = Some(tuple);
            }
        }
        if date.is_none() && recent(self.last_date) {
            inherit = true;
            date = self.last_date;
        }
        let tuple = if inherit {
            TupleLine { pre: String::new(), date: self.last_time_text.clone(), post: line.to_string() }
        } else {
            split.unwrap_or_else(|| TupleLine { pre: String::new(), date: String::new(), post: line.to_string() })
        };
        let outcome = self.find_failure(tuple, date.unwrap_or(now));
        (date, outcome)
    }

    /// Search the ignoreregexes; on a match in multi-line mode (or when not
    /// checking every regex) the matched lines leave the buffer.
    fn ignore_line(&mut self, buf: &str, org: &[TupleLine], hit: Option<&Hit>) -> bool {
        let (buf_owned, org_owned);
        let (buf, org) = match hit {
            Some(h) if self.maxlines > 1 => {
                org_owned = h.matched.clone();
                buf_owned = buffer_of(&org_owned);
                (buf_owned.as_str(), org_owned.as_slice())
            }
            _ => (buf, org),
        };
        let mut found = false;
        for re in &self.ignoreregex {
            if re.search(buf, org).is_some() {
                found = true;
                if (!self.check_all || self.maxlines > 1)
                    && let Some(h) = hit
                {
                    self.buffer = h.unmatched.clone();
                }
                if !self.check_all {
                    break;
                }
            }
        }
        found
    }

    fn find_failure(&mut self, tuple: TupleLine, date: f64) -> LineOutcome {
        let mut out = LineOutcome::default();
        if self.maxlines > 1 {
            self.buffer.push(tuple);
            let excess = self.buffer.len().saturating_sub(self.maxlines);
            self.buffer.drain(..excess);
        } else {
            self.buffer = vec![tuple];
        }
        let org = self.buffer.clone();
        // Shared, so that handing it to each failregex costs no copy.
        let mut buf: Option<Rc<str>> = Some(Rc::from(buffer_of(&org)));

        if !self.ignoreregex.is_empty() && self.ignoreregex.len() + 2 < self.failregex.len() {
            let b = buf.clone().unwrap_or_else(|| Rc::from(""));
            if self.ignore_line(&b, &org, None) {
                out.ignored = true;
                return out;
            }
        }
        if let (Some(gate), Some(b)) = (&self.gate, &buf)
            && b.is_ascii()
            && !gate.is_match(b.as_bytes())
        {
            return out;
        }
        let mut pre_groups: BTreeMap<String, String> = BTreeMap::new();
        if let Some(pref) = &self.prefregex {
            let b = buf.clone().unwrap_or_else(|| Rc::from(""));
            let Some(hit) = pref.search(&b, &org) else { return out };
            pre_groups = hit.groups;
            if let Some(content) = pre_groups.remove("content").filter(|c| !c.is_empty()) {
                self.buffer = vec![TupleLine { pre: String::new(), date: String::new(), post: content }];
                buf = None;
            }
        }
        let count = self.failregex.len();
        // The candidates of the current buffer; rebuilt whenever it changes.
        let mut possible: Option<Vec<bool>> = None;
        for index in 0..count {
            let b = match &buf {
                Some(b) => b.clone(),
                None => {
                    possible = None;
                    let b: Rc<str> = Rc::from(buffer_of(&self.buffer));
                    buf = Some(b.clone());
                    b
                }
            };
            if let Some(c) = &self.candidates {
                let p = possible.get_or_insert_with(|| c.of(&b, count));
                if !p[index] {
                    continue;
                }
            }
            let Some(hit) = self.failregex[index].search(&b, &org) else { continue };
            if !self.ignoreregex.is_empty() && self.ignore_line(&b, &org, Some(&hit)) {
                out.ignored = true;
                buf = None;
                if !self.check_all {
                    break;
                }
                continue;
            }
            if !self.check_all || self.maxlines > 1 {
                self.buffer = hit.unmatched.clone();
                buf = None;
            }
            let mut groups = pre_groups.clone();
            groups.extend(hit.groups.clone());
            let mut fail = Fail { groups, ..Fail::default() };
            let mlfid = fail.groups.get("mlfid").cloned();
            let mut cached = false;
            if let Some(key) = &mlfid {
                let (merged, keep) = self.merge_failure(key, fail, &hit, date);
                fail = merged;
                cached = keep;
                if truthy(&fail.groups, "nofail") && !self.check_all {
                    if cached {
                        self.mlfid.set(key, fail.clone(), date);
                    }
                    return out;
                }
            } else {
                let mut m = fail.matches.take().unwrap_or_default();
                m.extend(hit.matched.iter().cloned());
                fail.matches = Some(m);
            }
            let fid = fail.groups.get("fid").cloned();
            let ip = ["ip4", "ip6", "dns"].iter().find_map(|g| fail.groups.get(*g).cloned());
            let ip = match ip {
                Some(ip) => Some(ip),
                None if fid.is_none() && mlfid.is_none() => None,
                None => fid.clone(),
            };
            let id = match ip {
                None => {
                    fail.pending = true;
                    None
                }
                Some(ip) => match &fid {
                    Some(f) if *f != ip => {
                        fail.groups.insert("ip".into(), canonical_id(&ip));
                        Some(canonical_id(f))
                    }
                    _ => Some(canonical_id(&ip)),
                },
            };
            if let (Some(key), true) = (&mlfid, cached) {
                self.mlfid.set(key, fail.clone(), date);
            }
            // fail2ban's failure list holds this match: helpers (NOFAIL) and
            // matches still waiting for their address count as hits too.
            out.hits.push(index as u32);
            if truthy(&fail.groups, "nofail") {
                out.ignored = true;
            } else {
                out.matched = true;
                if let Some(id) = id {
                    out.failures.push((index, id, fail));
                }
            }
            if !self.check_all {
                break;
            }
        }
        out
    }

    /// Merge a failure of connection `key` with what is known of it.
    /// Returns the merged failure and whether it stays cached.
    fn merge_failure(&mut self, key: &str, mut fail: Fail, hit: &Hit, date: f64) -> (Fail, bool) {
        let known = self.mlfid.get(key, date);
        let mut flags = 0u8;
        if truthy(&fail.groups, "mlfgained") {
            flags |= 8 | 1;
            if !truthy(&fail.groups, "nofail")
                && let Some(g) = fail.groups.get("mlfgained").cloned()
            {
                fail.groups.insert("nofail".into(), g);
            }
        } else if truthy(&fail.groups, "nofail") {
            flags |= 1;
        }
        if fail.groups.remove("mlfforget").is_some_and(|v| !v.is_empty()) {
            flags |= 2;
        }
        let users_len;
        let mut keep = true;
        let mut fail = match known {
            Some(mut entry) => {
                if let Some(user) = fail.groups.get("user").filter(|u| !u.is_empty()).cloned() {
                    entry.users.get_or_insert_with(BTreeSet::new).insert(user);
                }
                if entry.groups.remove("nofail").is_some() {
                    flags |= 4;
                }
                if entry.groups.remove("mlfgained").is_some() {
                    flags |= 4;
                }
                if flags & 8 != 0 {
                    entry.pending = false;
                }
                if flags & 4 == 0 && !entry.pending {
                    entry.matches = None;
                }
                for (k, v) in fail.groups {
                    entry.groups.insert(k, v);
                }
                if flags & 2 != 0 {
                    self.mlfid.unset(key);
                    keep = false;
                }
                users_len = entry.users.as_ref().map_or(0, BTreeSet::len);
                entry
            }
            None if flags & 2 == 0 => {
                users_len = fail.update_users().map_or(0, BTreeSet::len);
                fail
            }
            None => {
                keep = false;
                users_len = 0;
                fail
            }
        };
        if std::mem::take(&mut fail.pending) || users_len > 1 {
            fail.groups.remove("nofail");
            fail.groups.remove("mlfgained");
            flags &= !(8 | 1);
        }
        if flags & 1 == 0 {
            let mut m = fail.nofail_matches.take().unwrap_or_default();
            m.extend(fail.matches.take().unwrap_or_default());
            if flags & 8 == 0 {
                m.extend(hit.matched.iter().cloned());
            }
            fail.matches = Some(m);
        } else if flags & 3 == 1 {
            let mut m = fail.nofail_matches.take().unwrap_or_default();
            m.extend(hit.matched.iter().cloned());
            fail.nofail_matches = Some(m);
        }
        (fail, keep)
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_filter!(RegexFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pairs: &[(&str, &str)]) -> RegexFilter {
        let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.push(("timezone".into(), "CET-01CEST-02,M3.5.0,M10.5.0".into()));
        v.push(("check-all".into(), "1".into()));
        RegexFilter::new(Options::new(v)).unwrap()
    }

    #[test]
    fn finds_hosts_fields_and_times() {
        let mut f = filter(&[("failregex", r"Failed password for <F-USER>\S+</F-USER> from <HOST> port")]);
        let scan = f.feed(
            "Aug 14 11:59:30 srv sshd[1]: Failed password for root from 192.0.2.4 port 22\nnothing here\nAug 14 11:59:40 srv sshd[2]: Failed password for bob from 2001:db8::5 port 1",
            1124013600.0,
            true,
        );
        assert_eq!(scan.failures.len(), 2);
        assert_eq!(scan.failures[0].host, "192.0.2.4");
        assert_eq!(scan.failures[0].time, Some(1124013570.0));
        assert!(scan.failures[0].fields.contains(&("user".into(), "root".into())));
        assert_eq!(scan.failures[1].host, "2001:db8::5");
        assert_eq!(scan.failures[1].line, 2);
        assert_eq!(scan.notes.len(), 3);
        // The undated line inherits the last date (within 60 s of now).
        assert_eq!(scan.notes[1].time, Some(1124013570.0));
    }

    #[test]
    fn prefregex_content_and_ignoreregex() {
        let mut f = filter(&[
            ("prefregex", r"^\S+ <F-CONTENT>.+</F-CONTENT>$"),
            ("failregex", "^login failed from <HOST>$"),
            ("ignoreregex", "192\\.0\\.2\\.9"),
        ]);
        let scan = f.feed("app: login failed from 192.0.2.8\napp: login failed from 192.0.2.9", 0.0, true);
        assert_eq!(scan.failures.len(), 1);
        assert_eq!(scan.failures[0].host, "192.0.2.8");
        assert!(scan.notes[1].ignored);
    }

    #[test]
    fn connection_ids_merge_lines() {
        let mut f = filter(&[
            ("prefregex", r"^\S+ <F-MLFID>\[\d+\]</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$"),
            (
                "failregex",
                "^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>\n^Auth failed for <F-USER>\\S+</F-USER>$\n^<F-NOFAIL><F-MLFFORGET>Closed</F-MLFFORGET></F-NOFAIL>$",
            ),
        ]);
        let scan = f.feed("d [7]: Connection from 192.0.2.3\nd [7]: Auth failed for bob\nd [7]: Closed", 0.0, false);
        assert_eq!(scan.failures.len(), 1, "{:?}", scan.failures);
        assert_eq!(scan.failures[0].host, "192.0.2.3");
        assert_eq!(scan.failures[0].line, 1);
        assert_eq!(scan.failures[0].matches.len(), 2);
    }

    #[test]
    fn bad_definitions_name_the_option() {
        let err = |pairs: &[(&str, &str)]| {
            RegexFilter::new(Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
                .err()
                .unwrap()
        };
        assert!(err(&[("failregex", "(unclosed <HOST>")]).contains("`failregex`"));
        assert!(err(&[("failregex", "no id group here")]).contains("failure-id"));
        assert!(err(&[("failregex", "<HOST>"), ("maxlines", "0")]).contains("`maxlines`"));
    }
}
