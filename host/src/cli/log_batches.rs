//! A log file read on a thread of its own, in chunks, and cut into the
//! batches `wasmban regex` feeds to a filter: the filter starts on the
//! first lines while the rest is still being read, and only a bounded part
//! of the file is in memory at a time.
//!
//! Lines are what fail2ban-regex reads: empty lines and `#` comments are
//! left out, a trailing `\r` is stripped, invalid UTF-8 is replaced (chunks
//! end at a newline, so no character and no invalid sequence spans two).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use anyhow::Context;

/// Bytes read per chunk.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Batches read and not yet released that the reader may hold before it
/// waits for the consumer.
const MAX_UNRELEASED: usize = 64;

/// A line of the log: its 1-based number and where it lies in its chunk.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub number: usize,
    start: usize,
    end: usize,
}

/// Lines fed to the filter in one call.
#[derive(Debug)]
pub struct ReadBatch {
    chunk: Arc<str>,
    pub lines: Vec<Line>,
    /// The lines joined by newlines, when they do not follow one another
    /// in the chunk (something was left out or stripped in between).
    joined: Option<String>,
}

impl ReadBatch {
    fn new(chunk: Arc<str>, lines: Vec<Line>) -> ReadBatch {
        let contiguous = lines.windows(2).all(|w| w[1].start == w[0].end + 1);
        let joined = (!contiguous).then(|| {
            let mut joined = String::new();
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    joined.push('\n');
                }
                joined.push_str(&chunk[line.start..line.end]);
            }
            joined
        });
        ReadBatch { chunk, lines, joined }
    }

    /// The text of one of this batch's lines.
    pub fn text_of(&self, line: &Line) -> &str {
        &self.chunk[line.start..line.end]
    }
}

impl AsRef<str> for ReadBatch {
    fn as_ref(&self) -> &str {
        match (&self.joined, self.lines.first(), self.lines.last()) {
            (Some(joined), _, _) => joined,
            (None, Some(first), Some(last)) => &self.chunk[first.start..last.end],
            _ => "",
        }
    }
}

struct Shelf {
    /// ReadBatch `k` at `k`; None once released.
    batches: Vec<Option<Arc<ReadBatch>>>,
    released: usize,
    /// The reader has finished (at the end of the file, on an error, or
    /// because the consumer went away).
    done: bool,
    /// Why reading stopped before the end of the file.
    error: Option<anyhow::Error>,
}

/// The batches of one log, as the reader thread makes them.
pub struct LogBatches {
    shelf: Mutex<Shelf>,
    changed: Condvar,
    batch_lines: usize,
}

impl LogBatches {
    pub fn new(batch_lines: usize) -> LogBatches {
        LogBatches {
            shelf: Mutex::new(Shelf { batches: Vec::new(), released: 0, done: false, error: None }),
            changed: Condvar::new(),
            batch_lines: batch_lines.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open `path` (so that a missing file is an error before anything
    /// runs); `read` then reads it.
    pub fn open(path: &Path) -> anyhow::Result<File> {
        File::open(path).with_context(|| format!("cannot read log {}", path.display()))
    }

    /// Read `file` to its end in chunks of `chunk_bytes`, making batches.
    /// Run on a thread of its own; `finish` must follow on every path.
    pub fn read(&self, mut file: File, path: &Path, chunk_bytes: usize) {
        let result = self.read_all(&mut file, chunk_bytes.max(1));
        let mut shelf = self.lock();
        shelf.done = true;
        if let Err(e) = result {
            shelf.error = Some(e.context(format!("cannot read log {}", path.display())));
        }
        drop(shelf);
        self.changed.notify_all();
    }

    fn read_all(&self, file: &mut File, chunk_bytes: usize) -> anyhow::Result<()> {
        // The start of a line the last chunk cut, carried to the next.
        let mut carry: Vec<u8> = Vec::new();
        let mut number = 0;
        loop {
            let mut bytes = Vec::with_capacity(carry.len() + chunk_bytes);
            bytes.append(&mut carry);
            let wanted = chunk_bytes as u64;
            let got = file.by_ref().take(wanted).read_to_end(&mut bytes)?;
            let at_end = (got as u64) < wanted;
            if !at_end {
                // The chunk ends after its last newline; a chunk without one
                // is a part of one long line: read on.
                match memchr::memrchr(b'\n', &bytes) {
                    Some(last) => carry = bytes.split_off(last + 1),
                    None => {
                        carry = bytes;
                        continue;
                    }
                }
            }
            let text: Arc<str> = match String::from_utf8(bytes) {
                Ok(text) => text.into(),
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into(),
            };
            if !self.shelve(text, &mut number, at_end) {
                return Ok(());
            }
            if at_end {
                return Ok(());
            }
        }
    }

    /// Cut a chunk into batches and put them on the shelf, waiting while
    /// the consumer is far behind. False: the consumer has gone away.
    fn shelve(&self, chunk: Arc<str>, number: &mut usize, at_end: bool) -> bool {
        let mut lines = Vec::with_capacity(self.batch_lines);
        let mut start = 0;
        let bytes = chunk.as_bytes();
        // Every line of a chunk ends with a newline, but the last line of
        // the file may not.
        let unterminated = at_end && bytes.last().is_some_and(|b| *b != b'\n');
        let ends = memchr::memchr_iter(b'\n', bytes).chain(unterminated.then_some(bytes.len()));
        let mut pending: Vec<ReadBatch> = Vec::new();
        for end in ends {
            *number += 1;
            let line = chunk[start..end].trim_end_matches(['\r', '\n']);
            if !line.is_empty() && !line.starts_with('#') {
                lines.push(Line { number: *number, start, end: start + line.len() });
            }
            start = end + 1;
            if lines.len() == self.batch_lines {
                pending.push(ReadBatch::new(
                    chunk.clone(),
                    std::mem::replace(&mut lines, Vec::with_capacity(self.batch_lines)),
                ));
            }
        }
        if !lines.is_empty() {
            pending.push(ReadBatch::new(chunk.clone(), lines));
        }
        for batch in pending {
            let mut shelf = self.lock();
            while shelf.batches.len() >= shelf.released + MAX_UNRELEASED && !shelf.done {
                shelf = self.changed.wait(shelf).unwrap_or_else(PoisonError::into_inner);
            }
            if shelf.done {
                return false;
            }
            shelf.batches.push(Some(Arc::new(batch)));
            drop(shelf);
            self.changed.notify_all();
        }
        true
    }

    /// ReadBatch `k`, once read; None past the last batch (or once released).
    pub fn get(&self, k: usize) -> Option<Arc<ReadBatch>> {
        let mut shelf = self.lock();
        while k >= shelf.batches.len() && !shelf.done {
            shelf = self.changed.wait(shelf).unwrap_or_else(PoisonError::into_inner);
        }
        shelf.batches.get(k).cloned().flatten()
    }

    /// The consumer is done with batches up to `k`: their memory can go,
    /// and the reader may read on.
    pub fn release(&self, k: usize) {
        let mut shelf = self.lock();
        let upto = (k + 1).min(shelf.batches.len());
        let from = shelf.released.min(upto);
        for slot in &mut shelf.batches[from..upto] {
            *slot = None;
        }
        shelf.released = shelf.released.max(upto);
        drop(shelf);
        self.changed.notify_all();
    }

    /// Stop the reader (the consumer is done, early or not) and say why
    /// reading ended early, if it did.
    pub fn finish(&self) -> Option<anyhow::Error> {
        let mut shelf = self.lock();
        shelf.done = true;
        let error = shelf.error.take();
        drop(shelf);
        self.changed.notify_all();
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batches of `content` read in chunks of `chunk_bytes`: (number,
    /// text) of every line, and each batch's text.
    fn lines_of(content: &[u8], chunk_bytes: usize, batch_lines: usize) -> (Vec<(usize, String)>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, content).unwrap();
        let batches = LogBatches::new(batch_lines);
        let file = LogBatches::open(&path).unwrap();
        let (mut lines, mut texts) = (Vec::new(), Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| batches.read(file, &path, chunk_bytes));
            let mut k = 0;
            while let Some(b) = batches.get(k) {
                lines.extend(b.lines.iter().map(|l| (l.number, b.text_of(l).to_string())));
                texts.push(AsRef::<str>::as_ref(&*b).to_string());
                batches.release(k);
                k += 1;
            }
            assert!(batches.finish().is_none());
        });
        (lines, texts)
    }

    #[test]
    fn chunks_and_batches_cut_nothing() {
        let mut content = Vec::new();
        content.extend_from_slice(b"first line\r\n\n# a comment\nsecond \xff\xfe line\n");
        content.extend_from_slice(&[b'x'; 50]);
        content.extend_from_slice(b"\nlast, without a newline");
        let whole = lines_of(&content, 1 << 20, 1000);
        let expected: Vec<(usize, String)> = vec![
            (1, "first line".into()),
            (4, "second \u{fffd}\u{fffd} line".into()),
            (5, "x".repeat(50)),
            (6, "last, without a newline".into()),
        ];
        assert_eq!(whole.0, expected);
        assert_eq!(
            whole.1,
            ["first line\nsecond \u{fffd}\u{fffd} line\n".to_string() + &"x".repeat(50) + "\nlast, without a newline"]
        );
        // Chunks smaller than a line, and of every size around the lines'
        // ends; batches of one and two lines.
        for chunk in 1..70 {
            for batch_lines in [1, 2, 1000] {
                let (lines, texts) = lines_of(&content, chunk, batch_lines);
                assert_eq!(lines, expected, "chunks of {chunk}, batches of {batch_lines}");
                let joined: Vec<String> = texts.iter().flat_map(|t| t.split('\n').map(str::to_string)).collect();
                let want: Vec<String> = expected.iter().map(|(_, t)| t.clone()).collect();
                assert_eq!(joined, want, "chunks of {chunk}, batches of {batch_lines}");
                assert!(texts.iter().all(|t| t.split('\n').count() <= batch_lines));
            }
        }
    }

    #[test]
    fn an_empty_log_has_no_batches_and_a_final_newline_no_extra_line() {
        assert_eq!(lines_of(b"", 16, 10).0, []);
        assert_eq!(lines_of(b"a\n", 16, 10).0, [(1, "a".to_string())]);
        assert_eq!(lines_of(b"a\n\n", 1, 10).0, [(1, "a".to_string())]);
    }

    #[test]
    fn the_reader_waits_for_the_consumer_and_stops_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "line\n".repeat(10_000)).unwrap();
        let batches = LogBatches::new(1);
        let file = LogBatches::open(&path).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| batches.read(file, &path, 64));
            assert!(batches.get(0).is_some());
            // Without releases the reader holds a bounded number of batches.
            while batches.lock().batches.len() < MAX_UNRELEASED {
                std::thread::yield_now();
            }
            assert_eq!(batches.lock().batches.len(), MAX_UNRELEASED);
            // The consumer stops early: the reader ends too (the scope
            // would not end otherwise).
            assert!(batches.finish().is_none());
        });
    }
}
