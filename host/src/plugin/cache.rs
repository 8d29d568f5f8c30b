//! Compiled components on disk, so that a restart does not recompile.
//!
//! Entries are keyed by the component's sha256 and the engine's
//! compatibility hash. Deserialising compiled code is only safe for files
//! this daemon wrote itself, so the cache is used only in a directory owned
//! by our user and closed to everyone else (0700).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::plugin::PluginError;

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
}

/// Whether a load came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialised from disk.
    Hit,
    /// Compiled now (and written to disk when possible).
    Compiled,
}

impl CompiledCache {
    /// Use (and create, mode 0700) `dir`. Refuses a directory that another
    /// user owns or that others can write or read.
    pub fn open(dir: &Path) -> Result<CompiledCache, PluginError> {
        let err = |message: String| PluginError::Cache { path: dir.to_path_buf(), message };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create it: {e}")))?;
        let meta = std::fs::metadata(dir).map_err(|e| err(e.to_string()))?;
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid {
            return Err(err(format!("it is owned by uid {}, not by this daemon (uid {uid})", meta.uid())));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "its mode is {:o}; run `chmod 700 {}` so that only this daemon can write compiled code",
                meta.permissions().mode() & 0o777,
                dir.display()
            )));
        }
        Ok(CompiledCache { dir: dir.to_path_buf() })
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        self.dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    /// The compiled component for `bytes`, from disk when it is there.
    pub fn load(
        &self,
        engine: &Engine,
        plugin: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome), PluginError> {
        let path = self.entry(engine, sha256);
        if path.exists() {
            // SAFETY: the file is in a directory only this user can write
            // (checked in `open`), named after the source's digest and the
            // engine's settings, and was written by `store` below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(plugin, path = %path.display(), "discarding unusable compiled plugin: {e:#}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile(engine, plugin, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(plugin, path = %path.display(), "cannot cache compiled plugin: {e}");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> Result<(), String> {
        let serialized = component.serialize().map_err(|e| format!("{e:#}"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(&serialized)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(|e| e.to_string())
    }
}

/// Compile without the cache.
pub fn compile(engine: &Engine, plugin: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes)
        .map_err(|e| PluginError::Compile { plugin: plugin.to_string(), message: format!("{e:#}") })
}
