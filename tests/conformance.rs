//! fail2ban's own sample corpus (1627 cases over 91 filters, from Debian's
//! fail2ban package) scored through `wasmban regex --json` by the shared
//! conformance harness. Every case must pass.

use std::path::PathBuf;
use std::process::Command;

fn harness() -> PathBuf {
    crate::util::shared_file("conformance/conformance.py").unwrap_or_default()
}

fn skip_reason() -> Option<String> {
    if !harness().is_file() {
        return Some("no conformance harness in ../shared/conformance".into());
    }
    if !std::path::Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs").is_dir() {
        return Some("Debian's fail2ban package is not installed (scripts/install-test-deps installs it)".into());
    }
    None
}

#[test]
fn every_case_of_fail2bans_sample_corpus_passes() {
    if let Some(why) = skip_reason() {
        crate::util::skipped!("every_case_of_fail2bans_sample_corpus_passes: {why}");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let state = scratch.path().join("state");
    let bin = format!("{} --state-dir {}", env!("CARGO_BIN_EXE_wasmban"), state.display());
    let out = Command::new("python3")
        .arg(harness())
        .args(["run", "--adapter", "wasmban", "--bin", &bin, "--strict", "-v", "20"])
        .env("CONFORMANCE_SCRATCH", scratch.path().join("work"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or("");
    println!("{last}");
    assert!(out.status.success(), "conformance failed:\n{stdout}\n{stderr}");
    // "conformance: PASSED/TOTAL cases (P%)"
    let counts = last.strip_prefix("conformance: ").and_then(|r| r.split_whitespace().next()).unwrap_or("");
    let (passed, total) = counts.split_once('/').unwrap_or(("0", "1"));
    assert_eq!(passed, total, "unexpected summary: {last}");
    assert!(total.parse::<u32>().unwrap_or(0) >= 1600, "the corpus shrank? {last}");
}
