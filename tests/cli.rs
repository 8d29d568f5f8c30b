//! The `wasmban` binary as an admin uses it.

fn wasmban(args: &[&str]) -> (bool, String, String) {
    let run = crate::util::wasmban(args);
    (run.ok, run.stdout, run.stderr)
}

#[test]
fn inspect_shows_that_iptables_asks_only_for_the_firewall() {
    let (ok, stdout, stderr) = wasmban(&["plugin", "inspect", "iptables", "--json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["kind"], "action");
    assert_eq!(report["capabilities"], serde_json::json!(["firewall"]));
    assert_eq!(
        report["granted"]["firewall"],
        serde_json::json!(["iptables", "ip6tables", "iptables-restore", "ip6tables-restore"])
    );
    let imports: Vec<&str> =
        report["imports"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    for import in &imports {
        assert!(
            !import.starts_with("wasi:filesystem")
                && !import.starts_with("wasi:sockets")
                && !import.starts_with("wasi:http"),
            "iptables imports {import}"
        );
    }
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn inspect_of_a_file_flags_an_ungranted_capability() {
    let path = crate::util::artifact("sneaky-filter");
    let (ok, stdout, stderr) = wasmban(&["plugin", "inspect", path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("kind:         filter"), "{stdout}");
    assert!(stdout.contains("wasmban:plugin/firewall@0.1.0") && stdout.contains("capabilities: firewall"), "{stdout}");
    assert!(stdout.contains("granted:      log only"), "{stdout}");
}

#[test]
fn inspect_of_something_that_is_not_a_component_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm junk").unwrap();
    let (ok, _, stderr) = wasmban(&["plugin", "inspect", bogus.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("bogus") && stderr.contains("not a loadable WebAssembly component"), "{stderr}");
}

#[test]
fn plugin_list_names_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = wasmban(&["-c", dir.path().to_str().unwrap(), "plugin", "list"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("iptables") && stdout.contains("regex-filter"), "{stdout}");
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let line = "Nov  2 00:00:01 srv01 CRON[20033]: pam_unix(cron:session): session closed for user root\n";
    std::fs::write(&log, line.repeat(200_000)).unwrap();
    let wasmban = std::path::Path::new(crate::util::daemon::BIN);
    let script = format!(
        "'{}' --state-dir '{}' regex --print-all-missed '{}' '{}' | head -n 1",
        wasmban.display(),
        dir.path().join("state").display(),
        log.display(),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d/sshd.conf").display()
    );
    let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() == 1);
}
