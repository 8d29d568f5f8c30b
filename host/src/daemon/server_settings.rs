//! fail2ban's daemon-level `get` and `set`: loglevel, logtarget,
//! syslogsocket, dbfile, dbpurgeage, dbmaxmatches. A change lasts until the daemon
//! starts again, as in fail2ban (a reload keeps it too).

use std::sync::atomic::Ordering;

use serde_json::json;

use super::Daemon;
use crate::daemon::control::Reply;
use crate::daemon::settings::LogTarget;

/// The daemon-level keys of `get` and `set`.
pub const SERVER_KEYS: &[&str] = &["loglevel", "logtarget", "syslogsocket", "dbfile", "dbpurgeage", "dbmaxmatches"];

impl Daemon {
    pub(super) fn server_get(&self, key: &str) -> Reply {
        match key {
            "loglevel" => match self.log {
                Some(log) => Reply::ok(json!(log.level())),
                None => Reply::error("the daemon has no log of its own"),
            },
            "logtarget" => match self.log {
                Some(log) => Reply::ok(json!(log.output().target().name())),
                None => Reply::error("the daemon has no log of its own"),
            },
            "syslogsocket" => Reply::ok(json!(self.syslogsocket())),
            "dbfile" => Reply::ok(json!(self.db.display().to_string())),
            "dbpurgeage" => Reply::ok(json!(self.dbpurgeage.load(Ordering::Relaxed))),
            "dbmaxmatches" => match self.jail_context.store.lock() {
                Ok(store) => Reply::ok(json!(store.max_matches())),
                Err(_) => Reply::error("the ban store is poisoned"),
            },
            other => Reply::error(unknown(other)),
        }
    }

    pub(super) fn server_set(&self, key: &str, value: &str) -> Reply {
        let log = match (key, self.log) {
            ("loglevel" | "logtarget" | "syslogsocket", None) => {
                return Reply::error("the daemon has no log of its own");
            }
            (_, log) => log,
        };
        match (key, log) {
            ("loglevel", Some(log)) => match log.set_level(value) {
                Ok(level) => {
                    tracing::info!("loglevel set to {level} until the daemon starts again");
                    Reply::ok(json!(level))
                }
                Err(e) => Reply::error(e),
            },
            ("logtarget", Some(log)) => match LogTarget::parse(value, &self.syslogsocket()) {
                Ok(target) => self.switch_log(log, &target),
                Err((_, e)) => Reply::error(format!("Failed to change log target: {e}")),
            },
            ("syslogsocket", Some(log)) => match LogTarget::parse("SYSLOG", value) {
                Ok(target) => {
                    if let Ok(mut s) = self.syslogsocket.lock() {
                        *s = value.trim().to_string();
                    }
                    // Lines already going to syslog follow the new socket.
                    if matches!(log.output().target(), LogTarget::Syslog(_))
                        && let Err(e) = log.output().switch(&target)
                    {
                        return Reply::error(format!("Failed to change syslog socket: {e}"));
                    }
                    Reply::ok(json!(self.syslogsocket()))
                }
                Err((_, e)) => Reply::error(format!("Failed to change syslog socket: {e}")),
            },
            ("dbpurgeage", _) => match crate::config::values::parse_time(value) {
                Ok(age) => {
                    self.dbpurgeage.store(age, Ordering::Relaxed);
                    tracing::info!("dbpurgeage set to {age}s until the daemon starts again");
                    self.purge(age);
                    Reply::ok(json!(age))
                }
                Err(e) => Reply::error(format!("dbpurgeage {value:?}: {e}")),
            },
            ("dbmaxmatches", _) => match (value.trim().parse::<usize>(), self.jail_context.store.lock()) {
                (Ok(n), Ok(mut store)) => {
                    store.set_max_matches(n);
                    tracing::info!("dbmaxmatches set to {n} until the daemon starts again");
                    Reply::ok(json!(n))
                }
                (Err(_), _) => Reply::error(format!("dbmaxmatches {value:?}: give a number of lines, 0 or more")),
                (_, Err(_)) => Reply::error("the ban store is poisoned"),
            },
            ("dbfile", _) => Reply::error(
                "set dbfile: wasmban keeps its bans in wasmban.sqlite3 in its state directory (--state-dir); \
                 to move it, stop wasmban, move the file and start it with the new --state-dir",
            ),
            (other, _) => Reply::error(unknown(other)),
        }
    }

    fn switch_log(&self, log: &crate::daemon::logging::LogControl, target: &LogTarget) -> Reply {
        let before = log.output().target().name();
        match log.output().switch(target) {
            Ok(()) => {
                tracing::info!("logtarget changed from {before} to {} until the daemon starts again", target.name());
                Reply::ok(json!(target.name()))
            }
            Err(e) => Reply::error(format!("Failed to change log target: {e}")),
        }
    }

    fn syslogsocket(&self) -> String {
        self.syslogsocket.lock().map(|s| s.clone()).unwrap_or_else(|_| "auto".into())
    }
}

fn unknown(key: &str) -> String {
    format!("Invalid command {key:?}; the daemon's settings are {}", SERVER_KEYS.join(", "))
}
