//! Failures per id, as fail2ban counts them: a window of `findtime` that
//! starts at the first failure; when a failure arrives after the window,
//! the count is scaled to the rate seen so far and the window moves.
//!
//! The table is capped (`maxtracked`): an attack from more distinct
//! addresses than that would otherwise grow it without bound. When it is
//! full, the ids seen least recently are forgotten first, so an address
//! that keeps failing keeps its count while a spray of one-off addresses
//! pushes out its own oldest members.

use std::collections::HashMap;

/// How many ids a jail counts at most unless `maxtracked` says otherwise.
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// The share of a full table forgotten at once. Eviction walks the whole
/// table, so forgetting an eighth at a time keeps its cost per failure
/// constant instead of a walk per new id.
const EVICT_DIVISOR: usize = 8;

// Boxed strings rather than `String`s: a table of a million ids pays for
// every word of capacity it never uses.
struct Entry {
    first: f64,
    last: f64,
    /// When it was last counted, on the table's own clock of failures
    /// (log times can repeat or go backwards; this cannot).
    touched: u64,
    /// The count compared with `maxretry`.
    retry: u32,
    /// Failure lines seen.
    failures: u32,
    matches: Vec<Box<str>>,
    /// The first failure's captured fields, as fail2ban keeps the first
    /// ticket's data for the ban.
    fields: Box<[(Box<str>, Box<str>)]>,
}

/// An id that reached `maxretry`.
#[derive(Debug, Clone, PartialEq)]
pub struct BanCandidate {
    /// The id (usually an address).
    pub id: String,
    /// Failure lines counted for it.
    pub failures: u32,
    /// Its last `maxmatches` matched lines.
    pub matches: Vec<String>,
    /// Time of its last failure.
    pub time: f64,
    /// What the filter captured in its first failure (`user`, ...).
    pub fields: Vec<(String, String)>,
}

/// The failure counts of one jail.
pub struct FailCounter {
    findtime: f64,
    maxretry: u32,
    maxmatches: usize,
    max_tracked: usize,
    entries: HashMap<Box<str>, Entry>,
    total: u64,
    /// Failures counted, as the clock `Entry::touched` reads.
    clock: u64,
    /// Every entry was touched at or after this (eviction removed the
    /// older ones), which bounds eviction's search from below.
    oldest_touch: u64,
    evicted: u64,
}

impl FailCounter {
    /// Counts for a jail with these settings.
    pub fn new(findtime: i64, maxretry: u32, maxmatches: u32) -> Self {
        FailCounter {
            findtime: findtime.max(1) as f64,
            maxretry: maxretry.max(1),
            maxmatches: maxmatches as usize,
            max_tracked: DEFAULT_MAX_TRACKED,
            entries: HashMap::new(),
            total: 0,
            clock: 0,
            oldest_touch: 0,
            evicted: 0,
        }
    }

    /// Count at most `max_tracked` ids (at least 1); a smaller cap than
    /// the ids counted now forgets the least recent at the next new id.
    pub fn set_max_tracked(&mut self, max_tracked: usize) {
        self.max_tracked = max_tracked.max(1);
    }

    /// `maxtracked`.
    pub fn max_tracked(&self) -> usize {
        self.max_tracked
    }

    /// Ids forgotten because the table was full, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    // `set JAIL findtime|maxretry|maxmatches`: counts go on, compared with
    // the new value from the next failure.

    /// Change `findtime`.
    pub fn set_findtime(&mut self, findtime: i64) {
        self.findtime = findtime.max(1) as f64;
    }

    /// `maxretry`.
    pub fn maxretry(&self) -> u32 {
        self.maxretry
    }

    /// Change `maxretry`.
    pub fn set_maxretry(&mut self, maxretry: u32) {
        self.maxretry = maxretry.max(1);
    }

    /// Change `maxmatches`.
    pub fn set_maxmatches(&mut self, maxmatches: u32) {
        self.maxmatches = maxmatches as usize;
    }

    /// Ids with failures being counted ("currently failed").
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no failures are being counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Failures counted since start ("total failed").
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Count one failure of `id` at `time`, as `weight` failures towards
    /// `maxretry` (more than 1 for a known offender under
    /// `bantime.increment`); returns the ban candidate when the id reaches
    /// `maxretry` (its count is then forgotten).
    pub fn add(
        &mut self,
        id: &str,
        time: f64,
        matches: &[String],
        fields: &[(String, String)],
        weight: u32,
    ) -> Option<BanCandidate> {
        self.total += 1;
        self.clock += 1;
        let findtime = self.findtime;
        let entry = if self.entries.contains_key(id) {
            self.entries.get_mut(id)?
        } else {
            if self.entries.len() >= self.max_tracked {
                self.evict_least_recent();
            }
            self.entries.entry(id.into()).or_insert(Entry {
                first: time,
                last: time,
                touched: self.clock,
                retry: 0,
                failures: 0,
                matches: Vec::new(),
                fields: fields.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect(),
            })
        };
        entry.touched = self.clock;
        if time > entry.last {
            if entry.first < time - findtime {
                // Past the window: keep the rate, not the count.
                entry.retry = (f64::from(entry.retry) / (time - entry.first) * findtime).round() as u32;
                entry.first = time - findtime;
            }
            entry.last = time;
        }
        entry.retry = entry.retry.saturating_add(weight.max(1));
        entry.failures += 1;
        if self.maxmatches > 0 {
            // Exactly: a Vec grown by `extend` takes room for four lines,
            // and most counted addresses never fail a second time.
            entry.matches.reserve_exact(matches.len());
            entry.matches.extend(matches.iter().map(|m| Box::from(m.as_str())));
            let excess = entry.matches.len().saturating_sub(self.maxmatches);
            entry.matches.drain(..excess);
        }
        if entry.retry >= self.maxretry {
            let entry = self.entries.remove(id)?;
            return Some(BanCandidate {
                id: id.to_string(),
                failures: entry.failures,
                matches: entry.matches.into_iter().map(String::from).collect(),
                time: entry.last,
                fields: entry.fields.into_iter().map(|(k, v)| (String::from(k), String::from(v))).collect(),
            });
        }
        None
    }

    /// Forget the eighth of the table counted least recently. The cut is
    /// found with a histogram of touch times over two walks of the table,
    /// with no allocation that grows with it.
    fn evict_least_recent(&mut self) {
        const BUCKETS: usize = 1024;
        let wanted = (self.entries.len() / EVICT_DIVISOR).max(1);
        let span = (self.clock - self.oldest_touch).max(1);
        let bucket = |touched: u64| {
            ((touched.saturating_sub(self.oldest_touch)) as u128 * BUCKETS as u128 / span as u128) as usize
        };
        let mut histogram = [0usize; BUCKETS + 1];
        for entry in self.entries.values() {
            histogram[bucket(entry.touched).min(BUCKETS)] += 1;
        }
        let mut seen = 0;
        let mut cut = BUCKETS;
        for (index, count) in histogram.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                cut = index;
                break;
            }
        }
        let before = self.entries.len();
        self.entries.retain(|_, entry| bucket(entry.touched) > cut);
        // Touch times of the forgotten buckets' end: everything left is newer.
        self.oldest_touch += ((cut as u128 + 1) * span as u128 / BUCKETS as u128) as u64;
        self.evicted += (before - self.entries.len()) as u64;
    }

    /// Forget ids whose last failure is older than `findtime` before `now`.
    /// Returns whether memory was given back: after a burst of many
    /// addresses, the table would otherwise keep its peak size for good.
    pub fn cleanup(&mut self, now: f64) -> bool {
        let limit = now - self.findtime;
        self.entries.retain(|_, e| e.last > limit);
        shrink_if_sparse(&mut self.entries)
    }

    /// Room the table holds, for tests of memory given back.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Forget one id (after a manual ban or unban).
    pub fn forget(&mut self, id: &str) {
        self.entries.remove(id);
    }
}

/// Shrink a map that holds far less than its room; true when it did.
pub fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) -> bool {
    if map.capacity() > 1024 && map.capacity() > 4 * map.len() {
        map.shrink_to_fit();
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_addresses_gives_its_memory_back_once_they_age_out() {
        let mut c = FailCounter::new(60, 1000, 5);
        for i in 0..100_000u32 {
            c.add(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), 100.0, &["line".to_string()], &[], 1);
        }
        assert!(c.capacity() >= 100_000);
        assert!(!c.cleanup(120.0), "nothing aged out yet");
        c.add("192.0.2.1", 200.0, &[], &[], 1);
        assert!(c.cleanup(200.0));
        assert_eq!(c.len(), 1);
        assert!(c.capacity() < 1024, "{}", c.capacity());
    }

    fn address(i: u32) -> String {
        format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_counted_ids() {
        let mut c = FailCounter::new(600, 1000, 1);
        c.set_max_tracked(1000);
        for i in 0..1000 {
            c.add(&address(i), 100.0, &[], &[], 1);
        }
        // The first ten fail again, so the next least recent are 10...
        for i in 0..10 {
            c.add(&address(i), 101.0, &[], &[], 1);
        }
        assert_eq!((c.len(), c.evicted()), (1000, 0));
        c.add("192.0.2.1", 102.0, &[], &[], 1);
        let forgotten = 1001 - c.len();
        assert!((125..=130).contains(&forgotten), "{forgotten}");
        assert_eq!(c.evicted() as usize, forgotten);
        for i in 0..10 {
            assert!(c.entries.contains_key(address(i).as_str()), "{} was counted recently", address(i));
        }
        assert!(c.entries.contains_key("192.0.2.1"));
        for i in 10..10 + forgotten as u32 {
            assert!(!c.entries.contains_key(address(i).as_str()), "{} was the least recent", address(i));
        }
    }

    #[test]
    fn an_address_that_keeps_failing_is_banned_through_a_spray_of_others() {
        let mut c = FailCounter::new(600, 5, 1);
        c.set_max_tracked(1000);
        let mut banned = false;
        for i in 0..100_000u32 {
            assert!(c.add(&address(i), 100.0, &[], &[], 1).is_none());
            if i % 500 == 0 && c.add("192.0.2.9", 100.0, &["line".into()], &[], 1).is_some() {
                banned = true;
                break;
            }
            assert!(c.len() <= 1000);
        }
        assert!(banned, "the spray pushed out the address that kept failing");
        assert!(c.evicted() > 0);
    }

    #[test]
    fn a_spray_far_past_the_cap_keeps_the_table_at_the_cap() {
        let mut c = FailCounter::new(600, 1000, 1);
        c.set_max_tracked(10_000);
        for i in 0..1_000_000u32 {
            c.add(&address(i), 100.0 + f64::from(i / 1000), &["line".into()], &[], 1);
            assert!(c.len() <= 10_000);
        }
        assert!(c.len() > 8_000, "{}", c.len());
        assert_eq!(c.evicted() + c.len() as u64, 1_000_000);
        assert!(c.capacity() <= 16_384 * 2, "{}", c.capacity());
    }

    #[test]
    fn bans_at_maxretry_within_findtime() {
        let mut c = FailCounter::new(600, 3, 10);
        let user = |name: &str| vec![("user".to_string(), name.to_string())];
        assert!(c.add("192.0.2.1", 1000.0, &["a".into()], &user("root"), 1).is_none());
        assert!(c.add("192.0.2.1", 1100.0, &["b".into()], &user("admin"), 1).is_none());
        assert!(c.add("192.0.2.2", 1150.0, &[], &[], 1).is_none());
        let ban = c.add("192.0.2.1", 1200.0, &["c".into()], &[], 1).unwrap();
        assert_eq!((ban.failures, ban.time), (3, 1200.0));
        assert_eq!(ban.matches, ["a", "b", "c"]);
        // The first failure's captures, as fail2ban's ticket keeps them.
        assert_eq!(ban.fields, user("root"));
        // Its count starts over; the other id is still counted.
        assert_eq!(c.len(), 1);
        assert_eq!(c.total(), 4);
    }

    #[test]
    fn slow_attempts_are_scaled_to_their_rate() {
        let mut c = FailCounter::new(600, 3, 0);
        c.add("x", 0.0, &[], &[], 1);
        c.add("x", 500.0, &[], &[], 1);
        // 2 failures over 1200 s is 1 per findtime: with this one, 2 < 3.
        assert!(c.add("x", 1200.0, &[], &[], 1).is_none());
        // A fast burst now reaches 3.
        assert!(c.add("x", 1210.0, &[], &[], 1).is_some());
    }

    #[test]
    fn maxmatches_keeps_the_last_lines_and_cleanup_forgets_old_ids() {
        let mut c = FailCounter::new(60, 10, 2);
        for (i, t) in [0.0, 1.0, 2.0].iter().enumerate() {
            c.add("x", *t, &[format!("line {i}")], &[], 1);
        }
        c.add("y", 100.0, &[], &[], 1);
        c.cleanup(100.0);
        assert_eq!(c.len(), 1);
        c.forget("y");
        assert!(c.is_empty());
        let mut c = FailCounter::new(60, 3, 2);
        for (i, t) in [0.0, 1.0, 2.0].iter().enumerate() {
            if let Some(b) = c.add("x", *t, &[format!("line {i}")], &[], 1) {
                assert_eq!(b.matches, ["line 1", "line 2"]);
                return;
            }
        }
        panic!("no ban");
    }
}
