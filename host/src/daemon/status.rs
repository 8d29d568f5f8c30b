//! What `status` and `banned` report about a jail (fail2ban's fields),
//! published by the jail's thread after each turn of its loop.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::bans::BanView;
use crate::bans::Listing;

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
    /// The bans in force. The daemon writes them from the jail's listing
    /// (see [`status_json`]), not from here.
    #[serde(default, skip_serializing)]
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

/// `status JAIL` as JSON: `status` (as last published) with the jail's
/// bans in force, written straight from its listing, or none when
/// `listing` is `None` (`status JAIL short`, `stats`). With a million
/// bans, neither a copy of each nor a JSON tree of them is built; the
/// listing is locked while it is written.
pub fn status_json(status: &JailStatus, listing: Option<&Listing>) -> String {
    #[derive(Serialize)]
    struct WithBans<'a> {
        #[serde(flatten)]
        status: &'a JailStatus,
        banned: Bans<'a>,
    }
    let locked = listing.map(|l| l.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let banned = Bans { listing: locked.as_deref(), asked: &[] };
    serde_json::to_string(&WithBans { status, banned }).unwrap_or_else(|_| "null".into())
}

/// `banned` as JSON, `{"JAIL": [ban, ...], ...}`: every ban in force of
/// each jail, or, given addresses in `asked`, only the bans that hold one
/// of them.
pub fn banned_json(jails: &[(String, Listing)], asked: &[String]) -> String {
    struct Jails<'a> {
        jails: &'a [(String, Listing)],
        asked: &'a [Asked],
    }
    impl Serialize for Jails<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(self.jails.len()))?;
            for (jail, listing) in self.jails {
                let locked = listing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                map.serialize_entry(jail, &Bans { listing: Some(&locked), asked: self.asked })?;
            }
            map.end()
        }
    }
    let asked: Vec<Asked> = asked.iter().map(|text| Asked::new(text)).collect();
    serde_json::to_string(&Jails { jails, asked: &asked }).unwrap_or_else(|_| "null".into())
}

/// The bans of one listing as a JSON array: all of them, or those that
/// hold one of `asked`.
struct Bans<'a> {
    listing: Option<&'a BTreeMap<(i64, String), BanView>>,
    asked: &'a [Asked],
}

impl Serialize for Bans<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bans = self.listing.into_iter().flat_map(|l| l.values());
        match self.asked {
            [] => serializer.collect_seq(bans),
            asked => serializer.collect_seq(bans.filter(|b| asked.iter().any(|a| a.is_held_by(&b.id)))),
        }
    }
}

/// What an admin asked `banned` about, normalised once.
pub struct Asked {
    id: Option<String>,
    address: Option<std::net::IpAddr>,
}

impl Asked {
    /// An address, a prefix or a filter's id, as typed.
    pub fn new(text: &str) -> Asked {
        Asked { id: crate::jail::ids::stored_id(text), address: crate::jail::ids::canonical_ip(text) }
    }

    /// Whether the ban of `ban` holds it: the same id, or a prefix ban the
    /// address is in.
    pub fn is_held_by(&self, ban: &str) -> bool {
        self.id.as_deref() == Some(ban)
            || self.address.is_some_and(|address| {
                ban.contains('/') && crate::jail::Prefix::parse(ban).is_some_and(|p| p.contains(address))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(ids: &[&str]) -> Listing {
        let listing = Listing::default();
        for (n, id) in ids.iter().enumerate() {
            let view = BanView {
                id: id.to_string(),
                time: n as i64,
                bantime: 600,
                bancount: 1,
                origin: Default::default(),
                from: None,
            };
            listing.lock().unwrap().insert((n as i64, id.to_string()), view);
        }
        listing
    }

    #[test]
    fn status_and_banned_are_written_from_the_listings() {
        let sshd = listing(&["192.0.2.1", "2001:db8:0:7::/64"]);
        let web = listing(&["192.0.2.9"]);
        let status = JailStatus { jail: "sshd".into(), currently_banned: 2, ..Default::default() };
        let full: serde_json::Value = serde_json::from_str(&status_json(&status, Some(&sshd))).unwrap();
        assert_eq!(full["jail"], "sshd");
        assert_eq!(full["banned"][1]["ip"], "2001:db8:0:7::/64");
        let short: serde_json::Value = serde_json::from_str(&status_json(&status, None)).unwrap();
        assert_eq!((short["currently_banned"].as_u64(), short["banned"].as_array().map(Vec::len)), (Some(2), Some(0)));
        // And back into a status, as the client reads it.
        let read: JailStatus = serde_json::from_value(full).unwrap();
        assert_eq!(read.banned.len(), 2);

        let jails = [("sshd".to_string(), sshd), ("web".to_string(), web)];
        let all: serde_json::Value = serde_json::from_str(&banned_json(&jails, &[])).unwrap();
        assert_eq!(all["sshd"].as_array().map(Vec::len), Some(2));
        let asked = ["2001:DB8:0:7::99".to_string(), "192.0.2.9".to_string()];
        let some: serde_json::Value = serde_json::from_str(&banned_json(&jails, &asked)).unwrap();
        assert_eq!(some["sshd"][0]["ip"], "2001:db8:0:7::/64");
        assert_eq!(some["sshd"].as_array().map(Vec::len), Some(1));
        assert_eq!(some["web"][0]["ip"], "192.0.2.9");
        assert!(!Asked::new("192.0.2.10").is_held_by("192.0.2.1"));
        assert!(Asked::new("192.0.2.10").is_held_by("192.0.2.0/24"));
    }
}
