//! `wasmban server`: the daemon. Jails are built by [`assemble`] and run
//! on threads of their own ([`jail_thread`]); the control socket, signals
//! and reloads run on a small tokio runtime that never waits on a plugin.

pub mod assemble;
pub mod clock;
pub mod control;
mod fleet_link;
pub mod ignore_judge;
pub mod jail_set;
pub mod jail_thread;
pub mod log_output;
pub mod logging;
pub mod memory;
pub mod notify;
mod pidfile;
pub mod read_ahead;
pub mod server_settings;
pub mod settings;
pub mod shared_read;
pub mod status;
mod supervise;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::config::ConfigError;
use crate::config::jail::Jails;
use crate::daemon::clock::Clock;
use crate::daemon::control::{Reply, Request};
use crate::daemon::jail_thread::{JailCommand, JailContext, JailHandle};
use crate::daemon::logging::LogControl;
use crate::daemon::pidfile::{Pidfile, PidfileProblem};
use crate::jail::ids;
use crate::plugin::{Runtime, RuntimeOptions};
use crate::store::Store;

/// How the daemon is started.
pub struct ServerOptions {
    /// The configuration directory.
    pub confdir: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// The state directory (ban database, compiled plugins).
    pub state_dir: PathBuf,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// How often logs are looked at without a file event.
    pub poll_interval: Duration,
    /// `dbpurgeage` in seconds.
    pub dbpurgeage: i64,
    /// `dbmaxmatches`: matched lines the store keeps per ban.
    pub dbmaxmatches: usize,
    /// The daemon's log, reopened on reload, changed by `set loglevel` and
    /// `set logtarget`.
    pub log: Option<&'static LogControl>,
    /// `syslogsocket`, as written.
    pub syslogsocket: String,
    /// How the mail capability sends.
    pub mail: crate::capability::mail::MailSettings,
    /// Where the whois capability asks.
    pub whois: crate::capability::whois::WhoisSettings,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where CrowdSec bouncers are served, if anywhere.
    pub lapi: Option<crate::lapi::LapiSettings>,
    /// The fleet that shares bans, if any.
    pub fleet: Option<crate::fleet::settings::FleetSettings>,
    /// The service manager, when started by systemd with `Type=notify`.
    pub notifier: Option<notify::Notifier>,
    /// Where to write the daemon's pid while it runs.
    pub pidfile: Option<PathBuf>,
}

/// How long a ban or unban may take (the actions run firewall programs).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

enum Event {
    Reload { jail: Option<String>, reply: oneshot::Sender<Result<Value, String>> },
    Stop,
}

struct Daemon {
    confdir: PathBuf,
    jail_context: JailContext,
    jails: Mutex<BTreeMap<String, JailHandle>>,
    events: mpsc::UnboundedSender<Event>,
    log: Option<&'static LogControl>,
    /// `dbpurgeage` in seconds (`set dbpurgeage` changes it).
    dbpurgeage: std::sync::atomic::AtomicI64,
    /// The store's file.
    db: PathBuf,
    syslogsocket: Mutex<String>,
    notifier: Option<notify::Notifier>,
    /// Reloads and stops under way: jails are missing from `jails` for a
    /// moment then, which bouncers must not take for lifted bans.
    changing_jails: std::sync::atomic::AtomicUsize,
    /// The state directory.
    state_dir: PathBuf,
    /// The fleet, once it runs.
    fleet: std::sync::OnceLock<Arc<crate::fleet::client::Fleet>>,
    /// Whether systemd is still to hear READY=1 (at start and after each
    /// reload, once every jail has settled).
    ready_due: std::sync::atomic::AtomicBool,
}

/// Make the state directory (mode 0700) if needed, and refuse one that
/// another user could change: it holds the ban database and compiled code
/// that the daemon maps executable, so whoever can write it runs code as
/// this daemon.
pub(crate) fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the state directory {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let link = std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if link.file_type().is_symlink() && link.uid() != uid {
        anyhow::bail!(
            "the state directory {} is a symbolic link owned by uid {}, not by this daemon (uid {uid}); \
             give a directory of this daemon's own with --state-dir",
            dir.display(),
            link.uid()
        );
    }
    let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("the state directory {} is not a directory", dir.display());
    }
    if meta.uid() != uid {
        anyhow::bail!(
            "the state directory {} is owned by uid {}, not by this daemon (uid {uid}): that user could replace \
             the ban database or the compiled plugins; give a directory of this daemon's own with --state-dir, \
             or `chown {uid} {}` if that user is trusted",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "the state directory {} can be written by group or others (mode {:o}); run `chmod 700 {}`",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// Bind the control socket with mode 0600, refusing to steal it from a
/// daemon that still answers there.
/// The store's file name in the state directory.
pub const STORE_FILE: &str = "wasmban.sqlite3";

fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket; wasmban removes only a stale socket there: \
                 move that file away or give another path with -s",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another wasmban daemon is answering on {}; stop it first (`wasmban -s {} stop`)",
                path.display(),
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    // SAFETY: umask only swaps the process's file creation mask; the old
    // one is put back right after bind, so the socket is never reachable
    // with wider permissions.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Raise the soft limit of open files to the hard limit: each followed
/// log holds a descriptor, and each plugin instance a few, so the usual
/// soft limit of 1024 is too low for a large glob.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!("could not raise the open-file limit above {}", limit.rlim_cur);
            }
        }
    }
}

/// Run the daemon until `stop` or SIGTERM.
pub fn run(options: ServerOptions) -> anyhow::Result<()> {
    memory::tune_allocator();
    private_dir(&options.state_dir)?;
    let _pidfile = match options.pidfile.as_deref().map(Pidfile::write).transpose() {
        Ok(p) => p,
        Err(PidfileProblem::Taken(e)) => return Err(e),
        // A directory that cannot be written (not root) costs the pidfile
        // only.
        Err(PidfileProblem::Unwritable(e)) => {
            tracing::warn!("{e:#}; running without a pidfile");
            None
        }
    };
    raise_open_file_limit();
    let db = options.state_dir.join(STORE_FILE);
    let now = options.clock.now() as i64;
    let (mut store, recovery) = Store::open_or_recover(&db, now)?;
    if let Some(recovery) = recovery {
        tracing::error!("{}: {recovery}", db.display());
    }
    store.set_max_matches(options.dbmaxmatches);
    // Bans that ended while the daemon was down are lifted in the store
    // (their actions' rules went with the last stop), then age out.
    match store.expire(now) {
        Ok(ended) if !ended.is_empty() => tracing::info!("{} ban(s) ended while wasmban was stopped", ended.len()),
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    match store.purge(now, options.dbpurgeage) {
        Ok(n) if n > 0 => tracing::info!("forgot {n} ban(s) older than dbpurgeage"),
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(options.state_dir.join("cache")),
        mail: options.mail.clone(),
        whois: options.whois.clone(),
        ..RuntimeOptions::default()
    })?;
    // The fleet's channel exists before the jails, which hand it their bans.
    let (fleet_outbox, fleet_inbox) = match &options.fleet {
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let jail_context = JailContext {
        runtime: Arc::new(runtime),
        confdir: options.confdir.clone(),
        plugin_dir: options.confdir.join("plugin.d"),
        store: Arc::new(Mutex::new(store)),
        clock: options.clock.clone(),
        poll_interval: options.poll_interval,
        fleet: fleet_outbox,
        readers: Arc::default(),
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wasmban-control")
        .enable_all()
        .build()?;
    tokio.block_on(serve(options, jail_context, fleet_inbox))
}

async fn serve(
    mut options: ServerOptions,
    jail_context: JailContext,
    fleet_inbox: Option<tokio::sync::mpsc::UnboundedReceiver<crate::fleet::Outgoing>>,
) -> anyhow::Result<()> {
    let listener = bind_socket(&options.socket)?;
    let (events, mut inbox) = mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon {
        confdir: options.confdir.clone(),
        jail_context,
        jails: Mutex::new(BTreeMap::new()),
        events,
        log: options.log,
        dbpurgeage: std::sync::atomic::AtomicI64::new(options.dbpurgeage),
        db: options.state_dir.join(STORE_FILE),
        syslogsocket: Mutex::new(options.syslogsocket.clone()),
        notifier: options.notifier.take(),
        ready_due: std::sync::atomic::AtomicBool::new(true),
        changing_jails: std::sync::atomic::AtomicUsize::new(0),
        state_dir: options.state_dir.clone(),
        fleet: std::sync::OnceLock::new(),
    });
    let (jails, errors) = Jails::load(&options.confdir)?;
    for e in &errors {
        tracing::error!("{e}; that jail is not started");
    }
    for suspect in &jails.suspects {
        tracing::warn!("{suspect}");
    }
    daemon.start(jails.enabled.into_iter().collect());
    tracing::info!(
        "wasmban {} started: configuration {}, socket {}, {} jail(s)",
        env!("CARGO_PKG_VERSION"),
        options.confdir.display(),
        options.socket.display(),
        daemon.jail_names().len()
    );

    let accepting = daemon.clone();
    let accept = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let d = accepting.clone();
                    tokio::spawn(async move { d.serve_client(stream).await });
                }
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });

    let metrics = match options.metrics_listen {
        Some(listen) => Some(daemon.clone().serve_metrics(listen).await),
        None => None,
    };
    let fleet = match (options.fleet.clone(), fleet_inbox) {
        (Some(settings), Some(inbox)) => daemon.clone().start_fleet(settings, inbox),
        _ => None,
    };
    let lapi = match &options.lapi {
        Some(settings) => daemon.clone().serve_lapi(settings).await,
        None => None,
    };
    let supervising = tokio::spawn(daemon.clone().supervise(options.poll_interval));

    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                if let Err(e) = daemon.reload(None).await {
                    tracing::error!("reload failed, jails keep running as they were: {e}");
                }
            }
            _ = terminate.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = purge.tick() => daemon.purge(daemon.dbpurgeage.load(std::sync::atomic::Ordering::Relaxed)),
            event = inbox.recv() => match event {
                Some(Event::Reload { jail, reply }) => { let r = daemon.reload(jail).await; let _ = reply.send(r); }
                Some(Event::Stop) | None => break,
            },
        }
    }
    if let Some(n) = &daemon.notifier {
        n.send("STOPPING=1");
    }
    accept.abort();
    supervising.abort();
    if let Some(m) = metrics.flatten() {
        m.abort();
    }
    // Bouncers find the API gone and keep what they hold, rather than
    // being told that the jails' bans ended as the jails stop.
    if let Some(l) = lapi {
        l.abort();
    }
    if let Some(f) = fleet {
        f.abort();
    }
    daemon.changing_jails.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = daemon.clone();
    let _ = tokio::task::spawn_blocking(move || d.stop_all()).await;
    let _ = std::fs::remove_file(&options.socket);
    tracing::info!("wasmban stopped");
    Ok(())
}

/// Sections named by configuration errors: jails to leave as they run.
fn broken_jails(errors: &[ConfigError]) -> BTreeSet<String> {
    errors
        .iter()
        .filter_map(|e| match e {
            ConfigError::Value { section, .. } => Some(section.clone()),
            ConfigError::Jail { jail, .. } => Some(jail.clone()),
            _ => None,
        })
        .collect()
}

impl Daemon {
    fn jail_names(&self) -> Vec<String> {
        self.jails.lock().map(|j| j.keys().cloned().collect()).unwrap_or_default()
    }

    fn start(&self, jails: Vec<crate::config::jail::Jail>) -> Vec<String> {
        let mut started = Vec::new();
        for (name, spawned) in jail_thread::spawn_all(jails, &self.jail_context) {
            match spawned {
                Ok(handle) => {
                    if let Ok(mut map) = self.jails.lock() {
                        map.insert(name.clone(), handle);
                    }
                    started.push(name);
                }
                Err(e) => tracing::error!("[{name}] could not start a thread for the jail: {e}"),
            }
        }
        started
    }

    fn stop_all(&self) {
        let handles: Vec<JailHandle> =
            self.jails.lock().map(|mut m| std::mem::take(&mut *m).into_values().collect()).unwrap_or_default();
        stop_handles(handles);
    }

    fn purge(&self, age: i64) {
        let now = self.jail_context.clock.now() as i64;
        if let Ok(mut store) = self.jail_context.store.lock()
            && let Err(e) = store.purge(now, age)
        {
            tracing::warn!("{e}");
        }
    }

    async fn reload(&self, only: Option<String>) -> Result<Value, String> {
        if let Some(n) = &self.notifier {
            n.reloading();
        }
        // READY=1 again once the jails have settled, whatever the outcome.
        self.changing_jails.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let result = self.reload_jails(only).await;
        self.changing_jails.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.ready_due.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    }

    async fn reload_jails(&self, only: Option<String>) -> Result<Value, String> {
        let confdir = self.confdir.clone();
        let loaded = tokio::task::spawn_blocking(move || Jails::load(&confdir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let (jails, errors) = loaded;
        for e in &errors {
            tracing::error!("{e}; that jail keeps running as it was");
        }
        for suspect in &jails.suspects {
            tracing::warn!("{suspect}");
        }
        let broken = broken_jails(&errors);
        if let Some(name) = &only
            && !jails.enabled.iter().any(|j| &j.name == name)
        {
            return Err(format!("no enabled jail named {name} in {}", self.confdir.display()));
        }
        let wanted: BTreeSet<String> = jails.enabled.iter().map(|j| j.name.clone()).collect();
        let mut stopping = Vec::new();
        let mut starting = Vec::new();
        let mut unchanged = Vec::new();
        {
            let mut map = self.jails.lock().map_err(|_| "internal state poisoned".to_string())?;
            let gone: Vec<String> = map
                .keys()
                .filter(|n| !wanted.contains(*n) && !broken.contains(*n) && only.as_ref().is_none_or(|o| o == *n))
                .cloned()
                .collect();
            for name in gone {
                if let Some(h) = map.remove(&name) {
                    stopping.push((name, h));
                }
            }
            for jail in jails.enabled {
                if only.as_ref().is_some_and(|o| o != &jail.name) {
                    continue;
                }
                let fingerprint = format!("{jail:?}");
                match map.get(&jail.name) {
                    // A runtime `set` lasts until the next reload, as in
                    // fail2ban: such a jail starts again from its files.
                    // So does a jail running without an action, whose
                    // grant may have been added since.
                    Some(h)
                        if h.fingerprint == fingerprint
                            && only.is_none()
                            && !h.edited()
                            && h.counters().actions_off.is_empty() =>
                    {
                        unchanged.push(jail.name.clone())
                    }
                    Some(_) => {
                        if let Some(h) = map.remove(&jail.name) {
                            stopping.push((jail.name.clone(), h));
                        }
                        starting.push(jail);
                    }
                    None => starting.push(jail),
                }
            }
        }
        // As fail2ban's reload: the actions of a jail kept as it was run
        // their `actionreload` (a changed jail restarts instead).
        if let Ok(map) = self.jails.lock() {
            for name in &unchanged {
                if let Some(h) = map.get(name) {
                    h.send(JailCommand::Reload);
                }
            }
        }
        let stopped: Vec<String> = stopping.iter().map(|(n, _)| n.clone()).collect();
        let handles = stopping.into_iter().map(|(_, h)| h).collect();
        tokio::task::spawn_blocking(move || stop_handles(handles)).await.map_err(|e| e.to_string())?;
        let started = self.start(starting);
        if let Some(log) = self.log
            && let Err(e) = log.output().reopen()
        {
            tracing::error!("reopening the log file: {e}");
        }
        tracing::info!("reloaded: started {started:?}, stopped {stopped:?}, unchanged {unchanged:?}");
        Ok(json!({ "started": started, "stopped": stopped, "unchanged": unchanged }))
    }

    async fn serve_client(&self, mut stream: tokio::net::UnixStream) {
        let reply = match control::read_request(&mut stream).await {
            Ok(request) => self.handle(request).await,
            Err(reply) => reply,
        };
        control::write_reply(&mut stream, &reply).await;
        // A reply that listed a million bans leaves tens of megabytes
        // free behind it, which glibc would keep: they go back.
        if reply.written.as_ref().is_some_and(|json| json.len() > 1 << 20) {
            drop(reply);
            let _ = tokio::task::spawn_blocking(memory::give_memory_back).await;
        }
    }

    fn has_jail(&self, jail: &str) -> bool {
        self.jails.lock().is_ok_and(|jails| jails.contains_key(jail))
    }

    fn no_such_jail(&self, jail: &str) -> Reply {
        Reply::error(format!("no jail named {jail:?} is running; running: {}", self.jail_names().join(", ")))
    }

    /// Send a command to one jail and wait for its answer.
    async fn ask<T>(
        &self,
        jail: &str,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> JailCommand,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let sent = match self.jails.lock() {
            Ok(map) => map.get(jail).map(|h| h.send(make(tx))),
            Err(_) => None,
        };
        match sent {
            None => return Err(format!("no jail named {jail:?} is running")),
            Some(false) => return Err(format!("jail {jail} has stopped")),
            Some(true) => {}
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(format!("jail {jail} stopped before answering")),
            Err(_) => Err(format!("jail {jail} did not answer within {}s", COMMAND_TIMEOUT.as_secs())),
        }
    }

    async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Ping => Reply::ok(json!("pong")),
            Request::FleetStatus => self.with_fleet(|f| f.status()),
            Request::FleetRelease { origin } => self.with_fleet(|f| {
                f.release(&origin);
                json!({ "origin": origin })
            }),
            Request::FleetRevoke { origin } => {
                self.with_fleet(|f| json!({ "origin": origin, "lifted": f.revoke(&origin) }))
            }
            Request::Status { jail: None, .. } => Reply::ok(json!({ "jails": self.jail_names() })),
            Request::Status { jail: Some(jail), without_bans } => {
                let written = self.jails.lock().ok().and_then(|jails| {
                    let handle = jails.get(&jail)?;
                    let listing = handle.listing();
                    Some(status::status_json(&handle.counters(), (!without_bans).then_some(&listing)))
                });
                match written {
                    Some(json) => Reply::ok_written(json),
                    None => self.no_such_jail(&jail),
                }
            }
            Request::Banned { ips } => {
                // The listings are shared, not copied: the jails' map is not
                // held while a million bans are written.
                let listings: Vec<(String, crate::bans::Listing)> = match self.jails.lock() {
                    Ok(jails) => jails.iter().map(|(name, handle)| (name.clone(), handle.listing())).collect(),
                    Err(_) => Vec::new(),
                };
                Reply::ok_written(status::banned_json(&listings, &ips))
            }
            Request::Ban { jail, ip, force } => {
                let why = match (ids::canonical_ip(&ip), crate::jail::Prefix::parse(&ip)) {
                    (Some(addr), _) => ids::needs_force(addr),
                    (None, Some(prefix)) if ip.contains('/') => ids::prefix_needs_force(&prefix),
                    _ => {
                        return Reply::error(format!(
                            "{ip:?} is not an IPv4 or IPv6 address, or a prefix (2001:db8::/64)"
                        ));
                    }
                };
                if !force && let Some(why) = why {
                    return Reply::error(format!(
                        "{why}: banning it could cut this host off from itself or its admins; \
                         add --force to ban it all the same"
                    ));
                }
                let Some(ip) = ids::stored_id(&ip) else {
                    return Reply::error(format!("{ip:?} is not an address or a prefix"));
                };
                match self.ask(&jail, |reply| JailCommand::Ban { id: ip.clone(), reply }).await {
                    Ok(true) => Reply::ok(json!({ "jail": jail, "ip": ip, "banned": true })),
                    Ok(false) => {
                        Reply::ok(json!({ "jail": jail, "ip": ip, "banned": false, "note": "already banned" }))
                    }
                    Err(e) => Reply::error(e),
                }
            }
            Request::Unban { jail, ip, all } => {
                let ip = match (ip, all) {
                    (Some(_), true) => return Reply::error("give an address or --all, not both"),
                    (None, false) => return Reply::error("give an address to unban, or --all"),
                    // Any id the store may hold: an address (normalised as
                    // bans are), or an id a filter declared.
                    (Some(ip), false) => match ids::stored_id(&ip) {
                        Some(id) => Some(id),
                        None => return Reply::error(format!("{ip:?} is not an address or a ban id")),
                    },
                    (None, true) => None,
                };
                let targets = match jail {
                    Some(j) if !self.has_jail(&j) => return self.no_such_jail(&j),
                    Some(j) => vec![j],
                    None => self.jail_names(),
                };
                let mut lifted = 0;
                let mut errors = Vec::new();
                for j in targets {
                    match self.ask(&j, |reply| JailCommand::Unban { id: ip.clone(), reply }).await {
                        Ok(n) => lifted += n,
                        Err(e) => errors.push(format!("{j}: {e}")),
                    }
                }
                if errors.is_empty() {
                    Reply::ok(json!({ "unbanned": lifted }))
                } else {
                    Reply::error(format!("{lifted} ban(s) lifted; {}", errors.join("; ")))
                }
            }
            Request::Reload { jail } => {
                let (tx, rx) = oneshot::channel();
                if self.events.send(Event::Reload { jail, reply: tx }).is_err() {
                    return Reply::error("the daemon is stopping");
                }
                match rx.await {
                    Ok(Ok(v)) => Reply::ok(v),
                    Ok(Err(e)) => Reply::error(e),
                    Err(_) => Reply::error("the daemon is stopping"),
                }
            }
            Request::Get { jail, key } => {
                let found = self
                    .jails
                    .lock()
                    .ok()
                    // Only `banip` reads the bans, which may be a million.
                    .and_then(|m| {
                        m.get(&jail).map(|h| {
                            let banned = if key == "banip" { h.banned() } else { Vec::new() };
                            (h.config(), h.counters().files, banned, h.idle())
                        })
                    });
                match found {
                    None => self.no_such_jail(&jail),
                    Some((config, files, banned, idle)) => match jail_set::get(&config, &files, &banned, idle, &key) {
                        Ok(v) => Reply::ok(v),
                        Err(e) => Reply::error(e),
                    },
                }
            }
            Request::Set { jail, key, args } => {
                match self.ask(&jail, |reply| JailCommand::Set { key: key.clone(), args: args.clone(), reply }).await {
                    Ok(now) => Reply::ok(now),
                    Err(e) => Reply::error(e),
                }
            }
            Request::Top => Reply::ok(json!({ "plugins": crate::metrics::global().plugin_costs() })),
            // fail2ban's answers: a file is rolled over, other targets flushed.
            Request::FlushLogs => match self.log.map(|l| l.output().reopen()) {
                Some(Ok(true)) => Reply::ok(json!("rolled over")),
                Some(Err(e)) => Reply::error(format!("reopening the log file: {e}")),
                Some(Ok(false)) | None => Reply::ok(json!("flushed")),
            },
            Request::ServerGet { key } => self.server_get(&key),
            Request::ServerSet { key, value } => self.server_set(&key, &value),
            Request::Stop => {
                let _ = self.events.send(Event::Stop);
                Reply::ok(json!("stopping"))
            }
        }
    }
}

fn stop_handles(handles: Vec<JailHandle>) {
    for h in &handles {
        h.request_stop();
    }
    for mut h in handles {
        h.join();
    }
}
