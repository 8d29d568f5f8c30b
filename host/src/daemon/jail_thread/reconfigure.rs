//! A running jail changed in place by fail2ban's runtime `set`: only the
//! part a key touches is rebuilt (a reader of the jail's own with a new
//! filter instance or source, new tracker settings), so failures being
//! counted and bans in force stay as they are. Everything new is built
//! before anything old is dropped: a change that fails leaves the jail as
//! it was.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::RunningJail;
use crate::config::jail::Jail;
use crate::daemon::assemble::{self, FilterPlan, plan_filter};
use crate::daemon::jail_set::{self, Touches};
use crate::daemon::shared_read::Subscription;
use crate::jail::ids::IdPolicy;
use crate::plugin::Registry;
use crate::wit::types::Failure;

impl RunningJail {
    /// `set JAIL KEY ARGS...`: the answer fail2ban's server gives.
    pub(super) fn set(&mut self, key: &str, args: &[String]) -> Result<Value, String> {
        match key {
            "idle" => return self.set_idle(args),
            "attempt" => return self.attempt(args),
            "addaction" => return self.add_action(args),
            "delaction" => return self.del_action(args),
            _ => {}
        }
        let (next, touches) = jail_set::edit(&self.config, key, args)?;
        match touches {
            Touches::Options => self.take_options(&next)?,
            Touches::Filter => self.take_filter(&next)?,
        }
        self.config = next;
        self.publish_config();
        tracing::info!("[{}] set {key} {}: in force until the next reload", self.name, args.join(" "));
        jail_set::get(&self.config, &self.reading.view().files, &[], self.idle, jail_set::answered_by(key))
    }

    fn set_idle(&mut self, args: &[String]) -> Result<Value, String> {
        self.idle = match args {
            [v] if v == "on" => true,
            [v] if v == "off" => false,
            _ => return Err("Invalid idle option, must be 'on' or 'off'".into()),
        };
        if self.idle && self.reading.jails() > 1 {
            // Its lines are to wait for it, not hold up the other jails.
            let plan = plan_filter(&self.config, &self.runtime, &Registry::new(Some(self.plugin_dir.clone())))?;
            self.read_alone(&plan, &self.config.clone())?;
        }
        self.shared.idle.store(self.idle, Ordering::Relaxed);
        tracing::info!("[{}] idle {}", self.name, if self.idle { "on: lines wait unread" } else { "off" });
        Ok(json!(self.idle))
    }

    /// `set JAIL attempt IP [MATCH...]`: failures of `IP` now, one per
    /// match (one without matches), counted as the filter's would be.
    fn attempt(&mut self, args: &[String]) -> Result<Value, String> {
        let Some((host, matches)) = args.split_first() else {
            return Err(format!("set {} attempt takes an address and, optionally, the lines to record", self.name));
        };
        let failure = |matches: Vec<String>| Failure {
            line: 0,
            host: host.clone(),
            time: None,
            rule: 0,
            fields: Vec::new(),
            matches,
        };
        let now = self.clock.now();
        let failures = if matches.is_empty() {
            vec![(failure(Vec::new()), now)]
        } else {
            matches.iter().map(|m| (failure(vec![m.clone()]), now)).collect()
        };
        tracing::info!("[{}] Attempt {host}", self.name);
        let decisions = self.judge(&failures, now);
        let progress = self.progress.clone();
        let outcome = self.decide(decisions, &progress, now);
        self.settle(&outcome);
        Ok(json!(1))
    }

    /// `set JAIL addaction NAME[params]`: the action.d file NAME, resolved
    /// as a line of the jail's `action` would be, started and given every
    /// ban in force.
    fn add_action(&mut self, args: &[String]) -> Result<Value, String> {
        let [text] = args else {
            return Err(format!(
                "set {} addaction NAME[key=value,...]: wasmban adds actions from action.d (a Python action \
                 is built into a component and named by `plugin =` in an action.d file: docs/plugins.md)",
                self.name
            ));
        };
        let (reference, def) = self.config.resolve_action(&self.confdir, text)?;
        let registry = Registry::new(Some(self.plugin_dir.clone()));
        let action = assemble::action(&self.name, &reference, &def, &self.runtime, &registry)
            .map_err(|problem| problem.message().to_string())?;
        self.bans.add_action(action)?;
        let name = reference.name.clone();
        self.config.actions.push((reference, def));
        self.publish_config();
        tracing::info!("[{}] action {name} added until the next reload", self.name);
        Ok(json!(name))
    }

    /// `set JAIL delaction NAME`: the action stops (its bans go with it)
    /// and leaves the jail.
    fn del_action(&mut self, args: &[String]) -> Result<Value, String> {
        let [name] = args else { return Err(format!("set {} delaction NAME", self.name)) };
        self.bans.remove_action(name)?;
        self.config.actions.retain(|(r, _)| &r.name != name);
        self.publish_config();
        tracing::info!("[{}] action {name} removed until the next reload", self.name);
        Ok(Value::Null)
    }

    fn publish_config(&self) {
        if let Ok(mut shared) = self.shared.config.lock() {
            *shared = Arc::new(self.config.clone());
        }
        self.shared.edited.store(true, Ordering::Relaxed);
    }

    fn take_options(&mut self, next: &Jail) -> Result<(), String> {
        if next.logpath != self.config.logpath {
            let plan = plan_filter(next, &self.runtime, &Registry::new(Some(self.plugin_dir.clone())))?;
            self.read_alone(&plan, next)?;
        }
        self.tracker.reconfigure(assemble::tracker_settings(next));
        let usedns = assemble::usedns(next)?;
        if usedns != assemble::usedns(&self.config)? {
            self.ids = IdPolicy::new(usedns);
        }
        self.bans.set_ban_time(next.ban_time.clone());
        Ok(())
    }

    fn take_filter(&mut self, next: &Jail) -> Result<(), String> {
        let plan = plan_filter(next, &self.runtime, &Registry::new(Some(self.plugin_dir.clone())))?;
        self.read_alone(&plan, next)
    }

    /// Read with a reader of the jail's own, opened on `plan` for `jail`,
    /// from where the jail's reading stands: files followed before keep
    /// their positions, files added start as their entry says. Batches
    /// the shared reader had read for the jail are read again.
    fn read_alone(&mut self, plan: &FilterPlan, jail: &Jail) -> Result<(), String> {
        let (mut saved, journal) = match self.store.lock() {
            Ok(store) => {
                (store.saved_positions().unwrap_or_default(), store.load_journal_cursor(&self.name).ok().flatten())
            }
            Err(_) => Default::default(),
        };
        saved.extend(self.progress.files.iter().cloned());
        let journal = self.progress.journal.clone().or(journal);
        let (reading, started) =
            Subscription::open_alone(self.wake.clone(), plan, plan.maker_for(jail), saved, journal)?;
        self.reading = reading;
        if self.progress == Default::default() {
            self.progress = started;
        }
        self.source_spec = plan.source.clone();
        Ok(())
    }
}
