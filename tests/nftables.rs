//! The built-in nftables action: the scripts it hands to `nft` (golden
//! file), and the real thing inside a network namespace made for the test.

use std::sync::Arc;

use wasmban::capability::process::{RecordingRunner, SystemRunner};
use wasmban::wit::types::Ticket;

use crate::util::ticket;
use crate::util::{NetNs, builtin, golden, opts, root_skip_reason, runtime_with};

fn tickets(prefix: &str, n: usize) -> Vec<Ticket> {
    (0..n).map(|i| ticket(&format!("{prefix}{}.{}", i / 250, i % 250 + 1))).collect()
}

#[test]
fn a_batch_is_one_nft_run() {
    let rec = RecordingRunner::default();
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "nftables").action(opts(&[("name", "sshd"), ("port", "ssh,2222")])).unwrap();
    action.start().unwrap();
    let mut batch = vec![ticket("192.0.2.7"), ticket("2001:db8::7")];
    batch[1].bantime = -1;
    let results = action.ban(&batch).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let results = action.unban(&[ticket("192.0.2.7")]).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    action.stop().unwrap();
    let transcript: String = rec
        .runs()
        .iter()
        .map(|r| {
            let program = r.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            format!("$ {program} {}\n{}", r.args.join(" "), r.input.as_deref().unwrap_or(""))
        })
        .collect();
    golden("nftables-multiport.txt", &transcript);

    // Ten thousand bans: still one process.
    let before = rec.runs().len();
    let results = action.ban(&tickets("10.1.", 10_000)).unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(rec.runs().len(), before + 2, "a restart of the table, then one nft run for the whole batch");
}

#[test]
fn what_is_not_an_address_never_reaches_nft() {
    let rec = RecordingRunner::default();
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "nftables").action(opts(&[("name", "sshd")])).unwrap();
    action.start().unwrap();
    let before = rec.runs().len();
    let results = action.ban(&[ticket("1.2.3.4 } ; flush ruleset ; {"), ticket("10.0.0.0/33")]).unwrap();
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert_eq!(rec.runs().len(), before);
    let err = builtin(&rt, "nftables").action(opts(&[("port", "22 } ; flush ruleset")])).err().unwrap();
    assert!(err.to_string().contains("`port`"), "{err}");
}

/// The real nft, inside a namespace this test creates and deletes.
#[test]
fn real_nftables_in_a_network_namespace() {
    if let Some(why) = root_skip_reason(&["nft", "ip"]) {
        crate::util::skipped!("real_nftables_in_a_network_namespace: {why}");
        return;
    }
    let ns = NetNs::new("nft");
    // What a killed daemon leaves: our table with a stale ban in it.
    let stale = "table inet wasmban-sshd {\n set addr-set-sshd { type ipv4_addr; flags timeout; elements = { 192.0.2.66 } }\n}\n";
    std::fs::write(std::env::temp_dir().join(format!("{}.nft", ns.name)), stale).unwrap();
    ns.exec(&["nft", "-f", std::env::temp_dir().join(format!("{}.nft", ns.name)).to_str().unwrap()]);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{}.nft", ns.name)));

    let rt = runtime_with(Arc::new(SystemRunner));
    let mut action = builtin(&rt, "nftables").action(opts(&[("name", "sshd"), ("port", "22,2222")])).unwrap();
    let mut other = builtin(&rt, "nftables").action(opts(&[("name", "web"), ("port", "http")])).unwrap();
    ns.run(|| {
        action.start().unwrap();
        other.start().unwrap();
        let mut batch = tickets("10.9.", 2000);
        batch.push(ticket("2001:db8::7"));
        let results = action.ban(&batch).unwrap();
        assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
        // Banning again changes nothing and is no error.
        assert!(action.ban(&[ticket("10.9.0.1")]).unwrap()[0].is_ok());
        action.check().unwrap();
        // An unban of an address whose element already expired is no error.
        assert!(action.unban(&[ticket("192.0.2.99")]).unwrap()[0].is_ok());
        assert!(action.unban(&[ticket("10.9.0.2")]).unwrap()[0].is_ok());
    });
    let ruleset = ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    assert!(!ruleset.contains("192.0.2.66"), "the stale ban survived the start: {ruleset}");
    assert!(ruleset.contains("tcp dport { 22, 2222 } ip saddr @addr-set-sshd reject"), "{ruleset}");
    assert!(ruleset.contains("10.9.0.1 timeout 10m"), "{ruleset}");
    assert!(!ruleset.contains("10.9.0.2 "), "{ruleset}");
    assert!(ruleset.contains("10.9.7.250 timeout"), "{ruleset}");
    assert!(ruleset.contains("2001:db8::7 timeout"), "{ruleset}");

    // Drift, as reconciliation finds it: an element deleted by hand comes
    // back, one the action does not hold goes.
    ns.exec(&["nft", "delete", "element", "inet", "wasmban-sshd", "addr-set-sshd", "{ 10.9.0.1 }"]);
    ns.exec(&["nft", "add", "element", "inet", "wasmban-sshd", "addr-set-sshd", "{ 192.0.2.77 }"]);
    ns.run(|| action.check().unwrap());
    let ruleset = ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    assert!(ruleset.contains("10.9.0.1 timeout"), "a lost ban was not added again: {ruleset}");
    assert!(!ruleset.contains("192.0.2.77"), "a foreign element stayed: {ruleset}");

    // Someone deletes the table under us: check rebuilds it with every ban.
    ns.exec(&["nft", "delete", "table", "inet", "wasmban-sshd"]);
    ns.run(|| action.check().unwrap());
    let ruleset = ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    assert!(ruleset.contains("ip saddr @addr-set-sshd reject"), "{ruleset}");
    assert!(ruleset.contains("10.9.7.250 timeout") && ruleset.contains("2001:db8::7 timeout"), "{ruleset}");
    assert!(!ruleset.contains("10.9.0.2 "), "a lifted ban came back: {ruleset}");

    // Prefix bans live in interval sets: any address inside is matched.
    // One that overlaps a prefix already banned is refused by nft, and
    // costs the addresses of its batch nothing.
    ns.run(|| {
        let batch = [ticket("2001:db8:0:7::/64"), ticket("192.0.2.0/24"), ticket("10.9.100.1")];
        let results = action.ban(&batch).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let results = action.ban(&[ticket("2001:db8::/32"), ticket("10.9.100.2")]).unwrap();
        assert!(results[0].is_err() && results[1].is_ok(), "{results:?}");
    });
    let ruleset = ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    assert!(ruleset.contains("ip6 saddr @net6-set-sshd reject"), "{ruleset}");
    assert!(ruleset.contains("2001:db8:0:7::/64 timeout") && ruleset.contains("192.0.2.0/24 timeout"), "{ruleset}");
    assert!(ruleset.contains("10.9.100.2 timeout"), "{ruleset}");
    let inside = ns.exec(&["nft", "get", "element", "inet", "wasmban-sshd", "net6-set-sshd", "{ 2001:db8:0:7::abcd }"]);
    assert!(inside.contains("2001:db8:0:7::/64"), "{inside}");
    ns.exec(&["nft", "delete", "element", "inet", "wasmban-sshd", "net-set-sshd", "{ 192.0.2.0/24 }"]);
    ns.run(|| action.check().unwrap());
    let ruleset = ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    assert!(ruleset.contains("192.0.2.0/24 timeout"), "a lost prefix ban was not added again: {ruleset}");
    ns.run(|| assert!(action.unban(&[ticket("2001:db8:0:7::/64")]).unwrap()[0].is_ok()));
    let ruleset = ns.exec(&["nft", "list", "table", "inet", "wasmban-sshd"]);
    assert!(!ruleset.contains("2001:db8:0:7::/64"), "{ruleset}");

    ns.run(|| {
        action.stop().unwrap();
        // Stopping twice (the table is gone) is no error either.
        action.stop().unwrap();
    });
    let ruleset = ns.exec(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("wasmban-sshd"), "{ruleset}");
    assert!(ruleset.contains("wasmban-web"), "another jail's table must stay: {ruleset}");
    ns.run(|| other.stop().unwrap());
    assert!(!ns.exec(&["nft", "list", "ruleset"]).contains("wasmban"));
}

/// fail2ban's stock jails `3proxy` (a name that starts with a digit) and
/// `pass2allow-ftp` (banned addresses pass, the others are dropped) with
/// the real nft, in a namespace.
#[test]
fn stock_jails_3proxy_and_pass2allow_ftp_in_a_network_namespace() {
    if let Some(why) = root_skip_reason(&["nft", "ip"]) {
        crate::util::skipped!("stock_jails_3proxy_and_pass2allow_ftp_in_a_network_namespace: {why}");
        return;
    }
    let ns = NetNs::new("nftstock");
    let rt = runtime_with(Arc::new(SystemRunner));
    let mut proxy = builtin(&rt, "nftables").action(opts(&[("name", "3proxy"), ("port", "3128")])).unwrap();
    let pass = opts(&[
        ("name", "pass2allow-ftp"),
        ("port", "ftp,ftp-data,ftps,ftps-data"),
        ("blocktype", "RETURN"),
        ("returntype", "DROP"),
    ]);
    let mut pass = builtin(&rt, "nftables").action(pass).unwrap();
    ns.run(|| {
        proxy.start().unwrap();
        pass.start().unwrap();
        assert!(proxy.ban(&[ticket("192.0.2.3")]).unwrap()[0].is_ok());
        assert!(pass.ban(&[ticket("192.0.2.4")]).unwrap()[0].is_ok());
        proxy.check().unwrap();
        pass.check().unwrap();
    });
    let rules = ns.exec(&["nft", "list", "ruleset"]);
    assert!(rules.contains("table inet wasmban-3proxy"), "{rules}");
    assert!(rules.contains("ip saddr @addr-set-pass2allow-ftp return"), "{rules}");
    assert!(rules.contains("tcp dport { 20, 21, 989, 990 } drop"), "{rules}");
    ns.run(|| {
        proxy.stop().unwrap();
        pass.stop().unwrap();
    });
}
