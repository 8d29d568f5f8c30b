//! systemd's notify protocol (`Type=notify`): datagrams of `KEY=value`
//! lines to the socket in `$NOTIFY_SOCKET`. The daemon says `READY=1`
//! once every jail is protecting (or has failed, and says so in
//! `STATUS=`), `RELOADING=1` while it reloads, a one-line `STATUS=`
//! summary as it changes, and `WATCHDOG=1` only while every running jail's
//! loop keeps turning, so that a jail stuck for good gets the service
//! restarted rather than silently unprotected.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The connection to the service manager, when started by one.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `WatchdogSec=`, when set for this process.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    /// Read `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (for this pid only) and
    /// take them out of the environment, so that programs the actions run
    /// do not talk to the service manager in the daemon's name.
    ///
    /// # Safety
    /// Changes the environment: call it before any other thread runs.
    pub unsafe fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let watchdog_usec = std::env::var("WATCHDOG_USEC").ok();
        let watchdog_pid = std::env::var("WATCHDOG_PID").ok();
        // SAFETY: the caller guarantees no other thread reads the
        // environment now.
        unsafe {
            std::env::remove_var("NOTIFY_SOCKET");
            std::env::remove_var("WATCHDOG_USEC");
            std::env::remove_var("WATCHDOG_PID");
        }
        let for_us = watchdog_pid.is_none_or(|p| p.trim() == std::process::id().to_string());
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        match Notifier::connect(&path.to_string_lossy(), watchdog) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET {}: {e}; systemd will not hear that wasmban is ready", path.display());
                None
            }
        }
    }

    /// A notifier for the socket at `path` (`@name` for an abstract one).
    pub fn connect(path: &str, watchdog: Option<Duration>) -> std::io::Result<Notifier> {
        let address = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, address, watchdog })
    }

    /// Send `state` (newline-separated assignments). A lost message is
    /// logged, never fatal: the daemon protects whether systemd hears it
    /// or not.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            tracing::warn!("telling systemd {:?}: {e}", state.lines().next().unwrap_or(""));
        }
    }

    /// `RELOADING=1`, with the monotonic time systemd's `notify-reload`
    /// wants beside it.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }
}

/// CLOCK_MONOTONIC in microseconds.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// The jails whose loop has not turned for longer than `limit` at `now`
/// (both in [`crate::daemon::jail_thread::monotonic_ms`]); `turns` holds
/// the running jails with their last turn.
pub fn stalled(turns: &[(String, u64)], now_ms: u64, limit: Duration) -> Vec<String> {
    let limit = limit.as_millis() as u64;
    turns.iter().filter(|(_, last)| now_ms.saturating_sub(*last) > limit).map(|(name, _)| name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_socket_by_path_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::connect(path.to_str().unwrap(), None).unwrap().send("READY=1\nSTATUS=ok");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("wasmban-notify-test-{}", std::process::id());
        let abstract_listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = Notifier::connect(&format!("@{name}"), None).unwrap();
        n.reloading();
        let got = abstract_listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..got]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
    }

    #[test]
    fn a_jail_whose_loop_stopped_turning_is_named() {
        let turns = vec![("sshd".to_string(), 9_000), ("stuck".to_string(), 1_000)];
        assert_eq!(stalled(&turns, 10_000, Duration::from_secs(5)), vec!["stuck".to_string()]);
        assert!(stalled(&turns, 10_000, Duration::from_secs(10)).is_empty());
    }
}
