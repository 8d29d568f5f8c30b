//! The built-in firewalld action: fail2ban's `firewallcmd-*` files carried
//! out with `firewall-cmd` (and `ipset`) only, against a real firewalld.
//! firewalld runs in a namespace made for the test, on a D-Bus system bus
//! of its own: a private mount namespace puts that bus's folder over
//! /run/dbus for firewalld, for firewall-cmd, and for the daemon, so the
//! machine's bus and firewall are never reached.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::NetNs;
use crate::util::daemon::{Daemon, append, failure, tree};

/// firewalld and its bus, for one test.
struct FirewalldHost {
    ns: NetNs,
    dir: tempfile::TempDir,
    /// See [`wrapper`].
    wrapper: Vec<String>,
    bus: Child,
    firewalld: Child,
}

/// A command that runs its last arguments in namespace `ns`, with the bus
/// folder `bus` over /run/dbus (on a /run of its own, which may have no
/// dbus folder).
fn wrapper(ns: &str, bus: &Path) -> Vec<String> {
    let script = format!(
        "mount -t tmpfs wasmban-test /run && mkdir /run/dbus && mount --bind {} /run/dbus && exec \"$0\" \"$@\"",
        bus.display()
    );
    ["ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c", &script].iter().map(|s| s.to_string()).collect()
}

impl FirewalldHost {
    fn start(tag: &str) -> Result<FirewalldHost, String> {
        if let Some(why) = crate::util::root_skip_reason(&["firewalld", "firewall-cmd", "dbus-daemon", "ipset", "ip"]) {
            return Err(why);
        }
        let ns = NetNs::new(tag);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bus")).unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n<type>system</type>\n\
                 <listen>unix:path={}/bus/system_bus_socket</listen>\n<auth>EXTERNAL</auth>\n\
                 <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/>\
                 <allow receive_type=\"*\"/></policy>\n</busconfig>\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let bus = Command::new("dbus-daemon")
            .args(["--nofork", "--config-file", config.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dbus-daemon: {e}"))?;
        let socket = dir.path().join("bus/system_bus_socket");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::File::create(dir.path().join("firewalld.log")).unwrap();
        let wrapper = wrapper(&ns.name, &dir.path().join("bus"));
        let firewalld = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .args(["firewalld", "--nofork", "--nopid"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let host = FirewalldHost { ns, dir, wrapper, bus, firewalld };
        let deadline = Instant::now() + Duration::from_secs(60);
        while host.cmd(&["--state"]).1.trim() != "running" {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(host.dir.path().join("firewalld.log")).unwrap_or_default();
                return Err(format!("firewalld did not start in its namespace:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(host)
    }

    /// `firewall-cmd ARGS` on this firewalld: success, and what it printed.
    fn cmd(&self, args: &[&str]) -> (bool, String) {
        let out =
            Command::new(&self.wrapper[0]).args(&self.wrapper[1..]).arg("firewall-cmd").args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for FirewalldHost {
    fn drop(&mut self) {
        for child in [&mut self.firewalld, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Debian's firewallcmd-ipset, -multiport and -rich-rules on one jail,
/// driven by the daemon with no grant given: bans reach firewalld and the
/// kernel, a `firewall-cmd --reload` (which drops runtime rules) is
/// repaired by the jail's check, unban lifts, stop removes everything.
#[test]
fn the_daemon_bans_through_a_real_firewalld() {
    let stock = Path::new("/etc/fail2ban/action.d");
    if !stock.join("firewallcmd-ipset.conf").is_file() {
        return crate::util::skipped!("the_daemon_bans_through_a_real_firewalld: fail2ban is not installed");
    }
    let host = match FirewalldHost::start("fwd") {
        Ok(host) => host,
        Err(why) => return crate::util::skipped!("the_daemon_bans_through_a_real_firewalld: {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        "[sshd]\nreconcile = 1\naction = firewallcmd-ipset[name=sshd, port=22]\n         \
         firewallcmd-multiport[name=sshd-mp, port=22]\n         \
         firewallcmd-rich-rules[name=sshd-rich, port=\"22,2222\"]\n",
    );
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let wrapper: Vec<&str> = host.wrapper.iter().map(String::as_str).collect();
    let d = Daemon::start_under(root, &wrapper, &[]);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    d.wait_for("the ban", || d.status().is_some_and(|s| s["total_banned"] == 1));

    let in_place = |host: &FirewalldHost| {
        let direct = host.cmd(&["--direct", "--get-all-rules"]).1;
        let rich = host.cmd(&["--list-rich-rules"]).1;
        let set = host.ns.exec(&["ipset", "save", "f2b-sshd"]);
        direct.contains("--match-set f2b-sshd src -j REJECT")
            && direct.contains("ipv4 filter f2b-sshd-mp 0 -s 192.0.2.44 -j REJECT")
            && rich.contains("source address=\"192.0.2.44\" port port=\"2222\"")
            && set.contains("add f2b-sshd 192.0.2.44")
    };
    d.wait_for("the ban in firewalld", || in_place(&host));
    assert!(!d.log().contains("runs without an action"), "{}", d.log());
    let rules = host.ns.exec(&["iptables", "-w", "-S", "f2b-sshd-mp"]);
    assert!(rules.contains("-A f2b-sshd-mp -s 192.0.2.44/32 -j REJECT"), "{rules}");

    // firewalld forgets runtime rules on reload; the jail's check puts
    // them back.
    assert!(host.cmd(&["--reload"]).0);
    d.wait_for("the repair after a reload", || {
        let log = d.log();
        log.contains("ban(s) had gone from firewalld, applied again: 192.0.2.44") && log.contains("a reload?")
    });
    d.wait_for("the bans back in firewalld", || in_place(&host));

    assert!(d.client(&["unban", "192.0.2.44"]).0);
    let direct = host.cmd(&["--direct", "--get-all-rules"]).1;
    assert!(!direct.contains("192.0.2.44") && !host.cmd(&["--list-rich-rules"]).1.contains("192.0.2.44"), "{direct}");
    assert!(!host.ns.exec(&["ipset", "save", "f2b-sshd"]).contains("192.0.2.44"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    let direct = host.cmd(&["--direct", "--get-all-rules"]).1;
    assert!(!direct.contains("f2b-"), "stop left direct rules: {direct}");
    assert!(!host.ns.exec(&["ipset", "list", "-n"]).contains("f2b-"));
}

/// A prefix ban needs hash:net sets: offered to hash:ip ones it is refused
/// with the option to set, before any program runs; with hash:net it goes
/// into the set as the prefix.
#[test]
fn prefix_bans_need_hash_net_ipsets() {
    use std::sync::Arc;
    use wasmban::capability::process::RecordingRunner;
    let rec = RecordingRunner::default();
    let rt = crate::util::runtime_with(Arc::new(rec.clone()));
    let options = [("name", "sshd"), ("kind", "ipset"), ("port", "22")];
    let mut by_address = crate::util::builtin(&rt, "firewalld").action(crate::util::opts(&options)).unwrap();
    by_address.start().unwrap();
    let before = rec.runs().len();
    let results = by_address.ban(&[crate::util::ticket("2001:db8:0:7::/64")]).unwrap();
    assert!(results[0].as_ref().is_err_and(|e| e.contains("ipsettype = hash:net")), "{results:?}");
    assert_eq!(rec.runs().len(), before);
    let options = [("name", "sshd"), ("kind", "ipset"), ("port", "22"), ("ipsettype", "hash:net")];
    let mut by_net = crate::util::builtin(&rt, "firewalld").action(crate::util::opts(&options)).unwrap();
    by_net.start().unwrap();
    assert!(by_net.ban(&[crate::util::ticket("2001:db8:0:7::/64")]).unwrap()[0].is_ok());
    let last = rec.runs().last().cloned().unwrap();
    assert!(last.args.iter().any(|a| a == "2001:db8:0:7::/64"), "{last:?}");
}
