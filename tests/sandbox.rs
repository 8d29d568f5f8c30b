//! The sandbox properties: deadlines, memory caps, panics, no files, no
//! environment, errors as values, and recovery after every one of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmban::plugin::{PluginError, TrapKind};

use crate::util::{load_fixture, opts, runtime};

const QUICK: &str = "[limits]\ncall-timeout-ms = 300\nmemory-mb = 32\n";

fn field<'a>(scan: &'a wasmban::wit::types::Scan, name: &str) -> &'a str {
    scan.failures[0].fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).expect("field")
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline_while_other_instances_keep_serving() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut looping = plugin.filter(vec![]).unwrap();
    let mut healthy = plugin.filter(vec![]).unwrap();
    let looping_done = AtomicBool::new(false);

    let (trap, served) = std::thread::scope(|s| {
        let stuck = s.spawn(|| {
            let r = looping.feed("loop", 0.0, false);
            looping_done.store(true, Ordering::SeqCst);
            r
        });
        // The other instance answers while the first one spins.
        let mut served_during_loop = 0;
        while !looping_done.load(Ordering::SeqCst) {
            let scan = healthy.feed("fail 192.0.2.10", 0.0, false).unwrap();
            assert_eq!(scan.failures[0].host, "192.0.2.10");
            served_during_loop += 1;
        }
        (stuck.join().unwrap(), served_during_loop)
    });
    let err = trap.unwrap_err();
    assert_eq!(err.trap_kind(), Some(TrapKind::Timeout), "{err}");
    assert!(err.to_string().contains("hostile-filter") && err.to_string().contains("feed"), "{err}");
    assert!(served > 0, "the healthy instance was starved while the other looped");

    // The instance is rebuilt and the next call works.
    let scan = looping.feed("fail 192.0.2.11", 0.0, false).unwrap();
    assert_eq!(scan.failures[0].host, "192.0.2.11");
    let stats = looping.stats();
    assert_eq!((stats.traps, stats.rebuilds), (1, 1));
}

#[test]
fn deadline_is_per_call_not_per_instance() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut filter = plugin.filter(vec![]).unwrap();
    // Many short calls add up to far more than one call's deadline.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(700) {
        filter.feed("fail 192.0.2.1", 0.0, false).unwrap();
    }
    assert_eq!(filter.stats().traps, 0);
}

#[test]
fn memory_hog_is_capped_and_the_instance_recovers() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut filter = plugin.filter(vec![]).unwrap();
    let err = filter.feed("hog", 0.0, false).unwrap_err();
    assert_eq!(err.trap_kind(), Some(TrapKind::Memory), "{err}");
    assert!(err.to_string().contains("memory limit"), "{err}");
    let scan = filter.feed("fail 192.0.2.12", 0.0, false).unwrap();
    assert_eq!(scan.failures.len(), 1);
}

#[test]
fn panic_is_reported_with_its_message_and_the_next_call_succeeds() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut filter = plugin.filter(vec![]).unwrap();
    let err = filter.feed("panic", 0.0, false).unwrap_err();
    assert_eq!(err.trap_kind(), Some(TrapKind::Panic), "{err}");
    assert!(err.to_string().contains("hostile-filter was asked to panic"), "stderr not captured: {err}");
    let scan = filter.feed("fail 2001:db8::1", 0.0, false).unwrap();
    assert_eq!(scan.failures[0].host, "2001:db8::1");
}

#[test]
fn reading_files_through_wasi_fails() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut filter = plugin.filter(vec![]).unwrap();
    for path in ["/etc/passwd", "/etc/shadow", "passwd", "."] {
        let scan = filter.feed(&format!("read {path}"), 0.0, false).unwrap();
        let outcome = field(&scan, "read");
        assert!(outcome.starts_with("error:"), "{path} was readable: {outcome}");
    }
}

/// wasi:sockets is linked (Python components import it) but every use is
/// refused: a listener on loopback never sees a connection.
#[test]
fn connecting_through_wasi_sockets_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut filter = plugin.filter(vec![]).unwrap();
    for target in [addr.to_string(), "localhost:22".to_string(), "[::1]:22".to_string()] {
        let scan = filter.feed(&format!("connect {target}"), 0.0, false).unwrap();
        let outcome = field(&scan, "connect");
        assert!(outcome.starts_with("error:"), "{target} was reachable: {outcome}");
    }
    assert!(listener.accept().is_err(), "the plugin's connection reached the listener");
}

#[test]
fn environment_is_empty() {
    // The test process has PATH, HOME and more; the plugin sees none of it.
    assert!(std::env::vars().next().is_some());
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let mut filter = plugin.filter(vec![]).unwrap();
    let scan = filter.feed("env", 0.0, false).unwrap();
    assert_eq!(field(&scan, "env"), "");
}

#[test]
fn a_creation_error_is_a_value_that_names_the_plugin() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "hostile-filter", QUICK).unwrap();
    let err = plugin.filter(opts(&[("refuse", "bad option")])).err().expect("create must fail");
    assert!(matches!(err, PluginError::Create { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("hostile-filter") && text.contains("bad option"), "{text}");
}

#[test]
fn a_filter_cannot_be_used_as_an_action() {
    let rt = runtime();
    let plugin = load_fixture(&rt, "null-filter", "").unwrap();
    let err = plugin.action(vec![]).err().expect("must be refused");
    assert!(err.to_string().contains("is a filter, but it is used as an action"), "{err}");
}

#[test]
fn lines_and_results_cross_the_boundary_intact() {
    let rt = runtime();
    let plugin = crate::util::builtin(&rt, "regex-filter");
    let mut filter =
        plugin.filter(opts(&[("failregex", "Failed password for <F-USER>\\S+</F-USER> from <HOST>")])).unwrap();
    let batch = "x\nFailed password for root from 192.0.2.1\nFailed password for ü from 2001:db8::2\n";
    let scan = filter.feed(batch, 1.0, true).unwrap();
    let got: Vec<(u32, &str)> = scan.failures.iter().map(|f| (f.line, f.host.as_str())).collect();
    assert_eq!(got, [(1, "192.0.2.1"), (2, "2001:db8::2")]);
    assert!(scan.failures[1].fields.contains(&("user".to_string(), "ü".to_string())));
    assert_eq!(scan.notes.len(), 4);
}
