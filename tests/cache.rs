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
    for entry in entries(&cache) {
        std::fs::write(entry, b"not compiled code").unwrap();
    }
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled);
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Hit);
}

#[test]
fn a_damaged_key_is_replaced_and_the_cache_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let source = Registry::new(None).resolve("iptables").unwrap();
    runtime_cached(&cache).compile(&source).unwrap();
    std::fs::write(cache.join("cache.key"), b"short").unwrap();
    // A new key: the old entry's MAC no longer holds, so it is recompiled,
    // then found.
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

fn entries(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all: Vec<_> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    all.sort();
    all
}

/// The cache entry of `name` after compiling it alone into `cache`.
fn entry_of(cache: &std::path::Path, name: &str) -> std::path::PathBuf {
    let before = entries(cache);
    let source = Registry::new(None).resolve(name).unwrap();
    runtime_cached(cache).compile(&source).unwrap();
    entries(cache).into_iter().find(|e| !before.contains(e)).expect("a new entry")
}

#[test]
fn another_components_compiled_code_swapped_in_is_recompiled_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let filter_entry = entry_of(&cache, "regex-filter");
    let action_entry = entry_of(&cache, "iptables");
    // A regular file of ours with the right mode, holding the iptables
    // action's code under the regex filter's name: before the MAC, this
    // ran the action's code with the filter's name and grants.
    std::fs::copy(&action_entry, &filter_entry).unwrap();
    std::fs::set_permissions(&filter_entry, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rt = runtime_cached(&cache);
    let source = Registry::new(None).resolve("regex-filter").unwrap();
    let (_, report) = rt.compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled);
    assert_eq!(rt.load(&source, "x").unwrap().kind(), wasmban::plugin::PluginKind::Filter);
}

#[test]
fn a_symlinked_entry_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let filter_entry = entry_of(&cache, "regex-filter");
    let elsewhere = dir.path().join("planted.cwasm");
    std::fs::rename(&filter_entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &filter_entry).unwrap();
    let source = Registry::new(None).resolve("regex-filter").unwrap();
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled, "a symlinked entry was loaded");
    assert!(!std::fs::symlink_metadata(&filter_entry).unwrap().file_type().is_symlink(), "the link was replaced");
}

#[test]
fn an_entry_others_can_read_or_another_user_owns_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let entry = entry_of(&cache, "iptables");
    let source = Registry::new(None).resolve("iptables").unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::util::skipped!("the other-owner half needs root to chown the entry");
        return;
    }
    let entry = entries(&cache).pop().unwrap();
    std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled, "an entry owned by nobody was loaded");
}

#[test]
fn a_cache_directory_another_user_owns_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::util::skipped!("needs root to give the directory to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
    let err = CompiledCache::open(&cache).unwrap_err().to_string();
    assert!(err.contains("owned by uid 65534"), "{err}");
    // A symlink to a directory of ours is refused too.
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
    let err = CompiledCache::open(&dir.path().join("link")).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

#[test]
fn jails_starting_together_compile_a_component_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rt = std::sync::Arc::new(runtime_cached(&cache));
    let source = Registry::new(None).resolve("regex-filter").unwrap();
    let outcomes: Vec<CacheOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let rt = rt.clone();
                let source = source.clone();
                scope.spawn(move || rt.compile(&source).unwrap().1.outcome)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| **o == CacheOutcome::Compiled).count(), 1, "{outcomes:?}");
    assert_eq!(entries(&cache).len(), 1);
}

/// Many jails starting at once on a cold cache, in one daemon (one
/// runtime) and in two (two runtimes on one cache directory): every
/// compile succeeds, one entry is written whole, and the next start reads
/// it (it used to fail with "File exists" / "No such file" races).
#[test]
fn jails_starting_at_once_share_one_compile_and_one_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let source = Registry::new(None).resolve("regex-filter").unwrap();
    let shared = runtime_cached(&cache);
    let other = runtime_cached(&cache);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..12 {
            let rt = if i % 4 == 0 { &other } else { &shared };
            let source = &source;
            handles.push(scope.spawn(move || rt.compile(source).map(|_| ()).map_err(|e| e.to_string())));
        }
        for h in handles {
            assert_eq!(h.join().unwrap(), Ok(()));
        }
    });
    assert_eq!(entries(&cache).len(), 1, "{:?}", entries(&cache));
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Hit);
}

/// A cache hit maps the entry's file rather than copying its code, so the
/// code is shared with the page cache and only the pages that run are
/// resident.
#[test]
fn a_cached_component_is_mapped_from_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let entry = entry_of(&cache, "nftables");
    let source = Registry::new(None).resolve("nftables").unwrap();
    let (component, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Hit);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains(entry.to_str().unwrap()), "{} is not mapped:\n{maps}", entry.display());
    drop(component);
}

/// An entry of the earlier layout (its integrity code first) is not read
/// as one of the new; it is removed when its component is compiled again.
#[test]
fn an_entry_of_the_earlier_layout_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let entry = entry_of(&cache, "nftables");
    let name = entry.file_name().unwrap().to_str().unwrap().to_string();
    let legacy = cache.join(name.replace(".mapped.cwasm", ".cwasm"));
    assert_ne!(legacy, entry);
    let bytes = std::fs::read(&entry).unwrap();
    let (code, tag) = bytes.split_at(bytes.len() - 32);
    std::fs::write(&legacy, [tag, code].concat()).unwrap();
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&entry).unwrap();
    let source = Registry::new(None).resolve("nftables").unwrap();
    let (_, report) = runtime_cached(&cache).compile(&source).unwrap();
    assert_eq!(report.outcome, CacheOutcome::Compiled);
    assert!(!legacy.exists(), "the earlier entry is left behind");
    assert!(entry.exists());
}
