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
mod compiled;
mod connections;
mod date;
mod dialect;
mod matching;
mod prepared;
mod tz;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use fancy_regex::Regex;
use wasmban_plugin_sdk::{Failure, Filter, LineNote, Options, Scan};

use backtrack::{Outcome, Program};
use date::Detector;
use tz::TzRule;

use compiled::*;
use connections::*;
use prepared::*;

// A filter allocates for every failure it returns, and frees it all after
// the call: with talc rather than the default dlmalloc, `wasmban regex`
// spends about 7% less CPU on the sshd benchmark (scripts/bench-regex).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

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

/// What fail2ban-regex counts besides failregex hits: lines the prefregex
/// matched, and each ignoreregex's matches.
pub(crate) struct Counts {
    pub(crate) prefregex: u64,
    pub(crate) ignoreregex: Vec<u64>,
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
    /// fail2ban-regex's counts, when asked for (`report` option).
    counts: Option<Counts>,
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
        let ignoreregex_count = ignoreregex.len();
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
            counts: options
                .get("report")
                .is_some_and(|v| v == "1" || v == "true")
                .then(|| Counts { prefregex: 0, ignoreregex: vec![0; ignoreregex_count] }),
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
    pub(crate) fn feed_lines(&mut self, lines: &str, now: f64, notes: bool, prepared: Option<&[u32]>) -> Scan {
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

    /// What fail2ban-regex reports besides failregex hits, since the filter
    /// was made: lines its prefregex matched (None: it has none, or counts
    /// are off), each ignoreregex's matches, and the lines each date
    /// template dated, as the template names itself.
    pub fn report(&self) -> (Option<u64>, Vec<u64>, Vec<(String, u64)>) {
        let prefregex = self.counts.as_ref().filter(|_| self.prefregex.is_some()).map(|c| c.prefregex);
        let ignoreregex = self.counts.as_ref().map(|c| c.ignoreregex.clone()).unwrap_or_default();
        let dates = self.detector.as_ref().map(Detector::hits).unwrap_or_default();
        (prefregex, ignoreregex, dates)
    }

    /// The regex sets, built on first use.
    pub(crate) fn sets(&self) -> &Sets {
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
    pub(crate) fn detect(&mut self, line: &str, ascii: bool, now: f64) -> Detected {
        match self.detector.as_mut().and_then(|d| d.date_of(line, ascii, now, &self.tz)) {
            Some((m, _, time)) => Detected { span: Some((m.ds, m.de)), time },
            None => Detected { span: None, time: None },
        }
    }

    /// A line's time and where its date is, from what the detector said of
    /// it, with fail2ban's rules for lines without one (they inherit the
    /// last date if it is recent).
    pub(crate) fn date_line(&mut self, line: &str, now: f64, detected: Detected) -> (Option<f64>, DateSplit) {
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
    pub(crate) fn process_line(
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
            // The preparer found nothing to match (and counted the line).
            if let Answers::Nothing = answers {
                return (Some(now), LineOutcome::default());
            }
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
}

/// The component: the `filter` interface, and `prepare`, which lets the
/// host split a filter's work between two instances.
///
/// This is the one built-in that does not export through the SDK. The SDK
/// would need a second export macro, for the `prepared-filter` world, beside
/// `export_filter!`; but both worlds export `wasmban:plugin/filter`, and
/// wit-bindgen names its exported helper macros after the interface, so two
/// `generate!` with `pub_export_macro` in one crate define the same macro
/// twice (wit-bindgen issue #1502, open). Until that is fixed the world is
/// generated here, over the SDK's `types` and `log`.
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

    use exports::wasmban::plugin::{filter, prepare, report};

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

    impl report::Guest for Component {
        fn report(m: filter::MatcherBorrow<'_>) -> report::Hits {
            let (prefregex, ignoreregex, dates) = m.get::<Matcher>().0.borrow().report();
            report::Hits { prefregex, ignoreregex, dates }
        }
    }

    export!(Component);

    #[unsafe(link_section = "wasmban:sdk-version")]
    #[used]
    static SDK_VERSION: [u8; wasmban_plugin_sdk::SDK_VERSION.len()] = wasmban_plugin_sdk::SDK_VERSION_BYTES;
}

#[cfg(test)]
mod tests;
