//! The built-in ufw action: fail2ban's `ufw` file carried out with the ufw
//! program only: its argv (a golden file), and the real ufw, enabled in a
//! namespace with its own copy of /etc/ufw, driven by the daemon.

use std::sync::Arc;

use wasmban::capability::process::{ProgramOutput, RecordingRunner};

use crate::util::daemon::{Daemon, append, failure, tree};
use crate::util::{NetNs, builtin, golden, opts, root_skip_reason, runtime_with, ticket};

#[test]
fn ufw_argv() {
    let rec = RecordingRunner::answering(|_| ProgramOutput::default());
    let rt = runtime_with(Arc::new(rec.clone()));
    let options =
        [("application", "OpenSSH"), ("kill-mode", "ss"), ("comment", "by wasmban after <failures> attempts")];
    let mut action = builtin(&rt, "ufw").action(opts(&options)).unwrap();
    action.start().unwrap();
    assert!(action.ban(&[ticket("192.0.2.7"), ticket("2001:db8::7")]).unwrap().iter().all(Result::is_ok));
    assert!(action.unban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());
    assert!(action.ban(&[ticket("192.0.2.7 to any port 22")]).unwrap()[0].is_err());
    // Stopping deletes the rules of the bans still in force.
    action.stop().unwrap();
    let transcript: String = rec
        .runs()
        .iter()
        .map(|r| format!("{} {}\n", r.program.file_name().unwrap().to_string_lossy(), r.args.join(" ")))
        .collect();
    golden("ufw.txt", &transcript);
}

/// What `ufw status` lists in the namespace.
fn ufw_status(ns: &NetNs) -> String {
    ns.exec(&["ufw", "status"])
}

#[test]
fn the_daemon_bans_through_ufw_with_debians_stock_action() {
    if let Some(why) = root_skip_reason(&["ufw", "iptables", "ip"]) {
        crate::util::skipped!("the_daemon_bans_through_ufw_with_debians_stock_action: {why}");
        return;
    }
    let stock = std::path::Path::new("/etc/fail2ban/action.d");
    if !stock.join("ufw.conf").is_file() {
        crate::util::skipped!("the_daemon_bans_through_ufw_with_debians_stock_action: fail2ban is not installed");
        return;
    }
    let ns = NetNs::new("ufw");
    // The namespace's own ufw configuration: `ip netns exec` mounts it over
    // /etc/ufw, so the machine's rules files are never written.
    let copied = std::process::Command::new("cp")
        .args(["-a", "/etc/ufw", ns.etc().join("ufw").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    ns.exec(&["ufw", "--force", "enable"]);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "[sshd]\nreconcile = 1\naction = ufw\n");
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::copy(stock.join("ufw.conf"), root.join("conf/action.d/ufw.conf")).unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    append(&root.join("auth.log"), &failure("2001:db8::44"));
    d.wait_for("the bans", || d.status().is_some_and(|s| s["total_banned"] == 2));
    d.wait_for("the rules", || ufw_status(&ns).contains("2001:db8::44"));
    let status = ufw_status(&ns);
    let rule = status.lines().find(|l| l.contains(" 192.0.2.44 ")).unwrap_or_default();
    assert!(rule.contains("REJECT") && rule.ends_with("# by Fail2Ban after 1 attempts against sshd"), "{status}");
    let rules = ns.exec(&["iptables", "-w", "-S", "ufw-user-input"]);
    assert!(rules.contains("-A ufw-user-input -s 192.0.2.44/32 -j REJECT"), "{rules}");
    // A rule deleted by hand comes back at the jail's next check.
    ns.exec(&["ufw", "delete", "reject", "from", "2001:db8::44", "to", "any"]);
    d.wait_for("the rule back", || d.log().contains("ufw had lost 1 ban rule(s), added again: 2001:db8::44"));
    assert!(ufw_status(&ns).contains("2001:db8::44"));
    assert!(d.client(&["unban", "192.0.2.44"]).0);
    assert!(!ufw_status(&ns).contains("192.0.2.44"), "{}", ufw_status(&ns));
    // Stopping takes the jail's rules out of ufw, which would keep them.
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    let status = ufw_status(&ns);
    assert!(!status.contains("2001:db8::44") && status.contains("Status: active"), "{status}");
    let machine = std::fs::read_to_string("/etc/ufw/user.rules").unwrap();
    assert!(!machine.contains("192.0.2.44"), "the machine's ufw rules were written");
}
