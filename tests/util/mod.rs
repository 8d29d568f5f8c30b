//! Shared helpers: fixture components, runtimes, golden files, namespaces,
//! the binary and the daemon harness, tickets, and skips.

pub mod api_server;
pub mod daemon;
pub mod fail2ban;
pub mod journal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmban::capability::process::ProgramRunner;
use wasmban::plugin::registry::Origin;
use wasmban::plugin::{Manifest, Plugin, PluginError, PluginSource, Registry, Runtime, RuntimeOptions};
use wasmban::wit::types::Ticket;

/// Where host/build.rs left the components it built.
pub fn artifact(crate_name: &str) -> PathBuf {
    Path::new(env!("WASMBAN_PLUGIN_ARTIFACTS")).join(format!("{}.wasm", crate_name.replace('-', "_")))
}

pub fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions::default()).expect("runtime")
}

pub fn runtime_with(runner: Arc<dyn ProgramRunner>) -> Runtime {
    Runtime::new(RuntimeOptions { cache_dir: None, runner, ..RuntimeOptions::default() }).expect("runtime")
}

/// A fixture component with the given manifest text.
pub fn fixture_source(crate_name: &str, manifest: &str) -> PluginSource {
    let path = artifact(crate_name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PluginSource {
        name: crate_name.to_string(),
        bytes: bytes.into(),
        manifest: Manifest::parse(manifest).expect("fixture manifest"),
        origin: Origin::File(path),
        manifest_path: None,
    }
}

pub fn load_fixture(runtime: &Runtime, crate_name: &str, manifest: &str) -> Result<Plugin, PluginError> {
    runtime.load(&fixture_source(crate_name, manifest), "test manifest")
}

pub fn builtin(runtime: &Runtime, name: &str) -> Plugin {
    let source = Registry::new(None).resolve(name).expect("built-in");
    runtime.load(&source, "built-in").expect("built-in loads")
}

pub fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Compare `actual` with the golden file `tests/golden/NAME`; `BLESS=1`
/// rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden").join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {}; run with BLESS=1 to create it", path.display()));
    assert_eq!(expected, actual, "output differs from {}; run with BLESS=1 if the change is intended", path.display());
}

/// Whether `program` is installed (in the system's sbin/bin folders, where
/// the daemon looks for programs too).
pub fn has_program(program: &str) -> bool {
    wasmban::capability::process::resolve_program(program).is_some()
}

/// Why a root-only test cannot run here, if it cannot.
pub fn root_skip_reason(programs: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to create network namespaces".into());
    }
    for p in programs {
        if !has_program(p) {
            return Some(format!("needs `{p}` installed (.ci/run installs it)"));
        }
    }
    None
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A network namespace made for one test and deleted when dropped.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        let name = format!("wbtest-{tag}-{}", std::process::id());
        let status = std::process::Command::new("ip").args(["netns", "add", &name]).status().expect("run ip");
        assert!(status.success(), "ip netns add {name} failed");
        NetNs { name }
    }

    /// Run `f` on a thread that has entered this namespace: programs it
    /// starts (through capabilities too) act on the namespace's firewall,
    /// never on the machine's.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = std::fs::File::open(&path).expect("open netns");
                    use std::os::fd::AsRawFd;
                    // SAFETY: setns on a valid namespace fd affects only this thread.
                    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns failed: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("namespace thread")
        })
    }

    /// Run a command inside the namespace and return its stdout.
    pub fn exec(&self, argv: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec");
        assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl NetNs {
    /// The namespace's own /etc: each file or folder put here replaces the
    /// machine's for programs started with `ip netns exec` (its hosts file,
    /// ufw's rules), and goes with the namespace.
    pub fn etc(&self) -> std::path::PathBuf {
        let dir = std::path::Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).expect("create /etc/netns/NAME");
        dir
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&self.name));
    }
}

/// A ticket for `ip` in jail `sshd`, as the daemon hands actions.
pub fn ticket(ip: &str) -> Ticket {
    Ticket {
        jail: "sshd".into(),
        ip: ip.into(),
        failures: 5,
        matches: vec![],
        time: 1_700_000_000,
        bantime: 600,
        ban_count: 0,
        fields: vec![],
    }
}

/// What one run of the binary left.
pub struct Run {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output then standard error.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Run `wasmban ARGS` to its end.
pub fn wasmban(args: &[&str]) -> Run {
    wasmban_with_env(args, &[])
}

/// Run `wasmban ARGS` to its end with `env` added to its environment.
pub fn wasmban_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out =
        std::process::Command::new(daemon::BIN).args(args).envs(env.iter().copied()).output().expect("run wasmban");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Say why a test did not run (`SKIPPED: why`), and note it where
/// `scripts/test` counts skips apart from passes (`WASMBAN_SKIPS`).
pub fn record_skip(message: &str) {
    let line = format!("SKIPPED: {message}");
    eprintln!("{line}");
    println!("{line}");
    if let Some(path) = std::env::var_os("WASMBAN_SKIPS")
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        use std::io::Write;
        let _ = writeln!(f, "{message}");
    }
}

/// `SKIPPED: ...` with format arguments; see [`record_skip`].
macro_rules! skipped {
    ($($arg:tt)*) => {
        $crate::util::record_skip(&format!($($arg)*))
    };
}
pub(crate) use skipped;

/// A file of `../shared` (the harness, the benchmark generator). Missing:
/// `None` to skip, except under CI (`CI=true`), where `shared/` is always
/// laid beside the clone and a missing file is a failure.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared").join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing, and under CI ../shared must be there", path.display());
    }
    None
}

/// Grant `plugin` the shell in `plugin_dir` (a `plugin.d`), with its
/// commands allowed to write beneath `writes` only.
pub fn grant_shell(plugin_dir: &Path, plugin: &str, writes: &Path) {
    std::fs::create_dir_all(plugin_dir).unwrap();
    std::fs::write(
        plugin_dir.join(format!("{plugin}.toml")),
        format!("[grants]\nshell = true\nshell-writes = [\"{}/\"]\n", writes.display()),
    )
    .unwrap();
}
