//! Fuzz targets for the code that reads text from outside: the INI reader
//! with interpolation and tags, the values it yields, the control
//! protocol, plugin manifests, the regex dialect translator, the date
//! detector and strptime, the whole regex filter, and the backtracker
//! against Python's `re` (`backtrack`, a differential target).
//!
//! Each target takes raw bytes and panics on a finding. `scripts/fuzz`
//! runs one under AFL++ (coverage-guided, on stable Rust through
//! cargo-afl); `tests/replay.rs` runs every seed and every input that once
//! found a bug (`fuzz/regressions/`) on each `cargo test`.

mod grammar;
mod oracle;
mod targets;

pub use grammar::Choices;
pub use oracle::PythonRe;

/// Every target, by the name `scripts/fuzz` takes.
pub const TARGETS: &[&str] = &["ini", "control", "manifest", "dialect", "date", "filter", "backtrack"];

/// Run `target` on `data`. Panics on a finding.
pub fn run(target: &str, data: &[u8]) -> Result<(), String> {
    match target {
        "ini" => targets::ini(data),
        "control" => targets::control(data),
        "manifest" => targets::manifest(data),
        "dialect" => targets::dialect(data),
        "date" => targets::date(data),
        "filter" => targets::filter(data),
        "backtrack" => targets::backtrack(data),
        other => return Err(format!("no fuzz target {other:?}; the targets are: {}", TARGETS.join(", "))),
    }
    Ok(())
}
