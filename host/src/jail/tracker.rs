//! One jail's decisions, free of I/O but for the ban store: which failures
//! count, when an address is banned and for how long, and when its ban
//! ends. Time is always a parameter, so tests drive it with a manual clock.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

use crate::config::jail::Jail;
use crate::jail::{BanCandidate, BanTime, FailCounter, IgnoreList};
use crate::store::{BanRecord, Store, StoreError};

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
    /// The id is banned already (lines still in flight, or logged before
    /// the firewall rule took effect).
    AlreadyBanned,
}

/// The state of one jail.
pub struct JailEngine {
    jail: String,
    counter: FailCounter,
    findtime: i64,
    ban_time: BanTime,
    ignore: IgnoreList,
    /// Addresses of `ignoreip` host names and, with `ignoreself`, of this
    /// machine, resolved when the jail starts.
    ignore_addrs: Vec<IpAddr>,
    banned: HashMap<String, BanRecord>,
    /// Ids that reached `maxretry` and whose ban is being recorded: later
    /// lines of the same batch must not ban them a second time.
    pending: std::collections::HashSet<String>,
    total_banned: u64,
    /// Failures of ids already banned, which fail2ban's "Total failed"
    /// counts too.
    failed_while_banned: u64,
    rng: fastrand::Rng,
}

impl JailEngine {
    /// The engine for `jail`, resolving its ignore names now.
    pub fn new(jail: &Jail) -> JailEngine {
        let mut ignore_addrs = Vec::new();
        for name in jail.ignoreip.names() {
            match (name, 0).to_socket_addrs() {
                Ok(addrs) => ignore_addrs.extend(addrs.map(|a| a.ip())),
                Err(e) => tracing::warn!("[{}] ignoreip name {name} does not resolve ({e}); it is skipped", jail.name),
            }
        }
        if jail.ignoreself {
            ignore_addrs.extend(local_addresses());
        }
        let mut engine = JailEngine::with_settings(
            &jail.name,
            jail.findtime,
            jail.maxretry,
            jail.maxmatches,
            jail.ban_time.clone(),
            jail.ignoreip.clone(),
        );
        engine.ignore_addrs = ignore_addrs;
        engine
    }

    /// An engine from explicit settings (tests, and `new`).
    pub fn with_settings(
        jail: &str,
        findtime: i64,
        maxretry: u32,
        maxmatches: u32,
        ban_time: BanTime,
        ignore: IgnoreList,
    ) -> JailEngine {
        JailEngine {
            jail: jail.to_string(),
            counter: FailCounter::new(findtime, maxretry, maxmatches),
            findtime,
            ban_time,
            ignore,
            ignore_addrs: Vec::new(),
            banned: HashMap::new(),
            pending: std::collections::HashSet::new(),
            total_banned: 0,
            failed_while_banned: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// Use a seeded random source (for `bantime.rndtime` in tests).
    pub fn seed(&mut self, seed: u64) {
        self.rng = fastrand::Rng::with_seed(seed);
    }

    /// The jail's name.
    pub fn jail(&self) -> &str {
        &self.jail
    }

    /// Whether `id` is never to be banned.
    pub fn is_ignored(&self, id: &str) -> bool {
        match id.parse::<IpAddr>() {
            Ok(ip) => {
                self.ignore.covers(ip)
                    || self.ignore_addrs.contains(&ip)
                    || self.ignore_addrs.contains(&crate::jail::normalize(ip))
            }
            Err(_) => false,
        }
    }

    /// Count one failure of `id` logged at `time`, seen at `now`.
    pub fn failure(&mut self, id: &str, time: f64, matches: &[String], now: f64) -> Verdict {
        if self.is_ignored(id) {
            return Verdict::Ignored;
        }
        if time < now - self.findtime as f64 {
            return Verdict::TooOld;
        }
        if self.banned.contains_key(id) || self.pending.contains(id) {
            self.failed_while_banned += 1;
            return Verdict::AlreadyBanned;
        }
        match self.counter.add(id, time, matches) {
            Some(candidate) => {
                self.pending.insert(candidate.id.clone());
                Verdict::Ban(candidate)
            }
            None => Verdict::Counted,
        }
    }

    /// A candidate that will not be banned after all (its ban would be
    /// over already, or could not be planned): its id counts again.
    pub fn drop_candidate(&mut self, id: &str) {
        self.pending.remove(id);
    }

    /// Turn a candidate into the ban to record: its length follows the
    /// jail's ban time rule and how often the store has seen it banned.
    /// `None` when a ban that long, started at its last failure, is
    /// already over.
    pub fn plan(&mut self, candidate: &BanCandidate, store: &Store, now: f64) -> Result<Option<BanRecord>, StoreError> {
        let overall = self.ban_time.increment.as_ref().is_some_and(|i| i.overalljails);
        let earlier = if self.ban_time.increment.is_some() {
            store.ban_count(&candidate.id, if overall { None } else { Some(&self.jail) })?
        } else {
            0
        };
        let start = candidate.time.min(now).floor() as i64;
        let bantime = self.ban_time.seconds(earlier, self.rng.f64());
        let record = BanRecord {
            jail: self.jail.clone(),
            ip: candidate.id.clone(),
            time: start,
            bantime,
            bancount: earlier + 1,
            failures: candidate.failures,
            matches: candidate.matches.clone(),
        };
        Ok(record.active_at(now as i64).then_some(record))
    }

    /// A ban asked for by the admin (`wasmban ban JAIL IP`).
    pub fn plan_manual(&mut self, id: &str, store: &Store, now: f64) -> Result<Option<BanRecord>, StoreError> {
        let candidate = BanCandidate { id: id.to_string(), failures: 0, matches: Vec::new(), time: now };
        self.plan(&candidate, store, now)
    }

    /// A recorded ban is now in force.
    pub fn commit(&mut self, record: BanRecord) {
        self.counter.forget(&record.ip);
        self.pending.remove(&record.ip);
        self.total_banned += 1;
        self.banned.insert(record.ip.clone(), record);
    }

    /// A ban from the store, put back in force after a restart.
    pub fn restore(&mut self, record: BanRecord) {
        self.banned.insert(record.ip.clone(), record);
    }

    /// Bans whose time is up at `now`, no longer in force.
    pub fn expired(&mut self, now: f64) -> Vec<BanRecord> {
        let now = now.floor() as i64;
        let due: Vec<String> =
            self.banned.iter().filter(|(_, r)| !r.active_at(now)).map(|(ip, _)| ip.clone()).collect();
        let mut out: Vec<BanRecord> = due.iter().filter_map(|ip| self.banned.remove(ip)).collect();
        out.sort_by_key(|r| r.time);
        out
    }

    /// Lift the ban of `id`, if it is banned.
    pub fn lift(&mut self, id: &str) -> Option<BanRecord> {
        self.counter.forget(id);
        self.banned.remove(id)
    }

    /// Lift every ban.
    pub fn lift_all(&mut self) -> Vec<BanRecord> {
        let mut all: Vec<BanRecord> = self.banned.drain().map(|(_, r)| r).collect();
        all.sort_by_key(|r| r.time);
        all
    }

    /// Forget failures older than `findtime`.
    /// Returns whether memory was given back.
    pub fn cleanup(&mut self, now: f64) -> bool {
        let counted = self.counter.cleanup(now);
        let banned = crate::jail::counter::shrink_if_sparse(&mut self.banned);
        counted || banned
    }

    /// Ids with failures being counted.
    pub fn currently_failed(&self) -> usize {
        self.counter.len()
    }

    /// Failures counted since the jail started.
    pub fn total_failed(&self) -> u64 {
        self.counter.total() + self.failed_while_banned
    }

    /// Bans in force.
    pub fn banned(&self) -> impl Iterator<Item = &BanRecord> {
        self.banned.values()
    }

    /// Whether `id` is banned.
    pub fn is_banned(&self, id: &str) -> bool {
        self.banned.contains_key(id)
    }

    /// Bans made since the jail started (restored ones not included).
    pub fn total_banned(&self) -> u64 {
        self.total_banned
    }
}

/// This machine's addresses, for `ignoreself`.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])];
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we only read
    // and then hand back to freeifaddrs exactly once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut cursor = list;
        while !cursor.is_null() {
            let addr = (*cursor).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cursor = (*cursor).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jail::Increment;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite3")).unwrap();
        (dir, store)
    }

    fn engine(ban_time: BanTime) -> JailEngine {
        let ignore = IgnoreList::parse("10.0.0.0/8").unwrap();
        JailEngine::with_settings("sshd", 600, 3, 3, ban_time, ignore)
    }

    fn ban_once(e: &mut JailEngine, s: &mut Store, ip: &str, now: f64) -> BanRecord {
        for i in 0..2 {
            assert_eq!(e.failure(ip, now - 2.0 + f64::from(i), &[], now), Verdict::Counted);
        }
        let Verdict::Ban(c) = e.failure(ip, now, &["line".into()], now) else { panic!("no ban") };
        let rec = e.plan(&c, s, now).unwrap().unwrap();
        s.record_progress(std::slice::from_ref(&rec), &[]).unwrap();
        e.commit(rec.clone());
        rec
    }

    #[test]
    fn the_increment_formula_doubles_each_ban_across_restarts() {
        let (_dir, mut s) = store();
        let rule = BanTime { base: 600, increment: Some(Increment { maxtime: Some(3000), ..Increment::default() }) };
        let mut now = 1_000_000.0;
        let mut lengths = Vec::new();
        for _ in 0..5 {
            // A fresh engine each time: what counts is the store's history.
            let mut e = engine(rule.clone());
            let rec = ban_once(&mut e, &mut s, "192.0.2.7", now);
            lengths.push((rec.bantime, rec.bancount));
            now += rec.bantime as f64;
            assert_eq!(e.expired(now).len(), 1);
            s.lift(Some("sshd"), "192.0.2.7").unwrap();
        }
        assert_eq!(lengths, [(600, 1), (1200, 2), (2400, 3), (3000, 4), (3000, 5)]);
    }

    #[test]
    fn overalljails_counts_bans_of_other_jails() {
        let (_dir, mut s) = store();
        let inc = Increment { overalljails: true, ..Increment::default() };
        let mut other = JailEngine::with_settings(
            "postfix",
            600,
            3,
            3,
            BanTime { base: 60, increment: None },
            IgnoreList::default(),
        );
        ban_once(&mut other, &mut s, "192.0.2.8", 5000.0);
        let mut e = engine(BanTime { base: 100, increment: Some(inc) });
        assert_eq!(ban_once(&mut e, &mut s, "192.0.2.8", 5000.0).bantime, 200);
    }

    #[test]
    fn ignored_old_and_banned_ids_are_not_counted() {
        let (_dir, mut s) = store();
        let mut e = engine(BanTime { base: 600, increment: None });
        assert_eq!(e.failure("10.1.2.3", 100.0, &[], 100.0), Verdict::Ignored);
        assert_eq!(e.failure("192.0.2.1", 100.0, &[], 800.0), Verdict::TooOld);
        ban_once(&mut e, &mut s, "192.0.2.1", 1000.0);
        assert_eq!(e.failure("192.0.2.1", 1001.0, &[], 1001.0), Verdict::AlreadyBanned);
        assert!(e.expired(1599.0).is_empty());
        assert_eq!(e.expired(1600.0).len(), 1);
        assert_eq!(e.failure("192.0.2.1", 1601.0, &[], 1601.0), Verdict::Counted);
        assert_eq!((e.total_banned(), e.total_failed()), (1, 5));
    }

    #[test]
    fn an_id_is_banned_once_even_when_its_lines_keep_coming_in_the_same_batch() {
        let (_dir, s) = store();
        let mut e = engine(BanTime { base: 600, increment: None });
        let mut candidates = Vec::new();
        for i in 0..9 {
            if let Verdict::Ban(c) = e.failure("192.0.2.3", 1000.0 + f64::from(i), &[], 1010.0) {
                candidates.push(c);
            }
        }
        assert_eq!(candidates.len(), 1);
        assert_eq!(e.total_failed(), 9);
        let rec = e.plan(&candidates[0], &s, 1010.0).unwrap().unwrap();
        e.commit(rec);
        assert_eq!(e.failure("192.0.2.3", 1011.0, &[], 1011.0), Verdict::AlreadyBanned);
        // A candidate dropped before its ban counts afresh.
        let mut e = engine(BanTime { base: 600, increment: None });
        for i in 0..3 {
            e.failure("192.0.2.4", 1000.0 + f64::from(i), &[], 1010.0);
        }
        e.drop_candidate("192.0.2.4");
        assert_eq!(e.failure("192.0.2.4", 1004.0, &[], 1010.0), Verdict::Counted);
    }

    #[test]
    fn a_ban_already_over_is_not_planned_and_permanent_bans_never_expire() {
        let (_dir, s) = store();
        let mut e = engine(BanTime { base: 60, increment: None });
        let c = BanCandidate { id: "192.0.2.2".into(), failures: 3, matches: vec![], time: 1000.0 };
        assert!(e.plan(&c, &s, 1100.0).unwrap().is_none());
        let mut e = engine(BanTime { base: -1, increment: None });
        let rec = e.plan(&c, &s, 1100.0).unwrap().unwrap();
        e.commit(rec);
        assert!(e.expired(1e12).is_empty());
        assert_eq!(e.lift_all().len(), 1);
    }

    #[test]
    fn ignoreself_covers_loopback() {
        let addrs = local_addresses();
        assert!(addrs.contains(&IpAddr::from([127, 0, 0, 1])));
    }
}
