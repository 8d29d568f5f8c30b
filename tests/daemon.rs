//! `wasmban server` as admins run it: the real binary, real files, the
//! control socket, signals, restarts and kill -9. Jails here have no
//! actions (the firewall is tested in a namespace by iptables.rs): what is
//! checked is what the daemon decides, records and reports.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::daemon::{Daemon, append, copy_shipped_actions, failure, iso, tree};

fn ips(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}.{}.{}", i / 250, i % 250 + 1)).collect()
}

#[test]
fn a_restart_reads_lines_written_while_stopped_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    append(&root.join("auth.log"), &failure("192.0.2.200"));
    let d = Daemon::start(root);
    let before = ips("198.51", 5);
    append(&root.join("auth.log"), &before.iter().map(|ip| failure(ip)).collect::<String>());
    d.wait_for("the first bans", || d.status().unwrap()["total_banned"] == 5);
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());
    assert!(!root.join("sock").exists(), "the socket is removed on a clean stop");

    let after = ips("203.0", 5);
    append(&root.join("auth.log"), &after.iter().map(|ip| failure(ip)).collect::<String>());
    let d = Daemon::start(root);
    d.wait_for("the new bans", || d.status().unwrap()["total_banned"] == 5);
    let status = d.status().unwrap();
    // Exactly the five lines written while stopped were read.
    assert_eq!(status["lines"], 5, "{status}");
    let mut expected: Vec<(String, u32)> = before.iter().chain(&after).map(|ip| (ip.clone(), 1)).collect();
    expected.sort();
    // The line in the file before the first start was history (tail).
    assert_eq!(d.banned(), expected);
    assert_eq!(d.log().matches("Restore Ban").count(), 5);
}

#[test]
fn a_jail_counts_at_most_maxtracked_addresses_and_still_bans_one_that_keeps_failing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\nmaxretry = 3\nmaxtracked = 100\n");
    let d = Daemon::start(root);
    // A spray of a thousand one-off addresses, and through it one address
    // that fails every fifty lines: it stays among the most recent.
    let mut lines = String::new();
    for (i, ip) in ips("198.51", 1000).iter().enumerate() {
        lines += &failure(ip);
        if i % 50 == 0 && i <= 100 {
            lines += &failure("203.0.113.7");
        }
    }
    append(&root.join("auth.log"), &lines);
    d.wait_for("every line read", || d.status().unwrap()["lines"] == 1003);
    let status = d.status().unwrap();
    let counted = status["currently_failed"].as_u64().unwrap();
    assert!((80..=100).contains(&counted), "{status}");
    assert_eq!(d.banned(), vec![("203.0.113.7".to_string(), 1)]);
    let log = d.log();
    assert!(log.contains("maxtracked = 100") && log.contains("forgotten"), "{log}");
}

#[test]
fn kill_9_during_a_ban_storm_then_restart_keeps_every_ban() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let d = Daemon::start(root);
    let storm = ips("10.20", 20_000);
    append(&root.join("auth.log"), &storm.iter().map(|ip| failure(ip)).collect::<String>());
    d.wait_for("the storm to start", || d.status().unwrap()["total_banned"].as_u64().unwrap() > 0);
    d.signal(libc::SIGKILL);
    let _ = d.wait();

    let d = Daemon::start(root);
    d.wait_for("every ban", || d.status().unwrap()["currently_banned"] == 20_000);
    let banned = d.banned();
    let mut expected: Vec<(String, u32)> = storm.iter().map(|ip| (ip.clone(), 1)).collect();
    expected.sort();
    // Every address banned, each once: nothing lost, nothing counted twice.
    assert_eq!(banned.len(), expected.len());
    assert!(banned == expected, "bans differ from the storm's addresses");
}

#[test]
fn rotation_by_rename_and_by_copytruncate_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let log = root.join("auth.log");
    append(&log, "");
    let d = Daemon::start(root);
    append(&log, &failure("192.0.2.1"));
    d.wait_for("the first ban", || d.status().unwrap()["total_banned"] == 1);
    // logrotate's default: rename, then the service writes a new file (a
    // last line may still reach the old one).
    std::fs::rename(&log, root.join("auth.log.1")).unwrap();
    append(&root.join("auth.log.1"), &failure("192.0.2.2"));
    append(&log, &failure("192.0.2.3"));
    d.wait_for("bans from both files", || d.status().unwrap()["total_banned"] == 3);
    // copytruncate: the file is copied away and emptied in place.
    std::fs::copy(&log, root.join("auth.log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &failure("192.0.2.4"));
    d.wait_for("the ban after truncation", || d.status().unwrap()["total_banned"] == 4);
    let ips: Vec<String> = d.banned().into_iter().map(|(ip, _)| ip).collect();
    assert_eq!(ips, ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]);
}

#[test]
fn a_log_that_appears_later_is_waited_for_and_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\nbackend = polling\n");
    let d = Daemon::start(root);
    let status = d.status().unwrap();
    assert_eq!(status["waiting"][0], root.join("auth.log").display().to_string());
    assert!(d.client(&["ping"]).0);
    append(&root.join("auth.log"), &(failure("192.0.2.50") + &failure("192.0.2.51")));
    d.wait_for("bans from the new file", || d.status().unwrap()["total_banned"] == 2);
}

fn raw_request(socket: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_socket_is_private_and_bad_messages_get_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let d = Daemon::start(root);
    let socket = root.join("sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A client that connects and says nothing does not block the others.
    let _silent = UnixStream::connect(&socket).unwrap();
    let huge = vec![b'x'; 200_000];
    let cases: [&[u8]; 7] = [
        b"hello\n",
        b"\xff\xfe\xfd\n",
        &huge,
        br#"{"command":"format","disk":"/"}"#,
        br#"{"command":"ban","jail":"sshd","ip":"$(reboot)"}"#,
        br#"{"command":"unban","ip":"192.0.2.1","all":true}"#,
        br#"{"command":"ban","jail":"nope","ip":"192.0.2.1"}"#,
    ];
    for case in cases {
        let reply: Value = serde_json::from_str(raw_request(&socket, case).trim()).unwrap();
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(!reply["error"].as_str().unwrap().is_empty());
    }
    // Half a request, then the client goes away.
    drop(UnixStream::connect(&socket).unwrap().write_all(br#"{"comm"#));
    let (ok, out) = d.client(&["ban", "sshd", "not-an-address"]);
    assert!(!ok && out.contains("not an IPv4 or IPv6 address"), "{out}");
    assert_eq!(d.client(&["ping"]), (true, "Server replied: pong\n".to_string()));
    assert_eq!(d.client(&["ping", "--json"]), (true, "\"pong\"\n".to_string()));
    assert!(d.client(&["ban", "sshd", "2001:db8::7"]).0);
    assert_eq!(d.banned(), [("2001:db8::7".to_string(), 1)]);
    let (ok, out) = d.client(&["unban", "--all"]);
    assert!(ok && out.trim() == "1", "{out}");
}

#[test]
fn sighup_restarts_a_changed_jail_and_keeps_its_bans() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &failure("192.0.2.9"));
    d.wait_for("the ban", || d.status().unwrap()["total_banned"] == 1);
    std::fs::write(root.join("conf/jail.local"), "[sshd]\nmaxretry = 2\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("the reload", || d.log().contains(r#"reloaded: started ["sshd"], stopped ["sshd"]"#));
    d.wait_for("the restart", || d.status().is_some_and(|s| s["running"] == true && s["total_banned"] == 0));
    assert_eq!(d.banned(), [("192.0.2.9".to_string(), 1)]);
    // maxretry is now 2: one failure is counted, not banned.
    append(&root.join("auth.log"), &failure("192.0.2.10"));
    d.wait_for("the failure", || d.status().unwrap()["total_failed"] == 1);
    assert_eq!(d.status().unwrap()["currently_banned"], 1);
    let (ok, out) = d.client(&["reload", "nosuch"]);
    assert!(!ok && out.contains("no enabled jail named nosuch"), "{out}");
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
}

#[test]
fn the_journal_backend_follows_a_real_journal_and_resumes_after_a_restart() {
    if !Path::new(crate::util::journal::JOURNAL_REMOTE).exists()
        || Command::new("journalctl").arg("--version").output().is_err()
    {
        crate::util::skipped!(
            "the_journal_backend_follows_a_real_journal: journalctl or systemd-journal-remote missing"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let journal = root.join("system.journal");
    tree(root, &format!("[sshd]\nbackend = systemd[journalfiles=\"{}\"]\nmaxretry = 2\n", journal.display()));
    // The shipped filter matches sshd's unit or command name.
    std::fs::write(root.join("conf/filter.d/sshd.local"), "[Init]\njournalmatch = _COMM=sshd\n").unwrap();
    // History from before the start is not counted (the journal's tail).
    crate::util::journal::append(&journal, &[("sshd", "Failed password for root from 192.0.2.30 port 22 ssh2"); 3]);
    let d = Daemon::start(root);
    assert!(d.status().unwrap()["files"][0].as_str().unwrap().starts_with("journal"));
    crate::util::journal::append(
        &journal,
        &[
            ("sshd", "Failed password for root from 192.0.2.31 port 22 ssh2"),
            ("cron", "Failed password for root from 192.0.2.32 port 22 ssh2"),
            ("sshd", "Invalid user x from 192.0.2.31 port 22"),
            ("sshd", "Failed password for root from 192.0.2.33 port 22 ssh2"),
        ],
    );
    d.wait_for("the journal ban", || d.status().unwrap()["total_banned"] == 1);
    // As fail2ban-client shows a journal jail: its matches, not files.
    let (_, text) = d.client(&["status", "sshd"]);
    assert!(text.contains("|  `- Journal matches:\t_COMM=sshd\n"), "{text}");
    assert_eq!(d.status().unwrap()["total_failed"], 3, "the cron entry is not sshd's");
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());

    // Written while stopped: read after the saved cursor, once. (Failure
    // counts live in memory, as fail2ban's do: .33 needs two again.)
    crate::util::journal::append(&journal, &[("sshd", "Failed password for root from 192.0.2.33 port 22 ssh2"); 2]);
    let d = Daemon::start(root);
    d.wait_for("the ban after the restart", || d.status().unwrap()["total_banned"] == 1);
    let status = d.status().unwrap();
    assert_eq!(status["lines"], 2, "{status}");
    let banned: Vec<String> = d.banned().into_iter().map(|(ip, _)| ip).collect();
    assert_eq!(banned, ["192.0.2.31", "192.0.2.33"]);
}

#[test]
fn bans_reach_the_firewall_and_sigterm_tears_it_down_in_a_namespace() {
    if let Some(why) = crate::util::root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("bans_reach_the_firewall_and_sigterm_tears_it_down_in_a_namespace: {why}");
        return;
    }
    let ns = crate::util::NetNs::new("daemon");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        "[sshd]
action = iptables-multiport[name=sshd, port=\"22,2222\"]
",
    );
    copy_shipped_actions(root);
    let rules = |program: &str| ns.exec(&[program, "-w", "-S"]);

    let d = Daemon::start_ready(root, Some(&ns.name));
    assert!(rules("iptables").contains("-A INPUT -p tcp -m multiport --dports 22,2222 -j f2b-sshd"));
    append(&root.join("auth.log"), &failure("192.0.2.40"));
    d.wait_for("the rule", || rules("iptables").contains("-A f2b-sshd -s 192.0.2.40/32 -j REJECT"));
    assert!(d.client(&["ban", "sshd", "2001:db8::40"]).0);
    assert!(rules("ip6tables").contains("-A f2b-sshd -s 2001:db8::40/128 -j REJECT"), "{}", rules("ip6tables"));
    assert!(d.client(&["unban", "192.0.2.40"]).0);
    assert!(!rules("iptables").contains("192.0.2.40"));
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());
    for program in ["iptables", "ip6tables"] {
        assert!(!rules(program).contains("f2b-"), "{program} rules left after SIGTERM: {}", rules(program));
    }

    // A restart puts the ban still in force back into the firewall.
    let d = Daemon::start_ready(root, Some(&ns.name));
    assert!(rules("ip6tables").contains("-A f2b-sshd -s 2001:db8::40/128 -j REJECT"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!rules("ip6tables").contains("f2b-"));
}

#[test]
fn recidive_works_on_the_daemons_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let own_log = root.join("wasmban.log");
    tree(
        root,
        &format!(
            "[recidive]\nenabled = true\nfilter = recidive\nlogpath = {}\nmaxretry = 2\nbantime = 1w\n",
            own_log.display()
        ),
    );
    std::fs::write(root.join("conf/wasmban.conf"), format!("[Definition]\nlogtarget = {}\n", own_log.display()))
        .unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d/recidive.conf");
    std::fs::copy(shipped, root.join("conf/filter.d/recidive.conf")).unwrap();
    let d = Daemon::start(root);
    let recidive = || {
        let (ok, out) = d.client(&["status", "recidive", "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    d.wait_for("the recidive jail", || recidive()["running"] == true);
    for _ in 0..2 {
        assert!(d.client(&["ban", "sshd", "192.0.2.60"]).0);
        assert!(d.client(&["unban", "sshd", "192.0.2.60"]).0);
    }
    d.wait_for("the recidive ban", || recidive()["total_banned"] == 1);
    assert_eq!(recidive()["banned"][0]["ip"], "192.0.2.60");
    let log = std::fs::read_to_string(&own_log).unwrap();
    assert!(log.contains("fail2ban.actions        ["), "{log}");
    assert!(log.contains("NOTICE  [recidive] Ban 192.0.2.60"), "{log}");
}

#[test]
fn a_hostile_filter_stalls_only_its_own_jail_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hostile_log = crate::util::daemon::hostile_tree(root, "call-timeout-ms = 300\nmemory-mb = 32\n");
    let d = Daemon::start(root);
    let hostile = || serde_json::from_str::<Value>(&d.client(&["status", "hostile", "--json"]).1).unwrap();
    d.wait_for("the hostile jail", || hostile()["running"] == true);
    append(&hostile_log, "loop\n");
    // The other jail bans while the hostile one spins.
    append(&root.join("auth.log"), &failure("192.0.2.80"));
    d.wait_for("the sshd ban", || d.status().unwrap()["total_banned"] == 1);
    // One trap per batch: each line is written once the last has failed.
    for (n, line) in ["hog\n", "panic\n"].iter().enumerate() {
        d.wait_for("a trap to be logged", || d.log().matches("filter failed on").count() > n);
        append(&hostile_log, line);
    }
    d.wait_for("three traps", || d.log().matches("filter failed on").count() >= 3);
    let log = d.log();
    assert!(log.contains("`feed` timed out") && log.contains("panicked"), "{log}");
    // Rebuilt after each trap: the next batch is scanned.
    append(&hostile_log, "fail 192.0.2.81\n");
    d.wait_for("the hostile jail's ban", || hostile()["total_banned"] == 1);
    assert!(d.client(&["ping"]).0);
}

/// A classic action.d file is off (the jail running without it) until the
/// admin grants the shell and reloads; then it runs, and log lines crafted to break out of every quoting (and
/// a CVE-2021-32749-style `\n~!` for mail's tilde escapes, through a fake
/// mail that obeys them) run nothing.
#[test]
fn a_classic_action_runs_with_the_shell_grant_and_log_lines_cannot_inject() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = root.join("action.out");
    let fake_mail = root.join("mail");
    std::fs::write(
        &fake_mail,
        format!(
            "#!/bin/sh\nwhile IFS= read -r l; do case \"$l\" in '~!'*) sh -c \"${{l#??}}\";; *) printf '%s\\n' \"$l\" >> {out};; esac; done\n",
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake_mail, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::write(
        root.join("conf/action.d/note.conf"),
        format!(
            "[Definition]\nactionstart = echo start <name> >> {out}\n\
             actionban = echo \"dq <matches>\" >> {out}\n            echo 'sq <matches>' >> {out}\n            echo uq <matches> >> {out}\n            printf %%b \"<matches>\\n\" | {mail}\n            echo ban <ip> <failures> >> {out}\n\
             actionunban = echo unban <ip> >> {out}\nactionstop = echo stop <name> >> {out}\n[Init]\nname = default\n",
            out = out.display(),
            mail = fake_mail.display()
        ),
    )
    .unwrap();
    tree(root, "[sshd]\naction = note[name=ssh]\n");
    // Without the grant the jail runs without the action, and the log and
    // status say what to add.
    let d = Daemon::start(root);
    d.wait_for("the refusal", || d.log().contains("add `shell = true` under [grants]"));
    let (_, status) = d.client(&["status", "sshd"]);
    assert!(!status.contains("Problem"), "{status}");
    assert!(status.contains("Action off:\taction note (") && status.contains("add `shell = true`"), "{status}");

    // The grant, then a reload: the jail is rebuilt with its action.
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-action", root);
    assert!(d.client(&["reload"]).0);
    d.wait_for("the action to start", || std::fs::read_to_string(&out).unwrap_or_default().contains("start ssh"));
    d.wait_for("the status without the action off", || {
        let (_, status) = d.client(&["status", "sshd"]);
        status.contains("Currently banned") && !status.contains("Action off")
    });
    let pwned = root.join("PWNED");
    let user = format!(
        "$(touch {p}) `touch {p}` \"; touch {p}; echo \" '; touch {p}; echo ' \\n~! touch {p}",
        p = pwned.display()
    );
    append(
        &root.join("auth.log"),
        &format!("{} web sshd[7]: Failed password for invalid user {user} from 192.0.2.99 port 22 ssh2\n", iso(0)),
    );
    d.wait_for("the ban", || std::fs::read_to_string(&out).unwrap_or_default().contains("ban 192.0.2.99 1"));
    assert!(d.client(&["unban", "192.0.2.99"]).0);
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!pwned.exists(), "a log line ran a command:\n{text}");
    assert!(text.starts_with("start ssh\n") && text.ends_with("unban 192.0.2.99\nstop ssh\n"), "{text}");
    // The attacker's text arrives whole, as text, in every quoting.
    for prefix in ["dq ", "sq ", "uq "] {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap();
        assert!(line.contains(&format!("$(touch {})", pwned.display())), "{line}");
    }
}

#[test]
fn bans_that_ended_while_stopped_are_lifted_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    std::fs::create_dir_all(root.join("state")).unwrap();
    let db = root.join("state/wasmban.sqlite3");
    {
        let mut store = wasmban::store::Store::open(&db).unwrap();
        let ended = wasmban::store::BanRecord {
            jail: "sshd".into(),
            id: "192.0.2.120".into(),
            time: 1_000_000,
            bantime: 600,
            bancount: 1,
            failures: 5,
            matches: vec![],
            fields: vec![],
            origin: wasmban::store::Origin::Failures,
        };
        store.record_ban(&ended).unwrap();
    }
    let d = Daemon::start(root);
    assert!(d.banned().is_empty());
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    // Lifted by the start: nothing is left to expire.
    let mut store = wasmban::store::Store::open(&db).unwrap();
    assert!(store.expire(2_000_000_000).unwrap().is_empty());
}

/// A ruleset flushed under the running daemon (another tool, an admin's
/// `nft flush ruleset`): the next ban fails, the action's check rebuilds
/// its table, and every ban in force is applied again, not only the new one.
#[test]
fn a_firewall_flushed_under_the_daemon_is_repaired_with_every_ban() {
    if let Some(why) = crate::util::root_skip_reason(&["nft", "ip"]) {
        crate::util::skipped!("a_firewall_flushed_under_the_daemon_is_repaired_with_every_ban: {why}");
        return;
    }
    let ns = crate::util::NetNs::new("repair");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\naction = nftables-multiport[name=sshd]\n");
    copy_shipped_actions(root);
    let set = || ns.exec(&["nft", "list", "ruleset"]);
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.50"));
    d.wait_for("the first ban", || set().contains("192.0.2.50"));
    ns.exec(&["nft", "flush", "ruleset"]);
    append(&root.join("auth.log"), &failure("192.0.2.51"));
    d.wait_for("the repair", || set().contains("192.0.2.51") && set().contains("192.0.2.50"));
    d.wait_for("the repair in the log", || {
        d.log().contains("rebuilding it") && d.log().contains("added again: 192.0.2.50")
    });
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!set().contains("wasmban"));
}

/// Every `reconcile` seconds each action compares its firewall state with
/// the bans in force and repairs the drift, logging what it changed: a ban
/// rule deleted by hand comes back, a rule the daemon does not hold goes,
/// and a flushed structure is rebuilt with its bans, without waiting for
/// the next ban to fail.
#[test]
fn drift_in_the_firewall_is_repaired_by_reconciliation() {
    if let Some(why) = crate::util::root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("drift_in_the_firewall_is_repaired_by_reconciliation: {why}");
        return;
    }
    let ns = crate::util::NetNs::new("reconcile");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\naction = iptables-multiport[name=sshd, port=22]\nreconcile = 1\n");
    copy_shipped_actions(root);
    let rules = || ns.exec(&["iptables", "-w", "-S"]);
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.60"));
    d.wait_for("the ban", || rules().contains("-A f2b-sshd -s 192.0.2.60/32 -j REJECT"));

    ns.exec(&[
        "iptables",
        "-w",
        "-D",
        "f2b-sshd",
        "-s",
        "192.0.2.60",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-port-unreachable",
    ]);
    ns.exec(&["iptables", "-w", "-I", "f2b-sshd", "1", "-s", "192.0.2.61", "-j", "DROP"]);
    d.wait_for("the repair of the bans", || {
        let r = rules();
        r.contains("-A f2b-sshd -s 192.0.2.60/32 -j REJECT") && !r.contains("192.0.2.61")
    });
    // The action logs what it changed once its commands ran.
    d.wait_for("the repairs in the log", || {
        let log = d.log();
        log.contains("inserted again: 192.0.2.60") && log.contains("deleted: 192.0.2.61/32")
    });

    ns.exec(&["iptables", "-w", "-D", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"]);
    ns.exec(&["iptables", "-w", "-F", "f2b-sshd"]);
    d.wait_for("the rebuild", || {
        let r = rules();
        r.contains("-j f2b-sshd") && r.contains("-A f2b-sshd -s 192.0.2.60/32 -j REJECT")
    });
    d.wait_for("the rebuild in the log", || d.log().contains("rebuilding it"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!rules().contains("f2b-"));
}
