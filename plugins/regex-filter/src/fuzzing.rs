//! Entry points for the fuzz targets (`fuzz/` at the top of the
//! repository), so that the internals stay private to the component.

use wasmban_plugin_sdk::{Filter, Options};

use crate::backtrack::{NONE, Outcome, Program, Scratch, is_ascii};
use crate::date::Detector;
use crate::tz::TzRule;

/// Every stage of the dialect: tag expansion, translation to
/// fancy-regex's syntax, and the relaxed and unanchored forms the
/// candidate sets are built from. Whatever compiles is run once.
pub fn dialect(regex: &str, line: &str) {
    // One of the four variants per input (building the engines dominates
    // the cost of a run): the pattern's length picks it, so a mutation of
    // the input can reach each.
    let (use_dns, multiline) = (regex.len() % 2 == 1, regex.len() % 4 >= 2);
    let expanded = crate::dialect::expand_tags(regex, use_dns);
    let translated = crate::dialect::translate(&expanded, multiline);
    let relaxed = crate::dialect::relax(&translated);
    let unanchored = crate::dialect::unanchor(&relaxed);
    if let Ok(program) = Program::new(&translated)
        && is_ascii(line)
    {
        let mut slots = Vec::new();
        let _ = program.search(line.as_bytes(), 0, &mut slots, &mut Scratch::default());
    }
    // The relaxed forms feed `regex`'s sets: they must still be patterns
    // something can build, or at least fail cleanly.
    let _ = fancy_regex::Regex::new(&relaxed);
    let _ = regex::bytes::RegexSet::new([unanchored.as_str()]);
}

/// The date detector over `line`, with the default templates or with
/// `datepattern`, in UTC and in `tz` (a POSIX TZ string) when it parses.
pub fn date(datepattern: Option<&str>, line: &str, now: f64, tz: &str) {
    let Ok(mut detector) = Detector::new(datepattern, &crate::date::year_prefix(2026)) else {
        return;
    };
    let rules = [Some(TzRule::utc()), TzRule::parse(tz)];
    for _ in 0..2 {
        // Twice: the second find runs on the reordered templates and the
        // read memo, as on the next line of a log.
        if let Some((found, index)) = detector.find(line, is_ascii(line), now) {
            for rule in rules.iter().flatten() {
                if let Some(time) = detector.read(index, &found, line, now, rule) {
                    assert!(time.is_finite(), "date of {line:?} read as {time}");
                }
            }
        }
    }
}

/// What a search of the backtracker found, group by group, or why it
/// has no answer to compare.
pub enum Search {
    /// The spans of every group (group 0 first), `None` where a group did
    /// not take part.
    Found(Option<Vec<Option<(usize, usize)>>>),
    /// The pattern is one the backtracker hands to the general engines
    /// (or it ran out of steps): nothing to compare.
    NotRun,
}

/// Search `line` for `python_regex` (after fail2ban's tag expansion and
/// the translation) as the filter's fast engine does.
pub fn backtrack(python_regex: &str, multiline: bool, line: &str) -> Search {
    if !is_ascii(line) {
        return Search::NotRun;
    }
    let translated = crate::dialect::translate(python_regex, multiline);
    let Ok(program) = Program::new(&translated) else {
        return Search::NotRun;
    };
    let mut slots = Vec::new();
    match program.search(line.as_bytes(), 0, &mut slots, &mut Scratch::default()) {
        Outcome::GaveUp => Search::NotRun,
        Outcome::NoMatch => Search::Found(None),
        Outcome::Match => Search::Found(Some(
            (0..program.group_count())
                .map(|g| {
                    let (start, end) = (slots[2 * g], slots[2 * g + 1]);
                    (start != NONE && end != NONE).then_some((start, end))
                })
                .collect(),
        )),
    }
}

/// fail2ban's tag expansion, for the differential target (Python must see
/// the same expanded pattern).
pub fn expand_tags(regex: &str) -> String {
    crate::dialect::expand_tags(regex, false)
}

/// The whole filter: built from `options` (a failregex, maybe a
/// prefregex, datepattern, maxlines, ...) and fed `lines`.
pub fn filter(options: Vec<(String, String)>, lines: &str, now: f64) {
    let Ok(mut filter) = crate::RegexFilter::new(Options::new(options)) else {
        return;
    };
    // A record separator splits the input into batches, as reads do.
    for batch in lines.split('\u{1e}') {
        let scan = filter.feed(batch, now, true);
        let count = batch.split('\n').count();
        for failure in &scan.failures {
            assert!((failure.line as usize) < count, "failure on line {} of {count}", failure.line);
        }
    }
}
