//! The functions a daemon runs lie together at the start of the binary's
//! code (dist/symbol-order, host/build.rs), and the order still names
//! this build's functions. The suite runs the debug profile's binary; the
//! names of every profile change together, when dependencies or features
//! do, so its file stands for the others.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::util::daemon::BIN;

/// Which profile built the binary under test: its directory's name.
fn profile() -> String {
    Path::new(BIN).parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or_default().to_string()
}

#[test]
fn the_daemons_functions_come_first_and_the_order_is_not_stale() {
    let order_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/symbol-order").join(format!("{}.txt", profile()));
    if !order_file.exists() {
        return crate::util::skipped!("no symbol order for the {} profile", profile());
    }
    if std::env::var_os("WASMBAN_SYMBOL_ORDER").is_some_and(|v| v == "0") {
        return crate::util::skipped!("WASMBAN_SYMBOL_ORDER=0 left the order out");
    }
    let Ok(nm) = Command::new("nm").args(["-S", BIN]).output() else {
        return crate::util::skipped!("nm is missing (binutils)");
    };
    // Address and size of every function.
    let mut functions: HashMap<String, (u64, u64)> = HashMap::new();
    for line in String::from_utf8_lossy(&nm.stdout).lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [address, size, kind, name] = parts[..]
            && "tTwW".contains(kind)
        {
            functions.insert(
                name.to_string(),
                (u64::from_str_radix(address, 16).unwrap(), u64::from_str_radix(size, 16).unwrap()),
            );
        }
    }
    let order = std::fs::read_to_string(&order_file).unwrap();
    let wanted: Vec<&str> = order.lines().filter(|l| !l.is_empty()).collect();
    let found: Vec<(u64, u64)> = wanted.iter().filter_map(|name| functions.get(*name).copied()).collect();
    let share = found.len() as f64 / wanted.len() as f64;
    // Names carry a hash of each crate's features, which cargo unifies over
    // what a command builds: the debug order is made for scripts/test's
    // `cargo test --workspace`, and a binary built by `cargo test -p
    // wasmban` has other names. Outside CI that is said, not failed.
    if share < 0.8 && !std::env::var("CI").is_ok_and(|v| v == "true") {
        return crate::util::skipped!(
            "{} of the {} functions in {} are in this build: it was built by another command than scripts/test, \
             or dependencies changed (CI fails then)",
            found.len(),
            wanted.len(),
            order_file.display()
        );
    }
    assert!(
        share >= 0.8,
        "only {} of the {} functions in {} are in this build: dependencies or build settings changed; \
         run `scripts/symbol-order --profile P` for P in debug, release and dist, and commit the files",
        found.len(),
        wanted.len(),
        order_file.display(),
    );
    // Laid out together: from the lowest to the highest, little more than
    // their own sizes (alignment pads each).
    let start = found.iter().map(|f| f.0).min().unwrap();
    let end = found.iter().map(|f| f.0 + f.1).max().unwrap();
    let sizes: u64 = found.iter().map(|f| f.1).sum();
    assert!(
        end - start < sizes + sizes / 4 + (64 << 10),
        "the ordered functions span {} bytes for {sizes}",
        end - start
    );
    let lowest_function = functions.values().map(|f| f.0).filter(|a| *a > 0).min().unwrap();
    assert!(start - lowest_function < 64 << 10, "the ordered functions do not start the code");
}
