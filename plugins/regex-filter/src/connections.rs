//! The state kept across lines: the `<F-MLFID>` connection cache (lines of
//! one connection merged into one failure) and canonical ids, so that a
//! connection's id and an address seen many times share one string.

use super::*;

/// fail2ban's connection cache: at most 100 entries, five minutes each.
pub(crate) struct MlfidCache {
    pub(crate) entries: HashMap<Rc<str>, CacheEntry, BuildHasherDefault<FxHasher>>,
    /// Insertion counter: the oldest entry goes first when the cache is full.
    pub(crate) next_seq: u64,
}

pub(crate) struct CacheEntry {
    pub(crate) expires: f64,
    pub(crate) seq: u64,
    /// Shared with the failure reported for the same line, if any (gone
    /// by the time the entry is taken again, so it is not copied).
    pub(crate) fail: Rc<Fail>,
}

/// Where a failure goes back into the cache once it is merged.
pub(crate) enum CacheSlot {
    /// The entry it was taken from: same key, age and place in line.
    Existing {
        key: Rc<str>,
        expires: f64,
        seq: u64,
    },
    New {
        key: Rc<str>,
    },
}

impl MlfidCache {
    pub(crate) const MAX: usize = 100;
    pub(crate) const MAX_AGE: f64 = 300.0;

    /// Take the live entry of `key` out (an expired one is dropped).
    pub(crate) fn take(&mut self, key: &str, now: f64) -> Option<(Rc<str>, CacheEntry)> {
        let (key, entry) = self.entries.remove_entry(key)?;
        (entry.expires > now).then_some((key, entry))
    }

    pub(crate) fn store(&mut self, slot: CacheSlot, fail: Rc<Fail>, now: f64) {
        match slot {
            CacheSlot::Existing { key, expires, seq } => {
                self.entries.insert(key, CacheEntry { expires, seq, fail });
            }
            CacheSlot::New { key } => {
                if self.entries.len() >= Self::MAX {
                    self.entries.retain(|_, e| e.expires > now);
                    while self.entries.len() >= Self::MAX {
                        let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone())
                        else {
                            break;
                        };
                        self.entries.remove(&oldest);
                    }
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.entries.insert(key, CacheEntry { expires: now + Self::MAX_AGE, seq, fail });
            }
        }
    }
}

/// The connection cache's hash: a plain multiply-rotate hash (FxHash's)
/// at a fraction of SipHash's cost. Keys come from log lines, but the cache
/// holds at most 100 entries, so colliding keys cost 100 comparisons at
/// worst.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// An id as fail2ban prints it: a valid IP in canonical form (an
/// IPv4-mapped IPv6 as IPv4), any other text as captured.
pub(crate) fn canonical_id(id: &Rc<str>) -> Rc<str> {
    use std::net::IpAddr;
    // A dotted quad is already canonical: no need to parse and format it.
    if is_canonical_ipv4(id) {
        return id.clone();
    }
    match id.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Rc::from(v4.to_string()),
            None => Rc::from(v6.to_string()),
        },
        Ok(ip) => Rc::from(ip.to_string()),
        Err(_) => id.clone(),
    }
}

/// Canonical forms of the ids seen last: an address is mostly seen again
/// (several lines per connection, several connections per attacker), and
/// putting an IPv6 address in canonical form means parsing and printing it.
pub(crate) struct CanonicalIds {
    pub(crate) slots: Vec<Option<(Rc<str>, Rc<str>)>>,
}

impl CanonicalIds {
    pub(crate) const SLOTS: usize = 256;

    pub(crate) fn new() -> CanonicalIds {
        CanonicalIds { slots: vec![None; Self::SLOTS] }
    }

    pub(crate) fn canonical(&mut self, id: &Rc<str>) -> Rc<str> {
        if is_canonical_ipv4(id) {
            return id.clone();
        }
        let mut hasher = FxHasher::default();
        hasher.write(id.as_bytes());
        let slot = &mut self.slots[hasher.finish() as usize % Self::SLOTS];
        if let Some((seen, canonical)) = slot
            && **seen == **id
        {
            return canonical.clone();
        }
        let canonical = canonical_id(id);
        *slot = Some((id.clone(), canonical.clone()));
        canonical
    }
}

/// Four decimal numbers up to 255 without leading zeros, dot-separated:
/// what `Ipv4Addr` parses and prints back unchanged.
pub(crate) fn is_canonical_ipv4(text: &str) -> bool {
    let mut octets = 0;
    let mut value: u32 = 0;
    let mut digits = 0;
    for &byte in text.as_bytes() {
        match byte {
            b'0'..=b'9' => {
                // A leading zero makes the text not what the parser prints.
                if digits == 1 && value == 0 {
                    return false;
                }
                value = value * 10 + u32::from(byte - b'0');
                digits += 1;
                if value > 255 {
                    return false;
                }
            }
            b'.' if digits > 0 && octets < 3 => {
                octets += 1;
                value = 0;
                digits = 0;
            }
            _ => return false,
        }
    }
    octets == 3 && digits > 0
}

impl RegexFilter {
    /// Merge a failure of connection `key` with what is known of it.
    /// Returns the merged failure and whether it stays cached.
    pub(crate) fn merge_failure(
        &mut self,
        key: &Rc<str>,
        mut fail: Fail,
        matched: &[usize],
        org: &[LineRef<'_>],
        date: f64,
    ) -> (Fail, Option<CacheSlot>) {
        let known = self.mlfid.take(key, date);
        let mut flags = 0u8;
        if fail.groups.truthy("mlfgained") {
            flags |= 8 | 1;
            if !fail.groups.truthy("nofail")
                && let Some(g) = fail.groups.get("mlfgained").cloned()
            {
                fail.groups.insert_str("nofail", g);
            }
        } else if fail.groups.truthy("nofail") {
            flags |= 1;
        }
        if fail.groups.remove("mlfforget").is_some_and(|v| !v.is_empty()) {
            flags |= 2;
        }
        let users_len;
        let keep;
        let matched = || matched.iter().map(|&i| org[i].to_owned());
        let mut fail = match known {
            Some((cached_key, CacheEntry { expires, seq, fail: entry })) => {
                let mut entry = Rc::unwrap_or_clone(entry);
                if let Some(user) = fail.groups.get("user").filter(|u| !u.is_empty()).cloned() {
                    entry.users.get_or_insert_with(BTreeSet::new).insert(user);
                }
                if entry.groups.remove("nofail").is_some() {
                    flags |= 4;
                }
                if entry.groups.remove("mlfgained").is_some() {
                    flags |= 4;
                }
                if flags & 8 != 0 {
                    entry.pending = false;
                }
                if flags & 4 == 0 && !entry.pending {
                    entry.matches = None;
                }
                entry.groups.extend(std::mem::take(&mut fail.groups));
                // Forgotten: it is not put back.
                keep = (flags & 2 == 0).then_some(CacheSlot::Existing { key: cached_key, expires, seq });
                users_len = entry.users.as_ref().map_or(0, BTreeSet::len);
                entry
            }
            None if flags & 2 == 0 => {
                keep = Some(CacheSlot::New { key: key.clone() });
                users_len = fail.update_users().map_or(0, BTreeSet::len);
                fail
            }
            None => {
                keep = None;
                users_len = 0;
                fail
            }
        };
        if std::mem::take(&mut fail.pending) || users_len > 1 {
            fail.groups.remove("nofail");
            fail.groups.remove("mlfgained");
            flags &= !(8 | 1);
        }
        if flags & 1 == 0 {
            let mut m = fail.nofail_matches.take().unwrap_or_default();
            m.extend(fail.matches.take().unwrap_or_default());
            if flags & 8 == 0 {
                m.extend(matched());
            }
            fail.matches = Some(m);
        } else if flags & 3 == 1 {
            let mut m = fail.nofail_matches.take().unwrap_or_default();
            m.extend(matched());
            fail.nofail_matches = Some(m);
        }
        (fail, keep)
    }
}
