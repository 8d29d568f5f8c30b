//! `prepare` and `feed_prepared`: one instance (the preparer) goes through
//! every batch first and writes, in a flat list of numbers, the date of
//! every line and the answers of the searches it had time for; the other
//! finishes the batch with them. This is that list's format, and both
//! halves.

use super::*;

/// What the date detector said of a line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Detected {
    /// The date's span (None: no template matched).
    pub(crate) span: Option<(usize, usize)>,
    /// Its time, when it reads.
    pub(crate) time: Option<f64>,
}

/// Where a line's date is, for the regex buffer.
pub(crate) enum DateSplit {
    At((usize, usize)),
    /// Undated, inheriting the last date (and its text).
    Inherit,
}

/// Where `find_single` gets its search answers.
pub(crate) enum Answers<'a> {
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
pub(crate) struct Cursor<'a> {
    pub(crate) words: &'a [u32],
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn word(&mut self) -> Option<u32> {
        let w = *self.words.get(self.at)?;
        self.at += 1;
        Some(w)
    }

    /// A search answer for `re` over `text`: whether it matched and, if it
    /// did, its named groups' spans into `spans`. None: not readable.
    pub(crate) fn answer(
        &mut self,
        re: &Compiled,
        text: &str,
        spans: &mut Vec<Option<(usize, usize)>>,
    ) -> Option<bool> {
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
pub(crate) fn write_spans(re: &Compiled, spans: &[Option<(usize, usize)>], out: &mut Vec<u32>) {
    for (i, _) in &re.names {
        match spans.get(*i).copied().flatten() {
            Some((s, e)) => out.extend([s as u32 + 1, e as u32]),
            None => out.extend([0, 0]),
        }
    }
}

/// `prepare`'s answer starts with this word (then the line count).
pub(crate) const PREPARED: u32 = u32::from_be_bytes(*b"wbp1");
/// Per line: the record length, then flags, then what they announce.
pub(crate) const DATE_SPAN: u32 = 1;
pub(crate) const DATE_TIME: u32 = 2;
pub(crate) const SEARCHED: u32 = 4;
/// Searched, and nothing matched that could make the line a hit or an
/// ignored line: the feeder has nothing to do for it but date it.
pub(crate) const NOTHING: u32 = 8;

/// The records of `prepare`'s answer, one per line.
pub(crate) struct Records<'a> {
    pub(crate) words: &'a [u32],
    pub(crate) at: usize,
}

impl<'a> Records<'a> {
    /// None when the answer is not one for `lines` lines.
    pub(crate) fn new(words: &'a [u32], lines: usize) -> Option<Records<'a>> {
        (words.len() >= 2 && words[0] == PREPARED && words[1] as usize == lines).then_some(Records { words, at: 2 })
    }

    /// The next line's detected date and search answers (None: unreadable).
    pub(crate) fn next(&mut self) -> Option<(Detected, Option<Answers<'a>>)> {
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

    /// What `find_single` will search for on `line`, searched now and
    /// written to `out` in the order it will ask (see `Answers`): every
    /// failregex that could match is tried, whether or not `feed` would go
    /// on after a match.
    /// Returns whether anything matched that can make the line a hit or
    /// an ignored line.
    pub(crate) fn record_searches(&mut self, line: LineRef<'_>, ascii: bool, out: &mut Vec<u32>) -> bool {
        let mut something = false;
        // Whether the prefregex matched: counted here when nothing else
        // did, since the feeder then skips the line.
        let mut pre_matched = false;
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
                        pre_matched = true;
                    }
                    None => {
                        let found = pref.find(&buf, ascii, &mut self.scratch);
                        out.push(found as u32);
                        if !found {
                            break 'line;
                        }
                        pre_matched = true;
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
        if pre_matched && !something {
            self.count_prefregex();
        }
        something
    }
}
