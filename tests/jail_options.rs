//! Jail options above the filter, against fail2ban's own daemon: both
//! started by the test on one jail configuration, fed the same log lines,
//! and asked what they counted and banned.

use std::path::Path;
use std::process::Command;

use crate::util::daemon::{Daemon, append, iso, tree};
use crate::util::fail2ban::Fail2ban;
use crate::util::skipped;

/// Now in UTC as `YYYY-MM-DD HH:MM:SS`: a date without a zone, which each
/// jail reads in its `logtimezone`.
fn utc_without_zone() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%d %H:%M:%S"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn line(date: &str, ip: &str) -> String {
    format!("{date} web sshd[7]: Failed password for root from {ip} port 22 ssh2\n")
}

/// What a jail banned, sorted, as each daemon says it.
fn banned_by_fail2ban(f2b: &Fail2ban, jail: &str) -> Vec<String> {
    let text = f2b.client(&["get", jail, "banip"]).unwrap_or_default();
    let mut ips: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    ips.sort();
    ips
}

fn banned_by_wasmban(d: &Daemon, jail: &str) -> Vec<String> {
    let (_, text) = d.client(&["get", jail, "banip"]);
    let mut ips: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    ips.sort();
    ips
}

#[test]
fn logtimezone_dates_lines_as_fail2ban_does_and_can_be_set_at_run_time() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    // Two jails on one log: one reads zoneless dates as UTC, the other as
    // five hours east of it, where "now in UTC" is five hours ahead of
    // the clock: too old for a findtime of one hour.
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 1\n\
         action =\nfilter = sshd\nlogpath = {}\n\
         [utc]\nenabled = true\nlogtimezone = UTC\n\
         [east]\nenabled = true\nlogtimezone = UTC+0500\n",
        log.display()
    );
    let f2b = Fail2ban::start(root, &jails);
    tree(root, &jails);
    let d = Daemon::start(root);
    for jail in ["utc", "east"] {
        d.wait_for("both jails", || {
            serde_json::from_str::<serde_json::Value>(&d.client(&["status", jail, "--json"]).1)
                .is_ok_and(|s| s["running"] == true)
        });
    }

    // A zoneless date, then one that names its zone (logtimezone does not
    // apply): when the east jail bans the second, it has read the first.
    append(&log, &(line(&utc_without_zone(), "192.0.2.1") + &line(&iso(0), "192.0.2.2")));
    let expected = |jail: &str| -> Vec<String> {
        match jail {
            "utc" => vec!["192.0.2.1".into(), "192.0.2.2".into()],
            _ => vec!["192.0.2.2".into()],
        }
    };
    for jail in ["utc", "east"] {
        f2b.wait_for("fail2ban's bans", || banned_by_fail2ban(&f2b, jail) == expected(jail));
        d.wait_for("wasmban's bans", || banned_by_wasmban(&d, jail) == expected(jail));
    }
    assert_eq!(f2b.count("east", "Total failed"), Some(1), "fail2ban counted the old line in east");
    let status: serde_json::Value = serde_json::from_str(&d.client(&["status", "east", "--json"]).1).unwrap();
    assert_eq!(status["total_failed"], 1, "wasmban counted the old line in east: {status}");

    // At run time, as fail2ban: the next zoneless line is read in UTC.
    let link = root.join("fail2ban-client");
    std::os::unix::fs::symlink(crate::util::daemon::BIN, &link).unwrap();
    let ours = |args: &[&str]| {
        let out = Command::new(&link).arg("-s").arg(root.join("sock")).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for args in [&["get", "east", "logtimezone"][..], &["set", "east", "logtimezone", "UTC"]] {
        assert_eq!(ours(args).1, f2b.client(args).unwrap(), "{args:?} (left: wasmban, right: fail2ban)");
    }
    append(&log, &line(&utc_without_zone(), "192.0.2.3"));
    let after = vec!["192.0.2.2".to_string(), "192.0.2.3".to_string()];
    f2b.wait_for("fail2ban's ban in UTC", || banned_by_fail2ban(&f2b, "east") == after);
    d.wait_for("wasmban's ban in UTC", || banned_by_wasmban(&d, "east") == after);

    // A zone neither knows is refused and changes nothing.
    assert!(f2b.client(&["set", "east", "logtimezone", "Mars/Olympus"]).is_none());
    let (ok, _) = ours(&["set", "east", "logtimezone", "Mars/Olympus"]);
    assert!(!ok, "wasmban took an unknown zone");
    assert_eq!(ours(&["get", "east", "logtimezone"]).1, f2b.client(&["get", "east", "logtimezone"]).unwrap());
    // And at start: `check` names the jail's zone.
    std::fs::write(root.join("conf/jail.local"), jails.replace("UTC+0500", "Mars/Olympus")).unwrap();
    let out = Command::new(crate::util::daemon::BIN)
        .args(["-c", root.join("conf").to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("logtimezone") && text.contains("east"), "{text}");
}

/// A classic action that writes the tags it is given, one line per ban,
/// and its shell grant for wasmban.
fn recording_action(conf: &Path, out: &Path) {
    std::fs::create_dir_all(conf.join("action.d")).unwrap();
    std::fs::write(
        conf.join("action.d/record.conf"),
        format!(
            "[Definition]\nactionban = printf '%%s\\n' \"<ip>|<F-USER>|<F-NOSUCH>|<ip-rev>|<failures>|<bancount>|<family>\" >> {0}\n\
             actionunban = printf '%%s\\n' \"unban <ip>|<F-USER>\" >> {0}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(conf.join("plugin.d")).unwrap();
    std::fs::write(conf.join("plugin.d/command-action.toml"), "[grants]\nshell = true\n").unwrap();
}

fn lines_of(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> =
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn actions_get_the_tags_fail2ban_gives_them() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction = record\n",
        log.display()
    );
    let (theirs, ours) = (root.join("fail2ban.out"), root.join("wasmban.out"));
    let f2b = Fail2ban::start_with(root, &jails, |conf| recording_action(conf, &theirs));
    tree(root, &jails);
    // fail2ban's own sshd filter on both sides: it captures the user.
    for file in ["sshd.conf", "common.conf"] {
        std::fs::copy(Path::new("/etc/fail2ban/filter.d").join(file), root.join("conf/filter.d").join(file)).unwrap();
    }
    recording_action(&root.join("conf"), &ours);
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));

    let when = iso(0);
    // One sshd process per attacker: fail2ban's sshd filter ties a
    // process's lines to the first address it saw.
    let failed = |user: &str, ip: &str| {
        let pid = if ip.contains(':') { 8 } else { 7 };
        format!("{when} web sshd[{pid}]: Failed password for {user} from {ip} port 22 ssh2\n")
    };
    // A user captured in the first failure, and an IPv6 attacker
    // (`<ip-rev>` in nibbles); `<F-NOSUCH>` names no capture: empty.
    let lines = [
        failed("root", "192.0.2.1"),
        failed("admin", "192.0.2.1"),
        failed("invalid user guest", "2001:db8::5"),
        failed("oracle", "2001:db8::5"),
    ];
    append(&log, &lines.concat());
    f2b.wait_for("fail2ban's bans", || f2b.count("sshd", "Total banned") == Some(2));
    d.wait_for("wasmban's bans", || d.status().is_some_and(|s| s["total_banned"] == 2));
    d.wait_for("wasmban's action", || lines_of(&ours).len() == 2);
    f2b.wait_for("fail2ban's action", || lines_of(&theirs).len() == 2);
    assert_eq!(lines_of(&ours), lines_of(&theirs), "tags (left: wasmban, right: fail2ban)");

    // A jail that stops lifts its bans through an action without
    // actionflush, one unban each, as fail2ban does.
    assert!(d.client(&["stop"]).0);
    assert!(f2b.client(&["stop"]).is_some());
    d.wait_for("wasmban's unbans at stop", || lines_of(&ours).len() == 4);
    f2b.wait_for("fail2ban's unbans at stop", || lines_of(&theirs).len() == 4);
    assert_eq!(lines_of(&ours), lines_of(&theirs), "unbans at stop (left: wasmban, right: fail2ban)");
}

#[test]
fn skip_if_nologs_skips_only_that_jail_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    append(&root.join("auth.log"), "");
    // fail2ban 1.1's option: a jail whose logs are missing is skipped
    // (with a journalmatch and no journal being written on this host, it
    // cannot read the journal instead); the others run.
    tree(
        root,
        &format!(
            "[gone]\nenabled = true\nfilter = sshd\nbackend = polling\nlogpath = {}\nskip_if_nologs = true\n",
            root.join("missing.log").display()
        ),
    );
    let d = Daemon::start(root);
    d.wait_for("the sshd jail", || d.status().is_some_and(|s| s["running"] == true));
    let (_, text) = d.client(&["status", "gone", "--json"]);
    let gone: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    assert!(gone["running"] != true, "{text}");
    d.wait_for("the skip in the log", || d.log().contains("Jail skipped (skip_if_nologs)"));
    let out = Command::new(crate::util::daemon::BIN)
        .args(["-c", root.join("conf").to_str().unwrap(), "--state-dir", root.join("state").to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("warning: [gone] Have not found any log file"), "{text}");
}

#[test]
fn ignoreip_takes_a_file_set_as_fail2ban_1_1_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let list = root.join("ignore.list");
    std::fs::write(&list, "# partners\n198.51.100.0/24 ; their NAT\n").unwrap();
    tree(root, &format!("[sshd]\nignoreip = 127.0.0.1/8 file:{}\n", list.display()));
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    append(&log, &(crate::util::daemon::failure("198.51.100.20") + &crate::util::daemon::failure("192.0.2.20")));
    d.wait_for("the ban of the address not listed", || banned_by_wasmban(&d, "sshd") == ["192.0.2.20"]);
    assert!(d.log().contains("Ignore 198.51.100.20 by ignoreip"), "{}", d.log());
    // The entry is kept as written, as fail2ban-client shows it.
    let (_, text) = d.client(&["get", "sshd", "ignoreip"]);
    assert!(text.contains(&format!("file:{}", list.display())), "{text}");
}
