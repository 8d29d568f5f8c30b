//! What the shell grant's commands may touch: the file system read-only
//! except the paths of `shell-writes`, no network unless `shell-network`,
//! and no new privileges (set-uid programs do not gain theirs).
//!
//! Writes are held back by Landlock when the kernel offers it, otherwise by
//! a private mount namespace whose mounts are read-only except binds of the
//! granted paths. The network is held back, in both cases, by running the
//! command in an empty network namespace made once per daemon: that also
//! covers UDP and raw sockets, which Landlock does not see. The price is
//! that a firewall command run through the shell changes that empty
//! namespace's firewall, not the host's: such commands need
//! `shell-network = true` (the capability warns when it sees one without).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use super::landlock;

/// How writes are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteGuard {
    /// A Landlock ruleset (the kernel's ABI version).
    Landlock(u32),
    /// A private mount namespace, read-only but for binds of the granted
    /// paths.
    MountNamespace,
}

/// The confinement of one plugin's shell commands, built once and applied
/// to every command it runs.
pub struct Confinement {
    guard: WriteGuard,
    writable: Vec<String>,
    network: bool,
    inner: Arc<Prepared>,
}

/// Everything the child needs, made before fork, so that the code between
/// fork and exec only makes system calls.
struct Prepared {
    ruleset: Option<OwnedFd>,
    writable: Vec<CString>,
    empty_network: Option<Arc<OwnedFd>>,
}

impl std::fmt::Debug for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confinement")
            .field("guard", &self.guard)
            .field("writable", &self.writable)
            .field("network", &self.network)
            .finish()
    }
}

impl Confinement {
    /// The confinement for `writable` paths and `network`, with the best
    /// guard this kernel offers. Also returns the paths that do not exist.
    pub fn build(writable: &[String], network: bool) -> io::Result<(Confinement, Vec<String>)> {
        let guard = landlock::abi_version().map(WriteGuard::Landlock).unwrap_or(WriteGuard::MountNamespace);
        Confinement::build_with(guard, writable, network)
    }

    /// As [`Confinement::build`], with the guard chosen by the caller (the
    /// tests run both).
    pub fn build_with(guard: WriteGuard, writable: &[String], network: bool) -> io::Result<(Confinement, Vec<String>)> {
        let (ruleset, missing) = match guard {
            WriteGuard::Landlock(abi) => {
                let (ruleset, missing) = landlock::write_ruleset(abi, writable, network)?;
                (Some(ruleset), missing)
            }
            WriteGuard::MountNamespace => {
                let missing = writable.iter().filter(|p| std::fs::symlink_metadata(p).is_err()).cloned().collect();
                (None, missing)
            }
        };
        let kept = match guard {
            WriteGuard::MountNamespace => writable.iter().filter(|p| !missing.contains(*p)).collect(),
            WriteGuard::Landlock(_) => Vec::new(),
        };
        let writable_c = kept
            .into_iter()
            .map(|p| CString::new(std::path::Path::new(p).as_os_str().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a shell-writes path has a NUL byte"))?;
        let empty_network = if network { None } else { Some(empty_network_namespace()?) };
        let inner = Arc::new(Prepared { ruleset, writable: writable_c, empty_network });
        Ok((Confinement { guard, writable: writable.to_vec(), network, inner }, missing))
    }

    /// How writes are held back.
    pub fn guard(&self) -> WriteGuard {
        self.guard
    }

    /// Whether commands may use the network.
    pub fn network(&self) -> bool {
        self.network
    }

    /// The paths commands may write beneath.
    pub fn writable(&self) -> &[String] {
        &self.writable
    }

    /// Make `command` start confined.
    pub fn apply_to(&self, command: &mut Command) {
        let prepared = self.inner.clone();
        // SAFETY: the hook makes only async-signal-safe system calls on
        // data prepared before fork.
        unsafe {
            command.pre_exec(move || prepared.enter());
        }
    }
}

impl Prepared {
    /// Runs in the child between fork and exec.
    fn enter(&self) -> io::Result<()> {
        // SAFETY: each call below is a plain system call on prepared data.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(netns) = &self.empty_network
                && libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        match &self.ruleset {
            Some(ruleset) => landlock::restrict_self(ruleset.as_raw_fd()),
            None => self.read_only_mounts(),
        }
    }

    /// A private mount namespace in which every mount is read-only except
    /// binds of the writable paths.
    fn read_only_mounts(&self) -> io::Result<()> {
        const ROOT: &std::ffi::CStr = c"/";
        // SAFETY: plain system calls with NUL-terminated prepared paths.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Nothing done here may reach the host's mounts.
            if libc::mount(
                std::ptr::null(),
                ROOT.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            for path in &self.writable {
                let flags = libc::MS_BIND | libc::MS_REC;
                if libc::mount(path.as_ptr(), path.as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            set_mount_attributes(ROOT, libc::AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0)?;
            for path in &self.writable {
                set_mount_attributes(path, 0, 0, MOUNT_ATTR_RDONLY)?;
            }
        }
        Ok(())
    }
}

const MOUNT_ATTR_RDONLY: u64 = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) (Linux 5.12) on the mount at `path`.
fn set_mount_attributes(path: &std::ffi::CStr, flags: libc::c_int, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation: 0, userns_fd: 0 };
    // SAFETY: a valid mount_attr and a NUL-terminated path.
    let done = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One network namespace with nothing in it (its loopback is down), made
/// on first use and kept for the daemon's life, so that a command joins it
/// instead of paying for a namespace of its own.
fn empty_network_namespace() -> io::Result<Arc<OwnedFd>> {
    static EMPTY: OnceLock<Result<Arc<OwnedFd>, String>> = OnceLock::new();
    EMPTY
        .get_or_init(|| {
            // unshare(CLONE_NEWNET) moves only the calling thread: do it on
            // a thread of its own, which ends right after.
            std::thread::spawn(|| -> Result<Arc<OwnedFd>, String> {
                // SAFETY: unshare of this short-lived thread only.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error().to_string());
                }
                let path = c"/proc/thread-self/ns/net";
                // SAFETY: a NUL-terminated path.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(io::Error::last_os_error().to_string());
                }
                // SAFETY: the descriptor was just opened.
                Ok(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
            })
            .join()
            .unwrap_or_else(|_| Err("the thread making it panicked".to_string()))
        })
        .clone()
        .map_err(|e| io::Error::other(format!("could not make an empty network namespace for shell commands: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::process::{ProgramRunner, SystemRunner};
    use std::time::Duration;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn guards() -> Vec<WriteGuard> {
        let mut guards = vec![WriteGuard::MountNamespace];
        match landlock::abi_version() {
            Some(abi) => guards.push(WriteGuard::Landlock(abi)),
            None => println!("SKIPPED: the Landlock half: this kernel offers no Landlock"),
        }
        guards
    }

    fn sh(confinement: &Confinement, script: &str) -> (i32, String) {
        let out = SystemRunner
            .run_confined(
                std::path::Path::new("/bin/bash"),
                &["-c".into(), script.into()],
                None,
                Duration::from_secs(10),
                confinement,
            )
            .unwrap();
        (out.status, out.stderr)
    }

    #[test]
    fn commands_write_only_beneath_the_granted_paths_and_gain_no_privileges() {
        if !is_root() {
            println!("SKIPPED: confining shell commands needs root (namespaces)");
            return;
        }
        let granted = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let file = other.path().join("granted-file");
        std::fs::write(&file, "").unwrap();
        for guard in guards() {
            std::fs::write(&file, "").unwrap();
            let writes = [granted.path().display().to_string(), file.display().to_string()];
            let (confinement, missing) = Confinement::build_with(guard, &writes, false).unwrap();
            assert!(missing.is_empty(), "{missing:?}");
            let (status, stderr) = sh(
                &confinement,
                &format!(
                    "set -e; echo in > {g}/a; mkdir {g}/sub; echo deeper > {g}/sub/b; echo line >> {f}; \
                     echo gone > /dev/null; grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status",
                    g = granted.path().display(),
                    f = file.display()
                ),
            );
            assert_eq!(status, 0, "{guard:?}: {stderr}");
            assert_eq!(std::fs::read_to_string(granted.path().join("sub/b")).unwrap(), "deeper\n");
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "line\n");
            std::fs::remove_dir_all(granted.path().join("sub")).unwrap();

            for outside in [
                format!("echo x > {}/outside", other.path().display()),
                format!("rm {}", file.display()),
                format!("mv {}/a {}/moved", granted.path().display(), other.path().display()),
                "echo x > /etc/wasmban-confinement-test".to_string(),
            ] {
                let (status, stderr) = sh(&confinement, &outside);
                assert_ne!(status, 0, "{guard:?}: `{outside}` was allowed");
                assert!(
                    stderr.contains("Permission denied")
                        || stderr.contains("Read-only file system")
                        || stderr.contains("Operation not permitted")
                        || stderr.contains("Invalid cross-device link"),
                    "{guard:?}: {stderr}"
                );
            }
            assert!(!other.path().join("outside").exists() && file.exists());
            assert!(!std::path::Path::new("/etc/wasmban-confinement-test").exists());
        }
    }

    #[test]
    fn commands_reach_the_network_only_when_granted() {
        if !is_root() {
            println!("SKIPPED: confining shell commands needs root (namespaces)");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo hello >&3");
        for guard in guards() {
            let (refused, _) = Confinement::build_with(guard, &[], false).unwrap();
            let (status, stderr) = sh(&refused, &connect);
            assert_ne!(status, 0, "{guard:?}: connected without shell-network");
            assert!(
                stderr.contains("unreachable") || stderr.contains("refused") || stderr.contains("Permission denied"),
                "{guard:?}: {stderr}"
            );
            assert!(listener.accept().is_err(), "{guard:?}: the listener saw a connection");

            let (allowed, _) = Confinement::build_with(guard, &[], true).unwrap();
            let (status, stderr) = sh(&allowed, &connect);
            assert_eq!(status, 0, "{guard:?}: {stderr}");
            assert!(listener.accept().is_ok(), "{guard:?}: the listener saw nothing");
        }
    }

    #[test]
    fn missing_paths_are_reported_not_fatal() {
        let guard = landlock::abi_version().map(WriteGuard::Landlock).unwrap_or(WriteGuard::MountNamespace);
        let gone = "/nonexistent/wasmban/shell-writes".to_string();
        let (_, missing) = Confinement::build_with(guard, std::slice::from_ref(&gone), true).unwrap();
        assert_eq!(missing, [gone]);
    }
}
