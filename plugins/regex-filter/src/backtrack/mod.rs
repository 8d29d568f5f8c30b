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

mod analyse;
mod compile;
mod vm;

use fancy_regex::Expr;

use compile::{Compiler, MARK_BASE, referenced_groups};

/// A run instruction's operands: a class repeated `min` to `max` times,
/// greedy or lazy, with the set of bytes that may follow it (`next`).
#[derive(Debug, Clone, Copy)]
pub(super) struct RunInst {
    pub(super) class: u32,
    pub(super) min: u32,
    pub(super) max: u32,
    pub(super) greedy: bool,
    pub(super) next: u32,
    pub(super) possessive: bool,
}

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
    /// Python's `$` without MULTILINE: the end, or just before a newline
    /// that ends the text. Zero-width, as in Python: the translator's
    /// `(?:\n?\z)` (what the `regex` crate can run) consumes that newline,
    /// which moved the end of every group holding a `$`.
    EndTextOrFinalNewline,
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
    Run(RunInst),
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
        // Python refuses a reference to a group the pattern does not have
        // ("invalid group reference"); the machine must never read past
        // its slots (found by the `dialect` fuzz target).
        for inst in &c.insts {
            if let Inst::Backref { group, .. } | Inst::IfGroup { group, .. } = inst
                && *group as usize >= groups
            {
                return Err(Unsupported(format!("reference to group {group}, which the pattern does not have")));
            }
        }
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
        Look::EndTextOrFinalNewline => pos == hay.len() || (pos + 1 == hay.len() && hay[pos] == b'\n'),
        Look::StartLine => pos == 0 || hay[pos - 1] == b'\n',
        Look::EndLine => pos == hay.len() || hay[pos] == b'\n',
        Look::WordBoundary | Look::NotWordBoundary => {
            let before = pos > 0 && is_word(hay[pos - 1]);
            let after = pos < hay.len() && is_word(hay[pos]);
            // Python's `\B` never matches in an empty text (found by the
            // `backtrack` fuzz target).
            (before != after) == (look == Look::WordBoundary) && !(hay.is_empty() && look == Look::NotWordBoundary)
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

#[cfg(test)]
mod tests;
