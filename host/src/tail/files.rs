//! A jail's logs: its `logpath` entries (globs included) followed as files,
//! woken by inotify where it works and polled regardless, so that a missed
//! event costs latency, never lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use notify::{RecursiveMode, Watcher};

use crate::daemon::journal::{JournalSource, JournalSpec};
use crate::daemon::worker::Command;
use crate::store::Store;
use crate::tail::{Cursor, Start, Tailer};

/// How a jail learns that its files changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// inotify when available, else polling.
    Auto,
    /// inotify (fail2ban's `pyinotify`); falls back to polling with a warning.
    Inotify,
    /// Look at the files every poll interval only.
    Polling,
    /// The systemd journal (`logpath` is not used).
    Systemd,
}

impl Backend {
    /// Parse a jail's `backend` value.
    pub fn parse(text: &str) -> Result<Backend, String> {
        let word = text.split(['[', ' ']).next().unwrap_or("").trim();
        match word {
            "" | "auto" => Ok(Backend::Auto),
            "pyinotify" | "inotify" | "gamin" => Ok(Backend::Inotify),
            "polling" => Ok(Backend::Polling),
            "systemd" => Ok(Backend::Systemd),
            other => Err(format!("unknown backend {other:?}; use auto, inotify, polling or systemd")),
        }
    }
}

/// Whether a `logpath` entry is a glob pattern.
pub fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

struct Pattern {
    text: String,
    start: Start,
}

/// The followed files of one jail.
pub struct LogSource {
    jail: String,
    patterns: Vec<Pattern>,
    tailers: Vec<Tailer>,
    store: Arc<Mutex<Store>>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    /// Set by file events, cleared by reads: one wake-up per burst.
    pending: Arc<AtomicBool>,
    /// Where the next read starts, so that one busy file cannot starve another.
    next: usize,
}

impl LogSource {
    /// Follow `logpaths` (one entry per line: a path or glob, optionally
    /// followed by `head` or `tail`).
    pub fn new(
        jail: &str,
        logpaths: &[String],
        backend: Backend,
        store: Arc<Mutex<Store>>,
        waker: Sender<Command>,
    ) -> Result<LogSource, String> {
        let mut patterns = Vec::new();
        for entry in logpaths {
            let mut words = entry.split_whitespace();
            let Some(text) = words.next() else { continue };
            let start = match words.next() {
                None | Some("tail") => Start::End,
                Some("head") => Start::Head,
                Some(other) => return Err(format!("logpath {entry:?}: {other:?} must be head or tail")),
            };
            patterns.push(Pattern { text: text.to_string(), start });
        }
        let pending = Arc::new(AtomicBool::new(false));
        let watcher = match backend {
            Backend::Polling | Backend::Systemd => None,
            Backend::Auto | Backend::Inotify => {
                let flag = pending.clone();
                let made = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    if event.is_ok() && !flag.swap(true, Ordering::AcqRel) {
                        let _ = waker.send(Command::Wake);
                    }
                });
                match made {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!("[{jail}] inotify unavailable ({e}); polling instead");
                        None
                    }
                }
            }
        };
        let mut source = LogSource {
            jail: jail.to_string(),
            patterns,
            tailers: Vec::new(),
            store,
            watcher,
            watched: BTreeSet::new(),
            pending,
            next: 0,
        };
        source.rescan();
        Ok(source)
    }

    fn saved_cursor(&self, path: &Path) -> Option<Cursor> {
        let store = self.store.lock().ok()?;
        match store.load_cursor(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("[{}] {e}", self.jail);
                None
            }
        }
    }

    /// Expand globs again: files that appeared since are followed from
    /// their start; directories that appeared are watched.
    pub fn rescan(&mut self) {
        let first = self.tailers.is_empty() && self.watched.is_empty();
        let mut found: Vec<(PathBuf, Start)> = Vec::new();
        for p in &self.patterns {
            if has_glob(&p.text) {
                match glob::glob(&p.text) {
                    Ok(paths) => {
                        // A file matched later was created after the jail
                        // started: every line of it is new.
                        let start = if first { p.start } else { Start::Head };
                        found.extend(paths.flatten().filter(|f| f.is_file()).map(|f| (f, start)));
                    }
                    Err(e) => tracing::warn!("[{}] logpath {}: {e}", self.jail, p.text),
                }
            } else {
                found.push((PathBuf::from(&p.text), p.start));
            }
        }
        for (path, start) in found {
            if self.tailers.iter().any(|t| t.path() == path) {
                continue;
            }
            let saved = self.saved_cursor(&path);
            let mut tailer = Tailer::new(path, start, saved);
            if let Err(e) = tailer.open_now()
                && tailer.note_error(&e)
            {
                tracing::warn!("[{}] opening {}: {e}", self.jail, tailer.path().display());
            }
            self.tailers.push(tailer);
        }
        let dirs: Vec<PathBuf> = self
            .patterns
            .iter()
            .filter_map(|p| Path::new(&p.text).parent().map(Path::to_path_buf))
            .filter(|d| !has_glob(&d.to_string_lossy()) && d.is_dir())
            .collect();
        if let Some(w) = self.watcher.as_mut() {
            for dir in dirs {
                if self.watched.contains(&dir) {
                    continue;
                }
                match w.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(dir);
                    }
                    Err(e) => tracing::warn!("[{}] cannot watch {} ({e}); it is polled", self.jail, dir.display()),
                }
            }
        }
    }

    /// Up to `limit` new lines, from every file in turn.
    pub fn read(&mut self, limit: usize) -> Vec<String> {
        self.pending.store(false, Ordering::Release);
        let mut lines = Vec::new();
        let n = self.tailers.len();
        for k in 0..n {
            if lines.len() >= limit {
                break;
            }
            let i = (self.next + k) % n;
            let t = &mut self.tailers[i];
            let was_open = t.is_open();
            match t.poll_up_to(&mut lines, limit) {
                Err(e) => {
                    if t.note_error(&e) {
                        tracing::warn!("[{}] reading {}: {e}", self.jail, t.path().display());
                    }
                }
                Ok(()) => {
                    if t.clear_error() && t.is_open() {
                        tracing::info!("[{}] {} can be read again", self.jail, t.path().display());
                    }
                }
            }
            if !was_open && t.is_open() {
                tracing::info!("[{}] following {}", self.jail, t.path().display());
            }
        }
        if n > 0 {
            self.next = (self.next + 1) % n;
        }
        lines
    }

    /// Read positions of the files being followed.
    pub fn cursors(&mut self) -> Vec<(PathBuf, Cursor)> {
        self.tailers.iter_mut().filter_map(|t| Some((t.path().to_path_buf(), t.cursor()?))).collect()
    }

    /// Files being followed.
    pub fn files(&self) -> Vec<String> {
        self.tailers.iter().filter(|t| t.is_open()).map(|t| t.path().display().to_string()).collect()
    }

    /// Paths (or globs) with nothing to follow yet.
    pub fn waiting(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.tailers.iter().filter(|t| !t.is_open()).map(|t| t.path().display().to_string()).collect();
        for p in &self.patterns {
            if has_glob(&p.text)
                && !self.tailers.iter().any(|t| glob::Pattern::new(&p.text).is_ok_and(|g| g.matches_path(t.path())))
            {
                out.push(p.text.clone());
            }
        }
        out
    }
}

/// Lines read in one go, with their times when the source knows them.
#[derive(Debug, Default)]
pub struct Batch {
    /// The lines.
    pub lines: Vec<String>,
    /// Unix time of each line (journal entries); `None` for files, whose
    /// lines carry their dates for the filter to find.
    pub times: Option<Vec<f64>>,
}

/// Where a jail's lines come from.
pub enum Source {
    /// Log files.
    Files(LogSource),
    /// The journal.
    Journal(JournalSource),
}

impl Source {
    /// The source for a jail's `backend`, `logpath` and the filter's `journalmatch`.
    pub fn open(
        jail: &str,
        backend_text: &str,
        logpaths: &[String],
        journalmatch: Option<&str>,
        store: Arc<Mutex<Store>>,
        waker: Sender<Command>,
    ) -> Result<Source, String> {
        let backend = Backend::parse(backend_text).map_err(|e| format!("backend: {e}"))?;
        if backend == Backend::Systemd {
            let spec = JournalSpec::parse(backend_text, journalmatch)?;
            let cursor = store.lock().ok().and_then(|s| s.load_journal_cursor(jail).ok().flatten());
            return Ok(Source::Journal(JournalSource::new(jail, spec, cursor, waker)));
        }
        LogSource::new(jail, logpaths, backend, store, waker).map(Source::Files)
    }

    /// Whether lines come from the journal.
    pub fn is_journal(&self) -> bool {
        matches!(self, Source::Journal(_))
    }

    /// Up to `limit` new lines.
    pub fn read(&mut self, limit: usize) -> Batch {
        match self {
            Source::Files(f) => Batch { lines: f.read(limit), times: None },
            Source::Journal(j) => {
                let entries = j.read(limit);
                let times = entries.iter().map(|e| e.time).collect();
                Batch { lines: entries.into_iter().map(|e| e.line).collect(), times: Some(times) }
            }
        }
    }

    /// Read positions of files.
    pub fn cursors(&mut self) -> Vec<(PathBuf, Cursor)> {
        match self {
            Source::Files(f) => f.cursors(),
            Source::Journal(_) => Vec::new(),
        }
    }

    /// The journal cursor, for the journal.
    pub fn journal_cursor(&self) -> Option<&str> {
        match self {
            Source::Files(_) => None,
            Source::Journal(j) => j.cursor(),
        }
    }

    /// What is followed.
    pub fn files(&self) -> Vec<String> {
        match self {
            Source::Files(f) => f.files(),
            Source::Journal(j) => j.files(),
        }
    }

    /// What is waited for.
    pub fn waiting(&self) -> Vec<String> {
        match self {
            Source::Files(f) => f.waiting(),
            Source::Journal(_) => Vec::new(),
        }
    }

    /// Look for new files.
    pub fn rescan(&mut self) {
        if let Source::Files(f) = self {
            f.rescan();
        }
    }
}
