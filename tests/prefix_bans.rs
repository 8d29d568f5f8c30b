//! Prefix bans (`banprefix6 = 64`, `banprefix4 = 24`): an attacker walking
//! through its /64 is counted and banned as one, in nftables' interval sets
//! and in iptables, kept across a restart, and lifted by an unban of any
//! address inside; a prefix holding an ignored address is never banned.

use crate::util::daemon::{Daemon, append, copy_shipped_actions, failure, tree};

#[test]
fn an_attacker_walking_through_its_prefix_is_banned_as_one() {
    if let Some(why) = crate::util::root_skip_reason(&["nft", "iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("an_attacker_walking_through_its_prefix_is_banned_as_one: {why}");
        return;
    }
    let ns = crate::util::NetNs::new("prefix");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        "[sshd]\nmaxretry = 3\nbanprefix6 = 64\nbanprefix4 = 24\nignoreip = 2001:db8:0:9::5\n\
         action = nftables-multiport[name=sshd]\n         iptables-multiport[name=sshd, port=22]\n",
    );
    copy_shipped_actions(root);
    let nft = || ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    let ip6tables = || ns.exec(&["ip6tables", "-w", "-S"]);
    let d = Daemon::start_ready(root, Some(&ns.name));
    let log = root.join("auth.log");
    // Three addresses of one /64, one failure each: one ban.
    for host in ["1", "2", "3"] {
        append(&log, &failure(&format!("2001:db8:0:7::{host}")));
    }
    // Three addresses of a /24.
    for host in ["10", "11", "12"] {
        append(&log, &failure(&format!("198.51.100.{host}")));
    }
    // A /64 holding an ignored address: each address counts alone.
    for _ in 0..3 {
        append(&log, &failure("2001:db8:0:9::6"));
    }
    // The two actions apply each ban one after the other: nftables' is in
    // the kernel first.
    d.wait_for("the bans", || {
        let set = nft();
        set.contains("2001:db8:0:7::/64") && set.contains("198.51.100.0/24") && set.contains("2001:db8:0:9::6 ")
    });
    d.wait_for("the ip6tables rule", || ip6tables().contains("-A f2b-sshd -s 2001:db8:0:7::/64 -j REJECT"));
    assert!(!nft().contains("2001:db8:0:9::/64"), "{}", nft());
    let (_, status) = d.client(&["status", "sshd"]);
    assert!(status.contains("2001:db8:0:7::/64") && status.contains("Total banned:\t3"), "{status}");
    let (_, banned) = d.client(&["banned", "2001:db8:0:7::abcd"]);
    assert!(banned.contains("sshd"), "an address inside a banned prefix is banned: {banned}");

    // Kept across a restart.
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    let d = Daemon::start_ready(root, Some(&ns.name));
    d.wait_for("the restored prefix ban", || nft().contains("2001:db8:0:7::/64"));

    // An unban of any address inside lifts the prefix.
    let (ok, out) = d.client(&["unban", "2001:db8:0:7::abcd"]);
    assert!(ok, "{out}");
    d.wait_for("the prefix lifted", || !nft().contains("2001:db8:0:7::/64"));
    d.wait_for("the ip6tables rule lifted", || !ip6tables().contains("2001:db8:0:7::/64"));
    assert!(nft().contains("198.51.100.0/24"), "{}", nft());
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
}

#[test]
fn reckless_prefix_lengths_are_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\nbanprefix6 = 8\n");
    let conf = root.join("conf").display().to_string();
    let state = root.join("state").display().to_string();
    let run = crate::util::wasmban(&["-c", &conf, "--state-dir", &state, "check"]);
    let text = run.both();
    assert!(!run.ok, "{text}");
    assert!(text.contains("banprefix6") && text.contains("32 to 128"), "{text}");
}
