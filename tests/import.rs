//! `wasmban import-fail2ban` on a database a real fail2ban-server wrote in
//! the test: bans in force come back when wasmban starts, ban history
//! counts for `bantime.increment`, and the log is read on from where
//! fail2ban stopped, so an attack logged during the switch is banned and
//! lines fail2ban already counted are not counted again.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::daemon::{Daemon, append, failure, tree};
use crate::util::{skipped, wasmban};

fn fail2ban_client(sock: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("fail2ban-client").arg("-s").arg(sock).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A counter from `fail2ban-client status JAIL`.
fn f2b_count(sock: &Path, jail: &str, field: &str) -> Option<u64> {
    let text = fail2ban_client(sock, &["status", jail])?;
    text.lines().find(|l| l.contains(field)).and_then(|l| l.rsplit(['\t', ' ']).next()?.trim().parse().ok())
}

fn wait(what: &str, log: &Path, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; fail2ban's log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_switch_from_fail2ban_keeps_its_bans_history_and_read_positions() {
    let stock = Path::new("/etc/fail2ban");
    let has_server =
        Command::new("sh").args(["-c", "command -v fail2ban-server"]).output().is_ok_and(|o| o.status.success());
    if !stock.join("filter.d/sshd.conf").is_file() || !has_server {
        return skipped!("fail2ban is not installed (Debian package fail2ban)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let auth = root.join("auth.log");
    let short = root.join("short.log");
    append(&auth, "");
    append(&short, "");

    // fail2ban, on its own stock filters, with two jails and no actions.
    let f2b = root.join("f2b");
    let copied = Command::new("cp").args(["-r", stock.to_str().unwrap(), f2b.to_str().unwrap()]).status().unwrap();
    assert!(copied.success());
    let _ = std::fs::remove_dir_all(f2b.join("jail.d"));
    std::fs::create_dir_all(f2b.join("jail.d")).unwrap();
    let (sock, db, f2b_log) = (root.join("f2b.sock"), root.join("f2b.sqlite3"), root.join("f2b.log"));
    std::fs::write(
        f2b.join("fail2ban.local"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {}\nsocket = {}\npidfile = {}\ndbfile = {}\n",
            f2b_log.display(),
            sock.display(),
            root.join("f2b.pid").display(),
            db.display()
        ),
    )
    .unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nmaxretry = 1\naction =\n\
             [sshd]\nenabled = true\nlogpath = {}\nbantime = 1h\n\
             [sshd-short]\nenabled = true\nfilter = sshd\nlogpath = {}\nbantime = 4\n",
            auth.display(),
            short.display()
        ),
    )
    .unwrap();
    let mut server = Command::new("fail2ban-server")
        .args(["-f", "-x", "-c", f2b.to_str().unwrap(), "-s", sock.to_str().unwrap()])
        .args(["-p", root.join("f2b.pid").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait("fail2ban's jails", &f2b_log, || f2b_count(&sock, "sshd-short", "Total failed").is_some());
    append(&auth, &format!("{}{}", failure("192.0.2.1"), failure("192.0.2.2")));
    append(&short, &failure("192.0.2.4"));
    wait("fail2ban's two bans", &f2b_log, || f2b_count(&sock, "sshd", "Total banned") == Some(2));
    // The short ban (4 s: fail2ban ignores a ban already over when its
    // actions thread gets to it, and the line is dated to the second) ends:
    // it stays in fail2ban's history.
    wait("the short ban to end", &f2b_log, || {
        f2b_count(&sock, "sshd-short", "Total banned") == Some(1)
            && f2b_count(&sock, "sshd-short", "Currently banned") == Some(0)
    });
    assert!(fail2ban_client(&sock, &["stop"]).is_some());
    let start = Instant::now();
    while server.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "fail2ban-server did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The attack goes on while the admin switches.
    append(&auth, &failure("192.0.2.3"));

    let before = sha256(&db);
    tree(
        root,
        &format!(
            "[sshd-short]\nenabled = true\nfilter = sshd\nlogpath = {}\nbantime = 1h\nbantime.increment = true\n",
            short.display()
        ),
    );
    let conf = root.join("conf");
    let state = root.join("state");
    let import = |db: &Path| {
        wasmban(&[
            "-c",
            conf.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "import-fail2ban",
            "--db",
            db.to_str().unwrap(),
        ])
    };
    let run = import(&db);
    assert!(run.ok, "{}", run.both());
    let out = run.stdout;
    assert!(out.contains("2 ban(s) in force") && out.contains("1 earlier ban(s)") && out.contains("3 new"), "{out}");
    assert!(out.contains("2 log read position(s)"), "{out}");
    assert_eq!(sha256(&db), before, "fail2ban's database changed");
    // Again: nothing new, nothing doubled.
    let again = import(&db);
    assert!(again.ok && again.stdout.contains("0 new to this store"), "{}", again.both());
    // wasmban's own database is not fail2ban's: refused, and said why.
    let foreign = import(&state.join("wasmban.sqlite3"));
    assert!(!foreign.ok && foreign.both().contains("not a database fail2ban"), "{}", foreign.both());

    let d = Daemon::start(root);
    // Restored, and the line logged during the switch read and banned; the
    // lines fail2ban had read are not counted again.
    d.wait_for("the three bans", || d.banned().len() == 3);
    let banned: Vec<String> = d.banned().into_iter().map(|(ip, _)| ip).collect();
    assert_eq!(banned, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    assert_eq!(d.status().unwrap()["total_failed"], 1, "{}", d.log());
    // fail2ban's history counts: the next ban of .4 is its second.
    append(&short, &failure("192.0.2.4"));
    let short_bans = || {
        let (_, text) = d.client(&["banned", "--json"]);
        serde_json::from_str::<Value>(&text).unwrap()["sshd-short"].clone()
    };
    d.wait_for("the second ban of 192.0.2.4", || short_bans().as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(short_bans()[0]["bancount"], 2, "{}", short_bans());
}
