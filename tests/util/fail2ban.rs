//! fail2ban's own daemon, for tests that compare with it or take over
//! what it wrote: a configuration tree copied from Debian's /etc/fail2ban
//! with the test's jails, and fail2ban-server started on it (foreground,
//! on a socket, log and database of the test's own) and stopped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why fail2ban cannot be run here, if it cannot.
pub fn missing() -> Option<&'static str> {
    (!Path::new("/etc/fail2ban/filter.d/sshd.conf").is_file() || !crate::util::has_program("fail2ban-server"))
        .then_some("fail2ban is not installed (Debian package fail2ban)")
}

/// A running fail2ban-server.
pub struct Fail2ban {
    child: Option<Child>,
    /// Its control socket.
    pub sock: PathBuf,
    /// Its database.
    pub db: PathBuf,
    /// Its log.
    pub log: PathBuf,
    /// Its configuration directory and pid file, to start it again.
    conf: PathBuf,
    pid: PathBuf,
}

impl Fail2ban {
    /// Copy Debian's /etc/fail2ban to `root/f2b` (without jail.d), with
    /// `jail_local` as jail.local, and start fail2ban-server on it; waits
    /// until it answers.
    pub fn start(root: &Path, jail_local: &str) -> Fail2ban {
        Fail2ban::start_with(root, jail_local, |_| {})
    }

    /// [`Fail2ban::start`], with `prepare` given the configuration
    /// directory before the server starts (to add action files).
    pub fn start_with(root: &Path, jail_local: &str, prepare: impl FnOnce(&Path)) -> Fail2ban {
        let conf = root.join("f2b");
        let copied = Command::new("cp").args(["-r", "/etc/fail2ban", conf.to_str().unwrap()]).status().unwrap();
        assert!(copied.success());
        let _ = std::fs::remove_dir_all(conf.join("jail.d"));
        std::fs::create_dir_all(conf.join("jail.d")).unwrap();
        let (sock, db, log, pid) =
            (root.join("f2b.sock"), root.join("f2b.sqlite3"), root.join("f2b.log"), root.join("f2b.pid"));
        std::fs::write(
            conf.join("fail2ban.local"),
            format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {}\nsocket = {}\npidfile = {}\ndbfile = {}\n",
                log.display(),
                sock.display(),
                pid.display(),
                db.display()
            ),
        )
        .unwrap();
        std::fs::write(conf.join("jail.local"), jail_local).unwrap();
        prepare(&conf);
        let mut f = Fail2ban { child: None, sock, db, log, conf, pid };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        let child = Command::new("fail2ban-server")
            .args(["-f", "-x", "-c", self.conf.to_str().unwrap(), "-s", self.sock.to_str().unwrap()])
            .args(["-p", self.pid.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_for("fail2ban-server to answer", || self.client(&["ping"]).is_some());
    }

    /// Stop the server and start it again on the same configuration and
    /// database (bans in force are restored).
    pub fn restart(&mut self) {
        self.stop_server();
        self.spawn();
    }

    /// `fail2ban-client -s SOCK ARGS`: its standard output when it
    /// succeeded.
    pub fn client(&self, args: &[&str]) -> Option<String> {
        // The configuration too: `reload` reads it on the client's side.
        let out = Command::new("fail2ban-client")
            .arg("-c")
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A counter of `fail2ban-client status JAIL` (`Total banned`, ...).
    pub fn count(&self, jail: &str, field: &str) -> Option<u64> {
        let text = self.client(&["status", jail])?;
        text.lines().find(|l| l.contains(field)).and_then(|l| l.rsplit(['\t', ' ']).next()?.trim().parse().ok())
    }

    /// Wait for `done`, showing fail2ban's log when it never comes.
    pub fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; fail2ban's log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `fail2ban-client stop`, and wait for the server to exit.
    pub fn stop(mut self) {
        self.stop_server();
    }

    fn stop_server(&mut self) {
        assert!(self.client(&["stop"]).is_some());
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(60), "fail2ban-server did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
