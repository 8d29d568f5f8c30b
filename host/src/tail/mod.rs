//! Where a jail's lines come from: log files (globs, rotation, restarts)
//! or the systemd journal, behind one type. A source knows nothing of jails
//! or of the store: it is given the positions saved earlier and a wake
//! callback, and hands out batches of lines with the positions they end at,
//! for whoever saves them (with the bans they led to).

pub mod file;
pub mod files;
pub mod journal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use file::{Cursor, Joined, LineSink, MAX_LINE, Start, Tailer};
pub use files::{Backend, FileSource, has_glob};
pub use journal::{JournalSource, JournalSpec};

/// Called (from another thread) when new lines may be there, so that the
/// owner reads now rather than at its next poll.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// What a jail reads: its `backend`, `logpath` entries and the filter's
/// `journalmatch`. Checked without opening anything (`wasmban check`).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// The jail, for messages.
    pub jail: String,
    /// `backend` as written (`auto`, `polling`, `systemd[journalfiles=...]`, ...).
    pub backend: String,
    /// `logpath` entries (path or glob, optionally `head`/`tail`).
    pub logpaths: Vec<String>,
    /// The filter's `journalmatch`, for the journal.
    pub journalmatch: Option<String>,
}

impl SourceSpec {
    /// Whether lines come from the journal.
    pub fn is_journal(&self) -> bool {
        Backend::parse(&self.backend).is_ok_and(|b| b == Backend::Systemd)
    }

    /// Whether the spec can be opened, and why not.
    pub fn validate(&self) -> Result<(), String> {
        let backend = Backend::parse(&self.backend).map_err(|e| format!("backend: {e}"))?;
        if backend == Backend::Systemd {
            JournalSpec::parse(&self.backend, self.journalmatch.as_deref())?;
        }
        Ok(())
    }
}

/// Where reading has got to: saved together with the bans the lines led
/// to, so that a restart neither reads counted lines again nor skips any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Each followed file's position.
    pub files: Vec<(PathBuf, Cursor)>,
    /// The journal's cursor.
    pub journal: Option<String>,
}

/// Lines read in one go, with their times when the source knows them,
/// and where reading stands after them.
#[derive(Debug, Default)]
pub struct Batch {
    /// The lines, joined with "\n" as a filter is fed them: one string
    /// per batch, not one per line (no line holds a newline).
    pub lines: Joined,
    /// Unix time of each line (journal entries); `None` for files, whose
    /// lines carry their dates for the filter to find.
    pub times: Option<Vec<f64>>,
    /// Positions after these lines (empty when there are none).
    pub progress: Progress,
}

/// A jail's source of lines.
pub enum Source {
    /// Log files.
    Files(FileSource),
    /// The journal.
    Journal(JournalSource),
}

impl Source {
    /// Open what `spec` names; `saved_files` are the file positions saved
    /// earlier, `saved_journal` the journal cursor.
    pub fn open(
        spec: &SourceSpec,
        saved_files: HashMap<PathBuf, Cursor>,
        saved_journal: Option<String>,
        wake: Wake,
    ) -> Result<Source, String> {
        let backend = Backend::parse(&spec.backend).map_err(|e| format!("backend: {e}"))?;
        if backend == Backend::Systemd {
            let journal = JournalSpec::parse(&spec.backend, spec.journalmatch.as_deref())?;
            return Ok(Source::Journal(JournalSource::new(&spec.jail, journal, saved_journal, wake)));
        }
        FileSource::new(&spec.jail, &spec.logpaths, backend, saved_files, wake).map(Source::Files)
    }

    /// Whether lines come from the journal.
    pub fn is_journal(&self) -> bool {
        matches!(self, Source::Journal(_))
    }

    /// Up to `limit` new lines.
    pub fn read(&mut self, limit: usize) -> Batch {
        let (lines, times) = match self {
            Source::Files(f) => (f.read(limit), None),
            Source::Journal(j) => {
                let entries = j.read(limit);
                let times = entries.iter().map(|e| e.time).collect();
                let mut lines = Joined::default();
                for entry in &entries {
                    lines.push_line(&entry.line);
                }
                (lines, Some(times))
            }
        };
        // Nothing read, nothing to save: the idle loop asks often.
        let progress = if lines.count == 0 { Progress::default() } else { self.progress() };
        Batch { lines, times, progress }
    }

    /// Where reading stands now.
    pub fn progress(&mut self) -> Progress {
        match self {
            Source::Files(f) => Progress { files: f.cursors(), journal: None },
            Source::Journal(j) => Progress { files: Vec::new(), journal: j.cursor().map(str::to_string) },
        }
    }

    /// What is followed.
    pub fn files(&self) -> Vec<String> {
        match self {
            Source::Files(f) => f.files(),
            Source::Journal(j) => j.files(),
        }
    }

    /// Each followed file with the bytes not yet read from it (none for
    /// the journal).
    pub fn backlog(&self) -> Vec<(String, u64)> {
        match self {
            Source::Files(f) => f.backlog(),
            Source::Journal(_) => Vec::new(),
        }
    }

    /// How lines are noticed: `systemd` (the journal), `inotify` (file
    /// events) or `polling`, as fail2ban's `stats` names the backend.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Source::Files(f) if f.is_watched() => "inotify",
            Source::Files(_) => "polling",
            Source::Journal(_) => "systemd",
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
