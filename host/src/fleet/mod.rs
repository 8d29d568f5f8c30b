//! Bans shared between hosts over NATS JetStream: a key-value bucket of
//! signed ban facts, one key per (origin host, address or prefix), so
//! that each key has one writer and the fleet view is the union of
//! origins. Each host keeps the final say over what it applies
//! ([`policy`]).
//!
//! The record and its signature are [`record`], the local policy
//! [`policy`], the connection, outbox and watch [`client`], `[fleet]` in
//! `wasmban.conf` [`settings`]; this host's signing key is made by
//! `wasmban fleet keygen`. A jail's side is `daemon/jail_thread/fleet.rs`.

pub mod client;
pub mod policy;
pub mod record;
pub mod settings;

/// A jail's ban or lift, for the fleet.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A new ban of this host's.
    Banned {
        /// The jail.
        jail: String,
        /// The ban.
        record: crate::store::BanRecord,
    },
    /// A ban of this host's lifted before its time.
    Lifted {
        /// The jail.
        jail: String,
        /// The ban.
        record: crate::store::BanRecord,
        /// When (unix seconds).
        at: i64,
    },
}

/// Where jails hand their bans to the fleet's task.
pub type Outbox = tokio::sync::mpsc::UnboundedSender<Outgoing>;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// This host's signing key's file in the state directory: an nkey seed,
/// so the same key can be the host's NATS user (`nkey` in the server's
/// configuration).
pub const KEY_FILE: &str = "fleet.nk";

/// The key file of `state_dir`.
pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEY_FILE)
}

/// Make this host's signing key at `path`; its public key. An existing
/// key is kept unless `replace`: records signed with it would no longer
/// be trusted by the other hosts.
pub fn keygen(path: &Path, replace: bool) -> anyhow::Result<String> {
    if path.exists() && !replace {
        anyhow::bail!(
            "{} exists already (public key {}); other hosts trust that key: give --replace to make a new one \
             and update their [fleet] trust",
            path.display(),
            load_key(path).map(|k| k.public_key()).unwrap_or_else(|e| format!("unreadable: {e}"))
        );
    }
    let key = nkeys::KeyPair::new_user();
    let seed = key.seed().map_err(|e| anyhow::anyhow!("making a key: {e}"))?;
    let fresh = path.with_extension("new");
    let _ = std::fs::remove_file(&fresh);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&fresh)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", fresh.display()))?;
    file.write_all(format!("{seed}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", fresh.display()))?;
    std::fs::rename(&fresh, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(key.public_key())
}

/// This host's signing key, from `path`, which must be private to the
/// daemon's user.
pub fn load_key(path: &Path) -> anyhow::Result<nkeys::KeyPair> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}; `wasmban fleet keygen` makes this host's key", path.display()))?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid || meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "{}: a signing key must be this daemon's own (uid {uid}) and private: `chown {uid}` and `chmod 600` it",
            path.display()
        );
    }
    let seed = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    nkeys::KeyPair::from_seed(seed.trim())
        .map_err(|e| anyhow::anyhow!("{}: not an nkey seed ({e}); `wasmban fleet keygen --replace`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_keeps_a_key_unless_told_and_the_key_signs() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        let public = keygen(&path, false).unwrap();
        assert!(public.starts_with('U') && public.len() == 56, "{public}");
        let e = keygen(&path, false).unwrap_err().to_string();
        assert!(e.contains(&public) && e.contains("--replace"), "{e}");
        let key = load_key(&path).unwrap();
        assert_eq!(key.public_key(), public);
        assert_ne!(keygen(&path, true).unwrap(), public);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        assert!(load_key(&path).unwrap_err().to_string().contains("chmod 600"));
    }
}
