//! Native timing of the filter logic (no WASM boundary), for profiling:
//! `cargo run --release --example scan -- LOG OPTIONS [split]`
//! where OPTIONS holds `key<TAB>value` lines (newlines in values as `\n`,
//! what `wasmban regex --print-definition` prints). With `split`, two
//! instances share the work as `wasmban regex` runs them (`prepare` on one,
//! `feed_prepared` on the other), one after the other, so that a profiler
//! tells the two parts apart.
use regex_filter::RegexFilter;
use wasmban_plugin_sdk::{Filter, Options};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let log = std::fs::read_to_string(&args[1]).expect("log");
    let options = options(&std::fs::read_to_string(&args[2]).expect("options"));
    let split = args.get(3).is_some_and(|a| a == "split");
    let mut filter = RegexFilter::new(Options::new(options.clone())).expect("filter");
    let mut preparer = RegexFilter::new(Options::new(options)).expect("filter");
    let lines: Vec<&str> = log.lines().collect();
    let start = std::time::Instant::now();
    let mut found = 0;
    for chunk in lines.chunks(4096) {
        let batch = chunk.join("\n");
        let scan = if split {
            let prepared = preparer.prepare(&batch, 1.7e9, u32::MAX);
            filter.feed_prepared(&batch, 1.7e9, true, &prepared)
        } else {
            filter.feed(&batch, 1.7e9, true)
        };
        found += scan.failures.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} lines, {found} failures, {secs:.2} s, {:.0} lines/s", lines.len(), lines.len() as f64 / secs);
}

fn options(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once('\t')).map(|(k, v)| (k.to_string(), v.replace("\\n", "\n"))).collect()
}
