//! Following a log file by identity, not by name: lines appended to it,
//! across rotation by rename-and-create and by copytruncate, and across
//! restarts through a saved [`Cursor`].
//!
//! The tailer is polled; whoever owns it decides when (inotify events, a
//! timer). Only complete lines are returned: a line still being written
//! waits for its newline.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes read per system call.
const CHUNK: usize = 64 * 1024;
/// A line longer than this is cut, so one runaway line cannot exhaust memory.
pub const MAX_LINE: usize = 1 << 20;

/// Where a file was left: enough to resume after a restart without
/// re-reading counted lines or skipping new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Bytes consumed (up to the end of the last complete line).
    pub offset: u64,
    /// How many of the file's first bytes `fingerprint` covers.
    pub head_len: u16,
    /// Hash of the file's first `head_len` bytes, to notice a file that
    /// was emptied and rewritten, or a reused inode.
    pub fingerprint: u64,
}

/// Bytes at the start of a file that identify its content.
const HEAD: usize = 256;

/// Where to start reading a file seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At its end: only new lines count (fail2ban's default `tail`).
    End,
    /// At its beginning (fail2ban's `head`).
    Head,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// End of the last complete line consumed.
    offset: u64,
    /// Raw bytes read after `offset` (the line still being written).
    pending: u64,
    /// The first bytes of the file as read (up to HEAD), hashed.
    head_len: u16,
    fingerprint: u64,
}

/// The cursor of `path` read up to `offset` (a line boundary), as the
/// tailer would save it: for positions taken over from another program
/// (fail2ban's database).
pub fn cursor_at(path: &Path, offset: u64) -> std::io::Result<Cursor> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if offset > meta.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("position {offset} is past the end ({} bytes)", meta.len()),
        ));
    }
    let (head_len, fingerprint) = head_hash(&mut file, (offset as usize).min(HEAD))?;
    Ok(Cursor { dev: meta.dev(), ino: meta.ino(), offset, head_len, fingerprint })
}

/// Follows one path.
pub struct Tailer {
    path: PathBuf,
    start: Start,
    open: Option<Open>,
    saved: Option<Cursor>,
    /// Whether the path has been looked at once: only the very first look
    /// may start at the end; a file that appears later is read whole.
    started: bool,
    partial: Vec<u8>,
    /// Lines cut at [`MAX_LINE`] so far.
    pub truncated_lines: u64,
    /// The last error reported, so that a path that stays broken is
    /// reported once, not at every poll.
    last_error: Option<String>,
}

/// Hash of the first `len` bytes of `file` (fewer if it is shorter), and
/// how many bytes that was. Leaves the file position undefined.
fn head_hash(file: &mut File, len: usize) -> std::io::Result<(u16, u64)> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(0))?;
    let mut got = 0;
    while got < len {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    let mut h = DefaultHasher::new();
    buf[..got].hash(&mut h);
    Ok((got as u16, h.finish()))
}

impl Tailer {
    /// Follow `path`, resuming from `saved` when it still describes the
    /// file found there, otherwise starting as `start` says.
    pub fn new(path: impl Into<PathBuf>, start: Start, saved: Option<Cursor>) -> Tailer {
        Tailer {
            path: path.into(),
            start,
            open: None,
            saved,
            started: false,
            partial: Vec::new(),
            truncated_lines: 0,
            last_error: None,
        }
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file is now consumed to, for saving.
    pub fn cursor(&mut self) -> Option<Cursor> {
        let open = self.open.as_ref()?;
        Some(Cursor {
            dev: open.dev,
            ino: open.ino,
            offset: open.offset,
            head_len: open.head_len,
            fingerprint: open.fingerprint,
        })
    }

    /// Bytes written to the file beyond what has been consumed (the lag
    /// behind the log); `None` when it is not open.
    pub fn backlog(&self) -> Option<u64> {
        let open = self.open.as_ref()?;
        let size = open.file.metadata().ok()?.len();
        Some(size.saturating_sub(open.offset))
    }

    /// Remember `error`; true when it differs from the last one (worth
    /// reporting).
    pub fn note_error(&mut self, error: &std::io::Error) -> bool {
        let text = error.to_string();
        let new = self.last_error.as_deref() != Some(&text);
        self.last_error = Some(text);
        new
    }

    /// Forget the last error; true when there was one (worth saying that
    /// the file is read again).
    pub fn clear_error(&mut self) -> bool {
        self.last_error.take().is_some()
    }

    /// Whether the file exists and is being followed.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn open_path(&mut self) -> std::io::Result<bool> {
        let first_time = !std::mem::replace(&mut self.started, true);
        // Non-blocking, so that a FIFO put at the path cannot hang the jail
        // in open(2); anything but a regular file is then refused.
        let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&self.path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(explain(e)),
        };
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "it is {}, not a regular file; only log files are followed (it is looked at again in case \
                     a log file takes its place)",
                    describe(meta.file_type())
                ),
            ));
        }
        let offset = match self.saved.take() {
            Some(c)
                if c.dev == meta.dev()
                    && c.ino == meta.ino()
                    && c.offset <= meta.len()
                    && head_hash(&mut file, c.head_len as usize)? == (c.head_len, c.fingerprint) =>
            {
                c.offset
            }
            // Saved for another file (rotated while we were stopped): read
            // the new one from its start.
            Some(_) => 0,
            None if first_time && self.start == Start::End => meta.len(),
            None => 0,
        };
        let (head_len, fingerprint) = head_hash(&mut file, (offset as usize).min(HEAD))?;
        file.seek(SeekFrom::Start(offset))?;
        self.partial.clear();
        self.open = Some(Open { file, dev: meta.dev(), ino: meta.ino(), offset, pending: 0, head_len, fingerprint });
        Ok(true)
    }

    /// Open the file now if it exists, fixing where reading starts
    /// (its end, for [`Start::End`]) without reading anything: lines
    /// written between this and the first poll are not skipped.
    pub fn open_now(&mut self) -> std::io::Result<()> {
        if self.open.is_none() {
            self.open_path()?;
        }
        Ok(())
    }

    /// Read what is new. Complete lines are appended to `lines` (without
    /// their newline; invalid UTF-8 replaced).
    pub fn poll(&mut self, lines: &mut impl LineSink) -> std::io::Result<()> {
        self.poll_up_to(lines, usize::MAX)
    }

    /// Like [`Tailer::poll`], but stop once `lines` holds `limit` lines, so
    /// that a burst is taken in bounded chunks and the cursor marks
    /// exactly the lines handed out.
    ///
    /// An error drops the held file, keeping where it was read to: the
    /// next poll looks at the path again, as after a rotation, and resumes
    /// the same file where it stopped. One error never blinds the jail.
    pub fn poll_up_to(&mut self, lines: &mut impl LineSink, limit: usize) -> std::io::Result<()> {
        let polled = self.poll_inner(lines, limit);
        if polled.is_err() && self.open.is_some() {
            self.saved = self.cursor();
            self.open = None;
            self.partial.clear();
        }
        polled
    }

    fn poll_inner(&mut self, lines: &mut impl LineSink, limit: usize) -> std::io::Result<()> {
        if self.open.is_none() && !self.open_path()? {
            return Ok(());
        }
        // The held file first, through its own handle: emptied by
        // copytruncate (shorter than what was read, or regrown with other
        // first bytes)? That holds even when it has since been renamed away.
        if let Some(o) = self.open.as_mut() {
            let len = o.file.metadata()?.len();
            let shorter = len < o.offset + o.pending;
            let rewritten = !shorter && head_hash(&mut o.file, o.head_len as usize)? != (o.head_len, o.fingerprint);
            if shorter || rewritten {
                o.offset = 0;
                o.pending = 0;
                (o.head_len, o.fingerprint) = head_hash(&mut o.file, 0)?;
                self.partial.clear();
            }
            o.file.seek(SeekFrom::Start(o.offset + o.pending))?;
        }
        // Is the path still the held file? While nothing is at the path
        // (renamed, the new file not created yet) the old file is kept:
        // the service may still be writing its last lines there.
        let (same, path_error) = match std::fs::metadata(&self.path) {
            Ok(meta) => (self.open.as_ref().is_some_and(|o| o.dev == meta.dev() && o.ino == meta.ino()), None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (true, None),
            // The held file is still read to its end before the error is
            // reported.
            Err(e) => (true, Some(e)),
        };
        if !self.read_available(lines, limit)? {
            // Stopped at the limit: the rest (and any rotation) next time.
            return Ok(());
        }
        if let Some(e) = path_error {
            return Err(e);
        }
        if !same {
            // Renamed away (or deleted): its tail has been read above; now
            // follow whatever the path holds, from its start.
            self.open = None;
            if self.open_path()? {
                self.read_available(lines, limit)?;
            }
        }
        Ok(())
    }

    /// Read complete lines until the end of the file (true) or until
    /// `lines` holds `limit` (false). Reading stops right after the last
    /// line taken, so nothing read is left unaccounted for.
    fn read_available(&mut self, lines: &mut impl LineSink, limit: usize) -> std::io::Result<bool> {
        let Some(open) = self.open.as_mut() else { return Ok(true) };
        let mut buf = vec![0u8; CHUNK];
        loop {
            if lines.count() >= limit {
                open.file.seek(SeekFrom::Start(open.offset + open.pending))?;
                return Ok(false);
            }
            let n = open.file.read(&mut buf)?;
            if n == 0 {
                let read = open.offset + open.pending;
                if (open.head_len as u64) < read.min(HEAD as u64) {
                    (open.head_len, open.fingerprint) = head_hash(&mut open.file, read.min(HEAD as u64) as usize)?;
                    open.file.seek(SeekFrom::Start(read))?;
                }
                return Ok(true);
            }
            let mut rest = &buf[..n];
            while let Some(nl) = memchr::memchr(b'\n', rest) {
                if lines.count() >= limit {
                    // Give back what was read past the last line taken.
                    self.partial.clear();
                    open.pending = 0;
                    open.file.seek(SeekFrom::Start(open.offset))?;
                    return Ok(false);
                }
                let room = MAX_LINE.saturating_sub(self.partial.len());
                // Cut here, or in an earlier chunk of the same line.
                if nl > room || open.pending as usize > self.partial.len() {
                    self.truncated_lines += 1;
                }
                // A line whole in this chunk is taken from it, without a copy.
                let line = if self.partial.is_empty() && nl <= room {
                    &rest[..nl]
                } else {
                    self.partial.extend_from_slice(&rest[..nl.min(room)]);
                    &self.partial[..]
                };
                match std::str::from_utf8(line) {
                    Ok(text) => lines.push_line(text.trim_end_matches('\r')),
                    Err(_) => lines.push_line(String::from_utf8_lossy(line).trim_end_matches('\r')),
                }
                self.partial.clear();
                open.offset += open.pending + nl as u64 + 1;
                open.pending = 0;
                rest = &rest[nl + 1..];
            }
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&rest[..rest.len().min(room)]);
            open.pending += rest.len() as u64;
        }
    }
}

/// Where a tailer puts the lines it reads.
pub trait LineSink {
    /// Take a line (without its newline).
    fn push_line(&mut self, line: &str);
    /// Lines taken so far.
    fn count(&self) -> usize;
}

impl LineSink for Vec<String> {
    fn push_line(&mut self, line: &str) {
        self.push(line.to_string());
    }

    fn count(&self) -> usize {
        self.len()
    }
}

/// Lines joined with "\n" in one string, as a filter is fed them: the
/// daemon's reading allocates per batch, not per line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Joined {
    /// The lines, joined.
    pub text: String,
    /// How many.
    pub count: usize,
}

impl LineSink for Joined {
    fn push_line(&mut self, line: &str) {
        if self.count > 0 {
            self.text.push('\n');
        }
        self.text.push_str(line);
        self.count += 1;
    }

    fn count(&self) -> usize {
        self.count
    }
}

/// What a non-regular file is, for a message.
fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Say what to do when the process has run out of file descriptors.
fn explain(e: std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(libc::EMFILE) => std::io::Error::new(
            e.kind(),
            "this daemon has as many files open as its limit allows (EMFILE); raise LimitNOFILE in the \
             systemd unit (or `ulimit -n`), or follow fewer files",
        ),
        Some(libc::ENFILE) => std::io::Error::new(
            e.kind(),
            "the system's table of open files is full (ENFILE); raise fs.file-max or close files elsewhere",
        ),
        _ => e,
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
