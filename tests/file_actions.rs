//! The built-in actions that ban by editing files, through the `file`
//! capability: fail2ban's hostsdeny with Debian's stock file, driven by the
//! daemon against a deny file of the test's, granted in plugin.d.

use std::path::Path;

use crate::util::daemon::{Daemon, append, failure, tree};

#[test]
fn hostsdeny_keeps_the_admins_lines_and_removes_the_jails_at_stop() {
    let stock = Path::new("/etc/fail2ban/action.d/hostsdeny.conf");
    if !stock.is_file() {
        return crate::util::skipped!("hostsdeny_keeps_the_admins_lines: fail2ban is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let deny = root.join("hosts.deny");
    std::fs::write(&deny, "# the admin's own\nsshd: 10.9.9.9\n").unwrap();
    tree(root, &format!("[sshd]\nreconcile = 1\naction = hostsdeny[file={}, daemon_list=sshd]\n", deny.display()));
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::copy(stock, root.join("conf/action.d/hostsdeny.conf")).unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/hostsdeny.toml"),
        format!("[grants]\nfiles = [{:?}]\n", deny.display().to_string()),
    )
    .unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &(failure("192.0.2.44") + &failure("2001:db8::44")));
    d.wait_for("the bans", || d.status().is_some_and(|s| s["total_banned"] == 2));
    d.wait_for("the lines", || std::fs::read_to_string(&deny).unwrap().lines().count() == 4);
    assert_eq!(
        std::fs::read_to_string(&deny).unwrap(),
        "# the admin's own\nsshd: 10.9.9.9\nsshd: 192.0.2.44\nsshd: [2001:db8::44]\n"
    );
    assert!(d.client(&["unban", "192.0.2.44"]).0);
    assert!(!std::fs::read_to_string(&deny).unwrap().contains("192.0.2.44"));
    // A line removed by hand comes back at the next check.
    std::fs::write(&deny, "# the admin's own\nsshd: 10.9.9.9\n").unwrap();
    d.wait_for("the line back", || std::fs::read_to_string(&deny).unwrap().contains("sshd: [2001:db8::44]"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert_eq!(std::fs::read_to_string(&deny).unwrap(), "# the admin's own\nsshd: 10.9.9.9\n");
}

/// Prefix bans in hosts.deny, in the forms TCP wrappers read
/// (`[2001:db8:0:7::]/64`, `198.51.100.0/255.255.255.0`): libwrap's own
/// `tcpdmatch` denies every address inside them and no other.
#[test]
fn hostsdeny_writes_prefix_bans_that_tcp_wrappers_match() {
    let stock = Path::new("/etc/fail2ban/action.d/hostsdeny.conf");
    if !stock.is_file() || !crate::util::has_program("tcpdmatch") {
        return crate::util::skipped!("hostsdeny_writes_prefix_bans: needs fail2ban and tcpd (tcpdmatch)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let deny = root.join("hosts.deny");
    std::fs::write(&deny, "").unwrap();
    std::fs::write(root.join("hosts.allow"), "").unwrap();
    tree(
        root,
        &format!(
            "[sshd]\nmaxretry = 2\nbanprefix4 = 24\nbanprefix6 = 64\n\
             action = hostsdeny[file={}, daemon_list=sshd]\n",
            deny.display()
        ),
    );
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::copy(stock, root.join("conf/action.d/hostsdeny.conf")).unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/hostsdeny.toml"),
        format!("[grants]\nfiles = [{:?}]\n", deny.display().to_string()),
    )
    .unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    let walk = ["2001:db8:0:7::1", "2001:db8:0:7::2", "198.51.100.1", "198.51.100.2"];
    append(&root.join("auth.log"), &walk.iter().map(|ip| failure(ip)).collect::<String>());
    d.wait_for("the lines", || std::fs::read_to_string(&deny).unwrap().lines().count() == 2);
    let mut lines: Vec<String> = std::fs::read_to_string(&deny).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["sshd: 198.51.100.0/255.255.255.0", "sshd: [2001:db8:0:7::]/64"]);
    let access = |ip: &str| {
        let out = std::process::Command::new("tcpdmatch").current_dir(root).args(["-d", "sshd", ip]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find(|l| l.starts_with("access:")).map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    for (ip, expected) in [
        ("2001:db8:0:7::abcd", "denied"),
        ("2001:db8:0:8::1", "granted"),
        ("198.51.100.200", "denied"),
        ("198.51.101.1", "granted"),
    ] {
        assert_eq!(access(ip).as_deref(), Some(expected), "{ip}");
    }
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert_eq!(std::fs::read_to_string(&deny).unwrap(), "");
}

/// Debian's iptables-xt_recent-echo, with the daemon in a namespace: the
/// rule in INPUT, bans written to the namespace's xt_recent list, taken
/// out at unban, the list emptied and the rule gone at stop.
#[test]
fn xt_recent_lists_are_written_through_the_file_capability() {
    use crate::util::{NetNs, root_skip_reason};
    if let Some(why) = root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        return crate::util::skipped!("xt_recent_lists_are_written_through_the_file_capability: {why}");
    }
    let stock = Path::new("/etc/fail2ban/action.d");
    if !stock.join("iptables-xt_recent-echo.conf").is_file() {
        return crate::util::skipped!(
            "xt_recent_lists_are_written_through_the_file_capability: fail2ban is not installed"
        );
    }
    let ns = NetNs::new("recent");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\naction = iptables-xt_recent-echo[name=sshd]\n");
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, Some(&ns.name));
    let list = || ns.exec(&["cat", "/proc/net/xt_recent/f2b-sshd"]);
    append(&root.join("auth.log"), &(failure("192.0.2.44") + &failure("192.0.2.45")));
    d.wait_for("the bans in the list", || list().contains("src=192.0.2.45 "));
    assert!(list().contains("src=192.0.2.44 "), "{}", list());
    let rules = ns.exec(&["iptables", "-w", "-S", "INPUT"]);
    assert!(
        rules.contains(
            "-A INPUT -m recent --update --seconds 3600 --name f2b-sshd --mask 255.255.255.255 --rsource -j REJECT"
        ),
        "{rules}"
    );
    assert!(d.client(&["unban", "192.0.2.44"]).0);
    assert!(!list().contains("192.0.2.44"), "{}", list());
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!ns.exec(&["iptables", "-w", "-S"]).contains("f2b-sshd"));
}

/// Debian's nginx-block-map through the daemon: each ban is a line of
/// the map file and nginx is reloaded only after its configuration tests
/// good, through exactly the two commands the grant allows. A stand-in
/// nginx (granted by absolute path) records what it was asked.
#[test]
fn nginx_block_map_writes_the_map_and_reloads_nginx() {
    use std::os::unix::fs::PermissionsExt;
    let stock = Path::new("/etc/fail2ban/action.d/nginx-block-map.conf");
    if !stock.is_file() {
        return crate::util::skipped!("nginx_block_map_writes_the_map_and_reloads_nginx: fail2ban is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let map = root.join("blacklisted-sessions.map");
    let asked = root.join("nginx.asked");
    let nginx = root.join("nginx");
    std::fs::write(&nginx, format!("#!/bin/sh\necho \"$*\" >> {}\n", asked.display())).unwrap();
    std::fs::set_permissions(&nginx, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree(
        root,
        &format!("[sshd]\naction = nginx-block-map[blck_lst_file={}, srv_cmd={}]\n", map.display(), nginx.display()),
    );
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::copy(stock, root.join("conf/action.d/nginx-block-map.conf")).unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/nginx-block-map.toml"),
        format!(
            "[grants]\nfiles = [{map:?}]\nfirewall = [\"{nginx} -qt\", \"{nginx} -s reload\"]\n",
            map = map.display().to_string(),
            nginx = nginx.display()
        ),
    )
    .unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    assert!(map.exists(), "the map is made at start for nginx's include");
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    d.wait_for("the map line", || std::fs::read_to_string(&map).unwrap_or_default() == "\\192.0.2.44 1;\n");
    d.wait_for("the reload", || std::fs::read_to_string(&asked).unwrap_or_default() == "-qt\n-s reload\n");
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert_eq!(std::fs::read_to_string(&map).unwrap(), "", "stop empties the map");
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), "-qt\n-s reload\n-qt\n-s reload\n");
}

/// Debian's symbiosis-blacklist-allports, with the daemon in a namespace
/// that has Symbiosis's `blacklist` chain: a marker file and a rule per
/// ban, both gone at unban.
#[test]
fn symbiosis_writes_its_marker_files_and_rules() {
    use crate::util::{NetNs, root_skip_reason};
    if let Some(why) = root_skip_reason(&["iptables", "ip"]) {
        return crate::util::skipped!("symbiosis_writes_its_marker_files_and_rules: {why}");
    }
    let stock = Path::new("/etc/fail2ban/action.d/symbiosis-blacklist-allports.conf");
    if !stock.is_file() {
        return crate::util::skipped!("symbiosis_writes_its_marker_files_and_rules: fail2ban is not installed");
    }
    let ns = NetNs::new("symbiosis");
    ns.exec(&["iptables", "-w", "-N", "blacklist"]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let folder = root.join("blacklist.d");
    std::fs::create_dir(&folder).unwrap();
    tree(root, &format!("[sshd]\naction = symbiosis-blacklist-allports[blacklist_dir={}]\n", folder.display()));
    crate::util::daemon::copy_fail2ban_actions(root);
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/symbiosis.toml"),
        format!("[grants]\nfiles = [\"{}/\"]\nfirewall = [\"iptables\", \"ip6tables\"]\n", folder.display()),
    )
    .unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    let marker = folder.join("192.0.2.44.auto");
    d.wait_for("the marker", || std::fs::read_to_string(&marker).unwrap_or_default() == "all\n");
    assert!(ns.exec(&["iptables", "-w", "-S", "blacklist"]).contains("-A blacklist -s 192.0.2.44/32 -j DROP"));
    assert!(d.client(&["unban", "192.0.2.44"]).0);
    assert!(!marker.exists());
    assert!(!ns.exec(&["iptables", "-w", "-S", "blacklist"]).contains("192.0.2.44"));
    // Stopping lifts the bans still in force, file and rule.
    append(&root.join("auth.log"), &failure("192.0.2.45"));
    d.wait_for("the second marker", || folder.join("192.0.2.45.auto").exists());
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!folder.join("192.0.2.45.auto").exists());
    assert!(!ns.exec(&["iptables", "-w", "-S", "blacklist"]).contains("192.0.2.45"));
}
