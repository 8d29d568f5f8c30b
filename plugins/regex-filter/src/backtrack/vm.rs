//! Running a program: the search loop over start positions, and the
//! backtracking machine (forward through instructions until one fails,
//! back to the most recent choice).

use super::*;

impl Program {
    /// Search `hay` (which must be ASCII) from `from`. On a match, `slots`
    /// holds the start and end of every group (`NONE` where a group did
    /// not take part): group `g` at `2g` and `2g + 1`.
    pub fn search(&self, hay: &[u8], from: usize, slots: &mut Vec<usize>, scratch: &mut Scratch) -> Outcome {
        self.search_with::<false>(hay, from, slots, scratch, &mut 0)
    }

    /// `search`, also telling how far into `hay` it looked: the answer
    /// depends on `hay[..reach]` only (`reach` past the end: on where the
    /// text ends too), so a text that starts with those bytes gets the
    /// same answer without a search.
    pub fn search_reach(
        &self,
        hay: &[u8],
        from: usize,
        slots: &mut Vec<usize>,
        scratch: &mut Scratch,
    ) -> (Outcome, usize) {
        let mut reach = from;
        let outcome = self.search_with::<true>(hay, from, slots, scratch, &mut reach);
        (outcome, reach)
    }

    pub(super) fn search_with<const TRACK: bool>(
        &self,
        hay: &[u8],
        from: usize,
        slots: &mut Vec<usize>,
        scratch: &mut Scratch,
        reach: &mut usize,
    ) -> Outcome {
        let first = (self.first != NO_SET).then(|| &self.sets[self.first as usize]);
        // Most searches of an anchored pattern end at its first byte, or
        // at the literal it starts with.
        if self.anchored
            && (from > 0
                || first.is_some_and(|f| hay.is_empty() || !f[hay[0] as usize])
                || hay.len() < self.prefix.len()
                || !same_bytes(&hay[..self.prefix.len()], &self.prefix))
        {
            if TRACK {
                *reach = (*reach).max(self.prefix.len().max(1).min(hay.len() + 1));
            }
            return Outcome::NoMatch;
        }
        // (Not when the caller wants to know how far the search looked:
        // this looks at everything.)
        if !TRACK && let Some(required) = &self.required {
            let past = if self.anchored { self.prefix.len() } else { from };
            if hay.get(past..).is_none_or(|rest| required.find(rest).is_none()) {
                return Outcome::NoMatch;
            }
        }
        slots.clear();
        slots.resize(self.slot_count, NONE);
        let mut budget = STEP_BUDGET;
        let mut start = from;
        while start <= hay.len() {
            if self.anchored && start > 0 {
                break;
            }
            let viable = (!self.line_anchored || start == 0 || hay[start - 1] == b'\n')
                && first.is_none_or(|f| start < hay.len() && f[hay[start] as usize]);
            if TRACK {
                *reach = (*reach).max(start + 1);
            }
            if viable {
                scratch.stack.clear();
                if start > from {
                    // A failed attempt may leave writes made before its
                    // first choice.
                    slots.fill(NONE);
                }
                match self.exec::<TRACK>(
                    hay,
                    self.entry as usize,
                    start,
                    slots,
                    &mut scratch.stack,
                    0,
                    &mut budget,
                    reach,
                ) {
                    Some(end) => {
                        slots[0] = start;
                        slots[1] = end;
                        return Outcome::Match;
                    }
                    None if budget == 0 => return Outcome::GaveUp,
                    None => {}
                }
            }
            start += 1;
        }
        Outcome::NoMatch
    }

    /// Run from `pc` at `pos` until `Match` (the end position) or until
    /// every choice made since `stack`'s current height has failed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn exec<const TRACK: bool>(
        &self,
        hay: &[u8],
        mut pc: usize,
        mut pos: usize,
        slots: &mut [usize],
        stack: &mut Vec<Frame>,
        depth: usize,
        budget: &mut u64,
        reach: &mut usize,
    ) -> Option<usize> {
        // What an instruction at `pos` looked at, up to `end` (exclusive).
        macro_rules! looked {
            ($end:expr) => {
                if TRACK {
                    *reach = (*reach).max($end);
                }
            };
        }
        let bottom = stack.len();
        let ops = &self.ops[..];
        // Choices this call has pushed and not yet taken back. Before the
        // first one (at the top level), a failure ends the search, so slot
        // writes need no undo record.
        let mut choices = 0usize;
        loop {
            // Forward: run instructions until one fails.
            let failed = loop {
                let op = &ops[pc];
                if op.save != NO_SLOT {
                    let s = op.save as usize;
                    if choices > 0 || depth > 0 {
                        stack.push(Frame::Restore { slot: op.save, old: slots[s] });
                    }
                    slots[s] = pos;
                }
                match &op.inst {
                    Inst::Match => return Some(pos),
                    Inst::Byte(b) => {
                        looked!(pos + 1);
                        if pos < hay.len() && hay[pos] == *b {
                            pos += 1;
                            pc = op.next as usize;
                        } else {
                            break true;
                        }
                    }
                    Inst::Lit { start, len } => {
                        let lit = &self.pool[*start as usize..(*start + *len) as usize];
                        looked!(if hay.len() - pos >= lit.len() { pos + lit.len() } else { hay.len() + 1 });
                        if hay.len() - pos >= lit.len() && same_bytes(&hay[pos..pos + lit.len()], lit) {
                            pos += lit.len();
                            pc = op.next as usize;
                        } else {
                            break true;
                        }
                    }
                    Inst::LitFold { start, len } => {
                        let lit = &self.pool[*start as usize..(*start + *len) as usize];
                        looked!(if hay.len() - pos >= lit.len() { pos + lit.len() } else { hay.len() + 1 });
                        if hay.len() - pos >= lit.len()
                            && hay[pos..pos + lit.len()].iter().zip(lit).all(|(h, l)| h.to_ascii_lowercase() == *l)
                        {
                            pos += lit.len();
                            pc = op.next as usize;
                        } else {
                            break true;
                        }
                    }
                    Inst::Class(c) => {
                        looked!(pos + 1);
                        if pos < hay.len() && self.sets[*c as usize][hay[pos] as usize] {
                            pos += 1;
                            pc = op.next as usize;
                        } else {
                            break true;
                        }
                    }
                    Inst::Run(run) => match self.run::<TRACK>(pc, *run, hay, pos, stack, &mut choices, reach) {
                        Some(end) => {
                            pos = end;
                            pc = op.next as usize;
                        }
                        None => break true,
                    },
                    Inst::Split { primary, secondary, primary_first, secondary_first } => {
                        looked!(pos + 1);
                        let byte = hay.get(pos).copied();
                        let can = |set: u32| set == NO_SET || byte.is_some_and(|b| self.sets[set as usize][b as usize]);
                        match (can(*primary_first), can(*secondary_first)) {
                            (true, true) => {
                                stack.push(Frame::Alt { pc: *secondary, pos });
                                choices += 1;
                                pc = *primary as usize;
                            }
                            (true, false) => pc = *primary as usize,
                            (false, true) => pc = *secondary as usize,
                            (false, false) => break true,
                        }
                    }
                    Inst::SplitNeeds { primary, secondary, primary_first, secondary_first, needs } => {
                        looked!(pos + 1);
                        let byte = hay.get(pos).copied();
                        let can = |set: u32| set == NO_SET || byte.is_some_and(|b| self.sets[set as usize][b as usize]);
                        let mut primary_can = can(*primary_first);
                        // (Not when the caller wants to know how far the
                        // search looked: this looks at everything.)
                        if primary_can && !TRACK {
                            primary_can = self.finders[*needs as usize].find(&hay[pos.min(hay.len())..]).is_some();
                        }
                        match (primary_can, can(*secondary_first)) {
                            (true, true) => {
                                stack.push(Frame::Alt { pc: *secondary, pos });
                                choices += 1;
                                pc = *primary as usize;
                            }
                            (true, false) => pc = *primary as usize,
                            (false, true) => pc = *secondary as usize,
                            (false, false) => break true,
                        }
                    }
                    Inst::Jmp(t) => pc = *t as usize,
                    Inst::Dispatch { table, .. } => {
                        looked!(pos + 1);
                        let byte = hay.get(pos).map_or(256, |b| *b as usize);
                        let list = &self.lists[self.tables[*table as usize][byte] as usize];
                        let Some((&first, rest)) = list.split_first() else { break true };
                        for &alt in rest.iter().rev() {
                            stack.push(Frame::Alt { pc: alt, pos });
                        }
                        choices += rest.len();
                        pc = first as usize;
                    }
                    Inst::Save(s) => {
                        if choices > 0 || depth > 0 {
                            stack.push(Frame::Restore { slot: *s, old: slots[*s as usize] });
                        }
                        slots[*s as usize] = pos;
                        pc = op.next as usize;
                    }
                    Inst::Assert(look) => {
                        looked!(match look {
                            Look::StartText => 0,
                            Look::EndTextOrFinalNewline => pos + 2,
                            _ => pos + 1,
                        });
                        if !holds(*look, hay, pos) {
                            break true;
                        }
                        pc = op.next as usize;
                    }
                    Inst::Peek { kind, alts, width } => {
                        if !self.peek_holds::<TRACK>(*kind, *alts, *width, hay, pos, reach) {
                            break true;
                        }
                        pc = op.next as usize;
                    }
                    Inst::LoopIfProgress { mark, head } => {
                        if slots[*mark as usize] != pos {
                            pc = *head as usize;
                        } else {
                            pc = op.next as usize;
                        }
                    }
                    Inst::Backref { group, fold } => {
                        let (s, e) = (slots[*group as usize * 2], slots[*group as usize * 2 + 1]);
                        // Python: a reference to a group that did not match fails.
                        if s == NONE || e == NONE || e < s {
                            break true;
                        }
                        let want = &hay[s..e];
                        looked!(if hay.len() - pos >= want.len() { pos + want.len() } else { hay.len() + 1 });
                        if hay.len() - pos < want.len() {
                            break true;
                        }
                        let got = &hay[pos..pos + want.len()];
                        let same = if *fold { got.eq_ignore_ascii_case(want) } else { same_bytes(got, want) };
                        if !same {
                            break true;
                        }
                        pos += want.len();
                        pc = op.next as usize;
                    }
                    Inst::IfGroup { group, otherwise } => {
                        // Python: both ends set, in order.
                        let (s, e) = (slots[*group as usize * 2], slots[*group as usize * 2 + 1]);
                        let matched = s != NONE && e != NONE && e >= s;
                        pc = if matched { op.next as usize } else { *otherwise as usize };
                    }
                    Inst::Sub { kind, start, width } => {
                        let sub = SubCall { depth, budget: &mut *budget, reach: &mut *reach };
                        match self.sub::<TRACK>(*kind, *start, *width, hay, pos, slots, stack, sub) {
                            Some(end) => {
                                pos = end;
                                pc = op.next as usize;
                            }
                            None => break true,
                        }
                    }
                }
            };
            debug_assert!(failed);
            match self.resume(hay, stack, bottom, slots, budget, &mut choices) {
                Some((resume_pc, resume_pos)) => {
                    pc = resume_pc;
                    pos = resume_pos;
                }
                None => return None,
            }
        }
    }

    /// A run instruction at `pc`, from `pos`: the end it takes first, with
    /// the choice to give back (greedy) or take more (lazy) pushed on
    /// `stack`; `None` when it cannot match here.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn run<const TRACK: bool>(
        &self,
        pc: usize,
        run: RunInst,
        hay: &[u8],
        pos: usize,
        stack: &mut Vec<Frame>,
        choices: &mut usize,
        reach: &mut usize,
    ) -> Option<usize> {
        macro_rules! looked {
            ($end:expr) => {
                if TRACK {
                    *reach = (*reach).max($end);
                }
            };
        }
        let set = &self.sets[run.class as usize];
        let limit = hay.len().min(pos.saturating_add(run.max as usize));
        let min_end = pos + run.min as usize;
        let next = (run.next != NO_SET).then(|| &self.sets[run.next as usize]);
        if run.greedy {
            let end = self.run_end(set, run.class, hay, pos, limit);
            looked!(end + 1);
            if end < min_end {
                return None;
            }
            // The best give-back below `end` is found when popped.
            if !run.possessive && end > min_end {
                stack.push(Frame::Greedy { run: pc as u32, low: min_end, at: end });
                *choices += 1;
            }
            let fits = next.is_none_or(|n| end < hay.len() && n[hay[end] as usize]);
            return fits.then_some(end);
        }
        if min_end > limit || !hay[pos..min_end].iter().all(|b| set[*b as usize]) {
            looked!(min_end.min(hay.len() + 1));
            return None;
        }
        let high = self.run_end(set, run.class, hay, min_end, limit);
        looked!(high + 1);
        if high > min_end {
            stack.push(Frame::Lazy { run: pc as u32, at: min_end, high });
            *choices += 1;
        }
        if next.is_some_and(|n| min_end >= hay.len() || !n[hay[min_end] as usize]) {
            return None;
        }
        Some(min_end)
    }

    /// A look-around or atomic group, run as a program of its own from
    /// `start`: where matching goes on (`pos`, or the group's end when
    /// atomic), or `None` when it fails here.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn sub<const TRACK: bool>(
        &self,
        kind: SubKind,
        start: u32,
        width: u32,
        hay: &[u8],
        pos: usize,
        slots: &mut [usize],
        stack: &mut Vec<Frame>,
        call: SubCall<'_>,
    ) -> Option<usize> {
        let SubCall { depth, budget, reach } = call;
        *budget = budget.saturating_sub(1);
        if depth > 32 {
            *budget = 0;
            return None;
        }
        let at = match kind {
            SubKind::Behind | SubKind::NotBehind => pos.checked_sub(width as usize),
            _ => Some(pos),
        };
        let sub_bottom = stack.len();
        let found =
            at.and_then(|at| self.exec::<TRACK>(hay, start as usize, at, slots, stack, depth + 1, budget, reach));
        if *budget == 0 {
            return None;
        }
        let positive = matches!(kind, SubKind::Ahead | SubKind::Behind | SubKind::Atomic);
        match (found, positive) {
            (Some(end), true) => {
                // No going back into it; its captures stay (and are undone
                // if this path fails later).
                keep_restores(stack, sub_bottom);
                Some(if kind == SubKind::Atomic { end } else { pos })
            }
            (None, false) => Some(pos),
            (Some(_), false) => {
                unwind(stack, sub_bottom, slots);
                None
            }
            (None, true) => None,
        }
    }

    /// Whether a look-around of literals, classes and assertions (`alts`)
    /// holds at `pos`, as `kind` asks.
    #[inline(always)]
    fn peek_holds<const TRACK: bool>(
        &self,
        kind: SubKind,
        alts: u32,
        width: u32,
        hay: &[u8],
        pos: usize,
        reach: &mut usize,
    ) -> bool {
        macro_rules! looked {
            ($end:expr) => {
                if TRACK {
                    *reach = (*reach).max($end);
                }
            };
        }
        let at = match kind {
            SubKind::Behind | SubKind::NotBehind => pos.checked_sub(width as usize),
            _ => Some(pos),
        };
        let found = at.is_some_and(|at| {
            self.peeks[alts as usize].iter().any(|alt| match *alt {
                PeekAlt::Lit { start, len, fold } => {
                    let lit = &self.pool[start as usize..(start + len) as usize];
                    looked!(if hay.len() - at.min(hay.len()) >= lit.len() { at + lit.len() } else { hay.len() + 1 });
                    at <= hay.len()
                        && hay.len() - at >= lit.len()
                        && if fold {
                            hay[at..at + lit.len()].eq_ignore_ascii_case(lit)
                        } else {
                            same_bytes(&hay[at..at + lit.len()], lit)
                        }
                }
                PeekAlt::Class(c) => {
                    looked!(at + 1);
                    at < hay.len() && self.sets[c as usize][hay[at] as usize]
                }
                PeekAlt::Assert(look) => {
                    looked!(at + 1);
                    holds(look, hay, at)
                }
            })
        });
        found == matches!(kind, SubKind::Ahead | SubKind::Behind)
    }

    /// Backward: resume the most recent choice made since `bottom`, giving
    /// back slot writes on the way; where to go on from (`pc`, `pos`), or
    /// `None` when every choice has failed (or the budget is spent).
    #[inline(always)]
    fn resume(
        &self,
        hay: &[u8],
        stack: &mut Vec<Frame>,
        bottom: usize,
        slots: &mut [usize],
        budget: &mut u64,
        choices: &mut usize,
    ) -> Option<(usize, usize)> {
        loop {
            if stack.len() <= bottom || *budget == 0 {
                unwind(stack, bottom, slots);
                return None;
            }
            *budget -= 1;
            let top = stack.len() - 1;
            match stack[top] {
                Frame::Restore { slot, old } => {
                    slots[slot as usize] = old;
                    stack.pop();
                }
                Frame::Alt { pc, pos } => {
                    stack.pop();
                    *choices -= 1;
                    return Some((pc as usize, pos));
                }
                Frame::Greedy { run, low, at } => match self.give_back(run, hay, low, at) {
                    Some(end) => {
                        if end > low {
                            stack[top] = Frame::Greedy { run, low, at: end };
                        } else {
                            stack.pop();
                            *choices -= 1;
                        }
                        return Some((self.ops[run as usize].next as usize, end));
                    }
                    None => {
                        stack.pop();
                        *choices -= 1;
                    }
                },
                Frame::Lazy { run, at, high } => match self.take_more(run, hay, at, high) {
                    Some(end) => {
                        if end < high {
                            stack[top] = Frame::Lazy { run, at: end, high };
                        } else {
                            stack.pop();
                            *choices -= 1;
                        }
                        return Some((self.ops[run as usize].next as usize, end));
                    }
                    None => {
                        stack.pop();
                        *choices -= 1;
                    }
                },
            }
        }
    }

    /// The follower set of the run instruction at `run`, if it has one.
    #[inline(always)]
    fn follower(&self, run: u32) -> Option<&ByteSet> {
        let Inst::Run(RunInst { next, .. }) = &self.ops[run as usize].inst else {
            unreachable!("a run frame names a run")
        };
        (*next != NO_SET).then(|| &self.sets[*next as usize])
    }

    /// A greedy run given back one byte at a time from `at`, down to `low`:
    /// the first end where its follower can start.
    #[inline(always)]
    fn give_back(&self, run: u32, hay: &[u8], low: usize, at: usize) -> Option<usize> {
        let next = self.follower(run);
        (low..at).rev().find(|&end| next.is_none_or(|n| end < hay.len() && n[hay[end] as usize]))
    }

    /// A lazy run taking one more byte at a time from `at`, up to `high`:
    /// the first end where its follower can start.
    #[inline(always)]
    fn take_more(&self, run: u32, hay: &[u8], at: usize, high: usize) -> Option<usize> {
        let next = self.follower(run);
        (at + 1..=high).find(|&end| next.is_none_or(|n| end < hay.len() && n[hay[end] as usize]))
    }
}

/// What a nested run shares with its caller: how deep it is, the step
/// budget and how far the search looked.
pub(super) struct SubCall<'a> {
    depth: usize,
    budget: &'a mut u64,
    reach: &'a mut usize,
}

impl Program {
    /// Where a run of `class` bytes starting at `from` ends (at most at
    /// `limit`). `.` and `(?s).` are the common classes of long runs
    /// (`.+`, `.*?`): found by memchr instead of a byte at a time. Inlined:
    /// most runs are a few bytes (`\d{1,3}`, `\s+`), where a call costs
    /// more than the loop.
    #[inline(always)]
    pub(super) fn run_end(&self, set: &ByteSet, class: u32, hay: &[u8], from: usize, limit: usize) -> usize {
        if class == self.any_but_newline {
            return self.newline_or(hay, from, limit);
        }
        if class == self.any_byte {
            return limit.max(from);
        }
        let bytes = &hay[..limit.max(from)];
        let mut end = from;
        while let Some(&b) = bytes.get(end)
            && set[b as usize]
        {
            end += 1;
        }
        end
    }

    #[inline(never)]
    pub(super) fn newline_or(&self, hay: &[u8], from: usize, limit: usize) -> usize {
        if from >= limit {
            return from;
        }
        memchr::memchr(b'\n', &hay[from..limit]).map_or(limit, |i| from + i)
    }
}

/// Drop every choice above `bottom`, keeping the slot restores (so that a
/// later failure still undoes the captures made there).
pub(super) fn keep_restores(stack: &mut Vec<Frame>, bottom: usize) {
    let mut write = bottom;
    for read in bottom..stack.len() {
        if let Frame::Restore { .. } = stack[read] {
            stack[write] = stack[read];
            write += 1;
        }
    }
    stack.truncate(write);
}

/// Pop everything above `bottom`, undoing captures.
pub(super) fn unwind(stack: &mut Vec<Frame>, bottom: usize, slots: &mut [usize]) {
    while stack.len() > bottom {
        if let Some(Frame::Restore { slot, old }) = stack.pop() {
            slots[slot as usize] = old;
        }
    }
}
