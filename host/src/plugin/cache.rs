//! Compiled components on disk, so that a restart does not recompile.
//!
//! Deserialising compiled code maps it executable in the daemon, so an
//! entry must be something this daemon wrote itself, for this very
//! component. Three locks make sure of that:
//! - the directory must be owned by our user and closed to everyone else
//!   (0700), and is held as a handle ([`cap_std::fs::Dir`]) from then on, so
//!   a rename of the path under us changes nothing;
//! - entries are opened without following symlinks and must be regular
//!   files of our user that nobody else can read or write;
//! - every entry carries an HMAC-SHA256, keyed by a secret that only this
//!   directory holds, over the source component's digest, the engine's
//!   compatibility hash and the compiled bytes. A swapped, truncated or
//!   foreign artifact fails the check and is recompiled, never run.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::plugin::PluginError;
use crate::plugin::registry::ComponentBytes;

/// The on-disk cache of compiled components.
#[derive(Debug)]
pub struct CompiledCache {
    path: PathBuf,
    dir: Dir,
    key: [u8; KEY_LEN],
}

/// Whether a load came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialised from disk.
    Hit,
    /// Compiled now (and written to disk when possible).
    Compiled,
}

const KEY_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";
const MAC_LEN: usize = 32;
/// Far above any compiled component we ship (the regex filter is ~10 MiB);
/// a larger file is not read into memory.
const MAX_ENTRY_BYTES: u64 = 512 << 20;

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Why `meta` (of `what`) may not hold code or keys this daemon trusts.
fn untrusted(meta: &std::fs::Metadata, what: &str) -> Option<String> {
    let uid = euid();
    if meta.uid() != uid {
        return Some(format!("{what} is owned by uid {}, not by this daemon (uid {uid})", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Some(format!("{what} has mode {:o}; only this daemon may read or write it", meta.mode() & 0o777));
    }
    None
}

impl CompiledCache {
    /// Use (and create, mode 0700) `dir`. Refuses a directory, or a parent
    /// of it, that another user owns or that others can write, and a
    /// directory others can read.
    pub fn open(path: &Path) -> Result<CompiledCache, PluginError> {
        let err = |message: String| PluginError::Cache { path: path.to_path_buf(), message };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| err(format!("cannot create it: {e}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            check_parent(parent).map_err(err)?;
        }
        let link = std::fs::symlink_metadata(path).map_err(|e| err(e.to_string()))?;
        if link.file_type().is_symlink() {
            return Err(err("it is a symbolic link; give the real directory".into()));
        }
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|e| err(e.to_string()))?;
        let meta = dir_metadata(&dir).map_err(|e| err(e.to_string()))?;
        if let Some(why) = untrusted(&meta, "it") {
            return Err(err(format!(
                "{why}; run `chown $(id -u) {0} && chmod 700 {0}` so that only this daemon can write compiled code",
                path.display()
            )));
        }
        let key = read_or_make_key(&dir).map_err(err)?;
        Ok(CompiledCache { path: path.to_path_buf(), dir, key })
    }

    fn entry_name(engine: &Engine, sha256: &str) -> String {
        format!("{sha256}-{:016x}.mapped.cwasm", engine_hash(engine))
    }

    /// The name entries had when their integrity code came first, which
    /// kept them from being mapped. Such an entry is removed when its
    /// component is compiled again.
    fn legacy_entry_name(engine: &Engine, sha256: &str) -> String {
        format!("{sha256}-{:016x}.cwasm", engine_hash(engine))
    }

    /// The MAC of an entry, before its compiled code is added to it.
    fn mac(&self, engine: &Engine, sha256: &str) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(sha256.as_bytes());
        mac.update(&[0]);
        mac.update(&engine_hash(engine).to_le_bytes());
        mac
    }

    /// The compiled component for `bytes`, from disk when it is there and
    /// passes every check.
    pub fn load(
        &self,
        engine: &Engine,
        plugin: &str,
        sha256: &str,
        bytes: &ComponentBytes,
    ) -> Result<(Component, CacheOutcome), PluginError> {
        let name = Self::entry_name(engine, sha256);
        match self.open_entry(&name) {
            Ok(None) => {}
            Ok(Some((mut file, len))) => match self.verified(engine, sha256, &mut file, len) {
                // SAFETY: the file is a regular file of ours in a directory
                // only we can write, and its MAC proves this daemon wrote it
                // for this component and engine.
                Ok(code_len) => match unsafe { deserialize(engine, &mut file, code_len) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => self.discard(plugin, &name, &format!("{e:#}")),
                },
                Err(why) => self.discard(plugin, &name, &why),
            },
            Err(why) => self.discard(plugin, &name, &why),
        }
        let _ = self.dir.remove_file(Self::legacy_entry_name(engine, sha256));
        let component = compile(engine, plugin, &bytes.wasm(plugin)?)?;
        if let Err(e) = self.store(engine, sha256, &name, &component) {
            tracing::warn!(plugin, cache = %self.path.display(), "cannot cache compiled plugin: {e}");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn discard(&self, plugin: &str, name: &str, why: &str) {
        tracing::warn!(plugin, path = %self.path.join(name).display(), "discarding compiled plugin, compiling it again: {why}");
        let _ = self.dir.remove_file(name);
    }

    /// The entry, open, and its length, or `None` when there is none.
    /// Refuses (as an error to log) a symlink, a non-file, or a file of
    /// another user or open to others.
    fn open_entry(&self, name: &str) -> Result<Option<(std::fs::File, u64)>, String> {
        let mut options = OpenOptions::new();
        options.read(true).follow(FollowSymlinks::No).custom_flags(libc::O_NONBLOCK);
        let file = match self.dir.open_with(name, &options) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open it without following links: {e}")),
        };
        let file = file.into_std();
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.file_type().is_file() {
            return Err("it is not a regular file".into());
        }
        if let Some(why) = untrusted(&meta, "it") {
            return Err(why);
        }
        if meta.len() > MAX_ENTRY_BYTES {
            return Err(format!("it has {} bytes, more than a compiled plugin can", meta.len()));
        }
        Ok(Some((file, meta.len())))
    }

    /// The length of the entry's compiled code, once its integrity code
    /// matches. The file is read through a small buffer: holding it whole
    /// (5 MB for the regex filter) only to check it raised every start's
    /// peak by as much.
    fn verified(&self, engine: &Engine, sha256: &str, file: &mut std::fs::File, len: u64) -> Result<u64, String> {
        let code_len =
            len.checked_sub(MAC_LEN as u64).ok_or_else(|| "it is too short to hold its integrity code".to_string())?;
        let mut mac = self.mac(engine, sha256);
        let mut code = Read::by_ref(file).take(code_len);
        let mut buffer = vec![0u8; 64 << 10];
        let mut read = 0;
        loop {
            let n = code.read(&mut buffer).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            mac.update(&buffer[..n]);
            read += n as u64;
        }
        let mut tag = [0u8; MAC_LEN];
        if read != code_len || file.read_exact(&mut tag).is_err() {
            return Err("it was cut short while being read".into());
        }
        mac.verify_slice(&tag).map_err(|_| {
            "its integrity code does not match (not written by this daemon for this component)".to_string()
        })?;
        Ok(code_len)
    }

    fn store(&self, engine: &Engine, sha256: &str, name: &str, component: &Component) -> Result<(), String> {
        let code = component.serialize().map_err(|e| format!("{e:#}"))?;
        let mut mac = self.mac(engine, sha256);
        mac.update(&code);
        let tag = mac.finalize().into_bytes();
        let tmp = format!("{name}.tmp{}-{:x}", std::process::id(), fastrand::u64(..));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600).follow(FollowSymlinks::No);
        let written = self
            .dir
            .open_with(&tmp, &options)
            .and_then(|file| {
                let mut file = file.into_std();
                file.write_all(&code)?;
                file.write_all(&tag)?;
                file.sync_all()
            })
            .and_then(|()| self.dir.rename(&tmp, &self.dir, name));
        if written.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        written.map_err(|e| e.to_string())
    }
}

fn engine_hash(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    hasher.finish()
}

/// The std metadata of the directory behind `dir` (cap-std's own type has
/// no owner or mode accessors).
fn dir_metadata(dir: &Dir) -> std::io::Result<std::fs::Metadata> {
    dir.try_clone()?.into_std_file().metadata()
}

/// The directory holding the cache must not let another user replace it.
fn check_parent(parent: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let uid = euid();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!(
            "its parent {} is owned by uid {}, not by this daemon (uid {uid}) or root; another user could replace the cache",
            parent.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 && meta.mode() & libc::S_ISVTX == 0 {
        return Err(format!(
            "its parent {} can be written by others (mode {:o}); run `chmod go-w {}`",
            parent.display(),
            meta.mode() & 0o7777,
            parent.display()
        ));
    }
    Ok(())
}

/// The secret the MACs are keyed with: read from the cache directory, or
/// made there (0600) on first use. A key file that is not a private file
/// of ours holding a whole key is replaced: that only invalidates the
/// entries keyed with it, which are then compiled again.
fn read_or_make_key(dir: &Dir) -> Result<[u8; KEY_LEN], String> {
    match read_key(dir) {
        Ok(Some(key)) => return Ok(key),
        Ok(None) => {}
        Err(why) => {
            tracing::warn!(
                "compiled-plugin cache: {KEY_FILE} {why}; making a new key (cached plugins are compiled again)"
            );
            dir.remove_file(KEY_FILE).map_err(|e| format!("removing the unusable {KEY_FILE}: {e}"))?;
        }
    }
    let mut key = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(|e| format!("cannot read /dev/urandom for the cache key: {e}"))?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600).follow(FollowSymlinks::No);
    match dir.open_with(KEY_FILE, &options) {
        Ok(file) => {
            let mut file = file.into_std();
            file.write_all(&key).and_then(|()| file.sync_all()).map_err(|e| format!("writing {KEY_FILE}: {e}"))?;
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(dir)?.ok_or_else(|| format!("{KEY_FILE} vanished while it was read"))
        }
        Err(e) => Err(format!("creating {KEY_FILE}: {e}")),
    }
}

/// The key, `None` when there is no key file, `Err` when the file is not
/// fit to hold one.
fn read_key(dir: &Dir) -> Result<Option<[u8; KEY_LEN]>, String> {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No).custom_flags(libc::O_NONBLOCK);
    let mut file = match dir.open_with(KEY_FILE, &options) {
        Ok(file) => file.into_std(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be opened without following links ({e})")),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    if let Some(why) = untrusted(&meta, "it") {
        return Err(format!("is unfit: {why}"));
    }
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key).map_err(|e| format!("cannot be read whole ({e})"))?;
    Ok(Some(key))
}

/// The component of a verified entry, mapped from its file, so that its
/// code is shared with the page cache and only the pages that run are
/// resident; deserialising from `code` copied all of it into anonymous
/// memory (5 MB for the regex filter and an action, in every daemon).
/// The integrity code after the compiled object is outside every section
/// of it, so wasmtime reads past it. The file is mapped through its open
/// descriptor: it is the file that was verified, whatever has become of
/// its name. Its bytes could still be changed after the check by this
/// daemon's user alone, who holds the key anyway. Where /proc is missing,
/// the code is read and copied as before.
///
/// # Safety
/// `file` must be an entry this daemon wrote (its MAC verified), as
/// [`Component::deserialize`] requires, with `code_len` bytes of code.
unsafe fn deserialize(engine: &Engine, file: &mut std::fs::File, code_len: u64) -> wasmtime::Result<Component> {
    use std::os::fd::AsRawFd;
    let reopened = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    if reopened.exists() {
        // SAFETY: the caller's contract; the mapping is private and the
        // entry is never written again (a new one replaces it by rename).
        return unsafe { Component::deserialize_file(engine, &reopened) };
    }
    // SAFETY: the caller's contract.
    unsafe { deserialize_copied(engine, file, code_len) }
}

/// # Safety
/// As [`deserialize`].
unsafe fn deserialize_copied(engine: &Engine, file: &mut std::fs::File, code_len: u64) -> wasmtime::Result<Component> {
    use std::io::{Seek, SeekFrom};
    let mut code = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    Read::by_ref(file).take(code_len).read_to_end(&mut code)?;
    // SAFETY: the caller's contract.
    unsafe { Component::deserialize(engine, code) }
}

/// Compile without the cache.
pub fn compile(engine: &Engine, plugin: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes)
        .map_err(|e| PluginError::Compile { plugin: plugin.to_string(), message: format!("{e:#}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Registry, Runtime, RuntimeOptions};

    /// Without /proc, a verified entry is read and copied; the component
    /// it gives is the one that was cached.
    #[test]
    fn an_entry_is_loaded_by_copy_where_it_cannot_be_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let engine = runtime.engine();
        let source = Registry::new(None).resolve("nftables").unwrap();
        let cache = CompiledCache::open(&cache_dir).unwrap();
        let sha = source.sha256();
        let (compiled, outcome) = cache.load(engine, "nftables", &sha, &source.bytes).unwrap();
        assert_eq!(outcome, CacheOutcome::Compiled);
        let name = CompiledCache::entry_name(engine, &sha);
        let (mut file, len) = cache.open_entry(&name).unwrap().unwrap();
        let code_len = cache.verified(engine, &sha, &mut file, len).unwrap();
        assert_eq!(code_len, len - MAC_LEN as u64);
        // SAFETY: the entry was written and verified just above.
        let copied = unsafe { deserialize_copied(engine, &mut file, code_len) }.unwrap();
        let exports =
            |c: &Component| c.component_type().exports(engine).map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert_eq!(exports(&copied), exports(&compiled));
        assert!(!exports(&copied).is_empty());
    }

    /// A flipped bit anywhere, in the code or in its integrity code, fails
    /// the check, as does a file cut short.
    #[test]
    fn a_changed_or_shortened_entry_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let engine = runtime.engine();
        let source = Registry::new(None).resolve("nftables").unwrap();
        let cache = CompiledCache::open(&dir.path().join("cache")).unwrap();
        let sha = source.sha256();
        cache.load(engine, "nftables", &sha, &source.bytes).unwrap();
        let name = CompiledCache::entry_name(engine, &sha);
        let path = dir.path().join("cache").join(&name);
        let good = std::fs::read(&path).unwrap();
        for (what, bytes) in [
            ("a bit of code", {
                let mut b = good.clone();
                b[good.len() / 2] ^= 1;
                b
            }),
            ("a bit of the tag", {
                let mut b = good.clone();
                b[good.len() - 1] ^= 1;
                b
            }),
            ("a shorter file", good[..good.len() - 1].to_vec()),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let (mut file, len) = cache.open_entry(&name).unwrap().unwrap();
            assert!(cache.verified(engine, &sha, &mut file, len).is_err(), "{what} passed");
        }
        std::fs::write(&path, &good).unwrap();
        let (mut file, len) = cache.open_entry(&name).unwrap().unwrap();
        assert!(cache.verified(engine, &sha, &mut file, len).is_ok());
    }
}
