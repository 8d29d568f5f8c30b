//! The fleet so far: this host's signing key, and `[fleet]` checked and
//! said to be unused.

use crate::util::daemon::tree;
use crate::util::wasmban;

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
fn a_fleet_section_is_checked_and_said_to_be_unused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let conf = root.join("conf");
    std::fs::write(conf.join("wasmban.conf"), "[fleet]\nservers = nats://127.0.0.1:4222\nname = web1\n").unwrap();
    let checked = wasmban(&["-c", conf.to_str().unwrap(), "check"]);
    assert!(checked.both().contains("[fleet] is read and checked"), "{}", checked.both());
    std::fs::write(conf.join("wasmban.local"), "[fleet]\ntrust = web2:NOTAKEY\n").unwrap();
    let checked = wasmban(&["-c", conf.to_str().unwrap(), "check"]);
    assert!(
        !checked.ok && checked.both().contains("trust") && checked.both().contains("wasmban.local"),
        "{}",
        checked.both()
    );
}
