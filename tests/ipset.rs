//! The built-in iptables-ipset action: the exact argv and `ipset restore`
//! scripts it produces (a golden file), and the real ipset and iptables
//! inside a network namespace made for the test.

use std::sync::Arc;

use wasmban::capability::process::{ProgramOutput, RecordingRunner, SystemRunner};
use wasmban::wit::types::Ticket;

use crate::util::{NetNs, builtin, golden, opts, root_skip_reason, runtime_with, ticket};

fn transcript(recorder: &RecordingRunner) -> String {
    recorder
        .runs()
        .iter()
        .map(|r| {
            let program = r.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let input = r.input.as_deref().map(|i| format!("  <<\n{i}")).unwrap_or_default();
            format!("{program} {}\n{input}", r.args.join(" "))
        })
        .collect()
}

fn lasting(ip: &str, bantime: i64) -> Ticket {
    Ticket { bantime, ..ticket(ip) }
}

const FROM_BANTIME: &str = r#"$([ "<bantime>" -le 2147483 ] && echo "<bantime>" || echo 0)"#;

/// Start, a batch of bans in both families, an unban, a prolonged ban,
/// flush and stop: the whole conversation with the firewall.
#[test]
fn proto6_multiport_argv() {
    // Jump rules are absent until inserted; everything else succeeds.
    let rec = RecordingRunner::answering(|run| ProgramOutput {
        status: if run.args.iter().any(|a| a == "-C") { 1 } else { 0 },
        ..Default::default()
    });
    let rt = runtime_with(Arc::new(rec.clone()));
    let options = [("name", "sshd"), ("port", "ssh,2222"), ("type", "multiport"), ("ipsettime", FROM_BANTIME)];
    let mut action = builtin(&rt, "iptables-ipset").action(opts(&options)).unwrap();
    assert!(action.is_evented());
    action.start().unwrap();
    let results =
        action.ban(&[lasting("192.0.2.7", 600), lasting("2001:db8::7", -1), lasting("192.0.2.8", 3_000_000)]).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(action.unban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());
    let flushed = action.flush().unwrap();
    assert!(flushed);
    action.stop().unwrap();
    golden("iptables-ipset-proto6.txt", &transcript(&rec));
}

#[test]
fn what_is_not_an_address_never_reaches_ipset() {
    let rec = RecordingRunner::answering(|_| ProgramOutput::default());
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables-ipset").action(opts(&[("name", "sshd")])).unwrap();
    action.start().unwrap();
    let before = rec.runs().len();
    let results = action.ban(&[ticket("-exist"), ticket("192.0.2.1\nflush f2b-sshd"), ticket("10.0.0.0/8")]).unwrap();
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert_eq!(rec.runs().len(), before);
}

/// Prefix bans need `ipsettype = hash:net`: the set then holds the prefix,
/// and the kernel matches every address inside it; overlapping members
/// are fine in a hash:net set.
#[test]
fn prefix_bans_go_into_a_hash_net_set() {
    if let Some(why) = root_skip_reason(&["ipset", "iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("prefix_bans_go_into_a_hash_net_set: {why}");
        return;
    }
    let ns = NetNs::new("ipsetnet");
    let rt = runtime_with(Arc::new(SystemRunner));
    let options = [("name", "sshd"), ("ipsettype", "hash:net"), ("maxelem", "200000"), ("ipsettime", FROM_BANTIME)];
    let mut action = builtin(&rt, "iptables-ipset").action(opts(&options)).unwrap();
    ns.run(|| {
        action.start().unwrap();
        let batch = [lasting("2001:db8:0:7::/64", 600), lasting("192.0.2.0/24", 600), lasting("192.0.2.9", 600)];
        let results = action.ban(&batch).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        action.check().unwrap();
    });
    let saved = ns.exec(&["ipset", "save"]);
    assert!(saved.contains("create f2b-sshd6 hash:net family inet6") && saved.contains("maxelem 200000"), "{saved}");
    assert!(saved.contains("add f2b-sshd6 2001:db8:0:7::/64 timeout"), "{saved}");
    assert!(saved.contains("add f2b-sshd 192.0.2.0/24 timeout") && saved.contains("add f2b-sshd 192.0.2.9 timeout"));
    ns.exec(&["ipset", "test", "f2b-sshd6", "2001:db8:0:7::abcd"]);
    ns.run(|| {
        assert!(action.unban(&[lasting("2001:db8:0:7::/64", 600)]).unwrap()[0].is_ok());
        action.check().unwrap();
    });
    // The check compared the listed forms with the bans: nothing came back,
    // nothing was lost.
    let saved = ns.exec(&["ipset", "save"]);
    assert!(!saved.contains("2001:db8:0:7::/64") && saved.contains("add f2b-sshd 192.0.2.0/24 timeout"), "{saved}");
    ns.run(|| action.stop().unwrap());
}

/// Debian's stock iptables-ipset-proto6, in a namespace: bans in the sets
/// with the kernel timeouts fail2ban's `<timeout-bantime>` asks for, drift
/// repaired, a set destroyed by hand made again, everything gone at stop.
#[test]
fn real_ipset_in_a_network_namespace() {
    if let Some(why) = root_skip_reason(&["ipset", "iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("real_ipset_in_a_network_namespace: {why}");
        return;
    }
    let ns = NetNs::new("ipset");
    let rt = runtime_with(Arc::new(SystemRunner));
    let options = [("name", "sshd"), ("port", "22,2222"), ("type", "multiport"), ("ipsettime", FROM_BANTIME)];
    let mut action = builtin(&rt, "iptables-ipset").action(opts(&options)).unwrap();
    // What an earlier run killed with -9 left: the set with a stale ban.
    ns.exec(&["ipset", "create", "f2b-sshd", "hash:ip", "timeout", "0"]);
    ns.exec(&["ipset", "add", "f2b-sshd", "192.0.2.66"]);
    let batch: Vec<Ticket> = (1..=200).map(|i| lasting(&format!("198.51.100.{}", i % 250), 600)).collect();
    ns.run(|| {
        action.start().unwrap();
        let results = action.ban(&[lasting("192.0.2.7", 600), lasting("2001:db8::7", -1)]).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!(action.ban(&batch).unwrap().iter().all(Result::is_ok));
        // Banning again changes nothing but the timeout.
        action.ban(&[lasting("192.0.2.7", 900)]).unwrap();
        action.check().unwrap();
    });
    let saved = ns.exec(&["ipset", "save", "f2b-sshd"]);
    assert!(!saved.contains("192.0.2.66"), "the stale ban survived: {saved}");
    let timeout = |saved: &str, ip: &str| -> u32 {
        let line = saved.lines().find(|l| l.starts_with(&format!("add f2b-sshd {ip} "))).unwrap_or_else(|| {
            panic!("{ip} is not in the set:\n{saved}");
        });
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!((800..=900).contains(&timeout(&saved, "192.0.2.7")), "{saved}");
    assert_eq!(saved.lines().filter(|l| l.starts_with("add f2b-sshd 198.51.100.")).count(), 200, "{saved}");
    let saved6 = ns.exec(&["ipset", "save", "f2b-sshd6"]);
    assert!(saved6.contains("add f2b-sshd6 2001:db8::7 timeout 0"), "a permanent ban has no timeout: {saved6}");
    let rules = ns.exec(&["iptables", "-w", "-S", "INPUT"]);
    assert!(
        rules.contains("-A INPUT -p tcp -m multiport --dports 22,2222 -m set --match-set f2b-sshd src -j REJECT"),
        "{rules}"
    );
    assert!(ns.exec(&["ip6tables", "-w", "-S", "INPUT"]).contains("--match-set f2b-sshd6 src"));

    // Drift: a ban deleted by hand comes back, an address added by hand
    // goes, and a set destroyed by hand (after its jump) comes back whole.
    ns.exec(&["ipset", "del", "f2b-sshd", "192.0.2.7"]);
    ns.exec(&["ipset", "add", "f2b-sshd", "192.0.2.77"]);
    ns.run(|| action.check().unwrap());
    let saved = ns.exec(&["ipset", "save", "f2b-sshd"]);
    assert!(saved.contains("add f2b-sshd 192.0.2.7 ") && !saved.contains("192.0.2.77"), "{saved}");
    ns.exec(&[
        "ip6tables",
        "-w",
        "-D",
        "INPUT",
        "-p",
        "tcp",
        "-m",
        "multiport",
        "--dports",
        "22,2222",
        "-m",
        "set",
        "--match-set",
        "f2b-sshd6",
        "src",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp6-port-unreachable",
    ]);
    ns.exec(&["ipset", "destroy", "f2b-sshd6"]);
    ns.run(|| action.check().unwrap());
    assert!(ns.exec(&["ipset", "save", "f2b-sshd6"]).contains("add f2b-sshd6 2001:db8::7"));
    assert!(ns.exec(&["ip6tables", "-w", "-S", "INPUT"]).contains("--match-set f2b-sshd6 src"));

    // An unban of an address already gone is no error.
    ns.exec(&["ipset", "del", "f2b-sshd6", "2001:db8::7"]);
    ns.run(|| assert!(action.unban(&[ticket("2001:db8::7"), ticket("192.0.2.7")]).unwrap().iter().all(Result::is_ok)));
    assert!(!ns.exec(&["ipset", "save", "f2b-sshd"]).contains("192.0.2.7 "));

    ns.run(|| action.stop().unwrap());
    assert!(!ns.exec(&["ipset", "list", "-n"]).contains("f2b-"));
    for program in ["iptables", "ip6tables"] {
        let rules = ns.exec(&[program, "-w", "-S"]);
        assert!(!rules.contains("f2b-"), "stop left {program} rules behind: {rules}");
    }
}

/// The daemon with Debian's own action.d and `banaction =
/// iptables-ipset-proto6` as admins write it, in a namespace, with no
/// grant given: the ban lands in the set with the ban's length as its
/// kernel timeout, `unban` takes it out, and stopping removes the set.
#[test]
fn the_daemon_bans_into_the_set_with_debians_stock_action() {
    use crate::util::daemon::{Daemon, append, failure, tree};
    if let Some(why) = root_skip_reason(&["ipset", "iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("the_daemon_bans_into_the_set_with_debians_stock_action: {why}");
        return;
    }
    let stock = std::path::Path::new("/etc/fail2ban/action.d");
    if !stock.join("iptables-ipset-proto6.conf").is_file() {
        crate::util::skipped!("the_daemon_bans_into_the_set_with_debians_stock_action: fail2ban is not installed");
        return;
    }
    let ns = NetNs::new("ipset-d");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        "[sshd]\nbanaction = iptables-ipset-proto6\n\
         action = %(banaction)s[name=sshd, port=\"22,2222\", ipsettime=\"<timeout-bantime>\"]\n",
    );
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start_ready(root, Some(&ns.name));
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    d.wait_for("the ban", || d.status().is_some_and(|s| s["total_banned"] == 1));
    let saved = ns.exec(&["ipset", "save", "f2b-sshd"]);
    let line = saved.lines().find(|l| l.starts_with("add f2b-sshd 192.0.2.44 timeout ")).unwrap_or_else(|| {
        panic!("not in the set:\n{saved}\n{}", d.log());
    });
    let timeout: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&timeout), "bantime is 1h: {line}");
    assert!(!d.log().contains("runs without an action"), "{}", d.log());
    assert!(d.client(&["unban", "192.0.2.44"]).0);
    assert!(!ns.exec(&["ipset", "save", "f2b-sshd"]).contains("192.0.2.44"));
    assert!(d.client(&["stop"]).0);
    assert!(d.wait().success());
    assert!(!ns.exec(&["ipset", "list", "-n"]).contains("f2b-"));
    assert!(!ns.exec(&["iptables", "-w", "-S"]).contains("f2b-sshd"));
}

/// wasmban's own action.d file gives each address the ban's length as
/// its kernel timeout.
#[test]
fn the_shipped_action_file_sets_kernel_timeouts_from_the_ban() {
    use wasmban::config::action::ActionDefinition;
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let def = ActionDefinition::load(&config, "iptables-ipset", &[("name".into(), "sshd".into())], &Default::default())
        .unwrap();
    assert_eq!(def.plugin(), Some("iptables-ipset"));
    let rec = RecordingRunner::answering(|_| ProgramOutput::default());
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables-ipset").action(def.plugin_options()).unwrap();
    action.start().unwrap();
    action.ban(&[lasting("192.0.2.9", 1800), lasting("192.0.2.10", -1)]).unwrap();
    let script = rec.runs().iter().filter_map(|r| r.input.clone()).collect::<String>();
    assert_eq!(script, "add f2b-sshd 192.0.2.9 timeout 1800\nadd f2b-sshd 192.0.2.10 timeout 0\n");
}

/// Debian's shorewall-ipset-proto6: the set only, for the admin's
/// shorewall rules: no iptables rule of its own, and the set is emptied at
/// stop but kept, since those rules refer to it.
#[test]
fn shorewalls_ipset_is_the_set_only_and_outlives_the_jail() {
    use wasmban::config::action::ActionDefinition;
    if let Some(why) = root_skip_reason(&["ipset", "iptables", "ip"]) {
        crate::util::skipped!("shorewalls_ipset_is_the_set_only_and_outlives_the_jail: {why}");
        return;
    }
    let stock = std::path::Path::new("/etc/fail2ban");
    if !stock.join("action.d/shorewall-ipset-proto6.conf").is_file() {
        crate::util::skipped!("shorewalls_ipset_is_the_set_only_and_outlives_the_jail: fail2ban is not installed");
        return;
    }
    let def =
        ActionDefinition::load(stock, "shorewall-ipset-proto6", &[("name".into(), "sshd".into())], &Default::default())
            .unwrap();
    assert_eq!(def.plugin(), Some("iptables-ipset"));
    let ns = NetNs::new("ipset-sw");
    let rt = runtime_with(Arc::new(SystemRunner));
    let mut action = builtin(&rt, "iptables-ipset").action(def.plugin_options()).unwrap();
    ns.run(|| {
        action.start().unwrap();
        assert!(action.ban(&[lasting("192.0.2.7", 600)]).unwrap()[0].is_ok());
        action.check().unwrap();
    });
    assert!(ns.exec(&["ipset", "save", "f2b-sshd"]).contains("add f2b-sshd 192.0.2.7 timeout 0"));
    assert!(!ns.exec(&["iptables", "-w", "-S"]).contains("f2b-"));
    ns.run(|| action.stop().unwrap());
    let saved = ns.exec(&["ipset", "save", "f2b-sshd"]);
    assert!(saved.starts_with("create f2b-sshd hash:ip") && !saved.contains("192.0.2.7"), "{saved}");
}
