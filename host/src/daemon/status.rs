//! What `status` and `banned` report about a jail (fail2ban's fields),
//! published by the jail's thread after each turn of its loop.

use serde::Serialize;

pub use crate::bans::BanView;

/// What `status JAIL` reports (fail2ban's fields).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct JailStatus {
    /// The jail.
    pub jail: String,
    /// Ids with failures being counted.
    pub currently_failed: usize,
    /// Failures counted since the jail started.
    pub total_failed: u64,
    /// Files followed.
    pub files: Vec<String>,
    /// Files waiting to appear.
    pub waiting: Vec<String>,
    /// How lines are noticed (`inotify`, `polling`, `systemd`).
    #[serde(default)]
    pub backend: String,
    /// The journal's matches, when the jail reads the journal.
    #[serde(default)]
    pub journal_matches: Option<String>,
    /// Bans in force.
    pub currently_banned: usize,
    /// Bans made since the jail started.
    pub total_banned: u64,
    /// The bans in force.
    pub banned: Vec<BanView>,
    /// Lines read since the jail started.
    pub lines: u64,
    /// Lines the filter failed on (a trap), lost to it.
    #[serde(default)]
    pub lines_skipped: u64,
    /// Each followed file with the bytes not read yet.
    #[serde(default)]
    pub behind: std::collections::BTreeMap<String, u64>,
    /// Bans whose time is up but that an action has not lifted yet (tried
    /// again with backoff).
    #[serde(default)]
    pub unbans_pending: usize,
    /// Whether the jail is up (false while it starts, or when it failed).
    pub running: bool,
    /// Why the jail is not working, when it is not.
    pub problem: Option<String>,
    /// Actions the jail runs without, for want of a grant: each says the
    /// line to add.
    #[serde(default)]
    pub actions_off: Vec<String>,
}
