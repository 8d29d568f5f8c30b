//! A jail's arithmetic, free of I/O and clocks (time is always a
//! parameter, so tests need no sleeps): which ids a failure names
//! (`ids`, the one part that may ask the resolver, per `usedns`), counting
//! failures per id within `findtime` and deciding candidates at
//! `maxretry` (`tracker`), ignore lists, and ban times with the
//! `bantime.increment` family.

mod bantime;
pub mod counter;
pub mod ids;
mod ignore;
pub mod prefix;
pub mod tracker;

pub use bantime::{BanTime, Increment};
pub use counter::{BanCandidate, FailCounter};
pub use ignore::{IgnoreEntry, IgnoreList, normalize};
pub use prefix::{BanPrefixes, Prefix};
pub use tracker::{FailureTracker, Seen, TrackerSettings, Verdict};
