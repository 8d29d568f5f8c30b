//! The built-in iptables action: the exact argv it produces (golden files),
//! and the real thing inside a network namespace made for the test.

use std::sync::Arc;

use wasmban::capability::process::{ProgramOutput, RecordingRunner, SystemRunner};
use wasmban::wit::types::Ticket;

use crate::util::{NetNs, builtin, golden, opts, root_skip_reason, runtime_with, ticket};

/// Answers `-C` (check) with "absent" unless `present` says otherwise.
fn recorder(present: bool) -> RecordingRunner {
    RecordingRunner::answering(move |run| {
        let is_check = run.args.iter().any(|a| a == "-C");
        ProgramOutput { status: if is_check && !present { 1 } else { 0 }, ..Default::default() }
    })
}

fn transcript(recorder: &RecordingRunner) -> String {
    recorder
        .runs()
        .iter()
        .map(|r| {
            let program = r.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            format!("{program} {}\n", r.args.join(" "))
        })
        .collect()
}

fn lifecycle(options: &[(&str, &str)]) -> String {
    let rec = recorder(false);
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables").action(opts(options)).unwrap();
    action.start().unwrap();
    let results = action.ban(&[ticket("192.0.2.7"), ticket("2001:db8::7")]).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let results = action.unban(&[ticket("192.0.2.7")]).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    action.stop().unwrap();
    transcript(&rec)
}

#[test]
fn multiport_argv() {
    golden("iptables-multiport.txt", &lifecycle(&[("name", "sshd"), ("port", "ssh,2222")]));
}

#[test]
fn allports_argv_with_drop() {
    golden(
        "iptables-allports.txt",
        &lifecycle(&[("name", "recidive"), ("type", "allports"), ("blocktype", "DROP"), ("protocol", "all")]),
    );
}

#[test]
fn oneport_argv_on_another_chain() {
    golden(
        "iptables-oneport.txt",
        &lifecycle(&[("name", "postfix"), ("type", "oneport"), ("port", "25"), ("chain", "FORWARD")]),
    );
}

#[test]
fn a_ban_already_in_place_is_not_added_twice() {
    let rec = recorder(true);
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd")])).unwrap();
    action.start().unwrap();
    action.ban(&[ticket("192.0.2.8")]).unwrap();
    let inserts = rec
        .runs()
        .iter()
        .filter(|r| r.args.iter().any(|a| a == "192.0.2.8") && r.args.contains(&"-I".to_string()))
        .count();
    assert_eq!(inserts, 0);
}

#[test]
fn an_address_that_is_not_one_never_reaches_the_argv() {
    let rec = recorder(false);
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd")])).unwrap();
    action.start().unwrap();
    let before = rec.runs().len();
    let results = action.ban(&[ticket("-F"), ticket("192.0.2.1 -j ACCEPT")]).unwrap();
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert_eq!(rec.runs().len(), before);
}

#[test]
fn bad_options_are_a_creation_error_naming_the_option() {
    let rt = runtime_with(Arc::new(recorder(false)));
    let err = builtin(&rt, "iptables").action(opts(&[("type", "everyport")])).err().unwrap();
    assert!(err.to_string().contains("`type`"), "{err}");
}

/// The real firewall, inside a namespace this test creates and deletes.
#[test]
fn real_iptables_in_a_network_namespace() {
    if let Some(why) = root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("real_iptables_in_a_network_namespace: {why}");
        return;
    }
    let ns = NetNs::new("ipt");
    let rt = runtime_with(Arc::new(SystemRunner));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd"), ("port", "22,2222")])).unwrap();
    ns.run(|| {
        action.start().unwrap();
        let results = action.ban(&[ticket("192.0.2.7"), ticket("2001:db8::7")]).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // Banning again changes nothing.
        action.ban(&[ticket("192.0.2.7")]).unwrap();
        action.check().unwrap();
    });
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    assert!(rules.contains("-A INPUT -p tcp -m multiport --dports 22,2222 -j f2b-sshd"), "{rules}");
    assert_eq!(rules.matches("-A f2b-sshd -s 192.0.2.7/32 -j REJECT").count(), 1, "{rules}");
    let rules6 = ns.exec(&["ip6tables", "-w", "-S"]);
    assert!(
        rules6.contains("-A f2b-sshd -s 2001:db8::7/128 -j REJECT --reject-with icmp6-port-unreachable"),
        "{rules6}"
    );

    // Drift, as reconciliation finds it: a ban rule deleted by hand comes
    // back, a ban rule the action does not hold goes.
    ns.exec(&[
        "iptables",
        "-w",
        "-D",
        "f2b-sshd",
        "-s",
        "192.0.2.7",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-port-unreachable",
    ]);
    ns.exec(&["iptables", "-w", "-I", "f2b-sshd", "1", "-s", "192.0.2.77", "-j", "DROP"]);
    ns.run(|| action.check().unwrap());
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    assert_eq!(rules.matches("-A f2b-sshd -s 192.0.2.7/32 -j REJECT").count(), 1, "{rules}");
    assert!(!rules.contains("192.0.2.77"), "{rules}");
    // An unban of a rule deleted by hand is no error: the kernel agrees.
    ns.exec(&[
        "ip6tables",
        "-w",
        "-D",
        "f2b-sshd",
        "-s",
        "2001:db8::7",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp6-port-unreachable",
    ]);
    ns.run(|| assert!(action.unban(&[ticket("2001:db8::7")]).unwrap()[0].is_ok()));
    ns.run(|| action.ban(&[ticket("2001:db8::7")]).unwrap());

    // Someone flushes the structure under us: check notices and rebuilds.
    ns.run(|| ns_flush_and_check(&mut action));

    ns.run(|| action.stop().unwrap());
    for program in ["iptables", "ip6tables"] {
        let rules = ns.exec(&[program, "-w", "-S"]);
        assert!(!rules.contains("f2b-"), "stop left {program} rules behind: {rules}");
    }
}

fn ns_flush_and_check(action: &mut wasmban::plugin::ActionInstance) {
    // Runs inside the namespace thread: remove the jump and the RETURN rule.
    let run = |args: &[&str]| {
        let status = std::process::Command::new("iptables").args(args).status().unwrap();
        assert!(status.success(), "{args:?}");
    };
    run(&["-w", "-D", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22,2222", "-j", "f2b-sshd"]);
    run(&["-w", "-F", "f2b-sshd"]);
    action.check().unwrap();
    // After the repair the structure is whole again, with its ban.
    let out = std::process::Command::new("iptables").args(["-w", "-S"]).output().unwrap();
    let rules = String::from_utf8_lossy(&out.stdout);
    assert!(rules.contains("-A INPUT -p tcp -m multiport --dports 22,2222 -j f2b-sshd"), "{rules}");
    assert!(rules.contains("-A f2b-sshd -j RETURN"), "{rules}");
    assert!(rules.contains("-A f2b-sshd -s 192.0.2.7/32 -j REJECT"), "{rules}");
}

#[test]
fn a_structure_left_by_a_crash_is_rebuilt_at_start() {
    if let Some(why) = root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("a_structure_left_by_a_crash_is_rebuilt_at_start: {why}");
        return;
    }
    let ns = NetNs::new("ipt-left");
    // What a killed daemon leaves: the chain, its jump, and a stale ban.
    for args in [
        &["iptables", "-w", "-N", "f2b-sshd"][..],
        &["iptables", "-w", "-A", "f2b-sshd", "-s", "192.0.2.66", "-j", "REJECT"],
        &["iptables", "-w", "-A", "f2b-sshd", "-j", "RETURN"],
        &["iptables", "-w", "-I", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"],
    ] {
        ns.exec(args);
    }
    let rt = runtime_with(Arc::new(SystemRunner));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd"), ("port", "22")])).unwrap();
    ns.run(|| {
        action.start().unwrap();
        action.ban(&[ticket("192.0.2.7")]).unwrap();
    });
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    assert!(!rules.contains("192.0.2.66"), "the stale ban survived: {rules}");
    assert_eq!(rules.matches("-j f2b-sshd").count(), 1, "{rules}");
    assert!(rules.contains("-A f2b-sshd -s 192.0.2.7/32 -j REJECT"), "{rules}");
    ns.run(|| action.stop().unwrap());
    assert!(!ns.exec(&["iptables", "-w", "-S"]).contains("f2b-"));
}

/// A batch lists the chain once and inserts only what is missing: n + 1
/// processes for n bans (restored bans already in place are skipped).
#[test]
fn a_batch_lists_the_chain_once_and_skips_what_is_there() {
    let rec = RecordingRunner::answering(|run| {
        let listing = run.args.iter().any(|a| a == "-S");
        ProgramOutput {
            stdout: if listing {
                "-N f2b-sshd\n-A f2b-sshd -s 192.0.2.8/32 -j REJECT --reject-with icmp-port-unreachable\n-A f2b-sshd -j RETURN\n".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    });
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd")])).unwrap();
    action.start().unwrap();
    let before = rec.runs().len();
    let batch: Vec<Ticket> = (1..=10).map(|i| ticket(&format!("192.0.2.{i}"))).collect();
    assert!(action.ban(&batch).unwrap().iter().all(Result::is_ok));
    let runs = &rec.runs()[before..];
    assert_eq!(runs.len(), 2, "one listing, one iptables-restore: {runs:?}");
    let restore = &runs[1];
    assert!(restore.program.ends_with("iptables-restore") && restore.args == ["-w", "--noflush"], "{restore:?}");
    let script = restore.input.as_deref().unwrap();
    assert!(script.starts_with("*filter\n-I f2b-sshd 1 -s 192.0.2.1 -j REJECT --reject-with icmp-port-unreachable\n"));
    assert!(script.ends_with("COMMIT\n") && script.lines().count() == 2 + 9, "{script}");
    assert!(!script.contains("192.0.2.8 "), "192.0.2.8 was inserted again");
    // A batch of unbans is one transaction too.
    let before = rec.runs().len();
    assert!(action.unban(&batch).unwrap().iter().all(Result::is_ok));
    let runs = &rec.runs()[before..];
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].input.as_deref().unwrap().matches("-D f2b-sshd -s ").count(), 10);
}

/// A restore that fails (a rule the kernel refuses) costs the batch's other
/// bans nothing: they go in one at a time.
#[test]
fn a_failed_restore_falls_back_to_one_rule_at_a_time() {
    let rec = RecordingRunner::answering(|run| ProgramOutput {
        status: if run.program.ends_with("iptables-restore") { 2 } else { 0 },
        ..Default::default()
    });
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd")])).unwrap();
    action.start().unwrap();
    let before = rec.runs().len();
    let batch: Vec<Ticket> = (1..=3).map(|i| ticket(&format!("192.0.2.{i}"))).collect();
    assert!(action.ban(&batch).unwrap().iter().all(Result::is_ok));
    let inserts = rec.runs()[before..].iter().filter(|r| r.args.iter().any(|a| a == "-I")).count();
    assert_eq!(inserts, 3);
}

/// fail2ban 1.1's lists: a jump from each chain for each protocol, all
/// checked and all removed at stop.
#[test]
fn several_chains_and_protocols_in_a_network_namespace() {
    if let Some(why) = root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("several_chains_and_protocols_in_a_network_namespace: {why}");
        return;
    }
    let ns = NetNs::new("iptmulti");
    let rt = runtime_with(Arc::new(SystemRunner));
    let options = opts(&[("name", "multi"), ("port", "53"), ("chain", "INPUT,FORWARD"), ("protocol", "tcp,udp")]);
    let mut action = builtin(&rt, "iptables").action(options).unwrap();
    ns.run(|| {
        action.start().unwrap();
        assert!(action.ban(&[ticket("192.0.2.9")]).unwrap()[0].is_ok());
        action.check().unwrap();
    });
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    for chain in ["INPUT", "FORWARD"] {
        for proto in ["tcp", "udp"] {
            let jump = format!("-A {chain} -p {proto} -m multiport --dports 53 -j f2b-multi");
            assert!(rules.contains(&jump), "{jump}\n{rules}");
        }
    }
    // One jump gone: check puts the structure back whole.
    ns.exec(&["iptables", "-w", "-D", "FORWARD", "-p", "udp", "-m", "multiport", "--dports", "53", "-j", "f2b-multi"]);
    ns.run(|| action.check().unwrap());
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    assert!(rules.contains("-A FORWARD -p udp -m multiport --dports 53 -j f2b-multi"), "{rules}");
    assert!(rules.contains("-A f2b-multi -s 192.0.2.9/32 -j REJECT"), "{rules}");
    ns.run(|| action.stop().unwrap());
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    assert!(!rules.contains("f2b-multi"), "{rules}");
}

/// Debian's stock iptables-multiport-log and iptables-new files, as the
/// built-in component carries them out, in a namespace: banned packets
/// go through a logging chain, and jumps match new connections only.
#[test]
fn fail2bans_log_and_new_variants_in_a_network_namespace() {
    use wasmban::config::action::ActionDefinition;
    if let Some(why) = root_skip_reason(&["iptables", "ip6tables", "ip"]) {
        crate::util::skipped!("fail2bans_log_and_new_variants_in_a_network_namespace: {why}");
        return;
    }
    let stock = std::path::Path::new("/etc/fail2ban");
    if !stock.join("action.d/iptables-multiport-log.conf").is_file() {
        crate::util::skipped!("fail2bans_log_and_new_variants_in_a_network_namespace: fail2ban is not installed");
        return;
    }
    let ns = NetNs::new("ipt-var");
    let rt = runtime_with(Arc::new(SystemRunner));
    let load = |file: &str, name: &str, port: &str| {
        let params = [("name".to_string(), name.to_string()), ("port".to_string(), port.to_string())];
        let def = ActionDefinition::load(stock, file, &params, &Default::default()).unwrap();
        assert_eq!(def.plugin(), Some("iptables"), "{file}");
        builtin(&rt, "iptables").action(def.plugin_options()).unwrap()
    };
    let mut logged = load("iptables-multiport-log", "xinetd", "ftp,telnet");
    let mut fresh = load("iptables-new", "ssh-new", "22");
    ns.run(|| {
        for action in [&mut logged, &mut fresh] {
            action.start().unwrap();
            assert!(action.ban(&[ticket("192.0.2.7"), ticket("2001:db8::7")]).unwrap().iter().all(Result::is_ok));
            action.check().unwrap();
        }
    });
    let rules = ns.exec(&["iptables", "-w", "-S"]);
    for expected in [
        "-A INPUT -p tcp -m multiport --dports 21,23 -j f2b-xinetd",
        "-A f2b-xinetd -s 192.0.2.7/32 -j f2b-xinetd-log",
        "-A f2b-xinetd-log -m limit --limit 6/min --limit-burst 2 -j LOG --log-prefix \"f2b-xinetd:DROP \"",
        "-A f2b-xinetd-log -j REJECT --reject-with icmp-port-unreachable",
        "-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j f2b-ssh-new",
        "-A f2b-ssh-new -s 192.0.2.7/32 -j REJECT --reject-with icmp-port-unreachable",
    ] {
        assert!(rules.contains(expected), "missing {expected:?} in:\n{rules}");
    }
    let rules6 = ns.exec(&["ip6tables", "-w", "-S"]);
    assert!(rules6.contains("-A f2b-xinetd-log -j REJECT --reject-with icmp6-port-unreachable"), "{rules6}");
    ns.run(|| {
        for action in [&mut logged, &mut fresh] {
            assert!(action.unban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());
            action.stop().unwrap();
        }
    });
    for program in ["iptables", "ip6tables"] {
        let rules = ns.exec(&[program, "-w", "-S"]);
        assert!(!rules.contains("f2b-"), "stop left {program} rules behind: {rules}");
    }
}

/// A batch through the real iptables-restore, in a namespace: every rule in
/// one transaction, each once, and a batch of unbans lifting them all.
#[test]
fn a_batch_goes_in_through_iptables_restore_in_a_network_namespace() {
    if let Some(why) = root_skip_reason(&["iptables", "iptables-restore", "ip6tables-restore", "ip"]) {
        crate::util::skipped!("a_batch_goes_in_through_iptables_restore: {why}");
        return;
    }
    let ns = NetNs::new("iptrestore");
    let rt = runtime_with(Arc::new(SystemRunner));
    let mut action = builtin(&rt, "iptables").action(opts(&[("name", "sshd"), ("port", "22")])).unwrap();
    let mut batch: Vec<Ticket> = (0..500).map(|i| ticket(&format!("10.7.{}.{}", i / 250, i % 250 + 1))).collect();
    batch.extend((1..=20).map(|i| ticket(&format!("2001:db8::{i:x}"))));
    batch.push(ticket("2001:db8:0:7::/64"));
    ns.run(|| {
        action.start().unwrap();
        assert!(action.ban(&[ticket("10.7.0.1")]).unwrap()[0].is_ok());
        let results = action.ban(&batch).unwrap();
        assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
        action.check().unwrap();
    });
    let rules = ns.exec(&["iptables", "-w", "-S", "f2b-sshd"]);
    assert_eq!(rules.matches(" -s 10.7.").count(), 500, "each address once:\n{rules}");
    let rules6 = ns.exec(&["ip6tables", "-w", "-S", "f2b-sshd"]);
    assert!(rules6.contains("-A f2b-sshd -s 2001:db8:0:7::/64 -j REJECT"), "{rules6}");
    assert_eq!(rules6.matches(" -s 2001:db8:").count(), 21, "{rules6}");
    ns.run(|| {
        let results = action.unban(&batch[1..]).unwrap();
        assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    });
    let rules = ns.exec(&["iptables", "-w", "-S", "f2b-sshd"]);
    assert_eq!(rules.matches(" -s 10.7.").count(), 1, "only 10.7.0.1 stays:\n{rules}");
    assert!(!ns.exec(&["ip6tables", "-w", "-S", "f2b-sshd"]).contains(" -s 2001:db8:"));
    ns.run(|| action.stop().unwrap());
}
