//! A jail's actions, run over batches of bans: when a ban fails, the
//! action's `check` runs (it repairs what it can, as fail2ban's
//! actioncheck/actionrepair do) and the failed bans are tried once more;
//! when `check` reports an error, every ban in force is applied again. The
//! same `check` runs every `reconcile` seconds: the built-in firewall
//! actions compare their chain or sets with the bans they applied and
//! repair any drift. An unban that fails is reported per action, so that
//! only the actions that failed are asked again.

use crate::plugin::ActionInstance;
use crate::store::BanRecord;
use crate::wit::types::Ticket;
pub use crate::wit::{BanContext, BanKind};

/// How the manager tells a ban's context (its history and the jail's
/// counters), asked only for actions that export `action-events`.
pub type ContextOf<'c> = &'c dyn Fn(&BanRecord, BanKind) -> BanContext;

/// One action of a jail.
pub struct JailAction {
    /// Its name in the jail's `action` (`iptables-multiport`).
    pub name: String,
    /// The running component.
    pub instance: ActionInstance,
    /// `norestored`: skip bans restored at start (mail notifications).
    pub norestored: bool,
    /// Whether its bans must be lifted one by one before it stops (see
    /// `ActionDefinition::unbans_each_at_stop`).
    pub unban_each_at_stop: bool,
}

/// Every action of one jail.
pub struct JailActions {
    jail: String,
    actions: Vec<JailAction>,
}

/// The ticket an action gets for a ban.
pub fn ticket(r: &BanRecord) -> Ticket {
    Ticket {
        jail: r.jail.clone(),
        // The WIT calls the banned id `ip`, as fail2ban's `<ip>` tag does.
        ip: r.id.clone(),
        failures: r.failures,
        matches: r.matches.clone(),
        time: r.time,
        bantime: r.bantime,
        ban_count: r.bancount,
        fields: r.fields.clone(),
    }
}

/// Bans of one kind on their way to actions: tickets made once, contexts
/// made when the first action that wants them comes.
struct Applying<'r, 'c> {
    records: Vec<&'r BanRecord>,
    kind: BanKind,
    tickets: Vec<Ticket>,
    contexts: Option<Vec<BanContext>>,
    context_of: ContextOf<'c>,
}

impl<'r, 'c> Applying<'r, 'c> {
    fn new(records: Vec<&'r BanRecord>, kind: BanKind, context_of: ContextOf<'c>) -> Self {
        let tickets = records.iter().map(|r| ticket(r)).collect();
        Applying { records, kind, tickets, contexts: None, context_of }
    }

    /// Apply them through `instance`; the tickets that failed, with why.
    /// An action without `action-events` gets a plain `ban`, and nothing
    /// for a prolonged ban: it holds the ban until the host lifts it.
    fn run(&mut self, instance: &mut ActionInstance) -> Vec<(Ticket, String)> {
        if self.tickets.is_empty() {
            return Vec::new();
        }
        if !instance.is_evented() {
            if self.kind == BanKind::Prolong {
                return Vec::new();
            }
            return run(instance, &self.tickets, true);
        }
        let Applying { records, kind, context_of, .. } = self;
        let contexts = self.contexts.get_or_insert_with(|| records.iter().map(|r| context_of(r, *kind)).collect());
        let bans: Vec<(Ticket, BanContext)> = self.tickets.iter().cloned().zip(contexts.iter().cloned()).collect();
        match instance.apply(&bans) {
            Ok(results) => {
                self.tickets.iter().zip(results).filter_map(|(t, r)| r.err().map(|e| (t.clone(), e))).collect()
            }
            Err(e) => self.tickets.iter().map(|t| (t.clone(), e.to_string())).collect(),
        }
    }
}

/// Run one action over `tickets`; the tickets that failed, with why.
fn run(instance: &mut ActionInstance, tickets: &[Ticket], ban: bool) -> Vec<(Ticket, String)> {
    if tickets.is_empty() {
        return Vec::new();
    }
    let results = if ban { instance.ban(tickets) } else { instance.unban(tickets) };
    match results {
        Ok(results) => tickets.iter().zip(results).filter_map(|(t, r)| r.err().map(|e| (t.clone(), e))).collect(),
        Err(e) => tickets.iter().map(|t| (t.clone(), e.to_string())).collect(),
    }
}

fn report_failures(jail: &str, action: &str, verb: &str, failed: &[(Ticket, String)]) {
    // A batch that failed as a whole carries one message for every ticket:
    // say it once per run of equal messages, not ten thousand times.
    let mut i = 0;
    let mut groups = 0;
    while i < failed.len() {
        let (first, e) = &failed[i];
        let same = failed[i..].iter().take_while(|(_, other)| other == e).count();
        groups += 1;
        if groups > 20 {
            tracing::error!("[{jail}] action {action}: {} more failures to {verb} not shown", failed.len() - i);
            break;
        }
        if same > 1 {
            tracing::error!("[{jail}] action {action} failed to {verb} {} and {} more: {e}", first.ip, same - 1);
        } else {
            tracing::error!("[{jail}] action {action} failed to {verb} {}: {e}", first.ip);
        }
        i += same;
    }
}

impl JailActions {
    /// The actions of `jail`.
    pub fn new(jail: &str, actions: Vec<JailAction>) -> JailActions {
        JailActions { jail: jail.to_string(), actions }
    }

    /// Run every action's `start`; a failure is logged, and the jail goes
    /// on with what works.
    pub fn start(&mut self) {
        for a in &mut self.actions {
            if let Err(e) = a.instance.start() {
                tracing::error!("[{}] action {} failed to start: {e}", self.jail, a.name);
            }
        }
    }

    /// The names of the actions, in order.
    pub fn names(&self) -> Vec<String> {
        self.actions.iter().map(|a| a.name.clone()).collect()
    }

    /// Start `action` and give it every ban in force (fail2ban's runtime
    /// `addaction`); a start that fails is refused, and nothing is added.
    pub fn add(
        &mut self,
        mut action: JailAction,
        in_force: Vec<&BanRecord>,
        context_of: ContextOf,
    ) -> Result<(), String> {
        if self.actions.iter().any(|a| a.name == action.name) {
            return Err(format!("the jail {} has an action {} already", self.jail, action.name));
        }
        action.instance.start().map_err(|e| format!("action {} failed to start: {e}", action.name))?;
        let failed = Applying::new(in_force, BanKind::Reban, context_of).run(&mut action.instance);
        report_failures(&self.jail, &action.name, "ban", &failed);
        self.actions.push(action);
        Ok(())
    }

    /// Stop the action `name` and drop it (fail2ban's `delaction`); its
    /// index, so that work waiting for it can be forgotten.
    pub fn remove(&mut self, name: &str) -> Result<usize, String> {
        let index = self
            .actions
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| format!("the jail {} has no action {name}", self.jail))?;
        let mut action = self.actions.remove(index);
        if let Err(e) = action.instance.stop() {
            tracing::error!("[{}] action {name} failed to stop: {e}", self.jail);
        }
        Ok(index)
    }

    /// Run every action's `stop`, after lifting `in_force` through the
    /// actions that would otherwise leave them behind (fail2ban lifts a
    /// jail's bans when it stops; the next start restores them).
    pub fn stop(&mut self, in_force: &[&BanRecord]) {
        let tickets: Vec<Ticket> = in_force.iter().map(|r| ticket(r)).collect();
        for a in &mut self.actions {
            if a.unban_each_at_stop && !tickets.is_empty() {
                let failed = run(&mut a.instance, &tickets, false);
                report_failures(&self.jail, &a.name, "unban at stop", &failed);
            }
            if let Err(e) = a.instance.stop() {
                tracing::error!("[{}] action {} failed to stop: {e}", self.jail, a.name);
            }
        }
    }

    /// Lift `records` through the actions whose indices are `only` (every
    /// action when `None`); for each action that failed some, its index and
    /// the ids it failed.
    pub fn unban(&mut self, records: &[BanRecord], only: Option<&[usize]>) -> Vec<(usize, Vec<String>)> {
        if records.is_empty() {
            return Vec::new();
        }
        let tickets: Vec<Ticket> = records.iter().map(ticket).collect();
        let mut failures = Vec::new();
        for (index, a) in self.actions.iter_mut().enumerate() {
            if only.is_some_and(|only| !only.contains(&index)) {
                continue;
            }
            let failed = run(&mut a.instance, &tickets, false);
            if !failed.is_empty() {
                report_failures(&self.jail, &a.name, "unban", &failed);
                failures.push((index, failed.into_iter().map(|(t, _)| t.ip).collect()));
            }
        }
        failures
    }

    /// Compare every action's work with what should be and repair it: the
    /// action's `check` (the built-in firewall actions rebuild a structure
    /// that is gone, put back bans deleted behind their back and remove
    /// rules of bans the daemon does not hold, and log what they changed).
    /// An action whose check fails gets every ban in force again.
    pub fn reconcile<'a>(&mut self, in_force: impl Fn() -> Vec<&'a BanRecord>, context_of: ContextOf) {
        for a in &mut self.actions {
            if let Err(e) = a.instance.check() {
                tracing::warn!("[{}] action {}: {e}; applying every ban in force again", self.jail, a.name);
                let failed = Applying::new(in_force(), BanKind::Reban, context_of).run(&mut a.instance);
                report_failures(&self.jail, &a.name, "ban", &failed);
            }
        }
    }

    /// Tell every action the configuration was read again and its jail
    /// kept (fail2ban's `actionreload`); a failure is logged.
    pub fn reload(&mut self) {
        for a in &mut self.actions {
            if let Err(e) = a.instance.reload() {
                tracing::error!("[{}] action {} failed to reload: {e}", self.jail, a.name);
            }
        }
    }

    /// Lift every ban in force, `records`: at once through each action
    /// that can (fail2ban's `actionflush`), one by one through the others;
    /// for each action that failed some, its index and the ids it failed.
    pub fn unban_all(&mut self, records: &[BanRecord]) -> Vec<(usize, Vec<String>)> {
        if records.is_empty() {
            return Vec::new();
        }
        let mut one_by_one = Vec::new();
        for (index, a) in self.actions.iter_mut().enumerate() {
            match a.instance.flush() {
                Ok(true) => tracing::info!("[{}] Flush ticket(s) with {}", self.jail, a.name),
                Ok(false) => one_by_one.push(index),
                Err(e) => {
                    tracing::error!(
                        "[{}] action {} failed to flush: {e}; lifting its bans one by one",
                        self.jail,
                        a.name
                    );
                    one_by_one.push(index);
                }
            }
        }
        if one_by_one.is_empty() {
            return Vec::new();
        }
        self.unban(records, Some(&one_by_one))
    }

    /// Apply `records`, bans of one `kind`, through every action (a
    /// restored ban skips the actions with `norestored`); `in_force` gives
    /// every ban in force, for an action whose check failed.
    pub fn ban<'a>(
        &mut self,
        records: &[BanRecord],
        kind: BanKind,
        in_force: impl Fn() -> Vec<&'a BanRecord>,
        context_of: ContextOf,
    ) {
        if records.is_empty() {
            return;
        }
        let mut applying = Applying::new(records.iter().collect(), kind, context_of);
        for a in &mut self.actions {
            if kind == BanKind::Restored && a.norestored {
                continue;
            }
            let failed = applying.run(&mut a.instance);
            if failed.is_empty() {
                continue;
            }
            let failed_ids: Vec<&str> = failed.iter().map(|(t, _)| t.ip.as_str()).collect();
            let mut retry = match a.instance.check() {
                Ok(()) => Applying::new(
                    records.iter().filter(|r| failed_ids.contains(&r.id.as_str())).collect(),
                    kind,
                    context_of,
                ),
                Err(e) => {
                    tracing::warn!("[{}] action {}: {e}; applying every ban in force again", self.jail, a.name);
                    // Bans that failed just now keep their kind; the others
                    // in force are applied again.
                    let failed_now: Vec<&BanRecord> =
                        records.iter().filter(|r| failed_ids.contains(&r.id.as_str())).collect();
                    let others: Vec<&BanRecord> =
                        in_force().into_iter().filter(|r| !failed_ids.contains(&r.id.as_str())).collect();
                    let still = Applying::new(others, BanKind::Reban, context_of).run(&mut a.instance);
                    report_failures(&self.jail, &a.name, "ban", &still);
                    Applying::new(failed_now, kind, context_of)
                }
            };
            let still = retry.run(&mut a.instance);
            report_failures(&self.jail, &a.name, "ban", &still);
        }
    }
}
