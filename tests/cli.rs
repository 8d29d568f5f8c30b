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
