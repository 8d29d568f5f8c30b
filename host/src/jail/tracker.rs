//! One jail's judgement of failures, as pure code: which count, which are
//! ignored or too old, and when an id reaches `maxretry`. It is given its
//! settings (and the addresses its ignore names resolved to); it knows
//! nothing of the store, the clock or bans in force (the caller says
//! whether an id is banned). Time is always a parameter, so tests drive it
//! with numbers, not sleeps.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use crate::jail::{BanCandidate, BanPrefixes, FailCounter, IgnoreList, Prefix};

/// What became of one failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Counted; the id is not banned yet.
    Counted,
    /// The id reached `maxretry`.
    Ban(BanCandidate),
    /// The id is in `ignoreip` (or is this machine, with `ignoreself`).
    Ignored,
    /// Older than `findtime` before now: history, not an attack in progress.
    TooOld,
    /// The id reached `maxretry` earlier in the same batch and its ban is
    /// being decided.
    AlreadyBanned,
}

/// What a failure brings besides its id and time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// The lines it matched.
    pub matches: &'a [String],
    /// What the filter captured (`user`, ...).
    pub fields: &'a [(String, String)],
}

/// What a tracker is made from.
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// `findtime` in seconds.
    pub findtime: i64,
    /// `maxretry`.
    pub maxretry: u32,
    /// `maxmatches`: matched lines kept per id.
    pub maxmatches: u32,
    /// `maxtracked`: ids counted at most; the least recent are forgotten.
    pub max_tracked: usize,
    /// `ignoreip`.
    pub ignore: IgnoreList,
    /// Addresses of `ignoreip` host names and, with `ignoreself`, of this
    /// machine, resolved by whoever builds the jail.
    pub ignore_addrs: Vec<IpAddr>,
    /// `banprefix4` and `banprefix6`.
    pub banprefix: BanPrefixes,
}

/// The failures of one jail.
pub struct FailureTracker {
    counter: FailCounter,
    findtime: i64,
    ignore: IgnoreList,
    ignore_addrs: Vec<IpAddr>,
    banprefix: BanPrefixes,
    /// Ids that reached `maxretry` and whose ban is being decided: later
    /// lines of the same batch must not make them candidates again.
    pending: HashSet<String>,
    /// Failures of ids whose ban was being decided, which fail2ban's
    /// "Total failed" counts too.
    failed_while_banned: u64,
}

impl FailureTracker {
    /// A tracker with these settings.
    pub fn new(settings: TrackerSettings) -> FailureTracker {
        let mut counter = FailCounter::new(settings.findtime, settings.maxretry, settings.maxmatches);
        counter.set_max_tracked(settings.max_tracked);
        FailureTracker {
            counter,
            findtime: settings.findtime,
            ignore: settings.ignore,
            ignore_addrs: settings.ignore_addrs,
            banprefix: settings.banprefix,
            pending: HashSet::new(),
            failed_while_banned: 0,
        }
    }

    /// Take new settings at run time (`set JAIL ...`): failures being
    /// counted are kept and judged by the new settings.
    pub fn reconfigure(&mut self, settings: TrackerSettings) {
        self.set_findtime(settings.findtime);
        self.set_maxretry(settings.maxretry);
        self.set_maxmatches(settings.maxmatches);
        self.counter.set_max_tracked(settings.max_tracked);
        self.ignore = settings.ignore;
        self.ignore_addrs = settings.ignore_addrs;
        self.banprefix = settings.banprefix;
    }

    /// Change `findtime` at run time (`set JAIL findtime`).
    pub fn set_findtime(&mut self, findtime: i64) {
        self.findtime = findtime;
        self.counter.set_findtime(findtime);
    }

    /// `maxretry`.
    pub fn maxretry(&self) -> u32 {
        self.counter.maxretry()
    }

    /// Change `maxretry` at run time.
    pub fn set_maxretry(&mut self, maxretry: u32) {
        self.counter.set_maxretry(maxretry);
    }

    /// Change `maxmatches` at run time.
    pub fn set_maxmatches(&mut self, maxmatches: u32) {
        self.counter.set_maxmatches(maxmatches);
    }

    /// Whether `id` is never to be banned: an ignored address, or a
    /// prefix that holds one.
    pub fn is_ignored(&self, id: &str) -> bool {
        if let Ok(ip) = id.parse::<IpAddr>() {
            return self.ignore.covers(ip)
                || self.ignore_addrs.contains(&ip)
                || self.ignore_addrs.contains(&crate::jail::normalize(ip));
        }
        match Prefix::parse(id) {
            Some(prefix) => self.prefix_holds_ignored(&prefix),
            None => false,
        }
    }

    fn prefix_holds_ignored(&self, prefix: &Prefix) -> bool {
        self.ignore.overlaps(prefix) || self.ignore_addrs.iter().any(|ip| prefix.contains(*ip))
    }

    /// The id a failure of `id` is counted and banned under: the prefix of
    /// `banprefix4`/`banprefix6` that holds the address, unless that prefix
    /// holds an ignored address (then the address alone, which may be the
    /// ignored one); `id` itself otherwise.
    pub fn counted_id<'a>(&self, id: &'a str) -> Cow<'a, str> {
        // Every failure passes here: a jail that bans addresses alone (the
        // default) pays neither a parse nor an allocation.
        if self.banprefix == BanPrefixes::default() {
            return Cow::Borrowed(id);
        }
        let Ok(ip) = id.parse::<IpAddr>() else { return Cow::Borrowed(id) };
        let prefix = self.banprefix.widen(ip);
        if prefix.is_address() || self.is_ignored(id) {
            return Cow::Borrowed(id);
        }
        if self.prefix_holds_ignored(&prefix) {
            tracing::debug!("{id} is counted alone: its prefix {prefix} holds an ignored address");
            return Cow::Borrowed(id);
        }
        Cow::Owned(prefix.to_string())
    }

    /// Count one failure of `id` logged at `time` (its lines and captured
    /// fields in `seen`), at `now`, as `weight` failures (see
    /// `BanManager::failure_weight`). An id banned in the jail counts too,
    /// as in fail2ban: when it reaches `maxretry` again, its ban lasts
    /// longer (the ban manager decides).
    pub fn failure(&mut self, id: &str, time: f64, seen: Seen<'_>, now: f64, weight: u32) -> Verdict {
        if self.is_ignored(id) {
            return Verdict::Ignored;
        }
        if time < now - self.findtime as f64 {
            return Verdict::TooOld;
        }
        if self.pending.contains(id) {
            self.failed_while_banned += 1;
            return Verdict::AlreadyBanned;
        }
        match self.counter.add(id, time, seen.matches, seen.fields, weight) {
            Some(candidate) => {
                self.pending.insert(candidate.id.clone());
                Verdict::Ban(candidate)
            }
            None => Verdict::Counted,
        }
    }

    /// A candidate that will not be banned after all (its ban would be
    /// over already, or could not be decided): its id counts again.
    pub fn drop_candidate(&mut self, id: &str) {
        self.pending.remove(id);
    }

    /// `id` is banned (or was lifted by hand): its count starts afresh.
    pub fn settle(&mut self, id: &str) {
        self.counter.forget(id);
        self.pending.remove(id);
    }

    /// Forget failures older than `findtime`; whether memory was given back.
    pub fn cleanup(&mut self, now: f64) -> bool {
        self.counter.cleanup(now)
    }

    /// Ids with failures being counted.
    pub fn currently_failed(&self) -> usize {
        self.counter.len()
    }

    /// Failures counted since the jail started.
    pub fn total_failed(&self) -> u64 {
        self.counter.total() + self.failed_while_banned
    }

    /// `maxtracked`.
    pub fn max_tracked(&self) -> usize {
        self.counter.max_tracked()
    }

    /// Ids forgotten since the jail started because it counted
    /// `maxtracked` of them.
    pub fn forgotten_when_full(&self) -> u64 {
        self.counter.evicted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl FailureTracker {
        fn failure_of(&mut self, id: &str, time: f64, matches: &[String], now: f64) -> Verdict {
            self.failure(id, time, Seen { matches, fields: &[] }, now, 1)
        }
    }

    fn tracker() -> FailureTracker {
        FailureTracker::new(TrackerSettings {
            findtime: 600,
            maxretry: 3,
            maxmatches: 3,
            max_tracked: 1000,
            ignore: IgnoreList::parse("10.0.0.0/8").unwrap(),
            ignore_addrs: vec!["192.0.2.250".parse().unwrap()],
            banprefix: BanPrefixes::default(),
        })
    }

    #[test]
    fn ignored_and_old_failures_are_not_counted() {
        let mut t = tracker();
        assert_eq!(t.failure_of("10.1.2.3", 100.0, &[], 100.0), Verdict::Ignored);
        assert_eq!(t.failure_of("192.0.2.250", 100.0, &[], 100.0), Verdict::Ignored);
        assert_eq!(t.failure_of("192.0.2.1", 100.0, &[], 800.0), Verdict::TooOld);
        assert_eq!(t.failure_of("192.0.2.1", 1601.0, &[], 1601.0), Verdict::Counted);
        assert_eq!(t.total_failed(), 1);
    }

    #[test]
    fn an_id_is_a_candidate_once_even_when_its_lines_keep_coming_in_the_same_batch() {
        let mut t = tracker();
        let mut candidates = Vec::new();
        for i in 0..9 {
            if let Verdict::Ban(c) = t.failure_of("192.0.2.3", 1000.0 + f64::from(i), &["l".into()], 1010.0) {
                candidates.push(c);
            }
        }
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].failures, 3);
        assert_eq!(t.total_failed(), 9);
        // Once banned, its failures count again, towards a longer ban.
        t.settle("192.0.2.3");
        assert_eq!(t.failure_of("192.0.2.3", 1011.0, &[], 1011.0), Verdict::Counted);
        // A candidate dropped before its ban counts afresh.
        let mut t = tracker();
        for i in 0..3 {
            t.failure_of("192.0.2.4", 1000.0 + f64::from(i), &[], 1010.0);
        }
        t.drop_candidate("192.0.2.4");
        assert_eq!(t.failure_of("192.0.2.4", 1004.0, &[], 1010.0), Verdict::Counted);
    }

    #[test]
    fn failures_age_out_after_findtime() {
        let mut t = tracker();
        t.failure_of("192.0.2.5", 1000.0, &[], 1000.0);
        t.failure_of("192.0.2.5", 1001.0, &[], 1001.0);
        assert_eq!(t.currently_failed(), 1);
        t.cleanup(1700.0);
        assert_eq!(t.currently_failed(), 0);
        // Counting starts again: two more are not a ban.
        assert_eq!(t.failure_of("192.0.2.5", 1700.0, &[], 1700.0), Verdict::Counted);
        assert_eq!(t.failure_of("192.0.2.5", 1701.0, &[], 1701.0), Verdict::Counted);
    }

    /// The clock jumping back by hours: lines dated by the log (ahead of
    /// the clock) still count, and a cleanup at the earlier time forgets
    /// nothing recent; jumping forward by hours, what was counted is old.
    #[test]
    fn the_clock_jumping_by_hours_neither_loses_nor_invents_failures() {
        let mut t = tracker();
        t.failure_of("192.0.2.6", 50_000.0, &[], 50_000.0);
        let back = 50_000.0 - 3.0 * 3600.0;
        assert_eq!(t.failure_of("192.0.2.6", 50_001.0, &[], back), Verdict::Counted);
        t.cleanup(back);
        assert_eq!(t.currently_failed(), 1, "a cleanup with the clock behind forgot recent failures");
        assert!(matches!(t.failure_of("192.0.2.6", 50_002.0, &[], back), Verdict::Ban(_)));
        t.settle("192.0.2.6");
        let forward = 50_000.0 + 5.0 * 3600.0;
        assert_eq!(t.failure_of("192.0.2.7", 50_003.0, &[], forward), Verdict::TooOld);
        t.failure_of("192.0.2.8", 50_004.0, &[], 50_004.0);
        t.cleanup(forward);
        assert_eq!(t.currently_failed(), 0);
    }

    #[test]
    fn a_prefix_is_counted_as_one_unless_it_holds_an_ignored_address() {
        let mut t = FailureTracker::new(TrackerSettings {
            findtime: 600,
            maxretry: 3,
            maxmatches: 3,
            max_tracked: 1000,
            ignore: IgnoreList::parse("2001:db8:0:9::5").unwrap(),
            ignore_addrs: vec!["198.51.100.7".parse().unwrap()],
            banprefix: BanPrefixes::parse(Some("24"), Some("64")).unwrap(),
        });
        // An attacker walking through its /64: three addresses, one ban.
        let walked: Vec<Verdict> = ["2001:db8:0:1::a", "2001:db8:0:1::b", "2001:db8:0:1::c"]
            .iter()
            .map(|ip| {
                let id = t.counted_id(ip);
                assert_eq!(id, "2001:db8:0:1::/64");
                t.failure_of(&id, 100.0, &[], 100.0)
            })
            .collect();
        assert!(matches!(&walked[2], Verdict::Ban(c) if c.id == "2001:db8:0:1::/64"), "{walked:?}");
        // A prefix holding an ignored address (of ignoreip, or of this
        // machine) is not banned; its other addresses count alone.
        assert_eq!(t.counted_id("2001:db8:0:9::6"), "2001:db8:0:9::6");
        assert_eq!(t.counted_id("198.51.100.8"), "198.51.100.8");
        assert_eq!(t.counted_id("2001:db8:0:9::5"), "2001:db8:0:9::5");
        assert_eq!(t.failure_of("2001:db8:0:9::5", 100.0, &[], 100.0), Verdict::Ignored);
        // A filter's own prefix over an ignored address is ignored.
        assert!(t.is_ignored("2001:db8::/32") && !t.is_ignored("2001:db8:1::/48"));
        assert_eq!(t.counted_id("192.0.2.0/24"), "192.0.2.0/24");
    }
}
