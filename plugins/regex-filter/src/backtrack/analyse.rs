//! What the program learns about itself once whole, before any search:
//! where jumps lead, the first bytes of branches, what follows each run,
//! the literal every match holds, anchoring.

use super::*;

impl Program {
    /// Fill in what can only be known once the program is whole: first
    /// byte sets of branches, what follows each run, anchoring.
    pub(super) fn link(&mut self) {
        // Jumps to jumps (the end of a branch in a branch) go straight on.
        let through = |insts: &[Inst], mut t: u32| {
            for _ in 0..insts.len() {
                match insts[t as usize] {
                    Inst::Jmp(u) if u != t => t = u,
                    _ => break,
                }
            }
            t
        };
        for pc in 0..self.insts.len() {
            let threaded = match &self.insts[pc] {
                Inst::Jmp(t) => Inst::Jmp(through(&self.insts, *t)),
                Inst::Split { primary, secondary, .. } => Inst::Split {
                    primary: through(&self.insts, *primary),
                    secondary: through(&self.insts, *secondary),
                    primary_first: NO_SET,
                    secondary_first: NO_SET,
                },
                Inst::IfGroup { group, otherwise } => {
                    Inst::IfGroup { group: *group, otherwise: through(&self.insts, *otherwise) }
                }
                _ => continue,
            };
            self.insts[pc] = threaded;
        }
        for pc in 0..self.insts.len() {
            match self.insts[pc].clone() {
                Inst::Split { primary, secondary, .. } => {
                    let primary_first = self.first_set(primary as usize);
                    let secondary_first = self.first_set(secondary as usize);
                    self.insts[pc] = Inst::Split { primary, secondary, primary_first, secondary_first };
                }
                Inst::Dispatch { branches, .. } => {
                    let firsts: Vec<u32> = branches.iter().map(|&b| self.first_set(b as usize)).collect();
                    let mut table = [0u32; 257];
                    for (byte, entry) in table.iter_mut().enumerate() {
                        let list: Vec<u32> = branches
                            .iter()
                            .zip(&firsts)
                            .filter(|(_, f)| **f == NO_SET || (byte < 256 && self.sets[**f as usize][byte]))
                            .map(|(b, _)| *b)
                            .collect();
                        let index = match self.lists.iter().position(|l| **l == *list) {
                            Some(i) => i,
                            None => {
                                self.lists.push(list.into_boxed_slice());
                                self.lists.len() - 1
                            }
                        };
                        *entry = index as u32;
                    }
                    self.tables.push(table);
                    let table = (self.tables.len() - 1) as u32;
                    self.insts[pc] = Inst::Dispatch { branches, table };
                }
                Inst::Run(RunInst { class, min, max, greedy, .. }) => {
                    let next = self.first_set_of_next_byte(pc + 1);
                    let possessive = greedy
                        && next != NO_SET
                        && (0..256).all(|b| !(self.sets[class as usize][b] && self.sets[next as usize][b]));
                    self.insts[pc] = Inst::Run(RunInst { class, min, max, greedy, next, possessive });
                }
                _ => {}
            }
        }
        let mut pc = 0;
        while let Inst::Save(_) = self.insts[pc] {
            pc += 1;
        }
        match self.insts[pc] {
            Inst::Assert(Look::StartText) => self.anchored = true,
            Inst::Assert(Look::StartLine) => self.line_anchored = true,
            _ => {}
        }
        self.first = self.first_set(0);
    }

    /// Turn the linked instructions into what runs: each instruction gets
    /// its successor (through any jumps, which are then never run), and a
    /// `Save` whose successor has no other way in is folded into it. Fewer
    /// dispatches: an interpreter's cost is mostly per instruction.
    pub(super) fn finish(&mut self) {
        let insts = std::mem::take(&mut self.insts);
        let n = insts.len();
        let through = |mut t: usize| {
            for _ in 0..n {
                match insts.get(t) {
                    Some(Inst::Jmp(u)) if *u as usize != t => t = *u as usize,
                    _ => break,
                }
            }
            t
        };
        let falls_through =
            |inst: &Inst| !matches!(inst, Inst::Jmp(_) | Inst::Match | Inst::Split { .. } | Inst::Dispatch { .. });
        let mut ops: Vec<Op> = insts
            .iter()
            .enumerate()
            .map(|(pc, inst)| Op { inst: inst.clone(), next: through((pc + 1).min(n - 1)) as u32, save: NO_SLOT })
            .collect();
        for op in &mut ops {
            match &mut op.inst {
                Inst::Split { primary, secondary, .. } => {
                    *primary = through(*primary as usize) as u32;
                    *secondary = through(*secondary as usize) as u32;
                }
                Inst::IfGroup { otherwise, .. } => *otherwise = through(*otherwise as usize) as u32,
                Inst::LoopIfProgress { head, .. } => *head = through(*head as usize) as u32,
                Inst::Sub { start, .. } => *start = through(*start as usize) as u32,
                _ => {}
            }
        }
        for list in &mut self.lists {
            for b in list.iter_mut() {
                *b = through(*b as usize) as u32;
            }
        }
        // How many ways into each instruction (jumps aside: nothing reaches
        // them any more).
        let mut ways_in = vec![0u32; n];
        ways_in[through(0)] += 1;
        for (pc, op) in ops.iter().enumerate() {
            if matches!(insts[pc], Inst::Jmp(_)) {
                continue;
            }
            if falls_through(&op.inst) {
                ways_in[op.next as usize] += 1;
            }
            match &op.inst {
                Inst::Split { primary, secondary, .. } => {
                    ways_in[*primary as usize] += 1;
                    ways_in[*secondary as usize] += 1;
                }
                Inst::IfGroup { otherwise, .. } => ways_in[*otherwise as usize] += 1,
                Inst::LoopIfProgress { head, .. } => ways_in[*head as usize] += 1,
                Inst::Sub { start, .. } => ways_in[*start as usize] += 1,
                Inst::Dispatch { table, .. } => {
                    let mut seen: Vec<u32> = Vec::new();
                    for &list in self.tables[*table as usize].iter() {
                        for &b in self.lists[list as usize].iter() {
                            if !seen.contains(&b) {
                                seen.push(b);
                                ways_in[b as usize] += 1;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // Fold saves into their successors, from the end (a run of saves
        // folds its last one).
        let mut forward: Vec<u32> = (0..n as u32).collect();
        let resolve = |forward: &[u32], mut t: u32| {
            while forward[t as usize] != t {
                t = forward[t as usize];
            }
            t
        };
        for pc in (0..n).rev() {
            let Inst::Save(slot) = ops[pc].inst else { continue };
            if ops[pc].save != NO_SLOT {
                continue;
            }
            let after = resolve(&forward, ops[pc].next) as usize;
            if ways_in[pc] > 0 && after != pc && ways_in[after] == 1 && ops[after].save == NO_SLOT {
                ops[after].save = slot;
                forward[pc] = after as u32;
                // The save's ways in now lead to its successor.
                ways_in[after] = ways_in[pc];
            }
        }
        let resolve = |t: u32| resolve(&forward, t);
        for op in &mut ops {
            op.next = resolve(op.next);
            match &mut op.inst {
                Inst::Split { primary, secondary, .. } => {
                    *primary = resolve(*primary);
                    *secondary = resolve(*secondary);
                }
                Inst::IfGroup { otherwise, .. } => *otherwise = resolve(*otherwise),
                Inst::LoopIfProgress { head, .. } => *head = resolve(*head),
                Inst::Sub { start, .. } => *start = resolve(*start),
                _ => {}
            }
        }
        for list in &mut self.lists {
            for b in list.iter_mut() {
                *b = resolve(*b);
            }
        }
        self.entry = resolve(through(0) as u32);
        // The literal every match of an anchored program starts with: the
        // instructions run straight after the start, while they are text.
        let mut prefix = Vec::new();
        // Instructions from the entry that the prefix stands for.
        let mut prefix_ops = 0;
        if self.anchored {
            let mut pc = self.entry as usize;
            if let Inst::Assert(Look::StartText) = ops[pc].inst {
                pc = ops[pc].next as usize;
                prefix_ops += 1;
            }
            while prefix.len() < 64 {
                match &ops[pc].inst {
                    Inst::Byte(b) => prefix.push(*b),
                    Inst::Lit { start, len } => {
                        prefix.extend_from_slice(&self.pool[*start as usize..(*start + *len) as usize])
                    }
                    _ => break,
                }
                prefix_ops += 1;
                pc = ops[pc].next as usize;
            }
        }
        self.prefix = prefix.into_boxed_slice();
        self.required = self.required_literal(&ops, prefix_ops);
        for (pc, lit) in self.branch_needs(&ops) {
            if let Inst::Split { primary, secondary, primary_first, secondary_first } = ops[pc].inst {
                let needs = self.finders.len() as u32;
                self.finders.push(memchr::memmem::Finder::new(&lit).into_owned());
                ops[pc].inst = Inst::SplitNeeds { primary, secondary, primary_first, secondary_first, needs };
            }
        }
        self.ops = ops;
    }

    /// For alternations whose first branch must run through a literal
    /// that the second need not, after work without bound (a run): that
    /// literal, by the alternation's instruction. Looking for it once
    /// spares a search that cannot succeed (sshd's `(?P<cond_user>\S+)|...
    /// (?(cond_user): |...)` fails only at the end of the line when there
    /// is no ": ").
    ///
    /// What a way must run through is found by a fixpoint over
    /// (instruction, groups known to be set) states, so that a conditional
    /// on a group the branch itself sets takes its first arm only.
    pub(super) fn branch_needs(&self, ops: &[Op]) -> Vec<(usize, Vec<u8>)> {
        let Some(end) = ops.len().checked_sub(1) else { return Vec::new() };
        // The literals that can be needed: the longest 64.
        let mut lits: Vec<(usize, &[u8])> = ops
            .iter()
            .enumerate()
            .filter_map(|(pc, op)| match op.inst {
                Inst::Lit { start, len } if len >= 2 => Some((pc, &self.pool[start as usize..(start + len) as usize])),
                _ => None,
            })
            .collect();
        if lits.is_empty() || !ops.iter().any(|op| matches!(op.inst, Inst::Split { .. })) {
            return Vec::new();
        }
        lits.sort_by_key(|(pc, lit)| (std::cmp::Reverse(lit.len()), *pc));
        lits.truncate(64);
        let bit_of = |pc: usize| lits.iter().position(|(p, _)| *p == pc).map(|i| 1u64 << i);
        // The groups conditionals test (at most 3 are followed).
        let mut tested: Vec<u32> = Vec::new();
        for op in ops {
            if let Inst::IfGroup { group, .. } = op.inst
                && !tested.contains(&group)
            {
                tested.push(group);
            }
        }
        if tested.len() > 3 {
            tested.clear();
        }
        let states = 1usize << tested.len();
        // How an instruction changes what is known: its end slot sets a
        // group; its start slot (a new try of the group) unsets it; a
        // look-around may do either.
        let after = |op: &Op, known: usize| -> usize {
            let mut known = known;
            let mut touch = |slot: u32| {
                if let Some(i) = tested.iter().position(|g| slot == 2 * g + 1) {
                    known |= 1 << i;
                } else if let Some(i) = tested.iter().position(|g| slot == 2 * g) {
                    known &= !(1 << i);
                }
            };
            if op.save != NO_SLOT {
                touch(op.save);
            }
            match op.inst {
                Inst::Save(slot) => touch(slot),
                Inst::Sub { .. } => known = 0,
                _ => {}
            }
            known
        };
        // A conditional on a group known to be set takes its first arm only.
        let known_set = |op: &Op, known: usize| match op.inst {
            Inst::IfGroup { group, .. } => {
                tested.iter().position(|g| *g == group).is_some_and(|i| known & (1 << i) != 0)
            }
            _ => false,
        };
        // needs[pc * states + known]: literals every way from there to the
        // end runs through (all of them until shown otherwise).
        let mut needs = vec![u64::MAX; ops.len() * states];
        for known in 0..states {
            needs[end * states + known] = 0;
        }
        let mut next = Vec::new();
        for _ in 0..ops.len() * states {
            let mut changed = false;
            for pc in (0..ops.len()).rev() {
                if pc == end {
                    continue;
                }
                for known in 0..states {
                    let k = after(&ops[pc], known);
                    next.clear();
                    self.successors(&ops[pc], !known_set(&ops[pc], k), &mut next);
                    let mut all = if next.is_empty() { 0 } else { u64::MAX };
                    for &n in &next {
                        all &= needs[n * states + k];
                    }
                    let here = all | bit_of(pc).unwrap_or(0);
                    if here != needs[pc * states + known] {
                        needs[pc * states + known] = here;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut found = Vec::new();
        for (pc, op) in ops.iter().enumerate() {
            let Inst::Split { primary, secondary, .. } = op.inst else { continue };
            let primary_needs = needs[primary as usize * states];
            let secondary_needs = needs[secondary as usize * states];
            let secondary_lits: Vec<&[u8]> =
                (0..lits.len()).filter(|i| secondary_needs & (1 << i) != 0).map(|i| lits[i].1).collect();
            // The longest that the secondary does not need too (`lits` is
            // longest first), if work without bound comes before it.
            let pick = (0..lits.len()).find(|&i| {
                primary_needs & (1 << i) != 0
                    && !secondary_lits.contains(&lits[i].1)
                    && self.unbounded_before(ops, primary as usize, lits[i].0)
            });
            if let Some(i) = pick {
                found.push((pc, lits[i].1.to_vec()));
            }
        }
        found
    }

    /// Whether a run without an upper bound can be reached from `from`
    /// before `until`.
    pub(super) fn unbounded_before(&self, ops: &[Op], from: usize, until: usize) -> bool {
        let mut seen = vec![false; ops.len()];
        let mut todo = vec![from];
        while let Some(pc) = todo.pop() {
            if pc == until || seen[pc] {
                continue;
            }
            seen[pc] = true;
            if let Inst::Run(RunInst { max: u32::MAX, .. }) = ops[pc].inst {
                return true;
            }
            self.successors(&ops[pc], true, &mut todo);
        }
        false
    }

    /// The longest literal (past the prefix) that every match contains:
    /// one that every way from the entry to the end runs through. A text
    /// without it cannot match, which one substring search tells sooner
    /// than a backtracking search.
    pub(super) fn required_literal(&self, ops: &[Op], prefix_ops: usize) -> Option<memchr::memmem::Finder<'static>> {
        let end = ops.len().checked_sub(1)?;
        let mut prefix_pcs = Vec::new();
        let mut pc = self.entry as usize;
        for _ in 0..prefix_ops {
            prefix_pcs.push(pc);
            pc = ops[pc].next as usize;
        }
        let mut best: Option<&[u8]> = None;
        for (pc, op) in ops.iter().enumerate() {
            let Inst::Lit { start, len } = op.inst else { continue };
            let lit = &self.pool[start as usize..(start + len) as usize];
            if lit.len() < 2 || best.is_some_and(|b| b.len() >= lit.len()) || prefix_pcs.contains(&pc) {
                continue;
            }
            if !self.reaches_without(ops, self.entry as usize, end, pc) {
                best = Some(lit);
            }
        }
        best.map(|lit| memchr::memmem::Finder::new(lit).into_owned())
    }

    /// Whether `end` can be reached from `from` without running `avoid`
    /// (look-around bodies aside: they are not on the way).
    pub(super) fn reaches_without(&self, ops: &[Op], from: usize, end: usize, avoid: usize) -> bool {
        let mut seen = vec![false; ops.len()];
        let mut todo = vec![from];
        while let Some(pc) = todo.pop() {
            if pc == avoid || seen[pc] {
                continue;
            }
            if pc == end {
                return true;
            }
            seen[pc] = true;
            self.successors(&ops[pc], true, &mut todo);
        }
        false
    }

    /// Where `op` can go next, into `out` (look-around bodies aside: they
    /// are not on the way); a conditional's second arm only when
    /// `otherwise_too`.
    pub(super) fn successors(&self, op: &Op, otherwise_too: bool, out: &mut Vec<usize>) {
        match &op.inst {
            Inst::Match => {}
            Inst::Jmp(t) => out.push(*t as usize),
            Inst::Split { primary, secondary, .. } | Inst::SplitNeeds { primary, secondary, .. } => {
                out.extend([*primary as usize, *secondary as usize])
            }
            Inst::Dispatch { table, .. } => {
                for &list in self.tables[*table as usize].iter() {
                    out.extend(self.lists[list as usize].iter().map(|b| *b as usize));
                }
            }
            Inst::IfGroup { otherwise, .. } => {
                out.push(op.next as usize);
                if otherwise_too {
                    out.push(*otherwise as usize);
                }
            }
            Inst::LoopIfProgress { head, .. } => out.extend([op.next as usize, *head as usize]),
            _ => out.push(op.next as usize),
        }
    }

    /// The set of bytes the instruction at `pc` needs next, when it is one
    /// that consumes a byte at once (a literal, a class, a run of at least
    /// one): what a run before it can use to skip useless give-backs.
    pub(super) fn first_set_of_next_byte(&mut self, mut pc: usize) -> u32 {
        for _ in 0..64 {
            match self.insts.get(pc) {
                Some(Inst::Save(_)) => pc += 1,
                Some(Inst::Jmp(t)) => pc = *t as usize,
                _ => break,
            }
        }
        match self.insts.get(pc) {
            Some(Inst::Byte(_) | Inst::Lit { .. } | Inst::LitFold { .. } | Inst::Class(_)) => self.first_set(pc),
            Some(Inst::Run(RunInst { min, .. })) if *min > 0 => self.first_set(pc),
            _ => NO_SET,
        }
    }

    /// The set of bytes any match from `pc` starts with, if every path from
    /// there consumes a byte before anything that could end or look around.
    pub(super) fn first_set(&mut self, pc: usize) -> u32 {
        let mut set = [false; 256];
        let mut seen = Vec::new();
        if !self.collect_first(pc, &mut set, &mut seen, 0) {
            return NO_SET;
        }
        if let Some(i) = self.sets.iter().position(|s| *s == set) {
            return i as u32;
        }
        self.sets.push(set);
        (self.sets.len() - 1) as u32
    }

    pub(super) fn collect_first(&self, pc: usize, set: &mut ByteSet, seen: &mut Vec<usize>, depth: usize) -> bool {
        // A join of two branches: already counted. (A cycle cannot come
        // back here without consuming: loops whose body can be empty go
        // through `LoopIfProgress`, which stops the walk.)
        if seen.contains(&pc) {
            return true;
        }
        // Bounded: a set found by a long walk is not worth the compile time.
        if depth > 64 || seen.len() > 256 {
            return false;
        }
        seen.push(pc);
        match &self.insts[pc] {
            Inst::Byte(b) => set[*b as usize] = true,
            Inst::Lit { start, .. } => set[self.pool[*start as usize] as usize] = true,
            Inst::LitFold { start, .. } => {
                let b = self.pool[*start as usize];
                set[b as usize] = true;
                set[b.to_ascii_uppercase() as usize] = true;
            }
            Inst::Class(c) => union(set, &self.sets[*c as usize]),
            Inst::Run(RunInst { class, min, .. }) => {
                union(set, &self.sets[*class as usize]);
                if *min == 0 {
                    return self.collect_first(pc + 1, set, seen, depth + 1);
                }
            }
            Inst::Split { primary, secondary, .. } | Inst::SplitNeeds { primary, secondary, .. } => {
                return self.collect_first(*primary as usize, set, seen, depth + 1)
                    && self.collect_first(*secondary as usize, set, seen, depth + 1);
            }
            Inst::Jmp(t) => return self.collect_first(*t as usize, set, seen, depth + 1),
            Inst::Dispatch { branches, .. } => {
                return branches.iter().all(|&b| self.collect_first(b as usize, set, seen, depth + 1));
            }
            // Zero-width: they only narrow what may follow, so what follows
            // still says which byte comes first.
            Inst::Save(_) | Inst::Assert(_) => return self.collect_first(pc + 1, set, seen, depth + 1),
            Inst::Sub { kind, .. } if *kind != SubKind::Atomic => {
                return self.collect_first(pc + 1, set, seen, depth + 1);
            }
            Inst::Peek { .. } => return self.collect_first(pc + 1, set, seen, depth + 1),
            Inst::IfGroup { otherwise, .. } => {
                return self.collect_first(pc + 1, set, seen, depth + 1)
                    && self.collect_first(*otherwise as usize, set, seen, depth + 1);
            }
            Inst::LoopIfProgress { head, .. } => {
                return self.collect_first(pc + 1, set, seen, depth + 1)
                    && self.collect_first(*head as usize, set, seen, depth + 1);
            }
            // The end (a match may be empty here), or not known.
            Inst::Match | Inst::Sub { .. } | Inst::Backref { .. } => return false,
        }
        true
    }
}
