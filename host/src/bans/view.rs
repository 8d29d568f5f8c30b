//! How `status`, `banned` and the bouncers' API see a jail's bans.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::store::{BanRecord, Origin};

/// One ban as `status`/`banned` show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct BanView {
    /// The banned id (an address, or a filter's declared id); `ip` in
    /// JSON, as fail2ban's tag calls it.
    #[serde(rename = "ip")]
    pub id: String,
    /// Unix seconds when it started.
    pub time: i64,
    /// Its length in seconds; -1 forever.
    pub bantime: i64,
    /// How many times it was banned in this jail, this ban included.
    pub bancount: u32,
    /// Who decided it: `filter`, `manual` or `fleet`.
    #[serde(default)]
    pub origin: Origin,
    /// For the fleet's bans, the hosts that reported it (`web2/sshd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl BanView {
    /// How `status` shows `r`.
    pub fn of(r: &BanRecord) -> BanView {
        let from = (r.origin == Origin::Fleet)
            .then(|| r.fields.iter().find(|(k, _)| k == "fleet").map(|(_, v)| v.clone()))
            .flatten();
        BanView { id: r.id.clone(), time: r.time, bantime: r.bantime, bancount: r.bancount, origin: r.origin, from }
    }
}

/// The bans in force of one jail, oldest first, kept up to date by its
/// manager at each change and read by `status` when asked: the list is
/// never rebuilt on the jail's loop.
pub type Listing = Arc<Mutex<BTreeMap<(i64, String), BanView>>>;
