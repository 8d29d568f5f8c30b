//! The ban store under a crash: every ban reported before a kill -9 is
//! found after it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use wasmban::store::{BanRecord, Store};

const CHILD_ENV: &str = "WASMBAN_STORM_DB";

fn storm(db: &str) {
    let mut store = Store::open(std::path::Path::new(db)).unwrap();
    for i in 0..1_000_000u32 {
        let ban = BanRecord {
            jail: "sshd".into(),
            id: format!("198.51.{}.{}", i / 250, i % 250),
            time: 1_700_000_000 + i64::from(i),
            bantime: -1,
            bancount: 1,
            failures: 5,
            matches: vec![format!("line {i}")],
            fields: vec![],
            origin: wasmban::store::Origin::Failures,
        };
        store.record_ban(&ban).unwrap();
        // Reported only once it is on disk.
        println!("banned {}", ban.id);
    }
}

#[test]
fn kill_9_during_a_ban_storm_loses_no_reported_ban() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        storm(&db);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasmban.sqlite3");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["store::kill_9_during_a_ban_storm_loses_no_reported_ban", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reported = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while reported.len() < 300 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(ip) = line.strip_prefix("banned ") {
            reported.push(ip.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Anything the child printed before dying was reported too.
    for line in lines.map_while(Result::ok) {
        if let Some(ip) = line.strip_prefix("banned ") {
            reported.push(ip.to_string());
        }
    }
    assert!(reported.len() >= 300, "the storm did not run: {}", reported.len());
    let store = Store::open(&db).unwrap();
    let kept: std::collections::HashSet<String> = store.active_bans(0).unwrap().into_iter().map(|b| b.id).collect();
    let lost: Vec<&String> = reported.iter().filter(|ip| !kept.contains(*ip)).collect();
    assert!(lost.is_empty(), "{} reported bans lost after kill -9: {lost:?}", lost.len());
}
