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
pub(crate) fn banned_by_fail2ban(f2b: &Fail2ban, jail: &str) -> Vec<String> {
    let text = f2b.client(&["get", jail, "banip"]).unwrap_or_default();
    let mut ips: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    ips.sort();
    ips
}

pub(crate) fn banned_by_wasmban(d: &Daemon, jail: &str) -> Vec<String> {
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
    crate::util::grant_shell(&conf.join("plugin.d"), "command-action", out.parent().unwrap());
}

/// The lines of `path` in the order written (none when it is missing).
fn written(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The lines of `path`, sorted.
pub(crate) fn lines_of(path: &Path) -> Vec<String> {
    let mut lines = written(path);
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

/// A classic action with `actionflush` that writes what it is asked.
fn flushing_action(conf: &Path, out: &Path) {
    std::fs::create_dir_all(conf.join("action.d")).unwrap();
    std::fs::write(
        conf.join("action.d/flushing.conf"),
        format!(
            "[Definition]\nactionban = printf '%%s\\n' \"ban <ip>|<restored>|<failures>\" >> {0}\n\
             actionunban = printf '%%s\\n' \"unban <ip>\" >> {0}\n\
             actionflush = printf '%%s\\n' flush >> {0}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(conf.join("plugin.d")).unwrap();
    crate::util::grant_shell(&conf.join("plugin.d"), "command-action", out.parent().unwrap());
}

#[test]
fn restored_bans_say_so_and_unban_all_flushes_as_fail2ban_does() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction = flushing\n",
        log.display()
    );
    let (theirs, ours) = (root.join("fail2ban.out"), root.join("wasmban.out"));
    let mut f2b = Fail2ban::start_with(root, &jails, |conf| flushing_action(conf, &theirs));
    tree(root, &jails);
    flushing_action(&root.join("conf"), &ours);
    let mut d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));

    let when = iso(0);
    let mut lines = String::new();
    for (pid, ip) in ["192.0.2.1", "192.0.2.2"].iter().enumerate() {
        for _ in 0..2 {
            lines += &format!("{when} web sshd[{pid}]: Failed password for root from {ip} port 22 ssh2\n");
        }
    }
    append(&log, &lines);
    d.wait_for("wasmban's bans", || lines_of(&ours).len() == 2);
    f2b.wait_for("fail2ban's bans", || lines_of(&theirs).len() == 2);

    // A restart: the stop flushes, the start restores with <restored> = 1.
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    f2b.restart();
    d = Daemon::start(root);
    d.wait_for("wasmban's restored bans", || lines_of(&ours).len() == 5);
    f2b.wait_for("fail2ban's restored bans", || lines_of(&theirs).len() == 5);

    // unban --all goes through actionflush, not one unban per address.
    assert!(d.client(&["unban", "--all"]).0);
    assert!(f2b.client(&["unban", "--all"]).is_some());
    d.wait_for("wasmban's flush", || lines_of(&ours).len() == 6);
    f2b.wait_for("fail2ban's flush", || lines_of(&theirs).len() == 6);
    assert_eq!(lines_of(&ours), lines_of(&theirs), "left: wasmban, right: fail2ban");
    assert_eq!(lines_of(&ours).iter().filter(|l| l.as_str() == "flush").count(), 2, "{:?}", lines_of(&ours));
}

/// fail2ban's merged tags hold every ban of the address the database
/// keeps. fail2ban writes a ban to its database on another thread than
/// the one that runs the actions, so whether its own tags include the ban
/// being made depends on which thread comes first; wasmban records a ban
/// before any action runs, so they always do. Compared with fail2ban's
/// documented meaning, not with its daemon.
#[test]
fn merged_and_jail_tags_count_every_ban_of_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (log, other_log, out) = (root.join("auth.log"), root.join("other.log"), root.join("tags.out"));
    append(&log, "");
    append(&other_log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nmaxretry = 2\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\nbantime = 2\naction = tags\n\
         [other]\nenabled = true\nfilter = sshd\nlogpath = {}\nbantime = 1h\naction = tags\n",
        log.display(),
        other_log.display()
    );
    tree(root, &jails);
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::write(
        root.join("conf/action.d/tags.conf"),
        format!(
            "[Definition]\nactionban = printf '%%s\\n' \"<jail.name> <ip> <ipfailures> <ipjailfailures> \
             <jail.banned> <jail.banned_total> <jail.found_total> <restored>\" >> {0}\n  \
             printf '%%s\\n' \"<ipjailmatches>\" | wc -l >> {0}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-action", root);
    let d = Daemon::start(root);
    d.wait_for("the jails", || d.client(&["status"]).1.contains("other"));

    let failures = |ip: &str, n: usize| -> String {
        let when = iso(0);
        (0..n).map(|_| format!("{when} web sshd[9]: Failed password for root from {ip} port 22 ssh2\n")).collect()
    };
    let out_lines = || written(&out);
    // One ban in the other jail.
    append(&other_log, &failures("192.0.2.7", 2));
    d.wait_for("the other jail's ban", || out_lines().len() == 2);
    // Two bans in sshd, the first over (2 s) before the second.
    append(&log, &failures("192.0.2.7", 2));
    d.wait_for("the first ban in sshd", || out_lines().len() == 4);
    d.wait_for("its end", || d.client(&["status", "sshd"]).1.contains("Currently banned:\t0"));
    append(&log, &failures("192.0.2.7", 2));
    d.wait_for("the second ban in sshd", || out_lines().len() == 6);
    assert_eq!(
        out_lines(),
        ["other 192.0.2.7 2 2 1 1 2 0", "2", "sshd 192.0.2.7 4 2 1 1 2 0", "2", "sshd 192.0.2.7 6 4 1 2 4 0", "4",],
        "{}",
        d.log()
    );
}

/// `actionprolong` runs when failures logged during a ban move its end
/// later, and `actionreban` when the action's check finds its work gone.
/// fail2ban moves the end the same way but tells no action (it runs
/// `actionprolong` only when `bantime.increment` lengthens a ban after its
/// `actionban`; wasmban gives `actionban` the lengthened time at once), so
/// an ipset with kernel timeouts would drop the address early; wasmban
/// keeps them in step.
#[test]
fn actionprolong_and_actionreban_run_when_fail2ban_would_want_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (log, out, marker) = (root.join("auth.log"), root.join("events.out"), root.join("in-place"));
    append(&log, "");
    append(&marker, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\nreconcile = 1\naction = events\n",
        log.display()
    );
    tree(root, &jails);
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::write(
        root.join("conf/action.d/events.conf"),
        format!(
            "[Definition]\nactioncheck = test -e {1}\n\
             actionban = echo \"ban <ip> <bantime> <restored>\" >> {0}\n\
             actionreban = echo \"reban <ip> <bantime> <restored>\" >> {0}\n\
             actionprolong = echo \"prolong <ip> <bantime>\" >> {0}\n\
             actionunban = echo \"unban <ip>\" >> {0}\n",
            out.display(),
            marker.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-action", root);
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    let out_lines = || written(&out);
    let failures = |offset: i64| -> String {
        let when = iso(offset);
        (0..2).map(|_| format!("{when} web sshd[9]: Failed password for root from 192.0.2.9 port 22 ssh2\n")).collect()
    };
    // Banned for an hour from 10 s ago; failures logged now move its end
    // 10 s later.
    let (earlier, later) = (failures(-10), failures(0));
    append(&log, &earlier);
    d.wait_for("the ban", || out_lines().len() == 1);
    append(&log, &later);
    d.wait_for("the prolonging", || out_lines().len() == 2);
    // The action's work is gone: its check fails, and the ban is applied
    // again through actionreban.
    std::fs::remove_file(&marker).unwrap();
    d.wait_for("the reban", || out_lines().len() >= 3);
    append(&marker, "");
    // 3610 s, or 3611 when the clock turned a second between the two dates.
    let lines = out_lines();
    let prolonged = lines[1].strip_prefix("prolong 192.0.2.9 ").and_then(|b| b.parse::<i64>().ok());
    assert!(matches!(prolonged, Some(3610 | 3611)), "{lines:?}\n{}", d.log());
    let bantime = prolonged.unwrap_or_default();
    assert_eq!(
        lines[..3],
        [
            "ban 192.0.2.9 3600 0".to_string(),
            format!("prolong 192.0.2.9 {bantime}"),
            format!("reban 192.0.2.9 {bantime} 0")
        ]
    );
}

/// Under `bantime.increment`, an address banned before is banned after
/// fewer failures: each counts 2^n / 2 + 1 times (fail2ban's observer).
/// fail2ban weighs on another thread, so each line here waits for its
/// "bad" count in fail2ban's log before the next.
#[test]
fn a_known_offender_is_banned_sooner_under_bantime_increment_as_in_fail2ban() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 2\nmaxretry = 3\n\
         bantime.increment = true\nbantime.multipliers = 1 100\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction =\n",
        log.display()
    );
    let f2b = Fail2ban::start(root, &jails);
    tree(root, &jails);
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    let ours = |field: &str| d.status().and_then(|s| s[field].as_u64());
    let fail = |n: u64| {
        append(&log, &format!("{} web sshd[5]: Failed password for root from 192.0.2.5 port 22 ssh2\n", iso(0)));
        d.wait_for("wasmban to count it", || ours("total_failed") == Some(n));
        f2b.wait_for("fail2ban to count it", || f2b.count("sshd", "Total failed") >= Some(n));
    };
    for n in 1..=3 {
        fail(n);
    }
    d.wait_for("wasmban's first ban", || ours("total_banned") == Some(1));
    f2b.wait_for("fail2ban's first ban", || f2b.count("sshd", "Total banned") == Some(1));
    d.wait_for("its end in wasmban", || ours("currently_banned") == Some(0));
    f2b.wait_for("its end in fail2ban", || f2b.count("sshd", "Currently banned") == Some(0));
    // Banned once before: each failure counts twice, so the second bans.
    fail(4);
    f2b.wait_for("fail2ban's observer", || std::fs::read_to_string(&f2b.log).unwrap_or_default().contains("bad -"));
    assert_eq!((ours("total_banned"), f2b.count("sshd", "Total banned")), (Some(1), Some(1)));
    fail(5);
    d.wait_for("wasmban's second ban", || ours("total_banned") == Some(2));
    f2b.wait_for("fail2ban's second ban", || f2b.count("sshd", "Total banned") == Some(2));
    // The second ban lasts 100 times the first in both, as the
    // multipliers say (fail2ban lengthens it after its actionban, wasmban
    // before).
    f2b.wait_for("fail2ban's longer ban", || ban_length_by_fail2ban(&f2b, "sshd", "192.0.2.5") == Some(200));
    assert_eq!(ban_length_by_wasmban(&d, "sshd", "192.0.2.5"), Some(200));
}

/// A host name in a log, under each `usedns` mode, on both daemons: `yes`
/// and `warn` ban its addresses (from /etc/hosts here: no DNS traffic),
/// `raw` bans the name as written, `no` bans nothing.
#[test]
fn usedns_modes_ban_as_fail2ban_bans() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let mut jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         filter = sshd\nlogpath = {}\naction =\n",
        log.display()
    );
    let modes = ["yes", "warn", "no", "raw"];
    for mode in modes {
        jails += &format!("[dns-{mode}]\nenabled = true\nusedns = {mode}\n");
    }
    let f2b = Fail2ban::start(root, &jails);
    tree(root, &jails);
    let d = Daemon::start_in(root, None);
    let running = |jail: &str| {
        let (ok, out) = d.client(&["status", jail, "--json"]);
        ok && serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|s| s["running"] == true)
    };
    d.wait_for("the jails", || modes.iter().all(|m| running(&format!("dns-{m}"))));
    let when = iso(0);
    append(
        &log,
        &(0..2)
            .map(|_| format!("{when} web sshd[3]: Failed password for root from localhost port 22 ssh2\n"))
            .collect::<String>(),
    );
    f2b.wait_for("fail2ban's bans", || f2b.count("dns-raw", "Total banned") == Some(1));
    d.wait_for("wasmban's bans", || banned_by_wasmban(&d, "dns-raw").len() == 1);
    // fail2ban's yes and warn ban what /etc/hosts gives for localhost.
    // Each fail2ban jail reads on a thread of its own, so each is waited
    // for: one of them may be behind the others.
    for jail in ["dns-yes", "dns-warn"] {
        f2b.wait_for("fail2ban's lookups", || !banned_by_fail2ban(&f2b, jail).is_empty());
        d.wait_for("both daemons' lookups", || banned_by_wasmban(&d, jail) == banned_by_fail2ban(&f2b, jail));
    }
    for mode in modes {
        let jail = format!("dns-{mode}");
        assert_eq!(
            banned_by_wasmban(&d, &jail),
            banned_by_fail2ban(&f2b, &jail),
            "{jail} (left: wasmban, right: fail2ban)"
        );
    }
    assert_eq!(banned_by_wasmban(&d, "dns-raw"), ["localhost"]);
    assert!(banned_by_wasmban(&d, "dns-no").is_empty());
    assert!(banned_by_wasmban(&d, "dns-yes").contains(&"127.0.0.1".to_string()));
}

/// A multi-line session (fail2ban's sshd filter ties a process's lines to
/// the address of its first), with its lines in separate reads: the
/// address named only by the first line is banned by the later one, as
/// fail2ban bans it.
#[test]
fn a_multi_line_session_across_reads_bans_as_in_fail2ban() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 1\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction =\n",
        log.display()
    );
    let f2b = Fail2ban::start(root, &jails);
    tree(root, &jails);
    // fail2ban's own sshd filter on both sides.
    for file in ["sshd.conf", "common.conf"] {
        std::fs::copy(Path::new("/etc/fail2ban/filter.d").join(file), root.join("conf/filter.d").join(file)).unwrap();
    }
    let d = Daemon::start(root);
    let ours = || d.status().and_then(|s| s["total_failed"].as_u64());
    let when = iso(0);
    // The session's first line, then a failure of another address to know
    // both daemons have read it.
    append(
        &log,
        &format!(
            "{when} web sshd[500]: Connection from 192.0.2.44 port 5555 on 10.0.0.1 port 22\n\
             {when} web sshd[600]: Failed password for root from 192.0.2.99 port 22 ssh2\n"
        ),
    );
    d.wait_for("wasmban to read it", || ours() == Some(1));
    f2b.wait_for("fail2ban to read it", || f2b.count("sshd", "Total failed") == Some(1));
    // The session's failure names no address.
    append(&log, &format!("{when} web sshd[500]: Disconnecting: Too many authentication failures [preauth]\n"));
    d.wait_for("wasmban's bans", || banned_by_wasmban(&d, "sshd").len() == 2);
    f2b.wait_for("fail2ban's bans", || banned_by_fail2ban(&f2b, "sshd").len() == 2);
    assert_eq!(banned_by_wasmban(&d, "sshd"), ["192.0.2.44", "192.0.2.99"]);
    assert_eq!(banned_by_wasmban(&d, "sshd"), banned_by_fail2ban(&f2b, "sshd"));
    assert_eq!(ours(), f2b.count("sshd", "Total failed"));
}

/// `ignoreip` with an address, a network and a host name, on both daemons.
#[test]
fn ignoreip_ignores_what_fail2ban_ignores() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip = 198.51.100.7 192.0.2.0/28 localhost\nbackend = polling\n\
         findtime = 1h\nbantime = 1h\nmaxretry = 1\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction =\n",
        log.display()
    );
    let f2b = Fail2ban::start(root, &jails);
    tree(root, &jails);
    let d = Daemon::start(root);
    let when = iso(0);
    let ips = ["198.51.100.7", "198.51.100.8", "192.0.2.5", "192.0.2.16", "127.0.0.1"];
    let lines: String = ips
        .iter()
        .enumerate()
        .map(|(pid, ip)| format!("{when} web sshd[{pid}]: Failed password for root from {ip} port 22 ssh2\n"))
        .collect();
    append(&log, &lines);
    d.wait_for("wasmban's bans", || banned_by_wasmban(&d, "sshd").len() == 2);
    f2b.wait_for("fail2ban's bans", || banned_by_fail2ban(&f2b, "sshd").len() == 2);
    assert_eq!(banned_by_wasmban(&d, "sshd"), ["192.0.2.16", "198.51.100.8"]);
    assert_eq!(banned_by_wasmban(&d, "sshd"), banned_by_fail2ban(&f2b, "sshd"));
}

/// `reload` runs `actionreload` of the actions of a jail it keeps.
#[test]
fn reload_runs_actionreload_as_fail2ban_does() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction = reloading\n",
        log.display()
    );
    let action = |conf: &Path, out: &Path| {
        std::fs::create_dir_all(conf.join("action.d")).unwrap();
        std::fs::write(
            conf.join("action.d/reloading.conf"),
            format!(
                "[Definition]\nactionstart = echo start >> {0}\nactionreload = echo reload <name> >> {0}\n\
                 actionban = echo ban <ip> >> {0}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(conf.join("plugin.d")).unwrap();
        crate::util::grant_shell(&conf.join("plugin.d"), "command-action", out.parent().unwrap());
    };
    let (theirs, ours) = (root.join("fail2ban.out"), root.join("wasmban.out"));
    let f2b = Fail2ban::start_with(root, &jails, |conf| action(conf, &theirs));
    tree(root, &jails);
    action(&root.join("conf"), &ours);
    let d = Daemon::start(root);
    d.wait_for("wasmban's start", || lines_of(&ours).len() == 1);
    f2b.wait_for("fail2ban's start", || lines_of(&theirs).len() == 1);
    assert!(d.client(&["reload"]).0);
    assert!(f2b.client(&["reload"]).is_some());
    d.wait_for("wasmban's reload", || lines_of(&ours).len() == 2);
    f2b.wait_for("fail2ban's reload", || lines_of(&theirs).len() == 2);
    assert_eq!(lines_of(&ours), ["reload sshd", "start"]);
    assert_eq!(lines_of(&ours), lines_of(&theirs), "left: wasmban, right: fail2ban");
}

/// How long each daemon says the ban of `ip` in `jail` lasts: fail2ban's
/// `get JAIL banip --with-time` (`IP \t START + SECONDS = END`), wasmban's
/// `banned --json`.
fn ban_length_by_fail2ban(f2b: &Fail2ban, jail: &str, ip: &str) -> Option<i64> {
    let text = f2b.client(&["get", jail, "banip", "--with-time"])?;
    let line = text.lines().find(|l| l.trim_start().starts_with(ip))?;
    line.split(" + ").nth(1)?.split(" = ").next()?.trim().parse().ok()
}

fn ban_length_by_wasmban(d: &Daemon, jail: &str, ip: &str) -> Option<i64> {
    let (ok, out) = d.client(&["banned", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
    all[jail].as_array()?.iter().find(|b| b["ip"] == ip)?["bantime"].as_i64()
}

/// Failures of an address already banned, logged later, make its ban last
/// `bantime` from the latest of them, in both daemons.
#[test]
fn failures_during_a_ban_prolong_it_as_in_fail2ban() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let jails = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction =\n",
        log.display()
    );
    let f2b = Fail2ban::start(root, &jails);
    tree(root, &jails);
    let d = Daemon::start(root);
    let failures = |offset: i64| -> String {
        let when = iso(offset);
        (0..2).map(|_| format!("{when} web sshd[4]: Failed password for root from 192.0.2.40 port 22 ssh2\n")).collect()
    };
    let (earlier, later) = (failures(-10), failures(0));
    append(&log, &earlier);
    d.wait_for("wasmban's ban", || ban_length_by_wasmban(&d, "sshd", "192.0.2.40") == Some(3600));
    f2b.wait_for("fail2ban's ban", || ban_length_by_fail2ban(&f2b, "sshd", "192.0.2.40") == Some(3600));
    append(&log, &later);
    // Both read the same dates: the ban now lasts 3600 s from 10 s later.
    d.wait_for("wasmban's longer ban", || ban_length_by_wasmban(&d, "sshd", "192.0.2.40") > Some(3600));
    f2b.wait_for("fail2ban's longer ban", || ban_length_by_fail2ban(&f2b, "sshd", "192.0.2.40") > Some(3600));
    let ours = ban_length_by_wasmban(&d, "sshd", "192.0.2.40");
    assert!(matches!(ours, Some(3610 | 3611)), "{ours:?}");
    assert_eq!(ours, ban_length_by_fail2ban(&f2b, "sshd", "192.0.2.40"), "left: wasmban, right: fail2ban");
}
