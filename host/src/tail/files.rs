//! A jail's log files: its `logpath` entries (globs included), woken by
//! inotify where it works and polled regardless, so that a missed event
//! costs latency, never lines.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{RecursiveMode, Watcher};

use crate::tail::Wake;
use crate::tail::file::{Cursor, Joined, LineSink, Start, Tailer};

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
pub struct FileSource {
    jail: String,
    patterns: Vec<Pattern>,
    tailers: Vec<Tailer>,
    /// Where files were left, from the store: a file found now or later
    /// resumes there.
    saved: HashMap<PathBuf, Cursor>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    /// Set by file events, cleared by reads: one wake-up per burst.
    pending: Arc<AtomicBool>,
    /// Where the next read starts, so that one busy file cannot starve another.
    next: usize,
}

impl FileSource {
    /// Follow `logpaths` (one entry per line: a path or glob, optionally
    /// followed by `head` or `tail`).
    pub fn new(
        jail: &str,
        logpaths: &[String],
        backend: Backend,
        saved: HashMap<PathBuf, Cursor>,
        wake: Wake,
    ) -> Result<FileSource, String> {
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
                        wake();
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
        let mut source = FileSource {
            jail: jail.to_string(),
            patterns,
            tailers: Vec::new(),
            saved,
            watcher,
            watched: BTreeSet::new(),
            pending,
            next: 0,
        };
        source.rescan();
        Ok(source)
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
            let saved = self.saved.get(&path).copied();
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
    pub fn read(&mut self, limit: usize) -> Joined {
        self.pending.store(false, Ordering::Release);
        let mut lines = Joined::default();
        let n = self.tailers.len();
        for k in 0..n {
            if lines.count() >= limit {
                break;
            }
            let i = (self.next + k) % n;
            let t = &mut self.tailers[i];
            let was_open = t.is_open();
            let cut_before = t.truncated_lines;
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
            if t.truncated_lines > cut_before {
                let kib = crate::tail::file::MAX_LINE >> 10;
                tracing::warn!(
                    "[{}] {}: {} line(s) longer than {kib} KiB, each read as its first {kib} KiB (the rest is skipped)",
                    self.jail,
                    t.path().display(),
                    t.truncated_lines - cut_before,
                );
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

    /// Each followed file with the bytes not yet read from it.
    pub fn backlog(&self) -> Vec<(String, u64)> {
        self.tailers.iter().filter_map(|t| Some((t.path().display().to_string(), t.backlog()?))).collect()
    }

    /// Files being followed.
    pub fn files(&self) -> Vec<String> {
        self.tailers.iter().filter(|t| t.is_open()).map(|t| t.path().display().to_string()).collect()
    }

    /// Whether file events wake the reader (else it polls).
    pub fn is_watched(&self) -> bool {
        self.watcher.is_some()
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
