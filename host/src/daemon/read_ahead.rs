//! A burst's filtering on two cores. When a reader's filter exports
//! `prepare` (the regex filter does) and the machine has a second core,
//! the first full batch of a burst starts a second instance of the filter
//! on a thread of its own, the preparer. The reader hands it each batch as
//! it reads it, a few batches ahead; it finds the lines' dates and runs the
//! regex searches while the jail feeds the batch before with what was
//! prepared for it and judges what it found (WIT `prepare` and
//! `feed-prepared`, the split `wasmban regex` makes). The failures found
//! are those one instance alone would find.
//!
//! How much of each batch the preparer does is moved after every full
//! batch toward the point where neither side waits: less when the jail
//! waited for it, more when it was a batch ahead.
//!
//! An instance fed with prepared answers no longer follows the lines by
//! itself (dates), so a preparer, once started, stays for as long as its
//! reader does; between bursts its thread sleeps on its queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::plugin::split::Ahead;
use crate::plugin::{FilterInstance, PluginError};
use crate::tail::Progress;

/// Batches handed to the preparer and not yet fed, at most: the one the
/// jail feeds next, the one being prepared, and one to tell whether the
/// preparer keeps ahead.
pub const IN_FLIGHT: usize = 3;

/// A batch read and handed to the preparer.
pub struct Pending {
    /// Its lines, joined as the filter is fed them.
    pub text: Arc<String>,
    /// How many lines.
    pub lines: usize,
    /// The host's time when it was read, for both instances.
    pub now: f64,
    /// Where reading stands after it.
    pub progress: Progress,
}

/// What the preparer found for a batch.
pub enum Prepared {
    /// Its answer, for `feed-prepared`.
    Ready(Vec<u32>),
    /// It failed on the batch (a trap; its instance is rebuilt before the
    /// next batch).
    Failed(PluginError),
    /// Its thread is gone: no more answers.
    Gone,
}

struct Job {
    text: Arc<String>,
    now: f64,
    ahead: u32,
}

/// The second instance of a reader's filter, on its own thread.
pub struct Preparer {
    jobs: Option<Sender<Job>>,
    answers: Receiver<Result<Vec<u32>, PluginError>>,
    pending: VecDeque<Pending>,
    /// Answers that came before the jail asked for them, in order.
    ready: VecDeque<Result<Vec<u32>, PluginError>>,
    ahead: Ahead,
    batch_lines: usize,
    alive: bool,
    thread: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Start `instance` on a thread named after `jail`. It first goes
    /// through `primer`, the batch the jail's own instance was fed last, so
    /// that its date detection starts where that one's stood.
    pub fn start(
        jail: &str,
        mut instance: FilterInstance,
        batch_lines: usize,
        primer: Option<(&str, f64)>,
    ) -> std::io::Result<Preparer> {
        if let Some((text, now)) = primer
            && let Err(e) = instance.prepare(text, now, 0)
        {
            tracing::debug!("[{jail}] the filter's second instance on its first batch: {e}");
        }
        let (jobs, queue) = channel::<Job>();
        let (answer, answers) = channel();
        let thread = std::thread::Builder::new().name(format!("prepare-{jail}")).spawn(move || {
            while let Ok(job) = queue.recv() {
                if answer.send(instance.prepare(&job.text, job.now, job.ahead)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Preparer {
            jobs: Some(jobs),
            answers,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            ahead: Ahead::new(u32::try_from(batch_lines).unwrap_or(u32::MAX)),
            batch_lines,
            alive: true,
            thread: Some(thread),
        })
    }

    /// Batches handed and not yet taken.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether its thread still answers.
    pub fn alive(&self) -> bool {
        self.alive
    }

    /// Hand it `batch`, which [`Preparer::take`] gives back, in order.
    pub fn hand(&mut self, batch: Pending) {
        if self.alive {
            let job = Job { text: batch.text.clone(), now: batch.now, ahead: self.ahead.lines() };
            self.alive = self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok());
        }
        self.pending.push_back(batch);
    }

    /// The oldest batch handed, with what was found for it (waiting for
    /// that); None when none is pending.
    pub fn take(&mut self) -> Option<(Pending, Prepared)> {
        let batch = self.pending.pop_front()?;
        if !self.alive {
            return Some((batch, Prepared::Gone));
        }
        self.collect();
        let waited = self.ready.is_empty();
        let answer = match self.ready.pop_front() {
            Some(answer) => Some(answer),
            None => self.answers.recv().ok(),
        };
        if batch.lines >= self.batch_lines {
            self.collect();
            self.ahead.after_batch(waited, !self.ready.is_empty());
        }
        let prepared = match answer {
            Some(Ok(answer)) => Prepared::Ready(answer),
            Some(Err(e)) => Prepared::Failed(e),
            None => {
                self.alive = false;
                Prepared::Gone
            }
        };
        Some((batch, prepared))
    }

    fn collect(&mut self) {
        while let Ok(answer) = self.answers.try_recv() {
            self.ready.push_back(answer);
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        // Its queue closed, the thread ends after the batch in hand.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
