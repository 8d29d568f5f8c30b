//! `cargo bench -p wasmban --bench log_lines [-- LINES]`
//!
//! The daemon's log, as a jail in a burst writes it: a `Found` line per
//! failure (200,000 by default) through the daemon's own logger (fail2ban's
//! line format, a log file), held and written a batch at a time as the
//! jail does. Prints the time per line for three rounds; ten jails on one
//! log write 874,020 of them in `scripts/bench-burst --jails 10`.
//!
//! Figures are printed, never asserted: the machines are noisy.

use std::os::fd::AsRawFd;
use std::time::Instant;

use wasmban::daemon::log_output::hold_lines;
use wasmban::daemon::logging;
use wasmban::daemon::settings::{LogTarget, Settings};

/// Lines held together, as a jail holds a batch's.
const BATCH: usize = 4096;

fn main() {
    let lines: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("wasmban.log");
    // A terminal on stderr would get a copy of every line.
    let null = std::fs::File::options().write(true).open("/dev/null").expect("/dev/null");
    // SAFETY: dup2 on two descriptors this process owns; stderr is only
    // written through its descriptor afterwards.
    unsafe { libc::dup2(null.as_raw_fd(), 2) };
    let settings = Settings { log_target: LogTarget::File(path.clone()), ..Settings::default() };
    logging::init(&settings).expect("the logger");
    let jail = "sshd".to_string();
    let ids: Vec<String> = (0..4096).map(|i| format!("192.0.{}.{}", i / 256, i % 256)).collect();
    for round in 1..=3 {
        let started = Instant::now();
        let mut done = 0;
        while done < lines {
            let _held = hold_lines();
            for id in ids.iter().cycle().take(BATCH.min(lines - done)) {
                tracing::info!(jail = %jail, event = "found", address = %id, "[{}] Found {id}", jail);
            }
            done += BATCH.min(lines - done);
        }
        let elapsed = started.elapsed();
        println!(
            "round {round}: {lines} Found lines in {:.1} ms: {:.0} ns per line",
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_nanos() as f64 / lines as f64
        );
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    println!("{} lines written; the last: {}", written.lines().count(), written.lines().last().unwrap_or(""));
}
