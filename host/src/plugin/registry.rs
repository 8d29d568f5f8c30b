//! Where plugins come from: the built-ins embedded in this binary, and the
//! admin's plugin directory, which can add components or re-grant built-ins.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::plugin::PluginError;
use crate::plugin::manifest::Manifest;

/// A component compiled into this binary, with the manifest it ships with.
pub struct Builtin {
    /// The name configs use (`plugin = iptables`).
    pub name: &'static str,
    /// The component, compressed with zstd when the binary was built.
    pub zstd: &'static [u8],
    /// The component's size.
    pub size: usize,
    /// Its manifest text.
    pub manifest: &'static str,
    /// Where that manifest lives in the source tree, for error messages.
    pub manifest_path: &'static str,
    /// Hex sha256 of `wasm`, worked out when the binary was built (hashing
    /// the regex filter at every start cost milliseconds).
    pub sha256: &'static str,
}

/// A component's bytes: compressed in the binary for a built-in, and
/// decompressed only for as long as it is compiled or inspected; or read
/// from a file.
#[derive(Debug, Clone)]
pub enum ComponentBytes {
    /// Embedded, with the digest the build worked out.
    Embedded {
        /// The component, compressed with zstd.
        zstd: &'static [u8],
        /// Its size once decompressed.
        size: usize,
        /// Its hex sha256, of the component itself.
        sha256: &'static str,
    },
    /// Read from a file.
    Loaded(Arc<[u8]>),
}

impl ComponentBytes {
    /// The component. A built-in is decompressed here, so this is called
    /// only when a compile or an inspection needs the bytes, and they are
    /// not kept. `plugin` names it in the error.
    pub fn wasm(&self, plugin: &str) -> Result<Cow<'_, [u8]>, PluginError> {
        match self {
            ComponentBytes::Loaded(bytes) => Ok(Cow::Borrowed(bytes)),
            ComponentBytes::Embedded { zstd, size, .. } => {
                decompress(zstd, *size).map(Cow::Owned).map_err(|e| PluginError::Compile {
                    plugin: plugin.to_string(),
                    message: format!(
                        "the built-in component in this binary does not decompress ({e}); \
                         the binary is damaged: reinstall wasmban"
                    ),
                })
            }
        }
    }

    /// The component's size, without decompressing it.
    pub fn len(&self) -> usize {
        match self {
            ComponentBytes::Embedded { size, .. } => *size,
            ComponentBytes::Loaded(bytes) => bytes.len(),
        }
    }

    /// Whether the component is empty (a file can be).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn decompress(zstd: &[u8], size: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut source = zstd;
    let decoder = ruzstd::decoding::StreamingDecoder::new(&mut source).map_err(std::io::Error::other)?;
    let mut wasm = Vec::with_capacity(size);
    // One byte past the size, so that a longer stream is caught too.
    decoder.take(size as u64 + 1).read_to_end(&mut wasm)?;
    if wasm.len() != size {
        return Err(std::io::Error::other(format!("{} bytes, where the build made {size}", wasm.len())));
    }
    Ok(wasm)
}

impl From<Vec<u8>> for ComponentBytes {
    fn from(bytes: Vec<u8>) -> ComponentBytes {
        ComponentBytes::Loaded(Arc::from(bytes))
    }
}

impl From<&'static Builtin> for ComponentBytes {
    fn from(builtin: &'static Builtin) -> ComponentBytes {
        ComponentBytes::Embedded { zstd: builtin.zstd, size: builtin.size, sha256: builtin.sha256 }
    }
}

/// Every built-in plugin.
pub const BUILTINS: &[Builtin] = include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Where a plugin's component came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Embedded in the binary.
    Builtin,
    /// A file on disk.
    File(PathBuf),
}

/// A component with the manifest that governs it, ready to be loaded.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The plugin's name, used in logs and errors.
    pub name: String,
    /// The component bytes.
    pub bytes: ComponentBytes,
    /// Grants and limits.
    pub manifest: Manifest,
    /// Where the component came from.
    pub origin: Origin,
    /// The manifest's path, when there is one on disk.
    pub manifest_path: Option<PathBuf>,
}

impl PluginSource {
    /// Hex sha256 of the component.
    pub fn sha256(&self) -> String {
        match &self.bytes {
            ComponentBytes::Embedded { sha256, .. } => sha256.to_string(),
            ComponentBytes::Loaded(bytes) => hex(&Sha256::digest(bytes)),
        }
    }

    /// Where to point a person who wants to change this plugin's grants.
    pub fn grant_file_hint(&self, plugin_dir: Option<&Path>) -> String {
        match &self.manifest_path {
            Some(p) => p.display().to_string(),
            None => match plugin_dir {
                Some(dir) => dir.join(format!("{}.toml", self.name)).display().to_string(),
                None => format!("plugin.d/{}.toml", self.name),
            },
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Finds plugins by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    plugin_dir: Option<PathBuf>,
}

impl Registry {
    /// Look in `plugin_dir` (usually `/etc/wasmban/plugin.d`) before the built-ins.
    pub fn new(plugin_dir: Option<PathBuf>) -> Self {
        Registry { plugin_dir }
    }

    /// The admin's plugin directory.
    pub fn plugin_dir(&self) -> Option<&Path> {
        self.plugin_dir.as_deref()
    }

    /// A built-in by name.
    pub fn builtin(name: &str) -> Option<&'static Builtin> {
        BUILTINS.iter().find(|b| b.name == name)
    }

    /// Resolve what a config names: `iptables` (a manifest in the plugin
    /// directory, else a built-in) or `pack.wasm` / `/path/pack.wasm` (a
    /// component file, governed by the `.toml` beside it if there is one).
    pub fn resolve(&self, reference: &str) -> Result<PluginSource, PluginError> {
        if reference.ends_with(".wasm") {
            let path = match (&self.plugin_dir, Path::new(reference).is_absolute()) {
                (Some(dir), false) => dir.join(reference),
                _ => PathBuf::from(reference),
            };
            let manifest_path = path.with_extension("toml");
            return if manifest_path.exists() {
                self.read_manifest(&manifest_path, reference, Some(&path))
            } else {
                self.read_component(reference, &path, Manifest::default(), None)
            };
        }
        if reference.is_empty() || !reference.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(PluginError::NotFound {
                name: reference.to_string(),
                searched: "a plugin name is letters, digits, '-', '_' and '.', or a path ending in .wasm".into(),
            });
        }
        if let Some(dir) = &self.plugin_dir {
            let manifest_path = dir.join(format!("{reference}.toml"));
            if manifest_path.exists() {
                return self.read_manifest(&manifest_path, reference, None);
            }
        }
        match Self::builtin(reference) {
            Some(b) => Ok(PluginSource {
                name: b.name.to_string(),
                bytes: b.into(),
                manifest: Manifest::parse(b.manifest)
                    .map_err(|message| PluginError::Manifest { path: PathBuf::from(b.manifest_path), message })?,
                origin: Origin::Builtin,
                manifest_path: None,
            }),
            None => Err(PluginError::NotFound {
                name: reference.to_string(),
                searched: format!(
                    "{}built-ins: {}",
                    self.plugin_dir.as_ref().map(|d| format!("{}/{reference}.toml, ", d.display())).unwrap_or_default(),
                    BUILTINS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// Read a manifest; `component` is the `.wasm` it sits beside, when the
    /// config named that file, and stands in for a missing `file` key.
    fn read_manifest(
        &self,
        manifest_path: &Path,
        name: &str,
        component: Option<&Path>,
    ) -> Result<PluginSource, PluginError> {
        let text = read_trusted(manifest_path)
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string()))
            .map_err(|message| PluginError::Manifest { path: manifest_path.to_path_buf(), message })?;
        let mut manifest = Manifest::parse(&text)
            .map_err(|message| PluginError::Manifest { path: manifest_path.to_path_buf(), message })?;
        if manifest.file.is_none() {
            manifest.file = component.map(Path::to_path_buf);
        }
        let stem = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name).to_string();
        match &manifest.file {
            Some(file) => {
                let base = manifest_path.parent().unwrap_or(Path::new("."));
                let path = base.join(file);
                self.read_component(&stem, &path, manifest.clone(), Some(manifest_path.to_path_buf()))
            }
            None => {
                let builtin = Self::builtin(&stem).ok_or_else(|| PluginError::Manifest {
                    path: manifest_path.to_path_buf(),
                    message: format!(
                        "no `file` is given and there is no built-in plugin named {stem:?}; add file = \"{stem}.wasm\""
                    ),
                })?;
                let source = PluginSource {
                    name: stem,
                    bytes: builtin.into(),
                    manifest,
                    origin: Origin::Builtin,
                    manifest_path: Some(manifest_path.to_path_buf()),
                };
                check_pin(&source)?;
                Ok(source)
            }
        }
    }

    fn read_component(
        &self,
        name: &str,
        path: &Path,
        manifest: Manifest,
        manifest_path: Option<PathBuf>,
    ) -> Result<PluginSource, PluginError> {
        let bytes = read_trusted(path).map_err(|message| PluginError::Read { path: path.to_path_buf(), message })?;
        let name = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name).to_string();
        let source = PluginSource {
            name,
            bytes: bytes.into(),
            manifest,
            origin: Origin::File(path.to_path_buf()),
            manifest_path,
        };
        check_pin(&source)?;
        Ok(source)
    }
}

/// The bytes of a plugin manifest or component, refused when someone
/// other than root or this daemon's user could have written it: such a
/// file could grant itself the shell, or replace a built-in's code.
/// Owner and mode are those of the file actually read (checked on the open
/// handle), and of the directory holding it.
fn read_trusted(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let unsafe_owner = |meta: &std::fs::Metadata| meta.uid() != 0 && meta.uid() != uid;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir_meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if unsafe_owner(&dir_meta) || dir_meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its directory {} is owned by uid {} with mode {:o}: another user could put plugin files there; \
             it must belong to root (or this daemon's user, uid {uid}) and be writable by its owner only \
             (`chown root {} && chmod go-w {}`)",
            dir.display(),
            dir_meta.uid(),
            dir_meta.mode() & 0o7777,
            dir.display(),
            dir.display()
        ));
    }
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if unsafe_owner(&meta) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it is owned by uid {} with mode {:o}: a plugin file that another user can change could grant \
             itself any capability; it must belong to root (or this daemon's user, uid {uid}) and be writable \
             by its owner only (`chown root {} && chmod 644 {}`)",
            meta.uid(),
            meta.mode() & 0o7777,
            path.display(),
            path.display()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn check_pin(source: &PluginSource) -> Result<(), PluginError> {
    if let Some(pin) = &source.manifest.sha256 {
        let actual = source.sha256();
        if !pin.eq_ignore_ascii_case(&actual) {
            return Err(PluginError::PinMismatch { plugin: source.name.clone(), expected: pin.clone(), actual });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_decompresses_to_the_component_the_build_hashed() {
        assert!(BUILTINS.len() > 20, "the built-ins are embedded");
        for builtin in BUILTINS {
            let bytes = ComponentBytes::from(builtin);
            let wasm = bytes.wasm(builtin.name).unwrap();
            assert_eq!(wasm.len(), builtin.size, "{}", builtin.name);
            assert_eq!(hex(&Sha256::digest(&wasm)), builtin.sha256, "{}", builtin.name);
            assert!(wasm.starts_with(b"\0asm"), "{}", builtin.name);
            assert!(builtin.zstd.len() < builtin.size / 2, "{} is compressed", builtin.name);
        }
    }

    #[test]
    fn a_damaged_builtin_is_an_error_that_names_it() {
        let builtin = BUILTINS.iter().find(|b| b.name == "nftables").unwrap();
        let truncated = ComponentBytes::Embedded {
            zstd: &builtin.zstd[..builtin.zstd.len() / 2],
            size: builtin.size,
            sha256: builtin.sha256,
        };
        let wrong_size =
            ComponentBytes::Embedded { zstd: builtin.zstd, size: builtin.size - 1, sha256: builtin.sha256 };
        for damaged in [truncated, wrong_size] {
            let message = damaged.wasm("nftables").unwrap_err().to_string();
            assert!(message.contains("plugin nftables") && message.contains("reinstall wasmban"), "{message}");
        }
    }
}
