//! Finding the date in a line: the templates tried in the order that
//! fail2ban's detector keeps (the last hit first), with memos that let a
//! line like the last one skip the search.

use super::*;

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
    pub(super) from: usize,
    pub(super) to: usize,
    /// Found by `search_line`, whose memo holds the spans of its groups.
    pub(super) remembered: bool,
}

impl DateMatch {
    /// The match whose group spans are `spans` (0: whole, 1: the date).
    pub(super) fn of(spans: &[Option<(usize, usize)>], from: usize, to: usize) -> Option<DateMatch> {
        let whole = spans.first().copied().flatten()?;
        let date = spans.get(1).copied().flatten().unwrap_or(whole);
        Some(DateMatch { start: whole.0, end: whole.1, ds: date.0, de: date.1, from, to, remembered: false })
    }
}

/// What the last whole-line search of a template looked at, and found.
pub(super) struct SearchMemo {
    pub(super) template: usize,
    /// The line up to `reach` (the whole line when the search looked at
    /// where it ends).
    pub(super) text: String,
    pub(super) reach: usize,
    pub(super) len: usize,
    /// What it found: the span of every group (empty: no match).
    pub(super) spans: Vec<Option<(usize, usize)>>,
}

impl SearchMemo {
    /// Whether a search of `line` must give the same answer: it starts
    /// with everything the remembered search looked at (and, if that
    /// search looked at the end of its line, ends there too). Only ASCII
    /// lines: the remembered answer is the backtracker's.
    pub(super) fn applies_to(&self, line: &str, ascii: bool) -> bool {
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
    pub(super) templates: Vec<Template>,
    pub(super) last_pos: (usize, Option<char>, Option<char>),
    pub(super) last_end: (usize, Option<char>, Option<char>),
    pub(super) last_index: usize,
    pub(super) first_unused: usize,
    /// Zone for timestamps without one (`logtimezone`), minutes east.
    pub default_offset: Option<i64>,
    /// The last date read: template, text and host time, and the result.
    pub(super) read_memo: Option<ReadMemo>,
    pub(super) search_memo: Option<SearchMemo>,
    /// The last answer of `date_of`, when a line like the last one gets it
    /// again (see there).
    pub(super) repeat: Option<Repeat>,
    pub(super) scratch: Scratch,
}

/// What `date_of` answered for the last line.
pub(super) struct Repeat {
    pub(super) index: usize,
    pub(super) now: u64,
    pub(super) found: DateMatch,
    pub(super) time: Option<f64>,
}

impl Detector {
    /// Each template that dated a line, with how many, in the detector's
    /// order (the most used first, as it reorders them).
    pub fn hits(&self) -> Vec<(String, u64)> {
        self.templates.iter().filter(|t| t.hits > 0).map(|t| (t.name.clone(), t.hits)).collect()
    }

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

    pub(super) fn search(t: &Template, scratch: &mut Scratch, line: &str, from: usize, to: usize) -> Option<DateMatch> {
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
    pub(super) fn search_line(
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

    pub(super) fn char_before(line: &str, at: usize) -> Option<char> {
        if at == 0 {
            // Python's line[-1:0] is empty.
            return None;
        }
        // A position carried over from another line may fall inside a
        // character of this one: no character, and the search starts over.
        line.get(..at.min(line.len())).and_then(|s| s.chars().next_back())
    }

    pub(super) fn char_at(line: &str, at: usize) -> Option<char> {
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

    pub(super) fn weight(t: &Template) -> f64 {
        t.hits as f64 * t.weight / (t.distance.max(1) as f64)
    }

    /// Move a template that just matched towards the front.
    pub(super) fn reorder(&mut self, num: usize) -> usize {
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

    pub(super) fn read_uncached(
        &mut self,
        index: usize,
        m: &DateMatch,
        line: &str,
        now: f64,
        tz: &TzRule,
    ) -> Option<f64> {
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
