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
