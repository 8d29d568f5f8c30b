//! Running a filter over many batches on two cores: a second instance of
//! the same filter (the preparer) goes through every batch first, on its
//! own thread, and works out what it can ahead (WIT `prepare`); the first
//! (the feeder) then finishes each batch with that help, in order. The
//! answers are the feeder's alone would be.
//!
//! The preparer must follow every line (dates), but how much more it does
//! is the host's choice: the first `ahead` lines of each batch, where
//! `ahead` moves after every batch toward the point where neither waits:
//! down when the feeder had to wait for the preparer, up when the preparer
//! is more than a batch ahead.

use std::sync::{Condvar, Mutex, PoisonError};

use crate::plugin::PluginError;
use crate::plugin::instance::FilterInstance;
use crate::wit::types::Scan;

/// How far the preparer may run ahead of the feeder, in batches (the
/// prepared answers wait in memory).
const MAX_AHEAD: usize = 32;

/// The lines of each batch the preparer does all it can for, moved after
/// each full batch toward the point where neither instance waits.
#[derive(Debug, Clone, Copy)]
pub struct Ahead {
    lines: u32,
    most: u32,
}

impl Ahead {
    /// All of each batch of `batch_lines`, to begin with.
    pub fn new(batch_lines: u32) -> Ahead {
        Ahead { lines: batch_lines, most: batch_lines }
    }

    /// Lines of the next batch to prepare whole.
    pub fn lines(&self) -> u32 {
        self.lines
    }

    /// After a full batch: less when the feeder waited for the preparer,
    /// more when the preparer was a batch ahead.
    pub fn after_batch(&mut self, feeder_waited: bool, preparer_well_ahead: bool) {
        let step = (self.most / 32).max(1);
        if feeder_waited {
            self.lines = self.lines.saturating_sub(step);
        } else if preparer_well_ahead {
            self.lines = self.lines.saturating_add(step).min(self.most);
        }
    }
}

struct Progress {
    /// What the preparer found for each batch, until the feeder takes it.
    prepared: Vec<Option<Result<Vec<u32>, PluginError>>>,
    /// Batches the feeder has taken.
    taken: usize,
    /// Lines of each batch the preparer does all it can for.
    ahead: Ahead,
    /// The feeder has stopped (at the end, or on an error of its own): the
    /// preparer stops too.
    stopped: bool,
}

impl Progress {
    fn slot(&mut self, k: usize) -> &mut Option<Result<Vec<u32>, PluginError>> {
        if self.prepared.len() <= k {
            self.prepared.resize_with(k + 1, || None);
        }
        &mut self.prepared[k]
    }
}

/// Feed batches `0, 1, ...` of up to `batch_lines` lines to `feeder` in
/// order, with `preparer` (an instance of the same filter with the same
/// options, that exports `prepare`) working ahead on another thread, and
/// hand each batch with its answer to `each` in order. `batch(k)` gives
/// batch `k` (it may wait for it to be read), None past the last one; it is
/// called for each `k` by both threads. A preparer that fails leaves the
/// rest to the feeder alone (with a warning: dates of later lines then come
/// from the feeder's own detector, which missed the earlier ones). An error
/// from `each` ends the run.
pub fn feed_split<B: std::ops::Deref<Target: AsRef<str>>, E>(
    feeder: &mut FilterInstance,
    preparer: &mut FilterInstance,
    batch_lines: u32,
    batch: &(dyn Fn(usize) -> Option<B> + Sync),
    now: f64,
    notes: bool,
    mut each: impl FnMut(usize, &B, Result<Scan, PluginError>) -> Result<(), E>,
) -> Result<(), E> {
    let progress =
        Mutex::new(Progress { prepared: Vec::new(), taken: 0, ahead: Ahead::new(batch_lines), stopped: false });
    let changed = Condvar::new();
    let lock = || progress.lock().unwrap_or_else(PoisonError::into_inner);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for k in 0.. {
                let ahead = {
                    let mut p = lock();
                    while k >= p.taken + MAX_AHEAD && !p.stopped {
                        p = changed.wait(p).unwrap_or_else(PoisonError::into_inner);
                    }
                    if p.stopped {
                        return;
                    }
                    p.ahead.lines()
                };
                // Past the last batch the feeder stops by itself.
                let Some(text) = batch(k) else { return };
                let result = preparer.prepare((*text).as_ref(), now, ahead);
                let failed = result.is_err();
                *lock().slot(k) = Some(result);
                changed.notify_all();
                if failed {
                    return;
                }
            }
        });
        // Once the preparer has failed, the feeder goes on alone.
        let mut alone = false;
        let outcome = (|| {
            for k in 0.. {
                let Some(text) = batch(k) else { break };
                let prepared = if alone {
                    None
                } else {
                    let mut p = lock();
                    let mut waited = false;
                    let prepared = loop {
                        if let Some(r) = p.slot(k).take() {
                            break r;
                        }
                        waited = true;
                        p = changed.wait(p).unwrap_or_else(PoisonError::into_inner);
                    };
                    p.taken = k + 1;
                    // Balance: the preparer does less when the feeder
                    // waits for it, more when it is well ahead.
                    let well_ahead = p.prepared.get(k + 2).is_some_and(Option::is_some);
                    p.ahead.after_batch(waited, well_ahead);
                    drop(p);
                    changed.notify_all();
                    match prepared {
                        Ok(prepared) => Some(prepared),
                        Err(e) => {
                            tracing::warn!(
                                "the filter's second instance failed ({e}); going on with one: dates from here on may differ from a run with one"
                            );
                            alone = true;
                            None
                        }
                    }
                };
                let scan = match prepared {
                    Some(prepared) => feeder.feed_prepared((*text).as_ref(), now, notes, &prepared),
                    None => feeder.feed((*text).as_ref(), now, notes),
                };
                each(k, &text, scan)?;
            }
            Ok(())
        })();
        lock().stopped = true;
        changed.notify_all();
        outcome
    })
}
