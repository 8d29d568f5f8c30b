//! The ban manager: the one place that writes bans. It takes ban decisions
//! that carry their origin (a jail's failures, an admin's `ban`; later a
//! fleet peer), records them in the store before anything is applied,
//! applies them through the jail's actions (with check, repair and retry),
//! lifts them when their time is up or when asked, and restores them at
//! start. Bans in force are kept by id and, for expiry, in an ordered set
//! of end times: the loop looks at the earliest end only.
//!
//! One manager per jail, owned by the jail's thread (its actions are
//! plugin instances, which are not shared). Time is a parameter.

pub mod actions;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

pub use actions::{BanContext, BanKind, JailAction, JailActions};

use crate::jail::BanTime;
use crate::metrics::BanOrigin;
use crate::store::{BanRecord, Store};
use crate::tail::Progress;

/// Where a ban decision comes from; stored with the ban.
pub use crate::store::Origin;
pub use view::{BanView, Listing};

mod view;

/// A decision to ban one id.
#[derive(Debug, Clone, PartialEq)]
pub struct BanDecision {
    /// What to ban (a normalised address, or a filter's declared id).
    pub id: String,
    /// Who decided.
    pub origin: Origin,
    /// When the ban starts (the last failure's time, or now).
    pub time: f64,
    /// Failures that led to it.
    pub failures: u32,
    /// The matched lines.
    pub matches: Vec<String>,
    /// What the filter captured (`user`, ...), for actions' `<F-*>` tags.
    pub fields: Vec<(String, String)>,
    /// When the ban ends (unix seconds), when the decision says so (the
    /// fleet's bans); otherwise the jail's `bantime` decides.
    pub until: Option<i64>,
}

/// Why a decision did not become a ban.
#[derive(Debug, Clone, PartialEq)]
pub enum Dropped {
    /// The id is banned in this jail already.
    AlreadyBanned,
    /// A ban of the jail's length, started then, would already be over
    /// (a `bantime` of 0, or failures logged long ago).
    AlreadyOver,
    /// The store could not tell the id's earlier bans.
    Store(String),
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::AlreadyBanned => f.write_str("already banned"),
            Dropped::AlreadyOver => f.write_str("its ban would already be over"),
            Dropped::Store(e) => f.write_str(e),
        }
    }
}

/// What became of a batch of decisions.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Bans now in force (recorded, or waiting to be, and applied).
    pub banned: Vec<BanRecord>,
    /// Ids not banned, with why.
    pub dropped: Vec<(String, Dropped)>,
}

/// A ban whose time is up but that an action failed to lift: its record
/// stays in the store until every action has lifted it.
#[derive(Debug, Clone)]
struct PendingUnban {
    record: BanRecord,
    /// The indices of the actions still to lift it.
    actions: Vec<usize>,
    /// Failed tries so far.
    attempts: u32,
    /// When to try again (unix seconds).
    next: f64,
}

/// The wait before the next try after `attempts` failed ones: 10 s,
/// doubling, at most 10 minutes. An unban is tried until it succeeds.
pub fn unban_backoff(attempts: u32) -> f64 {
    (10.0 * 2f64.powi(attempts.saturating_sub(1).min(16) as i32)).min(600.0)
}

/// Whether a periodic task planned for `next`, every `every` seconds, is
/// due at `now`. A `next` further away than one period means the clock
/// went back (by hours, say): the task is due rather than hours late.
pub fn is_due(now: f64, next: f64, every: f64) -> bool {
    now >= next || next - now > every
}

/// The ban `current` made longer by failures at `time` (fail2ban's ban
/// manager: a ban in force lasts at least `bantime` from its address's
/// latest failure), or `None` when it would not end later.
fn prolonged(current: &BanRecord, time: f64, bantime: i64) -> Option<BanRecord> {
    let end = end_of(current)?;
    let bantime = if bantime < 0 {
        -1
    } else {
        let new_end = (time.floor() as i64).saturating_add(bantime);
        if new_end <= end {
            return None;
        }
        new_end - current.time
    };
    Some(BanRecord { bantime, ..current.clone() })
}

/// Restored bans are put in force and applied this many at a time.
const RESTORE_CHUNK: usize = 10_000;

/// A ban's end, for the expiry order; `None` for a ban for ever.
fn end_of(r: &BanRecord) -> Option<i64> {
    (r.bantime >= 0).then(|| r.time.saturating_add(r.bantime))
}

/// The bans of one jail.
pub struct BanManager {
    jail: String,
    store: Arc<Mutex<Store>>,
    actions: JailActions,
    ban_time: BanTime,
    rng: fastrand::Rng,
    in_force: HashMap<String, BanRecord>,
    /// `(end, id)` of every ban in force with an end, earliest first.
    expiry: BTreeSet<(i64, String)>,
    /// Bans in force that the store could not record yet (disk full): they
    /// go into every later save, and no read position is saved without
    /// them, so a restart reads their lines again rather than losing them.
    unrecorded: Vec<BanRecord>,
    listing: Listing,
    total_banned: u64,
    /// Unbans that failed in some action, by id, waiting to be tried again.
    pending_unbans: BTreeMap<String, PendingUnban>,
    /// The jail's failure counters, as last told (`<jail.found>`,
    /// `<jail.found_total>`).
    found: (u32, u32),
    /// Ban counts and latest ban times read from the store for
    /// `failure_weight`, until the next change of this jail's bans.
    known: HashMap<String, (u32, Option<i64>)>,
}

/// What an action that exports `action-events` is told about a ban
/// besides its ticket: the address's history in the store and the jail's
/// counters, as fail2ban's merged and jail tags give them.
struct ContextSource<'m> {
    store: &'m Mutex<Store>,
    jail: &'m str,
    banned: u32,
    banned_total: u32,
    found: (u32, u32),
}

impl<'m> ContextSource<'m> {
    fn new(store: &'m Mutex<Store>, jail: &'m str, in_force: usize, total_banned: u64, found: (u32, u32)) -> Self {
        let banned = u32::try_from(in_force).unwrap_or(u32::MAX);
        let banned_total = u32::try_from(total_banned).unwrap_or(u32::MAX);
        ContextSource { store, jail, banned, banned_total, found }
    }

    fn context(&self, r: &BanRecord, kind: BanKind) -> BanContext {
        // One read of every jail's bans of the address serves both merges.
        let read = match self.store.lock() {
            Ok(store) => store.history(&r.id).map_err(|e| e.to_string()),
            Err(_) => Err("the ban store is poisoned".to_string()),
        };
        let mut bans = read.unwrap_or_else(|e| {
            tracing::warn!("[{}] {e}; the merged tags of {} hold this ban only", self.jail, r.id);
            Vec::new()
        });
        // A ban the store could not record yet is part of it all the same.
        if !bans.iter().any(|b| b.jail == r.jail && b.time == r.time) {
            bans.push(r.clone());
        }
        let merge = |bans: &mut dyn Iterator<Item = &BanRecord>| {
            let (mut failures, mut matches) = (0u32, Vec::new());
            for b in bans {
                failures = failures.saturating_add(b.failures);
                matches.extend(b.matches.iter().cloned());
            }
            (failures, matches)
        };
        let (ip_failures, ip_matches) = merge(&mut bans.iter());
        let (ip_jail_failures, ip_jail_matches) = merge(&mut bans.iter().filter(|b| b.jail == self.jail));
        BanContext {
            kind,
            ip_failures,
            ip_matches,
            ip_jail_failures,
            ip_jail_matches,
            jail_banned: self.banned,
            jail_banned_total: self.banned_total,
            jail_found: self.found.0,
            jail_found_total: self.found.1,
        }
    }
}

impl BanManager {
    /// The manager of `jail`'s bans, applied through `actions`, lasting as
    /// `ban_time` says.
    /// `listing` is kept up to date for `status`.
    pub fn new(
        jail: &str,
        store: Arc<Mutex<Store>>,
        actions: JailActions,
        ban_time: BanTime,
        listing: Listing,
    ) -> BanManager {
        BanManager {
            jail: jail.to_string(),
            store,
            actions,
            ban_time,
            rng: fastrand::Rng::new(),
            in_force: HashMap::new(),
            expiry: BTreeSet::new(),
            unrecorded: Vec::new(),
            listing,
            total_banned: 0,
            pending_unbans: BTreeMap::new(),
            found: (0, 0),
            known: HashMap::new(),
        }
    }

    /// How many failures towards `maxretry` one failure of `id` logged at
    /// `time` counts for, as fail2ban's observer weighs them under
    /// `bantime.increment`: an address banned `n` times before in this jail
    /// counts 2^n / 2 + 1 per failure (2, 3, 5, 9, ...), at most
    /// `maxretry`; one failure otherwise, and for a line from before its
    /// latest ban (read again). Without `bantime.increment`, always 1.
    pub fn failure_weight(&mut self, id: &str, time: f64, maxretry: u32) -> u32 {
        if self.ban_time.increment.is_none() {
            return 1;
        }
        if self.known.len() >= 65_536 {
            self.known.clear();
        }
        let (count, latest) = match self.known.get(id) {
            Some(known) => *known,
            None => {
                let read = match self.store.lock() {
                    Ok(store) => store.ban_summary(id, &self.jail).map_err(|e| e.to_string()),
                    Err(_) => Err("the ban store is poisoned".to_string()),
                };
                let known = read.unwrap_or_else(|e| {
                    tracing::warn!("[{}] {e}; {id}'s failures count once each", self.jail);
                    (0, None)
                });
                self.known.insert(id.to_string(), known);
                known
            }
        };
        if count == 0 || latest.is_some_and(|latest| time <= latest as f64) {
            return 1;
        }
        let weight = (1u64 << count.min(20)) / 2 + 1;
        u32::try_from(weight).unwrap_or(u32::MAX).min(maxretry.max(1))
    }

    /// Tell the manager the jail's failure counters (addresses counted,
    /// failures since start), for the actions' `<jail.found*>` tags.
    pub fn note_found(&mut self, current: usize, total: u64) {
        self.found = (u32::try_from(current).unwrap_or(u32::MAX), u32::try_from(total).unwrap_or(u32::MAX));
    }

    /// Apply `records` of one `kind` through the actions.
    fn apply(&mut self, records: &[BanRecord], kind: BanKind) {
        let BanManager { actions, in_force, store, jail, total_banned, found, .. } = self;
        let source = ContextSource::new(store, jail, in_force.len(), *total_banned, *found);
        let context_of = |r: &BanRecord, kind| source.context(r, kind);
        actions.ban(records, kind, || in_force.values().collect(), &context_of);
    }

    /// Start the actions and put the stored bans of this jail back in force.
    pub fn start(&mut self, now: f64) {
        self.actions.start();
        let stored = match self.store.lock() {
            Ok(store) => store.active_bans_of(&self.jail, now as i64),
            Err(_) => return,
        };
        match stored {
            Ok(bans) => {
                // In chunks: each chunk's records are freed before the next
                // is copied into force, which reuses their memory. All at
                // once, a million restored bans held two copies at the peak.
                let mut rest = bans.into_iter();
                loop {
                    let chunk: Vec<BanRecord> = rest.by_ref().take(RESTORE_CHUNK).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    for b in &chunk {
                        tracing::info!(
                            target: crate::BAN_TARGET,
                            jail = %self.jail,
                            event = "restore",
                            address = %b.id,
                            "[{}] Restore Ban {}",
                            self.jail,
                            b.id
                        );
                        self.put_in_force(b.clone());
                    }
                    self.apply(&chunk, BanKind::Restored);
                    self.list(&chunk);
                }
            }
            Err(e) => tracing::error!("[{}] could not read the bans to restore: {e}", self.jail),
        }
    }

    /// Save where reading stands (with any ban still unrecorded); true when
    /// saved.
    pub fn save_progress(&mut self, progress: &Progress) -> bool {
        self.record(&[], &[], progress)
    }

    /// Run every action's stop, after saving `progress`.
    pub fn stop(&mut self, progress: &Progress) {
        if !self.record(&[], &[], progress) && !self.unrecorded.is_empty() {
            tracing::error!(
                "[{}] stopping with {} ban(s) not recorded; their log lines will be read again at the next start",
                self.jail,
                self.unrecorded.len()
            );
        }
        let in_force: Vec<&BanRecord> = self.in_force.values().collect();
        self.actions.stop(&in_force);
    }

    /// Decide `decisions`, made from lines up to `progress`: each becomes a
    /// ban of the jail's length (which grows with the id's earlier bans
    /// under `bantime.increment`), recorded with `progress`, then applied.
    /// A ban already over, or an id banned already, is dropped.
    pub fn decide(&mut self, decisions: Vec<BanDecision>, progress: &Progress, now: f64) -> Outcome {
        let mut outcome = Outcome::default();
        let mut planned = Vec::new();
        let mut prolonged_bans = Vec::new();
        // Ids already planned or prolonged in this call: a storm decides
        // tens of thousands at once, and a scan of the lists per decision
        // was quadratic.
        let mut planned_ids = std::collections::HashSet::new();
        let mut prolonged_ids = std::collections::HashSet::new();
        // New bans per origin, for the metrics: (filter, manual, fleet).
        let mut by_origin = (0u64, 0u64, 0u64);
        {
            let Ok(store) = self.store.lock() else {
                outcome.dropped =
                    decisions.into_iter().map(|d| (d.id, Dropped::Store("the ban store is poisoned".into()))).collect();
                return outcome;
            };
            let overall = self.ban_time.increment.as_ref().is_some_and(|i| i.overalljails);
            for d in decisions {
                // A decision with its own end (the fleet's) prolongs to it.
                let length = d.until.map_or(self.ban_time.base, |until| until - d.time.min(now).floor() as i64);
                if let Some(current) = self.in_force.get(&d.id)
                    && let Some(longer) = prolonged(current, d.time.min(now), length)
                    && prolonged_ids.insert(d.id.clone())
                {
                    prolonged_bans.push(longer);
                }
                if self.in_force.contains_key(&d.id) || planned_ids.contains(&d.id) {
                    outcome.dropped.push((d.id, Dropped::AlreadyBanned));
                    continue;
                }
                let earlier = if self.ban_time.increment.is_some() {
                    match store.ban_count(&d.id, if overall { None } else { Some(&self.jail) }) {
                        Ok(n) => n,
                        Err(e) => {
                            outcome.dropped.push((d.id, Dropped::Store(e.to_string())));
                            continue;
                        }
                    }
                } else {
                    0
                };
                let record = BanRecord {
                    jail: self.jail.clone(),
                    id: d.id,
                    time: d.time.min(now).floor() as i64,
                    // `length` is the fleet's, when it gave an end.
                    bantime: match d.until {
                        Some(_) => length,
                        None => self.ban_time.seconds(earlier, self.rng.f64()),
                    },
                    bancount: earlier + 1,
                    failures: d.failures,
                    matches: d.matches,
                    fields: d.fields,
                    origin: d.origin,
                };
                if record.active_at(now as i64) {
                    match d.origin {
                        Origin::Failures => by_origin.0 += 1,
                        Origin::Manual => by_origin.1 += 1,
                        Origin::Fleet => by_origin.2 += 1,
                    }
                    planned_ids.insert(record.id.clone());
                    planned.push(record);
                } else {
                    outcome.dropped.push((record.id, Dropped::AlreadyOver));
                }
            }
        }
        if !self.record(&planned, &prolonged_bans, progress) {
            // The actions still act, since an attacker must be stopped even
            // when the disk is full; the record is retried with every save.
            if !planned.is_empty() {
                tracing::error!(
                    "[{}] {} ban(s) could not be recorded; applying them anyway and recording them when the store \
                     can be written (their log lines are read again after a restart until then)",
                    self.jail,
                    planned.len()
                );
            }
            if !prolonged_bans.is_empty() {
                tracing::error!(
                    "[{}] after a restart the {} ban(s) prolonged keep their earlier ends",
                    self.jail,
                    prolonged_bans.len()
                );
            }
        }
        // The lines go out in one write, before the actions run (which may
        // take seconds): a burst bans thousands.
        let held = crate::daemon::log_output::hold_lines();
        for r in &planned {
            tracing::info!(
                target: crate::BAN_TARGET,
                jail = %self.jail,
                event = "ban",
                address = %r.id,
                failures = r.failures,
                bantime = r.bantime,
                "[{}] Ban {}",
                self.jail,
                r.id
            );
            self.total_banned += 1;
            self.put_in_force(r.clone());
        }
        drop(held);
        let metrics = crate::metrics::global();
        metrics.banned(&self.jail, BanOrigin::Filter, by_origin.0);
        metrics.banned(&self.jail, BanOrigin::Manual, by_origin.1);
        metrics.banned(&self.jail, BanOrigin::Fleet, by_origin.2);
        self.apply(&planned, BanKind::Fresh);
        self.list(&planned);
        self.prolong(prolonged_bans);
        outcome.banned = planned;
        outcome
    }

    /// Make `longer` the bans in force (each a ban in force with a later
    /// end, recorded by `decide` with the new bans) and tell the actions
    /// (fail2ban's `actionprolong`).
    fn prolong(&mut self, longer: Vec<BanRecord>) {
        if longer.is_empty() {
            return;
        }
        let held = crate::daemon::log_output::hold_lines();
        for r in &longer {
            tracing::info!(
                target: crate::BAN_TARGET,
                jail = %self.jail,
                event = "prolong",
                address = %r.id,
                bantime = r.bantime,
                "[{}] {} already banned; ban prolonged to {}",
                self.jail,
                r.id,
                if r.bantime < 0 { "permanent".to_string() } else { format!("{} s", r.bantime) }
            );
            self.put_in_force(r.clone());
        }
        drop(held);
        self.apply(&longer, BanKind::Prolong);
        self.list(&longer);
    }

    /// Lift the ban of `id`, or every ban when `None`: from the firewall,
    /// then from the store (when it can be written; a ban the store still
    /// holds is lifted again at the next start). An action that fails to
    /// lift one is asked again later (see `retry_unbans`).
    pub fn lift(&mut self, id: Option<&str>, now: f64) -> Result<Vec<BanRecord>, String> {
        let lifted: Vec<BanRecord> = match id {
            Some(id) => match self.take(id) {
                Some(r) => vec![r],
                // An address inside a prefix ban lifts that prefix: the
                // admin asked for the address to get through.
                None => self.covering_prefix(id).and_then(|prefix| self.take(&prefix)).into_iter().collect(),
            },
            None => {
                let mut all: Vec<BanRecord> = self.in_force.drain().map(|(_, r)| r).collect();
                self.expiry.clear();
                all.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
                all
            }
        };
        self.lift_records(&lifted, now, BanOrigin::Manual, id.is_none()).map(|()| lifted)
    }

    /// Lift the fleet's ban of `id`, if the fleet banned it here (a ban of
    /// this host's own stands); the ban lifted. Its record stays in the
    /// history, as an expired ban's does.
    pub fn lift_fleet(&mut self, id: &str, now: f64) -> Result<Option<BanRecord>, String> {
        if self.in_force.get(id).is_none_or(|r| r.origin != Origin::Fleet) {
            return Ok(None);
        }
        let lifted: Vec<BanRecord> = self.take(id).into_iter().collect();
        self.lift_records(&lifted, now, BanOrigin::Expired, false).map(|()| lifted.into_iter().next())
    }

    /// Lift every ban whose time is up at `now`; the bans lifted.
    pub fn expire(&mut self, now: f64) -> Vec<BanRecord> {
        let now = now.floor() as i64;
        let mut due = Vec::new();
        while let Some((end, _)) = self.expiry.first() {
            if *end > now {
                break;
            }
            if let Some((_, id)) = self.expiry.pop_first()
                && let Some(r) = self.in_force.remove(&id)
            {
                due.push(r);
            }
        }
        if let Err(e) = self.lift_records(&due, now as f64, BanOrigin::Expired, false) {
            tracing::error!("[{}] could not lift expired bans: {e}", self.jail);
        }
        crate::jail::counter::shrink_if_sparse(&mut self.in_force);
        due
    }

    /// Try again to record bans the store refused earlier.
    pub fn retry_unrecorded(&mut self, progress: &Progress) {
        if !self.unrecorded.is_empty() {
            self.record(&[], &[], progress);
        }
    }

    /// Add a started action, given every ban in force (`set JAIL
    /// addaction`).
    pub fn add_action(&mut self, action: actions::JailAction) -> Result<(), String> {
        let BanManager { actions, in_force, store, jail, total_banned, found, .. } = self;
        let source = ContextSource::new(store, jail, in_force.len(), *total_banned, *found);
        actions.add(action, in_force.values().collect(), &|r, kind| source.context(r, kind))
    }

    /// Stop and drop an action (`set JAIL delaction`); unbans it still owed
    /// go with it.
    pub fn remove_action(&mut self, name: &str) -> Result<(), String> {
        let index = self.actions.remove(name)?;
        for pending in self.pending_unbans.values_mut() {
            pending.actions.retain(|a| *a != index);
            for a in pending.actions.iter_mut().filter(|a| **a > index) {
                *a -= 1;
            }
        }
        self.pending_unbans.retain(|_, p| !p.actions.is_empty());
        Ok(())
    }

    /// Tell the actions the configuration was read again and the jail kept.
    pub fn reload_actions(&mut self) {
        self.actions.reload();
    }

    /// The jail's actions, by name.
    pub fn action_names(&self) -> Vec<String> {
        self.actions.names()
    }

    /// Change the length of the bans made from now on (`set JAIL
    /// bantime` and `bantime.*`); bans in force keep theirs, as in fail2ban.
    pub fn set_ban_time(&mut self, ban_time: BanTime) {
        self.ban_time = ban_time;
    }

    /// Whether `id` is banned.
    pub fn is_banned(&self, id: &str) -> bool {
        self.in_force.contains_key(id)
    }

    /// How many bans are in force.
    pub fn count_in_force(&self) -> usize {
        self.in_force.len()
    }

    /// Bans made since the jail started (restored ones not included).
    pub fn total_banned(&self) -> u64 {
        self.total_banned
    }

    /// How many bans wait to be recorded.
    pub fn unrecorded(&self) -> usize {
        self.unrecorded.len()
    }

    fn put_in_force(&mut self, r: BanRecord) {
        self.known.remove(&r.id);
        // Banned again before a failed unban went through: the ban stands,
        // and the unban must not lift it later.
        self.pending_unbans.remove(&r.id);
        if let Some(end) = end_of(&r) {
            self.expiry.insert((end, r.id.clone()));
        }
        if let Some(old) = self.in_force.insert(r.id.clone(), r) {
            self.forget_order(&old);
            self.unlist(std::slice::from_ref(&old));
        }
    }

    /// Show `records` in `status`: once their actions have run, so that a
    /// ban shown is a ban in the firewall.
    fn list(&self, records: &[BanRecord]) {
        if let Ok(mut listing) = self.listing.lock() {
            for r in records {
                listing.insert((r.time, r.id.clone()), BanView::of(r));
            }
        }
    }

    /// Stop showing `records`: once their unbans have run.
    fn unlist(&self, records: &[BanRecord]) {
        if let Ok(mut listing) = self.listing.lock() {
            for r in records {
                listing.remove(&(r.time, r.id.clone()));
            }
        }
    }

    /// The prefix ban in force that holds the address `id`, if any.
    fn covering_prefix(&self, id: &str) -> Option<String> {
        let ip = id.parse::<std::net::IpAddr>().ok()?;
        self.in_force
            .keys()
            .filter(|k| k.contains('/'))
            .find(|k| crate::jail::Prefix::parse(k).is_some_and(|p| p.contains(ip)))
            .cloned()
    }

    fn take(&mut self, id: &str) -> Option<BanRecord> {
        let r = self.in_force.remove(id)?;
        self.forget_order(&r);
        Some(r)
    }

    /// Take `r` out of the expiry order.
    fn forget_order(&mut self, r: &BanRecord) {
        if let Some(end) = end_of(r) {
            self.expiry.remove(&(end, r.id.clone()));
        }
    }

    /// Lift `records` (`all`: every ban in force, which actions that can
    /// lift at once, with `actionflush`, do).
    fn lift_records(&mut self, records: &[BanRecord], now: f64, why: BanOrigin, all: bool) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        self.unrecorded.retain(|u| !records.iter().any(|l| l.id == u.id));
        for r in records {
            self.known.remove(&r.id);
        }
        for r in records {
            tracing::info!(
                target: crate::BAN_TARGET,
                jail = %self.jail,
                event = "unban",
                address = %r.id,
                "[{}] Unban {}",
                self.jail,
                r.id
            );
        }
        crate::metrics::global().unbanned(&self.jail, why, records.len() as u64);
        let failures = if all { self.actions.unban_all(records) } else { self.actions.unban(records, None) };
        self.unlist(records);
        let mut pending: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (action, ids) in &failures {
            for id in ids {
                pending.entry(id.as_str()).or_default().push(*action);
            }
        }
        for r in records.iter().filter(|r| pending.contains_key(r.id.as_str())) {
            let actions = pending[r.id.as_str()].clone();
            tracing::warn!(
                "[{}] {} stays recorded until its unban succeeds; trying again in {:.0} s",
                self.jail,
                r.id,
                unban_backoff(1)
            );
            self.pending_unbans.insert(
                r.id.clone(),
                PendingUnban { record: r.clone(), actions, attempts: 1, next: now + unban_backoff(1) },
            );
        }
        let done: Vec<&BanRecord> = records.iter().filter(|r| !pending.contains_key(r.id.as_str())).collect();
        // As fail2ban: an admin's unban also forgets the address's earlier
        // bans in this jail, so that under bantime.increment its next ban
        // counts as its first.
        self.forget_stored(&done, why == BanOrigin::Manual)
    }

    /// Take lifted bans out of the store (with their history when
    /// `with_history`).
    fn forget_stored(&self, done: &[&BanRecord], with_history: bool) -> Result<(), String> {
        if done.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = done.iter().map(|r| r.id.as_str()).collect();
        match self.store.lock() {
            Ok(mut store) => store
                .lift_many(&self.jail, &ids, with_history)
                .map_err(|e| format!("{e}; the ban(s) are lifted in the firewall all the same")),
            Err(_) => Err("the ban store is poisoned".to_string()),
        }
    }

    /// Try again the unbans that failed, each when its wait is over; a
    /// ban's record leaves the store once every action has lifted it.
    pub fn retry_unbans(&mut self, now: f64) {
        let due: Vec<String> = self
            .pending_unbans
            .iter()
            .filter(|(_, p)| is_due(now, p.next, unban_backoff(p.attempts)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(mut pending) = self.pending_unbans.remove(&id) else { continue };
            let failures = self.actions.unban(std::slice::from_ref(&pending.record), Some(&pending.actions));
            if failures.is_empty() {
                tracing::info!("[{}] {} lifted after {} failed attempt(s)", self.jail, id, pending.attempts);
                if let Err(e) = self.forget_stored(&[&pending.record], false) {
                    tracing::error!("[{}] {e}", self.jail);
                }
                continue;
            }
            pending.actions = failures.into_iter().map(|(action, _)| action).collect();
            pending.attempts += 1;
            let wait = unban_backoff(pending.attempts);
            pending.next = now + wait;
            tracing::warn!(
                "[{}] unban of {} failed {} times; trying again in {wait:.0} s",
                self.jail,
                id,
                pending.attempts
            );
            self.pending_unbans.insert(id, pending);
        }
    }

    /// Unbans waiting to be tried again.
    pub fn pending_unbans(&self) -> usize {
        self.pending_unbans.len()
    }

    /// Every action compares what it applied with what should be, and
    /// repairs the difference (see `JailActions::reconcile`).
    pub fn reconcile(&mut self) {
        let BanManager { actions, in_force, store, jail, total_banned, found, .. } = self;
        let source = ContextSource::new(store, jail, in_force.len(), *total_banned, *found);
        actions.reconcile(|| in_force.values().collect(), &|r, kind| source.context(r, kind));
    }

    /// Save `bans`, with every ban not recorded yet, the new ends of the
    /// bans `prolonged` and the read positions, in one transaction; on
    /// failure the bans wait for the next save. True when saved.
    fn record(&mut self, bans: &[BanRecord], prolonged: &[BanRecord], progress: &Progress) -> bool {
        let late = self.unrecorded.len();
        // Copies of the bans only when some wait already or the save fails:
        // a burst records thousands.
        if late > 0 {
            self.unrecorded.extend_from_slice(bans);
        }
        let all = if late > 0 { &self.unrecorded[..] } else { bans };
        let saved = match self.store.lock() {
            Ok(mut store) => store.record(&self.jail, all, prolonged, progress).map_err(|e| e.to_string()),
            Err(_) => Err("the ban store is poisoned".to_string()),
        };
        match saved {
            Ok(()) => {
                if late > 0 {
                    self.unrecorded.clear();
                    tracing::info!("[{}] {late} ban(s) recorded late", self.jail);
                }
                true
            }
            Err(e) => {
                tracing::error!("[{}] {e}", self.jail);
                if late == 0 {
                    self.unrecorded.extend_from_slice(bans);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
