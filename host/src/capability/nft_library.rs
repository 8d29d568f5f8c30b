//! nftables scripts run inside the daemon through libnftables, the
//! library the `nft` program is a front end of, when it is installed. The
//! nftables action hands the firewall capability one script per batch of
//! bans, as `nft -f -` with the script on stdin; the library parses the
//! same script and answers with the same messages, and a ban then costs a
//! netlink round trip instead of starting a program (2 to 4 ms on these
//! machines, most of a single ban's latency). Without the library the
//! program runs, as before.
//!
//! The library is loaded with `dlopen`, so the binary does not depend on
//! it. Each thread keeps a context of its own (its netlink socket and its
//! cache of the ruleset), and calls are taken one at a time: libnftables
//! does not promise that contexts on several threads are independent.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::capability::process::ProgramOutput;

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxSet = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxGet = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunFromBuffer = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The functions used, from `libnftables.so.1` (nftables' `libnftables.h`).
struct Library {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxSet,
    buffer_error: CtxSet,
    output: CtxGet,
    error: CtxGet,
    run_from_buffer: RunFromBuffer,
}

fn library() -> Option<&'static Library> {
    static LIBRARY: OnceLock<Option<Library>> = OnceLock::new();
    LIBRARY.get_or_init(load).as_ref()
}

fn load() -> Option<Library> {
    // SAFETY: dlopen and dlsym are given NUL-terminated names; each symbol
    // found is one of libnftables' exported functions, cast to its C
    // signature (stable since nftables 0.9). The library stays loaded for
    // the life of the process (never dlclose'd).
    unsafe {
        let handle = libc::dlopen(c"libnftables.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return None;
        }
        let symbol = |name: &CStr| {
            let found = libc::dlsym(handle, name.as_ptr());
            (!found.is_null()).then_some(found)
        };
        Some(Library {
            ctx_new: std::mem::transmute::<*mut c_void, CtxNew>(symbol(c"nft_ctx_new")?),
            ctx_free: std::mem::transmute::<*mut c_void, CtxFree>(symbol(c"nft_ctx_free")?),
            buffer_output: std::mem::transmute::<*mut c_void, CtxSet>(symbol(c"nft_ctx_buffer_output")?),
            buffer_error: std::mem::transmute::<*mut c_void, CtxSet>(symbol(c"nft_ctx_buffer_error")?),
            output: std::mem::transmute::<*mut c_void, CtxGet>(symbol(c"nft_ctx_get_output_buffer")?),
            error: std::mem::transmute::<*mut c_void, CtxGet>(symbol(c"nft_ctx_get_error_buffer")?),
            run_from_buffer: std::mem::transmute::<*mut c_void, RunFromBuffer>(symbol(c"nft_run_cmd_from_buffer")?),
        })
    }
}

/// A thread's context.
struct Context {
    library: &'static Library,
    raw: *mut c_void,
}

impl Drop for Context {
    fn drop(&mut self) {
        let _one_at_a_time = CALLS.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: `raw` came from nft_ctx_new and is freed once, here.
        unsafe { (self.library.ctx_free)(self.raw) }
    }
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

static CALLS: Mutex<()> = Mutex::new(());

/// Whether nftables scripts run through the library (it is installed).
pub fn available() -> bool {
    library().is_some()
}

/// Run `script` as `nft -f -` would with it on stdin: status 0 or 1, and
/// what it would print. None when the library is not installed (or the
/// script holds a NUL byte, which only the program can refuse properly).
pub fn run_script(script: &str) -> Option<ProgramOutput> {
    let library = library()?;
    let script = CString::new(script).ok()?;
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        let _one_at_a_time = CALLS.lock().unwrap_or_else(PoisonError::into_inner);
        if context.is_none() {
            // SAFETY: nft_ctx_new takes flags (0: NFT_CTX_DEFAULT) and
            // returns a context or NULL; buffering its output and errors
            // makes the library keep them for the get calls below rather
            // than print them.
            let raw = unsafe { (library.ctx_new)(0) };
            if raw.is_null() {
                return None;
            }
            unsafe {
                (library.buffer_output)(raw);
                (library.buffer_error)(raw);
            }
            *context = Some(Context { library, raw });
        }
        let raw = context.as_ref()?.raw;
        let text = |buffer: *const c_char| {
            if buffer.is_null() {
                String::new()
            } else {
                // SAFETY: the library returns a NUL-terminated buffer it
                // owns, valid until the next call on this context.
                unsafe { CStr::from_ptr(buffer) }.to_string_lossy().into_owned()
            }
        };
        // SAFETY: `raw` is this thread's live context and `script` a
        // NUL-terminated string that outlives the call.
        let status = unsafe { (library.run_from_buffer)(raw, script.as_ptr()) };
        let stdout = text(unsafe { (library.output)(raw) });
        let stderr = text(unsafe { (library.error)(raw) });
        Some(ProgramOutput { status: if status == 0 { 0 } else { 1 }, stdout, stderr })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `check` on a thread of a network namespace of its own (its
    /// firewall is the namespace's); false when that cannot be made.
    fn in_own_network(check: impl FnOnce() + Send + 'static) -> bool {
        std::thread::spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) moves only this thread, which
            // ends with the test.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return false;
            }
            check();
            true
        })
        .join()
        .expect("the check passes")
    }

    #[test]
    fn a_script_runs_as_nft_dash_f_would_run_it() {
        if !available() {
            println!("SKIPPED: libnftables.so.1 is not installed");
            return;
        }
        let ran = in_own_network(|| {
            let made = run_script(
                "add table inet probe\nadd set inet probe s { type ipv4_addr; }\nadd element inet probe s { 192.0.2.7 }\n",
            )
            .unwrap();
            assert_eq!((made.status, made.stderr.as_str()), (0, ""), "{made:?}");
            let listed = run_script("list set inet probe s\n").unwrap();
            assert_eq!(listed.status, 0, "{listed:?}");
            assert!(listed.stdout.contains("192.0.2.7"), "{listed:?}");
            // An error is status 1 with nft's message, as the program gives.
            let failed = run_script("add element inet nosuch s { 192.0.2.8 }\n").unwrap();
            assert_eq!(failed.status, 1, "{failed:?}");
            assert!(failed.stderr.contains("Error"), "{failed:?}");
            assert!(!run_script("list set inet probe s\n").unwrap().stdout.contains("192.0.2.8"));
        });
        if !ran {
            println!("SKIPPED: no network namespace of its own could be made (run as root)");
        }
    }
}
