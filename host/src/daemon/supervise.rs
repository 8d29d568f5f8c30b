//! What the daemon tells the outside while it runs: systemd (readiness, a
//! status line, the watchdog), Prometheus (the metrics endpoint) and
//! CrowdSec's bouncers (the bans in force). All read what the jails
//! publish and never wait on a jail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::daemon::jail_thread::monotonic_ms;
use crate::daemon::notify;
use crate::daemon::status::JailStatus;

/// How often readiness is looked at while it is due.
const READY_POLL: Duration = Duration::from_millis(50);
/// How often the status line is brought up to date.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// A one-line summary for systemd's `STATUS=` (`systemctl status`).
pub fn summary(jails: &[JailStatus]) -> String {
    let running = jails.iter().filter(|s| s.running).count();
    let failed: Vec<&str> = jails.iter().filter(|s| s.problem.is_some()).map(|s| s.jail.as_str()).collect();
    let bans: usize = jails.iter().map(|s| s.currently_banned).sum();
    let lines: u64 = jails.iter().map(|s| s.lines).sum();
    let mut text = format!("{running} jail(s) protecting, {bans} ban(s) in force, {lines} line(s) read");
    if !failed.is_empty() {
        text.push_str(&format!("; failed: {}", failed.join(", ")));
    }
    text
}

/// Whether every jail has either started or failed.
pub fn settled(jails: &[JailStatus]) -> bool {
    jails.iter().all(|s| s.running || s.problem.is_some())
}

impl Daemon {
    /// Every jail's status as last published (no ban lists).
    pub(crate) fn statuses(&self) -> Vec<JailStatus> {
        self.jails.lock().map(|m| m.values().map(|h| h.counters()).collect()).unwrap_or_default()
    }

    /// Every jail's bans in force, for bouncers.
    pub(crate) fn ban_snapshot(&self) -> crate::lapi::decisions::Snapshot {
        let changing = self.changing_jails.load(Ordering::SeqCst) > 0;
        let jails = self
            .jails
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(name, h)| crate::lapi::decisions::JailBans {
                        jail: name.clone(),
                        running: h.counters().running,
                        bans: h.banned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Read again after the jails: a reload that began meanwhile may
        // have taken some away.
        let settled = !changing && self.changing_jails.load(Ordering::SeqCst) == 0;
        crate::lapi::decisions::Snapshot { settled, jails }
    }

    /// Bind the bouncers' API and serve it on its own task; an address
    /// that cannot be bound is an error in the log, not a stop.
    pub(crate) async fn serve_lapi(
        self: Arc<Self>,
        settings: &crate::lapi::LapiSettings,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let listen = settings.listen;
        let keys = crate::lapi::keys::KeyRing::new(crate::lapi::keys_path(settings.keys.as_ref(), &self.state_dir));
        match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => {
                match keys.count() {
                    0 => tracing::warn!(
                        "[lapi] serving bouncers at http://{listen}/, but {} lets none in yet: \
                         `wasmban bouncers add NAME` makes a key",
                        keys.path().display()
                    ),
                    n => tracing::info!("[lapi] serving {n} bouncer(s) at http://{listen}/"),
                }
                let clock = self.jail_context.clock.clone();
                let source: crate::lapi::Source = Arc::new(move || self.ban_snapshot());
                let lapi = Arc::new(crate::lapi::Lapi::new(keys, source, clock));
                Some(tokio::spawn(crate::lapi::http::serve(listener, lapi)))
            }
            Err(e) => {
                tracing::error!(
                    "[lapi] listen = {listen}: {e}; bouncers are not served (free the port or change listen in \
                     wasmban.local, then restart)"
                );
                None
            }
        }
    }

    /// Bind the metrics endpoint and serve it on its own task; an address
    /// that cannot be bound is an error in the log, not a stop: the jails
    /// protect all the same.
    pub(crate) async fn serve_metrics(self: Arc<Self>, listen: SocketAddr) -> Option<tokio::task::JoinHandle<()>> {
        match crate::metrics::http::bind(&listen.to_string()).await {
            Ok(listener) => {
                tracing::info!("metrics at http://{listen}{}", crate::metrics::http::PATH);
                let render: crate::metrics::http::Render =
                    Arc::new(move || crate::metrics::global().render(&self.statuses()));
                Some(tokio::spawn(crate::metrics::http::serve(listener, render)))
            }
            Err(e) => {
                tracing::error!(
                    "[metrics] listen = {listen}: {e}; no metrics are served (free the port or change listen in \
                     wasmban.local, then restart)"
                );
                None
            }
        }
    }

    /// Tell systemd when the daemon is ready, how it is doing, and, while
    /// every running jail's loop turns, that it is alive.
    pub(crate) async fn supervise(self: Arc<Self>, poll_interval: Duration) {
        let Some(notifier) = &self.notifier else { return };
        // A jail's loop turns at least once per poll interval.
        let stall_limit = notifier.watchdog.map(|w| w.max(poll_interval * 3));
        let mut last_status = String::new();
        let mut last_status_at = Instant::now();
        let mut last_ping = Instant::now();
        let mut stalled_before: Vec<String> = Vec::new();
        loop {
            let ready_due = self.ready_due.load(Ordering::Relaxed);
            // One look at the jails per turn: their status, and when each
            // running one last turned.
            let (jails, turns): (Vec<JailStatus>, Vec<(String, u64)>) = match self.jails.lock() {
                Ok(map) => {
                    let jails: Vec<JailStatus> = map.values().map(|h| h.counters()).collect();
                    let turns = map
                        .iter()
                        .zip(&jails)
                        .filter(|(_, status)| status.running)
                        .map(|((name, h), _)| (name.clone(), h.last_turn_ms()))
                        .collect();
                    (jails, turns)
                }
                Err(_) => Default::default(),
            };
            if ready_due && settled(&jails) {
                self.ready_due.store(false, Ordering::Relaxed);
                last_status = summary(&jails);
                last_status_at = Instant::now();
                notifier.send(&format!("READY=1\nSTATUS={last_status}"));
            } else if !ready_due && last_status_at.elapsed() >= STATUS_EVERY {
                let now = summary(&jails);
                if now != last_status {
                    notifier.send(&format!("STATUS={now}"));
                    last_status = now;
                }
                last_status_at = Instant::now();
            }
            if let (Some(watchdog), Some(limit)) = (notifier.watchdog, stall_limit)
                && last_ping.elapsed() >= watchdog / 2
            {
                let stalled = notify::stalled(&turns, monotonic_ms(), limit);
                if stalled.is_empty() {
                    notifier.send("WATCHDOG=1");
                    last_ping = Instant::now();
                } else if stalled != stalled_before {
                    tracing::error!(
                        "jail(s) {} made no progress for over {} s: the watchdog is no longer fed, and systemd \
                         will restart wasmban",
                        stalled.join(", "),
                        limit.as_secs()
                    );
                }
                stalled_before = stalled;
            }
            let pause = if self.ready_due.load(Ordering::Relaxed) {
                READY_POLL
            } else {
                notifier.watchdog.map_or(STATUS_EVERY, |w| (w / 4).clamp(READY_POLL, STATUS_EVERY))
            };
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(name: &str, running: bool, problem: Option<&str>, bans: usize) -> JailStatus {
        JailStatus {
            jail: name.into(),
            running,
            problem: problem.map(str::to_string),
            currently_banned: bans,
            lines: 10,
            ..JailStatus::default()
        }
    }

    #[test]
    fn ready_waits_for_every_jail_and_the_status_names_failures() {
        let starting = [jail("sshd", true, None, 2), jail("web", false, None, 0)];
        assert!(!settled(&starting));
        let done = [jail("sshd", true, None, 2), jail("web", false, Some("no filter"), 0)];
        assert!(settled(&done));
        assert_eq!(summary(&done), "1 jail(s) protecting, 2 ban(s) in force, 20 line(s) read; failed: web");
    }
}
