//! fail2ban-client habits against wasmban: fail2ban's daemon and
//! wasmban's, started by the test on one jail configuration and fed the
//! same log, asked the same commands, one through the real
//! fail2ban-client, the other through wasmban installed under the name
//! `fail2ban-client` (a link, as the optional package installs it). Where
//! scripts parse the output, it must be the same, byte for byte.

use std::path::Path;
use std::process::Command;

use crate::util::daemon::{BIN, Daemon, append, failure, tree};
use crate::util::fail2ban::Fail2ban;
use crate::util::skipped;

#[test]
fn fail2ban_client_commands_answer_as_fail2bans_own() {
    if let Some(why) = crate::util::fail2ban::missing() {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("auth.log");
    append(&log, "");
    // One jail, the same for both: the stock sshd filter, two failures to
    // a ban, no actions.
    let jail = format!(
        "[DEFAULT]\nignoreself = false\nignoreip =\nbackend = polling\nfindtime = 1h\nbantime = 1h\nmaxretry = 2\n\
         action =\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\n",
        log.display()
    );
    let f2b = Fail2ban::start(root, &jail);
    tree(root, &jail);
    let d = Daemon::start(root);
    let lines: String =
        ["192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().map(|ip| failure(ip)).collect();
    append(&log, &lines);
    f2b.wait_for("fail2ban's bans", || f2b.count("sshd", "Total banned") == Some(2));
    d.wait_for("wasmban's bans", || d.status().is_some_and(|s| s["total_banned"] == 2 && s["total_failed"] == 5));

    // wasmban under fail2ban-client's name.
    let link = root.join("fail2ban-client");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let wasmban = |args: &[&str]| {
        let out = Command::new(&link).arg("-s").arg(root.join("sock")).args(args).output().unwrap();
        assert!(out.status.success(), "fail2ban-client (wasmban) {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let fail2ban = |args: &[&str]| f2b.client(args).unwrap_or_else(|| panic!("fail2ban-client {args:?} failed"));
    let same = |args: &[&str]| {
        let (theirs, ours) = (fail2ban(args), wasmban(args));
        assert_eq!(ours, theirs, "`fail2ban-client {}` differs (left: wasmban, right: fail2ban)", args.join(" "));
    };
    same(&["ping"]);
    same(&["status"]);
    same(&["status", "sshd"]);
    same(&["status", "sshd", "short"]);
    same(&["status", "sshd", "basic"]);
    same(&["banned"]);
    same(&["banned", "192.0.2.1", "192.0.2.9"]);
    for key in ["bantime", "findtime", "maxretry", "maxmatches", "logpath", "actions", "banip"] {
        same(&["get", "sshd", key]);
    }
    same(&["get", "sshd", "banip", ","]);
    // The interactive mode: the same answers, after the same prompts.
    let interactive = |program: &Path| {
        let mut child = Command::new(program)
            .arg("-s")
            .arg(if program == link.as_path() { root.join("sock") } else { f2b.sock.clone() })
            .arg("-i")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"status sshd short\nget sshd findtime\n\n'unclosed\nexit\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{program:?} -i: {}", String::from_utf8_lossy(&out.stderr));
        // After the banner (fail2ban's names fail2ban).
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text[text.find("fail2ban> ").unwrap()..].to_string()
    };
    assert_eq!(interactive(&link), interactive(Path::new("fail2ban-client")));

    same(&["unban", "192.0.2.1", "192.0.2.2"]);
    same(&["status", "sshd"]);
    same(&["banned"]);
    same(&["set", "sshd", "banip", "192.0.2.20", "192.0.2.21"]);
    same(&["get", "sshd", "banip"]);
    same(&["set", "sshd", "unbanip", "192.0.2.20"]);
    same(&["set", "sshd", "unbanip", "192.0.2.21", "192.0.2.99"]);
    same(&["status", "sshd"]);
    // Runtime settings, until the next reload.
    same(&["set", "sshd", "bantime", "2h"]);
    same(&["set", "sshd", "findtime", "30m"]);
    same(&["set", "sshd", "maxretry", "1"]);
    same(&["set", "sshd", "maxmatches", "3"]);
    for key in ["bantime", "findtime", "maxretry", "maxmatches"] {
        same(&["get", "sshd", key]);
    }
    let other_log = root.join("other.log");
    append(&other_log, "");
    let other = other_log.display().to_string();
    for command in [
        &["set", "sshd", "addignoreip", "192.0.2.40", "198.51.100.0/24"][..],
        &["get", "sshd", "ignoreip"],
        &["set", "sshd", "delignoreip", "192.0.2.40"],
        &["set", "sshd", "usedns", "no"],
        &["get", "sshd", "usedns"],
        &["get", "sshd", "maxlines"],
        &["set", "sshd", "maxlines", "2"],
        &["get", "sshd", "ignoreself"],
        &["set", "sshd", "bantime.increment", "true"],
        &["set", "sshd", "bantime.maxtime", "1d"],
        &["set", "sshd", "bantime.factor", "2"],
        &["get", "sshd", "bantime.rndtime"],
        &["get", "sshd", "bantime.overalljails"],
        &["set", "sshd", "addlogpath", &other, "tail"],
        &["get", "sshd", "logpath"],
        &["set", "sshd", "dellogpath", &other],
        &["set", "sshd", "idle", "on"],
        &["set", "sshd", "idle", "off"],
        &["set", "sshd", "attempt", "192.0.2.50", "first", "second"],
    ] {
        same(command);
    }
    // An action added at run time is given every ban in force (192.0.2.50,
    // from the attempts); removed, it stops.
    let noted = root.join("note.out");
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/action.d/note.conf"),
        format!(
            "[Definition]\nactionban = echo ban <ip> >> {0}\nactionunban = echo unban <ip> >> {0}\n\
             actionstop = echo stop >> {0}\n",
            noted.display()
        ),
    )
    .unwrap();
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-action", root);
    same(&["set", "sshd", "addaction", "note"]);
    same(&["get", "sshd", "actions"]);
    assert_eq!(std::fs::read_to_string(&noted).unwrap(), "ban 192.0.2.50\n");
    same(&["set", "sshd", "delaction", "note"]);
    same(&["get", "sshd", "actions"]);
    assert_eq!(std::fs::read_to_string(&noted).unwrap(), "ban 192.0.2.50\nstop\n");
    let missing = Command::new(&link)
        .arg("-s")
        .arg(root.join("sock"))
        .args(["set", "sshd", "addaction", "no-such-action"])
        .output()
        .unwrap();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("not found"));
    // maxretry 1 is in force: one failure bans, for the new bantime.
    append(&log, &failure("192.0.2.30"));
    d.wait_for("the ban at the first failure", || d.banned().iter().any(|(ip, _)| ip == "192.0.2.30"));
    let (_, listing) = d.client(&["banned", "--json"]);
    let bans: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let ban = bans["sshd"].as_array().unwrap().iter().find(|b| b["ip"] == "192.0.2.30").unwrap().clone();
    // bantime 2h, bantime.factor 2 (bantime.increment on): a first ban lasts 4h.
    assert_eq!(ban["bantime"], 14400, "{ban}");
    // An idle jail leaves lines unread until it is woken.
    assert_eq!(wasmban(&["set", "sshd", "idle", "on"]).trim(), "True");
    assert_eq!(wasmban(&["get", "sshd", "idle"]).trim(), "True");
    append(&log, &failure("192.0.2.31"));
    let lines_before = d.status().unwrap()["lines"].clone();
    assert_eq!(wasmban(&["set", "sshd", "idle", "off"]).trim(), "False");
    d.wait_for("the line read after idle", || d.banned().iter().any(|(ip, _)| ip == "192.0.2.31"));
    assert!(lines_before.as_u64() < d.status().unwrap()["lines"].as_u64());
    // A filter changed at run time: a new failregex counts at once.
    let added = wasmban(&["set", "sshd", "addfailregex", "^Custom refusal for <HOST>$"]);
    assert!(added.starts_with("The following regular expression are defined:\n|- [0]: "), "{added}");
    assert!(added.ends_with("]: ^Custom refusal for <HOST>$\n"), "{added}");
    append(
        &log,
        &failure("192.0.2.32")
            .replace("Failed password for root from 192.0.2.32 port 22 ssh2", "Custom refusal for 192.0.2.32"),
    );
    d.wait_for("the ban by the added failregex", || d.banned().iter().any(|(ip, _)| ip == "192.0.2.32"));
    let regexes = wasmban(&["get", "sshd", "failregex"]).lines().count() - 1;
    let removed = wasmban(&["set", "sshd", "delfailregex", &(regexes - 1).to_string()]);
    assert!(!removed.contains("Custom refusal"), "{removed}");
    // A bad value changes nothing and says why.
    let bad = Command::new(&link)
        .arg("-s")
        .arg(root.join("sock"))
        .args(["set", "sshd", "addfailregex", "^(unclosed <HOST>"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "a regex that does not compile was taken");
    assert_eq!(wasmban(&["get", "sshd", "failregex"]).lines().count() - 1, regexes - 1);
    // A reload puts the configuration's values back.
    assert!(d.client(&["reload"]).0);
    d.wait_for("the jail after the reload", || d.status().is_some_and(|s| s["running"] == true));
    assert_eq!(wasmban(&["get", "sshd", "maxretry"]).trim(), "2");
    assert_eq!(wasmban(&["get", "sshd", "bantime"]).trim(), "3600");

    // The resolved configuration, as fail2ban-client -d writes it.
    let dumped = |program: &Path, confdir: &Path| {
        let out = Command::new(program).arg("-c").arg(confdir).arg("-d").output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect::<Vec<_>>()
    };
    let ours = dumped(&link, &root.join("conf"));
    let theirs = dumped(Path::new("fail2ban-client"), &root.join("f2b"));
    for line in [
        "['add', 'sshd', 'polling']",
        "['set', 'sshd', 'usedns', 'warn']",
        "['set', 'sshd', 'maxlines', 1]",
        "['set', 'sshd', 'maxretry', 2]",
        "['set', 'sshd', 'findtime', '1h']",
        "['set', 'sshd', 'bantime', '1h']",
        "['start', 'sshd']",
    ] {
        assert!(theirs.iter().any(|l| l == line), "fail2ban's -d has no {line}: {theirs:#?}");
        assert!(ours.iter().any(|l| l == line), "wasmban's -d has no {line}: {ours:#?}");
    }

    // fail2ban 1.1's stats table (1.0 has none to compare with): the jail,
    // how it reads, its counts.
    let stats = wasmban(&["stats"]);
    let row = stats.lines().find(|l| l.starts_with(" sshd ")).unwrap_or_else(|| panic!("{stats}"));
    assert!(row.contains("polling"), "{stats}");
    let status = d.status().unwrap();
    let cells: Vec<&str> = row.split(['|', '\u{2551}', '\u{2502}']).map(str::trim).collect();
    assert_eq!(
        cells[2..],
        [
            status["currently_failed"].to_string(),
            status["total_failed"].to_string(),
            status["currently_banned"].to_string(),
            status["total_banned"].to_string()
        ],
        "{stats}"
    );

    // --json beside the text.
    let (ok, json) = d.client(&["get", "sshd", "ignoreip", "--json"]);
    assert!(ok && serde_json::from_str::<serde_json::Value>(&json).is_ok_and(|v| v.is_array()), "{json}");

    // No daemon needed.
    for value in ["1h30m", "1w", "10m 5s", "-1"] {
        let theirs = Command::new("fail2ban-client").args(["--str2sec", value]).output().unwrap();
        let ours = Command::new(&link).args(["--str2sec", value]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&ours.stdout), String::from_utf8_lossy(&theirs.stdout), "--str2sec {value}");
    }
    // A flavor wasmban does not have is refused, not ignored.
    let cymru =
        Command::new(&link).arg("-s").arg(root.join("sock")).args(["status", "sshd", "cymru"]).output().unwrap();
    assert!(!cymru.status.success() && String::from_utf8_lossy(&cymru.stderr).contains("use basic or short"));
    let theirs = fail2ban(&["stop"]);
    assert_eq!(wasmban(&["stop"]), theirs);
    drop(d);
    assert!(Path::new(&f2b.db).exists());
}
