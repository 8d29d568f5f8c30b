//! Native timing of the filter logic (no WASM boundary), for profiling:
//! `cargo run --release --example scan -- LOG OPTIONS.json [journal]`
//! where OPTIONS.json is a list of [key, value] pairs.
use regex_filter::RegexFilter;
use wasmban_plugin_sdk::{Filter, Options};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let log = std::fs::read_to_string(&args[1]).expect("log");
    let pairs: Vec<(String, String)> = serde_json_lite(&std::fs::read_to_string(&args[2]).expect("options"));
    let mut pairs = pairs;
    if args.get(3).is_some_and(|a| a == "journal") {
        pairs.push(("journal".into(), "1".into()));
    }
    let mut filter = RegexFilter::new(Options::new(pairs)).expect("filter");
    let lines: Vec<&str> = log.lines().collect();
    let start = std::time::Instant::now();
    let mut found = 0;
    for chunk in lines.chunks(4096) {
        found += filter.feed(&chunk.join("\n"), 1.7e9, false).failures.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} lines, {found} failures, {secs:.2} s, {:.0} lines/s", lines.len(), lines.len() as f64 / secs);
}

/// Options as `key\tvalue-with-\n-escaped` lines (no JSON crate needed).
fn serde_json_lite(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once('\t')).map(|(k, v)| (k.to_string(), v.replace("\\n", "\n"))).collect()
}
