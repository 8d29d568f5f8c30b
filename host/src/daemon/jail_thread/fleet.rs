//! A jail's side of the fleet: its own bans go out (`fleet = share` or
//! `both`), the fleet's come in (`receive` or `both`) as bans of origin
//! `fleet`, which the jail's `ignoreip` can still refuse.

use super::RunningJail;
use crate::bans::{BanDecision, Origin};
use crate::fleet::Outgoing;
use crate::store::BanRecord;

impl RunningJail {
    /// Publish the jail's new bans (never the fleet's own, which would
    /// echo).
    pub(super) fn share_bans(&self, records: &[BanRecord]) {
        let Some(outbox) = self.fleet_outbox.as_ref().filter(|_| self.config.fleet.shares()) else { return };
        for r in records.iter().filter(|r| r.origin != Origin::Fleet) {
            let _ = outbox.send(Outgoing::Banned { jail: self.name.clone(), record: r.clone() });
        }
    }

    /// Publish that these bans were lifted before their time.
    pub(super) fn share_lifts(&self, records: &[BanRecord], now: f64) {
        let Some(outbox) = self.fleet_outbox.as_ref().filter(|_| self.config.fleet.shares()) else { return };
        for r in records.iter().filter(|r| r.origin != Origin::Fleet) {
            let _ = outbox.send(Outgoing::Lifted { jail: self.name.clone(), record: r.clone(), at: now as i64 });
        }
    }

    /// Ban each `(id, until, origins)` for the fleet, in one decision
    /// (one store commit). An id banned here already is still decided:
    /// the fleet's later end prolongs its ban.
    pub(super) fn fleet_bans(&mut self, bans: Vec<(String, i64, String)>) {
        if !self.config.fleet.receives() {
            return;
        }
        let now = self.clock.now();
        let mut decisions = Vec::with_capacity(bans.len());
        for (id, until, origins) in bans {
            if let Some(prefix) = crate::jail::Prefix::parse(&id)
                && self.config.ignoreip.overlaps(&prefix)
            {
                tracing::info!("[{}] the fleet's ban of {id} is not applied: it is in the jail's ignoreip", self.name);
                continue;
            }
            decisions.push(BanDecision {
                id,
                origin: Origin::Fleet,
                time: now,
                failures: 0,
                matches: Vec::new(),
                fields: vec![("fleet".into(), origins)],
                until: Some(until),
            });
        }
        let progress = self.progress.clone();
        let _held = crate::daemon::log_output::hold_lines();
        self.decide(decisions, &progress, now);
    }

    /// Lift the fleet's ban of `id` (a ban of the jail's own stands).
    pub(super) fn fleet_lift(&mut self, id: &str) -> Result<bool, String> {
        self.bans.lift_fleet(id, self.clock.now()).map(|r| r.is_some())
    }
}
