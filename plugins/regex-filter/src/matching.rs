//! Matching one line (or a buffer of `maxlines` lines): ignoreregex,
//! prefregex and its `<F-CONTENT>`, the failregexes in their order, and the
//! hit made into a failure.

use super::*;

impl RegexFilter {
    /// Search the ignoreregexes; on a match in multi-line mode (or when not
    /// checking every regex) the matched lines leave the buffer.
    pub(crate) fn ignore_line(&mut self, buf: &str, ascii: bool, org: &[LineRef<'_>], hit: Option<&Hit>) -> bool {
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
        for (index, re) in self.ignoreregex.iter().enumerate() {
            if re.search(buf, ascii, org, &mut self.scratch).is_some() {
                found = true;
                if let Some(counts) = &mut self.counts {
                    counts.ignoreregex[index] += 1;
                }
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
    pub(crate) fn find_failure(
        &mut self,
        line: LineRef<'_>,
        ascii: bool,
        date: f64,
        answers: &mut Answers<'_>,
    ) -> LineOutcome {
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
    pub(crate) fn find_single(
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
            // fail2ban-regex counts the prefregex here too (it reads the
            // state of its last search): counted as a search would find it.
            self.count_prefregex_of(buf, ascii);
            out.ignored = true;
            return out;
        }
        // ASCII text that some regex has no program for: the gate.
        if ascii
            && !self.all_programs
            && let Some(gate) = &self.sets().gate
            && !gate.is_match(buf.as_bytes())
        {
            self.count_prefregex_of(buf, ascii);
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
                    self.count_prefregex();
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
                    self.count_prefregex();
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
    pub(crate) fn ignores_up_front(&self) -> bool {
        !self.ignoreregex.is_empty() && self.ignoreregex.len() + 2 < self.failregex.len()
    }

    /// Whether an ignoreregex matches `text`.
    pub(crate) fn ignored(&mut self, answers: &mut Answers<'_>, text: &str, ascii: bool) -> bool {
        if let Answers::Replay(cursor) = answers {
            match cursor.word() {
                Some(1) => {
                    self.count_ignores(text);
                    return true;
                }
                Some(_) => return false,
                None => {
                    self.unreadable_prepared += 1;
                    *answers = Answers::Live;
                    return self.ignored(answers, text, backtrack::is_ascii(text));
                }
            }
        }
        let found = self.ignoreregex.iter().any(|re| re.find(text, ascii, &mut self.scratch));
        if found {
            self.count_ignores(text);
        }
        found
    }

    /// With counts on, the ignoreregexes that match `text`, each counted
    /// (fail2ban-regex counts every one that matches, as its check of
    /// every regex finds them).
    pub(crate) fn count_ignores(&mut self, text: &str) {
        let Some(counts) = &mut self.counts else { return };
        let ascii = backtrack::is_ascii(text);
        for (index, re) in self.ignoreregex.iter().enumerate() {
            if re.find(text, ascii, &mut self.scratch) {
                counts.ignoreregex[index] += 1;
            }
        }
    }

    /// With counts on, count the prefregex's match of `buf`, which the
    /// search itself skipped (no failregex could match the line).
    fn count_prefregex_of(&mut self, buf: &str, ascii: bool) {
        if self.counts.is_none() {
            return;
        }
        if let Some(pref) = &self.prefregex
            && pref.find(buf, ascii, &mut self.scratch)
            && let Some(counts) = &mut self.counts
        {
            counts.prefregex += 1;
        }
    }

    pub(crate) fn count_prefregex(&mut self) {
        if let Some(counts) = &mut self.counts {
            counts.prefregex += 1;
        }
    }

    /// Whether the prefregex matches `buf`; its groups' spans in `spans`.
    pub(crate) fn prefregex_matches(
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
    pub(crate) fn failregex_matches(
        &mut self,
        answers: &mut Answers<'_>,
        index: usize,
        text: &str,
        ascii: bool,
    ) -> bool {
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

    /// The body of `find_failure`, with the buffer lent to it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn find_in_buffer(
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
            self.count_prefregex_of(buf, *ascii);
            out.ignored = true;
            return;
        }
        if use_sets
            && *ascii
            && let Some(gate) = &self.sets().gate
            && !gate.is_match(buf.as_bytes())
        {
            self.count_prefregex_of(buf, *ascii);
            return;
        }
        let mut pre_groups = Groups::default();
        if let Some(pref) = &self.prefregex {
            let Some(hit) = pref.search(buf, *ascii, org, &mut self.scratch) else { return };
            self.count_prefregex();
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
    pub(crate) fn record_hit(
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
}
