//! The `file` capability: whole-line changes to the files a plugin's grant
//! names, for fail2ban's actions that ban by editing a file (hosts.deny,
//! nginx's map, symbiosis's blacklist folder) or by writing the kernel's
//! control files (/proc/net/xt_recent).
//!
//! A grant entry is an absolute file, or a folder ending in `/` for the
//! files directly in it. Every call opens the folder as a capability (a
//! `cap-std` directory handle) and works by name inside it, so no path
//! outside the grant, no `..`, and no symbolic link leading out of the
//! folder is ever followed. A change is a temporary file in that folder,
//! given the old file's owner and mode, synced and renamed over it, under
//! an exclusive lock on the folder: a reader sees the old file or the new
//! one, and concurrent writers (other instances, other wasmban processes)
//! lose no line.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};

use crate::capability::{Grants, HostServices};
use crate::wit::file as wit;

/// The interface name (`wasmban:plugin/file`).
pub const NAME: &str = "file";

/// Granted by a list of files and folders.
pub fn granted(grants: &Grants, _imports: &[String]) -> bool {
    !grants.files.is_empty()
}

/// The line that grants it.
pub fn grant_line(_imports: &[String]) -> String {
    "files = [\"/PATH/FILE\", \"/PATH/FOLDER/\", ...]".to_string()
}

/// How long a call waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// A file this capability reads or rewrites whole is at most this long.
const LARGEST: u64 = 64 << 20;

/// Check a grant entry; the manifest refuses one that fails.
pub fn check_grant(entry: &str) -> Result<(), String> {
    let inner = entry.strip_suffix('/').unwrap_or(entry);
    if !entry.starts_with('/') || inner.is_empty() {
        return Err(format!("{entry:?} must be an absolute path: a file, or a folder ending in `/`"));
    }
    if inner[1..].split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(format!("{entry:?} has an empty, `.` or `..` part; give the plain absolute path"));
    }
    Ok(())
}

/// The state behind one plugin instance's `file` import.
pub struct FileCtx {
    plugin: Arc<str>,
    granted: Vec<String>,
}

/// Where a granted path lives: its folder and its name in it.
struct Place {
    folder: String,
    name: String,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file's text made of `lines`, each ended by a line break.
fn as_text(lines: &[impl AsRef<str>]) -> String {
    lines.iter().map(|line| format!("{}\n", line.as_ref())).collect()
}

impl FileCtx {
    /// `plugin` may change exactly the files `granted` names.
    pub fn new(plugin: Arc<str>, granted: Vec<String>) -> Self {
        FileCtx { plugin, granted }
    }

    /// The state for `plugin`: the files its grant names.
    pub fn for_plugin(plugin: &Arc<str>, grants: &Grants, _services: &HostServices) -> Self {
        FileCtx::new(plugin.clone(), grants.files.clone())
    }

    /// `path` split into a granted folder and a name, or why not.
    fn place(&self, path: &str) -> Result<Place, String> {
        let refuse = |why: &str| {
            tracing::warn!(plugin = &*self.plugin, path, "refused a file outside the grant");
            Err(format!(
                "{path:?} {why}; plugin {} may change: {}",
                self.plugin,
                if self.granted.is_empty() { "nothing".to_string() } else { self.granted.join(", ") }
            ))
        };
        if check_grant(path).is_err() || path.ends_with('/') || path.contains('\0') {
            return refuse("is not a plain absolute path to a file");
        }
        let (folder, name) = path.rsplit_once('/').unwrap_or_default();
        let folder = if folder.is_empty() { "/" } else { folder };
        let as_file = self.granted.iter().any(|g| g == path);
        let in_folder = self.granted.iter().any(|g| g.strip_suffix('/') == Some(folder) || (g == "/" && folder == "/"));
        if !(as_file || in_folder) {
            return refuse("is not granted");
        }
        Ok(Place { folder: folder.to_string(), name: name.to_string() })
    }

    /// Run `work` on the place's folder, under its lock.
    fn locked<R>(&self, path: &str, work: impl FnOnce(&Dir, &str) -> Result<R, String>) -> Result<R, String> {
        let place = self.place(path)?;
        let dir = Dir::open_ambient_dir(&place.folder, ambient_authority())
            .map_err(|e| format!("opening the folder {}: {e}", place.folder))?;
        // cap-std's handle may be an O_PATH descriptor, which can be
        // neither locked nor synced: the lock is taken on a descriptor of
        // its own (it only ever serves as the lock).
        let lock =
            std::fs::File::open(&place.folder).map_err(|e| format!("opening the folder {}: {e}", place.folder))?;
        let started = Instant::now();
        // SAFETY: flock on a descriptor this function owns; the lock goes
        // with it when `lock` is dropped.
        while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(format!("{path}: locking its folder: {error}"));
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(format!("{path}: another writer has held its folder's lock for {LOCK_WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let result = work(&dir, &place.name).map_err(|e| format!("{path}: {e}"));
        // So that the rename survives a crash (errors here change nothing
        // already done).
        let _ = lock.sync_all();
        result
    }

    fn read(dir: &Dir, name: &str) -> Result<String, String> {
        let mut file = match dir.open(name) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut text = String::new();
        (&mut file).take(LARGEST + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
        if text.len() as u64 > LARGEST {
            return Err(format!("larger than {} MiB; it is not a list of lines to edit", LARGEST >> 20));
        }
        Ok(text)
    }

    /// Replace the file with `text`: a temporary file with the old one's
    /// owner and mode, synced, renamed over it.
    fn replace(dir: &Dir, name: &str, text: &str) -> Result<(), String> {
        let old = match dir.symlink_metadata(name) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err("is a symbolic link; grant the file it points to, and name that file".into());
            }
            Ok(meta) if !meta.is_file() => return Err("is not a regular file".into()),
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.to_string()),
        };
        let temp = format!(".{name}.wasmban-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        let mode = old.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(mode);
        let written = (|| {
            let mut file = dir.open_with(&temp, &options).map_err(|e| format!("making {temp}: {e}"))?;
            file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            // The mode asked at creation passed through the umask.
            let permissions = cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(mode));
            file.set_permissions(permissions).map_err(|e| e.to_string())?;
            if let Some(old) = &old {
                // SAFETY: fchown on the descriptor of the file just made.
                if unsafe { libc::fchown(file.as_fd().as_raw_fd(), old.uid(), old.gid()) } != 0 {
                    return Err(format!("keeping the owner: {}", std::io::Error::last_os_error()));
                }
            }
            file.sync_all().map_err(|e| e.to_string())?;
            dir.rename(&temp, dir, name).map_err(|e| e.to_string())
        })();
        if written.is_err() {
            let _ = dir.remove_file(&temp);
        }
        written
    }

    /// Apply `edit` to the file's lines, writing only when they changed.
    fn edit<R>(&self, path: &str, edit: impl FnOnce(&mut Vec<String>) -> R) -> Result<R, String> {
        self.locked(path, |dir, name| {
            let text = Self::read(dir, name)?;
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let before = lines.clone();
            let result = edit(&mut lines);
            if lines != before || (text.is_empty() && dir.metadata(name).is_err()) {
                Self::replace(dir, name, &as_text(&lines))?;
            }
            Ok(result)
        })
    }

    fn checked_line(line: &str) -> Result<(), String> {
        if line.contains(['\n', '\r', '\0']) {
            return Err(format!("{line:?} is not one line"));
        }
        Ok(())
    }

    /// See the WIT: add each of `new` unless it is there.
    pub fn add_lines(&self, path: &str, new: &[String]) -> Result<u32, String> {
        for line in new {
            Self::checked_line(line)?;
        }
        self.edit(path, |lines| {
            let mut present: std::collections::HashSet<String> = lines.iter().cloned().collect();
            let before = lines.len();
            for line in new {
                if present.insert(line.clone()) {
                    lines.push(line.clone());
                }
            }
            (lines.len() - before) as u32
        })
    }

    /// See the WIT: remove every line equal to one of `gone`.
    pub fn remove_lines(&self, path: &str, gone: &[String]) -> Result<u32, String> {
        for line in gone {
            Self::checked_line(line)?;
        }
        let gone: std::collections::HashSet<&str> = gone.iter().map(String::as_str).collect();
        self.locked(path, |dir, name| {
            let text = Self::read(dir, name)?;
            let lines: Vec<&str> = text.lines().collect();
            let kept: Vec<&str> = lines.iter().copied().filter(|l| !gone.contains(l)).collect();
            let removed = (lines.len() - kept.len()) as u32;
            if removed > 0 {
                Self::replace(dir, name, &as_text(&kept))?;
            }
            Ok(removed)
        })
    }

    /// See the WIT: the file's lines.
    pub fn read_lines(&self, path: &str) -> Result<Vec<String>, String> {
        self.locked(path, |dir, name| Ok(Self::read(dir, name)?.lines().map(str::to_string).collect()))
    }

    /// See the WIT: make the file hold exactly `lines`.
    pub fn write_lines(&self, path: &str, lines: &[String]) -> Result<(), String> {
        for line in lines {
            Self::checked_line(line)?;
        }
        self.locked(path, |dir, name| {
            let text = as_text(lines);
            if dir.metadata(name).is_ok() && Self::read(dir, name)? == text {
                return Ok(());
            }
            Self::replace(dir, name, &text)
        })
    }

    /// See the WIT: remove the file.
    pub fn remove(&self, path: &str) -> Result<(), String> {
        self.locked(path, |dir, name| match dir.remove_file(name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        })
    }

    /// See the WIT: one write to a control file that exists.
    pub fn write_control(&self, path: &str, text: &str) -> Result<(), String> {
        let place = self.place(path)?;
        let dir = Dir::open_ambient_dir(&place.folder, ambient_authority())
            .map_err(|e| format!("opening the folder {}: {e}", place.folder))?;
        let mut file =
            dir.open_with(&place.name, OpenOptions::new().write(true)).map_err(|e| format!("{path}: {e}"))?;
        file.write_all(text.as_bytes()).map_err(|e| format!("{path}: {e}"))
    }
}

impl wit::Host for FileCtx {
    fn add_lines(&mut self, path: String, lines: Vec<String>) -> Result<u32, String> {
        FileCtx::add_lines(self, &path, &lines)
    }
    fn remove_lines(&mut self, path: String, lines: Vec<String>) -> Result<u32, String> {
        FileCtx::remove_lines(self, &path, &lines)
    }
    fn read_lines(&mut self, path: String) -> Result<Vec<String>, String> {
        FileCtx::read_lines(self, &path)
    }
    fn write_lines(&mut self, path: String, lines: Vec<String>) -> Result<(), String> {
        FileCtx::write_lines(self, &path, &lines)
    }
    fn remove(&mut self, path: String) -> Result<(), String> {
        FileCtx::remove(self, &path)
    }
    fn write_control(&mut self, path: String, text: String) -> Result<(), String> {
        FileCtx::write_control(self, &path, &text)
    }
}

struct HasFile;
impl wasmtime::component::HasData for HasFile {
    type Data<'a> = &'a mut FileCtx;
}

/// Link `file` into `linker`, reaching each store's [`FileCtx`] through
/// `get`. Call it only for plugins whose grant names files.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut FileCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasFile>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(granted: &[String]) -> FileCtx {
        FileCtx::new("test".into(), granted.to_vec())
    }

    fn path(dir: &tempfile::TempDir, name: &str) -> String {
        dir.path().join(name).display().to_string()
    }

    #[test]
    fn lines_are_added_once_and_removed_keeping_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let deny = path(&dir, "hosts.deny");
        std::fs::write(&deny, "# the admin's\nsshd: 10.0.0.1\n").unwrap();
        std::fs::set_permissions(&deny, std::fs::Permissions::from_mode(0o640)).unwrap();
        let files = ctx(std::slice::from_ref(&deny));
        assert_eq!(files.add_lines(&deny, &["ALL: 192.0.2.7".into()]).unwrap(), 1);
        assert_eq!(files.add_lines(&deny, &["ALL: 192.0.2.7".into(), "ALL: 192.0.2.7".into()]).unwrap(), 0);
        assert_eq!(std::fs::read_to_string(&deny).unwrap(), "# the admin's\nsshd: 10.0.0.1\nALL: 192.0.2.7\n");
        assert_eq!(std::fs::metadata(&deny).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(files.remove_lines(&deny, &["ALL: 192.0.2.7".into()]).unwrap(), 1);
        assert_eq!(files.remove_lines(&deny, &["ALL: 192.0.2.7".into()]).unwrap(), 0);
        assert_eq!(files.read_lines(&deny).unwrap(), ["# the admin's", "sshd: 10.0.0.1"]);
        assert!(files.add_lines(&deny, &["ALL: 192.0.2.8\nsshd: ALL".into()]).is_err());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_granted_paths_are_reached() {
        let dir = tempfile::tempdir().unwrap();
        let folder = format!("{}/list.d/", dir.path().display());
        std::fs::create_dir(dir.path().join("list.d")).unwrap();
        std::fs::create_dir(dir.path().join("list.d/sub")).unwrap();
        let files = ctx(&[folder.clone(), path(&dir, "one")]);
        files.write_lines(&format!("{folder}192.0.2.7.auto"), &["all".into()]).unwrap();
        files.add_lines(&path(&dir, "one"), &["x".into()]).unwrap();
        for outside in [
            format!("{folder}../one2"),
            format!("{folder}sub/x"),
            format!("{folder}./x"),
            format!("{}/two", dir.path().display()),
            "relative".to_string(),
            folder.clone(),
            "/etc/passwd".to_string(),
        ] {
            let err = files.add_lines(&outside, &["x".into()]).unwrap_err();
            assert!(err.contains("granted") || err.contains("plain absolute"), "{outside}: {err}");
        }
        assert!(!dir.path().join("two").exists() && !dir.path().join("one2").exists());
    }

    #[test]
    fn no_symbolic_link_leads_out_of_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("passwd");
        std::fs::write(&target, "root:x:0:0\n").unwrap();
        std::fs::create_dir(dir.path().join("list.d")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("list.d/evil")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("deny")).unwrap();
        let folder = format!("{}/list.d/", dir.path().display());
        let files = ctx(&[folder.clone(), path(&dir, "deny")]);
        for link in [format!("{folder}evil"), path(&dir, "deny")] {
            assert!(files.add_lines(&link, &["hacked".into()]).is_err(), "{link}");
            assert!(files.read_lines(&link).is_err(), "{link}");
            assert!(files.write_control(&link, "hacked").is_err(), "{link}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root:x:0:0\n");
    }

    #[test]
    fn concurrent_writers_lose_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let deny = path(&dir, "hosts.deny");
        let files = Arc::new(ctx(std::slice::from_ref(&deny)));
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (files, deny) = (files.clone(), deny.clone());
                std::thread::spawn(move || {
                    for i in 0..40 {
                        files.add_lines(&deny, &[format!("ALL: 10.{w}.0.{i}")]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&deny).unwrap().lines().count(), 320);
    }

    #[test]
    fn grants_are_plain_absolute_paths() {
        assert!(check_grant("/etc/hosts.deny").is_ok());
        assert!(check_grant("/proc/net/xt_recent/").is_ok());
        for bad in ["etc/hosts.deny", "/etc/../passwd", "/etc//x", "/etc/./x", ""] {
            assert!(check_grant(bad).is_err(), "{bad}");
        }
    }
}
