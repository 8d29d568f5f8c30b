//! The daemon's side of the fleet: start its task, and carry what it
//! decides to the jails that receive.

use std::sync::Arc;

use crate::daemon::Daemon;
use crate::daemon::control::Reply;
use crate::daemon::jail_thread::JailCommand;
use crate::fleet::Outgoing;
use crate::fleet::client::{Apply, Fleet};
use crate::fleet::policy::Change;
use crate::fleet::settings::FleetSettings;

impl Daemon {
    /// Start the fleet's task; `None` (and the reason in the log) when
    /// this host has no signing key.
    pub(crate) fn start_fleet(
        self: Arc<Self>,
        settings: FleetSettings,
        inbox: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let key = match crate::fleet::load_key(&crate::fleet::key_path(&self.state_dir)) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!("[fleet] {e:#}; bans are not shared or received, the jails protect this host alone");
                return None;
            }
        };
        let weak = Arc::downgrade(&self);
        let apply: Apply = Arc::new(move |change| {
            if let Some(daemon) = weak.upgrade() {
                daemon.apply_fleet(change);
            }
        });
        let store = self.jail_context.store.clone();
        let clock = self.jail_context.clock.clone();
        let name = settings.name.clone();
        let fleet = match Fleet::new(settings, key, store, clock, apply) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                tracing::error!("{e:#}; bans are not shared or received");
                return None;
            }
        };
        let _ = self.fleet.set(fleet.clone());
        tracing::info!("[fleet] this host is {name}");
        Some(tokio::spawn(crate::fleet::client::run(fleet, inbox)))
    }

    /// Answer a fleet request with `answer`, or say there is no fleet.
    pub(crate) fn with_fleet(&self, answer: impl FnOnce(&Fleet) -> serde_json::Value) -> Reply {
        match self.fleet.get() {
            Some(f) => Reply::ok(answer(f)),
            None => Reply::error("this daemon has no fleet: set [fleet] servers and name in wasmban.local"),
        }
    }

    /// Ban and lift in every jail with `fleet = receive` or `both`, one
    /// command per jail for the whole batch.
    fn apply_fleet(&self, changes: Vec<Change>) {
        let mut bans = Vec::new();
        let mut lifts = Vec::new();
        for change in changes {
            match change {
                Change::Ban { network, end, origins } => {
                    let origins = origins.iter().map(|(o, j)| format!("{o}/{j}")).collect::<Vec<_>>().join(", ");
                    bans.push((network.to_string(), end, origins));
                }
                Change::Lift { network } => lifts.push(network.to_string()),
            }
        }
        let Ok(jails) = self.jails.lock() else { return };
        for handle in jails.values().filter(|h| h.config().fleet.receives()) {
            handle.send(JailCommand::Fleet { bans: bans.clone(), lifts: lifts.clone() });
        }
    }
}
