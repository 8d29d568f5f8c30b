//! The ban manager in-process: a real store in a temporary directory, real
//! action components with a recording program runner, and time as numbers.

use std::sync::Arc;

use super::*;
use crate::capability::process::{ProgramOutput, RecordingRunner};
use crate::jail::Increment;
use crate::plugin::{Registry, Runtime, RuntimeOptions};

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Arc<Mutex<Store>>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasmban.sqlite3");
    let store = Arc::new(Mutex::new(Store::open(&db).unwrap()));
    Fixture { _dir: dir, db, store }
}

fn manager(f: &Fixture, jail: &str, ban_time: BanTime) -> BanManager {
    BanManager::new(jail, f.store.clone(), JailActions::new(jail, Vec::new()), ban_time, Listing::default())
}

fn failures(id: &str, time: f64) -> BanDecision {
    BanDecision {
        id: id.into(),
        origin: Origin::Failures,
        time,
        failures: 3,
        matches: vec!["a line".into()],
        fields: Vec::new(),
        until: None,
    }
}

fn ban_once(m: &mut BanManager, id: &str, now: f64) -> BanRecord {
    let outcome = m.decide(vec![failures(id, now)], &Progress::default(), now);
    assert!(outcome.dropped.is_empty(), "{:?}", outcome.dropped);
    outcome.banned.into_iter().next().unwrap()
}

#[test]
fn a_ban_is_recorded_before_it_is_reported_and_restored_after_a_restart() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    let r = ban_once(&mut m, "192.0.2.1", 1000.0);
    assert_eq!((r.time, r.bantime, r.bancount), (1000, 600, 1));
    assert_eq!(f.store.lock().unwrap().active_bans_of("sshd", 1000).unwrap(), std::slice::from_ref(&r));
    // A restart: a new manager on the same store.
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    m.start(1100.0);
    assert!(m.is_banned("192.0.2.1"));
    assert_eq!(m.total_banned(), 0, "restored bans are not new bans");
}

#[test]
fn a_restart_restores_every_ban_across_its_chunks() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    let count = 2 * RESTORE_CHUNK + 7;
    let ids: Vec<String> = (0..count).map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)).collect();
    for chunk in ids.chunks(1000) {
        m.decide(chunk.iter().map(|id| failures(id, 1000.0)).collect(), &Progress::default(), 1000.0);
    }
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    m.start(1100.0);
    assert_eq!(m.count_in_force(), count);
    assert_eq!(m.listing.lock().unwrap().len(), count);
    assert!(ids.iter().all(|id| m.is_banned(id)));
}

#[test]
fn bans_expire_in_order_of_their_end_and_permanent_ones_never() {
    let f = fixture();
    let mut short = manager(&f, "sshd", BanTime { base: 100, increment: None });
    ban_once(&mut short, "192.0.2.1", 1000.0);
    ban_once(&mut short, "192.0.2.2", 1050.0);
    short.ban_time = BanTime { base: -1, increment: None };
    ban_once(&mut short, "192.0.2.3", 1060.0);
    assert!(short.expire(1099.0).is_empty());
    let first: Vec<String> = short.expire(1100.0).into_iter().map(|r| r.id).collect();
    assert_eq!(first, ["192.0.2.1"]);
    let second: Vec<String> = short.expire(5000.0).into_iter().map(|r| r.id).collect();
    assert_eq!(second, ["192.0.2.2"]);
    assert!(short.expire(1e12).is_empty());
    assert_eq!(short.count_in_force(), 1);
    let listed: Vec<String> = short.listing.lock().unwrap().values().map(|v| v.id.clone()).collect();
    assert_eq!(listed, ["192.0.2.3"]);
    assert!(f.store.lock().unwrap().active_bans_of("sshd", 1_000_000_000).unwrap().iter().all(|b| b.bantime < 0));
}

#[test]
fn the_increment_formula_doubles_each_ban_across_restarts() {
    let f = fixture();
    let rule = BanTime { base: 600, increment: Some(Increment { maxtime: Some(3000), ..Increment::default() }) };
    let mut now = 1_000_000.0;
    let mut lengths = Vec::new();
    for _ in 0..5 {
        // A fresh manager each time: what counts is the store's history.
        let mut m = manager(&f, "sshd", rule.clone());
        let rec = ban_once(&mut m, "192.0.2.7", now);
        lengths.push((rec.bantime, rec.bancount));
        now += rec.bantime as f64;
        assert_eq!(m.expire(now).len(), 1);
    }
    assert_eq!(lengths, [(600, 1), (1200, 2), (2400, 3), (3000, 4), (3000, 5)]);
}

#[test]
fn an_admins_unban_forgets_the_history_an_expiry_keeps() {
    let f = fixture();
    let rule = BanTime { base: 600, increment: Some(Increment::default()) };
    let mut m = manager(&f, "sshd", rule);
    ban_once(&mut m, "192.0.2.9", 1000.0);
    assert_eq!(m.expire(1600.0).len(), 1);
    // Back after its ban ran out: its second ban is twice as long.
    assert_eq!(ban_once(&mut m, "192.0.2.9", 2000.0).bantime, 1200);
    // Lifted by hand: fail2ban forgets it, and its next ban is a first.
    assert_eq!(m.lift(Some("192.0.2.9"), 2100.0).unwrap().len(), 1);
    assert_eq!(f.store.lock().unwrap().ban_count("192.0.2.9", Some("sshd")).unwrap(), 0);
    assert_eq!(ban_once(&mut m, "192.0.2.9", 2200.0).bantime, 600);
}

#[test]
fn overalljails_counts_bans_of_other_jails() {
    let f = fixture();
    ban_once(&mut manager(&f, "postfix", BanTime { base: 60, increment: None }), "192.0.2.8", 5000.0);
    let inc = Increment { overalljails: true, ..Increment::default() };
    let mut m = manager(&f, "sshd", BanTime { base: 100, increment: Some(inc) });
    assert_eq!(ban_once(&mut m, "192.0.2.8", 5000.0).bantime, 200);
}

#[test]
fn a_ban_already_over_or_already_in_force_is_dropped() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 60, increment: None });
    let outcome = m.decide(vec![failures("192.0.2.2", 1000.0)], &Progress::default(), 1100.0);
    assert!(outcome.banned.is_empty());
    assert_eq!(outcome.dropped, [("192.0.2.2".to_string(), Dropped::AlreadyOver)]);
    ban_once(&mut m, "192.0.2.3", 1100.0);
    let outcome = m.decide(
        vec![failures("192.0.2.3", 1101.0), failures("192.0.2.4", 1101.0), failures("192.0.2.4", 1101.0)],
        &Progress::default(),
        1101.0,
    );
    let banned: Vec<&str> = outcome.banned.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(banned, ["192.0.2.4"]);
    assert_eq!(
        outcome.dropped,
        [("192.0.2.3".to_string(), Dropped::AlreadyBanned), ("192.0.2.4".to_string(), Dropped::AlreadyBanned)]
    );
}

#[test]
fn lifting_one_or_all_leaves_the_store_and_the_expiry_order() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    for (i, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        ban_once(&mut m, ip, 1000.0 + i as f64);
    }
    let lifted = m.lift(Some("192.0.2.2"), 1010.0).unwrap();
    assert_eq!(lifted.len(), 1);
    assert!(!m.is_banned("192.0.2.2"));
    let all: Vec<String> = m.lift(None, 1010.0).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(all, ["192.0.2.1", "192.0.2.3"]);
    assert!(m.expire(1e9).is_empty(), "lifted bans left the expiry order");
    assert!(m.listing.lock().unwrap().is_empty(), "and the listing");
    assert!(f.store.lock().unwrap().active_bans(1000).unwrap().is_empty());
}

#[test]
fn a_ban_the_store_refuses_is_applied_then_recorded_with_the_next_save() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    // Another connection takes the table away: every write now fails.
    let other = rusqlite::Connection::open(&f.db).unwrap();
    other.execute_batch("ALTER TABLE bans RENAME TO bans_away").unwrap();
    let outcome = m.decide(vec![failures("192.0.2.9", 1000.0)], &Progress::default(), 1000.0);
    assert_eq!(outcome.banned.len(), 1, "in force although not recorded");
    assert!(m.is_banned("192.0.2.9"));
    assert_eq!(m.unrecorded(), 1);
    assert!(!m.save_progress(&Progress::default()));
    assert_eq!(m.unrecorded(), 1, "a failed retry keeps it once");
    m.decide(vec![failures("192.0.2.8", 1000.0)], &Progress::default(), 1000.0);
    assert_eq!(m.unrecorded(), 2, "the next ban waits with it");
    other.execute_batch("ALTER TABLE bans_away RENAME TO bans").unwrap();
    assert!(m.save_progress(&Progress::default()));
    assert_eq!(m.unrecorded(), 0);
    assert_eq!(f.store.lock().unwrap().active_bans_of("sshd", 1000).unwrap().len(), 2);
}

/// The sshd jail's manager (bans of 60 s) with the real iptables component,
/// whose commands `recorder` answers, started at 1000.
fn iptables_manager(f: &Fixture, recorder: &RecordingRunner) -> BanManager {
    let runtime =
        Runtime::new(RuntimeOptions { runner: Arc::new(recorder.clone()), ..RuntimeOptions::default() }).unwrap();
    let source = Registry::new(None).resolve("iptables").unwrap();
    let instance = runtime.load(&source, "built-in").unwrap().action(vec![("name".into(), "sshd".into())]).unwrap();
    let actions = JailActions::new(
        "sshd",
        vec![JailAction { name: "iptables".into(), instance, norestored: false, unban_each_at_stop: false }],
    );
    let mut m =
        BanManager::new("sshd", f.store.clone(), actions, BanTime { base: 60, increment: None }, Listing::default());
    m.start(1000.0);
    m
}

#[test]
fn actions_get_the_bans_and_their_lifting() {
    let f = fixture();
    let recorder = RecordingRunner::answering(|_| ProgramOutput::default());
    let mut m = iptables_manager(&f, &recorder);
    ban_once(&mut m, "192.0.2.10", 1000.0);
    let said = |needle: &str| recorder.runs().iter().any(|r| r.args.join(" ").contains(needle));
    assert!(said("192.0.2.10"), "{:?}", recorder.runs());
    let before = recorder.runs().len();
    assert_eq!(m.expire(1060.0).len(), 1);
    assert!(recorder.runs().len() > before, "the unban reached the action");
}

#[test]
fn a_failed_unban_keeps_its_record_and_is_tried_again_with_backoff_until_it_succeeds() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let f = fixture();
    let refuse = Arc::new(AtomicBool::new(true));
    let refusing = refuse.clone();
    // iptables refuses to delete the rule, and lists it as still there.
    let recorder = RecordingRunner::answering(move |run| {
        let deleting = run.args.iter().any(|a| a == "-D");
        let status = if deleting && refusing.load(Ordering::SeqCst) { 1 } else { 0 };
        ProgramOutput { status, stdout: String::new(), stderr: if status == 1 { "busy".into() } else { String::new() } }
    });
    let mut m = iptables_manager(&f, &recorder);
    ban_once(&mut m, "192.0.2.20", 1000.0);
    let deletes = || {
        recorder
            .runs()
            .iter()
            .filter(|r| r.args.iter().any(|a| a == "-D") && r.args.join(" ").contains("192.0.2.20"))
            .count()
    };

    assert_eq!(m.expire(1060.0).len(), 1);
    assert_eq!(m.pending_unbans(), 1);
    assert!(!m.is_banned("192.0.2.20"), "no longer in force");
    let stored = |at: i64| f.store.lock().unwrap().active_bans_of("sshd", at).unwrap().len();
    assert_eq!(f.store.lock().unwrap().ban_count("192.0.2.20", Some("sshd")).unwrap(), 1);
    let active_rows = || {
        let c = rusqlite::Connection::open(&f.db).unwrap();
        c.query_row("SELECT count(*) FROM bans WHERE active = 1", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    assert_eq!(active_rows(), 1, "the record stays until the unban succeeds");
    assert_eq!(stored(1060), 0, "but it is not a ban in force");

    // Backoff: 10 s, then 20 s, then 40 s.
    let tries = deletes();
    m.retry_unbans(1069.0);
    assert_eq!(deletes(), tries, "not before its wait is over");
    m.retry_unbans(1070.0);
    assert_eq!(deletes(), tries + 1);
    m.retry_unbans(1089.0);
    assert_eq!(deletes(), tries + 1);
    m.retry_unbans(1090.0);
    assert_eq!(deletes(), tries + 2);
    assert_eq!(unban_backoff(3), 40.0);
    assert_eq!(unban_backoff(30), 600.0, "at most ten minutes");

    refuse.store(false, Ordering::SeqCst);
    m.retry_unbans(1130.0);
    assert_eq!(m.pending_unbans(), 0);
    assert_eq!(active_rows(), 0, "dropped once the unban succeeded");
}

#[test]
fn a_new_ban_supersedes_a_pending_unban_of_the_same_address() {
    let f = fixture();
    let recorder = RecordingRunner::answering(|run| ProgramOutput {
        status: if run.args.iter().any(|a| a == "-D") { 1 } else { 0 },
        ..ProgramOutput::default()
    });
    let mut m = iptables_manager(&f, &recorder);
    ban_once(&mut m, "192.0.2.21", 1000.0);
    m.expire(1060.0);
    assert_eq!(m.pending_unbans(), 1);
    ban_once(&mut m, "192.0.2.21", 1065.0);
    assert_eq!(m.pending_unbans(), 0, "the new ban stands; no later unban may lift it");
    let before = recorder.runs().len();
    m.retry_unbans(2000.0);
    assert_eq!(recorder.runs().len(), before);
}

/// The clock jumping backwards and forwards by hours: no ban is lifted
/// early, every ban whose end has passed is lifted at the jump forward, a
/// ban decided while the clock is behind starts at the clock's time, and a
/// periodic task is not put off by hours.
#[test]
fn the_clock_jumping_by_hours_lifts_no_ban_early_and_every_due_one_at_once() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 3600, increment: None });
    ban_once(&mut m, "192.0.2.30", 100_000.0);
    // Two hours back: nothing ends.
    assert!(m.expire(100_000.0 - 7200.0).is_empty());
    assert!(m.is_banned("192.0.2.30"));
    // A failure logged "now" by the log's clock, decided while ours is
    // behind: the ban starts at our time, and lasts its whole length.
    let outcome = m.decide(vec![failures("192.0.2.31", 100_010.0)], &Progress::default(), 92_810.0);
    assert_eq!(outcome.banned[0].time, 92_810);
    // Five hours forward: both are over, and lifted in one go.
    let lifted: Vec<String> = m.expire(100_000.0 + 18_000.0).into_iter().map(|r| r.id).collect();
    assert_eq!(lifted, ["192.0.2.31", "192.0.2.30"]);
    assert_eq!(m.count_in_force(), 0);

    assert!(is_due(1000.0, 1000.0, 300.0));
    assert!(!is_due(999.0, 1000.0, 300.0));
    assert!(is_due(1000.0 - 7200.0, 1000.0, 300.0), "a clock gone back hours must not put the task off by hours");
}

#[test]
fn failures_of_an_address_in_force_prolong_its_ban_as_fail2bans_ban_manager_does() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    ban_once(&mut m, "192.0.2.1", 1000.0);
    // Failures logged before its end would not move it: nothing changes.
    let outcome = m.decide(vec![failures("192.0.2.1", 999.0)], &Progress::default(), 1001.0);
    assert_eq!(outcome.dropped, [("192.0.2.1".to_string(), Dropped::AlreadyBanned)]);
    assert_eq!(m.expire(1600.0).len(), 1);
    ban_once(&mut m, "192.0.2.1", 2000.0);
    // Later failures: it lasts bantime from the latest, in the store too.
    m.decide(vec![failures("192.0.2.1", 2300.0)], &Progress::default(), 2300.0);
    assert!(m.expire(2600.0).is_empty(), "the first end no longer holds");
    let stored = f.store.lock().unwrap().active_bans_of("sshd", 2600).unwrap();
    assert_eq!((stored[0].time, stored[0].bantime), (2000, 900));
    assert_eq!(m.expire(2900.0).len(), 1);
    // Several prolonged at once are all recorded.
    ban_once(&mut m, "192.0.2.3", 4000.0);
    ban_once(&mut m, "192.0.2.4", 4000.0);
    m.decide(vec![failures("192.0.2.3", 4300.0), failures("192.0.2.4", 4200.0)], &Progress::default(), 4300.0);
    let stored = f.store.lock().unwrap().active_bans_of("sshd", 4000).unwrap();
    let ends: Vec<(&str, i64)> = stored.iter().map(|r| (r.id.as_str(), r.time + r.bantime)).collect();
    assert_eq!(ends, [("192.0.2.3", 4900), ("192.0.2.4", 4800)]);
    assert_eq!(m.expire(4900.0).len(), 2);
    // A new ban and a prolongation are saved with the read position that
    // made them, in the one transaction.
    ban_once(&mut m, "192.0.2.5", 5000.0);
    let file = std::path::PathBuf::from("/var/log/auth.log");
    let cursor = crate::tail::Cursor { dev: 1, ino: 2, offset: 4242, head_len: 0, fingerprint: 0 };
    let progress = Progress { files: vec![(file.clone(), cursor)], journal: None };
    m.decide(vec![failures("192.0.2.5", 5300.0), failures("192.0.2.6", 5300.0)], &progress, 5300.0);
    let store = f.store.lock().unwrap();
    let stored = store.active_bans_of("sshd", 5300).unwrap();
    let ends: Vec<(&str, i64)> = stored.iter().map(|r| (r.id.as_str(), r.time + r.bantime)).collect();
    assert_eq!(ends, [("192.0.2.5", 5900), ("192.0.2.6", 5900)]);
    assert_eq!(store.saved_positions().unwrap()[&file].offset, 4242);
    drop(store);
    assert_eq!(m.expire(5900.0).len(), 2);
    // A jail whose bantime became permanent makes a ban in force permanent.
    ban_once(&mut m, "192.0.2.2", 3000.0);
    m.ban_time = BanTime { base: -1, increment: None };
    m.decide(vec![failures("192.0.2.2", 3001.0)], &Progress::default(), 3001.0);
    assert!(m.expire(1e12).is_empty());
}

#[test]
fn a_known_offenders_failures_weigh_as_fail2bans_observer_weighs_them() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 100, increment: Some(Increment::default()) });
    assert_eq!(m.failure_weight("192.0.2.1", 1000.0, 5), 1, "never banned");
    let mut now = 1000.0;
    let mut weights = Vec::new();
    for _ in 0..4 {
        ban_once(&mut m, "192.0.2.1", now);
        now += 100_000.0;
        m.expire(now);
        weights.push(m.failure_weight("192.0.2.1", now, 20));
    }
    assert_eq!(weights, [2, 3, 5, 9]);
    assert_eq!(m.failure_weight("192.0.2.1", now, 4), 4, "at most maxretry");
    assert_eq!(m.failure_weight("192.0.2.1", 1000.0, 20), 1, "a line from before its latest ban");
    assert_eq!(m.failure_weight("192.0.2.2", now, 20), 1, "another address");
    // Without bantime.increment, every failure counts once.
    m.ban_time = BanTime { base: 100, increment: None };
    assert_eq!(m.failure_weight("192.0.2.1", now, 20), 1);
}

#[test]
fn the_fleets_bans_end_when_it_says_are_prolonged_by_it_and_lifted_only_if_its_own() {
    let f = fixture();
    let mut m = manager(&f, "sshd", BanTime { base: 600, increment: None });
    let fleet = |id: &str, until: i64| BanDecision {
        origin: Origin::Fleet,
        fields: vec![("fleet".into(), "web2/sshd".into())],
        until: Some(until),
        ..failures(id, 1000.0)
    };
    let outcome = m.decide(vec![fleet("192.0.2.1", 5000)], &Progress::default(), 1000.0);
    assert_eq!((outcome.banned[0].bantime, outcome.banned[0].origin), (4000, Origin::Fleet));
    // A later end from the fleet prolongs it; an earlier one does not.
    m.decide(vec![fleet("192.0.2.1", 9000)], &Progress::default(), 1000.0);
    m.decide(vec![fleet("192.0.2.1", 2000)], &Progress::default(), 1000.0);
    assert_eq!(f.store.lock().unwrap().active_bans_of("sshd", 1000).unwrap()[0].bantime, 8000);
    // The fleet lifts its own ban, never the jail's.
    ban_once(&mut m, "192.0.2.2", 1000.0);
    assert_eq!(m.lift_fleet("192.0.2.2", 1100.0).unwrap(), None);
    assert!(m.is_banned("192.0.2.2"));
    assert_eq!(m.lift_fleet("192.0.2.1", 1100.0).unwrap().map(|r| r.id), Some("192.0.2.1".to_string()));
    assert!(!m.is_banned("192.0.2.1"));
}
