//! The daemon as admins run it, for tests: a configuration tree, log
//! lines, and `wasmban server` started, asked and stopped through its
//! control socket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wasmban");

/// A civil UTC timestamp, ISO 8601, `offset` seconds from now.
pub(crate) fn iso(offset: i64) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + offset;
    let rem = secs.rem_euclid(86400);
    let (year, month, day) = wasmban::timezone::civil_from_days(secs.div_euclid(86400));
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00", rem / 3600, rem / 60 % 60, rem % 60)
}

pub(crate) fn failure(ip: &str) -> String {
    format!("{} web sshd[7]: Failed password for root from {ip} port 22 ssh2\n", iso(0))
}

pub(crate) fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A configuration tree with one jail, `sshd`, on `root/auth.log`, using
/// the shipped sshd filter; `extra` goes into jail.local.
pub(crate) fn tree(root: &Path, extra: &str) {
    let conf = root.join("conf");
    std::fs::create_dir_all(conf.join("filter.d")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d/sshd.conf");
    std::fs::copy(shipped, conf.join("filter.d/sshd.conf")).unwrap();
    // Where journald runs, a jail whose log is not there yet would read
    // the journal instead (fail2ban 1.1's switch); tests want their files.
    std::fs::write(
        conf.join("jail.conf"),
        format!(
            "[DEFAULT]\nignoreself = false\naction =\nfindtime = 1h\nbantime = 1h\nmaxretry = 1\n\
             systemd_if_nologs = false\n\
             [sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\n",
            root.join("auth.log").display()
        ),
    )
    .unwrap();
    std::fs::write(conf.join("jail.local"), extra).unwrap();
}

/// The tree of [`tree`] plus a jail `hostile` on `root/hostile.log`, run by
/// the hostile-filter fixture with these `[limits]` lines; the log's path.
pub(crate) fn hostile_tree(root: &Path, limits: &str) -> PathBuf {
    let hostile_log = root.join("hostile.log");
    tree(
        root,
        &format!(
            "[hostile]\nenabled = true\nfilter = hostile\nlogpath = {}\nbackend = polling\n",
            hostile_log.display()
        ),
    );
    std::fs::write(root.join("conf/filter.d/hostile.conf"), "[Definition]\nplugin = hostile\n").unwrap();
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/hostile.toml"),
        format!("file = {:?}\n[limits]\n{limits}", crate::util::artifact("hostile-filter")),
    )
    .unwrap();
    append(&hostile_log, "");
    hostile_log
}

/// The shipped action.d files, into the tree made by [`tree`].
pub(crate) fn copy_shipped_actions(root: &Path) {
    copy_actions(root, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/action.d"));
}

/// fail2ban's stock action.d files (Debian's package), unchanged, into the
/// tree made by [`tree`].
pub(crate) fn copy_fail2ban_actions(root: &Path) {
    copy_actions(root, Path::new("/etc/fail2ban/action.d"));
}

fn copy_actions(root: &Path, from: &Path) {
    std::fs::create_dir_all(root.join("conf/action.d")).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, root.join("conf/action.d").join(f.file_name().unwrap())).unwrap();
        }
    }
}

pub(crate) struct Daemon {
    child: Option<Child>,
    root: PathBuf,
}

impl Daemon {
    pub(crate) fn start(root: &Path) -> Daemon {
        Daemon::start_ready(root, None)
    }

    /// Start the daemon, inside network namespace `netns` when given (its
    /// firewall actions then act on that namespace only), and wait until
    /// it answers.
    pub(crate) fn start_in(root: &Path, netns: Option<&str>) -> Daemon {
        Daemon::start_with(root, netns, &[])
    }

    /// [`Daemon::start_in`] with more environment variables.
    pub(crate) fn start_with(root: &Path, netns: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        match netns {
            Some(ns) => Daemon::start_under(root, &["ip", "netns", "exec", ns], env),
            None => Daemon::start_under(root, &[], env),
        }
    }

    /// Start the daemon as the last argument of `wrapper` (which must run
    /// it in place, by exec, so that its pid is the daemon's), and wait
    /// until it answers.
    pub(crate) fn start_under(root: &Path, wrapper: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(root.join("daemon.log")).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["-c", root.join("conf").to_str().unwrap()])
            .args(["-s", root.join("sock").to_str().unwrap()])
            .args(["--state-dir", root.join("state").to_str().unwrap()])
            .args(["server", "--poll-interval", "0.1"])
            .env("WASMBAN_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child: Some(child), root: root.to_path_buf() };
        d.wait_for("the daemon to answer", || d.client(&["ping"]).0);
        d
    }

    /// Start the daemon and wait until its sshd jail runs.
    pub(crate) fn start_ready(root: &Path, netns: Option<&str>) -> Daemon {
        let d = Daemon::start_in(root, netns);
        d.wait_for("the jail to start", || d.status().is_some_and(|s| s["running"] == true));
        d
    }

    pub(crate) fn client(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(BIN).args(["-s", self.root.join("sock").to_str().unwrap()]).args(args).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    pub(crate) fn status(&self) -> Option<Value> {
        let (ok, out) = self.client(&["status", "sshd", "--json"]);
        ok.then(|| serde_json::from_str(&out).unwrap())
    }

    pub(crate) fn banned(&self) -> Vec<(String, u32)> {
        let (ok, out) = self.client(&["banned", "--json"]);
        assert!(ok, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut all: Vec<(String, u32)> = v["sshd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["ip"].as_str().unwrap().to_string(), b["bancount"].as_u64().unwrap() as u32))
            .collect();
        all.sort();
        all
    }

    /// Wait (polling; the daemon works asynchronously) for `done`.
    pub(crate) fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    /// The daemon's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub(crate) fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: kill on the pid of the child this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    pub(crate) fn wait(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the daemon did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
