//! Compiled components are cached on disk, only in a private directory.

use std::os::unix::fs::PermissionsExt;

use wasmban::plugin::cache::{CacheOutcome, CompiledCache};
use wasmban::plugin::{Registry, Runtime, RuntimeOptions};

fn runtime_cached(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeOptions { cache_dir: Some(dir.to_path_buf()), ..RuntimeOptions::default() }).unwrap()
}

#[test]
fn a_restart_loads_the_compiled_component_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let source = Registry::new(None).resolve("iptables").unwrap();

    let (_, first) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(first.outcome, CacheOutcome::Compiled);
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // A new runtime is a restart: nothing in memory, the file on disk.
    let (_, second) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(second.outcome, CacheOutcome::Hit);
    // The cached component works.
    let rt = runtime_cached(&cache);
    let plugin = rt.load(&source, "x").unwrap();
    assert_eq!(plugin.kind(), wasmban::plugin::PluginKind::Action);
}

#[test]
fn a_damaged_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let source = Registry::new(None).resolve("regex-filter").unwrap();
    runtime_cached(&cache).compile(&source).unwrap();
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not compiled code").unwrap();
    }
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled);
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Hit);
}

#[test]
fn a_cache_directory_others_can_reach_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = CompiledCache::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("chmod 700"), "{err}");
}
