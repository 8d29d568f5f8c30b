//! From fancy-regex's parse tree to instructions, with Python's meaning
//! for every construct on ASCII text.

use fancy_regex::{Assertion, LookAround};

use super::*;

/// Loop marks are numbered from here until the program is linked.
pub(super) const MARK_BASE: u32 = 1 << 30;

#[derive(Default)]
pub(super) struct Compiler {
    /// The groups to record (None: all).
    pub(super) record_only: Option<Vec<usize>>,
    pub(super) insts: Vec<Inst>,
    pub(super) sets: Vec<ByteSet>,
    pub(super) pool: Vec<u8>,
    pub(super) peeks: Vec<Box<[PeekAlt]>>,
    pub(super) groups: usize,
    pub(super) marks: usize,
}

impl Compiler {
    pub(super) fn too_big(&self) -> Result<(), Unsupported> {
        if self.insts.len() > MAX_INSTS {
            return Err(Unsupported("pattern too large once repetitions are unrolled".into()));
        }
        Ok(())
    }

    pub(super) fn set(&mut self, set: ByteSet) -> u32 {
        if let Some(i) = self.sets.iter().position(|s| *s == set) {
            return i as u32;
        }
        self.sets.push(set);
        (self.sets.len() - 1) as u32
    }

    /// The byte class of an expression that matches exactly one byte of
    /// an ASCII haystack, if it is one.
    pub(super) fn single_byte(&mut self, e: &Expr) -> Result<Option<u32>, Unsupported> {
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
    pub(super) fn class(&mut self, inner: &str, casei: bool) -> Result<u32, Unsupported> {
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

    pub(super) fn emit(&mut self, inst: Inst) -> usize {
        self.insts.push(inst);
        self.insts.len() - 1
    }

    pub(super) fn literal(&mut self, val: &str, casei: bool) -> Result<(), Unsupported> {
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

    pub(super) fn expr(&mut self, e: &Expr) -> Result<(), Unsupported> {
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
                    if is_python_dollar(&parts[i..]) {
                        self.emit(Inst::Assert(Look::EndTextOrFinalNewline));
                        i += 2;
                        continue;
                    }
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
    pub(super) fn sub(&mut self, kind: SubKind, inner: &Expr) -> Result<(), Unsupported> {
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
    pub(super) fn peek_alts(&mut self, e: &Expr) -> Result<Option<Vec<PeekAlt>>, Unsupported> {
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

    pub(super) fn repeat(&mut self, child: &Expr, lo: usize, hi: usize, greedy: bool) -> Result<(), Unsupported> {
        if let Some(class) = self.single_byte(child)? {
            let max = if hi == usize::MAX { u32::MAX } else { hi.min(u32::MAX as usize - 1) as u32 };
            self.emit(Inst::Run(RunInst { class, min: lo as u32, max, greedy, next: NO_SET, possessive: false }));
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
pub(super) fn referenced_groups(e: &Expr) -> Vec<usize> {
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

pub(super) fn has_group(e: &Expr) -> bool {
    matches!(e, Expr::Group(_)) || (!e.is_leaf_node() && e.children_iter().any(has_group))
}

/// Whether an expression can match the empty string (conservative: true
/// when not sure).
pub(super) fn can_be_empty(e: &Expr) -> bool {
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
pub(super) fn fixed_width(e: &Expr) -> Option<usize> {
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

/// Whether `parts` starts with `\n?\z`, the translation of Python's `$`.
fn is_python_dollar(parts: &[Expr]) -> bool {
    let [Expr::Repeat { child, lo: 0, hi: 1, greedy: true }, Expr::Assertion(Assertion::EndText), ..] = parts else {
        return false;
    };
    matches!(child.as_ref(), Expr::Literal { val, casei: false } if val == "\n")
}
