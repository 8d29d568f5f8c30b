//! The jail engine's arithmetic, free of I/O and clocks (time is always a
//! parameter, so tests need no sleeps): counting failures per id within
//! `findtime`, deciding bans at `maxretry`, ignore lists, and ban times
//! with the `bantime.increment` family.

mod bantime;
pub mod counter;
mod ignore;

pub use bantime::{BanTime, Increment};
pub use counter::{BanCandidate, FailCounter};
pub use ignore::{IgnoreEntry, IgnoreList, normalize};
