//! `cargo bench -p wasmban --bench lapi [-- BANS]`
//!
//! The bouncers' API with many bans in force (100,000 by default, over
//! two jails): the time to gather the jails' bans, a bouncer's first pull
//! (written as JSON), a pull with nothing new, a pull after 1% changed,
//! and the memory a bouncer's stream holds per decision.
//!
//! Figures are printed, never asserted: the machines are noisy.

use std::time::Instant;

use wasmban::bans::BanView;
use wasmban::lapi::decisions::{Current, Filter, JailBans, Snapshot, Stream};

#[path = "common/counting.rs"]
mod counting;

fn address(i: usize) -> String {
    if i.is_multiple_of(10) {
        format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff)
    } else {
        format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
    }
}

fn snapshot(bans: usize, shift: usize) -> Snapshot {
    let jail = |name: &str, range: std::ops::Range<usize>| JailBans {
        jail: name.into(),
        running: true,
        bans: range
            .map(|i| BanView {
                id: address(i + shift),
                time: 1_000_000,
                bantime: 3600,
                bancount: 1,
                origin: Default::default(),
                from: None,
            })
            .collect(),
    };
    Snapshot { settled: true, jails: vec![jail("sshd", 0..bans / 2), jail("nginx", bans / 2..bans)] }
}

fn main() {
    let bans: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let now = 1_000_100;
    let filter = Filter::parse("startup=true", true).expect("filter");
    let snap = snapshot(bans, 0);

    let t = Instant::now();
    let current = Current::of(&snap, now);
    let gather = t.elapsed();

    let before = counting::in_use();
    let t = Instant::now();
    let (mut stream, answer) = Stream::start(&current, &filter, now);
    let json = serde_json::to_string(&answer).expect("json");
    let first = t.elapsed();
    drop(answer);
    let held = counting::in_use() - before - json.capacity();

    let t = Instant::now();
    let quiet = stream.next(&current, &filter, now + 10);
    let quiet_time = t.elapsed();
    assert!(quiet.new.is_empty() && quiet.deleted.is_empty());

    // 1% of the bans replaced by others.
    let changed = Current::of(&snapshot(bans, bans / 100), now + 20);
    let t = Instant::now();
    let delta = stream.next(&changed, &filter, now + 20);
    let delta_json = serde_json::to_string(&delta).expect("json");
    let delta_time = t.elapsed();

    println!("bans in force:                    {bans} ({} decisions)", current.len());
    println!("gather the jails' bans:           {gather:.2?}");
    println!("first pull (startup=true), JSON:  {first:.2?}, {:.1} MB", json.len() as f64 / 1e6);
    println!("pull with nothing new:            {quiet_time:.2?}");
    println!(
        "pull after 1% changed:            {delta_time:.2?} ({} new, {} deleted, {} bytes)",
        delta.new.len(),
        delta.deleted.len(),
        delta_json.len()
    );
    println!(
        "a bouncer's stream holds:         {:.1} MB, {} bytes per decision",
        held as f64 / 1e6,
        held / stream.len().max(1)
    );
}
