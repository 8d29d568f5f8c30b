//! Real journal files for tests, written by systemd's own tool.

use std::path::Path;
use std::process::Command;

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Append entries to a real journal file, written by systemd's own tool
/// from the journal export format.
pub fn append(file: &Path, entries: &[(&str, &str)]) {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let mut export = String::new();
    for (i, (comm, message)) in entries.iter().enumerate() {
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
             _HOSTNAME=web\nSYSLOG_IDENTIFIER={comm}\n_PID=77\n_COMM={comm}\nMESSAGE={message}\n\n",
            micros + i as u128,
            micros + i as u128
        ));
    }
    let dir = file.parent().unwrap();
    let export_file = dir.join("entries.export");
    std::fs::write(&export_file, export).unwrap();
    let out =
        Command::new(JOURNAL_REMOTE).arg(format!("--output={}", file.display())).arg(&export_file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
