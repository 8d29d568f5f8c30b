//! A failregex, prefregex or ignoreregex compiled for both engines: the
//! Python-semantics backtracker for ASCII text and the general engines
//! (built on first use) for the rest, with the groups a hit captures and
//! the order in which failregexes are tried.

use super::*;

/// The general engines, for what the backtracker does not run: buffers
/// with non-ASCII text, patterns it refuses, searches it gives up on.
/// Built on first use: most logs never need them, and building them costs
/// more than reading a million ASCII lines.
pub(crate) enum Engine {
    /// Needs look-around, backreferences or conditionals.
    Fancy(Regex),
    /// Plain: the regex crate directly, without fancy-regex's wrapper.
    Plain(regex::Regex),
}

pub(crate) struct Fallback {
    pub(crate) re: Engine,
    /// The relaxed superset, when the exact regex needs fancy features:
    /// "no match" from it is exact and cheap.
    pub(crate) quick: Option<regex::Regex>,
}

/// A compiled fail2ban regex with its group bookkeeping.
pub(crate) struct Compiled {
    /// The pattern in fancy-regex's syntax.
    pub(crate) translated: String,
    /// Python's semantics over ASCII bytes; None when the pattern needs
    /// something it does not do.
    pub(crate) program: Option<Program>,
    pub(crate) fallback: OnceCell<Result<Fallback, String>>,
    /// The relaxed superset's text, for the failregex set.
    pub(crate) relaxed: String,
    /// Named groups: (group index, name).
    pub(crate) names: Vec<(usize, Rc<str>)>,
    /// `alt_NAME[_N]` groups folded into NAME.
    pub(crate) alt: Vec<(Rc<str>, Rc<str>)>,
    /// `tuple_NAME[_N]` groups combined into NAME.
    pub(crate) tuple: Vec<(Rc<str>, Rc<str>)>,
    /// Group indices of `<SKIPLINES>` (skiplines0, skiplines1, ...).
    pub(crate) skiplines: Vec<usize>,
    /// For a prefregex of the usual shape: where its content starts,
    /// found by a DFA (see `Head`).
    pub(crate) head: Option<Head>,
}

/// The part of a prefregex before `<F-CONTENT>.+</F-CONTENT>$`, as a DFA.
///
/// Such a prefregex is `^HEAD(?P<content>.+)$`; on a one-line buffer (the
/// line and its newline) the content is everything after the first way
/// HEAD matches (in Python's order) that leaves a character for `.+`. The
/// DFA's leftmost-first match of `^HEAD` is exactly that first way, so,
/// when it leaves a character, it says where the content starts without a
/// search for the groups: most lines need them only if a failregex matches.
pub(crate) struct Head {
    pub(crate) dfa: regex_automata::dfa::dense::DFA<Vec<u32>>,
    /// Where every search starts (anchored, at the start of the text).
    pub(crate) start: regex_automata::util::primitives::StateID,
}

/// How a prefregex of that shape ends, translated.
pub(crate) const CONTENT_TAIL: &str = r"(?P<content>.+)(?:\n?\z)";

impl Head {
    pub(crate) fn new(translated: &str) -> Option<Head> {
        use regex_automata::dfa::{StartKind, dense};
        use regex_automata::nfa::thompson;
        use regex_automata::{MatchKind, util::syntax};
        let head = translated.strip_suffix(CONTENT_TAIL)?;
        // Anchored, plain (no look-around, backreference or conditional:
        // what a DFA runs), and a sequence at the top (not `^a|b`).
        if !head.starts_with('^') || dialect::relax(head) != head {
            return None;
        }
        if matches!(fancy_regex::Expr::parse_tree(head).ok()?.expr, fancy_regex::Expr::Alt(_)) {
            return None;
        }
        use regex_automata::dfa::Automaton;
        use regex_automata::util::start;
        let dfa = dense::Builder::new()
            .configure(dense::Config::new().start_kind(StartKind::Anchored).match_kind(MatchKind::LeftmostFirst))
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            // Bytes, not UTF-8: no work around empty matches inside a
            // character (the buffers it sees are ASCII).
            .thompson(thompson::Config::new().utf8(false))
            .build(head)
            .ok()?;
        // `^` and no look-behind: the start state never depends on what
        // precedes the text.
        let start = dfa.start_state(&start::Config::new().anchored(regex_automata::Anchored::Yes)).ok()?;
        Some(Head { dfa, start })
    }

    /// On an ASCII one-line buffer: Some(Some(start)) where the content
    /// starts, Some(None) when the prefregex cannot match, None when only a
    /// search can tell (the head took the whole line).
    ///
    /// The search loop is the DFA's own, without the general search's
    /// bookkeeping: a state per byte until the dead state; a match state
    /// is entered one byte after the match ends.
    pub(crate) fn content_start(&self, buf: &str) -> Option<Option<usize>> {
        use regex_automata::dfa::Automaton;
        let bytes = buf.as_bytes();
        let dfa = &self.dfa;
        let mut state = self.start;
        let mut end = None;
        let mut dead = false;
        for (at, &b) in bytes.iter().enumerate() {
            state = dfa.next_state(state, b);
            if dfa.is_special_state(state) {
                if dfa.is_match_state(state) {
                    end = Some(at);
                } else if dfa.is_dead_state(state) {
                    dead = true;
                    break;
                } else if dfa.is_quit_state(state) {
                    return None;
                }
            }
        }
        if !dead && dfa.is_match_state(dfa.next_eoi_state(state)) {
            end = Some(bytes.len());
        }
        match end {
            None => Some(None),
            Some(end) if end + 1 < bytes.len() => Some(Some(end)),
            Some(_) => None,
        }
    }
}

/// A log line split around its date: the buffer sees `pre + post`, matches
/// report the whole text.
#[derive(Clone, Debug)]
pub(crate) struct TupleLine {
    pub(crate) text: Rc<str>,
    /// The date's span in `text`.
    pub(crate) ds: usize,
    pub(crate) de: usize,
}

/// A line as the search sees it: borrowed from the batch while it is only
/// looked at, or one already kept in the multi-line buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LineRef<'a> {
    Borrowed { text: &'a str, ds: usize, de: usize },
    Kept(&'a TupleLine),
}

impl TupleLine {
    pub(crate) fn as_ref(&self) -> LineRef<'_> {
        LineRef::Kept(self)
    }
}

impl<'a> LineRef<'a> {
    pub(crate) fn parts(&self) -> (&'a str, usize, usize) {
        match *self {
            LineRef::Borrowed { text, ds, de } => (text, ds, de),
            LineRef::Kept(t) => (&t.text, t.ds, t.de),
        }
    }
    pub(crate) fn push_without_date(&self, buf: &mut String) {
        let (text, ds, de) = self.parts();
        buf.push_str(&text[..ds]);
        buf.push_str(&text[de..]);
    }
    pub(crate) fn without_date_is(&self, other: &str) -> bool {
        let (text, ds, de) = self.parts();
        other.len() == ds + (text.len() - de) && other.starts_with(&text[..ds]) && other.ends_with(&text[de..])
    }
    pub(crate) fn to_owned(self) -> TupleLine {
        match self {
            LineRef::Borrowed { text, ds, de } => TupleLine { text: Rc::from(text), ds, de },
            LineRef::Kept(t) => t.clone(),
        }
    }
}

/// The regex buffer of some lines: each without its date, each ending in
/// a newline (fail2ban's buffer).
pub(crate) fn fill_buffer(buf: &mut String, lines: &[LineRef<'_>]) {
    buf.clear();
    for l in lines {
        l.push_without_date(buf);
        buf.push('\n');
    }
}

/// The named groups of a match. A handful per match: a vector searched by
/// name costs less than a map.
/// Values are shared: a failure merged from several lines and the
/// connection cache hold the same text.
#[derive(Clone, Debug, Default)]
pub(crate) struct Groups(Vec<(Rc<str>, Rc<str>)>);

impl Groups {
    pub(crate) fn get(&self, key: &str) -> Option<&Rc<str>> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }
    pub(crate) fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_empty())
    }
    pub(crate) fn insert(&mut self, key: &Rc<str>, value: Rc<str>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.clone(), value)),
        }
    }
    pub(crate) fn insert_str(&mut self, key: &str, value: Rc<str>) {
        match self.0.iter_mut().find(|(k, _)| &**k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((Rc::from(key), value)),
        }
    }
    pub(crate) fn remove(&mut self, key: &str) -> Option<Rc<str>> {
        let i = self.0.iter().position(|(k, _)| &**k == key)?;
        Some(self.0.swap_remove(i).1)
    }
    /// Add `other`'s groups; its values win.
    pub(crate) fn extend(&mut self, other: Groups) {
        for (k, v) in other.0 {
            match self.0.iter_mut().find(|(key, _)| *key == k) {
                Some((_, value)) => *value = v,
                None => self.0.push((k, v)),
            }
        }
    }
    /// `self`'s groups, then `other`'s (whose values win); `other` is
    /// left empty.
    pub(crate) fn with(&self, other: &mut Groups) -> Groups {
        let mut both = Groups(Vec::with_capacity(self.0.len() + other.0.len()));
        both.0.extend(self.0.iter().cloned());
        for (k, v) in other.0.drain(..) {
            match both.0.iter_mut().find(|(key, _)| *key == k) {
                Some((_, value)) => *value = v,
                None => both.0.push((k, v)),
            }
        }
        both
    }
    /// (name, value) pairs in name order, as fail2ban's dict is reported.
    pub(crate) fn sorted(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
}

/// A match of one regex against a buffer. Lines are indices into the
/// lines the buffer was made of.
pub(crate) struct Hit {
    pub(crate) groups: Groups,
    pub(crate) matched: Vec<usize>,
    pub(crate) unmatched: Vec<usize>,
}

/// Reusable memory for searches.
#[derive(Default)]
pub(crate) struct SearchScratch {
    pub(crate) slots: Vec<usize>,
    pub(crate) backtrack: backtrack::Scratch,
    /// The spans of the last match's groups, by group index.
    pub(crate) spans: Vec<Option<(usize, usize)>>,
}

impl Compiled {
    pub(crate) fn new(option: &str, index: usize, python: &str, multiline: bool) -> Result<Compiled, String> {
        let expanded = dialect::expand_tags(python, true);
        if expanded.trim().is_empty() {
            return Err(format!("option `{option}`, pattern {}: empty regex", index + 1));
        }
        let translated = dialect::translate(&expanded, multiline);
        let bad = |e: &dyn std::fmt::Display| format!("option `{option}`, pattern {} ({python:?}): {e}", index + 1);
        let tree = fancy_regex::Expr::parse_tree(&translated).map_err(|e| bad(&e))?;
        let relaxed = dialect::relax(&translated);
        let program = match Program::named_groups_only(&translated) {
            Ok(p) => Some(p),
            Err(why) => {
                debug_log(&format!("option `{option}`, pattern {}: runs in the general engine ({})", index + 1, why.0));
                None
            }
        };
        let head = if option == "prefregex" && program.is_some() { Head::new(&translated) } else { None };
        let compiled = Compiled {
            program,
            fallback: OnceCell::new(),
            relaxed,
            names: Vec::new(),
            alt: Vec::new(),
            tuple: Vec::new(),
            skiplines: Vec::new(),
            head,
            translated,
        };
        if compiled.program.is_none() {
            // Only the general engines can run it: build them now, so that
            // a pattern they reject is an error at load, not at the first line.
            if let Err(e) = compiled.fallback() {
                return Err(bad(&e));
            }
        }
        let mut names: Vec<(usize, Rc<str>)> = Vec::new();
        for (name, indices) in tree.named_groups.iter() {
            for &i in indices {
                names.push((i, Rc::from(name.as_str())));
            }
        }
        names.sort_by_key(|(i, _)| *i);
        let mut compiled = compiled;
        for (_, name) in &names {
            for (prefix, list) in [("alt_", &mut compiled.alt), ("tuple_", &mut compiled.tuple)] {
                if let Some(rest) = name.strip_prefix(prefix).filter(|r| !r.is_empty()) {
                    let base = match rest.rsplit_once('_') {
                        Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
                        _ => rest,
                    };
                    list.push((name.clone(), Rc::from(dialect::group_name(base))));
                }
            }
        }
        compiled.alt.sort();
        compiled.tuple.sort();
        // skiplines{n} in order of n, as group indices.
        let mut skip: Vec<(usize, usize)> = names
            .iter()
            .filter_map(|(i, n)| n.strip_prefix("skiplines").and_then(|k| k.parse().ok()).map(|k: usize| (k, *i)))
            .collect();
        skip.sort();
        compiled.skiplines = skip.into_iter().map(|(_, i)| i).collect();
        compiled.names = names;
        Ok(compiled)
    }

    /// The general engines, built on first use.
    pub(crate) fn fallback(&self) -> Result<&Fallback, &str> {
        self.fallback
            .get_or_init(|| {
                let re = Regex::new(&self.translated).map_err(|e| e.to_string())?;
                let quick = if self.relaxed != self.translated { regex::Regex::new(&self.relaxed).ok() } else { None };
                let re = match regex::Regex::new(&self.translated) {
                    Ok(plain) if self.relaxed == self.translated => Engine::Plain(plain),
                    _ => Engine::Fancy(re),
                };
                Ok(Fallback { re, quick })
            })
            .as_ref()
            .map_err(String::as_str)
    }

    pub(crate) fn has_any(&self, groups: &[&str]) -> bool {
        groups.iter().any(|g| self.names.iter().any(|(_, n)| &**n == *g))
    }

    /// Search `buf`. On a match, `scratch.spans` holds the span of every
    /// group by index (group 0: the whole match).
    pub(crate) fn find(&self, buf: &str, ascii: bool, scratch: &mut SearchScratch) -> bool {
        let spans = &mut scratch.spans;
        spans.clear();
        if ascii && let Some(program) = &self.program {
            match program.search(buf.as_bytes(), 0, &mut scratch.slots, &mut scratch.backtrack) {
                Outcome::Match => {
                    let slots = &scratch.slots;
                    spans.extend((0..program.group_count()).map(|g| {
                        let (s, e) = (slots[2 * g], slots[2 * g + 1]);
                        (s != backtrack::NONE && e != backtrack::NONE).then_some((s, e))
                    }));
                    return true;
                }
                Outcome::NoMatch => return false,
                // Its budget ran out: the general engines decide.
                Outcome::GaveUp => {}
            }
        }
        let fallback = match self.fallback() {
            Ok(f) => f,
            Err(e) => {
                gave_up(&format!("the regex cannot be built by the general engine: {e}"));
                return false;
            }
        };
        if let Some(quick) = &fallback.quick
            && !quick.is_match(buf)
        {
            return false;
        }
        match &fallback.re {
            Engine::Plain(re) => {
                let Some(caps) = re.captures(buf) else { return false };
                spans.extend((0..caps.len()).map(|g| caps.get(g).map(|m| (m.start(), m.end()))));
            }
            Engine::Fancy(re) => {
                // A pattern that backtracks past fancy-regex's limit counts
                // as no match; the admin is told, at most once per 1000.
                let caps = match re.captures(buf) {
                    Ok(Some(caps)) => caps,
                    Ok(None) => return false,
                    Err(e) => {
                        gave_up(&e.to_string());
                        return false;
                    }
                };
                spans.extend((0..caps.len()).map(|g| caps.get(g).map(|m| (m.start(), m.end()))));
            }
        }
        spans.first().copied().flatten().is_some()
    }

    /// The named groups of a match found by `find` (with `alt_` and
    /// `tuple_` groups folded as fail2ban folds them).
    pub(crate) fn groups_of(&self, buf: &str, spans: &[Option<(usize, usize)>]) -> Groups {
        let mut groups = Groups(Vec::with_capacity(self.names.len()));
        self.groups_into(buf, spans, None, &mut groups);
        groups
    }

    /// `groups_of` into `groups` (emptied first), leaving out `skip`.
    pub(crate) fn groups_into(
        &self,
        buf: &str,
        spans: &[Option<(usize, usize)>],
        skip: Option<&str>,
        groups: &mut Groups,
    ) {
        groups.0.clear();
        let text = |g: usize| spans.get(g).copied().flatten().map(|(s, e)| &buf[s..e]);
        for (i, name) in &self.names {
            if let Some(v) = text(*i)
                && skip.is_none_or(|skip| **name != *skip)
            {
                groups.0.push((name.clone(), Rc::from(v)));
            }
        }
        for (k, n) in &self.alt {
            if let Some(v) = groups.get(k).filter(|v| !v.is_empty()).cloned()
                && groups.get(n).is_none_or(|v| v.is_empty())
            {
                groups.insert(n, v);
            }
        }
        for (k, n) in &self.tuple {
            let v = groups.get(k).cloned().unwrap_or_default();
            let t = groups.get(n).cloned().unwrap_or_default();
            groups.insert(n, Rc::from(format!("{t},{v}")));
        }
    }

    /// The span of a named group of a match found by `find`.
    pub(crate) fn span_of(&self, name: &str, spans: &[Option<(usize, usize)>]) -> Option<(usize, usize)> {
        let (i, _) = self.names.iter().find(|(_, n)| &**n == name)?;
        spans.get(*i).copied().flatten()
    }

    /// Search `buf`, made of the lines `org`: the groups, and which lines
    /// the match covers.
    pub(crate) fn search(
        &self,
        buf: &str,
        ascii: bool,
        org: &[LineRef<'_>],
        scratch: &mut SearchScratch,
    ) -> Option<Hit> {
        if !self.find(buf, ascii, scratch) {
            return None;
        }
        let spans = &scratch.spans;
        let groups = self.groups_of(buf, spans);
        if org.len() <= 1 {
            return Some(Hit { groups, matched: (0..org.len()).collect(), unmatched: Vec::new() });
        }
        let (whole_start, whole_end) = spans.first().copied().flatten()?;
        let text = |g: usize| spans.get(g).copied().flatten().map(|(s, e)| &buf[s..e]);
        let skipped: String = self.skiplines.iter().filter_map(|&g| text(g)).collect();
        // fail2ban looks for the newlines around the match's first and last
        // characters, which may take more than one byte here.
        let first_char_end = buf[whole_start..].chars().next().map_or(whole_start, |c| whole_start + c.len_utf8());
        let last_char_start = buf[..whole_end].char_indices().next_back().map_or(0, |(i, _)| i);
        let start = buf[..first_char_end].rfind('\n').map(|p| p + 1).unwrap_or(0);
        let end = match buf[last_char_start..].find('\n') {
            Some(p) => last_char_start + p + 1,
            None => buf.len(),
        };
        let first = buf[..start].matches('\n').count().min(org.len());
        let last = buf[..end].matches('\n').count().min(org.len()).max(first);
        let mut matched: Vec<usize> = (first..last).collect();
        let mut unmatched: Vec<usize> = (0..first).collect();
        let mut from = 0;
        for line in skipped.lines() {
            if let Some(pos) = matched[from..].iter().position(|&t| org[t].without_date_is(line)) {
                unmatched.push(matched.remove(from + pos));
                from += pos;
            }
        }
        unmatched.extend(last..org.len());
        Some(Hit { groups, matched, unmatched })
    }
}

/// A debug line in the daemon log (nowhere when the filter runs natively,
/// in its unit tests, where there is no host to log to).
pub(crate) fn debug_log(message: &str) {
    #[cfg(target_arch = "wasm32")]
    wasmban_plugin_sdk::log::debug(message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
}

/// Count a regex that gave up on a line, and say so in the daemon log for
/// the first and then every thousandth time.
pub(crate) fn gave_up(why: &str) {
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

/// Which failregexes can possibly match a buffer, found in one pass.
///
/// The set runs in ASCII mode over bytes, which lets it use a DFA (Unicode
/// word boundaries would not); on an ASCII buffer ASCII and Unicode classes
/// agree, so it is consulted only for ASCII buffers.
pub(crate) struct Candidates {
    pub(crate) set: regex::bytes::RegexSet,
    /// Set index to failregex index.
    pub(crate) members: Vec<usize>,
    /// Failregexes the set could not hold: always tried.
    pub(crate) always: Vec<usize>,
}

impl Candidates {
    pub(crate) fn new(failregex: &[Compiled]) -> Option<Candidates> {
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

    pub(crate) fn of(&self, buf: &str, count: usize) -> Vec<bool> {
        if !backtrack::is_ascii(buf) {
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
