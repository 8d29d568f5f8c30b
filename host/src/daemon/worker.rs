//! One jail at work, on a thread of its own (plugin calls are synchronous,
//! and a slow one must hold up its jail only): follow the jail's logs, feed
//! lines to its filter in batches, count failures, record bans before
//! applying them, lift them when their time is up, and obey the commands
//! the control socket sends.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::jail::Jail;
use crate::daemon::clock::Clock;
use crate::daemon::engine::{JailEngine, Verdict};
use crate::daemon::ids::{IdPolicy, UseDns};
use crate::daemon::source::{Batch, Source};
use crate::plugin::bindings::types::{Failure, Ticket};
use crate::plugin::error::TrapKind;
use crate::plugin::{ActionInstance, FilterInstance, Registry, Runtime};
use crate::store::{BanRecord, Store};

/// Lines handed to the filter per call: large enough that the boundary
/// costs nothing, small enough that a burst is saved in steps.
pub const BATCH_LINES: usize = 4096;
/// Memory traps in one batch after which its lines are no longer split
/// to find the ones at fault.
const MAX_MEMORY_SPLITS: usize = 32;

/// Where the daemon's building blocks live, shared by every jail.
#[derive(Clone)]
pub struct Shared {
    /// Loads and instantiates plugins.
    pub runtime: Arc<Runtime>,
    /// The admin's plugin directory.
    pub plugin_dir: PathBuf,
    /// The ban store.
    pub store: Arc<Mutex<Store>>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// How often files are looked at without an inotify event.
    pub poll_interval: Duration,
}

/// A request for a jail.
pub enum Command {
    /// A followed file changed: read it now rather than at the next poll.
    Wake,
    /// Ban an address now.
    Ban {
        /// The address.
        ip: String,
        /// Whether it was banned (false: already banned).
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Lift bans: one address, or all when `None`.
    Unban {
        /// The address.
        ip: Option<String>,
        /// How many bans were lifted.
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// Stop: save positions, run every action's `stop`.
    Stop,
}

/// One ban as `status`/`banned` show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BanView {
    /// The address.
    pub ip: String,
    /// Unix seconds when it started.
    pub time: i64,
    /// Its length in seconds; -1 forever.
    pub bantime: i64,
    /// How many times it was banned in this jail, this ban included.
    pub bancount: u32,
}

/// What `status JAIL` reports (fail2ban's fields).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct JailStatus {
    /// The jail.
    pub jail: String,
    /// Ids with failures being counted.
    pub currently_failed: usize,
    /// Failures counted since the jail started.
    pub total_failed: u64,
    /// Files followed.
    pub files: Vec<String>,
    /// Files waiting to appear.
    pub waiting: Vec<String>,
    /// Bans in force.
    pub currently_banned: usize,
    /// Bans made since the jail started.
    pub total_banned: u64,
    /// The bans in force.
    pub banned: Vec<BanView>,
    /// Lines read since the jail started.
    pub lines: u64,
    /// Lines the filter failed on (a trap), lost to it.
    #[serde(default)]
    pub lines_skipped: u64,
    /// Whether the jail is up (false while it starts, or when it failed).
    pub running: bool,
    /// Why the jail is not working, when it is not.
    pub problem: Option<String>,
}

/// The daemon's handle on a running jail.
pub struct JailHandle {
    /// The configuration it runs, to tell on reload whether it changed.
    pub fingerprint: String,
    commands: Sender<Command>,
    status: Arc<Mutex<JailStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl JailHandle {
    /// The latest status the jail published.
    pub fn status(&self) -> JailStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Send a command; false when the jail thread is gone.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Ask the jail to stop without waiting.
    pub fn request_stop(&self) {
        let _ = self.commands.send(Command::Stop);
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

/// Start `jail` on its own thread.
pub fn spawn(jail: Jail, shared: Shared) -> std::io::Result<JailHandle> {
    let fingerprint = format!("{jail:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    let status = Arc::new(Mutex::new(JailStatus { jail: jail.name.clone(), ..JailStatus::default() }));
    let published = status.clone();
    let waker = tx.clone();
    let thread = std::thread::Builder::new().name(format!("jail-{}", jail.name)).spawn(move || {
        let name = jail.name.clone();
        match Worker::start(jail, shared, waker, published.clone()) {
            Ok(mut worker) => worker.run(rx),
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
    Ok(JailHandle { fingerprint, commands: tx, status, thread: Some(thread) })
}

fn idle(rx: Receiver<Command>, name: &str) {
    while let Ok(command) = rx.recv() {
        let why = format!("jail {name} is not running (see the log for why)");
        match command {
            Command::Ban { reply, .. } => drop(reply.send(Err(why))),
            Command::Unban { reply, .. } => drop(reply.send(Err(why))),
            Command::Wake => {}
            Command::Stop => return,
        }
    }
}

struct Worker {
    name: String,
    engine: JailEngine,
    filter: FilterInstance,
    /// Each action, with whether it skips restored bans (`norestored`).
    actions: Vec<(String, ActionInstance, bool)>,
    source: Source,
    shared: Shared,
    status: Arc<Mutex<JailStatus>>,
    lines_read: u64,
    last_cleanup: Instant,
    /// Lines the filter failed on, lost to it.
    lines_skipped: u64,
    /// Turns the ids filters report into ban ids (`usedns`).
    ids: IdPolicy,
    /// Bans in force that the store could not record yet (disk full): they
    /// go into every later save, and no read position is saved without
    /// them, so a restart reads their lines again rather than losing them.
    unrecorded: Vec<BanRecord>,
}

/// Run one action over `tickets`; the tickets that failed, with why.
fn run_action(instance: &mut ActionInstance, tickets: &[Ticket], ban: bool) -> Vec<(Ticket, String)> {
    if tickets.is_empty() {
        return Vec::new();
    }
    let results = if ban { instance.ban(tickets) } else { instance.unban(tickets) };
    match results {
        Ok(results) => tickets.iter().zip(results).filter_map(|(t, r)| r.err().map(|e| (t.clone(), e))).collect(),
        Err(e) => tickets.iter().map(|t| (t.clone(), e.to_string())).collect(),
    }
}

fn report_failures(jail: &str, action: &str, verb: &str, failed: &[(Ticket, String)]) {
    // A batch that failed as a whole carries one message for every ticket:
    // say it once per run of equal messages, not ten thousand times.
    let mut i = 0;
    let mut groups = 0;
    while i < failed.len() {
        let (first, e) = &failed[i];
        let same = failed[i..].iter().take_while(|(_, other)| other == e).count();
        groups += 1;
        if groups > 20 {
            tracing::error!("[{jail}] action {action}: {} more failures to {verb} not shown", failed.len() - i);
            break;
        }
        if same > 1 {
            tracing::error!("[{jail}] action {action} failed to {verb} {} and {} more: {e}", first.ip, same - 1);
        } else {
            tracing::error!("[{jail}] action {action} failed to {verb} {}: {e}", first.ip);
        }
        i += same;
    }
}

fn ticket(r: &BanRecord) -> Ticket {
    Ticket {
        jail: r.jail.clone(),
        ip: r.ip.clone(),
        failures: r.failures,
        matches: r.matches.clone(),
        time: r.time,
        bantime: r.bantime,
        ban_count: r.bancount,
        fields: Vec::new(),
    }
}

impl Worker {
    fn start(
        jail: Jail,
        shared: Shared,
        waker: Sender<Command>,
        status: Arc<Mutex<JailStatus>>,
    ) -> Result<Worker, String> {
        let registry = Registry::new(Some(shared.plugin_dir.clone()));
        let name = jail.name.clone();
        let Some((reference, def)) = &jail.filter else {
            return Err("no filter set (filter = NAME in the jail)".into());
        };
        let fail = |e: &dyn std::fmt::Display| format!("filter {} ({}): {e}", reference.name, def.where_());
        // A pack's filter may bring the logpath and journalmatch to use when
        // the jail gives none: the pack is asked before the source opens.
        let mut logpath = jail.logpath.clone();
        let mut journalmatch = def.get("journalmatch").map(str::to_string);
        let mut pack = None;
        if let Some(filter_name) = def.pack_filter() {
            let plugin = shared.runtime.load_named(&registry, def.plugin()).map_err(|e| fail(&e))?;
            let info = plugin.describe().map_err(|e| fail(&e))?;
            let Some(meta) = info.filters.iter().find(|f| f.name == filter_name) else {
                let names: Vec<&str> = info.filters.iter().map(|f| f.name.as_str()).collect();
                return Err(fail(&format!(
                    "the pack {} has no filter {filter_name:?}; it has: {}",
                    info.name,
                    names.join(", ")
                )));
            };
            if logpath.is_empty()
                && let Some(default) = &meta.logpath
            {
                logpath = vec![default.clone()];
            }
            if journalmatch.is_none() {
                journalmatch = meta.journalmatch.clone();
            }
            pack = Some(plugin);
        }
        // Positions first: lines logged while the plugins load are read.
        let source =
            Source::open(&name, &jail.backend, &logpath, journalmatch.as_deref(), shared.store.clone(), waker)?;
        let mut options = def.component_options().map_err(|e| e.to_string())?;
        if source.is_journal() && def.pack_filter().is_none() {
            // Journal entries carry their time: no date to look for.
            options.push(("journal".into(), "1".into()));
        }
        let plugin = match pack {
            Some(plugin) => plugin,
            None => shared.runtime.load_named(&registry, def.plugin()).map_err(|e| fail(&e))?,
        };
        let filter = plugin.filter_for(def.pack_filter(), options).map_err(|e| fail(&e))?;
        let mut actions = Vec::new();
        for (reference, def) in &jail.actions {
            let Some(plugin_name) = def.plugin() else {
                return Err(format!(
                    "action {} ({}) has neither `plugin` nor any action command: nothing to run",
                    reference.name,
                    def.where_()
                ));
            };
            let plugin = shared
                .runtime
                .load_named(&registry, plugin_name)
                .map_err(|e| format!("action {} ({}): {e}", reference.name, def.where_()))?;
            let instance = plugin
                .action(def.plugin_options())
                .map_err(|e| format!("action {} ({}): {e}", reference.name, def.where_()))?;
            let norestored =
                def.options.get("norestored").is_some_and(|v| crate::config::values::parse_bool(v).unwrap_or(false));
            actions.push((reference.name.clone(), instance, norestored));
        }
        if jail.options.get("ignorecommand").is_some_and(|c| !c.trim().is_empty()) {
            tracing::warn!("[{name}] ignorecommand is not run by wasmban; list the addresses in ignoreip instead");
        }
        let usedns = jail.options.get("usedns").map(String::as_str).or_else(|| def.get("usedns")).unwrap_or("warn");
        let usedns = UseDns::parse(usedns)?;
        let engine = JailEngine::new(&jail);
        let mut worker = Worker {
            name,
            engine,
            filter,
            actions,
            source,
            shared,
            status,
            lines_read: 0,
            last_cleanup: Instant::now(),
            unrecorded: Vec::new(),
            lines_skipped: 0,
            ids: IdPolicy::new(usedns),
        };
        for (action, instance, _) in &mut worker.actions {
            if let Err(e) = instance.start() {
                tracing::error!("[{}] action {action} failed to start: {e}", worker.name);
            }
        }
        worker.restore();
        tracing::info!("[{}] jail started, reading {}", worker.name, {
            let mut what = worker.source.files();
            what.extend(worker.source.waiting());
            what.join(", ")
        });
        for path in worker.source.waiting() {
            tracing::info!("[{}] waiting for {path} to appear", worker.name);
        }
        worker.publish();
        Ok(worker)
    }

    fn now(&self) -> f64 {
        self.shared.clock.now()
    }

    /// Put the stored bans of this jail back in force.
    fn restore(&mut self) {
        let now = self.now();
        let stored = match self.shared.store.lock() {
            Ok(store) => store.active_bans_of(&self.name, now as i64),
            Err(_) => return,
        };
        match stored {
            Ok(bans) if !bans.is_empty() => {
                for b in &bans {
                    tracing::info!(target: BAN_TARGET, "[{}] Restore Ban {}", self.name, b.ip);
                    self.engine.restore(b.clone());
                }
                self.apply(&bans, true, true);
            }
            Ok(_) => {}
            Err(e) => tracing::error!("[{}] could not read the bans to restore: {e}", self.name),
        }
    }

    /// Run every action's ban (or unban) for these records. When a ban
    /// fails, the action's `check` runs (it repairs what it can, as
    /// fail2ban's actioncheck/actionrepair do) and the failed bans are tried
    /// once more; when `check` reports that it rebuilt its structure, every
    /// ban in force is applied again, since the rebuild dropped them.
    fn apply(&mut self, records: &[BanRecord], ban: bool, restoring: bool) {
        if records.is_empty() {
            return;
        }
        let verb = if ban { "ban" } else { "unban" };
        let tickets: Vec<Ticket> = records.iter().map(ticket).collect();
        for (action, instance, norestored) in &mut self.actions {
            if restoring && *norestored {
                continue;
            }
            let failed = run_action(instance, &tickets, ban);
            if failed.is_empty() {
                continue;
            }
            if !ban {
                report_failures(&self.name, action, verb, &failed);
                continue;
            }
            let retry: Vec<Ticket> = match instance.check() {
                Ok(()) => failed.iter().map(|(t, _)| t.clone()).collect(),
                Err(e) => {
                    tracing::warn!("[{}] action {action}: {e}; applying every ban in force again", self.name);
                    let mut all: Vec<Ticket> = self.engine.banned().map(ticket).collect();
                    for (t, _) in &failed {
                        if !all.iter().any(|a| a.ip == t.ip) {
                            all.push(t.clone());
                        }
                    }
                    all
                }
            };
            let still = run_action(instance, &retry, ban);
            report_failures(&self.name, action, verb, &still);
        }
    }

    fn run(&mut self, rx: Receiver<Command>) {
        loop {
            // Commands that queued up go first, so that the CLI is answered
            // between batches even during a burst.
            loop {
                while let Ok(command) = rx.try_recv() {
                    match command {
                        Command::Stop => return self.shutdown(),
                        other => self.obey(other),
                    }
                }
                let more = self.read_batch();
                self.expire();
                self.publish();
                if !more {
                    break;
                }
            }
            match rx.recv_timeout(self.shared.poll_interval) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => self.obey(command),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.shutdown();
    }

    fn obey(&mut self, command: Command) {
        match command {
            Command::Ban { ip, reply } => {
                let r = self.ban_manually(&ip);
                let _ = reply.send(r);
            }
            Command::Unban { ip, reply } => {
                let lifted = match ip {
                    Some(ip) => self.engine.lift(&ip).into_iter().collect(),
                    None => self.engine.lift_all(),
                };
                let r = self.lift(&lifted).map(|()| lifted.len());
                let _ = reply.send(r);
            }
            Command::Wake | Command::Stop => {}
        }
        self.publish();
    }

    fn ban_manually(&mut self, ip: &str) -> Result<bool, String> {
        if self.engine.is_banned(ip) {
            return Ok(false);
        }
        let now = self.now();
        let planned = {
            let mut store = self.shared.store.lock().map_err(|_| "the ban store is poisoned".to_string())?;
            let record = self.engine.plan_manual(ip, &store, now).map_err(|e| e.to_string())?;
            if let Some(r) = &record {
                store.record_progress(std::slice::from_ref(r), &[]).map_err(|e| e.to_string())?;
            }
            record
        };
        match planned {
            Some(record) => {
                self.ban_recorded(vec![record]);
                Ok(true)
            }
            None => Err("the jail's bantime is 0: nothing to ban".into()),
        }
    }

    /// Bans that are durable in the store: now in force, logged, applied.
    fn ban_recorded(&mut self, records: Vec<BanRecord>) {
        for r in &records {
            tracing::info!(target: BAN_TARGET, "[{}] Ban {}", self.name, r.ip);
            self.engine.commit(r.clone());
        }
        self.apply(&records, true, false);
    }

    fn lift(&mut self, records: &[BanRecord]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        self.forget_unrecorded(records);
        // The firewall is freed even when the store cannot be written: a
        // ban the store still holds is lifted again at the next start.
        let stored = match self.shared.store.lock() {
            Ok(mut store) => records
                .iter()
                .try_for_each(|r| store.lift(Some(&self.name), &r.ip).map(drop))
                .map_err(|e| format!("{e}; the ban(s) are lifted in the firewall all the same")),
            Err(_) => Err("the ban store is poisoned".to_string()),
        };
        for r in records {
            tracing::info!(target: BAN_TARGET, "[{}] Unban {}", self.name, r.ip);
        }
        self.apply(records, false, false);
        stored
    }

    /// Read and scan up to one batch; true when there may be more.
    fn read_batch(&mut self) -> bool {
        let batch = self.source.read(BATCH_LINES);
        if batch.lines.is_empty() {
            return false;
        }
        self.lines_read += batch.lines.len() as u64;
        let full = batch.lines.len() >= BATCH_LINES;
        let now = self.now();
        let mut failures = Vec::new();
        let mut memory_traps = 0;
        for (range, at) in time_groups(&batch, now) {
            self.scan(&batch.lines[range], at, &mut failures, &mut memory_traps);
        }
        let mut candidates = Vec::new();
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
            let time = failure.time.unwrap_or(at);
            for id in &ids {
                match self.engine.failure(id, time, &failure.matches, now) {
                    Verdict::Ban(c) => {
                        tracing::info!("[{}] Found {id}", self.name);
                        candidates.push(c)
                    }
                    Verdict::Ignored => tracing::info!("[{}] Ignore {id} by ignoreip", self.name),
                    Verdict::Counted => tracing::info!("[{}] Found {id}", self.name),
                    Verdict::AlreadyBanned => tracing::info!("[{}] {id} already banned", self.name),
                    Verdict::TooOld => tracing::debug!("[{}] Ignore line of {id}: older than findtime", self.name),
                }
            }
        }
        let mut planned = Vec::new();
        if let Ok(store) = self.shared.store.lock() {
            for c in &candidates {
                match self.engine.plan(c, &store, now) {
                    Ok(Some(r)) => planned.push(r),
                    Ok(None) => {
                        self.engine.drop_candidate(&c.id);
                        tracing::info!("[{}] {} reached maxretry but its ban would already be over", self.name, c.id)
                    }
                    Err(e) => {
                        self.engine.drop_candidate(&c.id);
                        tracing::error!("[{}] could not plan the ban of {}: {e}", self.name, c.id)
                    }
                }
            }
        } else {
            for c in &candidates {
                self.engine.drop_candidate(&c.id);
            }
        }
        if !self.record_with_unrecorded(&planned) && !planned.is_empty() {
            // The actions still act, since an attacker must be stopped even
            // when the disk is full; the record is retried with every save.
            tracing::error!(
                "[{}] {} ban(s) could not be recorded; applying them anyway and recording them when the store \
                 can be written (their log lines are read again after a restart until then)",
                self.name,
                planned.len()
            );
        }
        self.ban_recorded(planned);
        full
    }

    /// Feed `lines` to the filter, adding what it finds to `failures`.
    /// When the filter runs out of its memory on them, the lines are split
    /// in halves and tried again, so that only the lines that cause it are
    /// lost (and counted), not the genuine failures around them; after
    /// [`MAX_MEMORY_SPLITS`] such traps in one batch the rest is dropped,
    /// so that a filter that always runs out cannot stall its jail.
    fn scan(&mut self, lines: &[String], at: f64, failures: &mut Vec<(Failure, f64)>, memory_traps: &mut usize) {
        let text = lines.join("\n");
        match self.filter.feed(&text, at, false) {
            Ok(scan) => failures.extend(scan.failures.into_iter().map(|f| (f, at))),
            Err(e)
                if e.trap_kind() == Some(TrapKind::Memory) && lines.len() > 1 && *memory_traps < MAX_MEMORY_SPLITS =>
            {
                *memory_traps += 1;
                tracing::warn!("[{}] {e}; trying its {} line(s) again in halves", self.name, lines.len());
                let (first, second) = lines.split_at(lines.len() / 2);
                self.scan(first, at, failures, memory_traps);
                self.scan(second, at, failures, memory_traps);
            }
            Err(e) => {
                // The filter instance is rebuilt before the next call;
                // these lines are lost to it, and the log and status say so.
                self.lines_skipped += lines.len() as u64;
                tracing::error!("[{}] filter failed on {} line(s), which are skipped: {e}", self.name, lines.len());
            }
        }
    }

    /// Save `bans`, with every ban not recorded yet and the read
    /// positions, in one transaction; on failure they all wait for the
    /// next save. True when saved.
    fn record_with_unrecorded(&mut self, bans: &[BanRecord]) -> bool {
        let mut all = std::mem::take(&mut self.unrecorded);
        all.extend(bans.iter().cloned());
        if self.save_progress(&all) {
            if !all.is_empty() && all.len() > bans.len() {
                tracing::info!("[{}] {} ban(s) recorded late", self.name, all.len() - bans.len());
            }
            true
        } else {
            self.unrecorded = all;
            false
        }
    }

    /// Lifted bans no longer wait to be recorded.
    fn forget_unrecorded(&mut self, lifted: &[BanRecord]) {
        if !self.unrecorded.is_empty() {
            self.unrecorded.retain(|u| !lifted.iter().any(|l| l.ip == u.ip));
        }
    }

    /// Record bans and read positions together; false on failure.
    fn save_progress(&mut self, bans: &[BanRecord]) -> bool {
        let cursors = self.source.cursors();
        let journal = self.source.journal_cursor().map(|c| (self.name.as_str(), c));
        match self.shared.store.lock() {
            Ok(mut store) => match store.record_journal_progress(bans, &cursors, journal) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("[{}] {e}", self.name);
                    false
                }
            },
            Err(_) => false,
        }
    }

    fn expire(&mut self) {
        let now = self.now();
        let due = self.engine.expired(now);
        if let Err(e) = self.lift(&due) {
            tracing::error!("[{}] could not lift expired bans: {e}", self.name);
        }
        if self.last_cleanup.elapsed() >= Duration::from_secs(10) {
            if !self.unrecorded.is_empty() {
                self.record_with_unrecorded(&[]);
            }
            if self.engine.cleanup(now) {
                give_memory_back();
            }
            self.source.rescan();
            self.last_cleanup = Instant::now();
        }
    }

    fn publish(&self) {
        let mut banned: Vec<BanView> = self
            .engine
            .banned()
            .map(|r| BanView { ip: r.ip.clone(), time: r.time, bantime: r.bantime, bancount: r.bancount })
            .collect();
        banned.sort_by(|a, b| (a.time, &a.ip).cmp(&(b.time, &b.ip)));
        let status = JailStatus {
            jail: self.name.clone(),
            currently_failed: self.engine.currently_failed(),
            total_failed: self.engine.total_failed(),
            files: self.source.files(),
            waiting: self.source.waiting(),
            currently_banned: banned.len(),
            total_banned: self.engine.total_banned(),
            banned,
            lines: self.lines_read,
            lines_skipped: self.lines_skipped,
            running: true,
            problem: None,
        };
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }

    fn shutdown(&mut self) {
        if !self.record_with_unrecorded(&[]) && !self.unrecorded.is_empty() {
            tracing::error!(
                "[{}] stopping with {} ban(s) not recorded; their log lines will be read again at the next start",
                self.name,
                self.unrecorded.len()
            );
        }
        for (action, instance, _) in &mut self.actions {
            if let Err(e) = instance.stop() {
                tracing::error!("[{}] action {action} failed to stop: {e}", self.name);
            }
        }
        tracing::info!("[{}] jail stopped", self.name);
    }
}

/// Hand freed heap pages back to the system: glibc keeps them for reuse
/// otherwise, and a daemon's resident size would stay at its peak after a
/// burst of addresses had aged out.
fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The log target of ban and unban lines: fail2ban's logger name, so that
/// the stock recidive filter reads wasmban's log as it reads fail2ban's.
pub const BAN_TARGET: &str = "fail2ban.actions";

/// Runs of lines fed to the filter with one "now": the whole batch for
/// files (their lines carry dates), runs of journal entries from the same
/// second (the journal's time is the lines' time).
fn time_groups(batch: &Batch, now: f64) -> Vec<(std::ops::Range<usize>, f64)> {
    let Some(times) = &batch.times else { return vec![(0..batch.lines.len(), now)] };
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=times.len() {
        if i == times.len() || times[i].floor() != times[start].floor() {
            groups.push((start..i, times[start]));
            start = i;
        }
    }
    groups
}
