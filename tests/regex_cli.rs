//! `wasmban regex` on hostile input: huge lines, invalid UTF-8, binary
//! junk, and a pattern that backtracks without end.

use std::io::Write;
use std::process::Command;

fn regex_json(
    log: &std::path::Path,
    filter: &std::path::Path,
    state: &std::path::Path,
) -> (bool, Vec<serde_json::Value>, String) {
    let args = [
        "--state-dir",
        state.to_str().unwrap(),
        "regex",
        "--json",
        "--now",
        "1124013600",
        log.to_str().unwrap(),
        filter.to_str().unwrap(),
    ];
    let run = crate::util::wasmban_with_env(&args, &[("TZ", "UTC0")]);
    let records = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (run.ok, records, run.stderr)
}

#[test]
fn bad_input_is_read_and_never_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("f.conf");
    std::fs::write(&filter, "[Definition]\nfailregex = ^\\s*login failed for \\S+ from <HOST>$\n").unwrap();
    let log = dir.path().join("x.log");
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(f, "Aug 14 11:58:00 login failed for a from 192.0.2.1").unwrap();
    writeln!(f, "Aug 14 11:58:01 {}", "x".repeat(1 << 20)).unwrap();
    f.write_all(b"Aug 14 11:58:02 login failed for \xff\xfe from 192.0.2.2\n").unwrap();
    f.write_all(&(0u8..=255).cycle().take(4000).filter(|b| *b != b'\n').collect::<Vec<u8>>()).unwrap();
    writeln!(f).unwrap();
    writeln!(f, "Aug 14 11:58:03 login failed for b from 192.0.2.3").unwrap();
    drop(f);
    let (ok, records, stderr) = regex_json(&log, &filter, &dir.path().join("state"));
    assert!(ok, "{stderr}");
    let hosts: Vec<(u64, &str)> = records
        .iter()
        .flat_map(|r| {
            r["failures"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| (r["line"].as_u64().unwrap(), f["id"].as_str().unwrap()))
        })
        .collect();
    // Invalid UTF-8 becomes U+FFFD and the line still matches.
    assert_eq!(hosts, [(1, "192.0.2.1"), (3, "192.0.2.2"), (5, "192.0.2.3")], "{stderr}");
    assert_eq!(records.len(), 5);
}

#[test]
fn a_catastrophic_pattern_gives_up_with_a_warning_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("f.conf");
    // The look-ahead makes it a backtracking regex, and (\w+\s?)* explodes
    // when the look-ahead fails at the end of a long run of words. The
    // relaxed superset (look-ahead dropped) does match, so the exact regex
    // must run.
    std::fs::write(
        &filter,
        "[Definition]\nfailregex = ^(?:\\w+\\s?)*(?=!x)! from <HOST>$\n            ^ok from <HOST>$\n",
    )
    .unwrap();
    let log = dir.path().join("x.log");
    let words = "word ".repeat(40);
    std::fs::write(&log, format!("{}! from 192.0.2.1\nok from 192.0.2.9\n", words.trim_end())).unwrap();
    let (ok, records, stderr) = regex_json(&log, &filter, &dir.path().join("state"));
    assert!(ok, "{stderr}");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["failures"].as_array().unwrap().len(), 0);
    assert_eq!(records[1]["failures"][0]["id"], "192.0.2.9");
    assert!(stderr.contains("gave up on a line"), "{stderr}");
}

#[test]
fn a_filter_that_does_not_compile_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("broken.conf");
    std::fs::write(&filter, "[Definition]\nfailregex = ^fine <HOST>$\n            ^(unclosed <HOST>\n").unwrap();
    let log = dir.path().join("x.log");
    std::fs::write(&log, "fine 192.0.2.1\n").unwrap();
    let (ok, _, stderr) = regex_json(&log, &filter, &dir.path().join("state"));
    assert!(!ok);
    assert!(stderr.contains("broken") && stderr.contains("`failregex`, pattern 2"), "{stderr}");
}

/// The human summary counts as fail2ban-regex counts: total hits per
/// failregex (helpers included), and ignored, matched and missed lines,
/// agree on a realistic log.
#[test]
fn the_summary_counts_like_fail2ban_regex() {
    let generator = crate::util::shared_file("bench/gen_authlog.py");
    let reference = std::path::Path::new("/usr/bin/fail2ban-regex");
    let (Some(generator), true) = (generator, reference.is_file()) else {
        crate::util::skipped!("the_summary_counts_like_fail2ban_regex: needs shared/bench and fail2ban");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let status = Command::new("python3")
        .arg(&generator)
        .args(["--lines", "20000", "--seed", "3", "--out"])
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    let filter = "/etc/fail2ban/filter.d/sshd.conf";
    let summary = |out: &[u8]| -> (String, String) {
        let text = String::from_utf8_lossy(out).into_owned();
        let get = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).unwrap_or("").to_string();
        (get("Failregex:"), get("Lines:"))
    };
    let ours = Command::new(env!("CARGO_BIN_EXE_wasmban"))
        .args(["--state-dir", dir.path().join("state").to_str().unwrap(), "regex"])
        .arg(&log)
        .arg(filter)
        .output()
        .unwrap();
    let theirs = Command::new(reference).arg(&log).arg(filter).output().unwrap();
    let (our_hits, our_lines) = summary(&ours.stdout);
    let (their_hits, their_lines) = summary(&theirs.stdout);
    assert_eq!(our_hits, their_hits);
    assert!(our_lines.contains("matched"), "{our_lines}");
    assert_eq!(our_lines, their_lines);
}

/// A filter that can split its work (the regex filter) runs as two
/// instances on two threads by default; the answers must be exactly those
/// of one instance, line by line, on a log of many batches, however the log
/// is cut into chunks and batches.
#[test]
fn two_instances_answer_exactly_as_one() {
    let generator = crate::util::shared_file("bench/gen_authlog.py");
    let corpus = std::path::Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs");
    let (Some(generator), true) = (generator, corpus.is_dir()) else {
        crate::util::skipped!("two_instances_answer_exactly_as_one: needs shared/bench and fail2ban");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    let status = Command::new("python3")
        .arg(&generator)
        .args(["--lines", "30000", "--seed", "7", "--attackers", "300", "--out"])
        .arg(&auth)
        .status()
        .unwrap();
    assert!(status.success());
    // fail2ban's whole sample corpus in one file, eight times over (so that
    // it fills several batches): every date format, IPv6, undated lines,
    // non-ASCII text, in one stream through one filter.
    let mixed = dir.path().join("mixed.log");
    let mut all = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(corpus).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for _ in 0..8 {
        for name in names.iter().filter(|p| p.is_file()) {
            all.extend(std::fs::read(name).unwrap());
            all.push(b'\n');
        }
    }
    std::fs::write(&mixed, all).unwrap();
    let state = dir.path().join("state");
    let run = |log: &std::path::Path, filter: &str, extra: &[&str]| -> Vec<u8> {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmban"))
            .args(["--state-dir", state.to_str().unwrap(), "regex", "--json", "--now", "1124013600"])
            .args(extra)
            .arg(log)
            .arg(filter)
            .env("TZ", "CET-01CEST-02,M3.5.0,M10.5.0")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let cases: [(&std::path::Path, &str, &[&str]); 5] = [
        (&auth, "/etc/fail2ban/filter.d/sshd.conf", &[]),
        (&auth, "/etc/fail2ban/filter.d/sshd.conf", &["--opt", "mode=aggressive"]),
        (&mixed, "/etc/fail2ban/filter.d/sshd.conf", &["--opt", "mode=aggressive"]),
        (&mixed, "/etc/fail2ban/filter.d/sendmail-reject.conf", &[]),
        (&mixed, "/etc/fail2ban/filter.d/apache-auth.conf", &[]),
    ];
    for (log, filter, extra) in cases {
        let two = run(log, filter, extra);
        let one = run(log, filter, &[extra, &["--threads", "1"]].concat());
        let failures = String::from_utf8_lossy(&one).matches("\"id\"").count();
        assert!(failures > 10, "{filter} {extra:?} finds failures in {}", log.display());
        assert!(two == one, "{filter} {extra:?} on {}: two instances differ from one", log.display());
        // The log read in small chunks: batches cut anywhere, answers alike.
        let small = run(log, filter, &[extra, &["--read-bytes", "7001"]].concat());
        assert!(small == one, "{filter} {extra:?} on {}: read in small chunks, the answers differ", log.display());
    }
}

/// fail2ban-regex's argument forms, run by both tools on the same input:
/// a log line instead of a file, a failregex instead of a filter,
/// `NAME[mode=...]`, the optional IGNOREREGEX, `-d`, `--timezone`; the
/// counts and the listed ignored and missed lines are the same.
#[test]
fn fail2ban_regex_argument_forms_give_fail2ban_regexs_answers() {
    if !crate::util::has_program("fail2ban-regex")
        || !std::path::Path::new("/etc/fail2ban/filter.d/sshd.conf").is_file()
    {
        return crate::util::skipped!("fail2ban-regex is not installed (Debian package fail2ban)");
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "2026-12-04T08:00:00+00:00 web sshd[7]: Failed password for root from 192.0.2.1 port 22 ssh2\n\
         2026-12-04T08:00:01+00:00 web sshd[7]: Failed password for root from 192.0.2.2 port 22 ssh2\n\
         2026-12-04T08:00:02+00:00 web sshd[7]: Accepted publickey for admin from 192.0.2.3 port 22 ssh2\n\
         2026-12-04T08:00:03+00:00 web sshd[7]: Unable to negotiate with 192.0.2.4 port 22: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let line = "2026-12-04T08:00:00+00:00 web sshd[7]: Failed password for root from 192.0.2.1 port 22 ssh2";
    let odd_date = "04.12.2026 08:00:00 web sshd[7]: Failed password for root from 192.0.2.9 port 22 ssh2";
    // What both say that does not depend on the tool: the counts, and the
    // lines they list.
    let essence = |out: &str| -> Vec<String> {
        let mut keep = Vec::new();
        let mut listing = false;
        for l in out.lines() {
            if l.starts_with("Lines:")
                || l.starts_with("Failregex:")
                || l.starts_with("Prefregex:")
                || l.starts_with("Ignoreregex:")
                || l.starts_with("|- [# of hits] date format")
                || l.starts_with("|- Ignored")
                || l.starts_with("|- Missed")
                || l.starts_with("Missed line(s):")
                || l.starts_with("Ignored line(s):")
                || l.starts_with("Use         maxlines")
            {
                listing = l.starts_with("|- ");
                keep.push(l.trim_end().to_string());
            } else if listing {
                keep.push(l.trim_end().to_string());
                listing = l != "`-";
            }
        }
        keep
    };
    let cases: Vec<Vec<&str>> = vec![
        vec![line, r"Failed password for \S+ from <HOST>"],
        vec![log, "sshd"],
        vec![log, "sshd[mode=aggressive]"],
        vec![log, "sshd", r"from 192\.0\.2\.2 "],
        vec![log, r"Accepted \S+ for \S+ from <HOST>"],
        vec!["-d", "%d.%m.%Y %H:%M:%S", odd_date, r"Failed password for \S+ from <HOST>"],
        vec!["--timezone", "UTC+0200", line, "sshd"],
        // -L replaces the filter's maxlines, and lists missed lines only
        // below it, as fail2ban-regex does.
        vec!["-L", "2", log, "sshd"],
        vec!["--print-no-missed", log, "sshd"],
        vec!["--print-all-missed", "-e", "UTF-8", log, "sshd"],
    ];
    for case in cases {
        let theirs = Command::new("fail2ban-regex").args(&case).output().unwrap();
        let mut args = vec!["-c", "/etc/fail2ban", "--state-dir", state.to_str().unwrap(), "regex"];
        args.extend(case.iter().copied());
        let ours = crate::util::wasmban(&args);
        assert!(ours.ok, "wasmban regex {case:?}: {}", ours.both());
        let theirs = essence(&String::from_utf8_lossy(&theirs.stdout));
        assert!(!theirs.is_empty(), "fail2ban-regex {case:?} said nothing we read");
        assert_eq!(essence(&ours.stdout), theirs, "wasmban regex {case:?} (left) differs from fail2ban-regex (right)");
    }
    // -o: only what the token or template says, per failure, nothing else.
    for out in ["id", "ip", "msg", "user", "<ip> for <F-USER>"] {
        let theirs = Command::new("fail2ban-regex").args(["-o", out, log, "sshd"]).output().unwrap();
        let ours = crate::util::wasmban(&[
            "-c",
            "/etc/fail2ban",
            "--state-dir",
            state.to_str().unwrap(),
            "regex",
            "-o",
            out,
            log,
            "sshd",
        ]);
        assert!(ours.ok, "wasmban regex -o {out}: {}", ours.both());
        assert_eq!(ours.stdout, String::from_utf8_lossy(&theirs.stdout), "-o {out} (left: wasmban)");
    }
    // -m is for the journal only.
    let misplaced =
        crate::util::wasmban(&["--state-dir", state.to_str().unwrap(), "regex", "-m", "_COMM=sshd", log, "sshd"]);
    assert!(!misplaced.ok && misplaced.both().contains("systemd-journal only"), "{}", misplaced.both());
    // What wasmban cannot do is refused with what to do instead.
    let state_dir = state.to_str().unwrap();
    for (args, hint) in [
        (&["-e", "latin-1", log, "sshd"][..], "iconv"),
        (&["-o", "row", log, "sshd"], "template"),
        (&["--print-no-missed", "--print-all-missed", log, "sshd"], "cannot be used with"),
    ] {
        let mut all = vec!["--state-dir", state_dir, "regex"];
        all.extend_from_slice(args);
        let refused = crate::util::wasmban(&all);
        assert!(!refused.ok && refused.both().contains(hint), "{args:?}: {}", refused.both());
    }
}

#[test]
fn the_journal_as_a_log_with_matches_gives_fail2ban_regexs_answers() {
    let journal_remote = std::path::Path::new(crate::util::journal::JOURNAL_REMOTE);
    if !journal_remote.exists() || !crate::util::has_program("journalctl") {
        return crate::util::skipped!(
            "journalctl or systemd-journal-remote is missing (Debian packages systemd, systemd-journal-remote)"
        );
    }
    let python_journal = Command::new("/usr/bin/python3").args(["-c", "import systemd.journal"]).status();
    if !crate::util::has_program("fail2ban-regex") || !python_journal.is_ok_and(|s| s.success()) {
        return crate::util::skipped!(
            "fail2ban-regex reads the journal through python3-systemd, which is not installed"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("system.journal");
    crate::util::journal::append(
        &journal,
        &[
            ("sshd", "Failed password for root from 192.0.2.31 port 22 ssh2"),
            ("cron", "Failed password for root from 192.0.2.32 port 22 ssh2"),
            ("sshd", "Invalid user x from 192.0.2.33 port 22"),
            ("sshd", "Connection closed by 192.0.2.34 port 22"),
        ],
    );
    let log = format!("systemd-journal[journalfiles={}]", journal.display());
    let state = dir.path().join("state");
    for matches in [None, Some("_COMM=sshd"), Some("_COMM=cron + _COMM=sshd")] {
        let mut case = Vec::new();
        if let Some(m) = matches {
            case.extend(["-m", m]);
        }
        case.extend([log.as_str(), "sshd"]);
        let theirs = Command::new("fail2ban-regex").args(&case).output().unwrap();
        let mut args = vec!["-c", "/etc/fail2ban", "--state-dir", state.to_str().unwrap(), "regex"];
        args.extend(case.iter().copied());
        let ours = crate::util::wasmban(&args);
        assert!(ours.ok, "wasmban regex {case:?}: {}", ours.both());
        // All but the time it took.
        let timeless =
            |text: &str| text.lines().filter(|l| !l.starts_with("[processed in")).collect::<Vec<_>>().join("\n");
        assert_eq!(
            timeless(&ours.stdout),
            timeless(&String::from_utf8_lossy(&theirs.stdout)),
            "wasmban regex {case:?} (left) differs from fail2ban-regex (right)"
        );
    }
}
