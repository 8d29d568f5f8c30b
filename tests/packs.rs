//! Filter packs: the example JSON access-log pack (plugins/json-access-pack,
//! built from source) installed as an admin installs a stranger's pack
//! (plugin.d/NAME.toml pinning its sha256, granting nothing), tested with
//! its own samples, run by `wasmban regex`, and selected by a jail.

use std::path::Path;

use serde_json::Value;

use crate::util::artifact;
use crate::util::daemon::Daemon;

fn wasmban(args: &[&str]) -> (bool, String) {
    let run = crate::util::wasmban(args);
    (run.ok, run.both())
}

fn sha256_of(path: &Path) -> String {
    let (ok, out) = wasmban(&["plugin", "inspect", path.to_str().unwrap(), "--json"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["sha256"].as_str().unwrap().to_string()
}

/// Install the pack in `plugin_dir` as json-access, pinned.
fn install(plugin_dir: &Path) {
    std::fs::create_dir_all(plugin_dir).unwrap();
    let wasm = plugin_dir.join("json-access.wasm");
    std::fs::copy(artifact("json-access-pack"), &wasm).unwrap();
    std::fs::write(
        plugin_dir.join("json-access.toml"),
        format!("file = \"json-access.wasm\"\nsha256 = \"{}\"\n", sha256_of(&wasm)),
    )
    .unwrap();
}

fn access_line(addr: &str, status: u16, second: u32) -> String {
    format!(
        "{{\"time\":\"{}\",\"remote_addr\":\"{addr}\",\"request\":\"POST /login HTTP/1.1\",\"status\":{status}}}\n",
        crate::util::daemon::iso(i64::from(second))
    )
}

#[test]
fn plugin_test_runs_the_packs_own_samples() {
    let (ok, out) = wasmban(&["plugin", "test", artifact("json-access-pack").to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("pack json-access"), "{out}");
    assert!(out.contains("http-auth-rate: ok, 12 samples (1 failures"), "{out}");
    assert!(out.contains("http-status: ok, 4 samples (3 failures"), "{out}");
    // Something that is not a pack is told so.
    let (ok, out) = wasmban(&["plugin", "test", "iptables"]);
    assert!(!ok && out.contains("filter pack"), "{out}");
}

#[test]
fn regex_runs_a_packs_filter_like_an_ini_filter() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.json");
    let mut text: String = (0..3).map(|i| access_line("203.0.113.5", 401, i)).collect();
    text.push_str(&access_line("198.51.100.1", 200, 4));
    std::fs::write(&log, text).unwrap();
    let filter = format!("{}:http-auth-rate", artifact("json-access-pack").display());
    let state = dir.path().join("state");
    let (ok, out) = wasmban(&[
        "--state-dir",
        state.to_str().unwrap(),
        "regex",
        log.to_str().unwrap(),
        &filter,
        "--opt",
        "rate=3",
        "--json",
    ]);
    assert!(ok, "{out}");
    let found: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<&str> =
        found.iter().flat_map(|l| l["failures"].as_array().unwrap()).map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["203.0.113.5"], "{out}");
    let (ok, out) = wasmban(&[
        "--state-dir",
        state.to_str().unwrap(),
        "regex",
        log.to_str().unwrap(),
        &filter,
        "--opt",
        "rate=many",
    ]);
    assert!(!ok && out.contains("`rate`"), "{out}");
}

/// A jail names `PACK:FILTER`; the pack, pinned and granted nothing, bans
/// on a rate of 401s; a jail without logpath follows the pack's default.
#[test]
fn a_jail_selects_a_packs_filter_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    crate::util::daemon::tree(
        root,
        &format!(
            "[sshd]\nfilter = json-access:http-auth-rate[rate=3, window=60]\nlogpath = {}\n\
             [web-default]\nenabled = true\nfilter = json-access:http-status\naction =\n",
            root.join("access.json").display()
        ),
    );
    install(&root.join("conf/plugin.d"));
    let d = Daemon::start_ready(root, None);
    let banned =
        || d.status().is_some_and(|s| s["banned"].as_array().unwrap().iter().any(|b| b["ip"] == "203.0.113.5"));
    let log = root.join("access.json");
    crate::util::daemon::append(&log, &access_line("203.0.113.5", 401, 0));
    crate::util::daemon::append(&log, &access_line("203.0.113.5", 401, 1));
    crate::util::daemon::append(&log, &access_line("198.51.100.9", 401, 1));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!banned(), "banned before the rate was reached");
    crate::util::daemon::append(&log, &access_line("203.0.113.5", 401, 2));
    d.wait_for("the rate ban", banned);
    let (ok, out) = d.client(&["status", "web-default", "--json"]);
    assert!(ok, "{out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert!(status["waiting"].to_string().contains("/var/log/nginx/access.json"), "{status}");

    // The pin holds: a changed file is refused at the next check.
    let wasm = root.join("conf/plugin.d/json-access.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(&wasm, bytes).unwrap();
    let (ok, out) = wasmban(&[
        "-c",
        root.join("conf").to_str().unwrap(),
        "--state-dir",
        root.join("state2").to_str().unwrap(),
        "check",
    ]);
    assert!(!ok && out.contains("sha256"), "{out}");
}

/// `wasmban check` and the daemon build a jail through one assembly: for a
/// pack's filter that the jail gives no logpath, both read the pack's
/// default log, and `check` warns about exactly that file.
#[test]
fn check_and_the_daemon_plan_a_pack_jail_alike() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    crate::util::daemon::tree(root, "[web-default]\nenabled = true\nfilter = json-access:http-status\naction =\n");
    install(&root.join("conf/plugin.d"));
    let (jails, errors) = wasmban::config::jail::Jails::load(&root.join("conf")).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let jail = jails.enabled.iter().find(|j| j.name == "web-default").unwrap();
    let runtime = crate::util::runtime();
    let registry = wasmban::plugin::Registry::new(Some(root.join("conf/plugin.d")));
    let plan = wasmban::daemon::assemble::plan_filter(jail, &runtime, &registry).unwrap();
    assert_eq!(plan.source.logpaths, ["/var/log/nginx/access.json"]);
    assert!(!plan.options.iter().any(|(k, _)| k == "journal"), "{:?}", plan.options);
    plan.instantiate().unwrap();
    let (_, out) = wasmban(&[
        "-c",
        root.join("conf").to_str().unwrap(),
        "--state-dir",
        root.join("state").to_str().unwrap(),
        "check",
    ]);
    assert!(out.contains("warning: [web-default] log /var/log/nginx/access.json does not exist yet"), "{out}");
}
