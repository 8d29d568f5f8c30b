//! The built-in shorewall action: fail2ban's `shorewall` file carried out
//! with shorewall's blacklist subcommands only, against a real shorewall
//! started in a namespace. A private mount namespace gives shorewall the
//! test's own /etc/shorewall and /var/lib/shorewall, so the machine's are
//! never read or written.

use std::path::Path;
use std::process::Command;

use crate::util::NetNs;
use crate::util::daemon::{Daemon, append, failure, tree};

#[test]
fn the_daemon_blacklists_through_a_real_shorewall() {
    if let Some(why) = crate::util::root_skip_reason(&["shorewall", "iptables", "ip"]) {
        return crate::util::skipped!("the_daemon_blacklists_through_a_real_shorewall: {why}");
    }
    let example = Path::new("/usr/share/doc/shorewall/examples/Universal");
    let stock = Path::new("/etc/fail2ban/action.d/shorewall.conf");
    if !example.join("zones").is_file() || !stock.is_file() {
        return crate::util::skipped!(
            "the_daemon_blacklists_through_a_real_shorewall: shorewall's examples or fail2ban are not installed"
        );
    }
    let ns = NetNs::new("shorewall");
    let dir = tempfile::tempdir().unwrap();
    let (etc, var) = (dir.path().join("etc"), dir.path().join("var"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&var).unwrap();
    for file in ["interfaces", "policy", "rules", "zones"] {
        std::fs::copy(example.join(file), etc.join(file)).unwrap();
    }
    let conf = std::fs::read_to_string(example.join("shorewall.conf")).unwrap();
    let conf = conf
        .lines()
        .map(|l| match l.split('=').next() {
            Some("STARTUP_LOG") => format!("STARTUP_LOG={}/startup.log", dir.path().display()),
            Some("LOGFILE") => format!("LOGFILE={}/messages", dir.path().display()),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(etc.join("shorewall.conf"), conf).unwrap();
    let script = format!(
        "mount --bind {} /etc/shorewall && mount --bind {} /var/lib/shorewall && exec \"$0\" \"$@\"",
        etc.display(),
        var.display()
    );
    let wrapper = ["ip", "netns", "exec", &ns.name, "unshare", "-m", "sh", "-c", &script];
    let started = Command::new(wrapper[0]).args(&wrapper[1..]).args(["shorewall", "start"]).output().unwrap();
    assert!(started.status.success(), "shorewall start: {}", String::from_utf8_lossy(&started.stderr));

    let root = dir.path().join("wasmban");
    std::fs::create_dir_all(&root).unwrap();
    // The example configuration has no `reject` chain: fail2ban's default
    // blocktype would fail (and the component would say so); drop works.
    tree(&root, "[sshd]\naction = shorewall[blocktype=drop]\n");
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::copy(stock, root.join("conf/action.d/shorewall.conf")).unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start_under(&root, &wrapper, &[]);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    d.wait_for("the ban", || d.status().is_some_and(|s| s["total_banned"] == 1));
    d.wait_for("the blacklist entry", || {
        ns.exec(&["iptables", "-w", "-S", "dynamic"]).contains("-A dynamic -s 192.0.2.44/32 -j DROP")
    });
    assert!(!d.log().contains("did not"), "{}", d.log());
    assert!(d.client(&["unban", "192.0.2.44"]).0);
    assert!(!ns.exec(&["iptables", "-w", "-S", "dynamic"]).contains("192.0.2.44"));
    append(&root.join("auth.log"), &failure("192.0.2.45"));
    d.wait_for("the second ban", || ns.exec(&["iptables", "-w", "-S", "dynamic"]).contains("192.0.2.45"));
    // Stopping allows the jail's addresses again.
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!ns.exec(&["iptables", "-w", "-S", "dynamic"]).contains("192.0.2.45"));
}
