//! The shell grant's confinement, through the daemon: a classic action's
//! commands write beneath `shell-writes` only, reach no network without
//! `shell-network`, and the log says which grant to widen.

use crate::util::daemon::{Daemon, append, iso, tree};
use crate::util::skipped;

#[test]
fn a_classic_action_cannot_write_outside_its_grant_or_connect_out() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skipped!("a_classic_action_cannot_write_outside_its_grant_or_connect_out: needs root (namespaces)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outside = tempfile::tempdir().unwrap();
    let escaped = outside.path().join("escaped");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = root.join("action.out");
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::write(
        root.join("conf/action.d/nosy.conf"),
        format!(
            "[Definition]\nactionban = echo ban <ip> >> {out}\n\
             \x20 echo x > {escaped} || echo write-refused >> {out}\n\
             \x20 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' || echo connect-refused >> {out}\n\
             \x20 iptables -n -L INPUT > /dev/null 2>&1 || true\n",
            out = out.display(),
            escaped = escaped.display(),
        ),
    )
    .unwrap();
    tree(root, "[sshd]\naction = nosy\n");
    crate::util::grant_shell(&root.join("conf/plugin.d"), "command-action", root);
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    append(
        &root.join("auth.log"),
        &format!("{} web sshd[7]: Failed password for root from 192.0.2.61 port 22 ssh2\n", iso(0)),
    );
    d.wait_for("the ban's commands", || std::fs::read_to_string(&out).unwrap_or_default().contains("connect-refused"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "ban 192.0.2.61\nwrite-refused\nconnect-refused\n");
    assert!(!escaped.exists());
    assert!(listener.accept().is_err(), "the command reached a listener outside its grant");
    let log = d.log();
    assert!(log.contains("a shell command was refused something") && log.contains("shell-writes"), "{log}");
    assert!(log.contains("runs `iptables` without grants.shell-network"), "{log}");
}
