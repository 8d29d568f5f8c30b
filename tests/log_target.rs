//! The daemon's log at run time: `logtarget = SYSTEMD-JOURNAL` through a
//! real systemd-journald (started by the test in a mount namespace of its
//! own, so that the machine's journal is never touched), and fail2ban's
//! `set logtarget` / `set loglevel` / `set dbpurgeage` switching a running
//! daemon.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::daemon::{BIN, append, failure, tree};
use crate::util::{has_program, skipped};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// The entries journald wrote under `dir`, as JSON objects.
fn journal_entries(dir: &Path) -> Vec<Value> {
    let out = Command::new("journalctl").arg("-D").arg(dir).args(["-o", "json", "--no-pager"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn client(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).arg("-s").arg(root.join("sock")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn wait_for(root: &Path, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; daemon's stderr:\n{}\njournald's:\n{}\nwasmban's entries in the journal: {:?}",
            read("daemon.log"),
            read("journald.err"),
            journal_entries(&root.join("journal"))
                .into_iter()
                .filter(|e| e["SYSLOG_IDENTIFIER"] == "wasmban")
                .map(|e| e["MESSAGE"].clone())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_journal_target_reaches_a_real_journald_and_targets_switch_at_run_time() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skipped!("needs root to make a mount namespace for a journald of its own");
    }
    if !Path::new(JOURNALD).exists() || !has_program("journalctl") || !has_program("unshare") {
        return skipped!("needs systemd-journald, journalctl and unshare (Debian packages systemd, util-linux)");
    }
    if !Path::new("/etc/machine-id").exists() {
        return skipped!("journald needs /etc/machine-id");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let journal = root.join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    tree(root, "");
    // The log exists before the daemon starts: with journald running, a
    // jail without its log would read the journal (fail2ban 1.1's switch).
    append(&root.join("auth.log"), "");
    std::fs::write(
        root.join("conf/wasmban.conf"),
        "[Definition]\nlogtarget = SYSTEMD-JOURNAL\nloglevel = NOTICE\npidfile =\n",
    )
    .unwrap();
    // In a private mount namespace: a tmpfs on /run (the journal's socket
    // lives there), the journal's files on the test's directory, the
    // persistent journal hidden; then journald, then the daemon.
    let script = format!(
        "set -e\n\
         mount -t tmpfs tmpfs /run\n\
         mkdir -p /run/systemd/journal /run/log/journal\n\
         mount --bind {journal} /run/log/journal\n\
         if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi\n\
         {JOURNALD} 2>{root}/journald.err &\n\
         journald=$!\n\
         for _ in $(seq 200); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done\n\
         status=0\n\
         {BIN} -c {root}/conf -s {root}/sock --state-dir {root}/state server --poll-interval 0.1 \
           2>>{root}/daemon.log || status=$?\n\
         kill $journald; wait $journald || true\n\
         exit $status\n",
        journal = journal.display(),
        root = root.display(),
    );
    let mut namespace = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon_log = || std::fs::read_to_string(root.join("daemon.log")).unwrap_or_default();
    let start = Instant::now();
    while !client(root, &["ping"]).0 {
        if let Some(status) = namespace.try_wait().unwrap() {
            panic!("the daemon's namespace ended ({status}); daemon: {}", daemon_log());
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the daemon never answered; log:\n{}", daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    }

    wait_for(root, "the jail to start", || {
        let (ok, out) = client(root, &["status", "sshd", "--json"]);
        ok && serde_json::from_str::<Value>(&out).is_ok_and(|s| s["running"] == true)
    });
    let banned = |ip: &str| {
        let wanted = format!("NOTICE  [sshd] Ban {ip}");
        journal_entries(&journal).into_iter().find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.ends_with(&wanted)))
    };
    append(&root.join("auth.log"), &failure("192.0.2.61"));
    wait_for(root, "the ban in the journal", || banned("192.0.2.61").is_some());
    let entry = banned("192.0.2.61").unwrap();
    // As recidive's journalmatch wants it: notice priority, facility daemon.
    assert_eq!((entry["PRIORITY"].as_str(), entry["SYSLOG_FACILITY"].as_str()), (Some("5"), Some("3")), "{entry}");
    assert_eq!(entry["SYSLOG_IDENTIFIER"], "wasmban", "{entry}");
    assert_eq!(entry["_TRANSPORT"], "journal", "{entry}");
    let message = entry["MESSAGE"].as_str().unwrap();
    assert!(message.starts_with("fail2ban.actions"), "no date, the journal has its own: {message}");
    // NOTICE: information lines stay out.
    assert!(
        !journal_entries(&journal).iter().any(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains("jail started")))
    );

    // fail2ban-client's answers about the daemon's log and store.
    let (ok, out) = client(root, &["get", "logtarget"]);
    assert!(ok && out == "Current logging target is:\n`- SYSTEMD-JOURNAL\n", "{out}");
    let (ok, out) = client(root, &["get", "loglevel"]);
    assert!(ok && out == "Current logging level is 'NOTICE'\n", "{out}");
    let (ok, out) = client(root, &["get", "dbfile"]);
    assert!(ok && out.ends_with("/state/wasmban.sqlite3\n"), "{out}");

    // The level, then the target, changed under the running daemon.
    let (ok, out) = client(root, &["set", "loglevel", "INFO"]);
    assert!(ok && out == "Current logging level is 'INFO'\n", "{out}");
    client(root, &["reload"]);
    wait_for(root, "an information line in the journal", || {
        journal_entries(&journal).iter().any(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains("reloaded")))
    });
    let file = root.join("wasmban.log");
    let (ok, out) = client(root, &["set", "logtarget", file.to_str().unwrap()]);
    assert!(ok && out == format!("Current logging target is:\n`- {}\n", file.display()), "{out}");
    append(&root.join("auth.log"), &failure("192.0.2.62"));
    wait_for(root, "the ban in the file", || {
        std::fs::read_to_string(&file).unwrap_or_default().contains("NOTICE  [sshd] Ban 192.0.2.62")
    });
    assert!(banned("192.0.2.62").is_none(), "the journal still got lines after the switch");
    let line = std::fs::read_to_string(&file).unwrap();
    assert!(line.starts_with("20"), "a file's lines carry their date: {line}");
    let (ok, out) = client(root, &["flushlogs"]);
    assert!(ok && out == "logs: rolled over\n", "{out}");
    // A target that cannot be opened changes nothing.
    let (ok, out) = client(root, &["set", "logtarget", "NOWHERE"]);
    assert!(!ok && out.contains("Failed to change log target"), "{out}");
    let (ok, out) = client(root, &["set", "loglevel", "LOUD"]);
    assert!(!ok && out.contains("use CRITICAL, ERROR"), "{out}");
    let (ok, out) = client(root, &["set", "dbpurgeage", "2d"]);
    assert!(ok && out == "Current database purge age is:\n`- 172800seconds\n", "{out}");
    // dbmaxmatches is honoured at run time too; a bad value changes nothing.
    let (ok, out) = client(root, &["get", "dbmaxmatches"]);
    assert!(ok && out == "10\n", "{out}");
    let (ok, out) = client(root, &["set", "dbmaxmatches", "3"]);
    assert!(ok && out == "3\n", "{out}");
    let (ok, out) = client(root, &["set", "dbmaxmatches", "many"]);
    assert!(!ok && out.contains("dbmaxmatches"), "{out}");
    let (ok, out) = client(root, &["get", "dbmaxmatches"]);
    assert!(ok && out == "3\n", "{out}");

    assert!(client(root, &["stop"]).0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = namespace.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}; daemon: {}", daemon_log());
}
