//! `wasmban-fuzz TARGET`: under AFL++ (built with `--features afl` by
//! scripts/fuzz), the coverage-guided loop over TARGET. Without that
//! feature, `wasmban-fuzz TARGET FILE...` runs TARGET on each file: how a
//! finding is reproduced.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().cloned() else {
        eprintln!("usage: wasmban-fuzz TARGET [FILE...]; targets: {}", wasmban_fuzz::TARGETS.join(", "));
        return ExitCode::from(2);
    };
    if !wasmban_fuzz::TARGETS.contains(&target.as_str()) {
        eprintln!("no fuzz target {target:?}; the targets are: {}", wasmban_fuzz::TARGETS.join(", "));
        return ExitCode::from(2);
    }
    #[cfg(feature = "afl")]
    {
        afl::fuzz!(|data: &[u8]| {
            let _ = wasmban_fuzz::run(&target, data);
        });
        ExitCode::SUCCESS
    }
    #[cfg(not(feature = "afl"))]
    {
        for file in &args[1..] {
            let data = match std::fs::read(file) {
                Ok(data) => data,
                Err(e) => {
                    eprintln!("{file}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = wasmban_fuzz::run(&target, &data) {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
            println!("{file}: ok");
        }
        ExitCode::SUCCESS
    }
}
