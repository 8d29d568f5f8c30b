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
    let ticket = crate::util::ticket("2001:db8::1");
    let results = action.ban(&[ticket]).unwrap();
    assert!(results[0].as_ref().unwrap_err().contains("\"ip6tables\" is not granted"), "{results:?}");
}

#[test]
fn an_unknown_plugin_name_lists_what_exists() {
    let err = Registry::new(None).resolve("ipchains").unwrap_err().to_string();
    assert!(err.contains("ipchains") && err.contains("iptables") && err.contains("regex-filter"), "{err}");
}

#[test]
fn plugin_files_others_can_write_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("iptables.toml");
    std::fs::write(&manifest, "[grants]\nfirewall = [\"iptables\"]\n").unwrap();
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = Registry::new(Some(dir.path().to_path_buf())).resolve("iptables").unwrap_err().to_string();
    assert!(err.contains("iptables.toml") && err.contains("writable by its owner only"), "{err}");

    // A component beside a manifest of ours, but writable by others.
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    let wasm = dir.path().join("pack.wasm");
    std::fs::copy(crate::util::artifact("null-filter"), &wasm).unwrap();
    std::fs::set_permissions(&wasm, std::fs::Permissions::from_mode(0o646)).unwrap();
    let err = Registry::new(Some(dir.path().to_path_buf())).resolve("pack.wasm").unwrap_err().to_string();
    assert!(err.contains("pack.wasm") && err.contains("writable by its owner only"), "{err}");

    // A plugin directory others can write.
    std::fs::set_permissions(&wasm, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Registry::new(Some(dir.path().to_path_buf())).resolve("iptables").unwrap_err().to_string();
    assert!(err.contains("another user could put plugin files there"), "{err}");
}

#[test]
fn a_manifest_another_user_owns_cannot_replace_a_builtin() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::util::skipped!("needs root to give the manifest to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("iptables.toml");
    std::fs::write(&manifest, "file = \"evil.wasm\"\n[grants]\nshell = true\n").unwrap();
    std::os::unix::fs::chown(&manifest, Some(65534), Some(65534)).unwrap();
    let err = Registry::new(Some(dir.path().to_path_buf())).resolve("iptables").unwrap_err().to_string();
    assert!(err.contains("owned by uid 65534"), "{err}");
}

#[test]
fn a_firewall_grant_of_a_shell_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for program in ["sh", "/bin/sh", "/tmp/../bin/sh", "bash", "python3"] {
        std::fs::write(dir.path().join("iptables.toml"), format!("[grants]\nfirewall = [{program:?}]\n")).unwrap();
        let err = Registry::new(Some(dir.path().to_path_buf())).resolve("iptables").unwrap_err().to_string();
        assert!(err.contains("grants.firewall"), "{program}: {err}");
    }
}

/// Debian's apf file runs in the apf component: `apf --deny` and `apf
/// --remove` with fail2ban's comment, through an apf of the test's that
/// the admin's grant names by path.
#[test]
fn fail2bans_apf_action_runs_apf_only() {
    use crate::util::daemon::{Daemon, append, failure, tree};
    use std::os::unix::fs::PermissionsExt;
    if !std::path::Path::new("/etc/fail2ban/action.d/apf.conf").is_file() {
        return crate::util::skipped!("fail2bans_apf_action_runs_apf_only: fail2ban is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let calls = root.join("calls");
    let apf = root.join("apf");
    std::fs::write(
        &apf,
        format!("#!/bin/sh\nfor a in \"$@\"; do printf '%s|' \"$a\"; done >> {0}\necho >> {0}\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&apf, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree(root, &format!("[sshd]\naction = apf[name=sshd, apf={}]\n", apf.display()));
    crate::util::daemon::copy_fail2ban_actions(root);
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/apf.toml"),
        format!("[grants]\nfirewall = [{:?}]\n", apf.display().to_string()),
    )
    .unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    append(&root.join("auth.log"), &failure("192.0.2.7"));
    d.wait_for("the ban", || std::fs::read_to_string(&calls).is_ok_and(|c| c.contains("--deny")));
    assert!(d.client(&["unban", "192.0.2.7"]).0);
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "--deny|192.0.2.7|banned by Fail2Ban sshd|\n--remove|192.0.2.7|\n"
    );
}
