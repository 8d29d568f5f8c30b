//! What the daemon shows of itself: Prometheus metrics (checked by
//! promtool and scraped by a real Prometheus), `status --top`, JSON log
//! lines, `flushlogs`, and systemd's notify protocol on a test socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::daemon::{Daemon, append, failure, hostile_tree, tree};
use crate::util::{free_port, has_program, skipped};

/// `GET path` on loopback; the status line and the body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

fn write_settings(root: &Path, text: &str) {
    std::fs::write(root.join("conf/wasmban.conf"), text).unwrap();
}

#[test]
fn metrics_pass_promtool_and_a_real_prometheus_scrapes_a_ban() {
    if !has_program("promtool") || !has_program("prometheus") {
        return skipped!("promtool and prometheus are not installed (Debian package prometheus)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let port = free_port();
    write_settings(root, &format!("[Definition]\n[metrics]\nlisten = 127.0.0.1:{port}\n"));
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &failure("192.0.2.7"));
    d.wait_for("the ban", || d.status().unwrap()["total_banned"] == 1);
    // An admin's ban and unban, counted apart.
    assert!(d.client(&["ban", "sshd", "192.0.2.50"]).0);
    assert!(d.client(&["unban", "192.0.2.50"]).0);

    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    for wanted in [
        "wasmban_bans_total{jail=\"sshd\",origin=\"filter\"} 1",
        "wasmban_bans_total{jail=\"sshd\",origin=\"manual\"} 1",
        "wasmban_unbans_total{jail=\"sshd\",origin=\"manual\"} 1",
        "wasmban_bans_in_force{jail=\"sshd\"} 1",
        "wasmban_lines_read_total{jail=\"sshd\"} 1",
        "wasmban_failures_total{jail=\"sshd\"} 1",
        "wasmban_plugin_calls_total{instance=\"sshd\",jail=\"sshd\",kind=\"filter\",plugin=\"regex-filter\"}",
        "wasmban_plugin_call_seconds_bucket{",
        "wasmban_store_commit_seconds_count",
        "wasmban_log_bytes_behind{file=",
        "wasmban_build_info{version=",
    ] {
        assert!(body.contains(wanted), "no {wanted} in:\n{body}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Only GET on /metrics.
    assert!(http_get(port, "/").0.contains("404"));

    // A real Prometheus, on loopback, scraping every second.
    let prom_port = free_port();
    std::fs::write(
        root.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: wasmban\n    static_configs:\n      \
             - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let prom_log = std::fs::File::create(root.join("prometheus.log")).unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", root.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", root.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(prom_log)
        .spawn()
        .unwrap();
    let query = "/api/v1/query?query=wasmban_bans_total%7Bjail%3D%22sshd%22%2Corigin%3D%22filter%22%7D";
    let start = Instant::now();
    let answer = loop {
        let got = TcpStream::connect(("127.0.0.1", prom_port)).ok().map(|_| http_get(prom_port, query));
        if let Some((_, body)) = got
            && let Ok(v) = serde_json::from_str::<Value>(&body)
            && v["data"]["result"].as_array().is_some_and(|r| !r.is_empty())
        {
            break v;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = prometheus.kill();
            panic!(
                "Prometheus never had the ban counter; its log:\n{}",
                std::fs::read_to_string(root.join("prometheus.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(answer["data"]["result"][0]["value"][1], "1", "{answer}");
    assert_eq!(answer["data"]["result"][0]["metric"]["jail"], "sshd", "{answer}");

    // Every query of the shipped Grafana dashboard is one this Prometheus
    // accepts, with Grafana's variables as Grafana fills them.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$jail", ".*").replace("$__rate_interval", "1m");
            let (status, body) = http_get(prom_port, &format!("/api/v1/query?query={}", url_encode(&expr)));
            assert!(status.contains("200") && body.contains("\"status\":\"success\""), "{expr}: {status} {body}");
        }
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_scrape_during_a_burst_answers_and_shows_the_lag() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let port = free_port();
    write_settings(root, &format!("[Definition]\n[metrics]\nlisten = 127.0.0.1:{port}\n"));
    let _daemon = Daemon::start(root);
    // A burst of lines the filter reads and rejects.
    let lines = 400_000;
    let line =
        format!("{} web sshd[7]: Connection closed by 192.0.2.1 port 22 [preauth]\n", crate::util::daemon::iso(0));
    append(&root.join("auth.log"), &line.repeat(lines));
    let value = |body: &str, prefix: &str| -> Option<u64> {
        body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let mut saw_lag = false;
    let start = Instant::now();
    loop {
        let (status, body) = http_get(port, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        saw_lag |= value(&body, "wasmban_log_bytes_behind{").is_some_and(|b| b > 0);
        // The line counter moves as a batch is read, the lag when the jail
        // publishes after it: the scrape that ends the loop has both.
        if value(&body, "wasmban_lines_read_total{jail=\"sshd\"}") == Some(lines as u64)
            && value(&body, "wasmban_log_bytes_behind{") == Some(0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the burst was never read to a lag of 0; last scrape:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_lag, "no scrape saw the jail behind its log during the burst");
}

#[test]
fn status_top_shows_a_hostile_filters_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hostile_log = hostile_tree(root, "call-timeout-ms = 200\nmemory-mb = 32\n");
    let d = Daemon::start(root);
    d.wait_for("the hostile jail", || {
        serde_json::from_str::<Value>(&d.client(&["status", "hostile", "--json"]).1).is_ok_and(|v| v["running"] == true)
    });
    append(&hostile_log, "loop\n");
    let top = || serde_json::from_str::<Value>(&d.client(&["status", "--top", "--json"]).1).unwrap();
    d.wait_for("the timeout to be counted", || {
        top()["plugins"].as_array().unwrap().iter().any(|r| r["jail"] == "hostile" && r["timeouts"] == 1)
    });
    let rows = top()["plugins"].as_array().unwrap().clone();
    // The filter that spun to its deadline cost the most CPU.
    assert_eq!((rows[0]["jail"].as_str(), rows[0]["kind"].as_str()), (Some("hostile"), Some("filter")), "{rows:?}");
    // Its deadline is wall time: on a loaded machine it may have had the
    // CPU for a fraction of it, but never for none.
    assert!(rows[0]["cpu_seconds"].as_f64().unwrap() > 0.0, "{rows:?}");
    assert!(rows.iter().any(|r| r["jail"] == "sshd" && r["plugin"] == "regex-filter"), "{rows:?}");
    let (ok, text) = d.client(&["status", "--top"]);
    assert!(ok, "{text}");
    let first = text.lines().nth(1).unwrap_or("");
    assert!(first.starts_with("hostile") && first.contains("filter"), "{text}");
}

#[test]
fn json_logs_and_flushlogs_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let log = root.join("wasmban.log");
    write_settings(root, &format!("[Definition]\nlogtarget = {}\nlogformat = json\n", log.display()));
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &failure("192.0.2.8"));
    d.wait_for("the ban", || d.status().unwrap()["total_banned"] == 1);
    let ban = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "ban")
    };
    d.wait_for("the ban line", || ban().is_some());
    let line = ban().unwrap();
    assert_eq!((line["jail"].as_str(), line["address"].as_str()), (Some("sshd"), Some("192.0.2.8")), "{line}");
    assert_eq!(line["level"], "NOTICE");
    for l in std::fs::read_to_string(&log).unwrap().lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }

    // logrotate moves the file, then runs `wasmban flushlogs`.
    std::fs::rename(&log, root.join("wasmban.log.1")).unwrap();
    let (ok, out) = d.client(&["flushlogs"]);
    assert!(ok && out.contains("rolled over"), "{out}");
    d.client(&["ban", "sshd", "192.0.2.9"]);
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(fresh.contains("\"address\":\"192.0.2.9\""), "{fresh}");
    assert!(!std::fs::read_to_string(root.join("wasmban.log.1")).unwrap().contains("192.0.2.9"));
}

/// Every message received on `socket` within `wait`.
fn received(socket: &UnixDatagram, until: impl Fn(&[String]) -> bool, wait: Duration) -> Vec<String> {
    let mut all = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < wait && !until(&all) {
        if let Ok(n) = socket.recv(&mut buf) {
            all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    all
}

#[test]
fn systemd_hears_ready_status_reloading_and_a_watchdog_fed_only_while_jails_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The hostile filter's `loop` holds its jail in one call for 5 s.
    let hostile_log = hostile_tree(root, "call-timeout-ms = 5000\nmemory-mb = 32\n");
    let socket_path = root.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let d = Daemon::start_with(
        root,
        None,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")],
    );
    let ready = |m: &[String]| m.iter().any(|m| m.starts_with("READY=1"));
    let got = received(&socket, ready, Duration::from_secs(60));
    let first = got.iter().find(|m| m.starts_with("READY=1")).unwrap_or_else(|| panic!("no READY=1: {got:?}"));
    assert!(first.contains("STATUS=2 jail(s) protecting"), "{first}");
    // Both jails were running when READY=1 came.
    for jail in ["sshd", "hostile"] {
        let s: Value = serde_json::from_str(&d.client(&["status", jail, "--json"]).1).unwrap();
        assert_eq!(s["running"], true, "{jail}: {s}");
    }
    let pings = received(&socket, |m| m.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3, Duration::from_secs(10));
    assert!(pings.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3, "{pings:?}");

    // A jail stuck in one call: no WATCHDOG=1 while it is stuck, and the
    // log says which jail; fed again once the call hit its deadline.
    append(&hostile_log, "loop\n");
    d.wait_for("the stall to be noticed", || d.log().contains("jail(s) hostile made no progress"));
    // What was sent before the stall was noticed is not the question.
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
    let during = received(&socket, |_| false, Duration::from_millis(1500));
    assert!(!during.iter().any(|m| m == "WATCHDOG=1"), "fed while a jail was stuck: {during:?}");
    let after = received(&socket, |m| m.iter().any(|m| m == "WATCHDOG=1"), Duration::from_secs(20));
    assert!(after.iter().any(|m| m == "WATCHDOG=1"), "never fed again: {after:?}");

    // SIGHUP: RELOADING=1, then READY=1 again.
    d.signal(libc::SIGHUP);
    let reload = received(&socket, ready, Duration::from_secs(60));
    let at = reload.iter().position(|m| m.starts_with("RELOADING=1")).unwrap_or_else(|| panic!("{reload:?}"));
    assert!(reload[at].contains("MONOTONIC_USEC="), "{reload:?}");
    assert!(reload[at..].iter().any(|m| m.starts_with("READY=1")), "{reload:?}");

    d.signal(libc::SIGTERM);
    let stopping = received(&socket, |m| m.iter().any(|m| m == "STOPPING=1"), Duration::from_secs(30));
    assert!(stopping.iter().any(|m| m == "STOPPING=1"), "{stopping:?}");
    assert!(d.wait().success());
}

/// The shipped logrotate file, run by a real logrotate: the log moves
/// aside (compressed at the next rotation), `wasmban flushlogs` in its
/// postrotate makes the daemon reopen the log by name, and nothing is
/// written to the rotated file after that.
#[test]
fn a_real_logrotate_run_with_the_shipped_file_rolls_the_daemons_log_over() {
    if !has_program("logrotate") {
        return skipped!("logrotate is not installed (Debian package logrotate)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, "");
    let log = root.join("wasmban.log");
    write_settings(root, &format!("[Definition]\nlogtarget = {}\n", log.display()));
    let d = Daemon::start(root);
    d.wait_for("the first lines in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("jail started"))
    });

    // The shipped file, pointed at this daemon's log and socket (the
    // packaged one names /var/log/wasmban.log and `wasmban` on PATH).
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/wasmban.logrotate")).unwrap();
    assert!(shipped.contains("/var/log/wasmban.log {") && shipped.contains("wasmban flushlogs"), "{shipped}");
    let socket = root.join("sock");
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let conf = shipped
        .replace("/var/log/wasmban.log", log.to_str().unwrap())
        // Only root can give the new file to root:adm.
        .replace("create 0640 root adm", if as_root { "create 0640 root adm" } else { "create 0640" })
        .replace("wasmban flushlogs", &format!("{} -s {} flushlogs", crate::util::daemon::BIN, socket.display()));
    std::fs::write(root.join("logrotate.conf"), conf).unwrap();
    let (ok, text) = {
        let out = Command::new("logrotate")
            .args([
                "-f",
                "-s",
                root.join("logrotate.state").to_str().unwrap(),
                root.join("logrotate.conf").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    assert!(ok, "logrotate: {text}");
    let rotated = root.join("wasmban.log.1");
    assert!(rotated.exists(), "logrotate did not move the log");
    assert!(d.client(&["ban", "sshd", "192.0.2.77"]).0);
    d.wait_for("the ban in the new log", || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Ban 192.0.2.77")));
    assert!(!std::fs::read_to_string(&rotated).unwrap().contains("192.0.2.77"), "written to the rotated file");
}

/// `logtarget = SYSLOG` with `syslogsocket` at a real rsyslog's socket:
/// the ban reaches rsyslog's file as fail2ban's would (tag
/// `fail2ban.actions`, facility daemon, severity notice); and `pidfile`
/// holds the daemon's pid while it runs, and goes when it stops.
#[test]
fn syslog_target_reaches_a_real_rsyslog_and_the_pidfile_follows_the_daemon() {
    if !has_program("rsyslogd") {
        return skipped!("rsyslogd is not installed (Debian package rsyslog)");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d_ = root.display();
    std::fs::write(
        root.join("rsyslog.conf"),
        format!(
            "global(workDirectory=\"{d_}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{d_}/log.sock\")\n\
             daemon.notice action(type=\"omfile\" file=\"{d_}/daemon.log\")\n"
        ),
    )
    .unwrap();
    let mut rsyslog = Command::new("rsyslogd")
        .args(["-n", "-f", &format!("{d_}/rsyslog.conf"), "-i", &format!("{d_}/rsyslog.pid")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !root.join("log.sock").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "rsyslog's socket never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    tree(root, "");
    let pidfile = root.join("run/wasmban.pid");
    write_settings(
        root,
        &format!(
            "[Definition]\nlogtarget = SYSLOG\nsyslogsocket = {}\npidfile = {}\n",
            root.join("log.sock").display(),
            pidfile.display()
        ),
    );
    let d = Daemon::start(root);
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(pid, d.pid());
    append(&root.join("auth.log"), &failure("192.0.2.33"));
    let written = || std::fs::read_to_string(root.join("daemon.log")).unwrap_or_default();
    let start = Instant::now();
    while !written().contains("Ban 192.0.2.33") {
        assert!(start.elapsed() < Duration::from_secs(60), "no ban line in rsyslog's file:\n{}", written());
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = written().lines().find(|l| l.contains("Ban 192.0.2.33")).unwrap().to_string();
    assert!(
        line.contains("fail2ban.actions") && line.contains(&format!("[{pid}]: NOTICE  [sshd] Ban 192.0.2.33")),
        "{line}"
    );
    // Only notice and above were asked for: information lines stay out.
    assert!(!written().contains("jail started"), "{}", written());
    d.signal(libc::SIGTERM);
    assert!(d.wait().success());
    assert!(!pidfile.exists(), "the pidfile outlived the daemon");
    let _ = rsyslog.kill();
    let _ = rsyslog.wait();
}
