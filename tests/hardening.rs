//! What an attacker on the machine, or a hostile environment, tried
//! against the daemon: a state directory someone else owns, files where
//! sockets or logs should be, host names in log lines, a full disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::daemon::{Daemon, append, failure, iso, tree};

use crate::util::daemon::BIN;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run `wasmban server` on `root`'s tree with `state` as the state
/// directory, expecting it to refuse to start; its stderr.
fn server_refuses(root: &Path, state: &Path, socket: &Path) -> String {
    let mut child = Command::new(BIN)
        .args(["-c", root.join("conf").to_str().unwrap()])
        .args(["-s", socket.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .arg("server")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the daemon started where it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[test]
fn a_state_directory_others_can_write_or_own_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let state = root.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = server_refuses(root, &state, &root.join("sock"));
    assert!(err.contains("can be written by group or others") && err.contains("chmod 700"), "{err}");
    assert!(!state.join("cache").exists(), "nothing may be written there");
    if !is_root() {
        crate::util::skipped!("the other-owner half needs root to chown the directory");
        return;
    }
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let err = server_refuses(root, &state, &root.join("sock"));
    assert!(err.contains("owned by uid 65534"), "{err}");
}

#[test]
fn the_server_never_deletes_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let precious = root.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let err = server_refuses(root, &root.join("state"), &precious);
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

#[test]
fn a_fifo_at_the_log_path_neither_hangs_the_jail_nor_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let log = std::ffi::CString::new(root.join("auth.log").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in this test's own directory.
    assert_eq!(unsafe { libc::mkfifo(log.as_ptr(), 0o600) }, 0);
    let d = Daemon::start_ready(root, None);
    let (ok, out) = d.client(&["ban", "sshd", "192.0.2.77"]);
    assert!(ok, "{out}");
    d.wait_for("the FIFO to be reported", || d.log().contains("a FIFO, not a regular file"));
    // Once, not at every poll.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.log().matches("a FIFO, not a regular file").count(), 1, "{}", d.log());
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());
}

fn banned_ips(d: &Daemon) -> Vec<String> {
    let (ok, out) = d.client(&["banned", "--json"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut ips: Vec<String> =
        v["sshd"].as_array().unwrap().iter().map(|b| b["ip"].as_str().unwrap().to_string()).collect();
    ips.sort();
    ips
}

#[test]
fn manual_bans_refuse_loopback_and_own_addresses_and_store_normalised_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let d = Daemon::start_ready(root, None);
    for ip in ["127.0.0.1", "::1", "255.255.255.255", "::ffff:127.0.0.1"] {
        let (ok, out) = d.client(&["ban", "sshd", ip]);
        assert!(!ok && out.contains("--force"), "{ip}: {out}");
    }
    let (ok, out) = d.client(&["ban", "sshd", "::ffff:192.0.2.1"]);
    assert!(ok, "{out}");
    let (ok, out) = d.client(&["ban", "sshd", "--force", "127.0.0.2"]);
    assert!(ok, "{out}");
    assert_eq!(banned_ips(&d), ["127.0.0.2", "192.0.2.1"]);
    let (ok, out) = d.client(&["unban", "::ffff:192.0.2.1"]);
    assert!(ok, "{out}");
    assert_eq!(banned_ips(&d), ["127.0.0.2"]);
}

#[test]
fn a_host_name_in_a_log_line_is_resolved_and_meets_ignoreip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\nignoreip = 127.0.0.1/8 ::1\n");
    let d = Daemon::start_ready(root, None);
    let name = format!("{} web sshd[7]: Failed password for root from localhost port 22 ssh2\n", iso(0));
    let sneaky = format!("{} web sshd[7]: Failed password for root from -j.ACCEPT port 22 ssh2\n", iso(0));
    append(&root.join("auth.log"), &format!("{name}{sneaky}{}", failure("192.0.2.50")));
    d.wait_for("the real attacker's ban", || banned_ips(&d) == ["192.0.2.50"]);
    d.wait_for("localhost to be resolved and ignored", || d.log().contains("by ignoreip"));
    assert_eq!(banned_ips(&d), ["192.0.2.50"], "{}", d.log());
    assert!(!d.log().contains("Ban localhost") && !d.log().contains("Ban -j"), "{}", d.log());
}

#[test]
fn with_usedns_no_a_host_name_is_not_banned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\nusedns = no\n");
    let d = Daemon::start_ready(root, None);
    let line = format!("{} web sshd[7]: Failed password for root from attacker.example port 22 ssh2\n", iso(0));
    append(&root.join("auth.log"), &format!("{line}{}", failure("192.0.2.51")));
    d.wait_for("the address's ban", || banned_ips(&d) == ["192.0.2.51"]);
    d.wait_for("the name to be refused", || d.log().contains("usedns = no"));
    assert_eq!(banned_ips(&d), ["192.0.2.51"]);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs", at.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system holding `dir` up to the last byte.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn bans_made_while_the_state_disk_is_full_survive_a_crash_after_space_returns() {
    if !is_root() {
        crate::util::skipped!("needs root to mount a small tmpfs as the state directory");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let _tmpfs = Tmpfs::mount(&root.join("state"), "4m");
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, None);
    let filler = fill(&root.join("state"));
    let attackers: Vec<String> = (1..=20).map(|i| format!("198.51.100.{i}")).collect();
    append(&root.join("auth.log"), &attackers.iter().map(|ip| failure(ip)).collect::<String>());
    d.wait_for("the bans, applied although the disk is full", || d.status().is_some_and(|s| s["total_banned"] == 20));
    assert!(d.log().contains("could not be recorded"), "the disk was not full after all:\n{}", d.log());
    // Space returns; a line that bans nothing makes the jail save its
    // read position, which used to move past the unrecorded bans.
    std::fs::remove_file(filler).unwrap();
    append(&root.join("auth.log"), &format!("{} web sshd[7]: Accepted publickey for admin\n", iso(0)));
    d.wait_for("the harmless line", || d.status().is_some_and(|s| s["lines"] == 21));
    d.signal(libc::SIGKILL);
    let _ = d.wait();
    let d = Daemon::start_ready(root, None);
    let mut expected = attackers.clone();
    expected.sort();
    d.wait_for("every ban after the restart", || banned_ips(&d) == expected);
}

#[test]
fn a_line_that_exhausts_the_filters_memory_costs_that_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hostile_log = crate::util::daemon::hostile_tree(root, "memory-mb = 32\n");
    let d = Daemon::start(root);
    let hostile = || serde_json::from_str::<Value>(&d.client(&["status", "hostile", "--json"]).1).unwrap();
    d.wait_for("the hostile jail", || hostile()["running"] == true);
    // One batch: genuine failures around the line that exhausts memory.
    let batch: String = (1..=6)
        .map(|i| format!("fail 192.0.2.{i}\n"))
        .chain(["hog\n".to_string()])
        .chain((7..=12).map(|i| format!("fail 192.0.2.{i}\n")))
        .collect();
    append(&hostile_log, &batch);
    d.wait_for("every genuine failure's ban", || hostile()["total_banned"] == 12);
    let status = hostile();
    assert_eq!(status["lines_skipped"], 1, "{status}");
    assert!(d.log().contains("trying its 13 line(s) again in halves"), "{}", d.log());
}

#[test]
fn a_damaged_database_is_moved_aside_and_the_daemon_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let state = root.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(state.join("wasmban.sqlite3"), vec![0x42u8; 8192]).unwrap();
    let d = Daemon::start_ready(root, None);
    assert!(d.log().contains("the ban database was damaged"), "{}", d.log());
    let moved: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with("wasmban.sqlite3.damaged-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    append(&root.join("auth.log"), &failure("192.0.2.60"));
    d.wait_for("a ban in the new database", || banned_ips(&d) == ["192.0.2.60"]);
}

/// A line far past the limit (a log gone wrong, or an attacker's): said
/// once in the log with the jail and the file, cut, and the failure after
/// it is still counted and banned. (A 10 GiB line was measured by hand:
/// the ban came after 7 s, and the daemon's peak memory grew by 1 MiB.)
#[test]
fn a_runaway_line_is_cut_said_and_costs_no_ban() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let log = root.join("auth.log");
    append(&log, "");
    let d = Daemon::start_ready(root, None);
    append(&log, &format!("{}\n{}", "x".repeat(3 << 20), failure("192.0.2.88")));
    d.wait_for("the ban after the long line", || banned_ips(&d).contains(&"192.0.2.88".to_string()));
    d.wait_for("the warning", || d.log().contains("line(s) longer than 1024 KiB"));
    assert!(d.log().contains("auth.log: 1 line(s) longer than 1024 KiB"), "{}", d.log());
}
