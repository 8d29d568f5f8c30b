//! Where the daemon's log lines go: stderr, stdout, a file (reopened by
//! `flushlogs`), the syslog daemon, or the systemd journal. The target can
//! be switched while the daemon runs (`set logtarget`, as fail2ban's), so
//! every line asks the output where it goes now.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

use crate::BAN_TARGET;
use crate::daemon::settings::LogTarget;

/// Where the journal listens for its native protocol.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// A log file that can be reopened (after logrotate moved it).
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Open `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        Ok(LogFile { path: path.to_path_buf(), file: Arc::new(Mutex::new(open_log(path)?)) })
    }

    /// Reopen the file by name.
    pub fn reopen(&self) -> std::io::Result<()> {
        let fresh = open_log(&self.path)?;
        if let Ok(mut f) = self.file.lock() {
            *f = fresh;
        }
        Ok(())
    }

    fn write_line(&self, line: &[u8]) {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line);
        }
    }
}

/// A datagram socket of a local log daemon (syslog's `/dev/log`, the
/// journal's socket); a failed send is reported once, so that a daemon
/// that is down cannot flood stderr.
#[derive(Clone)]
struct Datagrams {
    socket: Arc<UnixDatagram>,
    path: Arc<Path>,
    reported: Arc<AtomicBool>,
}

impl Datagrams {
    fn new(path: &Path) -> std::io::Result<Datagrams> {
        Ok(Datagrams { socket: Arc::new(UnixDatagram::unbound()?), path: path.into(), reported: Arc::default() })
    }

    fn send(&self, what: &str, datagram: &[u8]) {
        if let Err(e) = self.socket.send_to(datagram, &*self.path)
            && !self.reported.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "wasmban: logging to {what} at {}: {e}; is it running? (set logtarget in wasmban.local)",
                self.path.display()
            );
        }
    }
}

/// The syslog severity of an event: fail2ban's levels, NOTICE for bans.
pub fn severity(meta: &tracing::Metadata<'_>) -> u8 {
    match *meta.level() {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO if meta.target() == BAN_TARGET => 5,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One target, opened.
#[derive(Clone)]
enum Opened {
    Stderr,
    Stdout,
    File(LogFile),
    /// Each event one datagram, `<PRI>` (facility daemon, the event's
    /// severity) then the line without its date, which syslog adds:
    /// `<29>fail2ban.actions        [42]: NOTICE  [sshd] Ban ...`, as
    /// fail2ban sends it (syslog takes `fail2ban.actions` as the tag).
    Syslog(Datagrams),
    /// The journal's native protocol: MESSAGE (the line without its
    /// date), PRIORITY, SYSLOG_IDENTIFIER, SYSLOG_PID, SYSLOG_FACILITY.
    Journal(Datagrams),
}

impl Opened {
    fn open(target: &LogTarget) -> std::io::Result<Opened> {
        Ok(match target {
            LogTarget::Stderr => Opened::Stderr,
            LogTarget::Stdout => Opened::Stdout,
            LogTarget::File(path) => Opened::File(LogFile::open(path)?),
            LogTarget::Syslog(socket) => Opened::Syslog(Datagrams::new(socket)?),
            LogTarget::Journal(socket) => {
                // A journal that is not there is said now, not at the
                // first line.
                std::fs::metadata(socket)?;
                Opened::Journal(Datagrams::new(socket)?)
            }
        })
    }

    /// Whether several lines can go out in one write.
    fn takes_runs(&self) -> bool {
        matches!(self, Opened::Stderr | Opened::Stdout | Opened::File(_))
    }

    /// Whether both are the same open target.
    fn same(&self, other: &Opened) -> bool {
        match (self, other) {
            (Opened::Stderr, Opened::Stderr) | (Opened::Stdout, Opened::Stdout) => true,
            (Opened::File(a), Opened::File(b)) => Arc::ptr_eq(&a.file, &b.file),
            _ => false,
        }
    }

    fn write(&self, meta_severity: u8, line: &[u8]) {
        match self {
            Opened::Stderr => drop(std::io::stderr().write_all(line)),
            Opened::Stdout => drop(std::io::stdout().write_all(line)),
            Opened::File(f) => f.write_line(line),
            Opened::Syslog(d) => {
                let mut datagram = format!("<{}>", 3 * 8 + meta_severity).into_bytes();
                datagram.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                d.send("syslog", &datagram);
            }
            Opened::Journal(d) => {
                let message = line.strip_suffix(b"\n").unwrap_or(line);
                let mut datagram = Vec::with_capacity(message.len() + 96);
                journal_field(&mut datagram, "MESSAGE", message);
                journal_field(&mut datagram, "PRIORITY", meta_severity.to_string().as_bytes());
                journal_field(&mut datagram, "SYSLOG_FACILITY", b"3");
                journal_field(&mut datagram, "SYSLOG_IDENTIFIER", b"wasmban");
                journal_field(&mut datagram, "SYSLOG_PID", std::process::id().to_string().as_bytes());
                d.send("the journal", &datagram);
            }
        }
    }
}

/// One field of the journal's native protocol: `KEY=value\n`, or, for a
/// value with a newline, `KEY\n`, its length (64 bits, little-endian), the
/// value and `\n`.
fn journal_field(datagram: &mut Vec<u8>, key: &str, value: &[u8]) {
    datagram.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        datagram.push(b'\n');
        datagram.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        datagram.push(b'=');
    }
    datagram.extend_from_slice(value);
    datagram.push(b'\n');
}

/// Where lines go now.
#[derive(Clone)]
pub struct LogOutput {
    current: Arc<RwLock<(LogTarget, Opened)>>,
    /// Whether the target dates lines itself: asked for every line.
    self_dating: Arc<AtomicBool>,
}

fn dates_itself(target: &LogTarget) -> bool {
    matches!(target, LogTarget::Syslog(_) | LogTarget::Journal(_))
}

impl LogOutput {
    /// Open `target`; one that cannot be opened is stderr, and the reason
    /// is returned for the log.
    pub fn open(target: &LogTarget) -> (LogOutput, Option<String>) {
        let (opened, problem) = match Opened::open(target) {
            Ok(o) => ((target.clone(), o), None),
            Err(e) => ((LogTarget::Stderr, Opened::Stderr), Some(format!("logtarget {}: {e}", target.name()))),
        };
        let self_dating = Arc::new(AtomicBool::new(dates_itself(&opened.0)));
        (LogOutput { current: Arc::new(RwLock::new(opened)), self_dating }, problem)
    }

    /// Send lines to `target` from now on; the old target stays when the
    /// new one cannot be opened.
    pub fn switch(&self, target: &LogTarget) -> Result<(), String> {
        let opened = Opened::open(target).map_err(|e| format!("logtarget {}: {e}", target.name()))?;
        if let Ok(mut current) = self.current.write() {
            *current = (target.clone(), opened);
            self.self_dating.store(dates_itself(target), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reopen a log file by name (logrotate moved it); other targets have
    /// nothing to reopen.
    pub fn reopen(&self) -> std::io::Result<bool> {
        match self.current.read().map(|c| c.1.clone()) {
            Ok(Opened::File(f)) => f.reopen().map(|()| true),
            _ => Ok(false),
        }
    }

    /// The target, as fail2ban names it (`get logtarget`).
    pub fn target(&self) -> LogTarget {
        self.current.read().map(|c| c.0.clone()).unwrap_or(LogTarget::Stderr)
    }

    /// Whether lines start with their date (syslog and the journal date
    /// them themselves).
    pub fn dates_lines(&self) -> bool {
        !self.self_dating.load(Ordering::Relaxed)
    }

    /// Whether lines go somewhere other than the standard streams (a
    /// terminal then shows them too).
    pub fn is_away(&self) -> bool {
        !matches!(self.target(), LogTarget::Stderr | LogTarget::Stdout)
    }
}

/// One line on its way out; written whole when dropped, so that lines of
/// two threads never interleave and each datagram is one event. While
/// the thread holds its lines for a target that takes runs of them, the
/// line goes straight into the held bytes (a jail in a burst logs a line
/// per failure: a buffer of its own each was a fifth of their cost).
pub struct OutputLine {
    to: Opened,
    severity: u8,
    line: Vec<u8>,
    held: bool,
}

impl Write for OutputLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A line starts held or not. A held one is not released before it
        // is whole (in `drop`): another thread's line could come between
        // its parts.
        let starts = self.line.is_empty();
        self.held = HELD.with(|held| {
            let mut held = held.borrow_mut();
            let Some(held) = held.as_mut() else { return false };
            if !(self.held || (starts && held.take_run(&self.to))) {
                return false;
            }
            held.bytes.extend_from_slice(buf);
            true
        });
        if !self.held {
            self.line.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for OutputLine {
    fn drop(&mut self) {
        if self.held {
            HELD.with(|held| {
                if let Some(held) = held.borrow_mut().as_mut()
                    && held.bytes.len() >= MAX_HELD
                {
                    held.release();
                }
            });
            return;
        }
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        // A line that is not held (no guard, or a datagram target) comes
        // back to be written now.
        let unheld = HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(held) => held.keep(&self.to, line),
            None => Some(line),
        });
        if let Some(line) = unheld {
            self.to.write(self.severity, &line);
        }
    }
}

/// Lines a thread holds back while [`hold_lines`]'s guard lives.
struct HeldLines {
    to: Option<Opened>,
    bytes: Vec<u8>,
}

/// Beyond this many held bytes the lines go out at once, so that holding
/// them never costs much memory.
const MAX_HELD: usize = 64 * 1024;

impl HeldLines {
    /// Keep `line` for later; a line for a target that cannot take a run
    /// of lines in one write (a datagram per event) is given back.
    fn keep(&mut self, to: &Opened, line: Vec<u8>) -> Option<Vec<u8>> {
        if !self.take_run(to) {
            return Some(line);
        }
        self.bytes.extend_from_slice(&line);
        if self.bytes.len() >= MAX_HELD {
            self.release();
        }
        None
    }

    /// Whether lines for `to` can be held here: a target that takes runs
    /// of lines, and the held lines of another target go out first.
    fn take_run(&mut self, to: &Opened) -> bool {
        if !to.takes_runs() {
            return false;
        }
        if self.to.as_ref().is_some_and(|held| !held.same(to)) {
            self.release();
        }
        self.to.get_or_insert_with(|| to.clone());
        true
    }

    fn release(&mut self) {
        if let Some(to) = self.to.take()
            && !self.bytes.is_empty()
        {
            to.write(6, &self.bytes);
        }
        self.bytes.clear();
    }
}

thread_local! {
    static HELD: std::cell::RefCell<Option<HeldLines>> = const { std::cell::RefCell::new(None) };
}

/// Hold this thread's log lines for a file or a standard stream until the
/// guard is dropped, then write them in one go. A jail in a burst logs a
/// line per failure: one write per line costs more than matching it, and
/// wakes every inotify watch on the log's folder (often /var/log, which
/// the jails themselves watch). Lines are still whole and in order; they
/// are only late by the guard's lifetime, so keep it to a batch of work.
pub fn hold_lines() -> HeldGuard {
    let outer = HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.is_some() {
            return false;
        }
        *held = Some(HeldLines { to: None, bytes: Vec::new() });
        true
    });
    HeldGuard { outer }
}

/// Writes the held lines when dropped (see [`hold_lines`]).
pub struct HeldGuard {
    /// Whether this guard started the holding (a nested one leaves it to
    /// the outer).
    outer: bool,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        if self.outer
            && let Some(mut held) = HELD.with(|held| held.borrow_mut().take())
        {
            held.release();
        }
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = OutputLine;
    fn make_writer(&'a self) -> Self::Writer {
        let to = self.current.read().map(|c| c.1.clone()).unwrap_or(Opened::Stderr);
        OutputLine { to, severity: 6, line: Vec::new(), held: false }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let mut writer = self.make_writer();
        writer.severity = severity(meta);
        writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_fields_with_newlines_carry_their_length() {
        let mut d = Vec::new();
        journal_field(&mut d, "MESSAGE", b"one line");
        journal_field(&mut d, "MESSAGE", b"two\nlines");
        let mut expected = b"MESSAGE=one line\nMESSAGE\n".to_vec();
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(b"two\nlines\n");
        assert_eq!(d, expected);
    }

    #[test]
    fn held_lines_go_out_whole_and_in_order_when_the_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let (out, _) = LogOutput::open(&LogTarget::File(path.clone()));
        let line = |text: &str| out.make_writer().write_all(text.as_bytes()).unwrap();
        line("before\n");
        {
            let _held = hold_lines();
            let _nested = hold_lines();
            line("one\n");
            line("two\n");
            drop(_nested);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\n");
            // Another thread's lines are not held by this one's guard.
            let other = out.clone();
            std::thread::spawn(move || other.make_writer().write_all(b"elsewhere\n").unwrap()).join().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\nelsewhere\none\ntwo\n");
        line("after\n");
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("two\nafter\n"));
    }

    #[test]
    fn held_lines_follow_a_switch_of_target() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let (out, _) = LogOutput::open(&LogTarget::File(a.clone()));
        let _held = hold_lines();
        out.make_writer().write_all(b"to a\n").unwrap();
        out.switch(&LogTarget::File(b.clone())).unwrap();
        out.make_writer().write_all(b"to b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "to a\n");
        drop(_held);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "to b\n");
    }

    #[test]
    fn a_target_that_cannot_be_opened_leaves_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (out, problem) = LogOutput::open(&LogTarget::File(dir.path().join("a.log")));
        assert!(problem.is_none());
        let err = out.switch(&LogTarget::Journal(dir.path().join("no-journal"))).unwrap_err();
        assert!(err.contains("SYSTEMD-JOURNAL"), "{err}");
        assert_eq!(out.target(), LogTarget::File(dir.path().join("a.log")));
        out.switch(&LogTarget::Stderr).unwrap();
        assert!(!out.is_away() && out.dates_lines());
    }
}
