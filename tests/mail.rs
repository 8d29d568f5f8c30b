//! The built-in mail-whois action against a real SMTP server (Python's
//! aiosmtpd, from Debian) and a whois responder, both on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmban::capability::mail::{MailSettings, MailTransport};
use wasmban::capability::process::SystemRunner;
use wasmban::capability::whois::WhoisSettings;
use wasmban::plugin::{Runtime, RuntimeOptions};

use crate::util::ticket;
use crate::util::{builtin, opts};

const PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd printing every message it receives to a file.
struct SmtpServer {
    child: Child,
    out: tempfile::NamedTempFile,
    port: u16,
}

impl SmtpServer {
    fn start() -> Option<SmtpServer> {
        let found = Command::new(PYTHON).args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
        if !found {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(PYTHON)
            .args(["-u", "-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Debugging", "stdout"])
            .stdout(out.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(SmtpServer { child, out, port })
    }

    fn messages(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.out.path()).unwrap();
        text.split("---------- MESSAGE FOLLOWS ----------")
            .skip(1)
            .map(|m| m.split("------------ END MESSAGE ------------").next().unwrap().to_string())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers every whois query with `answer`; returns its address and what
/// it was asked.
fn whois_responder(answer: &'static str) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut q = Vec::new();
            let mut b = [0u8; 1];
            while !q.ends_with(b"\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
                q.push(b[0]);
            }
            log.lock().unwrap().push(String::from_utf8_lossy(&q).trim_end().to_string());
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (addr, asked)
}

#[test]
fn bans_are_mailed_with_whois_and_log_lines_through_a_real_smtp_server() {
    let Some(smtp) = SmtpServer::start() else {
        crate::util::skipped!(
            "bans_are_mailed_with_whois_and_log_lines_through_a_real_smtp_server: needs python3-aiosmtpd (.ci/run installs it)"
        );
        return;
    };
    let (whois, asked) = whois_responder("inetnum: 192.0.2.0 - 192.0.2.255\nnetname: TEST-NET-1\n");
    let rt = Runtime::new(RuntimeOptions {
        cache_dir: None,
        runner: Arc::new(SystemRunner),
        mail: MailSettings {
            transport: MailTransport::Smtp { relay: format!("127.0.0.1:{}", smtp.port) },
            timeout: Duration::from_secs(10),
            hostname: "web1.example.org".into(),
        },
        whois: WhoisSettings { server: whois, timeout: Duration::from_secs(5), follow_referrals: true },
    })
    .unwrap();
    let mut action = builtin(&rt, "mail-whois")
        .action(opts(&[
            ("name", "sshd"),
            ("dest", "ops@example.org"),
            ("sender", "wasmban@example.org"),
            ("host", "web1.example.org"),
            ("lines", "yes"),
        ]))
        .unwrap();
    action.start().unwrap();
    let mut banned = ticket("192.0.2.9");
    // A logged line that would end the message if it were not dot-stuffed,
    // and one posing as a header.
    banned.matches = vec!["sshd[9]: Failed password for root from 192.0.2.9".into(), ".".into(), "Bcc: x@y".into()];
    assert!(action.ban(&[banned]).unwrap()[0].is_ok());
    let storm: Vec<_> = (1..=50).map(|i| ticket(&format!("198.51.100.{i}"))).collect();
    assert!(action.ban(&storm).unwrap().iter().all(Result::is_ok));
    action.stop().unwrap();

    let messages = smtp.messages();
    assert_eq!(messages.len(), 4, "start, the ban, one digest for 50 bans, stop: {messages:#?}");
    assert!(messages[0].contains("Subject: [wasmban] sshd: started on web1.example.org"), "{}", messages[0]);
    let ban = &messages[1];
    assert!(ban.contains("From: wasmban <wasmban@example.org>"), "{ban}");
    assert!(ban.contains("To: ops@example.org"), "{ban}");
    assert!(ban.contains("Subject: [wasmban] sshd: banned 192.0.2.9 on web1.example.org"), "{ban}");
    assert!(ban.contains("netname: TEST-NET-1"), "{ban}");
    assert!(ban.contains("    sshd[9]: Failed password for root from 192.0.2.9"), "{ban}");
    assert!(ban.contains("\n    .\n") && ban.contains("\n    Bcc: x@y\n"), "{ban}");
    assert!(ban.contains("-- \nwasmban"), "the message was cut short: {ban}");
    assert!(messages[2].contains("banned 50 addresses") && messages[2].contains("198.51.100.50"), "{}", messages[2]);
    assert!(messages[3].contains("Subject: [wasmban] sshd: stopped"));
    assert_eq!(*asked.lock().unwrap(), ["192.0.2.9"], "whois is asked once, for the single ban only");
}

#[test]
fn an_unreachable_relay_is_an_error_for_the_ban_not_a_crash() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rt = Runtime::new(RuntimeOptions {
        mail: MailSettings {
            transport: MailTransport::Smtp { relay: format!("127.0.0.1:{port}") },
            timeout: Duration::from_secs(2),
            hostname: "h".into(),
        },
        whois: WhoisSettings {
            server: format!("127.0.0.1:{port}"),
            timeout: Duration::from_secs(2),
            follow_referrals: true,
        },
        ..RuntimeOptions::default()
    })
    .unwrap();
    let mut action = builtin(&rt, "mail-whois").action(opts(&[("name", "sshd"), ("startstop", "no")])).unwrap();
    action.start().unwrap();
    let results = action.ban(&[ticket("192.0.2.9")]).unwrap();
    let err = results[0].as_ref().unwrap_err();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// Debian's mail-buffered and sendmail-whois-ipjailmatches, carried out by
/// the mail-whois component: a summary per `lines` bans and the rest at
/// stop; the address's earlier lines in this jail, from the host's
/// history, in the ban message.
#[test]
fn fail2bans_buffered_and_ipjailmatches_mails_are_options_of_the_component() {
    use wasmban::config::action::ActionDefinition;
    use wasmban::wit::{BanContext, BanKind};
    let stock = std::path::Path::new("/etc/fail2ban");
    let Some(smtp) = SmtpServer::start() else {
        return crate::util::skipped!("fail2bans_buffered_and_ipjailmatches_mails: needs python3-aiosmtpd");
    };
    if !stock.join("action.d/mail-buffered.conf").is_file() {
        return crate::util::skipped!("fail2bans_buffered_and_ipjailmatches_mails: fail2ban is not installed");
    }
    let (whois, _) = whois_responder("netname: TEST-NET-1\n");
    let rt = Runtime::new(RuntimeOptions {
        cache_dir: None,
        runner: Arc::new(SystemRunner),
        mail: MailSettings {
            transport: MailTransport::Smtp { relay: format!("127.0.0.1:{}", smtp.port) },
            timeout: Duration::from_secs(10),
            hostname: "web1.example.org".into(),
        },
        whois: WhoisSettings { server: whois, timeout: Duration::from_secs(5), follow_referrals: true },
    })
    .unwrap();
    let load = |file: &str, params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let def = ActionDefinition::load(stock, file, &params, &Default::default()).unwrap();
        assert_eq!(def.plugin(), Some("mail-whois"), "{file}");
        builtin(&rt, "mail-whois").action(def.plugin_options()).unwrap()
    };
    let mut buffered = load("mail-buffered", &[("name", "sshd"), ("lines", "2"), ("dest", "ops@example.org")]);
    buffered.start().unwrap();
    for i in 1..=3 {
        assert!(buffered.ban(&[ticket(&format!("192.0.2.{i}"))]).unwrap()[0].is_ok());
    }
    buffered.stop().unwrap();
    let messages = smtp.messages();
    assert_eq!(messages.len(), 4, "start, a summary of two, the rest at stop, stop: {messages:#?}");
    assert!(messages[1].contains("192.0.2.1 (5 failures)") && messages[1].contains("192.0.2.2 (5 failures)"));
    assert!(messages[2].contains("192.0.2.3 (5 failures)") && !messages[2].contains("192.0.2.1 "));

    let mut matches = load("sendmail-whois-ipjailmatches", &[("name", "sshd"), ("dest", "ops@example.org")]);
    assert!(matches.is_evented());
    let context = BanContext {
        kind: BanKind::Fresh,
        ip_failures: 9,
        ip_matches: vec!["a line of another jail".into()],
        ip_jail_failures: 7,
        ip_jail_matches: vec!["sshd[1]: an older failure of 192.0.2.9".into()],
        jail_banned: 1,
        jail_banned_total: 1,
        jail_found: 0,
        jail_found_total: 7,
    };
    assert!(matches.apply(&[(ticket("192.0.2.9"), context)]).unwrap()[0].is_ok());
    let ban = smtp.messages().pop().unwrap();
    assert!(ban.contains("every ban of 192.0.2.9 in sshd (7 failures)"), "{ban}");
    assert!(ban.contains("    sshd[1]: an older failure of 192.0.2.9") && !ban.contains("another jail"), "{ban}");
    assert!(ban.contains("netname: TEST-NET-1"), "{ban}");
}

/// Debian's dshield file, carried out by the dshield component: bans are
/// buffered and mailed in DShield's format once `lines` are in, and what
/// is left when the jail stops.
#[test]
fn dshield_reports_are_buffered_and_sent_in_its_format() {
    use crate::util::daemon::{Daemon, append, failure, tree};
    use std::os::unix::fs::PermissionsExt;
    if !std::path::Path::new("/etc/fail2ban/action.d/dshield.conf").is_file() {
        return crate::util::skipped!("dshield_reports_are_buffered: fail2ban is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sent = root.join("sent");
    let sendmail = root.join("sendmail");
    std::fs::write(
        &sendmail,
        format!("#!/bin/sh\necho \"ARGS $*\" >> {0}\ncat >> {0}\necho END >> {0}\n", sent.display()),
    )
    .unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree(root, "[sshd]\naction = dshield[myip=203.0.113.5, userid=1234, port=22, lines=2]\n");
    std::fs::write(root.join("conf/wasmban.conf"), format!("[mail]\nsendmail = {}\n", sendmail.display())).unwrap();
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    append(&root.join("auth.log"), &(failure("192.0.2.7") + &failure("192.0.2.8") + &failure("192.0.2.9")));
    d.wait_for("the first report", || std::fs::read_to_string(&sent).unwrap_or_default().contains("END"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    let mail = std::fs::read_to_string(&sent).unwrap();
    let reports: Vec<&str> = mail.split("END\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(reports.len(), 2, "{mail}");
    assert!(reports[0].starts_with("ARGS -i -f fail2ban@") && reports[0].contains(" -- reports@dshield.org\n"));
    assert!(reports[0].contains("Subject: FORMAT DSHIELD USERID 1234 TZ +00:00 Fail2Ban"), "{mail}");
    let rows = |report: &str| report.lines().filter(|l| l.contains("\t1234\t")).count();
    assert_eq!((rows(reports[0]), rows(reports[1])), (2, 1), "{mail}");
    assert!(reports[0].contains("\t1234\t1\t192.0.2.7\t???\t203.0.113.5\t22\t6\t"), "{mail}");
}

/// Debian's sendmail-geoip-lines, carried out by mail-whois: the country
/// from the GeoIP database through the real geoiplookup (the AS database
/// Debian does not ship is told as unknown), and the log lines.
#[test]
fn geoip_lines_come_from_the_real_geoiplookup() {
    use crate::util::daemon::{Daemon, append, failure, tree};
    use std::os::unix::fs::PermissionsExt;
    let database = std::path::Path::new("/usr/share/GeoIP/GeoIP.dat");
    if !std::path::Path::new("/etc/fail2ban/action.d/sendmail-geoip-lines.conf").is_file()
        || !crate::util::has_program("geoiplookup")
        || !database.is_file()
    {
        return crate::util::skipped!(
            "geoip_lines: needs fail2ban, geoip-bin and geoip-database (.ci/run installs them)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sent = root.join("sent");
    let sendmail = root.join("sendmail");
    std::fs::write(&sendmail, format!("#!/bin/sh\ncat >> {0}\necho END >> {0}\n", sent.display())).unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree(root, "[sshd]\naction = sendmail-geoip-lines[name=sshd, dest=ops@example.org]\n");
    std::fs::write(root.join("conf/wasmban.conf"), format!("[mail]\nsendmail = {}\n", sendmail.display())).unwrap();
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    d.wait_for("the jail", || d.status().is_some_and(|s| s["running"] == true));
    // A public address the database knows; no packet is sent to it.
    append(&root.join("auth.log"), &failure("8.8.8.8"));
    d.wait_for("the ban mail", || std::fs::read_to_string(&sent).unwrap_or_default().contains("banned 8.8.8.8"));
    let mail = std::fs::read_to_string(&sent).unwrap();
    assert!(mail.contains("\nCountry: US, United States\n"), "{mail}");
    assert!(mail.contains("\nAS: unknown\n"), "{mail}");
    assert!(mail.contains("Failed password for root from 8.8.8.8"), "{mail}");
    assert!(!d.log().contains("Action off"), "{}", d.log());
}
