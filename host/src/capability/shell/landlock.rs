//! The few Landlock calls the shell's confinement needs (linux/landlock.h),
//! made directly: the ruleset is built in the daemon, and the child only
//! calls `landlock_restrict_self` between fork and exec, where nothing may
//! allocate or take a lock.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

const FS_WRITE_FILE: u64 = 1 << 1;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2: links and renames across folders.
const FS_REFER: u64 = 1 << 13;
/// ABI 3: truncate(2) and O_TRUNC.
const FS_TRUNCATE: u64 = 1 << 14;
/// The rights that apply to a file (not a folder) in a path rule.
const FS_FILE_WRITES: u64 = FS_WRITE_FILE | FS_TRUNCATE;

/// ABI 4: TCP bind and connect.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI this kernel offers, if any.
pub fn abi_version() -> Option<u32> {
    // SAFETY: the version query takes no attribute (NULL, size 0).
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).ok().filter(|v| *v >= 1)
}

/// A Landlock ruleset that denies every write to the file system except
/// beneath `writable` (and to `/dev/null`), and, unless `network`, every
/// TCP bind and connect. Reading and executing stay allowed everywhere.
/// Paths of `writable` that do not exist are returned, not fatal: nothing
/// can be written there anyway.
pub fn write_ruleset(abi: u32, writable: &[String], network: bool) -> io::Result<(OwnedFd, Vec<String>)> {
    let mut handled_fs = FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    if abi >= 2 {
        handled_fs |= FS_REFER;
    }
    if abi >= 3 {
        handled_fs |= FS_TRUNCATE;
    }
    let handled_net = if !network && abi >= 4 { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 };
    let attr = RulesetAttr { handled_access_fs: handled_fs, handled_access_net: handled_net };
    // Older kernels reject a struct longer than they know, unless its
    // tail is zero; the network field is zero below ABI 4, but say the
    // size they know all the same.
    let size = if abi >= 4 { std::mem::size_of::<RulesetAttr>() } else { std::mem::size_of::<u64>() };
    // SAFETY: `attr` is a valid landlock_ruleset_attr prefix of `size` bytes.
    let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, size, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this descriptor.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };

    let mut missing = Vec::new();
    add_path_rule(&ruleset, Path::new("/dev/null"), handled_fs)?;
    for path in writable {
        match add_path_rule(&ruleset, Path::new(path), handled_fs) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(path.clone()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
        }
    }
    Ok((ruleset, missing))
}

/// Allow the write rights of `handled` beneath `path` (only the file ones
/// when it is a file, as the kernel requires).
fn add_path_rule(ruleset: &OwnedFd, path: &Path, handled: u64) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a NUL-terminated path; O_PATH opens nothing's contents.
    let raw = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just opened.
    let parent = unsafe { OwnedFd::from_raw_fd(raw) };
    let is_dir = std::fs::metadata(path)?.is_dir();
    let allowed = if is_dir { handled } else { handled & FS_FILE_WRITES };
    let rule = PathBeneathAttr { allowed_access: allowed, parent_fd: parent.as_raw_fd() };
    // SAFETY: a valid landlock_path_beneath_attr for a ruleset we own.
    let done = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        )
    };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Enforce `ruleset` on the calling thread, for good. Async-signal-safe:
/// for use between fork and exec.
pub fn restrict_self(ruleset: RawFd) -> io::Result<()> {
    // SAFETY: a plain system call on a descriptor the caller keeps open.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
