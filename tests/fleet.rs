//! The fleet: this host's signing key, `[fleet]` checked, and three
//! daemons sharing bans through a real nats-server with per-host
//! permissions.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::daemon::{Daemon, append, failure, tree};
use crate::util::{free_port, has_program, skipped, wasmban};

#[test]
fn keygen_prints_a_public_key_and_keeps_the_key_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let made = wasmban(&["--state-dir", state, "fleet", "keygen"]);
    assert!(made.ok, "{}", made.both());
    let public = made.stdout.lines().last().unwrap().trim().to_string();
    assert!(public.starts_with('U') && public.len() == 56, "{public}");
    let again = wasmban(&["--state-dir", state, "fleet", "keygen"]);
    assert!(!again.ok && again.stderr.contains("--replace"), "{}", again.both());
    let shown = wasmban(&["--state-dir", state, "fleet", "pubkey"]);
    assert_eq!(shown.stdout.trim(), public);
}

#[test]
fn a_bad_fleet_section_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let conf = root.join("conf");
    std::fs::write(conf.join("wasmban.conf"), "[fleet]\nservers = nats://127.0.0.1:4222\nname = web1\n").unwrap();
    let checked = wasmban(&["-c", conf.to_str().unwrap(), "check"]);
    assert!(checked.ok, "{}", checked.both());
    std::fs::write(conf.join("wasmban.local"), "[fleet]\ntrust = web2:NOTAKEY\n").unwrap();
    let checked = wasmban(&["-c", conf.to_str().unwrap(), "check"]);
    assert!(
        !checked.ok && checked.both().contains("trust") && checked.both().contains("wasmban.local"),
        "{}",
        checked.both()
    );
}

/// A NATS server with JetStream on loopback, one user per host (its
/// signing key, as an nkey) allowed to write only its own keys of the
/// bucket, and an admin; stopped when dropped.
struct Nats {
    child: Option<std::process::Child>,
    config: std::path::PathBuf,
    port: u16,
}

impl Nats {
    /// The server of the shipped example, `dist/fleet/nats-server.conf`,
    /// with the hosts' keys, on loopback.
    fn start(root: &Path, port: u16, hosts: &[&Path]) -> Nats {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/fleet/nats-server.conf");
        let mut text = std::fs::read_to_string(example).unwrap();
        for (n, dir) in hosts.iter().enumerate() {
            let key = std::fs::read_to_string(dir.join("public")).unwrap();
            text = text.replace(&format!("UAWEB{}PUBLICKEYREPLACEME", n + 1), &key);
        }
        let text = text
            .replace("listen: 0.0.0.0:4222", &format!("listen: 127.0.0.1:{port}"))
            .replace("/var/lib/nats/jetstream", root.join("jetstream").to_str().unwrap())
            .replace("CHANGE-ME", "pw-admin");
        let config = root.join("nats.conf");
        std::fs::write(&config, text).unwrap();
        let mut nats = Nats { child: None, config, port };
        nats.run();
        nats
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run `f` with a JetStream context of the admin, or of the host whose
    /// key file is `host_key`.
    fn as_user<T>(&self, host_key: Option<&Path>, f: impl AsyncFnOnce(async_nats::jetstream::Context) -> T) -> T {
        let options = match host_key {
            Some(key) => async_nats::ConnectOptions::new().nkey(std::fs::read_to_string(key).unwrap().trim().into()),
            None => async_nats::ConnectOptions::with_user_and_password("admin".into(), "pw-admin".into()),
        };
        let url = format!("nats://127.0.0.1:{}", self.port);
        tokio::runtime::Runtime::new().unwrap().block_on(async move {
            let client = options.connect(url).await.unwrap();
            f(async_nats::jetstream::new(client)).await
        })
    }
}

impl Nats {
    /// The bucket, made once by the admin with the key-value layout.
    fn make_bucket(&self) {
        self.as_user(None, async |js| {
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "KV_wasmban-bans".into(),
                subjects: vec!["$KV.wasmban-bans.>".into()],
                max_messages_per_subject: 1,
                discard: async_nats::jetstream::stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .unwrap();
        });
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Host `name`'s tree under `root/name`, with its signing key (its NATS
/// user too); the public key goes in `root/name/public`.
fn host(root: &Path, name: &str, port: u16) -> std::path::PathBuf {
    let dir = root.join(name);
    tree(&dir, "[sshd]\nfleet = both\n");
    let state = dir.join("state");
    let made = wasmban(&["--state-dir", state.to_str().unwrap(), "fleet", "keygen"]);
    assert!(made.ok, "{}", made.both());
    std::fs::write(dir.join("public"), made.stdout.lines().last().unwrap().trim()).unwrap();
    std::fs::write(
        dir.join("conf/wasmban.conf"),
        format!(
            "[fleet]\nservers = nats://127.0.0.1:{port}\nauth = nkey\nname = {name}\n\
             allow = 203.0.113.0/24\nmembers = 198.51.100.77\nmaxbantime = 1d\n"
        ),
    )
    .unwrap();
    dir
}

fn trust(dir: &Path, others: &[&Path]) {
    let entries: Vec<String> = others
        .iter()
        .map(|o| {
            format!(
                "{}:{}",
                o.file_name().unwrap().to_str().unwrap(),
                std::fs::read_to_string(o.join("public")).unwrap()
            )
        })
        .collect();
    std::fs::write(dir.join("conf/wasmban.local"), format!("[fleet]\ntrust = {}\n", entries.join(", "))).unwrap();
}

fn banned_by(d: &Daemon) -> Vec<(String, String)> {
    let (ok, out) = d.client(&["banned", "--json"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut all: Vec<(String, String)> = v["sshd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["ip"].as_str().unwrap().to_string(), b["origin"].as_str().unwrap().to_string()))
        .collect();
    all.sort();
    all
}

fn fleet_status(d: &Daemon) -> Value {
    let (ok, out) = d.client(&["fleet", "status", "--json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn has(d: &Daemon, ip: &str, origin: &str) -> bool {
    banned_by(d).iter().any(|(i, o)| i == ip && o == origin)
}

#[test]
fn three_hosts_share_bans_over_a_real_nats_server() {
    if !has_program("nats-server") {
        return skipped!("nats-server is not installed (Debian package nats-server)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let (a, b, c) = (host(root, "web1", port), host(root, "web2", port), host(root, "web3", port));
    let mut nats = Nats::start(root, port, &[&a, &b, &c]);
    nats.make_bucket();
    trust(&a, &[&b, &c]);
    trust(&b, &[&a, &c]);
    trust(&c, &[&a, &b]);
    let da = Daemon::start_ready(&a, None);
    let db = Daemon::start_ready(&b, None);
    let mut dc = Some(Daemon::start_ready(&c, None));
    for d in [&da, &db, dc.as_ref().unwrap()] {
        d.wait_for("the fleet to connect", || fleet_status(d)["connected"] == true);
    }

    // A ban found on web1 is applied on web2 and web3.
    append(&a.join("auth.log"), &failure("192.0.2.7"));
    da.wait_for("the ban on web1", || has(&da, "192.0.2.7", "filter"));
    db.wait_for("the ban on web2", || has(&db, "192.0.2.7", "fleet"));
    let c_daemon = dc.as_ref().unwrap();
    c_daemon.wait_for("the ban on web3", || has(c_daemon, "192.0.2.7", "fleet"));
    assert!(!has(&da, "192.0.2.7", "fleet"), "web1 does not take its own record back");
    let (_, long) = db.client(&["banned", "--long"]);
    assert!(long.contains("192.0.2.7") && long.contains("fleet from web1/sshd"), "{long}");

    // web3 away during a ban catches up when it starts again.
    drop(dc.take());
    assert!(da.client(&["ban", "sshd", "192.0.2.8"]).0);
    db.wait_for("the manual ban on web2", || has(&db, "192.0.2.8", "fleet"));
    let dc = Daemon::start_ready(&c, None);
    dc.wait_for("web3 catching up", || has(&dc, "192.0.2.8", "fleet") && has(&dc, "192.0.2.7", "fleet"));

    // An unban on web1 is lifted everywhere.
    assert!(da.client(&["unban", "192.0.2.8"]).0);
    db.wait_for("the unban on web2", || !has(&db, "192.0.2.8", "fleet"));

    // An allow-listed address is never banned from the fleet.
    assert!(da.client(&["ban", "sshd", "203.0.113.5"]).0);
    db.wait_for("the refusal counted", || fleet_status(&db)["origins"]["web1"]["rejected"]["allowed"] == 1);
    assert!(!has(&db, "203.0.113.5", "fleet"));
    // Nor a fleet member's address (`members`), nor this host's own or
    // loopback.
    assert!(da.client(&["ban", "sshd", "198.51.100.77"]).0);
    db.wait_for("the member refused", || fleet_status(&db)["origins"]["web1"]["rejected"]["allowed"] == 2);
    assert!(!has(&db, "198.51.100.77", "fleet"));
    assert!(da.client(&["ban", "--force", "sshd", "127.0.0.9"]).0);
    db.wait_for("loopback refused", || fleet_status(&db)["origins"]["web1"]["rejected"]["protected"] == 1);

    // The server refuses web2 writing under web1's name; a record under
    // web1's name signed by another key (the admin can write anything)
    // is refused by the hosts.
    let refused = nats.as_user(Some(&b.join("state/fleet.nk")), async |js| {
        let kv = js.get_key_value("wasmban-bans").await.unwrap();
        kv.put("web1.198.51.100.1", "{}".into()).await.is_err()
    });
    assert!(refused, "the server let web2 write under web1");
    let mut forged = wasmban::fleet::record::Record {
        id: "forged".into(),
        origin: "web1".into(),
        address: "198.51.100.2".into(),
        prefix: 32,
        jail: "sshd".into(),
        reason: "filter".into(),
        start: 1,
        end: None,
        count: 1,
        signature: String::new(),
    };
    forged.sign(&nkeys::KeyPair::new_user()).unwrap();
    nats.as_user(None, async |js| {
        let kv = js.get_key_value("wasmban-bans").await.unwrap();
        kv.put(forged.key(), serde_json::to_vec(&forged).unwrap().into()).await.unwrap();
    });
    db.wait_for("the forgery refused", || fleet_status(&db)["origins"]["web1"]["rejected"]["bad-signature"] == 1);
    assert!(!has(&db, "198.51.100.2", "fleet"));

    // With NATS down, bans go on locally and wait; they go out when it
    // is back.
    nats.stop();
    da.wait_for("the disconnect", || fleet_status(&da)["connected"] == false);
    assert!(da.client(&["ban", "sshd", "192.0.2.9"]).0);
    assert!(has(&da, "192.0.2.9", "manual"));
    da.wait_for("the record in the outbox", || fleet_status(&da)["outbox"] == 1);
    nats.run();
    da.wait_for("the outbox drained", || fleet_status(&da)["outbox"] == 0);
    dc.wait_for("the waiting ban on web3", || has(&dc, "192.0.2.9", "fleet"));

    // Revoking web1 on web2 lifts all it contributed there.
    let (ok, out) = db.client(&["fleet", "revoke", "web1"]);
    assert!(ok, "{out}");
    db.wait_for("web1's bans lifted on web2", || {
        let bans = banned_by(&db);
        !bans.iter().any(|(_, o)| o == "fleet")
    });
    assert!(fleet_status(&db)["origins"]["web1"]["revoked"] == true);
    // Released: its bans in the bucket are taken again.
    let (ok, out) = db.client(&["fleet", "release", "web1"]);
    assert!(ok, "{out}");
    db.wait_for("web1's bans back on web2", || has(&db, "192.0.2.7", "fleet"));
}

#[test]
fn a_flooding_origin_is_quarantined_and_its_bans_lifted() {
    if !has_program("nats-server") {
        return skipped!("nats-server is not installed (Debian package nats-server)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let (a, b, c) = (host(root, "web1", port), host(root, "web2", port), host(root, "web3", port));
    let nats = Nats::start(root, port, &[&a, &b, &c]);
    nats.make_bucket();
    trust(&a, &[&b]);
    trust(&b, &[&a]);
    // web2 takes at most 3 new bans a minute from an origin.
    let local = std::fs::read_to_string(b.join("conf/wasmban.local")).unwrap();
    std::fs::write(b.join("conf/wasmban.local"), format!("{local}rate = 3/1m\n")).unwrap();
    let da = Daemon::start_ready(&a, None);
    let db = Daemon::start_ready(&b, None);
    for d in [&da, &db] {
        d.wait_for("the fleet to connect", || fleet_status(d)["connected"] == true);
    }
    for i in 1..=3 {
        let (ok, out) = da.client(&["ban", "sshd", &format!("198.51.100.{}", i + 10)]);
        assert!(ok, "{out}");
    }
    db.wait_for("three bans on web2", || banned_by(&db).len() == 3);
    assert!(da.client(&["ban", "sshd", "198.51.100.14"]).0);
    db.wait_for("web1 quarantined on web2", || fleet_status(&db)["origins"]["web1"]["quarantined"].is_string());
    db.wait_for("its bans lifted", || banned_by(&db).is_empty());
    db.wait_for("the log telling the admin", || db.log().contains("origin web1 quarantined"));
    let (_, text) = db.client(&["fleet", "status"]);
    assert!(text.contains("QUARANTINED"), "{text}");
}
