//! The daemon's idea of "now", injectable so that ban expiry and failure
//! windows are tested with a clock the test moves, never with sleeps.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix time in seconds.
pub trait Clock: Send + Sync {
    /// Now, in unix seconds.
    fn now(&self) -> f64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(Mutex<f64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: f64) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Move it forward by `seconds`.
    pub fn advance(&self, seconds: f64) {
        if let Ok(mut t) = self.0.lock() {
            *t += seconds;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.0.lock().map(|t| *t).unwrap_or(0.0)
    }
}
