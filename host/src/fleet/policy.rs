//! What this host makes of the fleet's ban facts: local policy always
//! decides. A record is taken only from a trusted origin whose signature
//! verifies; never for a fleet member's or an allow-listed address; never
//! for a prefix wider than the floor; its ban time is capped; an origin
//! that sends more than its rate is quarantined; and optionally a ban
//! applies only once enough distinct origins report the address. The
//! fleet view is the union of origins, the latest end winning. Pure: the
//! caller gives records and the time, and applies the changes returned.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::fleet::record::{Record, RecordError};
use crate::jail::Prefix;

/// The local policy (`[fleet]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `allow` and `members`: never banned from the fleet.
    pub allow: Vec<Prefix>,
    /// `maxbantime`: a remote ban lasts at most this long from its start
    /// (seconds); forever bans too.
    pub max_bantime: i64,
    /// `minprefix4`: the widest IPv4 prefix taken.
    pub floor4: u8,
    /// `minprefix6`: the widest IPv6 prefix taken.
    pub floor6: u8,
    /// `rate`: new bans one origin may send per `rate_window`.
    pub rate: usize,
    /// The window of `rate`, in seconds.
    pub rate_window: i64,
    /// `quorum`: distinct origins that must report an address.
    pub quorum: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow: Vec::new(),
            max_bantime: 7 * 86400,
            floor4: 24,
            floor6: 48,
            rate: 50_000,
            rate_window: 60,
            quorum: 1,
        }
    }
}

/// What this host should do about one address or prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Ban it until `end` (unix seconds; never `None`: remote bans are
    /// capped), for these origins.
    Ban {
        /// What to ban.
        network: Prefix,
        /// Until when.
        end: i64,
        /// The origins that reported it, with their jail.
        origins: Vec<(String, String)>,
    },
    /// Lift the fleet's ban of it.
    Lift {
        /// What to lift.
        network: Prefix,
    },
}

/// Why a record was not taken, as `fleet status` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejection {
    /// Malformed, or under another origin's key.
    Malformed,
    /// From an origin without a pinned key.
    Untrusted,
    /// Its signature does not verify.
    BadSignature,
    /// A fleet member's or an allow-listed address.
    Allowed,
    /// A prefix wider than the floor.
    TooWide,
    /// This host's own address, or loopback.
    Protected,
    /// Its origin is quarantined or revoked.
    Shut,
}

/// What one origin sent, for `fleet status`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OriginStats {
    /// Records received.
    pub received: u64,
    /// Records taken.
    pub accepted: u64,
    /// Records not taken, by why.
    pub rejected: BTreeMap<Rejection, u64>,
    /// Why it is quarantined, if it is.
    pub quarantined: Option<String>,
    /// Whether the admin revoked it.
    pub revoked: bool,
}

/// The fleet as this host sees it.
pub struct FleetView {
    me: String,
    policy: Policy,
    trust: BTreeMap<String, nkeys::KeyPair>,
    /// Records taken, by bucket key.
    records: HashMap<String, Record>,
    /// The keys of the records of each network.
    holders: HashMap<String, BTreeSet<String>>,
    /// When each origin's recent new bans started, for the rate limit.
    recent: HashMap<String, VecDeque<i64>>,
    /// What this host applies from the fleet: network -> end.
    applied: BTreeMap<String, (Prefix, i64)>,
    stats: BTreeMap<String, OriginStats>,
    /// Addresses never banned from the fleet whatever the lists say (this
    /// host's own, loopback).
    protect: Option<Protected>,
}

/// What says an address must never be banned from the fleet.
pub type Protected = Box<dyn Fn(&Prefix) -> bool + Send + Sync>;

impl FleetView {
    /// This host (`me`) under `policy`, trusting the origins of `trust`
    /// (name -> public nkey).
    pub fn new(me: &str, policy: Policy, trust: BTreeMap<String, nkeys::KeyPair>) -> FleetView {
        FleetView {
            me: me.to_string(),
            policy,
            trust,
            records: HashMap::new(),
            holders: HashMap::new(),
            recent: HashMap::new(),
            applied: BTreeMap::new(),
            stats: BTreeMap::new(),
            protect: None,
        }
    }

    /// Never take a ban of what `protected` holds.
    pub fn protecting(mut self, protected: Protected) -> FleetView {
        self.protect = Some(protected);
        self
    }

    /// Each origin's counts.
    pub fn stats(&self) -> &BTreeMap<String, OriginStats> {
        &self.stats
    }

    /// What this host applies from the fleet now: network -> end.
    pub fn applied(&self) -> impl Iterator<Item = (&Prefix, i64)> {
        self.applied.values().map(|(p, e)| (p, *e))
    }

    fn shut(&self, origin: &str) -> bool {
        self.stats.get(origin).is_some_and(|s| s.revoked || s.quarantined.is_some())
    }

    fn reject(&mut self, origin: &str, why: Rejection) -> Vec<Change> {
        *self.stats.entry(origin.to_string()).or_default().rejected.entry(why).or_default() += 1;
        Vec::new()
    }

    /// A record found under `key` in the bucket (at start, on reconnect,
    /// or as it changes): the changes it brings.
    pub fn receive(&mut self, key: &str, bytes: &[u8], now: i64) -> Vec<Change> {
        let origin = key.split('.').next().unwrap_or("").to_string();
        if origin == self.me {
            // This host's own records: applied here when they were made.
            return Vec::new();
        }
        self.stats.entry(origin.clone()).or_default().received += 1;
        let record = match Record::parse(key, bytes) {
            Ok(r) => r,
            Err(_) => return self.reject(&origin, Rejection::Malformed),
        };
        match self.trust.get(&origin).map(|k| record.verify(k)) {
            None => return self.reject(&origin, Rejection::Untrusted),
            Some(Err(RecordError::BadSignature(_))) | Some(Err(_)) => {
                return self.reject(&origin, Rejection::BadSignature);
            }
            Some(Ok(())) => {}
        }
        if self.shut(&origin) {
            return self.reject(&origin, Rejection::Shut);
        }
        let Ok(network) = record.network() else { return self.reject(&origin, Rejection::Malformed) };
        let floor = if network.network().is_ipv4() { self.policy.floor4 } else { self.policy.floor6 };
        if network.length() < floor {
            return self.reject(&origin, Rejection::TooWide);
        }
        if self.policy.allow.iter().any(|a| a.overlaps(&network)) {
            return self.reject(&origin, Rejection::Allowed);
        }
        if self.protect.as_ref().is_some_and(|p| p(&network)) {
            return self.reject(&origin, Rejection::Protected);
        }
        let new_ban = record.in_force(now)
            && self.records.get(key).is_none_or(|old| old.start != record.start || !old.in_force(now));
        let start = record.start;
        let lift = !record.in_force(now);
        self.stats.entry(origin.clone()).or_default().accepted += 1;
        self.records.insert(key.to_string(), record);
        self.holders.entry(network.to_string()).or_default().insert(key.to_string());
        if new_ban && self.over_rate(&origin, start, now) {
            return self.quarantine(&origin, now);
        }
        let mut changes = self.settle(&[network], now);
        // A lift of a ban this view never applied: a ban restored from
        // the store at start, lifted by its origin while this host was
        // down. The jails lift it if they hold it.
        if lift && changes.is_empty() && !self.applied.contains_key(&network.to_string()) {
            changes.push(Change::Lift { network });
        }
        changes
    }

    /// Count a new ban of `origin` that started at `start`; whether it
    /// goes over the rate. Bans that started before the window (read when
    /// catching up after a restart or a partition) do not count.
    fn over_rate(&mut self, origin: &str, start: i64, now: i64) -> bool {
        let window = self.policy.rate_window;
        if start <= now - window {
            return false;
        }
        let recent = self.recent.entry(origin.to_string()).or_default();
        recent.push_back(now);
        while recent.front().is_some_and(|&t| t <= now - window) {
            recent.pop_front();
        }
        recent.len() > self.policy.rate
    }

    fn quarantine(&mut self, origin: &str, now: i64) -> Vec<Change> {
        let why = format!(
            "sent more than {} new bans in {} s; `wasmban fleet release {origin}` lets it in again",
            self.policy.rate, self.policy.rate_window
        );
        tracing::error!("[fleet] origin {origin} quarantined: {why}; its bans here are lifted");
        self.stats.entry(origin.to_string()).or_default().quarantined = Some(why);
        self.recent.remove(origin);
        self.resettle_origin(origin, now)
    }

    /// Revoke `origin`: everything it contributed is lifted, and nothing
    /// more is taken from it.
    pub fn revoke(&mut self, origin: &str, now: i64) -> Vec<Change> {
        self.stats.entry(origin.to_string()).or_default().revoked = true;
        self.resettle_origin(origin, now)
    }

    /// Let a quarantined or revoked `origin` in again: its records in the
    /// bucket count from the next time they are read (a reconnect).
    pub fn release(&mut self, origin: &str) {
        if let Some(s) = self.stats.get_mut(origin) {
            s.revoked = false;
            s.quarantined = None;
        }
    }

    /// Forget records whose ban ended before `before` and that nothing
    /// applies: the bucket keeps every key an origin ever wrote, and a
    /// long-running host must not keep them all in memory. Returns how
    /// many were forgotten. A forgotten record read again (a reconnect)
    /// is taken again, to the same effect.
    pub fn forget_ended(&mut self, before: i64) -> usize {
        let max = self.policy.max_bantime;
        let ended: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| {
                let cap = r.start.saturating_add(max);
                r.end.map_or(cap, |e| e.min(cap)) < before
            })
            .filter(|(_, r)| r.network().is_ok_and(|n| !self.applied.contains_key(&n.to_string())))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &ended {
            if let Some(network) = self.records.remove(key).and_then(|r| r.network().ok()) {
                let text = network.to_string();
                if let Some(held) = self.holders.get_mut(&text) {
                    held.remove(key);
                    if held.is_empty() {
                        self.holders.remove(&text);
                    }
                }
            }
        }
        self.recent.retain(|_, times| times.back().is_some_and(|t| *t >= before));
        ended.len()
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn resettle_origin(&mut self, origin: &str, now: i64) -> Vec<Change> {
        let prefix = format!("{origin}.");
        let keys: Vec<String> = self.records.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
        let mut networks = Vec::new();
        for key in keys {
            if let Some(network) = self.records.remove(&key).and_then(|r| r.network().ok()) {
                let text = network.to_string();
                if let Some(held) = self.holders.get_mut(&text) {
                    held.remove(&key);
                    if held.is_empty() {
                        self.holders.remove(&text);
                    }
                }
                networks.push(network);
            }
        }
        self.settle(&networks, now)
    }

    /// Work out again what applies to each of `networks`.
    fn settle(&mut self, networks: &[Prefix], now: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        for network in networks {
            let text = network.to_string();
            let holding: Vec<&Record> = self
                .holders
                .get(&text)
                .into_iter()
                .flatten()
                .filter_map(|k| self.records.get(k))
                .filter(|r| !self.shut(&r.origin))
                .collect();
            let capped = |r: &Record| {
                let cap = r.start.saturating_add(self.policy.max_bantime);
                r.end.map_or(cap, |e| e.min(cap))
            };
            let live: Vec<&&Record> = holding.iter().filter(|r| capped(r) > now).collect();
            let origins: BTreeSet<&str> = live.iter().map(|r| r.origin.as_str()).collect();
            let wanted =
                (origins.len() >= self.policy.quorum.max(1)).then(|| live.iter().map(|r| capped(r)).max()).flatten();
            match (wanted, self.applied.get(&text)) {
                (Some(end), Some((_, applied))) if *applied == end => {}
                (Some(end), _) => {
                    self.applied.insert(text, (*network, end));
                    let origins = live.iter().map(|r| (r.origin.clone(), r.jail.clone())).collect();
                    changes.push(Change::Ban { network: *network, end, origins });
                }
                (None, Some(_)) => {
                    self.applied.remove(&text);
                    changes.push(Change::Lift { network: *network });
                }
                (None, None) => {}
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host {
        name: &'static str,
        key: nkeys::KeyPair,
    }

    impl Host {
        fn new(name: &'static str) -> Host {
            Host { name, key: nkeys::KeyPair::new_user() }
        }

        fn public(&self) -> nkeys::KeyPair {
            nkeys::KeyPair::from_public_key(&self.key.public_key()).unwrap()
        }

        /// A signed record of this host banning `address/prefix` from
        /// `start` to `end`: its key and bytes.
        fn ban(&self, address: &str, prefix: u8, start: i64, end: Option<i64>) -> (String, Vec<u8>) {
            let mut r = Record {
                id: format!("{}-{start}", self.name),
                origin: self.name.into(),
                address: address.into(),
                prefix,
                jail: "sshd".into(),
                reason: "sshd".into(),
                start,
                end,
                count: 1,
                signature: String::new(),
            };
            r.sign(&self.key).unwrap();
            (r.key(), serde_json::to_vec(&r).unwrap())
        }
    }

    fn view(policy: Policy, trusted: &[&Host]) -> FleetView {
        FleetView::new("me", policy, trusted.iter().map(|h| (h.name.to_string(), h.public())).collect())
    }

    fn net(text: &str) -> Prefix {
        Prefix::parse(text).unwrap()
    }

    #[test]
    fn a_trusted_ban_applies_and_its_lift_lifts() {
        let web1 = Host::new("web1");
        let mut v = view(Policy::default(), &[&web1]);
        let (key, bytes) = web1.ban("192.0.2.7", 32, 1000, Some(4600));
        let changes = v.receive(&key, &bytes, 1000);
        assert_eq!(
            changes,
            [Change::Ban { network: net("192.0.2.7"), end: 4600, origins: vec![("web1".into(), "sshd".into())] }]
        );
        // The same record again (a reconnect): nothing new.
        assert!(v.receive(&key, &bytes, 1010).is_empty());
        let (key, bytes) = web1.ban("192.0.2.7", 32, 1000, Some(1020));
        assert_eq!(v.receive(&key, &bytes, 1020), [Change::Lift { network: net("192.0.2.7") }]);
        assert_eq!(v.stats()["web1"].accepted, 3);
    }

    #[test]
    fn untrusted_forged_and_misfiled_records_are_refused() {
        let web1 = Host::new("web1");
        let stranger = Host::new("web9");
        let mut v = view(Policy::default(), &[&web1]);
        let (key, bytes) = stranger.ban("192.0.2.7", 32, 1000, None);
        assert!(v.receive(&key, &bytes, 1000).is_empty());
        // A record claiming to be web1's, signed by another key.
        let impostor = Host { name: "web1", key: nkeys::KeyPair::new_user() };
        let (key, bytes) = impostor.ban("192.0.2.8", 32, 1000, None);
        assert!(v.receive(&key, &bytes, 1000).is_empty());
        // web1's own record put under web2's key.
        let (_, bytes) = web1.ban("192.0.2.9", 32, 1000, None);
        assert!(v.receive("web2.192.0.2.9", &bytes, 1000).is_empty());
        assert_eq!(v.stats()["web9"].rejected[&Rejection::Untrusted], 1);
        assert_eq!(v.stats()["web1"].rejected[&Rejection::BadSignature], 1);
        assert_eq!(v.stats()["web2"].rejected[&Rejection::Malformed], 1);
        assert_eq!(v.applied().count(), 0);
    }

    #[test]
    fn local_policy_decides_allow_floor_and_cap() {
        let web1 = Host::new("web1");
        let policy = Policy { allow: vec![net("198.51.100.0/24")], max_bantime: 3600, ..Policy::default() };
        let mut v = view(policy, &[&web1]);
        let (k, b) = web1.ban("198.51.100.5", 32, 1000, None);
        assert!(v.receive(&k, &b, 1000).is_empty(), "allow-listed");
        let (k, b) = web1.ban("198.51.0.0", 16, 1000, None);
        assert!(v.receive(&k, &b, 1000).is_empty(), "wider than /24");
        let (k, b) = web1.ban("2001:db8::", 32, 1000, None);
        assert!(v.receive(&k, &b, 1000).is_empty(), "wider than /48");
        let (k, b) = web1.ban("2001:db8:1::", 48, 1000, None);
        let changes = v.receive(&k, &b, 1000);
        assert!(matches!(&changes[..], [Change::Ban { end: 4600, .. }]), "forever capped to an hour: {changes:?}");
        let s = &v.stats()["web1"];
        assert_eq!((s.rejected[&Rejection::Allowed], s.rejected[&Rejection::TooWide]), (1, 2));
        // A prefix holding an allowed address is not taken either.
        let mut v = view(Policy { allow: vec![net("198.51.100.5")], ..Policy::default() }, &[&web1]);
        let (k, b) = web1.ban("198.51.100.0", 24, 1000, None);
        assert!(v.receive(&k, &b, 1000).is_empty());
        assert_eq!(v.stats()["web1"].rejected[&Rejection::Allowed], 1);
    }

    #[test]
    fn the_latest_end_wins_and_a_quorum_waits_for_enough_origins() {
        let (web1, web2) = (Host::new("web1"), Host::new("web2"));
        let mut v = view(Policy { quorum: 2, ..Policy::default() }, &[&web1, &web2]);
        let (k, b) = web1.ban("192.0.2.7", 32, 1000, Some(2000));
        assert!(v.receive(&k, &b, 1000).is_empty(), "one origin of two");
        let (k, b) = web2.ban("192.0.2.7", 32, 1100, Some(3000));
        let changes = v.receive(&k, &b, 1100);
        assert!(matches!(&changes[..], [Change::Ban { end: 3000, origins, .. }] if origins.len() == 2), "{changes:?}");
        // web2 lifts: below the quorum again.
        let (k, b) = web2.ban("192.0.2.7", 32, 1100, Some(1200));
        assert_eq!(v.receive(&k, &b, 1200), [Change::Lift { network: net("192.0.2.7") }]);
    }

    #[test]
    fn a_flooding_origin_is_quarantined_and_revocation_lifts_all_it_sent() {
        let (web1, web2) = (Host::new("web1"), Host::new("web2"));
        let mut v = view(Policy { rate: 3, rate_window: 60, ..Policy::default() }, &[&web1, &web2]);
        let (k, b) = web2.ban("203.0.113.1", 32, 1000, Some(9000));
        assert_eq!(v.receive(&k, &b, 1000).len(), 1);
        for i in 1..=3 {
            let (k, b) = web1.ban(&format!("192.0.2.{i}"), 32, 1000, Some(9000));
            assert_eq!(v.receive(&k, &b, 1000).len(), 1);
        }
        let (k, b) = web1.ban("192.0.2.4", 32, 1001, Some(9000));
        let lifted = v.receive(&k, &b, 1001);
        assert_eq!(lifted.len(), 3, "web1's earlier bans lifted: {lifted:?}");
        assert!(lifted.iter().all(|c| matches!(c, Change::Lift { .. })));
        assert!(v.stats()["web1"].quarantined.is_some());
        let (k, b) = web1.ban("192.0.2.5", 32, 1002, Some(9000));
        assert!(v.receive(&k, &b, 1002).is_empty());
        assert_eq!(v.stats()["web1"].rejected[&Rejection::Shut], 1);

        assert_eq!(v.revoke("web2", 1003), [Change::Lift { network: net("203.0.113.1") }]);
        let (k, b) = web2.ban("203.0.113.2", 32, 1004, Some(9000));
        assert!(v.receive(&k, &b, 1004).is_empty());
        v.release("web2");
        assert_eq!(v.receive(&k, &b, 1005).len(), 1);
    }

    #[test]
    fn catching_up_is_not_flooding_and_a_lift_of_an_unknown_ban_is_passed_on() {
        let web1 = Host::new("web1");
        let mut v = view(Policy { rate: 2, rate_window: 60, ..Policy::default() }, &[&web1]);
        for i in 1..=5 {
            let (k, b) = web1.ban(&format!("192.0.2.{i}"), 32, 100, Some(9000));
            assert_eq!(v.receive(&k, &b, 1000).len(), 1, "old bans read at start count for no rate");
        }
        assert!(v.stats()["web1"].quarantined.is_none());
        let (k, b) = web1.ban("198.51.100.1", 32, 100, Some(500));
        assert_eq!(v.receive(&k, &b, 1000), [Change::Lift { network: net("198.51.100.1") }]);
    }

    #[test]
    fn ended_records_are_forgotten_and_a_ban_in_force_is_kept() {
        let web1 = Host::new("web1");
        let mut v = view(Policy::default(), &[&web1]);
        let (k, b) = web1.ban("192.0.2.1", 32, 100, Some(200));
        v.receive(&k, &b, 1000);
        let (k, b) = web1.ban("192.0.2.2", 32, 900, Some(5000));
        v.receive(&k, &b, 1000);
        assert_eq!(v.len(), 2);
        assert_eq!(v.forget_ended(1000), 1);
        assert_eq!(v.len(), 1);
        assert_eq!(v.applied().count(), 1);
    }

    #[test]
    fn protected_addresses_are_never_taken() {
        let web1 = Host::new("web1");
        let mut v =
            view(Policy::default(), &[&web1]).protecting(Box::new(|p| p.contains("127.0.0.1".parse().unwrap())));
        let (k, b) = web1.ban("127.0.0.1", 32, 1000, None);
        assert!(v.receive(&k, &b, 1000).is_empty());
        assert_eq!(v.stats()["web1"].rejected[&Rejection::Protected], 1);
    }

    #[test]
    fn this_hosts_own_records_are_not_applied_again() {
        let me = Host::new("me");
        let mut v = view(Policy::default(), &[&me]);
        let (k, b) = me.ban("192.0.2.7", 32, 1000, None);
        assert!(v.receive(&k, &b, 1000).is_empty());
        assert!(!v.stats().contains_key("me"));
    }
}
