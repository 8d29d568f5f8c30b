//! Builds every component in `plugins/` for wasm32-wasip2 and embeds the
//! built-in ones (those with a `wasmban.toml` manifest) in the binary.
//!
//! `plugins/` is its own workspace built into a target dir under OUT_DIR:
//! sharing the outer target dir would contend for its lock, and plugin
//! crates cannot be linked natively with the host.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("plugins-target");

    for path in
        [root.join("wit"), plugins.join("Cargo.toml"), plugins.join("Cargo.lock"), root.join("plugin-sdk/Cargo.toml")]
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_LLVM_COV")
        // WASM SIMD (wasmtime enables it by default) lets memchr and the
        // regex engines use vector instructions.
        .env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", "-C target-feature=+simd128");
    let status = cmd.status().expect("failed to run cargo for plugins/");
    if !status.success() {
        panic!(
            "building plugins/ for wasm32-wasip2 failed (see the errors above). \
             If the target is missing, run `rustup target add wasm32-wasip2`."
        );
    }

    let artifacts = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=WASMBAN_PLUGIN_ARTIFACTS={}", artifacts.display());

    let members = workspace_members(&plugins.join("Cargo.toml"));
    let mut builtins = String::from("&[\n");
    for member in &members {
        let dir = plugins.join(member);
        let crate_name = dir.file_name().and_then(|n| n.to_str()).expect("utf-8 member name");
        let artifact = crate_name.replace('-', "_");
        watch_dep_info(&artifacts.join(format!("{artifact}.d")));
        println!("cargo:rerun-if-changed={}", dir.join("Cargo.toml").display());
        let wasm = artifacts.join(format!("{artifact}.wasm"));
        assert!(wasm.exists(), "plugin {member} built no component at {}", wasm.display());
        let manifest = dir.join("wasmban.toml");
        // Watching a file that does not exist makes cargo rebuild the host
        // every time; for a member without a manifest, its directory is
        // watched instead, so that a manifest added later is seen.
        if manifest.exists() {
            println!("cargo:rerun-if-changed={}", manifest.display());
        } else {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        if manifest.exists() {
            let bytes = fs::read(&wasm).expect("read a built component");
            let sha256 = sha256_hex(&bytes);
            let compressed = compressed(&bytes, &sha256, &out_dir.join("builtins"));
            writeln!(
                builtins,
                "    Builtin {{ name: {crate_name:?}, zstd: include_bytes!({:?}), size: {}, manifest: include_str!({:?}), manifest_path: {:?}, sha256: {:?} }},",
                compressed.display().to_string(),
                bytes.len(),
                manifest.display().to_string(),
                format!("plugins/{member}/wasmban.toml"),
                sha256,
            )
            .expect("write to string");
        }
    }
    builtins.push(']');
    fs::write(out_dir.join("builtins.rs"), builtins).expect("write builtins.rs");

    order_symbols(&root, &out_dir);
}

/// Hands the linker the order of the functions a daemon runs
/// (`dist/symbol-order/PROFILE.txt`, written by `scripts/symbol-order`),
/// so that they lie together: the kernel maps code 64 KB around each page
/// touched, and spread over the whole binary they kept ~10 MB resident
/// where ~3 MB does. Only lld takes the option; it is Rust's linker on
/// x86_64 Linux unless a build names another, and then nothing is added.
/// `WASMBAN_SYMBOL_ORDER=0` leaves it out too.
fn order_symbols(root: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=WASMBAN_SYMBOL_ORDER");
    if env::var_os("WASMBAN_SYMBOL_ORDER").is_some_and(|v| v == "0") {
        return;
    }
    if env::var("TARGET").ok().as_deref() != Some("x86_64-unknown-linux-gnu") || env::var_os("RUSTC_LINKER").is_some() {
        return;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return;
    }
    // OUT_DIR is target/[TRIPLE/]PROFILE/build/wasmban-HASH/out.
    let Some(profile) = out_dir.ancestors().nth(3).and_then(|p| p.file_name()).and_then(|n| n.to_str()) else {
        return;
    };
    let order = root.join("dist/symbol-order").join(format!("{profile}.txt"));
    println!("cargo:rerun-if-changed={}", order.display());
    if order.exists() {
        println!("cargo:rustc-link-arg-bin=wasmban=-Wl,--symbol-ordering-file={}", order.display());
        // Names the build no longer has (the file is from an older one) are
        // skipped; tests/symbol_order.rs says when too many are.
        println!("cargo:rustc-link-arg-bin=wasmban=-Wl,--no-warn-symbol-ordering");
    }
}

/// The `members` list of the plugins workspace, read without a TOML crate:
/// one quoted path per line between `members = [` and `]`.
fn workspace_members(manifest: &Path) -> Vec<String> {
    let text = fs::read_to_string(manifest).expect("read plugins/Cargo.toml");
    let start = text.find("members = [").expect("plugins/Cargo.toml has a members list");
    let rest = &text[start + "members = [".len()..];
    let end = rest.find(']').expect("members list is closed");
    rest[..end].split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
}

/// Re-run when any source file a component was built from changes, using
/// the dep-info file cargo wrote beside it (watching all of plugins/ would
/// include its ever-changing target dir).
fn watch_dep_info(dep_info: &Path) {
    let Ok(text) = fs::read_to_string(dep_info) else { return };
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else { continue };
        let mut pending = String::new();
        for part in deps.split(' ') {
            // Paths with spaces are escaped as `\ `.
            if let Some(stripped) = part.strip_suffix('\\') {
                pending.push_str(stripped);
                pending.push(' ');
                continue;
            }
            pending.push_str(part);
            if !pending.is_empty() && !pending.contains("/target/") {
                println!("cargo:rerun-if-changed={pending}");
            }
            pending.clear();
        }
    }
}

/// Hex sha256 of a component, for the registry to know each built-in's
/// digest without hashing it at run time.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The component compressed with zstd, in a file named by its digest.
/// Embedded as they are built, the components were a fifth of the binary;
/// they shrink to under a third and are decompressed only when one is
/// compiled, which the compile cache makes rare. The file is reused while
/// the component is unchanged, since the highest levels take seconds.
fn compressed(bytes: &[u8], sha256: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{sha256}.wasm.zst"));
    if !path.exists() {
        fs::create_dir_all(dir).expect("create the directory of compressed built-ins");
        let packed = zstd::bulk::compress(bytes, 19).expect("zstd compresses a built component");
        let partial = path.with_extension("partial");
        fs::write(&partial, packed).expect("write a compressed built-in");
        fs::rename(&partial, &path).expect("name a compressed built-in");
    }
    path
}
