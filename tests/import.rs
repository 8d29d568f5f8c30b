//! `wasmban import-fail2ban` on a database a real fail2ban-server wrote in
//! the test: bans in force come back when wasmban starts, ban history
//! counts for `bantime.increment`, and the log is read on from where
//! fail2ban stopped, so an attack logged during the switch is banned and
//! lines fail2ban already counted are not counted again.

use std::path::Path;

use serde_json::Value;

use crate::util::daemon::{Daemon, append, failure, tree};
use crate::util::fail2ban::Fail2ban;
use crate::util::{skipped, wasmban};

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_switch_from_fail2ban_keeps_its_bans_history_and_read_positions() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let auth = root.join("auth.log");
    let short = root.join("short.log");
    append(&auth, "");
    append(&short, "");

    // fail2ban, on its own stock filters, with two jails and no actions.
    let f2b = Fail2ban::start(
        root,
        &format!(
            "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nmaxretry = 1\naction =\n\
             [sshd]\nenabled = true\nlogpath = {}\nbantime = 1h\n\
             [sshd-short]\nenabled = true\nfilter = sshd\nlogpath = {}\nbantime = 4\n",
            auth.display(),
            short.display()
        ),
    );
    append(&auth, &format!("{}{}", failure("192.0.2.1"), failure("192.0.2.2")));
    append(&short, &failure("192.0.2.4"));
    f2b.wait_for("fail2ban's two bans", || f2b.count("sshd", "Total banned") == Some(2));
    // The short ban (4 s: fail2ban ignores a ban already over when its
    // actions thread gets to it, and the line is dated to the second) ends:
    // it stays in fail2ban's history.
    f2b.wait_for("the short ban to end", || {
        f2b.count("sshd-short", "Total banned") == Some(1) && f2b.count("sshd-short", "Currently banned") == Some(0)
    });
    let db = f2b.db.clone();
    f2b.stop();
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
