//! Failures per id, as fail2ban counts them: a window of `findtime` that
//! starts at the first failure; when a failure arrives after the window,
//! the count is scaled to the rate seen so far and the window moves.

use std::collections::HashMap;

struct Entry {
    first: f64,
    last: f64,
    /// The count compared with `maxretry`.
    retry: u32,
    /// Failure lines seen.
    failures: u32,
    matches: Vec<String>,
    /// The first failure's captured fields, as fail2ban keeps the first
    /// ticket's data for the ban.
    fields: Vec<(String, String)>,
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
    entries: HashMap<String, Entry>,
    total: u64,
}

impl FailCounter {
    /// Counts for a jail with these settings.
    pub fn new(findtime: i64, maxretry: u32, maxmatches: u32) -> Self {
        FailCounter {
            findtime: findtime.max(1) as f64,
            maxretry: maxretry.max(1),
            maxmatches: maxmatches as usize,
            entries: HashMap::new(),
            total: 0,
        }
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
        let findtime = self.findtime;
        let entry = self.entries.entry(id.to_string()).or_insert_with(|| Entry {
            first: time,
            last: time,
            retry: 0,
            failures: 0,
            matches: Vec::new(),
            fields: fields.to_vec(),
        });
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
            entry.matches.extend(matches.iter().cloned());
            let excess = entry.matches.len().saturating_sub(self.maxmatches);
            entry.matches.drain(..excess);
        }
        if entry.retry >= self.maxretry {
            let entry = self.entries.remove(id)?;
            return Some(BanCandidate {
                id: id.to_string(),
                failures: entry.failures,
                matches: entry.matches,
                time: entry.last,
                fields: entry.fields,
            });
        }
        None
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
