//! `cargo bench -p wasmban --bench boundary`
//!
//! 1. The cost of the plugin boundary per log line: a filter that does
//!    nothing, fed batches of realistic lines as one newline-joined string.
//! 2. Loading a component cold (compiling) and from the on-disk cache.
//!
//! Figures are printed, never asserted: the machines are noisy.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmban::plugin::cache::CacheOutcome;
use wasmban::plugin::registry::Origin;
use wasmban::plugin::{Manifest, PluginSource, Registry, Runtime, RuntimeOptions};

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "Nov 25 13:{:02}:{:02} host sshd[{}]: Failed password for invalid user admin{} from 198.51.100.{} port {} ssh2",
                (i / 60) % 60,
                i % 60,
                1000 + i % 9000,
                i % 97,
                i % 250,
                30000 + i % 30000
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn boundary() {
    let path = Path::new(env!("WASMBAN_PLUGIN_ARTIFACTS")).join("null_filter.wasm");
    let source = PluginSource {
        name: "null-filter".into(),
        bytes: std::fs::read(&path).expect("null filter built").into(),
        manifest: Manifest::default(),
        origin: Origin::File(path),
        manifest_path: None,
    };
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let mut filter = rt.load(&source, "bench").expect("load").filter(vec![]).expect("instance");
    println!("boundary cost, null filter, lines joined in one string per call:");
    println!("  {:>10} {:>12} {:>12}", "batch", "ns/line", "MB/s");
    for batch in [1usize, 16, 256, 4096] {
        let text = lines(batch);
        let total_lines = 400_000usize.max(batch);
        let calls = total_lines / batch;
        let mut samples = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            for _ in 0..calls {
                std::hint::black_box(filter.feed(&text, 0.0, false).expect("feed"));
            }
            samples.push(start.elapsed().as_nanos() as f64 / (calls * batch) as f64);
        }
        let ns = median(samples);
        let mb_s = (text.len() as f64 / batch as f64) / ns * 1e3;
        println!("  {batch:>10} {ns:>12.1} {mb_s:>12.0}");
    }
}

fn load_times() {
    println!("component load, cold (compile) vs cached (deserialise from disk):");
    println!("  {:<14} {:>10} {:>12} {:>12}", "plugin", "size", "cold", "cached");
    let dir = std::env::temp_dir().join(format!("wasmban-bench-cache-{}", std::process::id()));
    for name in ["iptables", "regex-filter"] {
        let source = Registry::new(None).resolve(name).expect("built-in");
        let mut cold = Vec::new();
        let mut cached = Vec::new();
        for _ in 0..5 {
            let _ = std::fs::remove_dir_all(&dir);
            let rt = Runtime::new(RuntimeOptions { cache_dir: Some(dir.clone()), ..Default::default() }).expect("rt");
            let (_, report) = rt.compile(&source).expect("compile");
            assert_eq!(report.outcome, CacheOutcome::Compiled);
            cold.push(report.elapsed);
            // A new runtime stands for a restart of the daemon.
            let rt = Runtime::new(RuntimeOptions { cache_dir: Some(dir.clone()), ..Default::default() }).expect("rt");
            let (_, report) = rt.compile(&source).expect("load");
            assert_eq!(report.outcome, CacheOutcome::Hit);
            cached.push(report.elapsed);
        }
        let ms = |v: Vec<Duration>| median(v.iter().map(|d| d.as_secs_f64() * 1e3).collect());
        println!("  {name:<14} {:>8} KB {:>9.2} ms {:>9.2} ms", source.bytes.len() / 1024, ms(cold), ms(cached));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; keep it quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("boundary: run with `cargo bench -p wasmban --bench boundary`");
        return;
    }
    boundary();
    load_times();
}
