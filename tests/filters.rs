//! The filters shipped in config/filter.d, on lines written for them here.

use std::path::Path;

fn shipped(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d").join(name).display().to_string()
}

/// What `wasmban regex FLAG` prints for `log` under `filter`.
fn regex_output(log: &str, filter: &str, opts: &[&str], flag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.log");
    std::fs::write(&path, log).unwrap();
    let state = dir.path().join("state");
    let mut args = vec!["--state-dir", state.to_str().unwrap(), "regex", flag];
    for o in opts {
        args.extend(["--opt", o]);
    }
    args.extend([path.to_str().unwrap(), filter]);
    let run = crate::util::wasmban(&args);
    assert!(run.ok, "{filter}: {}", run.stderr);
    run.stdout
}

/// Ids and rule indices found per line, through `wasmban regex --json`.
fn rules_and_hosts(log: &str, filter: &str, opts: &[&str]) -> Vec<Vec<(String, u64)>> {
    regex_output(log, filter, opts, "--json")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["failures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["id"].as_str().unwrap().to_string(), f["regex"].as_u64().unwrap()))
                .collect()
        })
        .collect()
}

/// Hosts found per line.
fn hosts(log: &str, filter: &str, opts: &[&str]) -> Vec<Vec<String>> {
    rules_and_hosts(log, filter, opts).into_iter().map(|line| line.into_iter().map(|(id, _)| id).collect()).collect()
}

const SSHD: &str = "\
Nov 25 10:00:01 web sshd[101]: Failed password for invalid user admin from 192.0.2.10 port 4242 ssh2
Nov 25 10:00:02 web sshd[101]: Invalid user admin from 192.0.2.10 port 4242
Nov 25 10:00:03 web sshd[102]: Connection closed by authenticating user root 192.0.2.11 port 22 [preauth]
Nov 25 10:00:04 web sshd[103]: Accepted password for bob from 192.0.2.12 port 22 ssh2
Nov 25 10:00:05 web sshd[104]: Did not receive identification string from 192.0.2.13 port 5555
Nov 25 10:00:06 web sshd[105]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.14
Nov 25 10:00:07 web sshd[106]: error: maximum authentication attempts exceeded for root from 2001:db8::5 port 22 ssh2 [preauth]
Nov 25 10:00:08 web sshd-session[107]: Failed publickey for git from 192.0.2.15 port 22 ssh2: RSA SHA256:abc
Nov 25 10:00:09 web sshd[108]: Failed password for a user with spaces from 192.0.2.16 port 1 ssh2
Nov 25 10:00:10 web sshd[109]: Failed password for invalid user x from 10.0.0.1 from 192.0.2.17 port 22 ssh2
Nov 25 10:00:11 web sshd[110]: User root from 192.0.2.18 not allowed because not listed in AllowUsers
Nov 25 10:00:12 web sshd[111]: error: PAM: Authentication failure for alice from 192.0.2.19
";

#[test]
fn sshd_normal_and_aggressive_modes() {
    let normal = hosts(SSHD, &shipped("sshd.conf"), &[]);
    let expect_normal: Vec<Vec<&str>> = vec![
        vec!["192.0.2.10"],
        vec!["192.0.2.10"],
        vec![],
        vec![],
        vec![],
        // PAM's own line repeats sshd's "Failed password": not counted twice.
        vec![],
        vec!["2001:db8::5"],
        vec!["192.0.2.15"],
        vec!["192.0.2.16"],
        // A user name made to look like an address does not move the ban.
        vec!["192.0.2.17"],
        vec!["192.0.2.18"],
        vec!["192.0.2.19"],
    ];
    assert_eq!(normal, expect_normal);
    let aggressive = hosts(SSHD, &shipped("sshd.conf"), &["mode=aggressive"]);
    assert_eq!(aggressive[2], ["192.0.2.11"]);
    assert_eq!(aggressive[4], ["192.0.2.13"]);
    assert!(aggressive[3].is_empty());
}

#[test]
fn recidive_reads_the_daemons_own_ban_lines_but_not_its_own() {
    let log = "\
2026-11-25 15:57:32,053 fail2ban.actions        [10566]: NOTICE  [sshd] Ban 192.0.2.9
2026-11-25 15:57:37,058 fail2ban.actions        [10566]: NOTICE  [sshd] Unban 192.0.2.9
2026-11-25 15:57:38,000 fail2ban.actions        [10566]: NOTICE  [recidive] Ban 192.0.2.9
2026-11-25 15:57:39,588 fail2ban.actions        [10566]: NOTICE  [postfix] Ban 2001:db8::1
";
    let found = hosts(log, &shipped("recidive.conf"), &[]);
    assert_eq!(found, vec![vec!["192.0.2.9"], vec![], vec![], vec!["2001:db8::1"]]);
}

/// fail2ban's sample log for `name`: each line with what fail2ban's own
/// test expects of it (`Some(host)` a failure of host, `None` no failure),
/// for the default mode only (sections whose `filterOptions` ask for other
/// modes are left out).
fn corpus(name: &str) -> Option<Vec<(String, Option<String>)>> {
    let path = Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs").join(name);
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = Vec::new();
    let mut default_mode = true;
    let mut expect: Option<serde_json::Value> = None;
    for line in text.lines() {
        if let Some(opts) = line.strip_prefix("# filterOptions:") {
            let opts: serde_json::Value = serde_json::from_str(opts.trim()).unwrap();
            // A list of option sets, or one set alone.
            let modes: Vec<&serde_json::Value> = match opts.as_array() {
                Some(list) => list.iter().collect(),
                None => vec![&opts],
            };
            default_mode = modes.is_empty() || modes.iter().any(|m| m.get("mode").is_none_or(|v| v == "normal"));
        } else if let Some(json) = line.strip_prefix("# failJSON:") {
            expect = Some(serde_json::from_str(json.trim()).unwrap());
        } else if !line.starts_with('#')
            && !line.trim().is_empty()
            && let Some(e) = expect.take()
            && default_mode
        {
            let host = (e["match"] == true).then(|| e["host"].as_str().unwrap_or_default().to_string());
            out.push((line.to_string(), host));
        }
    }
    Some(out)
}

/// Our filter finds exactly the failures fail2ban's sample corpus expects
/// in the default mode: every expected host, and nothing on lines that
/// must not match.
fn agrees_with_the_corpus(name: &str) {
    let Some(cases) = corpus(name) else {
        crate::util::skipped!("{name} corpus check: fail2ban's sample logs are not installed");
        return;
    };
    assert!(!cases.is_empty());
    let log: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
    let found = hosts(&log, &shipped(&format!("{name}.conf")), &[]);
    assert_eq!(found.len(), cases.len());
    for ((line, expected), got) in cases.iter().zip(&found) {
        match expected {
            Some(host) => assert!(got.contains(host), "{name}: expected {host} in {line:?}, found {got:?}"),
            None => assert!(got.is_empty(), "{name}: expected nothing in {line:?}, found {got:?}"),
        }
    }
}

#[test]
fn nginx_filters_agree_with_fail2bans_sample_corpus() {
    agrees_with_the_corpus("nginx-http-auth");
    agrees_with_the_corpus("nginx-limit-req");
}

/// How many failregex lines the filter has in this mode.
fn failregex_count(filter: &str, opts: &[&str]) -> usize {
    let text = regex_output("", filter, opts, "--print-definition");
    let line = text.lines().find_map(|l| l.strip_prefix("failregex\t")).unwrap_or("");
    line.split("\\n").filter(|r| !r.trim().is_empty()).count()
}

/// A sample line and the id it must yield (none: no failure).
type Case = (String, Option<String>);

/// Every filter shipped in config/filter.d has a sample log in
/// tests/filter-samples (format in its README); every sample line gets the
/// verdict written above it, and every failregex of every mode is the rule
/// that matched at least one sample line.
#[test]
fn every_shipped_filter_passes_its_samples_and_each_failregex_has_one() {
    let filters = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filter-samples");
    let mut names: Vec<String> = std::fs::read_dir(&filters)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".conf").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 13, "{names:?}");
    for name in &names {
        let text = std::fs::read_to_string(samples.join(format!("{name}.log")))
            .unwrap_or_else(|_| panic!("filter {name} has no tests/filter-samples/{name}.log"));
        let mut by_mode: Vec<(String, Vec<Case>)> = vec![("normal".into(), Vec::new())];
        let mut expect: Option<Option<String>> = None;
        for line in text.lines() {
            if let Some(mode) = line.strip_prefix("# mode:") {
                by_mode.push((mode.trim().to_string(), Vec::new()));
            } else if let Some(e) = line.strip_prefix("# expect:") {
                let e = e.trim();
                expect = Some((e != "none").then(|| e.to_string()));
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let e = expect.take().unwrap_or_else(|| panic!("{name}: no `# expect:` above {line:?}"));
                by_mode.last_mut().unwrap().1.push((line.to_string(), e));
            }
        }
        let filter = shipped(&format!("{name}.conf"));
        for (mode, cases) in by_mode.iter().filter(|(_, c)| !c.is_empty()) {
            let mode_opt = format!("mode={mode}");
            let opts: Vec<&str> = if mode == "normal" { Vec::new() } else { vec![mode_opt.as_str()] };
            let log: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
            let found = rules_and_hosts(&log, &filter, &opts);
            assert_eq!(found.len(), cases.len(), "{name} ({mode})");
            let mut used = std::collections::BTreeSet::new();
            for ((line, expected), got) in cases.iter().zip(&found) {
                let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
                match expected {
                    Some(host) => assert!(
                        ids.contains(&host.as_str()),
                        "{name} ({mode}): expected {host} in {line:?}, found {ids:?}"
                    ),
                    None => assert!(ids.is_empty(), "{name} ({mode}): expected nothing in {line:?}, found {ids:?}"),
                }
                used.extend(got.iter().map(|(_, rule)| *rule));
            }
            let count = failregex_count(&filter, &opts);
            assert!(count > 0, "{name} ({mode}): no failregex found");
            let unused: Vec<usize> = (0..count).filter(|i| !used.contains(&(*i as u64))).collect();
            assert!(unused.is_empty(), "{name} ({mode}): failregex #{unused:?} (0-based) matched no sample line");
        }
    }
}

#[test]
fn the_new_filters_agree_with_fail2bans_sample_corpus() {
    for name in [
        "vsftpd",
        "proftpd",
        "pure-ftpd",
        "mysqld-auth",
        "nginx-botsearch",
        "apache-badbots",
        "apache-auth",
        "dovecot",
        "postfix",
    ] {
        agrees_with_the_corpus(name);
    }
}
