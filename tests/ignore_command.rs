//! `ignorecommand` and `ignorecache` against fail2ban's own daemon, and
//! fail2ban's Googlebot check carried out with DNS lookups only, in a
//! network namespace whose /etc/hosts the test writes.

use std::path::Path;
use std::process::Command;

use crate::jail_options::{banned_by_fail2ban, banned_by_wasmban, lines_of};
use crate::util::daemon::{Daemon, append, iso, tree};
use crate::util::fail2ban::Fail2ban;
use crate::util::{NetNs, root_skip_reason, skipped};

/// A command that ignores 192.0.2.1 only, fails with garbage for
/// 192.0.2.3, and writes each address it is asked about to the file its
/// second argument names.
fn known_script(root: &Path) -> String {
    let script = root.join("known.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$1\" >> \"$2\"\n\
         if [ \"$1\" = 192.0.2.3 ]; then printf '\\001garbage\\n' >&2; exit 2; fi\n\
         [ \"$1\" = 192.0.2.1 ]\n",
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(&script).status().unwrap();
    script.display().to_string()
}

#[test]
fn ignorecommand_and_its_cache_decide_as_in_fail2ban() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    let script = known_script(root);
    let jails = |calls: &Path| {
        format!(
            "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
             [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\naction =\n\
             ignorecommand = {script} <ip> {}\nignorecache = key=\"<ip>\", max-count=10, max-time=5m\n",
            log.display(),
            calls.display()
        )
    };
    let (theirs, ours) = (root.join("fail2ban.calls"), root.join("wasmban.calls"));
    let f2b = Fail2ban::start(root, &jails(&theirs));
    tree(root, &jails(&ours));
    // Without the shell granted, the jail does not start, and says what
    // to add where.
    let d = Daemon::start_in(root, None);
    d.wait_for("the refusal", || d.log().contains("command-ignore"));
    assert!(d.log().contains("shell = true"), "{}", d.log());
    assert!(!d.status().is_some_and(|s| s["running"] == true), "{}", d.log());
    drop(d);
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-ignore", root);
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));

    let when = iso(0);
    let mut lines = String::new();
    for (pid, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        for _ in 0..3 {
            lines += &format!("{when} web sshd[{pid}]: Failed password for root from {ip} port 22 ssh2\n");
        }
    }
    append(&log, &lines);
    // A command that fails counts the failure: 192.0.2.3 is banned too.
    d.wait_for("wasmban's bans", || d.status().is_some_and(|s| s["total_banned"] == 2));
    f2b.wait_for("fail2ban's bans", || f2b.count("sshd", "Total banned") == Some(2));
    assert_eq!(banned_by_wasmban(&d, "sshd"), ["192.0.2.2", "192.0.2.3"]);
    assert_eq!(banned_by_wasmban(&d, "sshd"), banned_by_fail2ban(&f2b, "sshd"));
    // The cache asks once per address.
    assert_eq!(lines_of(&ours), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    assert_eq!(lines_of(&ours), lines_of(&theirs), "left: wasmban, right: fail2ban");
    assert!(d.log().contains("Ignore 192.0.2.1 by command"), "{}", d.log());
    let failed = d.log().lines().find(|l| l.contains("status 2")).unwrap_or_default().to_string();
    assert!(failed.contains("[sshd]") && failed.contains("192.0.2.3") && failed.contains("garbage"), "{}", d.log());
}

/// Now as Apache writes it: `04/Dec/2026:15:00:00 +0000`.
fn apache_now() -> String {
    let out = Command::new("date").args(["-u", "+%d/%b/%Y:%H:%M:%S +0000"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn fail2bans_googlebot_check_runs_with_dns_lookups_and_no_shell() {
    if let Some(why) = root_skip_reason(&["ip"]) {
        return skipped!("{why}");
    }
    let filter = Path::new("/etc/fail2ban/filter.d/apache-fakegooglebot.conf");
    if !filter.is_file() {
        return skipped!("fail2ban's apache-fakegooglebot filter is not installed (Debian package fail2ban)");
    }
    let ns = NetNs::new("crawler");
    // The namespace's own /etc/hosts, which `ip netns exec` puts in place
    // of the machine's for the daemon it starts.
    std::fs::write(
        ns.etc().join("hosts"),
        "127.0.0.1 localhost\n192.0.2.66 crawl-192-0-2-66.googlebot.com\n192.0.2.88 crawl.notgoogle.example\n",
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("access.log");
    append(&log, "");
    tree(
        root,
        &format!(
            "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\n\
             [apache-fakegooglebot]\nenabled = true\nfilter = apache-fakegooglebot\nlogpath = {}\nmaxretry = 1\n\
             action = hostrec\nignorecommand = /etc/fail2ban/filter.d/ignorecommands/apache-fakegooglebot <ip>\n",
            log.display()
        ),
    );
    // A classic action that writes each ban's `<ip-host>`, looked up with
    // the shell grant's DNS in the namespace.
    let out = root.join("hosts.out");
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::write(
        root.join("conf/action.d/hostrec.conf"),
        format!("[Definition]\nactionban = echo \"<ip>=<ip-host>\" >> {}\n", out.display()),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-action", root);
    std::fs::create_dir_all(root.join("conf/filter.d")).unwrap();
    std::fs::copy(filter, root.join("conf/filter.d/apache-fakegooglebot.conf")).unwrap();
    let d = Daemon::start_in(root, Some(&ns.name));
    let status = || {
        let (ok, out) = d.client(&["status", "apache-fakegooglebot", "--json"]);
        ok.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
    };
    d.wait_for("the jail", || status().is_some_and(|s| s["running"] == true));
    let when = apache_now();
    let mut lines = String::new();
    // The real crawler, one with no name, and one whose name is not Google's.
    for ip in ["192.0.2.66", "192.0.2.77", "192.0.2.88"] {
        lines += &format!(
            "{ip} - - - [{when}] example.com \"GET / HTTP/1.1\" 200 814 \"-\" \"Mozilla/5.0 (compatible; \
             Googlebot/2.1; +http://www.google.com/bot.html)\"\n"
        );
    }
    append(&log, &lines);
    d.wait_for("the bans", || status().is_some_and(|s| s["total_banned"] == 2));
    assert_eq!(banned_by_wasmban(&d, "apache-fakegooglebot"), ["192.0.2.77", "192.0.2.88"], "{}", d.log());
    assert!(d.log().contains("Ignore 192.0.2.66 by command"), "{}", d.log());
    d.wait_for("the action", || lines_of(&out).len() == 2);
    assert_eq!(lines_of(&out), ["192.0.2.77=", "192.0.2.88=crawl.notgoogle.example"]);
}
