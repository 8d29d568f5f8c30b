//! `cargo bench -p wasmban --bench bans [-- BANS]`
//!
//! One jail's ban manager with many bans in force (100,000 by default),
//! each with one matched line and one captured field as sshd's bans have:
//! the bytes held per ban once they are decided, and once a new manager
//! has restored them from the store (a restart), with the time each took.
//!
//! Figures are printed, never asserted: the machines are noisy.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmban::bans::{BanDecision, BanManager, JailActions, Listing, Origin};
use wasmban::jail::BanTime;
use wasmban::store::Store;
use wasmban::tail::Progress;

#[path = "common/counting.rs"]
mod counting;

/// Resident memory, in bytes (what the system sees, allocator overhead
/// and fragmentation included).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn decision(i: usize, now: f64) -> BanDecision {
    let id = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    BanDecision {
        matches: vec![format!(
            "2026-12-05T06:00:00+00:00 web sshd[7]: Failed password for root from {id} port 22 ssh2"
        )],
        id,
        origin: Origin::Failures,
        time: now,
        failures: 1,
        fields: vec![("user".into(), "root".into())],
        until: None,
    }
}

fn manager(store: &Arc<Mutex<Store>>) -> BanManager {
    let ban_time = BanTime { base: 86_400, increment: None };
    BanManager::new("sshd", store.clone(), JailActions::new("sshd", Vec::new()), ban_time, Listing::default())
}

fn main() {
    wasmban::daemon::memory::tune_allocator();
    let bans: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("wasmban.sqlite3")).expect("the store")));
    let now = 1_800_000_000.0;
    let before = counting::in_use();
    let rss_before = rss();
    let mut m = manager(&store);
    let started = Instant::now();
    for chunk in (0..bans).collect::<Vec<_>>().chunks(1000) {
        m.decide(chunk.iter().map(|i| decision(*i, now)).collect(), &Progress::default(), now);
    }
    let decided = started.elapsed();
    let held = counting::in_use() - before;
    println!(
        "{bans} bans decided in {:.2} s: {} bytes held per ban ({:.1} MB), {} bytes resident",
        decided.as_secs_f64(),
        held / bans,
        held as f64 / 1e6,
        rss().saturating_sub(rss_before) / bans
    );
    drop(m);
    let before = counting::in_use();
    let started = Instant::now();
    let mut m = manager(&store);
    m.start(now + 1.0);
    let restored = started.elapsed();
    let held = counting::in_use() - before;
    println!(
        "{} bans restored in {:.2} s: {} bytes held per ban ({:.1} MB)",
        m.count_in_force(),
        restored.as_secs_f64(),
        held / bans,
        held as f64 / 1e6
    );
    let started = Instant::now();
    let lifted = m.lift(None, now + 2.0).map(|l| l.len()).unwrap_or(0);
    println!("{lifted} bans lifted at once (unban --all) in {:.2} s", started.elapsed().as_secs_f64());
}
