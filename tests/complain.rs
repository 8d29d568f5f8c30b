//! Debian's complain action, carried out by the complain component: the
//! abuse contacts come from a TXT lookup through the host's resolver (a
//! DNS responder of the test's, in a namespace whose resolv.conf names it)
//! and the complaint goes through wasmban.conf's `[mail]` (a sendmail of
//! the test's that keeps what it is given).

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use crate::util::NetNs;
use crate::util::daemon::{Daemon, append, failure, tree};

/// The name asked in a DNS query, and the query's bytes up to the end of
/// its question.
fn question(query: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            return Some((labels.join("."), at + 5));
        }
        labels.push(String::from_utf8_lossy(query.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
}

/// Answers TXT queries from inside `ns`: `contacts` for `name`, no such
/// name for any other.
fn dns_responder(ns: &NetNs, name: &'static str, contacts: &'static str) {
    let path = format!("/run/netns/{}", ns.name);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let netns = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace fd affects only this thread.
        assert_eq!(unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let socket = UdpSocket::bind("127.0.0.1:53").unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Some((asked, end)) = question(&buf[..n]) else { continue };
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x81;
            if asked.eq_ignore_ascii_case(name) {
                reply[3] = 0x80;
                reply[6..8].copy_from_slice(&1u16.to_be_bytes());
                reply.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
                reply.extend_from_slice(&(contacts.len() as u16 + 1).to_be_bytes());
                reply.push(contacts.len() as u8);
                reply.extend_from_slice(contacts.as_bytes());
            } else {
                reply[3] = 0x83;
            }
            let _ = socket.send_to(&reply, from);
        }
    });
    ready_rx.recv().unwrap();
}

#[test]
fn bans_are_complained_about_to_the_abuse_contacts_dns_gives() {
    let stock = std::path::Path::new("/etc/fail2ban/action.d/complain.conf");
    if let Some(why) = crate::util::root_skip_reason(&["ip"]) {
        return crate::util::skipped!("bans_are_complained_about: {why}");
    }
    if !stock.is_file() {
        return crate::util::skipped!("bans_are_complained_about: fail2ban is not installed");
    }
    let ns = NetNs::new("complain");
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    std::fs::write(ns.etc().join("resolv.conf"), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n").unwrap();
    dns_responder(&ns, "7.2.0.192.abuse-contacts.abusix.org", "abuse@example.net, noc@example.net");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sent = root.join("sent");
    let sendmail = root.join("sendmail");
    std::fs::write(&sendmail, format!("#!/bin/sh\necho \"ARGS $*\" >> {0}\ncat >> {0}\n", sent.display())).unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree(root, "[sshd]\naction = complain[sender=wasmban@example.org]\n");
    std::fs::write(root.join("conf/wasmban.conf"), format!("[mail]\nsendmail = {}\n", sendmail.display())).unwrap();
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &(failure("192.0.2.7") + &failure("192.0.2.8")));
    d.wait_for("the complaint", || std::fs::read_to_string(&sent).unwrap_or_default().contains("Lines containing"));
    d.wait_for("the address without a contact", || d.log().contains("no abuse contact for 192.0.2.8"));
    let mail = std::fs::read_to_string(&sent).unwrap();
    assert!(mail.contains("ARGS -i -f wasmban@example.org -- abuse@example.net noc@example.net"), "{mail}");
    assert!(mail.contains("Subject: Abuse from 192.0.2.7"), "{mail}");
    assert!(mail.contains("Failed password for root from 192.0.2.7"), "{mail}");
    assert!(!mail.contains("192.0.2.8"), "{mail}");
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
}

/// Debian's xarf-login-attack, carried out by the xarf component: the same
/// contacts, and an X-ARF report as a multipart message with `X-XARF:
/// PLAIN`, whose parts a mail parser (Python's email package) reads back.
#[test]
fn bans_are_reported_in_x_arf_to_the_abuse_contacts() {
    let stock = std::path::Path::new("/etc/fail2ban/action.d/xarf-login-attack.conf");
    if let Some(why) = crate::util::root_skip_reason(&["ip", "python3"]) {
        return crate::util::skipped!("bans_are_reported_in_x_arf: {why}");
    }
    if !stock.is_file() {
        return crate::util::skipped!("bans_are_reported_in_x_arf: fail2ban is not installed");
    }
    let ns = NetNs::new("xarf");
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    std::fs::write(ns.etc().join("resolv.conf"), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n").unwrap();
    dns_responder(&ns, "7.2.0.192.abuse-contacts.abusix.org", "abuse@example.net");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sent = root.join("sent.eml");
    let sendmail = root.join("sendmail");
    std::fs::write(&sendmail, format!("#!/bin/sh\ncat > {}\n", sent.display())).unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree(root, "[sshd]\naction = xarf-login-attack[service=ssh, port=22]\n");
    std::fs::write(root.join("conf/wasmban.conf"), format!("[mail]\nsendmail = {}\n", sendmail.display())).unwrap();
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.7"));
    d.wait_for("the report", || std::fs::read_to_string(&sent).is_ok_and(|m| m.contains("--\n")));
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import email,sys\nm=email.message_from_file(open(sys.argv[1]))\n\
             print(m['X-XARF'], m['To'], m.get_content_type())\n\
             [print(p.get_filename(), '|', p.get_payload().strip().splitlines()[:3]) for p in m.get_payload()]",
            sent.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&parsed.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "PLAIN abuse@example.net multipart/mixed", "{text}");
    assert!(lines[1].starts_with("None | ['Dear Sir or Madam,'"), "{text}");
    assert!(lines[2].starts_with("report.txt | ['---', 'Reported-From: fail2ban@"), "{text}");
    assert!(lines[2].ends_with("'Category: abuse']"), "{text}");
    assert!(lines[3].starts_with("logfile.log | [") && lines[3].contains("Failed password for root from 192.0.2.7"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
}
