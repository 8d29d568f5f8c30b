//! Every seed and every input that once found a bug, through its target,
//! on each `cargo test`; and a few thousand deterministic mutations of the
//! seeds, so that the targets' properties are checked without AFL++.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use wasmban_fuzz::{PythonRe, TARGETS, run};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn python_or_skip() -> bool {
    if PythonRe::start().is_some() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "python3 is needed for the backtrack target's oracle in CI");
    println!("SKIPPED: no python3 here; the backtrack target's oracle is Python's re");
    false
}

/// Run `target` on `data`; the panic message on a finding.
fn finding(target: &str, data: &[u8]) -> Option<String> {
    let result = catch_unwind(AssertUnwindSafe(|| run(target, data)));
    match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(panic) => Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        ),
    }
}

#[test]
fn seeds_and_past_findings_pass_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = python_or_skip();
    let mut failures = Vec::new();
    let mut count = 0;
    for target in TARGETS {
        if *target == "backtrack" && !python {
            continue;
        }
        for file in
            inputs(&root.join("seeds").join(target)).into_iter().chain(inputs(&root.join("regressions").join(target)))
        {
            let data = std::fs::read(&file).expect("a readable input");
            count += 1;
            if let Some(message) = finding(target, &data) {
                failures.push(format!("{target} {}: {message}", file.display()));
            }
        }
    }
    assert!(count >= 20, "only {count} inputs found under fuzz/seeds and fuzz/regressions");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// xorshift64*: the same mutations on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flip, insert, delete and splice bytes, as a fuzzer's havoc stage does.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(5) {
            0 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(data.len() + 1);
                data.insert(at, rng.next() as u8);
            }
            2 if !data.is_empty() => {
                let at = rng.below(data.len());
                data.remove(at);
            }
            3 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1).min(32);
                let at = rng.below(data.len() + 1);
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            _ if !data.is_empty() => {
                let at = rng.below(data.len());
                {
                    let punctuation = b"()[]{}*+?|\\^$.:<>-=\n ";
                    data[at] = punctuation[rng.below(punctuation.len())];
                }
            }
            _ => {}
        }
    }
    data
}

#[test]
fn mutations_of_the_seeds_pass_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = python_or_skip();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    for target in TARGETS {
        if *target == "backtrack" && !python {
            continue;
        }
        let seeds: Vec<Vec<u8>> = inputs(&root.join("seeds").join(target))
            .iter()
            .map(|f| std::fs::read(f).expect("a readable seed"))
            .collect();
        let rounds = if *target == "backtrack" { 1500 } else { 250 };
        for _ in 0..rounds {
            let seed = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let data = mutate(&mut rng, seed, other);
            if let Some(message) = finding(target, &data) {
                failures.push(format!("{target} on {:?}: {message}", String::from_utf8_lossy(&data)));
                if failures.len() > 5 {
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
