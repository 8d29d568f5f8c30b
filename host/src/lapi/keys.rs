//! Bouncers' API keys. The file holds one bouncer a line, `NAME SHA256
//! CREATED`: the key's digest, never the key, so that reading the file
//! does not give a key away. `wasmban bouncers add` writes it; the daemon
//! reads it again whenever it changes, so a new bouncer needs no restart.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The keys file's name in the state directory, when `[lapi] keys` does
/// not name another.
pub const DEFAULT_FILE: &str = "bouncers.keys";

/// A keys file problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// It could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// A request the file cannot take (a name taken, unknown, or bad).
    #[error("{0}")]
    Refused(String),
}

/// One bouncer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bouncer {
    /// Its name.
    pub name: String,
    /// The SHA-256 of its key, in hex.
    #[serde(skip)]
    pub digest: String,
    /// When it was added (unix seconds).
    pub created: i64,
}

fn digest_of(key: &str) -> String {
    Sha256::digest(key.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` can name a bouncer: what CrowdSec's names use.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// Read the bouncers in `text`; lines that are not bouncers are named.
pub fn parse(text: &str) -> (Vec<Bouncer>, Vec<String>) {
    let mut bouncers = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [name, digest, created]
                if valid_name(name)
                    && digest.len() == 64
                    && digest.bytes().all(|b| b.is_ascii_hexdigit())
                    && created.parse::<i64>().is_ok() =>
            {
                bouncers.push(Bouncer {
                    name: name.to_string(),
                    digest: digest.to_ascii_lowercase(),
                    created: created.parse().unwrap_or(0),
                })
            }
            _ => bad.push(format!("line {}: expected NAME SHA256 CREATED", n + 1)),
        }
    }
    (bouncers, bad)
}

/// Why the daemon will not trust the file at `path`, if it will not:
/// anyone who can write it can let in a bouncer, and anyone who can read
/// it learns who has keys.
fn unsafe_because(meta: &fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Some(format!("it is owned by uid {}, not by this daemon (uid {uid}); `chown {uid}` it", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Some(format!("group or others may use it (mode {:o}); `chmod 600` it", meta.mode() & 0o777));
    }
    None
}

/// Read the bouncers of the file at `path` (none when it does not exist).
pub fn load(path: &Path) -> Result<Vec<Bouncer>, KeysError> {
    let io = |message: String| KeysError::Io { path: path.to_path_buf(), message };
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| io(e.to_string()))?;
    if let Some(why) = unsafe_because(&meta) {
        return Err(io(format!("not used: {why}")));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| io(e.to_string()))?;
    let (bouncers, bad) = parse(&text);
    if let Some(first) = bad.first() {
        return Err(io(format!("{first}; fix or remove that line (`wasmban bouncers add` writes it)")));
    }
    Ok(bouncers)
}

/// Write `bouncers` to `path` whole: a new file moved over the old, mode
/// 0600.
fn save(path: &Path, bouncers: &[Bouncer]) -> Result<(), KeysError> {
    let io = |message: String| KeysError::Io { path: path.to_path_buf(), message };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io(format!("creating its directory: {e}")))?;
    }
    let mut text = String::from("# wasmban bouncers: NAME SHA256-OF-KEY CREATED; written by `wasmban bouncers`\n");
    for b in bouncers {
        text.push_str(&format!("{} {} {}\n", b.name, b.digest, b.created));
    }
    let fresh = path.with_extension("new");
    let _ = fs::remove_file(&fresh);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&fresh)
        .map_err(|e| io(format!("writing {}: {e}", fresh.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io(format!("writing {}: {e}", fresh.display())))?;
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o600)).map_err(|e| io(e.to_string()))?;
    fs::rename(&fresh, path).map_err(|e| io(e.to_string()))
}

/// A new key: 32 random bytes from the kernel, in hex.
fn new_key() -> Result<String, KeysError> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| KeysError::Io { path: PathBuf::from("/dev/urandom"), message: e.to_string() })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Add bouncer `name` to the file at `path`, with `key` or a new one;
/// return the key.
pub fn add(path: &Path, name: &str, key: Option<&str>, now: i64) -> Result<String, KeysError> {
    if !valid_name(name) {
        return Err(KeysError::Refused(format!(
            "{name:?}: a bouncer's name is 1 to 64 letters, digits, '.', '_', '@' or '-'"
        )));
    }
    let key = match key {
        Some(k) if k.trim().len() < 16 => {
            return Err(KeysError::Refused("a key given with --key must be at least 16 characters".into()));
        }
        Some(k) => k.trim().to_string(),
        None => new_key()?,
    };
    let mut bouncers = load(path)?;
    if bouncers.iter().any(|b| b.name == name) {
        return Err(KeysError::Refused(format!(
            "a bouncer named {name} exists already in {}; `wasmban bouncers delete {name}` first",
            path.display()
        )));
    }
    bouncers.push(Bouncer { name: name.to_string(), digest: digest_of(&key), created: now });
    save(path, &bouncers)?;
    Ok(key)
}

/// Remove bouncer `name` from the file at `path`.
pub fn delete(path: &Path, name: &str) -> Result<(), KeysError> {
    let mut bouncers = load(path)?;
    let before = bouncers.len();
    bouncers.retain(|b| b.name != name);
    if bouncers.len() == before {
        return Err(KeysError::Refused(format!("no bouncer named {name} in {}", path.display())));
    }
    save(path, &bouncers)
}

/// The daemon's view of the keys file, read again when it changes.
pub struct KeyRing {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// The file's identity when read: (modified, changed, size, inode);
    /// a `chmod` changes only the second.
    seen: Option<(SystemTime, (i64, i64), u64, u64)>,
    bouncers: Vec<Bouncer>,
}

impl KeyRing {
    /// The keys in the file at `path`.
    pub fn new(path: PathBuf) -> KeyRing {
        let ring = KeyRing { path, loaded: Mutex::new(Loaded::default()) };
        ring.refresh();
        ring
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many bouncers may connect.
    pub fn count(&self) -> usize {
        self.refresh();
        self.loaded.lock().map(|l| l.bouncers.len()).unwrap_or(0)
    }

    /// Read the file again if it changed since it was last read.
    fn refresh(&self) {
        let identity = fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), (m.ctime(), m.ctime_nsec()), m.len(), m.ino()));
        let Ok(mut loaded) = self.loaded.lock() else { return };
        if loaded.seen.is_some() && loaded.seen == identity {
            return;
        }
        loaded.bouncers = match load(&self.path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("[lapi] bouncer keys {e}; no bouncer is let in until it is fixed");
                Vec::new()
            }
        };
        loaded.seen = identity.or(Some((SystemTime::UNIX_EPOCH, (0, 0), 0, 0)));
    }

    /// The bouncer whose key is `key`, if any.
    pub fn bouncer(&self, key: &str) -> Option<String> {
        self.refresh();
        let digest = digest_of(key);
        let loaded = self.loaded.lock().ok()?;
        loaded.bouncers.iter().find(|b| same(&b.digest, &digest)).map(|b| b.name.clone())
    }
}

/// Compare without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_check_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bouncers.keys");
        let key = add(&path, "fw1", None, 100).unwrap();
        assert_eq!(key.len(), 64);
        add(&path, "nginx", Some("a-key-of-my-own-choosing"), 101).unwrap();
        assert!(matches!(add(&path, "fw1", None, 102), Err(KeysError::Refused(_))));
        assert!(matches!(add(&path, "bad name", None, 102), Err(KeysError::Refused(_))));
        assert!(matches!(add(&path, "short", Some("tiny"), 102), Err(KeysError::Refused(_))));
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key), "the file holds digests, not keys");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);

        let ring = KeyRing::new(path.clone());
        assert_eq!(ring.bouncer(&key).as_deref(), Some("fw1"));
        assert_eq!(ring.bouncer("a-key-of-my-own-choosing").as_deref(), Some("nginx"));
        assert_eq!(ring.bouncer("wrong"), None);

        delete(&path, "fw1").unwrap();
        assert!(matches!(delete(&path, "fw1"), Err(KeysError::Refused(_))));
        assert_eq!(ring.bouncer(&key), None, "a deleted bouncer is shut out without a restart");
        assert_eq!(load(&path).unwrap().len(), 1);
    }

    #[test]
    fn a_file_others_can_read_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bouncers.keys");
        let key = add(&path, "fw1", None, 100).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("bouncers.keys") && e.contains("chmod 600"), "{e}");
        assert_eq!(KeyRing::new(path).bouncer(&key), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let (ok, bad) =
            parse("# comment\nfw1 00 1\nnginx 0000000000000000000000000000000000000000000000000000000000000000 5\n");
        assert_eq!(ok.len(), 1);
        assert_eq!(bad, ["line 2: expected NAME SHA256 CREATED"]);
    }
}
