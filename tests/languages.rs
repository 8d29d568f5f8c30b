//! Custom actions written in Python and JavaScript, built from the sources
//! in examples/ against wit/ with the languages' own component tools
//! (componentize-py from PyPI, componentize-js from npm; .ci/run installs
//! both), installed the way an admin installs them (plugin.d/NAME.toml
//! beside NAME.wasm), and run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use wasmban::plugin::{Registry, Runtime, RuntimeOptions};

use crate::util::daemon::Daemon;
use crate::util::opts;
use crate::util::ticket;

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Build `source` (a file in examples/EXAMPLE) into `out`/NAME.wasm with
/// `tool` and `args`, in a directory holding a copy of wit/ (both tools
/// want it inside their working directory).
fn build(example: &str, source: &str, tool: &Path, args: &[&str], out: &Path) {
    let work = tempfile::tempdir().unwrap();
    let status = Command::new("cp").arg("-r").arg(repo().join("wit")).arg(work.path()).status().unwrap();
    assert!(status.success());
    std::fs::copy(repo().join("examples").join(example).join(source), work.path().join(source)).unwrap();
    let output = Command::new(tool).args(args).current_dir(work.path()).output().unwrap();
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{}{}",
        tool.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let built = args.iter().skip_while(|a| **a != "-o" && **a != "--out").nth(1).unwrap();
    std::fs::copy(work.path().join(built), out).unwrap();
}

fn build_python_webhook(plugin_dir: &Path) -> Option<PathBuf> {
    let tool = on_path("componentize-py")?;
    let wasm = plugin_dir.join("webhook.wasm");
    build(
        "python-webhook",
        "action.py",
        &tool,
        &["-d", "wit", "-w", "http-action", "componentize", "action", "-o", "webhook.wasm"],
        &wasm,
    );
    Some(wasm)
}

fn build_js_audit(plugin_dir: &Path) -> Option<PathBuf> {
    let tool = on_path("componentize-js")?;
    let wasm = plugin_dir.join("audit.wasm");
    build(
        "js-audit",
        "audit.js",
        &tool,
        &[
            "--wit",
            "wit",
            "--world-name",
            "log-action",
            "-d",
            "http",
            "-d",
            "fetch-event",
            "--out",
            "audit.wasm",
            "audit.js",
        ],
        &wasm,
    );
    Some(wasm)
}

/// One request as the server saw it: request line, headers, body.
type Seen = (String, Vec<(String, String)>, String);

/// A loopback HTTP server that records every request and answers 204.
struct Hook {
    port: u16,
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let length: usize =
                    headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push((
                    request_line.trim_end().to_string(),
                    headers,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                let mut stream = stream;
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Hook { port, requests }
    }
}

fn install(plugin_dir: &Path, name: &str, manifest: &str) {
    std::fs::write(plugin_dir.join(format!("{name}.toml")), manifest).unwrap();
}

/// The Python webhook: every ban and unban reaches a loopback HTTP server as
/// a JSON event, with the bearer token; a destination outside the grant is
/// refused and never contacted.
#[test]
fn python_webhook_action_posts_bans_and_is_held_to_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("plugin.d");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let Some(_) = build_python_webhook(&plugin_dir) else {
        crate::util::skipped!(
            "python_webhook_action_posts_bans_and_is_held_to_its_grant: componentize-py is not installed (.ci/run installs it)"
        );
        return;
    };
    let hook = Hook::start();
    let elsewhere = Hook::start();
    install(
        &plugin_dir,
        "webhook",
        &format!(
            "file = \"webhook.wasm\"\n[grants]\nhttp = [\"127.0.0.1:{}\"]\n[limits]\nmemory-mb = 128\ncall-timeout-ms = 30000\n",
            hook.port
        ),
    );
    let runtime =
        Runtime::new(RuntimeOptions { cache_dir: Some(dir.path().join("cache")), ..RuntimeOptions::default() })
            .unwrap();
    let registry = Registry::new(Some(plugin_dir.clone()));
    let plugin = runtime.load_named(&registry, "webhook").unwrap();

    let url = format!("http://127.0.0.1:{}/wasmban", hook.port);
    let mut action =
        plugin.action(opts(&[("name", "sshd"), ("url", &url), ("token", "s3cret"), ("lines", "yes")])).unwrap();
    action.start().unwrap();
    let mut first = ticket("192.0.2.7");
    first.matches = vec!["Failed password for root from 192.0.2.7".into()];
    first.fields = vec![("user".into(), "root".into())];
    let results = action.ban(&[first, ticket("2001:db8::7")]).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(action.unban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());

    let requests = hook.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let (line, headers, body) = &requests[0];
    assert_eq!(line, "POST /wasmban HTTP/1.1");
    assert!(headers.contains(&("authorization".into(), "Bearer s3cret".into())), "{headers:?}");
    assert!(headers.contains(&("content-type".into(), "application/json".into())), "{headers:?}");
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["event"], "ban");
    assert_eq!(event["jail"], "sshd");
    assert_eq!(event["ip"], "192.0.2.7");
    assert_eq!(event["failures"], 5);
    assert_eq!(event["bantime"], 600);
    assert_eq!(event["fields"]["user"], "root");
    assert_eq!(event["matches"][0], "Failed password for root from 192.0.2.7");
    let last: Value = serde_json::from_str(&requests[2].2).unwrap();
    assert_eq!((last["event"].as_str(), last["ip"].as_str()), (Some("unban"), Some("192.0.2.7")));

    // The same component, pointed at a destination its grant does not list.
    let outside = format!("http://127.0.0.1:{}/steal", elsewhere.port);
    let mut action = plugin.action(opts(&[("name", "sshd"), ("url", &outside)])).unwrap();
    let results = action.ban(&[ticket("192.0.2.8")]).unwrap();
    let err = results[0].as_ref().unwrap_err();
    assert!(err.contains("not in the `http` grant"), "{err}");
    assert!(elsewhere.requests.lock().unwrap().is_empty(), "a refused destination was contacted");

    // A bad option is a creation error that names it.
    let err = plugin.action(opts(&[("url", "ftp://x/")])).err().unwrap().to_string();
    assert!(err.contains("`url`"), "{err}");
}

/// The JavaScript audit action, installed in plugin.d and named by a jail's
/// action.d file, run by the daemon: each ban becomes one JSON line in the
/// daemon log.
#[test]
fn js_audit_action_writes_a_json_line_per_ban_through_the_daemon_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    crate::util::daemon::tree(root, "[sshd]\naction = audit[lines=yes]\n");
    let plugin_dir = root.join("conf/plugin.d");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let Some(_) = build_js_audit(&plugin_dir) else {
        crate::util::skipped!(
            "js_audit_action_writes_a_json_line_per_ban_through_the_daemon_log: componentize-js is not installed (.ci/run installs it)"
        );
        return;
    };
    install(&plugin_dir, "audit", "file = \"audit.wasm\"\n[limits]\nmemory-mb = 128\n");
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    std::fs::write(root.join("conf/action.d/audit.conf"), "[Definition]\nplugin = audit\n[Init]\nlevel = info\n")
        .unwrap();
    let d = Daemon::start_ready(root, None);
    crate::util::daemon::append(&root.join("auth.log"), &crate::util::daemon::failure("192.0.2.77"));
    d.wait_for("the audit line", || d.log().contains("\"event\":\"ban\""));
    let log = d.log();
    let line = log.lines().find(|l| l.contains("\"event\":\"ban\"")).unwrap();
    // The JSON object, without what the log line adds after it.
    let json: Value = serde_json::Deserializer::from_str(&line[line.find("AUDIT ").unwrap() + 6..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((json["jail"].as_str(), json["ip"].as_str()), (Some("sshd"), Some("192.0.2.77")));
    assert!(json["matches"][0].as_str().unwrap().contains("Failed password for root from 192.0.2.77"), "{json}");
    assert!(log.contains("AUDIT {\"event\":\"start\",\"jail\":\"sshd\"}"), "{log}");
    assert!(d.client(&["unban", "192.0.2.77"]).0);
    d.wait_for("the unban line", || d.log().contains("\"event\":\"unban\""));
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wasmban")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?} in {} failed:\n{text}", dir.display());
    text
}

fn new_project(lang: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), env!("CARGO_BIN_EXE_wasmban"), &["plugin", "new", "--lang", lang, name]);
    assert!(out.contains("created"), "{out}");
    let root = dir.path().join(name);
    (dir, root)
}

/// What `plugin try` prints for a scaffolded action: every step ok, and the
/// action's own log line for the ban.
fn assert_tried(out: &str) {
    for step in ["create: ok", "start: ok", "ban 192.0.2.1: ok", "unban 192.0.2.1: ok", "stop: ok"] {
        assert!(out.contains(step), "{step} missing:\n{out}");
    }
    assert!(out.contains("test: [test] ban 192.0.2.1"), "the action's log line is missing:\n{out}");
}

#[test]
fn plugin_new_rust_project_tests_builds_and_runs() {
    let (_dir, root) = new_project("rust", "notify-rs");
    run_in(&root, "cargo", &["test", "--quiet"]);
    run_in(&root, "cargo", &["build", "--quiet", "--release", "--target", "wasm32-wasip2"]);
    std::fs::copy(root.join("target/wasm32-wasip2/release/notify_rs.wasm"), root.join("notify-rs.wasm")).unwrap();
    let out = run_in(
        &root,
        "wasmban",
        &["plugin", "try", "notify-rs.wasm", "--option", "prefix=test: ", "--ban", "192.0.2.1", "--unban", "192.0.2.1"],
    );
    assert_tried(&out);
}

#[test]
fn plugin_new_python_project_builds_and_runs() {
    if on_path("componentize-py").is_none() {
        crate::util::skipped!(
            "plugin_new_python_project_builds_and_runs: componentize-py is not installed (.ci/run installs it)"
        );
        return;
    }
    let (_dir, root) = new_project("python", "notify-py");
    assert_tried(&run_in(&root, "./test.sh", &[]));
}

#[test]
fn plugin_new_js_project_builds_and_runs() {
    if on_path("componentize-js").is_none() {
        crate::util::skipped!(
            "plugin_new_js_project_builds_and_runs: componentize-js is not installed (.ci/run installs it)"
        );
        return;
    }
    let (_dir, root) = new_project("js", "notify-js");
    assert_tried(&run_in(&root, "./test.sh", &[]));
}
