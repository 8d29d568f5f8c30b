//! A backtracking matcher with Python `re` semantics, for ASCII haystacks.
//!
//! Log lines are almost always ASCII, and on ASCII text every Unicode class
//! (`\w`, `\s`, `\d`, case folding) means one fixed set of bytes. This
//! engine runs a pattern over bytes with the same priorities as Python's
//! backtracking (greedy and lazy repetition, alternation in order,
//! look-around, backreferences, conditionals on groups), so one search
//! costs a walk over the line instead of an NFA simulation: it is what
//! makes captures cheap. Patterns are parsed by fancy-regex's parser, the
//! same one behind the exact fallback, and character classes are resolved
//! by regex-syntax. Anything it cannot run exactly (non-ASCII text, a
//! construct it does not know, a search that exceeds its step budget) is
//! reported, and the caller falls back to the general engines.

use fancy_regex::{Assertion, Expr, LookAround};

/// A slot that holds no position.
pub const NONE: usize = usize::MAX;

/// Steps (instructions plus backtracks) one search may take before it
/// gives up, as fancy-regex's backtrack limit does.
const STEP_BUDGET: u64 = 5_000_000;

/// A program larger than this is not built (bounded repetition is unrolled).
const MAX_INSTS: usize = 20_000;

/// What a search found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Match,
    NoMatch,
    /// The step budget ran out: the answer is unknown.
    GaveUp,
}

/// Why a pattern cannot be run by this engine.
#[derive(Debug)]
pub struct Unsupported(pub String);

type ByteSet = [bool; 256];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    StartText,
    EndText,
    StartLine,
    EndLine,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubKind {
    Ahead,
    NotAhead,
    Behind,
    NotBehind,
    Atomic,
}

/// One alternative of a `Peek`.
#[derive(Clone, Copy, Debug)]
enum PeekAlt {
    Lit { start: u32, len: u32, fold: bool },
    Class(u32),
    Assert(Look),
}

/// A set index meaning "no set known".
const NO_SET: u32 = u32::MAX;

#[derive(Clone, Debug)]
enum Inst {
    /// The end of the program or of a sub-program.
    Match,
    Byte(u8),
    /// A literal in the pool: `start..start + len`.
    Lit {
        start: u32,
        len: u32,
    },
    /// A literal compared ASCII case-insensitively (the pool holds it
    /// lower-cased).
    LitFold {
        start: u32,
        len: u32,
    },
    Class(u32),
    /// A repetition of one byte class: `min..=max` bytes, greedy or lazy.
    /// `next` is the set the byte after the run must be in (from the
    /// instruction that follows), and `possessive` says that giving back
    /// bytes can never help (the run's class and `next` are disjoint).
    Run {
        class: u32,
        min: u32,
        max: u32,
        greedy: bool,
        next: u32,
        possessive: bool,
    },
    /// Try `primary`, then `secondary`. `*_first` are the sets the first
    /// byte of each branch must be in (NO_SET: a branch that may match
    /// empty or that is not known).
    Split {
        primary: u32,
        secondary: u32,
        primary_first: u32,
        secondary_first: u32,
    },
    /// A `Split` whose primary branch can only match if the text from
    /// here on holds `finders[needs]`, which its secondary branch does not
    /// need (see `branch_needs`): without it, only the secondary is tried.
    SplitNeeds {
        primary: u32,
        secondary: u32,
        primary_first: u32,
        secondary_first: u32,
        needs: u32,
    },
    Jmp(u32),
    /// An alternation of several branches: `table` maps the next byte
    /// (256: the end of the text) to the branches that can start with it,
    /// in order, so only those are tried.
    Dispatch {
        branches: Box<[u32]>,
        table: u32,
    },
    /// Record the position in a slot (capture bounds or loop marks).
    Save(u32),
    Assert(Look),
    /// Loop again from `head` unless the iteration that just ended
    /// consumed nothing (Python's guard against empty iterations).
    LoopIfProgress {
        mark: u32,
        head: u32,
    },
    Sub {
        kind: SubKind,
        start: u32,
        width: u32,
    },
    /// A look-around whose body is a choice of literals, single-byte
    /// classes and assertions (`(?! from )`, `(?=\b|\W|$)`): checked in
    /// place, without a nested run. `width` is how far back a look-behind
    /// starts.
    Peek {
        kind: SubKind,
        alts: u32,
        width: u32,
    },
    Backref {
        group: u32,
        fold: bool,
    },
    /// Continue if the group took part in the match so far, else jump.
    IfGroup {
        group: u32,
        otherwise: u32,
    },
}

#[derive(Clone, Copy, Debug)]
enum Frame {
    Alt {
        pc: u32,
        pos: usize,
    },
    Restore {
        slot: u32,
        old: usize,
    },
    /// A greedy run at `run` may still end anywhere in `low..at`.
    Greedy {
        run: u32,
        low: usize,
        at: usize,
    },
    /// A lazy run at `run` may still end anywhere in `at + 1..=high`.
    Lazy {
        run: u32,
        at: usize,
        high: usize,
    },
}

/// An instruction as it runs: what to do, where to go next when it
/// succeeds (jumps are resolved away), and a capture slot to record first
/// (a group boundary folded into the instruction after it).
#[derive(Clone, Debug)]
struct Op {
    inst: Inst,
    next: u32,
    save: u32,
}

/// `Op::save` when there is nothing to record.
const NO_SLOT: u32 = u32::MAX;

/// A compiled pattern.
#[derive(Debug)]
pub struct Program {
    /// The instructions as compiled (until `finish`).
    insts: Vec<Inst>,
    /// What runs.
    ops: Vec<Op>,
    /// Where a search starts in `ops`.
    entry: u32,
    sets: Vec<ByteSet>,
    pool: Vec<u8>,
    /// For each `Dispatch`: byte (or 256, the end) to an index in `lists`.
    tables: Vec<[u32; 257]>,
    /// Lists of branch starts, in priority order.
    lists: Vec<Box<[u32]>>,
    /// The alternatives of each `Peek`.
    peeks: Vec<Box<[PeekAlt]>>,
    /// What every match starts with (anchored programs): checked before
    /// a search is run at all.
    prefix: Box<[u8]>,
    /// A literal every match holds past its prefix (see `required_literal`).
    required: Option<memchr::memmem::Finder<'static>>,
    /// The literals of `SplitNeeds` instructions.
    finders: Vec<memchr::memmem::Finder<'static>>,
    /// Capture slots (two per group, group 0 included), then loop marks.
    slot_count: usize,
    groups: usize,
    /// Only position 0 can start a match.
    anchored: bool,
    /// Matches can start only at the beginning of a line.
    line_anchored: bool,
    /// The set every match's first byte is in (NO_SET: unknown or empty).
    first: u32,
    /// The classes of `.` and `(?s).`, when the pattern uses them.
    any_but_newline: u32,
    any_byte: u32,
}

/// Reusable memory for searches.
#[derive(Default)]
pub struct Scratch {
    stack: Vec<Frame>,
}

impl Program {
    /// Compile a pattern written in fancy-regex's syntax (what
    /// `dialect::translate` produces).
    pub fn new(pattern: &str) -> Result<Program, Unsupported> {
        Program::build(pattern, false)
    }

    /// Like `new`, but unnamed groups that no backreference or conditional
    /// reads are not recorded (they report no span): fail2ban reads named
    /// groups only, and each recorded group costs two steps.
    pub fn named_groups_only(pattern: &str) -> Result<Program, Unsupported> {
        Program::build(pattern, true)
    }

    fn build(pattern: &str, named_only: bool) -> Result<Program, Unsupported> {
        let tree = Expr::parse_tree(pattern).map_err(|e| Unsupported(e.to_string()))?;
        if tree.contains_subroutines {
            return Err(Unsupported("subroutine calls".into()));
        }
        let mut c = Compiler::default();
        if named_only {
            let mut record: Vec<usize> = tree.named_groups.values().flatten().copied().collect();
            record.extend(referenced_groups(&tree.expr));
            c.record_only = Some(record);
        }
        c.sets.push([false; 256]);
        // Group 0 is recorded by `search`, not by instructions.
        c.expr(&tree.expr)?;
        c.insts.push(Inst::Match);
        if c.insts.len() > MAX_INSTS {
            return Err(Unsupported(format!("program of {} instructions", c.insts.len())));
        }
        let groups = c.groups + 1;
        let slot_count = groups * 2 + c.marks;
        // Marks live after the capture slots.
        for inst in &mut c.insts {
            match inst {
                Inst::Save(s) if *s >= MARK_BASE => *s = *s - MARK_BASE + groups as u32 * 2,
                Inst::LoopIfProgress { mark, .. } => *mark = *mark - MARK_BASE + groups as u32 * 2,
                _ => {}
            }
        }
        let mut program = Program {
            insts: c.insts,
            ops: Vec::new(),
            entry: 0,
            sets: c.sets,
            pool: c.pool,
            tables: Vec::new(),
            lists: Vec::new(),
            peeks: c.peeks,
            prefix: Box::new([]),
            required: None,
            finders: Vec::new(),
            slot_count,
            groups,
            anchored: false,
            line_anchored: false,
            first: NO_SET,
            any_but_newline: NO_SET,
            any_byte: NO_SET,
        };
        let mut dot = [true; 256];
        dot[b'\n' as usize] = false;
        program.any_but_newline = program.sets.iter().position(|s| *s == dot).map_or(NO_SET, |i| i as u32);
        program.any_byte = program.sets.iter().position(|s| *s == [true; 256]).map_or(NO_SET, |i| i as u32);
        program.link();
        program.finish();
        Ok(program)
    }

    /// For a pattern anchored at the start of the text: the bytes a match
    /// can begin with (the text's first byte must be one of them).
    pub fn first_bytes_when_anchored(&self) -> Option<&[bool; 256]> {
        (self.anchored && self.first != NO_SET).then(|| &self.sets[self.first as usize])
    }

    /// Number of capture groups, group 0 (the whole match) included.
    pub fn group_count(&self) -> usize {
        self.groups
    }

    /// Fill in what can only be known once the program is whole: first
    /// byte sets of branches, what follows each run, anchoring.
    fn link(&mut self) {
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
                Inst::Run { class, min, max, greedy, .. } => {
                    let next = self.first_set_of_next_byte(pc + 1);
                    let possessive = greedy
                        && next != NO_SET
                        && (0..256).all(|b| !(self.sets[class as usize][b] && self.sets[next as usize][b]));
                    self.insts[pc] = Inst::Run { class, min, max, greedy, next, possessive };
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
    fn finish(&mut self) {
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
    fn branch_needs(&self, ops: &[Op]) -> Vec<(usize, Vec<u8>)> {
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
    fn unbounded_before(&self, ops: &[Op], from: usize, until: usize) -> bool {
        let mut seen = vec![false; ops.len()];
        let mut todo = vec![from];
        while let Some(pc) = todo.pop() {
            if pc == until || seen[pc] {
                continue;
            }
            seen[pc] = true;
            if let Inst::Run { max: u32::MAX, .. } = ops[pc].inst {
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
    fn required_literal(&self, ops: &[Op], prefix_ops: usize) -> Option<memchr::memmem::Finder<'static>> {
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
    fn reaches_without(&self, ops: &[Op], from: usize, end: usize, avoid: usize) -> bool {
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
    fn successors(&self, op: &Op, otherwise_too: bool, out: &mut Vec<usize>) {
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
    fn first_set_of_next_byte(&mut self, mut pc: usize) -> u32 {
        for _ in 0..64 {
            match self.insts.get(pc) {
                Some(Inst::Save(_)) => pc += 1,
                Some(Inst::Jmp(t)) => pc = *t as usize,
                _ => break,
            }
        }
        match self.insts.get(pc) {
            Some(Inst::Byte(_) | Inst::Lit { .. } | Inst::LitFold { .. } | Inst::Class(_)) => self.first_set(pc),
            Some(Inst::Run { min, .. }) if *min > 0 => self.first_set(pc),
            _ => NO_SET,
        }
    }

    /// The set of bytes any match from `pc` starts with, if every path from
    /// there consumes a byte before anything that could end or look around.
    fn first_set(&mut self, pc: usize) -> u32 {
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

    fn collect_first(&self, pc: usize, set: &mut ByteSet, seen: &mut Vec<usize>, depth: usize) -> bool {
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
            Inst::Run { class, min, .. } => {
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

    fn search_with<const TRACK: bool>(
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
    fn exec<const TRACK: bool>(
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
        'run: loop {
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
                    Inst::Run { class, min, max, greedy, next, possessive } => {
                        let set = &self.sets[*class as usize];
                        let limit = hay.len().min(pos.saturating_add(*max as usize));
                        let min_end = pos + *min as usize;
                        if *greedy {
                            let end = self.run_end(set, *class, hay, pos, limit);
                            looked!(end + 1);
                            if end < min_end {
                                break true;
                            }
                            let next = (*next != NO_SET).then(|| &self.sets[*next as usize]);
                            let fits = |p: usize| next.is_none_or(|n| p < hay.len() && n[hay[p] as usize]);
                            if !*possessive {
                                // The best give-back below `end` is found when popped.
                                if end > min_end {
                                    stack.push(Frame::Greedy { run: pc as u32, low: min_end, at: end });
                                    choices += 1;
                                }
                            }
                            if !fits(end) {
                                break true;
                            }
                            pos = end;
                            pc = op.next as usize;
                        } else {
                            if min_end > limit || !hay[pos..min_end].iter().all(|b| set[*b as usize]) {
                                looked!(min_end.min(hay.len() + 1));
                                break true;
                            }
                            let high = self.run_end(set, *class, hay, min_end, limit);
                            looked!(high + 1);
                            if high > min_end {
                                stack.push(Frame::Lazy { run: pc as u32, at: min_end, high });
                                choices += 1;
                            }
                            let next = (*next != NO_SET).then(|| &self.sets[*next as usize]);
                            if next.is_some_and(|n| min_end >= hay.len() || !n[hay[min_end] as usize]) {
                                break true;
                            }
                            pos = min_end;
                            pc = op.next as usize;
                        }
                    }
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
                        looked!(if *look == Look::StartText { 0 } else { pos + 1 });
                        if !holds(*look, hay, pos) {
                            break true;
                        }
                        pc = op.next as usize;
                    }
                    Inst::Peek { kind, alts, width } => {
                        let at = match kind {
                            SubKind::Behind | SubKind::NotBehind => pos.checked_sub(*width as usize),
                            _ => Some(pos),
                        };
                        let found = at.is_some_and(|at| {
                            self.peeks[*alts as usize].iter().any(|alt| match *alt {
                                PeekAlt::Lit { start, len, fold } => {
                                    let lit = &self.pool[start as usize..(start + len) as usize];
                                    looked!(if hay.len() - at.min(hay.len()) >= lit.len() {
                                        at + lit.len()
                                    } else {
                                        hay.len() + 1
                                    });
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
                        let positive = matches!(kind, SubKind::Ahead | SubKind::Behind);
                        if found != positive {
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
                        *budget = budget.saturating_sub(1);
                        if depth > 32 {
                            *budget = 0;
                            break true;
                        }
                        let at = match kind {
                            SubKind::Behind | SubKind::NotBehind => pos.checked_sub(*width as usize),
                            _ => Some(pos),
                        };
                        let sub_bottom = stack.len();
                        let found = match at {
                            Some(at) => {
                                self.exec::<TRACK>(hay, *start as usize, at, slots, stack, depth + 1, budget, reach)
                            }
                            None => None,
                        };
                        if *budget == 0 {
                            break true;
                        }
                        let positive = matches!(kind, SubKind::Ahead | SubKind::Behind | SubKind::Atomic);
                        match (found, positive) {
                            (Some(end), true) => {
                                // No going back into it; its captures stay
                                // (and are undone if this path fails later).
                                keep_restores(stack, sub_bottom);
                                if *kind == SubKind::Atomic {
                                    pos = end;
                                }
                                pc = op.next as usize;
                            }
                            (None, false) => pc = op.next as usize,
                            (Some(_), false) => {
                                unwind(stack, sub_bottom, slots);
                                break true;
                            }
                            (None, true) => break true,
                        }
                    }
                }
            };
            debug_assert!(failed);
            // Backward: resume the most recent choice.
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
                    Frame::Alt { pc: alt, pos: at } => {
                        stack.pop();
                        choices -= 1;
                        pc = alt as usize;
                        pos = at;
                        continue 'run;
                    }
                    Frame::Greedy { run, low, at } => {
                        let Inst::Run { next, .. } = &ops[run as usize].inst else { unreachable!() };
                        let next = (*next != NO_SET).then(|| &self.sets[*next as usize]);
                        let mut end = at;
                        let found = loop {
                            if end <= low {
                                break None;
                            }
                            end -= 1;
                            if next.is_none_or(|n| end < hay.len() && n[hay[end] as usize]) {
                                break Some(end);
                            }
                        };
                        match found {
                            Some(end) => {
                                if end > low {
                                    stack[top] = Frame::Greedy { run, low, at: end };
                                } else {
                                    stack.pop();
                                    choices -= 1;
                                }
                                pc = ops[run as usize].next as usize;
                                pos = end;
                                continue 'run;
                            }
                            None => {
                                stack.pop();
                                choices -= 1;
                            }
                        }
                    }
                    Frame::Lazy { run, at, high } => {
                        let Inst::Run { next, .. } = &ops[run as usize].inst else { unreachable!() };
                        let next = (*next != NO_SET).then(|| &self.sets[*next as usize]);
                        let mut end = at;
                        let found = loop {
                            if end >= high {
                                break None;
                            }
                            end += 1;
                            if next.is_none_or(|n| end < hay.len() && n[hay[end] as usize]) {
                                break Some(end);
                            }
                        };
                        match found {
                            Some(end) => {
                                if end < high {
                                    stack[top] = Frame::Lazy { run, at: end, high };
                                } else {
                                    stack.pop();
                                    choices -= 1;
                                }
                                pc = ops[run as usize].next as usize;
                                pos = end;
                                continue 'run;
                            }
                            None => {
                                stack.pop();
                                choices -= 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Program {
    /// Where a run of `class` bytes starting at `from` ends (at most at
    /// `limit`). `.` and `(?s).` are the common classes of long runs
    /// (`.+`, `.*?`): found by memchr instead of a byte at a time. Inlined:
    /// most runs are a few bytes (`\d{1,3}`, `\s+`), where a call costs
    /// more than the loop.
    #[inline(always)]
    fn run_end(&self, set: &ByteSet, class: u32, hay: &[u8], from: usize, limit: usize) -> usize {
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
    fn newline_or(&self, hay: &[u8], from: usize, limit: usize) -> usize {
        if from >= limit {
            return from;
        }
        memchr::memchr(b'\n', &hay[from..limit]).map_or(limit, |i| from + i)
    }
}

/// Drop every choice above `bottom`, keeping the slot restores (so that a
/// later failure still undoes the captures made there).
fn keep_restores(stack: &mut Vec<Frame>, bottom: usize) {
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
fn unwind(stack: &mut Vec<Frame>, bottom: usize, slots: &mut [usize]) {
    while stack.len() > bottom {
        if let Some(Frame::Restore { slot, old }) = stack.pop() {
            slots[slot as usize] = old;
        }
    }
}

/// Byte-wise equality without a call to `memcmp` (in WASM a byte loop
/// behind a call): the texts compared here are short.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut left = a.chunks_exact(8);
    let mut right = b.chunks_exact(8);
    for (x, y) in (&mut left).zip(&mut right) {
        let (mut wx, mut wy) = ([0u8; 8], [0u8; 8]);
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        if u64::from_ne_bytes(wx) != u64::from_ne_bytes(wy) {
            return false;
        }
    }
    left.remainder().iter().zip(right.remainder()).all(|(x, y)| x == y)
}

/// Whether `text` is ASCII, sixteen bytes a step (the standard library's
/// check goes four at a time on wasm32, and every step of a loop costs an
/// interruption check there).
#[inline]
pub fn is_ascii(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        let (mut lo, mut hi) = ([0u8; 8], [0u8; 8]);
        lo.copy_from_slice(&chunk[..8]);
        hi.copy_from_slice(&chunk[8..]);
        if (u64::from_ne_bytes(lo) | u64::from_ne_bytes(hi)) & 0x8080_8080_8080_8080 != 0 {
            return false;
        }
    }
    chunks.remainder().is_ascii()
}

/// Whether a zero-width assertion holds at `pos`.
#[inline]
fn holds(look: Look, hay: &[u8], pos: usize) -> bool {
    match look {
        Look::StartText => pos == 0,
        Look::EndText => pos == hay.len(),
        Look::StartLine => pos == 0 || hay[pos - 1] == b'\n',
        Look::EndLine => pos == hay.len() || hay[pos] == b'\n',
        Look::WordBoundary | Look::NotWordBoundary => {
            let before = pos > 0 && is_word(hay[pos - 1]);
            let after = pos < hay.len() && is_word(hay[pos]);
            (before != after) == (look == Look::WordBoundary)
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn union(into: &mut ByteSet, from: &ByteSet) {
    for (a, b) in into.iter_mut().zip(from) {
        *a |= *b;
    }
}

/// Loop marks are numbered from here until the program is linked.
const MARK_BASE: u32 = 1 << 30;

#[derive(Default)]
struct Compiler {
    /// The groups to record (None: all).
    record_only: Option<Vec<usize>>,
    insts: Vec<Inst>,
    sets: Vec<ByteSet>,
    pool: Vec<u8>,
    peeks: Vec<Box<[PeekAlt]>>,
    groups: usize,
    marks: usize,
}

impl Compiler {
    fn too_big(&self) -> Result<(), Unsupported> {
        if self.insts.len() > MAX_INSTS {
            return Err(Unsupported("pattern too large once repetitions are unrolled".into()));
        }
        Ok(())
    }

    fn set(&mut self, set: ByteSet) -> u32 {
        if let Some(i) = self.sets.iter().position(|s| *s == set) {
            return i as u32;
        }
        self.sets.push(set);
        (self.sets.len() - 1) as u32
    }

    /// The byte class of an expression that matches exactly one byte of
    /// an ASCII haystack, if it is one.
    fn single_byte(&mut self, e: &Expr) -> Result<Option<u32>, Unsupported> {
        Ok(match e {
            Expr::Any { newline, crlf: false } => {
                let mut s = [true; 256];
                if !newline {
                    s[b'\n' as usize] = false;
                }
                Some(self.set(s))
            }
            Expr::Delegate { inner, casei } => Some(self.class(inner, *casei)?),
            Expr::Literal { val, casei } if val.len() == 1 => {
                let b = val.as_bytes()[0];
                let mut s = [false; 256];
                s[b as usize] = true;
                if *casei {
                    s[b.to_ascii_lowercase() as usize] = true;
                    s[b.to_ascii_uppercase() as usize] = true;
                }
                Some(self.set(s))
            }
            _ => None,
        })
    }

    /// A class written in regex syntax, restricted to ASCII.
    fn class(&mut self, inner: &str, casei: bool) -> Result<u32, Unsupported> {
        use regex_syntax::hir::{Class, HirKind};
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(true)
            .case_insensitive(casei)
            .build()
            .parse(inner)
            .map_err(|e| Unsupported(format!("class {inner}: {e}")))?;
        let mut set = [false; 256];
        match hir.kind() {
            HirKind::Class(Class::Unicode(c)) => {
                for r in c.ranges() {
                    let (lo, hi) = (r.start() as u32, (r.end() as u32).min(127));
                    for b in lo..=hi {
                        set[b as usize] = true;
                    }
                }
            }
            HirKind::Class(Class::Bytes(c)) => {
                for r in c.ranges() {
                    for b in r.start()..=r.end().min(127) {
                        set[b as usize] = true;
                    }
                }
            }
            HirKind::Literal(lit) => {
                if lit.0.len() == 1 && lit.0[0] < 128 {
                    set[lit.0[0] as usize] = true;
                }
            }
            _ => return Err(Unsupported(format!("class {inner}"))),
        }
        Ok(self.set(set))
    }

    fn emit(&mut self, inst: Inst) -> usize {
        self.insts.push(inst);
        self.insts.len() - 1
    }

    fn literal(&mut self, val: &str, casei: bool) -> Result<(), Unsupported> {
        if !val.is_ascii() {
            if casei {
                // Unicode case folding can map a non-ASCII letter onto an
                // ASCII one (the Kelvin sign and k): not for this engine.
                return Err(Unsupported("case-insensitive non-ASCII literal".into()));
            }
            // It can never match ASCII text.
            let never = self.set([false; 256]);
            self.emit(Inst::Class(never));
            return Ok(());
        }
        let bytes = val.as_bytes();
        let folds = casei && bytes.iter().any(u8::is_ascii_alphabetic);
        if bytes.len() == 1 && !folds {
            self.emit(Inst::Byte(bytes[0]));
            return Ok(());
        }
        let start = self.pool.len() as u32;
        if folds {
            self.pool.extend(bytes.iter().map(u8::to_ascii_lowercase));
            self.emit(Inst::LitFold { start, len: bytes.len() as u32 });
        } else {
            self.pool.extend_from_slice(bytes);
            self.emit(Inst::Lit { start, len: bytes.len() as u32 });
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr) -> Result<(), Unsupported> {
        self.too_big()?;
        match e {
            Expr::Empty => {}
            Expr::Literal { val, casei } => self.literal(val, *casei)?,
            Expr::Any { crlf: true, .. } => return Err(Unsupported("CRLF mode".into())),
            Expr::Any { .. } | Expr::Delegate { .. } => {
                let class = self.single_byte(e)?.ok_or_else(|| Unsupported("class".into()))?;
                self.emit(Inst::Class(class));
            }
            Expr::Assertion(a) => {
                let look = match a {
                    Assertion::StartText => Look::StartText,
                    Assertion::EndText => Look::EndText,
                    Assertion::StartLine { crlf: false } => Look::StartLine,
                    Assertion::EndLine { crlf: false } => Look::EndLine,
                    Assertion::WordBoundary => Look::WordBoundary,
                    Assertion::NotWordBoundary => Look::NotWordBoundary,
                    other => return Err(Unsupported(format!("assertion {other:?}"))),
                };
                self.emit(Inst::Assert(look));
            }
            Expr::Concat(parts) => {
                // The parser gives one literal per character: join them, so
                // that a word costs one step.
                let mut i = 0;
                while i < parts.len() {
                    if let Expr::Literal { casei, .. } = &parts[i] {
                        let mut text = String::new();
                        while let Some(Expr::Literal { val, casei: c }) = parts.get(i)
                            && c == casei
                        {
                            text.push_str(val);
                            i += 1;
                        }
                        self.literal(&text, *casei)?;
                        continue;
                    }
                    self.expr(&parts[i])?;
                    i += 1;
                }
            }
            Expr::Alt(branches) if branches.len() >= 3 => {
                let dispatch = self.emit(Inst::Dispatch { branches: Box::new([]), table: 0 });
                let mut starts = Vec::new();
                let mut to_end = Vec::new();
                for b in branches {
                    starts.push(self.insts.len() as u32);
                    self.expr(b)?;
                    to_end.push(self.emit(Inst::Jmp(0)));
                }
                let end = self.insts.len() as u32;
                for j in to_end {
                    self.insts[j] = Inst::Jmp(end);
                }
                self.insts[dispatch] = Inst::Dispatch { branches: starts.into_boxed_slice(), table: 0 };
            }
            Expr::Alt(branches) => {
                let mut to_end = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.emit(Inst::Split {
                            primary: 0,
                            secondary: 0,
                            primary_first: NO_SET,
                            secondary_first: NO_SET,
                        });
                        let primary = self.insts.len() as u32;
                        self.expr(b)?;
                        to_end.push(self.emit(Inst::Jmp(0)));
                        let secondary = self.insts.len() as u32;
                        self.insts[split] =
                            Inst::Split { primary, secondary, primary_first: NO_SET, secondary_first: NO_SET };
                    } else {
                        self.expr(b)?;
                    }
                }
                let end = self.insts.len() as u32;
                for j in to_end {
                    self.insts[j] = Inst::Jmp(end);
                }
            }
            Expr::Group(inner) => {
                self.groups += 1;
                let g = self.groups as u32;
                let record = self.record_only.as_ref().is_none_or(|r| r.contains(&(g as usize)));
                if record {
                    self.emit(Inst::Save(2 * g));
                }
                self.expr(inner)?;
                if record {
                    self.emit(Inst::Save(2 * g + 1));
                }
            }
            Expr::LookAround(inner, kind) => {
                let kind = match kind {
                    LookAround::LookAhead => SubKind::Ahead,
                    LookAround::LookAheadNeg => SubKind::NotAhead,
                    LookAround::LookBehind => SubKind::Behind,
                    LookAround::LookBehindNeg => SubKind::NotBehind,
                };
                self.sub(kind, inner)?;
            }
            Expr::AtomicGroup(inner) => self.sub(SubKind::Atomic, inner)?,
            Expr::Repeat { child, lo, hi, greedy } => self.repeat(child, *lo, *hi, *greedy)?,
            Expr::Backref { group, casei } => {
                self.emit(Inst::Backref { group: *group as u32, fold: *casei });
            }
            Expr::Conditional { condition, true_branch, false_branch } => {
                let Expr::BackrefExistsCondition { group, relative_recursion_level: None } = condition.as_ref() else {
                    return Err(Unsupported("conditional on something other than a group".into()));
                };
                let test = self.emit(Inst::IfGroup { group: *group as u32, otherwise: 0 });
                self.expr(true_branch)?;
                let skip = self.emit(Inst::Jmp(0));
                let otherwise = self.insts.len() as u32;
                self.expr(false_branch)?;
                let end = self.insts.len() as u32;
                self.insts[test] = Inst::IfGroup { group: *group as u32, otherwise };
                self.insts[skip] = Inst::Jmp(end);
            }
            Expr::BackrefExistsCondition { group, relative_recursion_level: None } => {
                // `(?(1))` alone: succeeds when the group matched.
                let test = self.emit(Inst::IfGroup { group: *group as u32, otherwise: 0 });
                let skip = self.emit(Inst::Jmp(0));
                let never = self.set([false; 256]);
                let otherwise = self.emit(Inst::Class(never)) as u32;
                let end = self.insts.len() as u32;
                self.insts[test] = Inst::IfGroup { group: *group as u32, otherwise };
                self.insts[skip] = Inst::Jmp(end);
            }
            other => return Err(Unsupported(format!("{other:?}"))),
        }
        Ok(())
    }

    /// A look-around or atomic group: its body follows inline, ends in
    /// `Match`, and is skipped over by the main path.
    fn sub(&mut self, kind: SubKind, inner: &Expr) -> Result<(), Unsupported> {
        if kind != SubKind::Atomic
            && let Some(alts) = self.peek_alts(inner)?
        {
            let widths: Vec<usize> = alts
                .iter()
                .map(|a| match a {
                    PeekAlt::Lit { len, .. } => *len as usize,
                    PeekAlt::Class(_) => 1,
                    PeekAlt::Assert(_) => 0,
                })
                .collect();
            let behind = matches!(kind, SubKind::Behind | SubKind::NotBehind);
            // A look-behind needs one width (Python refuses others).
            if !behind || widths.windows(2).all(|w| w[0] == w[1]) {
                let width = if behind { widths.first().copied().unwrap_or(0) } else { 0 };
                self.peeks.push(alts.into_boxed_slice());
                let alts = (self.peeks.len() - 1) as u32;
                self.emit(Inst::Peek { kind, alts, width: width as u32 });
                return Ok(());
            }
        }
        let width = match kind {
            SubKind::Behind | SubKind::NotBehind => {
                fixed_width(inner).ok_or_else(|| Unsupported("look-behind of varying width".into()))?
            }
            _ => 0,
        };
        let at = self.emit(Inst::Sub { kind, start: 0, width: width as u32 });
        let skip = self.emit(Inst::Jmp(0));
        let start = self.insts.len() as u32;
        self.expr(inner)?;
        self.emit(Inst::Match);
        let end = self.insts.len() as u32;
        self.insts[at] = Inst::Sub { kind, start, width: width as u32 };
        self.insts[skip] = Inst::Jmp(end);
        Ok(())
    }

    /// The alternatives of a look-around body that is a choice of
    /// literals, single-byte classes and assertions; None for any other.
    fn peek_alts(&mut self, e: &Expr) -> Result<Option<Vec<PeekAlt>>, Unsupported> {
        let branches: &[Expr] = match e {
            Expr::Alt(branches) => branches,
            other => std::slice::from_ref(other),
        };
        let mut alts = Vec::new();
        for b in branches {
            let alt = match b {
                Expr::Assertion(a) => match a {
                    Assertion::StartText => PeekAlt::Assert(Look::StartText),
                    Assertion::EndText => PeekAlt::Assert(Look::EndText),
                    Assertion::StartLine { crlf: false } => PeekAlt::Assert(Look::StartLine),
                    Assertion::EndLine { crlf: false } => PeekAlt::Assert(Look::EndLine),
                    Assertion::WordBoundary => PeekAlt::Assert(Look::WordBoundary),
                    Assertion::NotWordBoundary => PeekAlt::Assert(Look::NotWordBoundary),
                    _ => return Ok(None),
                },
                Expr::Any { crlf: false, .. } | Expr::Delegate { .. } => match self.single_byte(b)? {
                    Some(class) => PeekAlt::Class(class),
                    None => return Ok(None),
                },
                Expr::Literal { .. } | Expr::Concat(_) => {
                    // Literal text: one literal, or characters in a row.
                    let parts: &[Expr] = match b {
                        Expr::Concat(parts) => parts,
                        other => std::slice::from_ref(other),
                    };
                    let mut text = String::new();
                    let mut fold = None;
                    for p in parts {
                        let Expr::Literal { val, casei } = p else { return Ok(None) };
                        if *fold.get_or_insert(*casei) != *casei || !val.is_ascii() {
                            return Ok(None);
                        }
                        text.push_str(val);
                    }
                    if text.is_empty() {
                        return Ok(None);
                    }
                    let fold = fold.unwrap_or(false) && text.bytes().any(|b| b.is_ascii_alphabetic());
                    let start = self.pool.len() as u32;
                    if fold {
                        self.pool.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
                    } else {
                        self.pool.extend_from_slice(text.as_bytes());
                    }
                    PeekAlt::Lit { start, len: text.len() as u32, fold }
                }
                _ => return Ok(None),
            };
            alts.push(alt);
        }
        Ok(Some(alts))
    }

    fn repeat(&mut self, child: &Expr, lo: usize, hi: usize, greedy: bool) -> Result<(), Unsupported> {
        if let Some(class) = self.single_byte(child)? {
            let max = if hi == usize::MAX { u32::MAX } else { hi.min(u32::MAX as usize - 1) as u32 };
            self.emit(Inst::Run { class, min: lo as u32, max, greedy, next: NO_SET, possessive: false });
            return Ok(());
        }
        let nullable = can_be_empty(child);
        if nullable && has_group(child) {
            return Err(Unsupported("repetition of a group that can match empty".into()));
        }
        let groups_before = self.groups;
        for _ in 0..lo {
            self.groups = groups_before;
            self.expr(child)?;
        }
        if hi == usize::MAX {
            // head: Split(body, exit); body; loop back
            let head =
                self.emit(Inst::Split { primary: 0, secondary: 0, primary_first: NO_SET, secondary_first: NO_SET });
            let body = self.insts.len() as u32;
            let mark = if nullable {
                let m = MARK_BASE + self.marks as u32;
                self.marks += 1;
                self.emit(Inst::Save(m));
                Some(m)
            } else {
                None
            };
            self.groups = groups_before;
            self.expr(child)?;
            match mark {
                Some(mark) => {
                    self.emit(Inst::LoopIfProgress { mark, head: head as u32 });
                }
                None => {
                    self.emit(Inst::Jmp(head as u32));
                }
            }
            let exit = self.insts.len() as u32;
            let (primary, secondary) = if greedy { (body, exit) } else { (exit, body) };
            self.insts[head] = Inst::Split { primary, secondary, primary_first: NO_SET, secondary_first: NO_SET };
        } else {
            let mut splits = Vec::new();
            for _ in lo..hi {
                splits.push(self.emit(Inst::Split {
                    primary: 0,
                    secondary: 0,
                    primary_first: NO_SET,
                    secondary_first: NO_SET,
                }));
                self.groups = groups_before;
                self.expr(child)?;
            }
            let exit = self.insts.len() as u32;
            for s in splits {
                let body = s as u32 + 1;
                let (primary, secondary) = if greedy { (body, exit) } else { (exit, body) };
                self.insts[s] = Inst::Split { primary, secondary, primary_first: NO_SET, secondary_first: NO_SET };
            }
        }
        if lo == 0 && hi == 0 {
            // Nothing was emitted, but the groups inside still count.
            let mut probe = Compiler { groups: groups_before, ..Compiler::default() };
            probe.sets.push([false; 256]);
            probe.expr(child)?;
            self.groups = probe.groups;
        }
        Ok(())
    }
}

/// The groups a backreference or a conditional reads.
fn referenced_groups(e: &Expr) -> Vec<usize> {
    let mut found = Vec::new();
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        if let Expr::Backref { group, .. } | Expr::BackrefExistsCondition { group, .. } = e {
            found.push(*group);
        }
        if !e.is_leaf_node() {
            todo.extend(e.children_iter());
        }
    }
    found
}

fn has_group(e: &Expr) -> bool {
    matches!(e, Expr::Group(_)) || (!e.is_leaf_node() && e.children_iter().any(has_group))
}

/// Whether an expression can match the empty string (conservative: true
/// when not sure).
fn can_be_empty(e: &Expr) -> bool {
    match e {
        Expr::Literal { val, .. } => val.is_empty(),
        Expr::Any { .. } | Expr::Delegate { .. } | Expr::LiteralBytes { .. } => false,
        Expr::Concat(parts) => parts.iter().all(can_be_empty),
        Expr::Alt(branches) => branches.iter().any(can_be_empty),
        Expr::Group(inner) => can_be_empty(inner),
        Expr::AtomicGroup(inner) => can_be_empty(inner),
        Expr::Repeat { child, lo, .. } => *lo == 0 || can_be_empty(child),
        _ => true,
    }
}

/// The number of characters an expression always matches, if fixed.
fn fixed_width(e: &Expr) -> Option<usize> {
    match e {
        Expr::Empty | Expr::Assertion(_) | Expr::LookAround(..) | Expr::KeepOut => Some(0),
        Expr::Literal { val, .. } => Some(val.chars().count()),
        Expr::Any { .. } | Expr::Delegate { .. } => Some(1),
        Expr::Concat(parts) => parts.iter().map(fixed_width).sum(),
        Expr::Alt(branches) => {
            let first = fixed_width(branches.first()?)?;
            branches.iter().all(|b| fixed_width(b) == Some(first)).then_some(first)
        }
        Expr::Group(inner) => fixed_width(inner),
        Expr::AtomicGroup(inner) => fixed_width(inner),
        Expr::Repeat { child, lo, hi, .. } if lo == hi => fixed_width(child).map(|w| w * lo),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our answer next to fancy-regex's, group by group.
    fn compare(pattern: &str, hay: &str) {
        let fancy = fancy_regex::Regex::new(pattern).unwrap();
        let program = Program::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}"));
        assert_eq!(program.group_count(), fancy.captures_len(), "{pattern}");
        let mut slots = Vec::new();
        let mut scratch = Scratch::default();
        let ours = program.search(hay.as_bytes(), 0, &mut slots, &mut scratch);
        match fancy.captures(hay).unwrap() {
            None => assert_eq!(ours, Outcome::NoMatch, "{pattern} on {hay:?}: {slots:?}"),
            Some(caps) => {
                assert_eq!(ours, Outcome::Match, "{pattern} on {hay:?}");
                for g in 0..caps.len() {
                    let theirs = caps.get(g).map(|m| (m.start(), m.end()));
                    let mine =
                        (slots[2 * g] != NONE && slots[2 * g + 1] != NONE).then(|| (slots[2 * g], slots[2 * g + 1]));
                    assert_eq!(mine, theirs, "{pattern} on {hay:?}, group {g}");
                }
            }
        }
    }

    #[test]
    fn priorities_follow_backtracking() {
        let cases: &[(&str, &[&str])] = &[
            (r"(a|ab)(c|bcd)(d*)", &["abcd", "abc", "xabcdd"]),
            (r"a*?b", &["aaab", "b", "c"]),
            (r"(a+?)(a*)", &["aaaa"]),
            (r"(?:a|b)*c", &["ababc", "abab"]),
            (r"x{2,3}?(x*)", &["xxxxx"]),
            (r"(?:ab){1,3}(.*)", &["abababab", "abx"]),
            (r"(|a)b", &["ab", "b"]),
            (r"(\w+)\s+(\d{1,3})", &["abc  12345", "x 1", "x y"]),
            (r"^[^:]+:(.*)$", &["key: value", "novalue"]),
            (r"(a)|b", &["b", "a"]),
            (r"(?:(a)|b)+", &["ab", "ba"]),
            (r"(?:a?)*b", &["aab", "c"]),
            (r".+", &["ab\ncd"]),
            (r"(?s).+", &["ab\ncd"]),
            (r"(?m)^b$", &["a\nb\nc", "b"]),
            (r"^b$", &["a\nb\nc", "b"]),
            (r"(?i)HeLLo [a-c]+", &["hello ABC", "HELLO d"]),
            (r"\bfoo\b", &["a foo b", "afoo", "foo_"]),
            (r"\Bo\B", &["foo", "o"]),
            (r"a\z", &["a", "a\n"]),
        ];
        for (pattern, hays) in cases {
            for hay in *hays {
                compare(pattern, hay);
            }
        }
    }

    #[test]
    fn group_boundaries_between_branches_and_repeats() {
        let patterns = [
            r"(a)(b)?(c|d)",
            r"((a)|b)+",
            r"(?:(x)|(y))(z)",
            r"(a(b)?)+c",
            r"(a|ab)(c|bcd)(d*)",
            r"((a)(b))((c)|(d))",
            r"(?:(a)|(b)|(c))*(d)",
            r"^(\w+?)(\d*)(?:-(\w+))?$",
            r"(?P<x>a)?(?P<y>(?(<x>)b|c))",
            r"(x)?(?(1)(y)|(z))(w)?",
        ];
        let hays =
            ["abd", "ac", "abab", "xz", "yz", "ababc", "abcd", "abd", "abcabd", "ab12-cd", "ab", "c", "xyw", "zw", ""];
        for pattern in patterns {
            for hay in hays {
                compare(pattern, hay);
            }
        }
    }

    #[test]
    fn look_around_backreferences_and_conditionals() {
        let cases: &[(&str, &[&str])] = &[
            (r"foo(?=bar)", &["foobar", "foobaz"]),
            (r"foo(?!bar)", &["foobar", "foobaz"]),
            (r"(?<=x)y", &["xy", "zy"]),
            (r"(?<!x)y", &["xy", "zy", "y"]),
            (r"(?<=ab|cd)e", &["abe", "cde", "xe"]),
            (r"^(?:(?! from ).)*? from (\S+)", &["user x from 1.2.3.4 y", "a from b from c"]),
            (r"(?=(\w+))\w", &["abc"]),
            (r"(\w)\1", &["abccd", "abcd"]),
            (r"(?i)(a)\1", &["aA", "ab"]),
            (r"^(?P<a>x)?(?(<a>)y|z)$", &["xy", "z", "xz", "y"]),
            (r"(?P<u>\S+)(?(<u>): |(?:.*)$)", &["user: x", "user x"]),
            (r"(?>a+)a", &["aaaa"]),
            (r"(?>a|ab)c", &["abc", "ac"]),
            (r"(a)(?(1))b", &["ab"]),
            (r"x(?=\b|\W|$)", &["x", "x.", "xy", "ax y", "xx"]),
            (r"(?i)a(?=B|\d)", &["ab", "aB", "a1", "ac"]),
            (r"a(?!b|\d)", &["ab", "a1", "ac", "a"]),
            (r"(?<!ab)c", &["abc", "xbc", "c"]),
            (r"(?<=\d)x", &["1x", "ax"]),
            (r"^(?:(?! from ).)*(?= from )", &["user a from b", "no from", "x  from  y from z"]),
        ];
        for (pattern, hays) in cases {
            for hay in *hays {
                compare(pattern, hay);
            }
        }
    }

    #[test]
    fn fail2ban_shaped_patterns() {
        let ip4 = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
        let ip6 = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
        let host = format!(r"\[?(?:{ip4}|{ip6})\]?");
        let failed = format!(
            r"^Failed (?:(?P<nofail>publickey)|\S+) for (?P<cond_inv>invalid user )?(?P<user>(?P<cond_user>\S+)|(?(<cond_inv>)(?:(?! from ).)*?|[^:]+)) from {host}(?: (?:port \d+|on \S+)){{0,2}}(?: ssh\d*)?(?(<cond_user>): |(?:(?:(?! from ).)*)$)"
        );
        let pref = r"^(?P<mlfid>(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?|[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?)(?:(?:error|fatal): (?:PAM: )?)?(?P<content>.+)(?:\n?\z)";
        let lines = [
            "Failed password for root from 192.0.2.4 port 22 ssh2\n",
            "Failed password for invalid user admin from 2001:db8::5 port 1 ssh2\n",
            "Failed publickey for bob from ::ffff:192.0.2.7 port 22 ssh2: RSA SHA256:abc\n",
            "Failed password for invalid user a from b from 192.0.2.9 port 4\n",
            "Failed none for user: with colon from 192.0.2.1\n",
            "Failed password for root from 192.0.2.4 port 22 ssh2 trailing from 1.2.3.4\n",
            "srv sshd[123]: error: PAM: Authentication failure for x from 192.0.2.1\n",
            "srv01 CRON[20081]: pam_unix(cron:session): session opened\n",
            "[] <auth.info> host kernel: [ 12.5]: sshd[1]: x\n",
        ];
        for hay in lines {
            compare(&failed, hay);
            compare(pref, hay);
            compare(&format!("from {host}"), hay);
        }
    }

    #[test]
    fn a_literal_every_match_holds_is_looked_for_first() {
        let required = |pattern: &str| {
            let program = Program::new(pattern).unwrap();
            program.required.as_ref().map(|f| String::from_utf8(f.needle().to_vec()).unwrap())
        };
        assert_eq!(required(r"^Received x from \S+:\s*3: .*: Auth fail").as_deref(), Some(": Auth fail"));
        // The prefix is checked already; a literal in one branch only, in
        // an optional part, or in a look-ahead is not required.
        assert_eq!(required(r"^Received from"), None);
        assert_eq!(required(r"a(?:bcd|efg)h"), None);
        assert_eq!(required(r"a(?:bcd)?h"), None);
        assert_eq!(required(r"a(?=bcd)\w+"), None);
        assert_eq!(required(r"a(?:xy|z)+ bcd"), Some(" bcd".into()));
        assert_eq!(required(r"(?P<x>x)?(?(<x>)abc|abd)"), None);
        let cases: &[(&str, &[&str])] = &[
            (
                r"^Received x from (\S+)(?: port \d+)?:\s*3: .*: Auth fail",
                &[
                    "Received x from h port 2:3: y: Auth fail",
                    "Received x from h port 2:11: y: Auth fail",
                    "Received x from h: Auth fail:3: y",
                    "Received x from h:3: y: Auth fai",
                ],
            ),
            (r"a(?:xy|z)+ bcd", &["zz a bcd", "azz bcd", "a bcd", "axyz bc"]),
            (r"(?P<u>\S+)|[^:]+ from (?(<u>): |$)", &["u from ", "u v from ", "u: from : "]),
        ];
        for (pattern, hays) in cases {
            for hay in *hays {
                compare(pattern, hay);
            }
        }
    }

    #[test]
    fn a_branch_whose_literal_is_missing_is_not_tried() {
        let needs = |pattern: &str| -> Vec<String> {
            let program = Program::new(pattern).unwrap();
            program.finders.iter().map(|f| String::from_utf8(f.needle().to_vec()).unwrap()).collect()
        };
        // sshd's shape: the first branch sets the group, so the conditional
        // then needs ": ".
        let failed =
            r"^Failed \S+ for (?P<user>(?P<cond_user>\S+)|[^:]+) from (?P<ip>\S+)(?: port \d+)?(?(<cond_user>): |$)";
        assert_eq!(needs(failed), [": "]);
        // Not when the group may be unset again before the conditional, not
        // when both branches need the literal, not right at a branch's start.
        assert!(needs(r"(?:(?P<g>\S+)|x)+(?P<h>y)?(?(<h>)ab|cd)").is_empty());
        assert!(needs(r"(?:\S+ab|[^:]+ab)").is_empty());
        assert!(needs(r"(?:port \d+|on \S+)").is_empty());
        let cases: &[(&str, &[&str])] = &[
            (
                failed,
                &[
                    "Failed password for root from 192.0.2.4 port 22",
                    "Failed password for root from 192.0.2.4 port 22: x",
                    "Failed password for a b from 192.0.2.4",
                    "Failed password for a: b from 192.0.2.4: c",
                ],
            ),
            (r"(?:(?P<g>a\w*)|b)+ (?(<g>)xy|z)", &["a b z", "aa b xy", "b a xy", "b z", "ab xy"]),
            (r"(?:(?P<g>\w+)|-)+ (?(<g>)xy|z)", &["a- z", "-a xy", "- z", "-- xy"]),
        ];
        for (pattern, hays) in cases {
            for hay in *hays {
                compare(pattern, hay);
            }
        }
    }

    #[test]
    fn an_answer_depends_only_on_what_the_search_looked_at() {
        let patterns = [
            r"^(?:\W{0,2})?(?i:(?:(?P<a>mon|tue) )?(?P<b>jan|nov|november) (?P<d>[12]\d|[0 ]?[1-9]) ?(?P<H>[0-2]?\d):(?P<M>[0-5]?\d):(?P<S>[0-5]?\d)(?:\.(?P<f>\d{1,6}))?(?: (?P<Y>20\d\d))?)(?=\b|\W|$)",
            r"^(?P<mlfid>(?:\S+\s+)?(?:sshd(?:\[\d+\])?:?\s+)?)(?P<content>.+)(?:\n?\z)",
            r"^Failed \S+ for (?P<user>.*?) from (?P<ip>(?:\d{1,3}\.){3}\d{1,3})(?: port \d+)?(?: ssh\d*)?$",
            r"a.*?b(?!c)",
            r"(?<=x)\d+",
            r"(\w+) \1",
        ];
        let hays = [
            "Nov  2 00:00:01 srv01 sshd[1]: x",
            "Nov  2 00:00:01.5 2005 x",
            "Nov  2 00:00:01",
            "srv01 sshd[7]: Failed password for root from 192.0.2.1 port 22 ssh2",
            "Failed password for root from 192.0.2.1 port 22 ssh2",
            "Failed password for root from 192.0.2.1",
            "aab abbc x12 y12 ab ab",
            "",
        ];
        let mut scratch = Scratch::default();
        for pattern in patterns {
            let program = Program::new(pattern).unwrap();
            for hay in hays {
                let mut slots = Vec::new();
                let (outcome, reach) = program.search_reach(hay.as_bytes(), 0, &mut slots, &mut scratch);
                if reach > hay.len() {
                    continue;
                }
                for tail in ["", "x", " 2005", ".25", "\n", " ", "c", "Z9 from 1.2.3.4"] {
                    let other = format!("{}{tail}", &hay[..reach]);
                    let mut other_slots = Vec::new();
                    let again = program.search(other.as_bytes(), 0, &mut other_slots, &mut scratch);
                    assert_eq!(again, outcome, "{pattern} on {hay:?} looked at {reach} bytes; then {other:?}");
                    if outcome == Outcome::Match {
                        assert_eq!(other_slots, slots, "{pattern} on {hay:?} then {other:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn ascii_and_byte_equality_agree_with_the_standard_library() {
        for len in 0..40 {
            let plain = "a".repeat(len);
            assert!(is_ascii(&plain));
            for at in 0..len {
                let mut s = plain.clone();
                s.replace_range(at..at + 1, "é");
                assert_eq!(is_ascii(&s), s.is_ascii(), "{s:?}");
                assert!(!same_bytes(s.as_bytes(), format!("{plain}x").as_bytes()));
                let mut other = plain.clone().into_bytes();
                other[at] = b'b';
                assert!(!same_bytes(plain.as_bytes(), &other));
            }
            assert!(same_bytes(plain.as_bytes(), plain.clone().as_bytes()));
        }
    }

    #[test]
    fn what_it_cannot_run_exactly_is_refused() {
        assert!(Program::new(r"(a?)*").is_err());
        assert!(Program::new(r"(?<=a+)b").is_err());
        assert!(Program::new(r"(?i)\u{212a}").is_err());
    }

    #[test]
    fn a_runaway_search_gives_up() {
        let program = Program::new(r"^(?:a|a)*(?:a|a)*(?:a|a)*b").unwrap();
        let hay = "a".repeat(40);
        let mut slots = Vec::new();
        let outcome = program.search(hay.as_bytes(), 0, &mut slots, &mut Scratch::default());
        assert_eq!(outcome, Outcome::GaveUp);
    }
}
