//! The regex filter: fail2ban's filter semantics for any `filter.d` file,
//! as a sandboxed component.
//!
//! Per line: the date is found and cut out (`date`), `prefregex` must match
//! and its `<F-CONTENT>` is what the failregexes see, every failregex is
//! tried (or only up to the first match, as the daemon does), ignoreregex
//! drops matches, and `<F-MLFID>` filters merge the lines of one connection
//! (`<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`). With `maxlines > 1`
//! the regexes run in multi-line mode over a buffer of recent lines.

mod backtrack;
mod date;
mod dialect;
mod tz;

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use fancy_regex::Regex;
use wasmban_plugin_sdk::{Failure, Filter, LineNote, Options, Scan};

use backtrack::{Outcome, Program};
use date::Detector;
use tz::TzRule;

// A filter allocates for every failure it returns, and frees it all after
// the call: with talc rather than the default dlmalloc, `wasmban regex`
// spends about 7% less CPU on the sshd benchmark (scripts/bench-regex).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The general engines, for what the backtracker does not run: buffers
/// with non-ASCII text, patterns it refuses, searches it gives up on.
/// Built on first use: most logs never need them, and building them costs
/// more than reading a million ASCII lines.
enum Engine {
    /// Needs look-around, backreferences or conditionals.
    Fancy(Regex),
    /// Plain: the regex crate directly, without fancy-regex's wrapper.
    Plain(regex::Regex),
}

struct Fallback {
    re: Engine,
    /// The relaxed superset, when the exact regex needs fancy features:
    /// "no match" from it is exact and cheap.
    quick: Option<regex::Regex>,
}

/// A compiled fail2ban regex with its group bookkeeping.
struct Compiled {
    /// The pattern in fancy-regex's syntax.
    translated: String,
    /// Python's semantics over ASCII bytes; None when the pattern needs
    /// something it does not do.
    program: Option<Program>,
    fallback: OnceCell<Result<Fallback, String>>,
    /// The relaxed superset's text, for the failregex set.
    relaxed: String,
    /// Named groups: (group index, name).
    names: Vec<(usize, Rc<str>)>,
    /// `alt_NAME[_N]` groups folded into NAME.
    alt: Vec<(Rc<str>, Rc<str>)>,
    /// `tuple_NAME[_N]` groups combined into NAME.
    tuple: Vec<(Rc<str>, Rc<str>)>,
    /// Group indices of `<SKIPLINES>` (skiplines0, skiplines1, ...).
    skiplines: Vec<usize>,
    /// For a prefregex of the usual shape: where its content starts,
    /// found by a DFA (see `Head`).
    head: Option<Head>,
}

/// The part of a prefregex before `<F-CONTENT>.+</F-CONTENT>$`, as a DFA.
///
/// Such a prefregex is `^HEAD(?P<content>.+)$`; on a one-line buffer (the
/// line and its newline) the content is everything after the first way
/// HEAD matches (in Python's order) that leaves a character for `.+`. The
/// DFA's leftmost-first match of `^HEAD` is exactly that first way, so,
/// when it leaves a character, it says where the content starts without a
/// search for the groups: most lines need them only if a failregex matches.
struct Head {
    dfa: regex_automata::dfa::dense::DFA<Vec<u32>>,
    /// Where every search starts (anchored, at the start of the text).
    start: regex_automata::util::primitives::StateID,
}

/// How a prefregex of that shape ends, translated.
const CONTENT_TAIL: &str = r"(?P<content>.+)(?:\n?\z)";

impl Head {
    fn new(translated: &str) -> Option<Head> {
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
    fn content_start(&self, buf: &str) -> Option<Option<usize>> {
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
struct TupleLine {
    text: Rc<str>,
    /// The date's span in `text`.
    ds: usize,
    de: usize,
}

/// A line as the search sees it: borrowed from the batch while it is only
/// looked at, or one already kept in the multi-line buffer.
#[derive(Clone, Copy, Debug)]
enum LineRef<'a> {
    Borrowed { text: &'a str, ds: usize, de: usize },
    Kept(&'a TupleLine),
}

impl TupleLine {
    fn as_ref(&self) -> LineRef<'_> {
        LineRef::Kept(self)
    }
}

impl<'a> LineRef<'a> {
    fn parts(&self) -> (&'a str, usize, usize) {
        match *self {
            LineRef::Borrowed { text, ds, de } => (text, ds, de),
            LineRef::Kept(t) => (&t.text, t.ds, t.de),
        }
    }
    fn push_without_date(&self, buf: &mut String) {
        let (text, ds, de) = self.parts();
        buf.push_str(&text[..ds]);
        buf.push_str(&text[de..]);
    }
    fn without_date_is(&self, other: &str) -> bool {
        let (text, ds, de) = self.parts();
        other.len() == ds + (text.len() - de) && other.starts_with(&text[..ds]) && other.ends_with(&text[de..])
    }
    fn to_owned(self) -> TupleLine {
        match self {
            LineRef::Borrowed { text, ds, de } => TupleLine { text: Rc::from(text), ds, de },
            LineRef::Kept(t) => t.clone(),
        }
    }
}

/// The regex buffer of some lines: each without its date, each ending in
/// a newline (fail2ban's buffer).
fn fill_buffer(buf: &mut String, lines: &[LineRef<'_>]) {
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
struct Groups(Vec<(Rc<str>, Rc<str>)>);

impl Groups {
    fn get(&self, key: &str) -> Option<&Rc<str>> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }
    fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_empty())
    }
    fn insert(&mut self, key: &Rc<str>, value: Rc<str>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.clone(), value)),
        }
    }
    fn insert_str(&mut self, key: &str, value: Rc<str>) {
        match self.0.iter_mut().find(|(k, _)| &**k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((Rc::from(key), value)),
        }
    }
    fn remove(&mut self, key: &str) -> Option<Rc<str>> {
        let i = self.0.iter().position(|(k, _)| &**k == key)?;
        Some(self.0.swap_remove(i).1)
    }
    /// Add `other`'s groups; its values win.
    fn extend(&mut self, other: Groups) {
        for (k, v) in other.0 {
            match self.0.iter_mut().find(|(key, _)| *key == k) {
                Some((_, value)) => *value = v,
                None => self.0.push((k, v)),
            }
        }
    }
    /// `self`'s groups, then `other`'s (whose values win); `other` is
    /// left empty.
    fn with(&self, other: &mut Groups) -> Groups {
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
    fn sorted(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
}

/// A match of one regex against a buffer. Lines are indices into the
/// lines the buffer was made of.
struct Hit {
    groups: Groups,
    matched: Vec<usize>,
    unmatched: Vec<usize>,
}

/// Reusable memory for searches.
#[derive(Default)]
struct SearchScratch {
    slots: Vec<usize>,
    backtrack: backtrack::Scratch,
    /// The spans of the last match's groups, by group index.
    spans: Vec<Option<(usize, usize)>>,
}

impl Compiled {
    fn new(option: &str, index: usize, python: &str, multiline: bool) -> Result<Compiled, String> {
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
    fn fallback(&self) -> Result<&Fallback, &str> {
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

    fn has_any(&self, groups: &[&str]) -> bool {
        groups.iter().any(|g| self.names.iter().any(|(_, n)| &**n == *g))
    }

    /// Search `buf`. On a match, `scratch.spans` holds the span of every
    /// group by index (group 0: the whole match).
    fn find(&self, buf: &str, ascii: bool, scratch: &mut SearchScratch) -> bool {
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
    fn groups_of(&self, buf: &str, spans: &[Option<(usize, usize)>]) -> Groups {
        let mut groups = Groups(Vec::with_capacity(self.names.len()));
        self.groups_into(buf, spans, None, &mut groups);
        groups
    }

    /// `groups_of` into `groups` (emptied first), leaving out `skip`.
    fn groups_into(&self, buf: &str, spans: &[Option<(usize, usize)>], skip: Option<&str>, groups: &mut Groups) {
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
    fn span_of(&self, name: &str, spans: &[Option<(usize, usize)>]) -> Option<(usize, usize)> {
        let (i, _) = self.names.iter().find(|(_, n)| &**n == name)?;
        spans.get(*i).copied().flatten()
    }

    /// Search `buf`, made of the lines `org`: the groups, and which lines
    /// the match covers.
    fn search(&self, buf: &str, ascii: bool, org: &[LineRef<'_>], scratch: &mut SearchScratch) -> Option<Hit> {
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
        let start = buf[..whole_start + 1.min(buf.len() - whole_start)].rfind('\n').map(|p| p + 1).unwrap_or(0);
        let end = match buf[whole_end.saturating_sub(1)..].find('\n') {
            Some(p) => whole_end.saturating_sub(1) + p + 1,
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
fn debug_log(message: &str) {
    #[cfg(target_arch = "wasm32")]
    wasmban_plugin_sdk::log::debug(message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
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

/// What fail2ban keeps per failure while merging the lines of one connection.
#[derive(Clone, Debug, Default)]
struct Fail {
    groups: Groups,
    users: Option<BTreeSet<Rc<str>>>,
    matches: Option<Vec<TupleLine>>,
    nofail_matches: Option<Vec<TupleLine>>,
    pending: bool,
}

impl Fail {
    fn update_users(&mut self) -> Option<&BTreeSet<Rc<str>>> {
        if let Some(user) = self.groups.get("user").filter(|u| !u.is_empty()).cloned() {
            self.users.get_or_insert_with(BTreeSet::new).insert(user);
        }
        self.users.as_ref()
    }
}

/// What one line produced, for the line note.
#[derive(Default)]
struct LineOutcome {
    failures: Vec<(usize, Rc<str>, Rc<Fail>)>,
    /// Rules that matched (fail2ban's failure list, helpers included).
    hits: Vec<u32>,
    /// A match that is not a helper (NOFAIL).
    matched: bool,
    /// An ignoreregex dropped a match, or a match was only a helper.
    ignored: bool,
}

/// fail2ban's connection cache: at most 100 entries, five minutes each.
struct MlfidCache {
    entries: HashMap<Rc<str>, CacheEntry, BuildHasherDefault<FxHasher>>,
    /// Insertion counter: the oldest entry goes first when the cache is full.
    next_seq: u64,
}

struct CacheEntry {
    expires: f64,
    seq: u64,
    /// Shared with the failure reported for the same line, if any (gone
    /// by the time the entry is taken again, so it is not copied).
    fail: Rc<Fail>,
}

/// Where a failure goes back into the cache once it is merged.
enum CacheSlot {
    /// The entry it was taken from: same key, age and place in line.
    Existing {
        key: Rc<str>,
        expires: f64,
        seq: u64,
    },
    New {
        key: Rc<str>,
    },
}

impl MlfidCache {
    const MAX: usize = 100;
    const MAX_AGE: f64 = 300.0;

    /// Take the live entry of `key` out (an expired one is dropped).
    fn take(&mut self, key: &str, now: f64) -> Option<(Rc<str>, CacheEntry)> {
        let (key, entry) = self.entries.remove_entry(key)?;
        (entry.expires > now).then_some((key, entry))
    }

    fn store(&mut self, slot: CacheSlot, fail: Rc<Fail>, now: f64) {
        match slot {
            CacheSlot::Existing { key, expires, seq } => {
                self.entries.insert(key, CacheEntry { expires, seq, fail });
            }
            CacheSlot::New { key } => {
                if self.entries.len() >= Self::MAX {
                    self.entries.retain(|_, e| e.expires > now);
                    while self.entries.len() >= Self::MAX {
                        let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone())
                        else {
                            break;
                        };
                        self.entries.remove(&oldest);
                    }
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.entries.insert(key, CacheEntry { expires: now + Self::MAX_AGE, seq, fail });
            }
        }
    }
}

/// The connection cache's hash: a plain multiply-rotate hash (FxHash's)
/// at a fraction of SipHash's cost. Keys come from log lines, but the cache
/// holds at most 100 entries, so colliding keys cost 100 comparisons at
/// worst.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// An id as fail2ban prints it: a valid IP in canonical form (an
/// IPv4-mapped IPv6 as IPv4), any other text as captured.
fn canonical_id(id: &Rc<str>) -> Rc<str> {
    use std::net::IpAddr;
    // A dotted quad is already canonical: no need to parse and format it.
    if is_canonical_ipv4(id) {
        return id.clone();
    }
    match id.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Rc::from(v4.to_string()),
            None => Rc::from(v6.to_string()),
        },
        Ok(ip) => Rc::from(ip.to_string()),
        Err(_) => id.clone(),
    }
}

/// Canonical forms of the ids seen last: an address is mostly seen again
/// (several lines per connection, several connections per attacker), and
/// putting an IPv6 address in canonical form means parsing and printing it.
struct CanonicalIds {
    slots: Vec<Option<(Rc<str>, Rc<str>)>>,
}

impl CanonicalIds {
    const SLOTS: usize = 256;

    fn new() -> CanonicalIds {
        CanonicalIds { slots: vec![None; Self::SLOTS] }
    }

    fn canonical(&mut self, id: &Rc<str>) -> Rc<str> {
        if is_canonical_ipv4(id) {
            return id.clone();
        }
        let mut hasher = FxHasher::default();
        hasher.write(id.as_bytes());
        let slot = &mut self.slots[hasher.finish() as usize % Self::SLOTS];
        if let Some((seen, canonical)) = slot
            && **seen == **id
        {
            return canonical.clone();
        }
        let canonical = canonical_id(id);
        *slot = Some((id.clone(), canonical.clone()));
        canonical
    }
}

/// Four decimal numbers up to 255 without leading zeros, dot-separated:
/// what `Ipv4Addr` parses and prints back unchanged.
fn is_canonical_ipv4(text: &str) -> bool {
    let mut octets = 0;
    let mut value: u32 = 0;
    let mut digits = 0;
    for &byte in text.as_bytes() {
        match byte {
            b'0'..=b'9' => {
                // A leading zero makes the text not what the parser prints.
                if digits == 1 && value == 0 {
                    return false;
                }
                value = value * 10 + u32::from(byte - b'0');
                digits += 1;
                if value > 255 {
                    return false;
                }
            }
            b'.' if digits > 0 && octets < 3 => {
                octets += 1;
                value = 0;
                digits = 0;
            }
            _ => return false,
        }
    }
    octets == 3 && digits > 0
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

/// What the date detector said of a line.
#[derive(Clone, Copy, Debug)]
struct Detected {
    /// The date's span (None: no template matched).
    span: Option<(usize, usize)>,
    /// Its time, when it reads.
    time: Option<f64>,
}

/// Where a line's date is, for the regex buffer.
enum DateSplit {
    At((usize, usize)),
    /// Undated, inheriting the last date (and its text).
    Inherit,
}

/// Where `find_single` gets its search answers.
enum Answers<'a> {
    /// It runs the regexes.
    Live,
    /// It reads what `prepare` of another instance found for this line,
    /// in the order it asks: [ignored up front], [prefregex matched, its
    /// spans], then per candidate failregex: matched, [its spans,
    /// ignored]. Anything unreadable turns it to `Live`.
    Replay(Cursor<'a>),
    /// `prepare` found that nothing matches: no search to make.
    Nothing,
}

/// A reader of `prepare`'s words.
struct Cursor<'a> {
    words: &'a [u32],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn word(&mut self) -> Option<u32> {
        let w = *self.words.get(self.at)?;
        self.at += 1;
        Some(w)
    }

    /// A search answer for `re` over `text`: whether it matched and, if it
    /// did, its named groups' spans into `spans`. None: not readable.
    fn answer(&mut self, re: &Compiled, text: &str, spans: &mut Vec<Option<(usize, usize)>>) -> Option<bool> {
        match self.word()? {
            0 => return Some(false),
            1 => {}
            _ => return None,
        }
        spans.clear();
        spans.resize(re.names.iter().map(|(i, _)| i + 1).max().unwrap_or(1), None);
        for (i, _) in &re.names {
            let (start, end) = (self.word()?, self.word()? as usize);
            if start == 0 {
                continue;
            }
            let start = start as usize - 1;
            if start > end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                return None;
            }
            spans[*i] = Some((start, end));
        }
        Some(true)
    }
}

/// Write the named groups' spans of a match of `re` (see `Cursor::answer`).
fn write_spans(re: &Compiled, spans: &[Option<(usize, usize)>], out: &mut Vec<u32>) {
    for (i, _) in &re.names {
        match spans.get(*i).copied().flatten() {
            Some((s, e)) => out.extend([s as u32 + 1, e as u32]),
            None => out.extend([0, 0]),
        }
    }
}

/// `prepare`'s answer starts with this word (then the line count).
const PREPARED: u32 = u32::from_be_bytes(*b"wbp1");
/// Per line: the record length, then flags, then what they announce.
const DATE_SPAN: u32 = 1;
const DATE_TIME: u32 = 2;
const SEARCHED: u32 = 4;
/// Searched, and nothing matched that could make the line a hit or an
/// ignored line: the feeder has nothing to do for it but date it.
const NOTHING: u32 = 8;

/// The records of `prepare`'s answer, one per line.
struct Records<'a> {
    words: &'a [u32],
    at: usize,
}

impl<'a> Records<'a> {
    /// None when the answer is not one for `lines` lines.
    fn new(words: &'a [u32], lines: usize) -> Option<Records<'a>> {
        (words.len() >= 2 && words[0] == PREPARED && words[1] as usize == lines).then_some(Records { words, at: 2 })
    }

    /// The next line's detected date and search answers (None: unreadable).
    fn next(&mut self) -> Option<(Detected, Option<Answers<'a>>)> {
        let len = *self.words.get(self.at)? as usize;
        let record = self.words.get(self.at + 1..self.at + 1 + len)?;
        self.at += 1 + len;
        let (&flags, mut rest) = record.split_first()?;
        let mut take = |n: usize| -> Option<&'a [u32]> {
            let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
            rest = tail;
            Some(head)
        };
        let span = if flags & DATE_SPAN != 0 {
            let w = take(2)?;
            Some((w[0] as usize, w[1] as usize))
        } else {
            None
        };
        let time = if flags & DATE_TIME != 0 {
            let w = take(2)?;
            Some(f64::from_bits(u64::from(w[0]) | (u64::from(w[1]) << 32)))
        } else {
            None
        };
        let answers = if flags & NOTHING != 0 {
            Some(Answers::Nothing)
        } else if flags & SEARCHED != 0 {
            Some(Answers::Replay(Cursor { words: rest, at: 0 }))
        } else {
            None
        };
        Some((Detected { span, time }, answers))
    }
}

/// The candidate set and the gate (see `RegexFilter::sets`).
struct Sets {
    candidates: Option<Candidates>,
    /// Single-line filters: the failregexes unanchored and relaxed, in one
    /// ASCII set over the whole buffer. No match means no failregex can
    /// match any part of it, so the prefregex and failregexes are skipped.
    gate: Option<regex::bytes::RegexSet>,
}

pub struct RegexFilter {
    prefregex: Option<Compiled>,
    failregex: Vec<Compiled>,
    /// Whether every regex has a backtracking program, so ASCII buffers
    /// never need the regex sets.
    all_programs: bool,
    /// The regex sets, for buffers the backtracker does not take. Built on
    /// first use.
    sets: OnceCell<Sets>,
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
    scratch: SearchScratch,
    /// The regex buffer, kept between lines for its memory.
    text: String,
    /// The prefregex's content and the spans of its match (single-line
    /// filters), kept for their memory.
    content: String,
    pre_spans: Vec<Option<(usize, usize)>>,
    /// Single-line filters whose failregexes all have programs: for each
    /// first byte of a buffer, the failregexes that can match it, in order.
    by_first_byte: Option<Rc<[Box<[usize]>]>>,
    /// Prepared answers (see `feed_prepared`) that could not be read, so
    /// that this instance did the work itself.
    unreadable_prepared: u64,
    /// A failregex match's groups, kept for their memory.
    hit_groups: Groups,
    ids: CanonicalIds,
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
        let all_programs = prefregex.iter().chain(&failregex).chain(&ignoreregex).all(|c| c.program.is_some());
        let by_first_byte = all_programs.then(|| {
            (0..256)
                .map(|byte| {
                    failregex
                        .iter()
                        .enumerate()
                        .filter(|(_, re)| {
                            let first = re.program.as_ref().and_then(Program::first_bytes_when_anchored);
                            first.is_none_or(|f| f[byte])
                        })
                        .map(|(i, _)| i)
                        .collect()
                })
                .collect::<Rc<[Box<[usize]>]>>()
        });
        Ok(RegexFilter {
            prefregex,
            all_programs,
            sets: OnceCell::new(),
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
            mlfid: MlfidCache { entries: HashMap::default(), next_seq: 0 },
            scratch: SearchScratch::default(),
            text: String::new(),
            content: String::new(),
            pre_spans: Vec::new(),
            by_first_byte,
            unreadable_prepared: 0,
            hit_groups: Groups::default(),
            ids: CanonicalIds::new(),
        })
    }

    fn feed(&mut self, lines: &str, now: f64, notes: bool) -> Scan {
        self.feed_lines(lines, now, notes, None)
    }
}

impl RegexFilter {
    /// What another instance's `feed_prepared` needs for `lines` (see WIT
    /// `prepare`): the date detector's answer for every line (it must
    /// follow every line in order), and for the first `ahead` lines of a
    /// single-line filter, the answers of every search `find_single` will
    /// make.
    pub fn prepare(&mut self, lines: &str, now: f64, ahead: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(lines.len() / 8);
        out.extend([PREPARED, 0]);
        let batch_ascii = backtrack::is_ascii(lines);
        let mut count = 0u32;
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', lines.as_bytes()).chain(std::iter::once(lines.len()));
        for end in ends {
            let line = &lines[start..end];
            start = end + 1;
            count += 1;
            let ascii = batch_ascii || backtrack::is_ascii(line);
            let at = out.len();
            out.extend([0, 0]);
            let mut flags = 0;
            let split = if self.journal {
                DateSplit::At((0, 0))
            } else {
                let detected = self.detect(line, ascii, now);
                if let Some((ds, de)) = detected.span {
                    flags |= DATE_SPAN;
                    out.extend([ds as u32, de as u32]);
                }
                if let Some(t) = detected.time {
                    flags |= DATE_TIME;
                    let bits = t.to_bits();
                    out.extend([bits as u32, (bits >> 32) as u32]);
                }
                self.date_line(line, now, detected).1
            };
            if count <= ahead && self.maxlines == 1 && ascii && self.all_programs {
                let searches = out.len();
                let something = match split {
                    DateSplit::At((ds, de)) => {
                        self.record_searches(LineRef::Borrowed { text: line, ds, de }, ascii, &mut out)
                    }
                    DateSplit::Inherit => {
                        let text = format!("{}{line}", self.last_time_text);
                        let de = self.last_time_text.len();
                        self.record_searches(LineRef::Borrowed { text: &text, ds: 0, de }, ascii, &mut out)
                    }
                };
                if something {
                    flags |= SEARCHED;
                } else {
                    flags |= NOTHING;
                    out.truncate(searches);
                }
            }
            out[at] = (out.len() - at - 1) as u32;
            out[at + 1] = flags;
        }
        out[1] = count;
        out
    }

    /// `feed`, with what `prepare` of another instance found for the same
    /// lines. An answer that does not fit (not made for these lines) is
    /// not used: the lines are then dated by this instance's own detector.
    pub fn feed_prepared(&mut self, lines: &str, now: f64, notes: bool, prepared: &[u32]) -> Scan {
        self.feed_lines(lines, now, notes, Some(prepared))
    }

    fn feed_lines(&mut self, lines: &str, now: f64, notes: bool, prepared: Option<&[u32]>) -> Scan {
        let mut scan = Scan::default();
        if notes {
            scan.notes.reserve(lines.len() / 64);
        }
        // Checked once for the batch: an ASCII batch has ASCII lines. A
        // prepared batch is not checked: the preparer only answers the
        // searches of ASCII lines (see `find_single`).
        let ascii = prepared.is_none() && backtrack::is_ascii(lines);
        let line_count = memchr::memchr_iter(b'\n', lines.as_bytes()).count() + 1;
        let mut records = prepared.and_then(|p| Records::new(p, line_count));
        if prepared.is_some() && records.is_none() {
            self.unreadable_prepared += 1;
        }
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', lines.as_bytes()).chain(std::iter::once(lines.len()));
        for (index, end) in ends.enumerate() {
            let line = &lines[start..end];
            start = end + 1;
            let prepared = match records.as_mut() {
                Some(r) => {
                    let next = r.next();
                    if next.is_none() {
                        self.unreadable_prepared += 1;
                    }
                    next
                }
                None => None,
            };
            let line_ascii = ascii || (records.is_none() && backtrack::is_ascii(line));
            let (time, outcome) = self.process_line(line, line_ascii, now, prepared);
            for (rule, id, fail) in outcome.failures {
                let mut fields: Vec<(String, String)> = fail
                    .groups
                    .sorted()
                    .into_iter()
                    .filter(|(k, _)| *k != "content")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                if let Some(users) = &fail.users {
                    fields.extend(users.iter().map(|u| ("users".to_string(), u.to_string())));
                }
                scan.failures.push(Failure {
                    line: index as u32,
                    host: id.to_string(),
                    time,
                    rule: rule as u32,
                    fields,
                    matches: fail.matches.iter().flatten().map(|t| t.text.to_string()).collect(),
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

    /// The regex sets, built on first use.
    fn sets(&self) -> &Sets {
        self.sets.get_or_init(|| {
            let candidates = Candidates::new(&self.failregex);
            let gate = if self.maxlines == 1 && self.failregex.iter().all(|r| r.skiplines.is_empty()) {
                let patterns: Vec<String> = self.failregex.iter().map(|r| dialect::unanchor(&r.relaxed)).collect();
                regex::bytes::RegexSetBuilder::new(&patterns).unicode(false).size_limit(64 << 20).build().ok()
            } else {
                None
            };
            Sets { candidates, gate }
        })
    }

    /// What the date detector says of `line`.
    fn detect(&mut self, line: &str, ascii: bool, now: f64) -> Detected {
        match self.detector.as_mut().and_then(|d| d.date_of(line, ascii, now, &self.tz)) {
            Some((m, _, time)) => Detected { span: Some((m.ds, m.de)), time },
            None => Detected { span: None, time: None },
        }
    }

    /// A line's time and where its date is, from what the detector said of
    /// it, with fail2ban's rules for lines without one (they inherit the
    /// last date if it is recent).
    fn date_line(&mut self, line: &str, now: f64, detected: Detected) -> (Option<f64>, DateSplit) {
        let mut date: Option<f64> = None;
        // The date's span; None: the line whole, undated.
        let mut split: Option<(usize, usize)> = None;
        // Whether the line takes the last date (and its text).
        let mut inherit = false;
        let recent = |last: Option<f64>| last.is_some_and(|d| d > now - 60.0);
        if let Some((ds, de)) = detected.span.filter(|(ds, de)| ds <= de && *de <= line.len()) {
            if ds == de && recent(self.last_date) {
                // An optional date that is absent: the last one, if recent.
                inherit = true;
                date = self.last_date;
            } else {
                if ds < de {
                    date = detected.time;
                    if let Some(d) = date {
                        if !backtrack::same_bytes(self.last_time_text.as_bytes(), &line.as_bytes()[ds..de]) {
                            self.last_time_text.clear();
                            self.last_time_text.push_str(&line[ds..de]);
                        }
                        self.last_date = Some(d);
                    }
                } else {
                    date = Some(now);
                }
                split = Some((ds, de));
            }
        }
        if date.is_none() && recent(self.last_date) {
            inherit = true;
            date = self.last_date;
        }
        let split = if inherit { DateSplit::Inherit } else { DateSplit::At(split.unwrap_or((0, 0))) };
        (date, split)
    }

    /// Date handling of one line, then the search. With `prepared`, the
    /// date is what the preparing instance detected, and its search
    /// answers are used where it gave them.
    fn process_line(
        &mut self,
        line: &str,
        ascii: bool,
        now: f64,
        prepared: Option<(Detected, Option<Answers<'_>>)>,
    ) -> (Option<f64>, LineOutcome) {
        let (detected, answers) = match prepared {
            Some((detected, answers)) => (Some(detected), answers),
            None => (None, None),
        };
        let mut answers = answers.unwrap_or(Answers::Live);
        if self.journal {
            self.last_date = Some(now);
            let line = LineRef::Borrowed { text: line, ds: 0, de: 0 };
            return (Some(now), self.find_failure(line, ascii, now, &mut answers));
        }
        let detected = match detected {
            Some(d) => d,
            None => self.detect(line, ascii, now),
        };
        let (date, split) = self.date_line(line, now, detected);
        if let Answers::Nothing = answers {
            return (date, LineOutcome::default());
        }
        let outcome = match split {
            DateSplit::Inherit => {
                // fail2ban reports such a line with the inherited date in front.
                let text = format!("{}{line}", self.last_time_text);
                let de = self.last_time_text.len();
                self.find_failure(
                    LineRef::Borrowed { text: &text, ds: 0, de },
                    ascii,
                    date.unwrap_or(now),
                    &mut answers,
                )
            }
            DateSplit::At((ds, de)) => {
                self.find_failure(LineRef::Borrowed { text: line, ds, de }, ascii, date.unwrap_or(now), &mut answers)
            }
        };
        (date, outcome)
    }

    /// Search the ignoreregexes; on a match in multi-line mode (or when not
    /// checking every regex) the matched lines leave the buffer.
    fn ignore_line(&mut self, buf: &str, ascii: bool, org: &[LineRef<'_>], hit: Option<&Hit>) -> bool {
        let matched_org: Vec<LineRef<'_>>;
        let matched_buf: String;
        let (buf, ascii, org) = match hit {
            Some(h) if self.maxlines > 1 => {
                matched_org = h.matched.iter().map(|&i| org[i]).collect();
                let mut b = String::new();
                fill_buffer(&mut b, &matched_org);
                matched_buf = b;
                (matched_buf.as_str(), backtrack::is_ascii(&matched_buf), matched_org.as_slice())
            }
            _ => (buf, ascii, org),
        };
        let mut found = false;
        for re in &self.ignoreregex {
            if re.search(buf, ascii, org, &mut self.scratch).is_some() {
                found = true;
                if (!self.check_all || self.maxlines > 1)
                    && let Some(h) = hit
                {
                    self.buffer = h.unmatched.iter().map(|&i| org[i].to_owned()).collect();
                }
                if !self.check_all {
                    break;
                }
            }
        }
        found
    }

    /// `ascii`: the line is ASCII (a line without its date then is too;
    /// false only means "not known").
    fn find_failure(&mut self, line: LineRef<'_>, ascii: bool, date: f64, answers: &mut Answers<'_>) -> LineOutcome {
        if self.maxlines == 1 {
            let mut buf = std::mem::take(&mut self.text);
            let mut content = std::mem::take(&mut self.content);
            let mut pre_spans = std::mem::take(&mut self.pre_spans);
            let out = self.find_single(line, ascii, date, &mut buf, &mut content, &mut pre_spans, answers);
            self.text = buf;
            self.content = content;
            self.pre_spans = pre_spans;
            return out;
        }
        let mut out = LineOutcome::default();
        let multi = self.maxlines > 1;
        // The lines of the buffer (what a match reports).
        let kept: Vec<TupleLine>;
        let org_multi: Vec<LineRef<'_>>;
        let org_single = [line];
        let org: &[LineRef<'_>] = if multi {
            self.buffer.push(line.to_owned());
            let excess = self.buffer.len().saturating_sub(self.maxlines);
            self.buffer.drain(..excess);
            kept = self.buffer.clone();
            org_multi = kept.iter().map(TupleLine::as_ref).collect();
            &org_multi
        } else {
            &org_single
        };
        // The buffer the regexes see: the lines without their dates, or
        // later what the prefregex or a match left of it. A single-line
        // filter never rebuilds it from `self.buffer`: there it can only
        // become the prefregex's content.
        let mut buf = std::mem::take(&mut self.text);
        fill_buffer(&mut buf, org);
        let mut ascii = backtrack::is_ascii(&buf);
        let mut stale = false;
        self.find_in_buffer(&mut buf, &mut ascii, &mut stale, org, date, &mut out);
        self.text = buf;
        out
    }

    /// `find_failure` for single-line filters (nearly all of them): no
    /// buffer of past lines, so nothing is copied but the line without its
    /// date and the prefregex's content, and the prefregex's groups are
    /// only read when a failregex matches.
    #[allow(clippy::too_many_arguments)]
    fn find_single(
        &mut self,
        line: LineRef<'_>,
        line_ascii: bool,
        date: f64,
        buf: &mut String,
        content: &mut String,
        pre_spans: &mut Vec<Option<(usize, usize)>>,
        answers: &mut Answers<'_>,
    ) -> LineOutcome {
        let mut out = LineOutcome::default();
        let org = [line];
        fill_buffer(buf, &org);
        // The preparer answers for ASCII lines only.
        let ascii = line_ascii || matches!(answers, Answers::Replay(_)) || backtrack::is_ascii(buf);
        if self.ignores_up_front() && self.ignored(answers, buf, ascii) {
            out.ignored = true;
            return out;
        }
        // ASCII text that some regex has no program for: the gate.
        if ascii
            && !self.all_programs
            && let Some(gate) = &self.sets().gate
            && !gate.is_match(buf.as_bytes())
        {
            return out;
        }
        pre_spans.clear();
        let mut in_content = false;
        // The prefregex's groups are not known yet (only where its content
        // starts): found when a failregex matches.
        let mut pre_pending = false;
        if let Some(pref) = &self.prefregex {
            let quick = match (&answers, &pref.head) {
                (Answers::Live, Some(head)) if ascii => head.content_start(buf),
                _ => None,
            };
            match quick {
                Some(None) => return out,
                Some(Some(start)) => {
                    content.clear();
                    content.push_str(&buf[start..buf.len() - 1]);
                    content.push('\n');
                    in_content = true;
                    pre_pending = true;
                }
                None => {
                    if !self.prefregex_matches(answers, buf, ascii, pre_spans) {
                        return out;
                    }
                    if let Some((s, e)) = self.prefregex.as_ref().and_then(|p| p.span_of("content", pre_spans))
                        && s < e
                    {
                        content.clear();
                        content.push_str(&buf[s..e]);
                        content.push('\n');
                        in_content = true;
                    }
                }
            }
        }
        let (text, text_ascii): (&str, bool) =
            if in_content { (content, ascii || backtrack::is_ascii(content)) } else { (buf, ascii) };
        let count = self.failregex.len();
        let all: Vec<usize>;
        let table = self.by_first_byte.clone();
        let order: &[usize] = match &table {
            Some(table) if text_ascii => &table[text.as_bytes().first().map_or(0, |b| *b as usize)],
            _ => {
                all = (0..count).collect();
                &all
            }
        };
        let possible = if text_ascii && self.all_programs {
            None
        } else {
            self.sets().candidates.as_ref().map(|c| c.of(text, count))
        };
        // The prefregex's groups, read once a failregex matches.
        let mut pre_groups: Option<Groups> = None;
        let mut kept_line: Option<TupleLine> = None;
        for &index in order {
            if possible.as_ref().is_some_and(|p| !p[index]) {
                continue;
            }
            if !self.failregex_matches(answers, index, text, text_ascii) {
                continue;
            }
            let mut hit_groups = std::mem::take(&mut self.hit_groups);
            self.failregex[index].groups_into(text, &self.scratch.spans, None, &mut hit_groups);
            if !self.ignoreregex.is_empty() && self.ignored(answers, text, text_ascii) {
                out.ignored = true;
                self.hit_groups = hit_groups;
                if !self.check_all {
                    break;
                }
                continue;
            }
            if pre_pending {
                pre_pending = false;
                // It matches (the head did); were it not to, the line would
                // have nothing, as without the head.
                if !self.prefregex_matches(&mut Answers::Live, buf, ascii, pre_spans) {
                    return LineOutcome::default();
                }
            }
            let pre = pre_groups.get_or_insert_with(|| {
                let mut g = Groups::default();
                if let Some(pref) = &self.prefregex {
                    pref.groups_into(buf, pre_spans, Some("content"), &mut g);
                }
                g
            });
            let groups = pre.with(&mut hit_groups);
            self.hit_groups = hit_groups;
            // The line is kept (matches report it) once, however many
            // failregexes match it.
            let kept = kept_line.get_or_insert_with(|| line.to_owned());
            if self.record_hit(index, groups, &[0], &[kept.as_ref()], date, &mut out) {
                break;
            }
        }
        out
    }

    /// Whether the ignoreregexes are tried on the whole line before
    /// anything else (fail2ban does when there are far fewer of them than
    /// failregexes).
    fn ignores_up_front(&self) -> bool {
        !self.ignoreregex.is_empty() && self.ignoreregex.len() + 2 < self.failregex.len()
    }

    /// Whether an ignoreregex matches `text`.
    fn ignored(&mut self, answers: &mut Answers<'_>, text: &str, ascii: bool) -> bool {
        if let Answers::Replay(cursor) = answers {
            match cursor.word() {
                Some(w) => return w == 1,
                None => {
                    self.unreadable_prepared += 1;
                    *answers = Answers::Live;
                    return self.ignored(answers, text, backtrack::is_ascii(text));
                }
            }
        }
        self.ignoreregex.iter().any(|re| re.find(text, ascii, &mut self.scratch))
    }

    /// Whether the prefregex matches `buf`; its groups' spans in `spans`.
    fn prefregex_matches(
        &mut self,
        answers: &mut Answers<'_>,
        buf: &str,
        ascii: bool,
        spans: &mut Vec<Option<(usize, usize)>>,
    ) -> bool {
        let Some(pref) = &self.prefregex else { return true };
        if let Answers::Replay(cursor) = answers {
            match cursor.answer(pref, buf, spans) {
                Some(found) => return found,
                None => {
                    self.unreadable_prepared += 1;
                    *answers = Answers::Live;
                    return self.prefregex_matches(answers, buf, backtrack::is_ascii(buf), spans);
                }
            }
        }
        let found = pref.find(buf, ascii, &mut self.scratch);
        spans.clear();
        spans.extend_from_slice(&self.scratch.spans);
        found
    }

    /// Whether failregex `index` matches `text`; its groups' spans in
    /// `self.scratch.spans`.
    fn failregex_matches(&mut self, answers: &mut Answers<'_>, index: usize, text: &str, ascii: bool) -> bool {
        let re = &self.failregex[index];
        if let Answers::Replay(cursor) = answers {
            match cursor.answer(re, text, &mut self.scratch.spans) {
                Some(found) => return found,
                None => {
                    self.unreadable_prepared += 1;
                    *answers = Answers::Live;
                    return self.failregex_matches(answers, index, text, backtrack::is_ascii(text));
                }
            }
        }
        re.find(text, ascii, &mut self.scratch)
    }

    /// What `find_single` will search for on `line`, searched now and
    /// written to `out` in the order it will ask (see `Answers`): every
    /// failregex that could match is tried, whether or not `feed` would go
    /// on after a match.
    /// Returns whether anything matched that can make the line a hit or
    /// an ignored line.
    fn record_searches(&mut self, line: LineRef<'_>, ascii: bool, out: &mut Vec<u32>) -> bool {
        let mut something = false;
        let mut buf = std::mem::take(&mut self.text);
        fill_buffer(&mut buf, &[line]);
        let ascii = ascii || backtrack::is_ascii(&buf);
        'line: {
            if self.ignores_up_front() {
                let ignored = self.ignoreregex.iter().any(|re| re.find(&buf, ascii, &mut self.scratch));
                out.push(ignored as u32);
                if ignored {
                    something = true;
                    break 'line;
                }
            }
            let mut content_span = None;
            // Where the prefregex's answer goes once known: with its head's
            // DFA it is only searched for when a failregex matches.
            let mut pre_pending = None;
            if let Some(pref) = &self.prefregex {
                let quick = match &pref.head {
                    Some(head) if ascii => head.content_start(&buf),
                    _ => None,
                };
                match quick {
                    Some(None) => {
                        out.push(0);
                        break 'line;
                    }
                    Some(Some(start)) => {
                        content_span = Some((start, buf.len() - 1));
                        pre_pending = Some(out.len());
                    }
                    None => {
                        let found = pref.find(&buf, ascii, &mut self.scratch);
                        out.push(found as u32);
                        if !found {
                            break 'line;
                        }
                        write_spans(pref, &self.scratch.spans, out);
                        content_span = pref.span_of("content", &self.scratch.spans).filter(|(s, e)| s < e);
                    }
                }
            }
            let mut content = std::mem::take(&mut self.content);
            let text: &str = match content_span {
                Some((s, e)) => {
                    content.clear();
                    content.push_str(&buf[s..e]);
                    content.push('\n');
                    &content
                }
                None => &buf,
            };
            let table = self.by_first_byte.clone();
            let order = table.as_ref().map(|t| &t[text.as_bytes().first().map_or(0, |b| *b as usize)]);
            for &index in order.map(|o| &o[..]).unwrap_or_default() {
                let re = &self.failregex[index];
                let found = re.find(text, ascii, &mut self.scratch);
                out.push(found as u32);
                if found {
                    something = true;
                    write_spans(re, &self.scratch.spans, out);
                    if !self.ignoreregex.is_empty() {
                        let ignored = self.ignoreregex.iter().any(|re| re.find(text, ascii, &mut self.scratch));
                        out.push(ignored as u32);
                    }
                }
            }
            self.content = content;
            if let (Some(at), true, Some(pref)) = (pre_pending, something, &self.prefregex) {
                // A failregex matched: the prefregex's groups are needed.
                let found = pref.find(&buf, ascii, &mut self.scratch);
                // Written at the end, then moved into place: no copy of it.
                let end = out.len();
                out.push(found as u32);
                if found {
                    write_spans(pref, &self.scratch.spans, out);
                }
                let moved = out.len() - end;
                out[at..].rotate_right(moved);
            }
        }
        self.text = buf;
        something
    }

    /// The body of `find_failure`, with the buffer lent to it.
    #[allow(clippy::too_many_arguments)]
    fn find_in_buffer(
        &mut self,
        buf: &mut String,
        ascii: &mut bool,
        stale: &mut bool,
        org: &[LineRef<'_>],
        date: f64,
        out: &mut LineOutcome,
    ) {
        let multi = self.maxlines > 1;
        let use_sets = !(*ascii && self.all_programs);
        if !self.ignoreregex.is_empty()
            && self.ignoreregex.len() + 2 < self.failregex.len()
            && self.ignore_line(buf, *ascii, org, None)
        {
            out.ignored = true;
            return;
        }
        if use_sets
            && *ascii
            && let Some(gate) = &self.sets().gate
            && !gate.is_match(buf.as_bytes())
        {
            return;
        }
        let mut pre_groups = Groups::default();
        if let Some(pref) = &self.prefregex {
            let Some(hit) = pref.search(buf, *ascii, org, &mut self.scratch) else { return };
            pre_groups = hit.groups;
            if let Some(content) = pre_groups.remove("content").filter(|c| !c.is_empty()) {
                if multi {
                    self.buffer = vec![TupleLine { text: content.clone(), ds: 0, de: 0 }];
                    *stale = true;
                } else {
                    buf.clear();
                    buf.push_str(&content);
                    buf.push('\n');
                    *ascii = backtrack::is_ascii(&content);
                }
            }
        }
        let count = self.failregex.len();
        // The candidates of the current buffer; found again whenever it changes.
        let mut possible: Option<Vec<bool>> = None;
        for index in 0..count {
            if *stale {
                *stale = false;
                possible = None;
                let lines: Vec<LineRef<'_>> = self.buffer.iter().map(TupleLine::as_ref).collect();
                fill_buffer(buf, &lines);
                *ascii = backtrack::is_ascii(buf);
            }
            if !(*ascii && self.all_programs)
                && let Some(c) = &self.sets().candidates
            {
                let p = possible.get_or_insert_with(|| c.of(buf, count));
                if !p[index] {
                    continue;
                }
            }
            let Some(hit) = self.failregex[index].search(buf, *ascii, org, &mut self.scratch) else { continue };
            if !self.ignoreregex.is_empty() && self.ignore_line(buf, *ascii, org, Some(&hit)) {
                out.ignored = true;
                *stale = multi;
                if !self.check_all {
                    break;
                }
                continue;
            }
            if !self.check_all || multi {
                self.buffer = hit.unmatched.iter().map(|&i| org[i].to_owned()).collect();
                *stale = multi;
            }
            let mut hit_groups = hit.groups;
            let groups = pre_groups.with(&mut hit_groups);
            if self.record_hit(index, groups, &hit.matched, org, date, out) {
                return;
            }
        }
    }

    /// Record a failregex match of `groups` (the prefregex's and its own)
    /// over the lines `matched` of `org`: merged with its connection's
    /// earlier lines, counted as a hit, reported as a failure once it has
    /// an address. Returns whether the line is done with.
    fn record_hit(
        &mut self,
        index: usize,
        groups: Groups,
        matched: &[usize],
        org: &[LineRef<'_>],
        date: f64,
        out: &mut LineOutcome,
    ) -> bool {
        let mut fail = Fail { groups, ..Fail::default() };
        let mlfid = fail.groups.get("mlfid").cloned();
        // Where the merged failure goes back into the connection cache.
        let mut slot: Option<CacheSlot> = None;
        if let Some(key) = &mlfid {
            let (merged, keep) = self.merge_failure(key, fail, matched, org, date);
            fail = merged;
            slot = keep;
            if fail.groups.truthy("nofail") && !self.check_all {
                if let Some(slot) = slot {
                    self.mlfid.store(slot, Rc::new(fail), date);
                }
                return true;
            }
        } else {
            let mut m = fail.matches.take().unwrap_or_default();
            m.extend(matched.iter().map(|&i| org[i].to_owned()));
            fail.matches = Some(m);
        }
        // The id: the address (else the <F-ID>, or for a connection
        // merge, nothing yet); an <F-ID> that differs from the address
        // is the id, and the address goes in `ip`.
        let (id, ip_field) = {
            let groups = &fail.groups;
            let fid = groups.get("fid");
            let ip = ["ip4", "ip6", "dns"].iter().find_map(|g| groups.get(g));
            let ip = ip.or(if fid.is_none() && mlfid.is_none() { None } else { fid });
            match (ip, fid) {
                (None, _) => (None, None),
                (Some(ip), Some(f)) if f != ip => (Some(self.ids.canonical(f)), Some(self.ids.canonical(ip))),
                (Some(ip), _) => (Some(self.ids.canonical(ip)), None),
            }
        };
        if id.is_none() {
            fail.pending = true;
        }
        if let Some(ip) = ip_field {
            fail.groups.insert_str("ip", ip);
        }
        // fail2ban's failure list holds this match: helpers (NOFAIL) and
        // matches still waiting for their address count as hits too.
        out.hits.push(index as u32);
        let nofail = fail.groups.truthy("nofail");
        if nofail {
            out.ignored = true;
        } else {
            out.matched = true;
        }
        let fail = Rc::new(fail);
        if let Some(slot) = slot {
            self.mlfid.store(slot, fail.clone(), date);
        }
        if let Some(id) = id.filter(|_| !nofail) {
            out.failures.push((index, id, fail));
        }
        !self.check_all
    }

    /// Merge a failure of connection `key` with what is known of it.
    /// Returns the merged failure and whether it stays cached.
    fn merge_failure(
        &mut self,
        key: &Rc<str>,
        mut fail: Fail,
        matched: &[usize],
        org: &[LineRef<'_>],
        date: f64,
    ) -> (Fail, Option<CacheSlot>) {
        let known = self.mlfid.take(key, date);
        let mut flags = 0u8;
        if fail.groups.truthy("mlfgained") {
            flags |= 8 | 1;
            if !fail.groups.truthy("nofail")
                && let Some(g) = fail.groups.get("mlfgained").cloned()
            {
                fail.groups.insert_str("nofail", g);
            }
        } else if fail.groups.truthy("nofail") {
            flags |= 1;
        }
        if fail.groups.remove("mlfforget").is_some_and(|v| !v.is_empty()) {
            flags |= 2;
        }
        let users_len;
        let keep;
        let matched = || matched.iter().map(|&i| org[i].to_owned());
        let mut fail = match known {
            Some((cached_key, CacheEntry { expires, seq, fail: entry })) => {
                let mut entry = Rc::unwrap_or_clone(entry);
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
                entry.groups.extend(std::mem::take(&mut fail.groups));
                // Forgotten: it is not put back.
                keep = (flags & 2 == 0).then_some(CacheSlot::Existing { key: cached_key, expires, seq });
                users_len = entry.users.as_ref().map_or(0, BTreeSet::len);
                entry
            }
            None if flags & 2 == 0 => {
                keep = Some(CacheSlot::New { key: key.clone() });
                users_len = fail.update_users().map_or(0, BTreeSet::len);
                fail
            }
            None => {
                keep = None;
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
                m.extend(matched());
            }
            fail.matches = Some(m);
        } else if flags & 3 == 1 {
            let mut m = fail.nofail_matches.take().unwrap_or_default();
            m.extend(matched());
            fail.nofail_matches = Some(m);
        }
        (fail, keep)
    }
}

/// The component: the `filter` interface, and `prepare`, which lets the
/// host split a filter's work between two instances (the SDK's
/// `export_filter!` exports `filter` only).
#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    use wasmban_plugin_sdk::{Filter, Options, Scan};

    use super::RegexFilter;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "prepared-filter",
        runtime_path: "wasmban_plugin_sdk::wit::rt",
        with: {
            "wasmban:plugin/types@0.1.0": wasmban_plugin_sdk::wit::filter_world::wasmban::plugin::types,
            "wasmban:plugin/log@0.1.0": wasmban_plugin_sdk::wit::filter_world::wasmban::plugin::log,
        },
    });

    use exports::wasmban::plugin::{filter, prepare};

    struct Component;

    struct Matcher(RefCell<RegexFilter>);

    impl filter::Guest for Component {
        type Matcher = Matcher;
    }

    impl filter::GuestMatcher for Matcher {
        fn create(options: Vec<(String, String)>) -> Result<filter::Matcher, String> {
            RegexFilter::new(Options::new(options)).map(|f| filter::Matcher::new(Matcher(RefCell::new(f))))
        }
        fn feed(&self, lines: String, now: f64, notes: bool) -> Scan {
            self.0.borrow_mut().feed(&lines, now, notes)
        }
    }

    impl prepare::Guest for Component {
        fn prepare(m: filter::MatcherBorrow<'_>, lines: String, now: f64, ahead: u32) -> Vec<u32> {
            m.get::<Matcher>().0.borrow_mut().prepare(&lines, now, ahead)
        }
        fn feed_prepared(
            m: filter::MatcherBorrow<'_>,
            lines: String,
            now: f64,
            notes: bool,
            prepared: Vec<u32>,
        ) -> Scan {
            m.get::<Matcher>().0.borrow_mut().feed_prepared(&lines, now, notes, &prepared)
        }
    }

    export!(Component);

    #[unsafe(link_section = "wasmban:sdk-version")]
    #[used]
    static SDK_VERSION: [u8; wasmban_plugin_sdk::SDK_VERSION.len()] = wasmban_plugin_sdk::SDK_VERSION_BYTES;
}

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

    /// A log in the shape of an sshd one: connections with several lines,
    /// undated lines, a line with non-ASCII text, noise.
    fn sshd_like_log() -> Vec<String> {
        let mut lines = Vec::new();
        for i in 0..600u32 {
            let (sec, pid, ip) = (i / 7, 1000 + i / 3, format!("192.0.2.{}", i % 50));
            let ts = format!("Aug 14 11:{:02}:{:02}", 50 + sec / 60 % 10, sec % 60);
            lines.push(match i % 9 {
                0 => format!("{ts} srv sshd[{pid}]: Connection from {ip} port 22"),
                1 => format!("{ts} srv sshd[{pid}]: Failed password for root from {ip} port 22 ssh2"),
                2 => format!("{ts} srv sshd[{pid}]: Failed password for invalid user bob{i} from {ip} port 1 ssh2"),
                3 => format!("{ts} srv sshd[{pid}]: Accepted password for alice from {ip} port 22 ssh2"),
                4 => format!("{ts} srv CRON[{pid}]: pam_unix(cron:session): session opened for user root"),
                5 => "an undated line about nothing".to_string(),
                6 => format!("{ts} srv sshd[{pid}]: Failed password for j\u{00fc}rgen from {ip} port 22 ssh2"),
                7 => format!("{ts} srv sshd[{pid}]: Disconnected from {ip} port 22"),
                _ => format!("{ts} srv sshd[{pid}]: error: Received disconnect from {ip}: 3: x: Auth fail"),
            });
        }
        lines
    }

    fn sshd_like_filter(check_all: bool) -> RegexFilter {
        let mut v: Vec<(String, String)> = vec![
            ("prefregex".into(), r"^<F-MLFID>\s*\S+ \S+\[\d+\]: </F-MLFID>(?:error: )?<F-CONTENT>.+</F-CONTENT>$".into()),
            (
                "failregex".into(),
                [
                    r"^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>",
                    r"^Connection closed by <HOST>",
                    r"^Failed \S+ for invalid user <F-USER>\S+</F-USER> from <HOST>",
                    r"^Failed \S+ for (?P<cond_inv>invalid user )?<F-USER>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)</F-USER> from <HOST>(?: port \d+)?(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)",
                    r"^<F-MLFFORGET><F-MLFGAINED>Accepted \w+</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER> from <HOST>",
                    r"^<F-NOFAIL><F-MLFFORGET>Disconnected</F-MLFFORGET></F-NOFAIL> from <HOST>",
                    r"^Received disconnect from <HOST>: 3: .*: Auth fail",
                ]
                .join("\n"),
            ),
            ("ignoreregex".into(), r"for invalid user bob7\d ".into()),
            ("timezone".into(), "CET-01CEST-02,M3.5.0,M10.5.0".into()),
        ];
        if check_all {
            v.push(("check-all".into(), "1".into()));
        }
        RegexFilter::new(Options::new(v)).unwrap()
    }

    #[test]
    fn two_instances_with_prepare_answer_as_one() {
        let lines = sshd_like_log();
        let batches: Vec<String> = lines.chunks(37).map(|c| c.join("\n")).collect();
        let now = 1124013600.0;
        for check_all in [true, false] {
            let mut alone = sshd_like_filter(check_all);
            let expected: Vec<Scan> = batches.iter().map(|b| alone.feed(b, now, true)).collect();
            // Full, dates only, and a part: the feeder's answers are the same.
            for pattern in [[u32::MAX, u32::MAX], [0, 0], [u32::MAX, 0], [13, 29]] {
                let (mut preparer, mut feeder) = (sshd_like_filter(check_all), sshd_like_filter(check_all));
                for (k, batch) in batches.iter().enumerate() {
                    let prepared = preparer.prepare(batch, now, pattern[k % 2]);
                    let scan = feeder.feed_prepared(batch, now, true, &prepared);
                    assert!(scan == expected[k], "batch {k}, check_all {check_all}, pattern {pattern:?}");
                }
                assert_eq!(feeder.unreadable_prepared, 0, "every prepared answer was used");
            }
        }
        // The log exercises what matters: failures, helpers, connections.
        let mut alone = sshd_like_filter(true);
        let failures: usize = batches.iter().map(|b| alone.feed(b, now, false).failures.len()).sum();
        assert!(failures > 100, "{failures}");
    }

    #[test]
    fn a_prefregex_head_finds_the_content_the_search_finds() {
        let lines = sshd_like_log();
        let batches: Vec<String> = lines.chunks(50).map(|c| c.join("\n")).collect();
        let heads = [
            r"^<F-MLFID>\s*\S+ \S+\[\d+\]: </F-MLFID>(?:error: )?<F-CONTENT>.+</F-CONTENT>$",
            // The head can take the whole line: then the search decides.
            r"^(?:\s*\S+)*?<F-MLFID>\s*\S*</F-MLFID><F-CONTENT>.+</F-CONTENT>$",
            r"^\s*(?P<a>\S+)?\s*(?P<b>\S+ )?<F-CONTENT>.+</F-CONTENT>$",
        ];
        for prefregex in heads {
            let make = |head: bool| {
                let mut f = sshd_like_filter(true);
                let mut pref = Compiled::new("prefregex", 0, prefregex, false).unwrap();
                assert!(pref.head.is_some(), "{prefregex} has a head");
                if !head {
                    pref.head = None;
                }
                f.prefregex = Some(pref);
                f
            };
            let (mut with, mut without) = (make(true), make(false));
            for b in &batches {
                assert!(with.feed(b, 1124013600.0, true) == without.feed(b, 1124013600.0, true), "{prefregex}");
            }
        }
    }

    #[test]
    fn prepared_answers_that_do_not_fit_are_not_used() {
        let lines = sshd_like_log();
        let batch = lines[..200].join("\n");
        let now = 1124013600.0;
        let expected = sshd_like_filter(true).feed(&batch, now, true);
        let mut preparer = sshd_like_filter(true);
        let good = preparer.prepare(&batch, now, u32::MAX);
        let garbage: Vec<Vec<u32>> = vec![
            vec![],
            vec![1, 2, 3],
            good[..good.len() / 2].to_vec(),
            good.iter().map(|w| w.wrapping_mul(2654435761)).collect(),
            good.iter().enumerate().map(|(i, w)| if i > 2 && i % 5 == 0 { u32::MAX } else { *w }).collect(),
        ];
        for prepared in garbage {
            // Never a panic; where the answer is unreadable the feeder does
            // the work itself (its own detector: here, as fresh as the other).
            let mut feeder = sshd_like_filter(true);
            let scan = feeder.feed_prepared(&batch, now, true, &prepared);
            assert_eq!(scan.notes.len(), expected.notes.len());
            assert!(feeder.unreadable_prepared > 0);
        }
    }

    #[test]
    fn canonical_dotted_quads_are_what_the_address_parser_prints() {
        for text in [
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.09",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "a.b.c.d",
            "",
            "1..2.3",
            "01.2.3.4",
            "1.2.3.4 ",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.1000",
            "00.1.2.3",
            "10.0.0.100",
            "10.200.0.250",
            "1.2.3.0",
        ] {
            let std = text.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.to_string() == text);
            assert_eq!(is_canonical_ipv4(text), std, "{text:?}");
        }
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
