//! The CrowdSec bouncers' API (`[lapi]`): its answers over loopback, the
//! `bouncers` commands, and Debian's real `crowdsec-firewall-bouncer` in a
//! network namespace enforcing wasmban's bans in its nftables sets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::daemon::{BIN, Daemon, append, failure, tree};
use crate::util::{NetNs, free_port, root_skip_reason, skipped};

/// `METHOD path` with `key` (when given) on loopback: the status code and
/// the body.
fn request(port: u16, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let key = key.map(|k| format!("X-Api-Key: {k}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test-bouncer/1\r\n{key}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, body.to_string())
}

fn get(port: u16, path: &str, key: &str) -> Value {
    let (code, body) = request(port, "GET", path, Some(key), "");
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn values(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .map(|a| a.iter().map(|d| d["value"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `wasmban bouncers ...` on the tree at `root`.
fn bouncers(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["-c", root.join("conf").to_str().unwrap()])
        .args(["--state-dir", root.join("state").to_str().unwrap()])
        .arg("bouncers")
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A new bouncer's key: the last line `bouncers add` prints.
fn add_bouncer(root: &Path, name: &str) -> String {
    let (ok, out) = bouncers(root, &["add", name]);
    assert!(ok, "{out}");
    out.lines().last().unwrap().trim().to_string()
}

fn lapi_tree(root: &Path, listen: &str) {
    tree(root, "");
    std::fs::write(root.join("conf/wasmban.conf"), format!("[Definition]\n[lapi]\nlisten = {listen}\n")).unwrap();
}

#[test]
fn bouncers_pull_bans_and_their_changes_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    lapi_tree(root, &format!("127.0.0.1:{port}"));
    let key = add_bouncer(root, "fw1");
    assert_eq!(key.len(), 64, "{key}");
    let (ok, out) = bouncers(root, &["add", "fw1"]);
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = bouncers(root, &["list", "--json"]);
    assert!(ok && out.contains("\"name\":\"fw1\""), "{out}");

    let d = Daemon::start_ready(root, None);
    append(&root.join("auth.log"), &failure("192.0.2.7"));
    d.wait_for("the ban", || d.status().unwrap()["currently_banned"] == 1);
    assert!(d.client(&["ban", "sshd", "2001:db8::/64"]).0);
    // `banned` says who decided each ban.
    let (ok, out) = d.client(&["banned", "--json"]);
    let banned: Value = serde_json::from_str(&out).unwrap();
    let origin_of =
        |ip: &str| banned["sshd"].as_array().unwrap().iter().find(|b| b["ip"] == ip).unwrap()["origin"].clone();
    assert!(ok && origin_of("192.0.2.7") == "filter" && origin_of("2001:db8::/64") == "manual", "{out}");

    // No key, or a wrong one: 403, as from CrowdSec.
    assert_eq!(request(port, "GET", "/v1/decisions/stream?startup=true", None, "").0, 403);
    assert_eq!(request(port, "GET", "/v1/decisions/stream?startup=true", Some("nope"), "").0, 403);
    assert_eq!(request(port, "HEAD", "/v1/decisions/stream", Some("nope"), "").0, 403);
    assert_eq!(request(port, "GET", "/v1/alerts", Some(&key), "").0, 404);

    let first = get(port, "/v1/decisions/stream?startup=true", &key);
    assert_eq!(values(&first["new"]), ["192.0.2.7", "2001:db8::/64"], "{first}");
    let ban = first["new"].as_array().unwrap().iter().find(|d| d["value"] == "192.0.2.7").unwrap();
    assert_eq!((ban["scope"].as_str(), ban["type"].as_str()), (Some("Ip"), Some("ban")), "{ban}");
    assert_eq!((ban["origin"].as_str(), ban["scenario"].as_str()), (Some("wasmban"), Some("wasmban/sshd")), "{ban}");
    let duration = ban["duration"].as_str().unwrap();
    assert!(duration.starts_with("59m") || duration == "1h0m0s", "{duration}");
    // HEAD checks the key and moves nothing on.
    assert_eq!(request(port, "HEAD", "/v1/decisions/stream", Some(&key), "").0, 200);
    let quiet = get(port, "/v1/decisions/stream?startup=false", &key);
    assert_eq!((values(&quiet["new"]).len(), values(&quiet["deleted"]).len()), (0, 0), "{quiet}");
    // Filters: only ranges; only another origin.
    let ranges = get(port, "/v1/decisions/stream?startup=true&scopes=range", &key);
    assert_eq!(values(&ranges["new"]), ["2001:db8::/64"]);
    let others = get(port, "/v1/decisions/stream?startup=true&origins=crowdsec", &key);
    assert_eq!(values(&others["new"]).len(), 0);

    // Live lookups: an address inside the banned range; nothing: null.
    assert_eq!(values(&get(port, "/v1/decisions?ip=2001:db8::99", &key)), ["2001:db8::/64"]);
    assert_eq!(get(port, "/v1/decisions?ip=198.51.100.1", &key), Value::Null);
    assert_eq!(request(port, "GET", "/v1/decisions?ip=nonsense", Some(&key), "").0, 400);

    // A reload that restarts the jail withdraws nothing: its bans are
    // restored, not lifted.
    std::fs::write(root.join("conf/jail.local"), "[sshd]\nfindtime = 2h\n").unwrap();
    assert!(d.client(&["reload"]).0);
    d.wait_for("the jail to start again", || d.status().is_some_and(|s| s["running"] == true));
    let after_reload = get(port, "/v1/decisions/stream", &key);
    assert_eq!(values(&after_reload["deleted"]).len(), 0, "{after_reload}");

    // An unban and a new ban, in the next pull.
    assert!(d.client(&["unban", "192.0.2.7"]).0);
    assert!(d.client(&["ban", "sshd", "198.51.100.9"]).0);
    let delta = get(port, "/v1/decisions/stream", &key);
    assert_eq!(values(&delta["new"]), ["198.51.100.9"], "{delta}");
    assert_eq!(values(&delta["deleted"]), ["192.0.2.7"], "{delta}");

    // Usage metrics are taken.
    assert_eq!(request(port, "POST", "/v1/usage-metrics", Some(&key), "{\"remediation_components\":[]}").0, 201);

    // A deleted bouncer is shut out at once, a new one let in at once.
    assert!(bouncers(root, &["delete", "fw1"]).0);
    assert_eq!(request(port, "GET", "/v1/decisions/stream", Some(&key), "").0, 403);
    let key2 = add_bouncer(root, "nginx");
    assert_eq!(values(&get(port, "/v1/decisions/stream", &key2)["new"]), ["198.51.100.9", "2001:db8::/64"]);
}

#[test]
fn a_keys_file_others_can_read_lets_nobody_in_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    lapi_tree(root, &format!("127.0.0.1:{port}"));
    let key = add_bouncer(root, "fw1");
    let keys = root.join("state/bouncers.keys");
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let d = Daemon::start_ready(root, None);
    assert_eq!(request(port, "GET", "/v1/decisions/stream", Some(&key), "").0, 403);
    d.wait_for("the reason in the log", || d.log().contains("chmod 600"));
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert_eq!(request(port, "GET", "/v1/decisions/stream", Some(&key), "").0, 200);
}

/// Debian's crowdsec-firewall-bouncer, started in `ns` against the API on
/// the namespace's loopback; killed when dropped.
struct Bouncer {
    child: Child,
    log: std::path::PathBuf,
}

impl Bouncer {
    fn start(ns: &NetNs, root: &Path, port: u16, key: &str) -> Bouncer {
        let config = root.join("bouncer.yaml");
        std::fs::write(
            &config,
            format!(
                "mode: nftables\npid_dir: {root}/\nupdate_frequency: 1s\ndaemonize: false\nlog_mode: stdout\n\
                 log_level: info\napi_url: http://127.0.0.1:{port}/\napi_key: {key}\ndisable_ipv6: false\n\
                 deny_action: DROP\ndeny_log: false\nsupported_decisions_types:\n  - ban\n\
                 blacklists_ipv4: crowdsec-blacklists\nblacklists_ipv6: crowdsec6-blacklists\n\
                 nftables:\n  ipv4:\n    enabled: true\n    set-only: false\n    table: crowdsec\n    \
                 chain: crowdsec-chain\n  ipv6:\n    enabled: true\n    set-only: false\n    table: crowdsec6\n    \
                 chain: crowdsec6-chain\nprometheus:\n  enabled: false\n  listen_addr: 127.0.0.1\n  listen_port: 60601\n",
                root = root.display()
            ),
        )
        .unwrap();
        let log = root.join("bouncer.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "crowdsec-firewall-bouncer", "-c", config.to_str().unwrap()])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Bouncer { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The elements of nftables set `set` in table `table` of `ns`, as `nft`
/// prints them, or "" before the bouncer made it.
fn set_elements(ns: &NetNs, family: &str, table: &str, set: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "list", "set", family, table, set])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, bouncer: &Bouncer, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; bouncer log:\n{}",
            bouncer.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn crowdsecs_firewall_bouncer_enforces_wasmbans_bans_in_nftables() {
    if let Some(why) = root_skip_reason(&["crowdsec-firewall-bouncer", "nft"]) {
        return skipped!("{why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The namespace is new: nothing listens on its loopback.
    let port = 8080;
    lapi_tree(root, &format!("127.0.0.1:{port}"));
    let key = add_bouncer(root, "firewall");
    let ns = NetNs::new("lapi");
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.7"));
    d.wait_for("the ban", || d.status().unwrap()["currently_banned"] == 1);
    assert!(d.client(&["ban", "sshd", "2001:db8::7"]).0);

    // A wrong key: 403, from inside the namespace as the bouncer sees it.
    let (code, _) = ns.run(|| request(port, "GET", "/v1/decisions/stream?startup=true", Some("wrong"), ""));
    assert_eq!(code, 403);

    let bouncer = Bouncer::start(&ns, root, port, &key);
    wait_until("the bans in the bouncer's sets", &bouncer, || {
        set_elements(&ns, "ip", "crowdsec", "crowdsec-blacklists").contains("192.0.2.7")
            && set_elements(&ns, "ip6", "crowdsec6", "crowdsec6-blacklists").contains("2001:db8::7")
    });
    // With the ban's time left as their timeout (the jail's bantime: 1h).
    let v4 = set_elements(&ns, "ip", "crowdsec", "crowdsec-blacklists");
    assert!(v4.contains("192.0.2.7 timeout 59m") || v4.contains("192.0.2.7 timeout 1h"), "{v4}");

    // A ban made while the bouncer runs reaches it; an unban leaves.
    assert!(d.client(&["ban", "sshd", "198.51.100.9"]).0);
    assert!(d.client(&["unban", "192.0.2.7"]).0);
    wait_until("the new ban in, the unban out", &bouncer, || {
        let v4 = set_elements(&ns, "ip", "crowdsec", "crowdsec-blacklists");
        v4.contains("198.51.100.9") && !v4.contains("192.0.2.7")
    });
    assert!(!bouncer.log().contains("level=error"), "{}", bouncer.log());
}
