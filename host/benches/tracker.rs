//! `cargo bench -p wasmban --bench tracker [-- ADDRESSES]`
//!
//! A jail's failure counting under an attack from many distinct addresses
//! (1,000,000 by default), each failing once with one matched line and one
//! captured field, as the sshd filter reports them: the bytes the table
//! holds per counted address, the time per failure for each tenth of the
//! burst (flat when counting does not slow down as the table grows), and
//! the same with `maxtracked` at 100,000, where the least recent are
//! forgotten.
//!
//! Figures are printed, never asserted: the machines are noisy.

use std::time::Instant;

use wasmban::jail::{BanPrefixes, FailureTracker, IgnoreList, Seen, TrackerSettings};

#[path = "common/counting.rs"]
mod counting;

fn address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

fn run(addresses: usize, max_tracked: usize) {
    let mut tracker = FailureTracker::new(TrackerSettings {
        findtime: 600,
        maxretry: 5,
        maxmatches: 5,
        max_tracked,
        ignore: IgnoreList::default(),
        ignore_addrs: Vec::new(),
        banprefix: BanPrefixes::default(),
    });
    let fields = vec![("user".to_string(), "root".to_string())];
    let before = counting::in_use();
    let tenth = (addresses / 10).max(1);
    let mut times = Vec::new();
    let mut started = Instant::now();
    for i in 0..addresses {
        let id = address(i);
        let line = format!("2026-12-05T06:00:00+00:00 web sshd[7]: Failed password for root from {id} port 22 ssh2");
        let matches = [line];
        tracker.failure(&id, 1000.0, Seen { matches: &matches, fields: &fields }, 1000.0, 1);
        if (i + 1) % tenth == 0 {
            times.push(started.elapsed().as_nanos() as f64 / tenth as f64);
            started = Instant::now();
        }
    }
    let held = counting::in_use() - before;
    let tracked = tracker.currently_failed();
    let per_tenth: Vec<String> = times.iter().map(|ns| format!("{ns:.0}")).collect();
    println!(
        "{addresses} addresses, maxtracked {max_tracked}: {tracked} counted, {} forgotten; {} bytes per counted address \
         ({:.1} MB); ns per failure by tenth of the burst: {}",
        tracker.forgotten_when_full(),
        held / tracked.max(1),
        held as f64 / 1e6,
        per_tenth.join(" ")
    );
}

fn main() {
    // The daemon's allocator settings, so that forgetting costs here what
    // it costs there.
    wasmban::daemon::memory::tune_allocator();
    let addresses = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    run(addresses, 100_000);
    run(addresses, addresses);
}
