//! The whole thing, as an admin would see it: a real OpenSSH server logging
//! through a real rsyslog to a file, an attacker failing password logins
//! with sshpass, a bystander, and wasmban on the shipped default
//! configuration plus a jail.local, banning in the server's firewall.
//!
//! Everything runs in network namespaces this test creates (server,
//! attacker, bystander, joined by veth pairs) and deletes. sshd gets its
//! own mount namespace in which `/dev/log` is rsyslog's socket in the
//! test's directory, so nothing of the machine's logging is touched.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::daemon::Daemon;
use crate::util::{NetNs, root_skip_reason};

/// The bantime of the jail under test: long enough to outlast a restart,
/// short enough to wait for.
const BANTIME: u64 = 20;
const MAXRETRY: usize = 3;

/// The server, attacker and bystander namespaces with sshd and rsyslog.
struct Lab {
    server: NetNs,
    attacker: NetNs,
    bystander: NetNs,
    dir: PathBuf,
    sshd: Option<Child>,
    rsyslog: Option<Child>,
}

fn run(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Lab {
    fn new(tag: &str, dir: &Path) -> Lab {
        let server = NetNs::new(&format!("{tag}-srv"));
        let attacker = NetNs::new(&format!("{tag}-att"));
        let bystander = NetNs::new(&format!("{tag}-by"));
        // server:sa <-> attacker:aa on 10.77.1.0/24 and fd77:1::/64,
        // server:sb <-> bystander:bb on 10.77.2.0/24 and fd77:2::/64.
        for (link, peer, ns, net) in [("sa", "aa", &attacker, 1), ("sb", "bb", &bystander, 2)] {
            run(&[
                "ip",
                "-n",
                &server.name,
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                &ns.name,
            ]);
            for (n, dev, host) in [(&server, link, 1), (ns, peer, 2)] {
                run(&["ip", "-n", &n.name, "addr", "add", &format!("10.77.{net}.{host}/24"), "dev", dev]);
                run(&["ip", "-n", &n.name, "addr", "add", &format!("fd77:{net}::{host}/64"), "dev", dev, "nodad"]);
                run(&["ip", "-n", &n.name, "link", "set", dev, "up"]);
                run(&["ip", "-n", &n.name, "link", "set", "lo", "up"]);
            }
        }
        let mut lab = Lab { server, attacker, bystander, dir: dir.to_path_buf(), sshd: None, rsyslog: None };
        lab.start_rsyslog();
        lab.start_sshd();
        lab
    }

    fn start_rsyslog(&mut self) {
        let d = self.dir.display();
        std::fs::write(
            self.dir.join("rsyslog.conf"),
            format!(
                "global(workDirectory=\"{d}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{d}/log.sock\")\n\
                 auth,authpriv.* action(type=\"omfile\" file=\"{d}/auth.log\")\n"
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f", &format!("{d}/rsyslog.conf"), "-i", &format!("{d}/rsyslog.pid")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslog.out")).unwrap())
            .spawn()
            .unwrap();
        self.rsyslog = Some(child);
        self.wait_for("rsyslog's socket", || self.dir.join("log.sock").exists());
    }

    fn start_sshd(&mut self) {
        let d = self.dir.display();
        run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", &format!("{d}/hostkey")]);
        std::fs::write(
            self.dir.join("sshd_config"),
            format!(
                "Port 22\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\nUsePAM no\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin yes\nUseDNS no\nSyslogFacility AUTH\nLoginGraceTime 15\n"
            ),
        )
        .unwrap();
        // sshd insists on its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        // A private /dev for sshd alone: the devices it needs, and /dev/log
        // pointing at this test's rsyslog.
        let script = format!(
            "set -e; mkdir -p {d}/olddev; mount --rbind /dev {d}/olddev; mount -t tmpfs -o mode=755 tmpfs /dev; \
             for n in null zero random urandom tty ptmx; do touch /dev/$n; mount --bind {d}/olddev/$n /dev/$n; done; \
             mkdir /dev/pts; mount --rbind {d}/olddev/pts /dev/pts; ln -s {d}/log.sock /dev/log; \
             exec /usr/sbin/sshd -D -f {d}/sshd_config"
        );
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server.name,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sshd.out")).unwrap())
            .spawn()
            .unwrap();
        self.sshd = Some(child);
        self.wait_for("sshd to listen", || self.auth_log().contains("Server listening on"));
    }

    fn auth_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("auth.log")).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}\nauth.log:\n{}\nsshd:\n{}\nrsyslog:\n{}",
                self.auth_log(),
                std::fs::read_to_string(self.dir.join("sshd.out")).unwrap_or_default(),
                std::fs::read_to_string(self.dir.join("rsyslog.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether a TCP connection from `from` to the server's ssh port opens.
    fn connects(&self, from: &NetNs, server: &str) -> bool {
        let addr = SocketAddr::new(server.parse().unwrap(), 22);
        from.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
    }

    /// One password login with a wrong password, as a brute-forcer makes it.
    fn failed_login(&self, server: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.attacker.name, "sshpass", "-p", "not-the-password", "ssh"])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"])
            .args(["-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=5"])
            .arg(format!("root@{server}"))
            .arg("true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("Permission denied"), "{stderr}");
    }
}

/// The processes `pid` started, and theirs: sshd's per-connection
/// processes live on after the listener is stopped.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The field after the parenthesised command name's state.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [self.sshd.take(), self.rsyslog.take()].into_iter().flatten() {
            let mut child = child;
            let mut family = descendants(child.id());
            family.insert(0, child.id());
            for pid in family {
                // SAFETY: SIGTERM to a process this test started, or one of
                // its descendants.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            let _ = child.wait();
        }
    }
}

/// The shipped configuration, unchanged, plus the admin's jail.local and a
/// wasmban.local sending the log to the test's daemon.log and keeping the
/// pidfile in the test's directory (the shipped one is the machine's
/// /run/wasmban/wasmban.pid, which tests running side by side would share).
fn shipped_config_with(root: &Path, banaction: &str, auth_log: &Path) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let status = Command::new("cp").arg("-r").arg(&shipped).arg(root.join("conf")).status().unwrap();
    assert!(status.success());
    std::fs::write(
        root.join("conf/wasmban.local"),
        format!("[Definition]\nlogtarget = STDERR\npidfile = {}\n", root.join("wasmban.pid").display()),
    )
    .unwrap();
    std::fs::write(
        root.join("conf/jail.local"),
        format!(
            "[DEFAULT]\nbanaction = {banaction}\n\n[sshd]\nenabled = true\nlogpath = {}\nmaxretry = {MAXRETRY}\n\
             findtime = 10m\nbantime = {BANTIME}\n",
            auth_log.display()
        ),
    )
    .unwrap();
}

fn firewall_state(ns: &NetNs) -> String {
    let mut all = String::new();
    for argv in [&["iptables", "-w", "-S"][..], &["ip6tables", "-w", "-S"], &["nft", "list", "ruleset"]] {
        all.push_str(&ns.exec(argv));
    }
    all
}

fn end_to_end(test: &str, banaction: &str, v6: bool) {
    if let Some(why) =
        root_skip_reason(&["ip", "iptables", "ip6tables", "nft", "sshd", "rsyslogd", "sshpass", "unshare"])
    {
        crate::util::skipped!("{test}: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lab = Lab::new(&format!("e2e{}{}", &banaction[..3], if v6 { "6" } else { "4" }), root);
    let (server, bystander_server, attacker_ip) =
        if v6 { ("fd77:1::1", "fd77:2::1", "fd77:1::2") } else { ("10.77.1.1", "10.77.2.1", "10.77.1.2") };
    assert!(lab.connects(&lab.attacker, server) && lab.connects(&lab.bystander, bystander_server));

    shipped_config_with(root, banaction, &root.join("auth.log"));
    let d = Daemon::start_ready(root, Some(&lab.server.name));
    let banned =
        |d: &Daemon| d.status().is_some_and(|s| s["banned"].as_array().unwrap().iter().any(|b| b["ip"] == attacker_ip));

    for attempt in 1..=MAXRETRY {
        assert!(!banned(&d), "banned after {} failures, before maxretry", attempt - 1);
        lab.failed_login(server);
    }
    d.wait_for("the attacker's ban", || banned(&d));
    assert!(
        !lab.connects(&lab.attacker, server),
        "the attacker still connects; firewall:\n{}",
        firewall_state(&lab.server)
    );
    assert!(lab.connects(&lab.bystander, bystander_server), "the bystander was shut out too");
    let (ok, status) = d.client(&["status", "sshd"]);
    assert!(ok && status.contains(attacker_ip), "{status}");
    assert!(firewall_state(&lab.server).contains(attacker_ip));

    // The ban outlives a restart.
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());
    let d = Daemon::start_ready(root, Some(&lab.server.name));
    d.wait_for("the ban to be restored", || banned(&d));
    assert!(!lab.connects(&lab.attacker, server), "the ban did not survive the restart");
    assert!(lab.connects(&lab.bystander, bystander_server));

    // Once bantime is over, the attacker connects again.
    d.wait_for("the ban to end", || !banned(&d));
    assert!(lab.connects(&lab.attacker, server), "unbanned but still blocked:\n{}", firewall_state(&lab.server));

    // `wasmban stop` leaves nothing of ours in the firewall.
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    let state = firewall_state(&lab.server);
    assert!(!state.contains("f2b-") && !state.contains("wasmban"), "left behind:\n{state}");
}

#[test]
fn sshd_brute_force_is_banned_with_iptables() {
    end_to_end("sshd_brute_force_is_banned_with_iptables", "iptables-multiport", false);
}

#[test]
fn sshd_brute_force_is_banned_with_nftables() {
    end_to_end("sshd_brute_force_is_banned_with_nftables", "nftables-multiport", false);
}

#[test]
fn sshd_brute_force_over_ipv6_is_banned_with_nftables() {
    end_to_end("sshd_brute_force_over_ipv6_is_banned_with_nftables", "nftables-multiport", true);
}

#[test]
fn sshd_brute_force_over_ipv6_is_banned_with_ip6tables() {
    end_to_end("sshd_brute_force_over_ipv6_is_banned_with_ip6tables", "iptables-multiport", true);
}
