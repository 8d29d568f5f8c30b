//! Grants decide what is linked; the host checks programs again per call.

use std::sync::Arc;

use wasmban::capability::process::{ProgramOutput, RecordingRunner};
use wasmban::plugin::{PluginError, Registry};

use crate::util::{fixture_source, load_fixture, opts, runtime, runtime_with};

#[test]
fn an_ungranted_import_is_refused_at_load_naming_plugin_and_import() {
    let rt = runtime();
    let err = load_fixture(&rt, "sneaky-filter", "").err().expect("must be refused");
    match &err {
        PluginError::Refused { plugin, import, .. } => {
            assert_eq!(plugin, "sneaky-filter");
            assert_eq!(import, "wasmban:plugin/firewall@0.1.0");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    // Even a grant does not give a filter more than log.
    let err = load_fixture(&rt, "sneaky-filter", "[grants]\nfirewall = [\"iptables\"]\n").err().unwrap();
    assert!(err.to_string().contains("filters are granted only `log`"), "{err}");
}

#[test]
fn an_action_without_its_grant_is_refused_with_the_line_to_add() {
    let rt = runtime();
    let mut source = Registry::new(None).resolve("iptables").unwrap();
    source.manifest.grants.firewall.clear();
    let err = rt.load(&source, "/etc/wasmban/plugin.d/iptables.toml").err().expect("must be refused");
    let text = err.to_string();
    assert!(text.contains("iptables") && text.contains("wasmban:plugin/firewall@0.1.0"), "{text}");
    assert!(text.contains("firewall = [") && text.contains("/etc/wasmban/plugin.d/iptables.toml"), "{text}");
}

#[test]
fn a_program_outside_the_grant_is_refused_by_the_host() {
    let recorder = RecordingRunner::default();
    let rt = runtime_with(Arc::new(recorder.clone()));
    let mut source = Registry::new(None).resolve("iptables").unwrap();
    // Granted ip6tables only: the iptables calls must be refused per call.
    source.manifest.grants.firewall = vec!["ip6tables".into()];
    let plugin = rt.load(&source, "x").unwrap();
    let mut action = plugin.action(opts(&[("name", "sshd")])).unwrap();
    let err = action.start().unwrap_err().to_string();
    assert!(err.contains("\"iptables\" is not granted") && err.contains("`start` failed"), "{err}");
    assert!(recorder.runs().is_empty(), "a refused program was run: {:?}", recorder.runs());
}

#[test]
fn a_pinned_component_that_changed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("pack.wasm");
    std::fs::copy(crate::util::artifact("null-filter"), &wasm).unwrap();
    std::fs::write(dir.path().join("pack.toml"), format!("sha256 = \"{}\"\n", "0".repeat(64))).unwrap();
    let err = Registry::new(Some(dir.path().to_path_buf())).resolve("pack.wasm").unwrap_err();
    assert!(matches!(err, PluginError::PinMismatch { .. }), "{err}");
    // With the right pin it loads.
    let sha = fixture_source("null-filter", "").sha256();
    std::fs::write(dir.path().join("pack.toml"), format!("sha256 = \"{sha}\"\n")).unwrap();
    let source = Registry::new(Some(dir.path().to_path_buf())).resolve("pack.wasm").unwrap();
    runtime().load(&source, "x").unwrap();
}

#[test]
fn an_admin_manifest_overrides_a_builtin_grant() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("iptables.toml"), "[grants]\nfirewall = [\"iptables\"]\n").unwrap();
    let source = Registry::new(Some(dir.path().to_path_buf())).resolve("iptables").unwrap();
    assert_eq!(source.manifest.grants.firewall, ["iptables"]);
    let recorder = RecordingRunner::answering(|_| ProgramOutput::default());
    let rt = runtime_with(Arc::new(recorder.clone()));
    let mut action = rt.load(&source, "x").unwrap().action(opts(&[("name", "web")])).unwrap();
    action.start().unwrap();
    // IPv6 needs ip6tables, which this grant leaves out.
    let ticket = crate::iptables::ticket("2001:db8::1");
    let results = action.ban(&[ticket]).unwrap();
    assert!(results[0].as_ref().unwrap_err().contains("\"ip6tables\" is not granted"), "{results:?}");
}

#[test]
fn an_unknown_plugin_name_lists_what_exists() {
    let err = Registry::new(None).resolve("ipchains").unwrap_err().to_string();
    assert!(err.contains("ipchains") && err.contains("iptables") && err.contains("regex-filter"), "{err}");
}
