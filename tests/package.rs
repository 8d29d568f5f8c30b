//! The Debian package, built by `scripts/package` from the binary under
//! test: its contents and control data, lintian (inside the script), and
//! an install into a throwaway root with dpkg, where the installed
//! `wasmban check` passes, the installed daemon starts on the shipped
//! configuration inside a network namespace, answers through the
//! `fail2ban-client` link and stops cleanly, and a purge leaves nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::daemon::BIN;
use crate::util::{NetNs, has_program, root_skip_reason, skipped};

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Build both packages of the binary under test into `out`.
fn build(out: &Path) -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/package");
    let (ok, text) = run(script.to_str().unwrap(), &["--binary", BIN, "--out", out.to_str().unwrap()]);
    assert!(ok, "scripts/package failed:\n{text}");
    if has_program("lintian") {
        assert!(text.contains("lintian passed"), "{text}");
    }
    let find = |prefix: &str| {
        std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}*.deb in {}", out.display()))
    };
    (find("wasmban_"), find("wasmban-fail2ban-client_"))
}

#[test]
fn the_package_holds_what_an_admin_needs_and_installs_starts_and_purges_cleanly() {
    if !has_program("dpkg-deb") || !has_program("dpkg-shlibdeps") {
        return skipped!("dpkg-deb and dpkg-shlibdeps are not installed (Debian package dpkg-dev)");
    }
    let dir = tempfile::tempdir().unwrap();
    let (main_deb, link_deb) = build(&dir.path().join("out"));
    let main = main_deb.to_str().unwrap();
    // The same commit packs to the same bytes.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/package");
    let again = dir.path().join("again");
    let (ok, text) =
        run(script.to_str().unwrap(), &["--binary", BIN, "--out", again.to_str().unwrap(), "--no-lintian"]);
    assert!(ok, "{text}");
    for deb in [&main_deb, &link_deb] {
        let twin = again.join(deb.file_name().unwrap());
        assert!(
            std::fs::read(deb).unwrap() == std::fs::read(&twin).unwrap(),
            "{} differs between two builds",
            twin.display()
        );
    }

    let (ok, listing) = run("dpkg-deb", &["-c", main]);
    assert!(ok, "{listing}");
    for path in [
        "./usr/bin/wasmban",
        "./etc/wasmban/jail.conf",
        "./etc/wasmban/wasmban.conf",
        "./etc/wasmban/filter.d/sshd.conf",
        "./etc/logrotate.d/wasmban",
        "./lib/systemd/system/wasmban.service",
        "./usr/share/man/man1/wasmban.1.gz",
        "./usr/share/man/man1/wasmban-server.1.gz",
        "./usr/share/bash-completion/completions/wasmban",
        "./usr/share/zsh/vendor-completions/_wasmban",
        "./usr/share/fish/vendor_completions.d/wasmban.fish",
        "./usr/share/doc/wasmban/copyright",
        "./usr/share/doc/wasmban/changelog.Debian.gz",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(path)), "no {path} in:\n{listing}");
    }
    assert!(listing.lines().all(|l| l.contains("root/root")), "{listing}");
    let (_, control) = run("dpkg-deb", &["-f", main]);
    assert!(control.contains("Package: wasmban") && control.contains("Depends: libc6"), "{control}");
    let ctrl = dir.path().join("ctrl");
    let (ok, text) = run("dpkg-deb", &["-e", main, ctrl.to_str().unwrap()]);
    assert!(ok, "{text}");
    let conffiles = std::fs::read_to_string(ctrl.join("conffiles")).unwrap();
    for f in ["/etc/wasmban/jail.conf", "/etc/wasmban/wasmban.conf", "/etc/logrotate.d/wasmban"] {
        assert!(conffiles.lines().any(|l| l == f), "{f} is not a conffile:\n{conffiles}");
    }
    // The unit runs the packaged binary, as Type=notify.
    let (_, unit) =
        run("sh", &["-c", &format!("dpkg-deb --fsys-tarfile {main} | tar -xO ./lib/systemd/system/wasmban.service")]);
    assert!(unit.contains("ExecStart=/usr/bin/wasmban -c /etc/wasmban server"), "{unit}");
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="), "{unit}");

    if let Some(why) = root_skip_reason(&["dpkg", "iptables"]) {
        return skipped!("package install: {why}");
    }
    // A throwaway root with an empty dpkg database; maintainer scripts run
    // outside a chroot with DPKG_ROOT set, and leave this machine's
    // services alone.
    let root = dir.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let root_arg = format!("--root={}", root.display());
    let (ok, text) = run(
        "dpkg",
        &[&root_arg, "--force-depends", "--force-script-chrootless", "-i", main, link_deb.to_str().unwrap()],
    );
    assert!(ok, "dpkg -i into {}:\n{text}", root.display());
    let (ok, text) = run("dpkg", &[&root_arg, "-s", "wasmban"]);
    assert!(ok && text.contains("Status: install ok installed"), "{text}");

    let installed = root.join("usr/bin/wasmban");
    let conf = root.join("etc/wasmban");
    // systemd reads the installed unit without a complaint (pointed at the
    // throwaway root's binary, which is where /usr/bin is here).
    if has_program("systemd-analyze") {
        let unit = std::fs::read_to_string(root.join("lib/systemd/system/wasmban.service")).unwrap();
        let copy = dir.path().join("wasmban.service");
        std::fs::write(&copy, unit.replace("/usr/bin/wasmban", installed.to_str().unwrap())).unwrap();
        let (ok, text) = run("systemd-analyze", &["verify", copy.to_str().unwrap()]);
        assert!(ok && text.trim().is_empty(), "systemd-analyze verify: {text}");
    }
    let (ok, text) = run(installed.to_str().unwrap(), &["-c", conf.to_str().unwrap(), "check"]);
    assert!(ok, "the installed wasmban check:\n{text}");
    let (ok, text) = run(installed.to_str().unwrap(), &["--version"]);
    assert!(ok && text.starts_with("wasmban "), "{text}");

    // The installed daemon on the shipped configuration (its log kept in
    // the throwaway root, as an admin's wasmban.local would say), in a
    // namespace: the sshd jail's iptables action acts there only.
    let log = root.join("var/log/wasmban.log");
    let pidfile = root.join("run/wasmban.pid");
    std::fs::write(
        conf.join("wasmban.local"),
        format!("[Definition]\nlogtarget = {}\npidfile = {}\n", log.display(), pidfile.display()),
    )
    .unwrap();
    let ns = NetNs::new("pkg");
    let socket = root.join("run/wasmban.sock");
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", &ns.name, installed.to_str().unwrap()])
        .args(["-c", conf.to_str().unwrap(), "-s", socket.to_str().unwrap()])
        .args(["--state-dir", root.join("var/lib/wasmban").to_str().unwrap(), "server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = root.join("usr/bin/fail2ban-client");
    let ask = |args: &[&str]| {
        let mut all = vec!["-s", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        run(client.to_str().unwrap(), &all)
    };
    let start = Instant::now();
    while !ask(&["status", "sshd", "--json"]).1.contains("\"running\": true") {
        if start.elapsed() > Duration::from_secs(120) || daemon.try_wait().unwrap().is_some() {
            let _ = daemon.kill();
            panic!(
                "the installed daemon did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ns.exec(&["iptables", "-S"]).contains("f2b-sshd"), "the sshd jail's chain is not in the namespace");
    assert!(pidfile.exists(), "no pidfile while the daemon runs");
    let (ok, text) = ask(&["stop"]);
    assert!(ok, "{text}");
    let status = daemon.wait().unwrap();
    assert!(status.success(), "the daemon exited with {status}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("wasmban stopped") && !logged.contains("ERROR"), "{logged}");
    assert!(!ns.exec(&["iptables", "-S"]).contains("f2b-sshd"), "the chain outlived the stop");

    // A purge takes the package, its conffiles and the link away.
    let (ok, text) =
        run("dpkg", &[&root_arg, "--force-script-chrootless", "--purge", "wasmban-fail2ban-client", "wasmban"]);
    assert!(ok, "{text}");
    for gone in
        ["usr/bin/wasmban", "usr/bin/fail2ban-client", "etc/wasmban/jail.conf", "lib/systemd/system/wasmban.service"]
    {
        assert!(!root.join(gone).exists(), "{gone} is still there after the purge");
    }
}
