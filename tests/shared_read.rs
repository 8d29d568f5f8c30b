//! Jails that read one log with the same filter share one read of it
//! (fail2ban reads and filters it once per jail, fail2ban#529): each still
//! counts and bans by its own options, a jail that goes idle or changes its
//! filter leaves for a read of its own without holding up the others, and
//! a restart goes on from where they were.

use serde_json::Value;

use crate::util::daemon::{Daemon, append, failure, tree};

/// `sshd` (from [`tree`], maxretry 1), `slow` and `slower` on the same log
/// with the same filter, and `other` on it with a filter of its own.
const JAILS: &str = "[slow]\nenabled = true\nfilter = sshd\nlogpath = %(auth)s\nmaxretry = 2\n\
                     [slower]\nenabled = true\nfilter = sshd\nlogpath = %(auth)s\nmaxretry = 3\n\
                     [other]\nenabled = true\nfilter = sshd[mode=aggressive]\nlogpath = %(auth)s\nmaxretry = 1\n";

fn jail_status(d: &Daemon, jail: &str) -> Value {
    let (ok, out) = d.client(&["status", jail, "--json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn count(d: &Daemon, jail: &str, key: &str) -> u64 {
    jail_status(d, jail)[key].as_u64().unwrap_or_default()
}

fn lines_of(ip: &str, n: usize) -> String {
    (0..n).map(|_| failure(ip)).collect()
}

#[test]
fn jails_on_one_log_with_one_filter_read_it_once_and_each_bans_by_its_own_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let auth = root.join("auth.log");
    tree(root, &JAILS.replace("%(auth)s", auth.to_str().unwrap()));
    let d = Daemon::start(root);
    d.wait_for("four jails", || ["sshd", "slow", "slower", "other"].iter().all(|j| d.client(&["status", j]).0));
    let log = d.log();
    assert_eq!(log.matches("read once for the 3 jails that read it alike").count(), 3, "{log}");

    // One failure of .1, two of .2, three of .3.
    append(&auth, &(lines_of("192.0.2.1", 1) + &lines_of("192.0.2.2", 2) + &lines_of("192.0.2.3", 3)));
    for jail in ["sshd", "slow", "slower", "other"] {
        d.wait_for(jail, || count(&d, jail, "lines") == 6);
    }
    assert_eq!(count(&d, "sshd", "total_banned"), 3);
    assert_eq!(count(&d, "slow", "total_banned"), 2);
    assert_eq!(count(&d, "slower", "total_banned"), 1);
    assert_eq!(count(&d, "other", "total_banned"), 3);
    for jail in ["sshd", "slow", "slower"] {
        assert_eq!(jail_status(&d, jail)["files"][0], auth.to_str().unwrap());
    }

    // An idle jail's lines wait for it; the others go on meanwhile.
    let (ok, out) = d.client(&["set", "slow", "idle", "on"]);
    assert!(ok, "{out}");
    append(&auth, &lines_of("192.0.2.4", 2));
    d.wait_for("sshd to read on", || count(&d, "sshd", "lines") == 8);
    d.wait_for("slower to read on", || count(&d, "slower", "lines") == 8);
    assert_eq!(count(&d, "slow", "lines"), 6);
    let (ok, out) = d.client(&["set", "slow", "idle", "off"]);
    assert!(ok, "{out}");
    d.wait_for("slow to catch up", || count(&d, "slow", "lines") == 8);
    assert_eq!(count(&d, "slow", "total_banned"), 3);

    // A jail that changes its filter reads alone from where it stood.
    let (ok, out) = d.client(&["set", "slower", "addignoreregex", "from 192\\.0\\.2\\.5 "]);
    assert!(ok, "{out}");
    append(&auth, &(lines_of("192.0.2.5", 3) + &lines_of("192.0.2.6", 3)));
    for jail in ["sshd", "slow", "slower", "other"] {
        d.wait_for(jail, || count(&d, jail, "lines") == 14);
    }
    assert_eq!(count(&d, "slower", "total_banned"), 2, "{}", d.log());
    assert_eq!(count(&d, "sshd", "total_banned"), 6);

    // A restart reads on from where the jails were, once.
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());
    append(&auth, &lines_of("192.0.2.7", 3));
    let d = Daemon::start(root);
    for jail in ["sshd", "slow", "slower", "other"] {
        // The lines a jail resumes with come in one batch: more than three
        // would be lines read again.
        d.wait_for(jail, || d.client(&["status", jail]).0 && count(&d, jail, "lines") >= 3);
        assert_eq!(count(&d, jail, "lines"), 3, "{jail} read lines again");
    }
}
