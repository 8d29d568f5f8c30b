//! One jail at work, on a thread of its own (plugin calls are synchronous,
//! and a slow one must hold up its jail only). Its loop is the data path:
//! read a batch from the source (`tail/`), feed it to the filter
//! component, turn what the filter reports into ids and count them
//! (`jail/`), and hand the ids that reached `maxretry` to the ban manager
//! (`bans/`), which records, applies and later lifts them. Between
//! batches it obeys the commands the control socket sends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::bans::{BanDecision, BanManager, Dropped, Listing, Origin, Outcome};
use crate::config::jail::Jail;
use crate::daemon::assemble::assemble;
use crate::daemon::clock::Clock;
use crate::daemon::ignore_judge::IgnoreJudge;
use crate::daemon::shared_read::{OpenError, Readers, Subscription};
use crate::daemon::status::{BanView, JailStatus};
use crate::jail::ids::IdPolicy;
use crate::jail::{FailureTracker, Seen, Verdict};
use crate::metrics::Metrics;
use crate::plugin::{Registry, Runtime};
use crate::store::Store;
use crate::tail::Progress;
use crate::wit::types::Failure;

mod fleet;
mod reconfigure;

/// Lines handed to the filter per call: large enough that the boundary
/// costs nothing, small enough that a burst is saved in steps.
pub const BATCH_LINES: usize = 4096;
/// Full batches (a burst) judged before their ban decisions are taken
/// together; see `read_batch`.
const GROUP_BATCHES: usize = 4;
/// How long a group may take before its decisions are taken anyway.
const GROUP_TIME: Duration = Duration::from_millis(25);

/// What every jail thread is given by the daemon.
#[derive(Clone)]
pub struct JailContext {
    /// Loads and instantiates plugins.
    pub runtime: Arc<Runtime>,
    /// The configuration directory (runtime `addaction` reads action.d).
    pub confdir: PathBuf,
    /// The admin's plugin directory.
    pub plugin_dir: PathBuf,
    /// The ban store.
    pub store: Arc<Mutex<Store>>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// How often files are looked at without an inotify event.
    pub poll_interval: Duration,
    /// Where bans for the fleet go, when the daemon has a fleet.
    pub fleet: Option<crate::fleet::Outbox>,
    /// The logs being read, shared by the jails that read them alike.
    pub readers: Arc<Readers>,
}

/// A request for a jail's thread.
pub enum JailCommand {
    /// A followed file changed: read it now rather than at the next poll.
    Wake,
    /// Ban an address now.
    Ban {
        /// The address, normalised.
        id: String,
        /// Whether it was banned (false: already banned).
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Lift bans: one id, or all when `None`.
    Unban {
        /// The banned id.
        id: Option<String>,
        /// How many bans were lifted.
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// The fleet's bans and lifts (in a jail with `fleet = receive` or
    /// `both`).
    Fleet {
        /// Each address or prefix, when its ban ends (unix seconds), and the
        /// origins that reported it (for the log and actions).
        bans: Vec<(String, i64, String)>,
        /// The fleet's bans to lift.
        lifts: Vec<String>,
    },
    /// Change a setting until the next reload (`set JAIL KEY VALUE...`).
    Set {
        /// The key, as fail2ban names it.
        key: String,
        /// Its values.
        args: Vec<String>,
        /// What fail2ban's server answers: the setting now in force.
        reply: oneshot::Sender<Result<Value, String>>,
    },
    /// The configuration was read again and this jail kept as it was: its
    /// actions' `actionreload`.
    Reload,
    /// Stop: save positions, run every action's `stop`.
    Stop,
}

/// The daemon's handle on a running jail.
pub struct JailHandle {
    /// The configuration it runs, to tell on reload whether it changed.
    pub fingerprint: String,
    shared: Arc<SharedSettings>,
    commands: Sender<JailCommand>,
    status: Arc<Mutex<JailStatus>>,
    listing: Listing,
    heartbeat: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// What a jail's thread and the daemon both see of its settings.
struct SharedSettings {
    /// The configuration in force: the files', changed by any `set`.
    config: Mutex<Arc<Jail>>,
    /// Whether a `set` changed it (a reload then starts the jail again).
    edited: AtomicBool,
    /// `set JAIL idle on`.
    idle: AtomicBool,
}

impl JailHandle {
    /// The configuration in force (what `get` reports).
    pub fn config(&self) -> Arc<Jail> {
        self.shared.config.lock().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Whether a runtime `set` changed the jail since it started.
    pub fn edited(&self) -> bool {
        self.shared.edited.load(Ordering::Relaxed)
    }

    /// Whether the jail is idle (`set JAIL idle on`).
    pub fn idle(&self) -> bool {
        self.shared.idle.load(Ordering::Relaxed)
    }

    /// Its bans in force, as `status` and `banned` read them.
    pub fn listing(&self) -> Listing {
        self.listing.clone()
    }

    /// Its bans in force, oldest first.
    pub fn banned(&self) -> Vec<BanView> {
        self.listing.lock().map(|l| l.values().cloned().collect()).unwrap_or_default()
    }

    /// The status as last published, without the list of bans (cheap:
    /// for metrics and the watchdog).
    pub fn counters(&self) -> JailStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// When the jail's loop last turned ([`monotonic_ms`]).
    pub fn last_turn_ms(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// Send a command; false when the jail thread is gone.
    pub fn send(&self, command: JailCommand) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Ask the jail to stop without waiting.
    pub fn request_stop(&self) {
        let _ = self.commands.send(JailCommand::Stop);
    }

    /// Wait for the jail's thread to end.
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("a jail thread panicked while stopping");
        }
    }
}

/// Start each of `jails` on its own thread. All take their places at the
/// readers they share before any starts reading, so that none misses the
/// first lines the others read.
pub fn spawn_all(jails: Vec<Jail>, ctx: &JailContext) -> Vec<(String, std::io::Result<JailHandle>)> {
    let seated: Vec<(Jail, Seat)> = jails
        .into_iter()
        .map(|jail| {
            let seat = Seat::new(&jail, &ctx.readers);
            (jail, seat)
        })
        .collect();
    seated.into_iter().map(|(jail, seat)| (jail.name.clone(), spawn(jail, ctx.clone(), seat))).collect()
}

/// A jail's channel and its place at a reader, before its thread starts.
struct Seat {
    commands: (Sender<JailCommand>, Receiver<JailCommand>),
    wake: crate::tail::Wake,
    reading: Subscription,
}

impl Seat {
    fn new(jail: &Jail, readers: &Readers) -> Seat {
        let (tx, rx) = std::sync::mpsc::channel();
        let waker = Mutex::new(tx.clone());
        let wake: crate::tail::Wake = Arc::new(move || {
            if let Ok(w) = waker.lock() {
                let _ = w.send(JailCommand::Wake);
            }
        });
        let reading = readers.join(jail, wake.clone());
        Seat { commands: (tx, rx), wake, reading }
    }
}

fn spawn(jail: Jail, ctx: JailContext, seat: Seat) -> std::io::Result<JailHandle> {
    let fingerprint = format!("{jail:?}");
    let shared = Arc::new(SharedSettings {
        config: Mutex::new(Arc::new(jail.clone())),
        edited: AtomicBool::new(false),
        idle: AtomicBool::new(false),
    });
    let seen = shared.clone();
    let Seat { commands: (tx, rx), wake, reading } = seat;
    let status = Arc::new(Mutex::new(JailStatus { jail: jail.name.clone(), ..JailStatus::default() }));
    let published = status.clone();
    let listing = Listing::default();
    let kept = listing.clone();
    let heartbeat = Arc::new(AtomicU64::new(monotonic_ms()));
    let beating = heartbeat.clone();
    let thread = std::thread::Builder::new().name(format!("jail-{}", jail.name)).spawn(move || {
        let name = jail.name.clone();
        match RunningJail::start(&jail, ctx, (wake, reading), published.clone(), kept, beating, seen) {
            Ok(mut running) => running.run(rx),
            Err(problem) => {
                tracing::error!("[{name}] jail not started: {problem}");
                if let Ok(mut s) = published.lock() {
                    s.problem = Some(problem);
                }
                // Stay reachable so that commands get an answer.
                idle(rx, &name);
            }
        }
    })?;
    Ok(JailHandle { fingerprint, shared, commands: tx, status, listing, heartbeat, thread: Some(thread) })
}

fn idle(rx: Receiver<JailCommand>, name: &str) {
    while let Ok(command) = rx.recv() {
        let why = format!("jail {name} is not running (see the log for why)");
        match command {
            JailCommand::Ban { reply, .. } => drop(reply.send(Err(why))),
            JailCommand::Unban { reply, .. } => drop(reply.send(Err(why))),
            JailCommand::Set { reply, .. } => drop(reply.send(Err(why))),
            JailCommand::Wake | JailCommand::Reload | JailCommand::Fleet { .. } => {}
            JailCommand::Stop => return,
        }
    }
}

struct RunningJail {
    name: String,
    /// The configuration in force, with runtime changes.
    config: Jail,
    shared: Arc<SharedSettings>,
    runtime: Arc<Runtime>,
    plugin_dir: PathBuf,
    confdir: PathBuf,
    store: Arc<Mutex<Store>>,
    wake: crate::tail::Wake,
    /// What `reading` was opened on.
    source_spec: crate::tail::SourceSpec,
    /// `set JAIL idle on`: lines wait unread.
    idle: bool,
    /// Its place at the reader of its log (shared with the jails that
    /// read it alike).
    reading: Subscription,
    /// Where reading stands after the last batch the jail took.
    progress: Progress,
    ids: IdPolicy,
    /// `ignorecommand` / `ignoreplugin`, asked after `ignoreip`.
    ignore: Option<IgnoreJudge>,
    tracker: FailureTracker,
    bans: BanManager,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    status: Arc<Mutex<JailStatus>>,
    lines_read: u64,
    /// Lines the filter failed on, lost to it.
    lines_skipped: u64,
    last_cleanup: Instant,
    /// Seconds between reconciliations of the actions (0: never).
    reconcile_every: i64,
    /// When the next reconciliation is due (the jail's clock).
    next_reconcile: f64,
    metrics: &'static Metrics,
    /// Bumped at every turn of the loop: the watchdog's sign of progress.
    heartbeat: Arc<AtomicU64>,
    /// Bytes not yet read of each followed file, and when that was measured.
    backlog: (std::collections::BTreeMap<String, u64>, Instant),
    /// Actions left off for want of a grant, with the line to add.
    actions_off: Vec<String>,
    /// Where the jail's bans go for the fleet.
    fleet_outbox: Option<crate::fleet::Outbox>,
    /// Ids forgotten for `maxtracked`: how many the metrics have, how many
    /// the log has, and when the log last said so.
    forgotten: (u64, u64, Option<Instant>),
}

impl RunningJail {
    fn start(
        jail: &Jail,
        ctx: JailContext,
        (wake, reading): (crate::tail::Wake, Subscription),
        status: Arc<Mutex<JailStatus>>,
        listing: Listing,
        heartbeat: Arc<AtomicU64>,
        shared: Arc<SharedSettings>,
    ) -> Result<RunningJail, String> {
        let registry = Registry::new(Some(ctx.plugin_dir.clone()));
        let parts = assemble(jail, &ctx.runtime, &registry)?;
        // Positions first, and the source opened before the actions
        // start: lines logged meanwhile are read.
        let (saved_files, saved_journal) = match ctx.store.lock() {
            Ok(store) => (
                store.saved_positions().unwrap_or_else(|e| {
                    tracing::warn!("[{}] {e}; logs are read from their end", jail.name);
                    Default::default()
                }),
                store.load_journal_cursor(&jail.name).ok().flatten(),
            ),
            Err(_) => Default::default(),
        };
        let (reading, progress) = open_reading(jail, reading, &parts.filter, saved_files, saved_journal, &wake)?;
        if let Some(notice) = &parts.notice {
            tracing::warn!("[{}] {notice}", jail.name);
        }
        for off in &parts.actions_off {
            tracing::error!("[{}] runs without an action until it is granted and wasmban reloaded: {off}", jail.name);
        }
        let mut running = RunningJail {
            name: jail.name.clone(),
            config: jail.clone(),
            shared,
            runtime: ctx.runtime.clone(),
            plugin_dir: ctx.plugin_dir.clone(),
            confdir: ctx.confdir.clone(),
            store: ctx.store.clone(),
            wake,
            source_spec: parts.filter.source.clone(),
            idle: false,
            reading,
            progress,
            ids: IdPolicy::new(parts.usedns),
            ignore: parts.ignore,
            tracker: FailureTracker::new(parts.tracker),
            bans: BanManager::new(&jail.name, ctx.store.clone(), parts.actions, parts.ban_time, listing),
            clock: ctx.clock.clone(),
            poll_interval: ctx.poll_interval,
            status,
            lines_read: 0,
            lines_skipped: 0,
            last_cleanup: Instant::now(),
            backlog: (std::collections::BTreeMap::new(), Instant::now()),
            reconcile_every: jail.reconcile,
            next_reconcile: ctx.clock.now() + jail.reconcile as f64,
            metrics: crate::metrics::global(),
            heartbeat,
            actions_off: parts.actions_off,
            fleet_outbox: ctx.fleet.clone(),
            forgotten: (0, 0, None),
        };
        running.bans.start(running.clock.now());
        let view = running.reading.view();
        let mut what = view.files.clone();
        what.extend(view.waiting.iter().cloned());
        let sharing = match running.reading.jails() {
            1 => String::new(),
            n => format!(" (read once for the {n} jails that read it alike)"),
        };
        tracing::info!("[{}] jail started, reading {}{sharing}", running.name, what.join(", "));
        for path in &view.waiting {
            tracing::info!("[{}] waiting for {path} to appear", running.name);
        }
        running.publish();
        crate::daemon::memory::give_memory_back();
        Ok(running)
    }

    fn run(&mut self, rx: Receiver<JailCommand>) {
        loop {
            // Commands that queued up go first, so that the CLI is answered
            // between batches even during a burst.
            loop {
                self.heartbeat.store(monotonic_ms(), Ordering::Relaxed);
                while let Ok(command) = rx.try_recv() {
                    match command {
                        JailCommand::Stop => return self.shutdown(),
                        other => self.obey(other),
                    }
                }
                let more = !self.idle && self.read_batch();
                self.housekeeping();
                self.measure_backlog(!more);
                self.publish();
                if !more {
                    break;
                }
            }
            match rx.recv_timeout(self.poll_interval) {
                Ok(JailCommand::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => self.obey(command),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.shutdown();
    }

    /// Carry out a command and publish the status before answering, so
    /// that whoever reads status or metrics after the answer sees its effect.
    fn obey(&mut self, command: JailCommand) {
        match command {
            JailCommand::Ban { id, reply } => {
                let result = self.ban_manually(id);
                self.publish();
                let _ = reply.send(result);
            }
            JailCommand::Unban { id, reply } => {
                let now = self.clock.now();
                let lifted = self.bans.lift(id.as_deref(), now);
                if let Ok(records) = &lifted {
                    for r in records {
                        self.tracker.settle(&r.id);
                    }
                    self.share_lifts(records, now);
                }
                self.publish();
                let _ = reply.send(lifted.map(|r| r.len()));
            }
            JailCommand::Set { key, args, reply } => {
                let result = self.set(&key, &args);
                self.publish();
                let _ = reply.send(result);
            }
            JailCommand::Reload => {
                self.bans.reload_actions();
                self.publish();
            }
            JailCommand::Fleet { bans, lifts } => {
                self.fleet_bans(bans);
                for id in lifts {
                    if let Err(e) = self.fleet_lift(&id) {
                        tracing::warn!("[{}] lifting the fleet's ban of {id}: {e}", self.name);
                    }
                }
                self.publish();
            }
            JailCommand::Wake | JailCommand::Stop => self.publish(),
        }
    }

    fn ban_manually(&mut self, id: String) -> Result<bool, String> {
        if self.bans.is_banned(&id) {
            return Ok(false);
        }
        let now = self.clock.now();
        let decision = BanDecision {
            id: id.clone(),
            origin: Origin::Manual,
            time: now,
            failures: 0,
            matches: Vec::new(),
            fields: Vec::new(),
            until: None,
        };
        let progress = self.progress.clone();
        let outcome = self.decide(vec![decision], &progress, now);
        self.share_bans(&outcome.banned);
        match outcome.dropped.into_iter().next() {
            None if !outcome.banned.is_empty() => {
                self.tracker.settle(&id);
                Ok(true)
            }
            Some((_, Dropped::AlreadyOver)) => Err("the jail's bantime is 0: nothing to ban".into()),
            Some((_, why)) => Err(why.to_string()),
            None => Err("nothing was banned".into()),
        }
    }

    /// Read and work through up to [`GROUP_BATCHES`] batches; true when
    /// there may be more. Their ban decisions are made, recorded and
    /// applied together, after the last: in a burst, the store's commit
    /// is then paid once per group rather than per batch.
    /// A batch that is not full (no burst) ends the group at once, so a
    /// lone failure line is not held back.
    fn read_batch(&mut self) -> bool {
        let started = Instant::now();
        let mut decisions = Vec::new();
        let mut progress = None;
        let mut full = false;
        for _ in 0..GROUP_BATCHES {
            let now = self.clock.now();
            let Some(scanned) = self.reading.next(&self.name, now) else {
                full = false;
                break;
            };
            self.lines_read += scanned.lines as u64;
            self.metrics.lines_read(&self.name, scanned.lines as u64);
            if scanned.skipped > 0 {
                self.lines_skipped += scanned.skipped;
                self.metrics.lines_skipped(&self.name, scanned.skipped);
            }
            full = scanned.lines >= BATCH_LINES;
            self.metrics.failures(&self.name, scanned.failures.len() as u64);
            // A line per failure: written together after the batch. Not
            // across `decide`, whose actions may take seconds.
            let _held = crate::daemon::log_output::hold_lines();
            decisions.extend(self.judge(&scanned.failures, now));
            progress = Some(scanned.progress.clone());
            if !full || started.elapsed() >= GROUP_TIME {
                break;
            }
        }
        let Some(progress) = progress else { return false };
        self.note_forgotten();
        let outcome = self.decide(decisions, &progress, self.clock.now());
        self.progress = progress;
        self.share_bans(&outcome.banned);
        let _held = crate::daemon::log_output::hold_lines();
        self.settle(&outcome);
        full
    }

    /// Count the ids the tracker forgot because it held `maxtracked`, and
    /// say so in the log at most once a minute: a spray of addresses
    /// forgets thousands per batch.
    fn note_forgotten(&mut self) {
        let total = self.tracker.forgotten_when_full();
        let (counted, logged, last_warning) = &mut self.forgotten;
        if total == *counted {
            return;
        }
        self.metrics.addresses_forgotten(&self.name, total - *counted);
        *counted = total;
        if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(
                "[{}] counts failures of maxtracked = {} addresses, its most: {} seen least recently were forgotten \
                 (an attack from many addresses; raise maxtracked if memory allows, see docs/benchmarks.md for \
                 the bytes each costs)",
                self.name,
                self.tracker.max_tracked(),
                total - *logged,
            );
            *logged = total;
            *last_warning = Some(Instant::now());
        }
    }

    /// Tell the tracker what became of its candidates.
    fn settle(&mut self, outcome: &Outcome) {
        for r in &outcome.banned {
            self.tracker.settle(&r.id);
        }
        for (id, why) in &outcome.dropped {
            if *why == Dropped::AlreadyBanned {
                // Its ban stands (made longer if these failures say so);
                // its count starts afresh, as fail2ban's does.
                self.tracker.settle(id);
                tracing::info!("[{}] {id} already banned", self.name);
            } else {
                self.tracker.drop_candidate(id);
                tracing::info!("[{}] {id} reached maxretry but is not banned: {why}", self.name);
            }
        }
    }

    /// Hand `decisions` to the ban manager, with the counters its actions'
    /// `<jail.found*>` tags give.
    fn decide(&mut self, decisions: Vec<BanDecision>, progress: &Progress, now: f64) -> Outcome {
        // As fail2ban's `<jail.found>`: addresses about to be banned no
        // longer count as found.
        let banning = decisions.iter().filter(|d| d.origin == Origin::Failures).count();
        self.bans.note_found(self.tracker.currently_failed().saturating_sub(banning), self.tracker.total_failed());
        self.bans.decide(decisions, progress, now)
    }

    /// Count each failure against the ids it names; the ids that reached
    /// `maxretry`, as ban decisions.
    fn judge(&mut self, failures: &[(Failure, f64)], now: f64) -> Vec<BanDecision> {
        let mut decisions = Vec::new();
        for (failure, at) in failures {
            if failure.host.trim().is_empty() {
                continue;
            }
            let ids = match self.ids.ids_for(&self.name, &failure.host, &failure.fields) {
                Ok(ids) => ids,
                Err(why) => {
                    tracing::info!("[{}] Ignore a failure: {why}", self.name);
                    continue;
                }
            };
            let time = failure.time.unwrap_or(*at);
            for id in &ids {
                let found =
                    || tracing::info!(jail = %self.name, event = "found", address = %id, "[{}] Found {id}", self.name);
                let seen = Seen { matches: &failure.matches, fields: &failure.fields };
                if let Some(judge) = &mut self.ignore
                    && !self.tracker.is_ignored(id)
                    && judge.ignores(id, failure, now)
                {
                    tracing::info!(
                        jail = %self.name,
                        event = "ignored",
                        address = %id,
                        "[{}] Ignore {id} by command",
                        self.name
                    );
                    continue;
                }
                let counted = self.tracker.counted_id(id);
                let weight = self.bans.failure_weight(&counted, time, self.tracker.maxretry());
                match self.tracker.failure(&counted, time, seen, now, weight) {
                    Verdict::Ban(c) => {
                        found();
                        decisions.push(BanDecision {
                            id: c.id,
                            origin: Origin::Failures,
                            time: c.time,
                            failures: c.failures,
                            matches: c.matches,
                            fields: c.fields,
                            until: None,
                        });
                    }
                    Verdict::Ignored => tracing::info!(
                        jail = %self.name,
                        event = "ignored",
                        address = %id,
                        "[{}] Ignore {id} by ignoreip",
                        self.name
                    ),
                    Verdict::Counted => found(),
                    Verdict::AlreadyBanned => tracing::info!("[{}] {counted} already banned", self.name),
                    Verdict::TooOld => tracing::debug!("[{}] Ignore line of {id}: older than findtime", self.name),
                }
            }
        }
        decisions
    }

    /// Lift expired bans; every few seconds, forget old failures, look for
    /// new files and record bans the store refused earlier.
    fn housekeeping(&mut self) {
        let now = self.clock.now();
        for r in self.bans.expire(now) {
            self.tracker.settle(&r.id);
        }
        self.bans.retry_unbans(now);
        if self.reconcile_every > 0 && crate::bans::is_due(now, self.next_reconcile, self.reconcile_every as f64) {
            self.bans.reconcile();
            self.next_reconcile = now + self.reconcile_every as f64;
        }
        if self.last_cleanup.elapsed() >= Duration::from_secs(10) {
            self.bans.retry_unrecorded(&self.progress);
            if self.tracker.cleanup(now) {
                crate::daemon::memory::give_memory_back();
            }
            self.reading.rescan();
            self.last_cleanup = Instant::now();
        }
    }

    /// Measure how far each file is behind (a stat per followed file):
    /// when the jail has caught up, at the first batch of a burst (the
    /// last measure said nothing was behind), and then once a second, not
    /// after every batch.
    fn measure_backlog(&mut self, caught_up: bool) {
        let burst_starts = self.backlog.0.values().all(|behind| *behind == 0);
        if caught_up || burst_starts || self.backlog.1.elapsed() >= Duration::from_secs(1) {
            self.reading.measure_backlog(caught_up || burst_starts);
            self.backlog = (self.reading.view().backlog.into_iter().collect(), Instant::now());
        }
    }

    fn publish(&self) {
        // The bans themselves are read from the listing when asked.
        let view = self.reading.view();
        let status = JailStatus {
            jail: self.name.clone(),
            currently_failed: self.tracker.currently_failed(),
            total_failed: self.tracker.total_failed(),
            files: view.files,
            waiting: view.waiting,
            backend: view.backend.to_string(),
            journal_matches: view.is_journal.then(|| {
                let matches = self.source_spec.journalmatch.as_deref().unwrap_or_default();
                matches.split_whitespace().collect::<Vec<_>>().join(" ")
            }),
            currently_banned: self.bans.count_in_force(),
            total_banned: self.bans.total_banned(),
            banned: Vec::new(),
            lines: self.lines_read,
            lines_skipped: self.lines_skipped,
            behind: self.backlog.0.clone(),
            unbans_pending: self.bans.pending_unbans(),
            running: true,
            problem: None,
            actions_off: self.actions_off.clone(),
        };
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }

    fn shutdown(&mut self) {
        self.bans.stop(&self.progress);
        tracing::info!("[{}] jail stopped", self.name);
    }
}

/// Milliseconds since the first call, on the monotonic clock: what jail
/// heartbeats are measured in.
pub fn monotonic_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Open the reader `reading` for `jail`, or one of its own when the reader
/// it joined reads otherwise; the reader, and where the jail's reading
/// starts.
fn open_reading(
    jail: &Jail,
    reading: Subscription,
    plan: &crate::daemon::assemble::FilterPlan,
    saved_files: std::collections::HashMap<PathBuf, crate::tail::Cursor>,
    saved_journal: Option<String>,
    wake: &crate::tail::Wake,
) -> Result<(Subscription, Progress), String> {
    let make = plan.maker_for(jail);
    match reading.open(plan, make.clone(), saved_files.clone(), saved_journal.clone()) {
        Ok(progress) => Ok((reading, progress)),
        Err(OpenError::Failed(why)) => Err(why),
        Err(OpenError::NotShared) => {
            drop(reading);
            Subscription::open_alone(wake.clone(), plan, make, saved_files, saved_journal)
        }
    }
}
