//! The fleet's task on the daemon's runtime: the NATS connection, the
//! bucket, this host's records going out and everyone's coming in.
//!
//! A host bans locally first and publishes second: each record is kept
//! in the store (the outbox) until the server has it, and goes out again
//! when the server is back. On every (re)connect the whole bucket is read
//! again (a watch with history) and the policy reconciles; a record
//! already taken changes nothing. End times are enforced by the jails,
//! not by the bucket.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::daemon::clock::Clock;
use crate::fleet::Outgoing;
use crate::fleet::policy::{Change, FleetView};
use crate::fleet::record::Record;
use crate::fleet::settings::FleetSettings;
use crate::jail::Prefix;
use crate::store::Store;

/// What the daemon does with changes: ban or lift in the jails that
/// receive, as one batch.
pub type Apply = Arc<dyn Fn(Vec<Change>) + Send + Sync>;

/// Records read or bans handed over in one go: a burst on one host
/// reaches the others as batches, one store commit each.
const BATCH: usize = 4096;

/// How often a missing bucket, a dead watch or a waiting outbox is tried
/// again.
const RETRY: Duration = Duration::from_secs(2);

/// How often records of ended bans are forgotten, and how long after
/// their end.
const FORGET_EVERY: Duration = Duration::from_secs(600);
const FORGET_AFTER: i64 = 3600;

#[derive(Debug, Default)]
struct Link {
    connected: bool,
    last_error: Option<String>,
}

/// The fleet as this daemon runs it.
pub struct Fleet {
    settings: FleetSettings,
    key: nkeys::KeyPair,
    view: Mutex<FleetView>,
    link: Mutex<Link>,
    store: Arc<Mutex<Store>>,
    clock: Arc<dyn Clock>,
    apply: Apply,
    /// Held from a change of the view until its changes are handed to the
    /// jails: a record taken while its origin was revoked could otherwise
    /// reach the jails after the revocation's lifts, and its ban stay.
    applying: Mutex<()>,
    published: AtomicU64,
    /// Records the server acknowledged, to forget from the outbox in
    /// batches (each forgetting is a commit).
    acked: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    acked_inbox: Mutex<Option<UnboundedReceiver<(String, String)>>>,
    /// Asks for the whole bucket to be read again.
    reread: tokio::sync::Notify,
}

impl Fleet {
    /// The fleet of `settings`, signing with `key`.
    pub fn new(
        settings: FleetSettings,
        key: nkeys::KeyPair,
        store: Arc<Mutex<Store>>,
        clock: Arc<dyn Clock>,
        apply: Apply,
    ) -> anyhow::Result<Fleet> {
        let mut trust = BTreeMap::new();
        for (origin, public) in &settings.trust {
            let key =
                nkeys::KeyPair::from_public_key(public).map_err(|e| anyhow::anyhow!("[fleet] trust: {origin}: {e}"))?;
            trust.insert(origin.clone(), key);
        }
        let view = FleetView::new(&settings.name, settings.policy.clone(), trust).protecting(Box::new(|p: &Prefix| {
            if p.is_address() {
                crate::jail::ids::needs_force(p.network()).is_some()
            } else {
                crate::jail::ids::prefix_needs_force(p).is_some()
            }
        }));
        let (acked, acked_inbox) = tokio::sync::mpsc::unbounded_channel();
        Ok(Fleet {
            acked,
            acked_inbox: Mutex::new(Some(acked_inbox)),
            reread: tokio::sync::Notify::new(),
            settings,
            key,
            view: Mutex::new(view),
            link: Mutex::new(Link::default()),
            store,
            clock,
            apply,
            applying: Mutex::new(()),
            published: AtomicU64::new(0),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now() as i64
    }

    /// What `wasmban fleet status` shows.
    pub fn status(&self) -> Value {
        let outbox = self.store.lock().ok().and_then(|s| s.outbox_len().ok()).unwrap_or(0);
        let (connected, last_error) =
            self.link.lock().map(|l| (l.connected, l.last_error.clone())).unwrap_or((false, None));
        let (origins, applied) = self
            .view
            .lock()
            .map(|v| (serde_json::to_value(v.stats()).unwrap_or_default(), v.applied().count()))
            .unwrap_or_default();
        json!({
            "name": self.settings.name,
            "servers": self.settings.servers,
            "bucket": self.settings.bucket,
            "public_key": self.key.public_key(),
            "connected": connected,
            "last_error": last_error,
            "outbox": outbox,
            "published": self.published.load(Ordering::Relaxed),
            "applied": applied,
            "origins": origins,
        })
    }

    /// Revoke `origin`: lift all it contributed; how many bans that was.
    pub fn revoke(&self, origin: &str) -> usize {
        let _in_order = self.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let changes = match self.view.lock() {
            Ok(mut v) => v.revoke(origin, self.now()),
            Err(_) => return 0,
        };
        tracing::warn!("[fleet] origin {origin} revoked: {} ban(s) it reported lifted here", changes.len());
        let n = changes.len();
        (self.apply)(changes);
        n
    }

    /// Take `origin`'s records again: the bucket is read again at once.
    pub fn release(&self, origin: &str) {
        if let Ok(mut v) = self.view.lock() {
            v.release(origin);
        }
        tracing::warn!("[fleet] origin {origin} released: its records are read again");
        self.reread.notify_one();
    }

    /// The signed record of a jail's ban or lift, with its key, as JSON.
    fn record_of(&self, out: Outgoing) -> Option<(String, String)> {
        let (jail, r, end) = match out {
            Outgoing::Banned { jail, record } => {
                let end = (record.bantime >= 0).then(|| record.time + record.bantime);
                (jail, record, end)
            }
            Outgoing::Lifted { jail, record, at } => (jail, record, Some(at)),
        };
        // Ids that are not addresses (a filter's user names) are this
        // host's business.
        let prefix = Prefix::parse(&r.id)?;
        let mut record = Record {
            id: format!("{}:{prefix}:{}", self.settings.name, r.time),
            origin: self.settings.name.clone(),
            address: prefix.network().to_string(),
            prefix: prefix.length(),
            jail,
            reason: r.origin.as_str().to_string(),
            start: r.time,
            end,
            count: r.bancount,
            signature: String::new(),
        };
        if let Err(e) = record.sign(&self.key) {
            tracing::error!("[fleet] signing the record of {}: {e}", r.id);
            return None;
        }
        Some((record.key(), serde_json::to_string(&record).ok()?))
    }

    fn note_error(&self, what: String) {
        tracing::warn!("[fleet] {what}");
        if let Ok(mut l) = self.link.lock() {
            l.last_error = Some(what);
        }
    }

    fn take(&self, entries: Vec<kv::Entry>) {
        let now = self.now();
        let _in_order = self.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let changes: Vec<Change> = match self.view.lock() {
            Ok(mut v) => entries
                .iter()
                .filter(|e| e.operation == kv::Operation::Put)
                .flat_map(|e| v.receive(&e.key, &e.value, now))
                .collect(),
            Err(_) => return,
        };
        if !changes.is_empty() {
            (self.apply)(changes);
        }
    }

    /// Keep records in the outbox until the server has them.
    async fn keep(self: &Arc<Self>, records: Vec<(String, String)>) {
        let me = self.clone();
        let kept = tokio::task::spawn_blocking(move || match me.store.lock() {
            Ok(mut s) => s.outbox_put(&records).is_ok(),
            Err(_) => false,
        })
        .await;
        if !matches!(kept, Ok(true)) {
            self.note_error(
                "could not keep a record in the store's outbox; it goes out only if the server takes it now".into(),
            );
        }
    }

    /// Send `record` under `key`; forget it from the outbox once the
    /// server has it.
    fn publish(self: &Arc<Self>, bucket: &kv::Store, key: String, record: String) {
        let (me, bucket) = (self.clone(), bucket.clone());
        tokio::spawn(async move {
            match bucket.put(&key, record.clone().into()).await {
                Ok(_) => {
                    me.published.fetch_add(1, Ordering::Relaxed);
                    let _ = me.acked.send((key, record));
                }
                Err(e) => me.note_error(format!(
                    "publishing {key}: {e}; kept in the outbox (is this host allowed to write $KV.{}.{}.> ?)",
                    me.settings.bucket, me.settings.name
                )),
            }
        });
    }

    /// Send everything in the outbox.
    async fn drain(self: &Arc<Self>, bucket: &kv::Store) {
        let me = self.clone();
        let waiting = tokio::task::spawn_blocking(move || me.store.lock().ok().and_then(|s| s.outbox().ok()))
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        for (key, record) in waiting {
            self.publish(bucket, key, record);
        }
    }
}

/// The bucket, made with the key-value layout when it is missing (NATS
/// 2.9's servers do not take the client's own call to make one).
async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, String> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| {
        format!("bucket {bucket} is missing and could not be made ({e}); make it once as the README says")
    })?;
    js.get_key_value(bucket).await.map_err(|e| format!("bucket {bucket}: {e}"))
}

/// Run the fleet until the task is dropped: `outgoing` carries the jails'
/// bans.
pub async fn run(fleet: Arc<Fleet>, mut outgoing: UnboundedReceiver<Outgoing>) {
    let (events, mut event) = tokio::sync::mpsc::unbounded_channel();
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("wasmban {}", fleet.settings.name))
        .retry_on_initial_connect()
        .event_callback(move |e| {
            let events = events.clone();
            async move {
                let _ = events.send(e);
            }
        });
    let (servers, login) = split_logins(&fleet.settings.servers);
    if let Some(path) = &fleet.settings.credentials {
        options = match options.credentials_file(path).await {
            Ok(o) => o,
            Err(e) => {
                fleet.note_error(format!("credentials {}: {e}; the fleet is off", path.display()));
                return;
            }
        };
    } else if fleet.settings.nkey_auth {
        match fleet.key.seed() {
            Ok(seed) => options = options.nkey(seed),
            Err(e) => {
                fleet.note_error(format!("this host's key cannot sign in: {e}; the fleet is off"));
                return;
            }
        }
    } else if let Some((user, password)) = login {
        options = options.user_and_password(user, password);
    }
    let client = match options.connect(servers).await {
        Ok(c) => c,
        Err(e) => {
            fleet.note_error(format!("servers {:?}: {e}; the fleet is off", fleet.settings.servers));
            return;
        }
    };
    let js = jetstream::new(client);
    let Some(mut acked) = fleet.acked_inbox.lock().ok().and_then(|mut a| a.take()) else { return };
    let mut bucket: Option<kv::Store> = None;
    let mut watch: Option<kv::Watch> = None;
    let mut retry = tokio::time::interval(RETRY);
    let mut forget = tokio::time::interval(FORGET_EVERY);
    loop {
        tokio::select! {
            out = outgoing.recv() => {
                let Some(out) = out else { return };
                let mut records: Vec<(String, String)> = fleet.record_of(out).into_iter().collect();
                while records.len() < BATCH {
                    match outgoing.try_recv() {
                        Ok(more) => records.extend(fleet.record_of(more)),
                        Err(_) => break,
                    }
                }
                fleet.keep(records.clone()).await;
                if let Some(b) = &bucket {
                    for (key, record) in records {
                        fleet.publish(b, key, record);
                    }
                }
            }
            done = acked.recv() => {
                let Some(done) = done else { return };
                let mut batch = vec![done];
                while batch.len() < BATCH {
                    match acked.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let me = fleet.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut s) = me.store.lock()
                        && let Err(e) = s.outbox_done(&batch)
                    {
                        tracing::warn!("[fleet] {e}");
                    }
                })
                .await;
            }
            _ = forget.tick() => {
                let before = fleet.now() - FORGET_AFTER;
                if let Ok(mut v) = fleet.view.lock() {
                    let n = v.forget_ended(before);
                    if n > 0 {
                        tracing::debug!("[fleet] forgot {n} record(s) of ended bans; {} held", v.len());
                    }
                }
            }
            _ = fleet.reread.notified() => {
                watch = None;
                ensure(&fleet, &js, &mut bucket, &mut watch).await;
            }
            e = event.recv() => match e {
                Some(async_nats::Event::Connected) => {
                    tracing::info!("[fleet] connected");
                    if let Ok(mut l) = fleet.link.lock() {
                        l.connected = true;
                    }
                    // Read the whole bucket again, and send what waited.
                    watch = None;
                    if let Some(b) = &bucket {
                        fleet.drain(b).await;
                    }
                    ensure(&fleet, &js, &mut bucket, &mut watch).await;
                }
                Some(async_nats::Event::Disconnected) => {
                    tracing::warn!("[fleet] disconnected; bans go on here and wait in the outbox");
                    if let Ok(mut l) = fleet.link.lock() {
                        l.connected = false;
                    }
                }
                Some(other) => fleet.note_error(other.to_string()),
                None => {}
            },
            entry = async { watch.as_mut()?.next().await }, if watch.is_some() => match entry {
                Some(Ok(entry)) => {
                    let mut entries = vec![entry];
                    while entries.len() < BATCH {
                        match watch.as_mut().and_then(|w| w.next().now_or_never()) {
                            Some(Some(Ok(more))) => entries.push(more),
                            _ => break,
                        }
                    }
                    fleet.take(entries);
                }
                Some(Err(e)) => {
                    fleet.note_error(format!("watching the bucket: {e}"));
                    watch = None;
                }
                None => watch = None,
            },
            _ = retry.tick() => {
                if fleet.link.lock().map(|l| l.connected).unwrap_or(false) {
                    ensure(&fleet, &js, &mut bucket, &mut watch).await;
                }
            }
        }
    }
}

/// Open the bucket and watch it, whichever is missing.
async fn ensure(
    fleet: &Arc<Fleet>,
    js: &jetstream::Context,
    bucket: &mut Option<kv::Store>,
    watch: &mut Option<kv::Watch>,
) {
    if bucket.is_none() {
        match open_bucket(js, &fleet.settings.bucket).await {
            Ok(b) => {
                fleet.drain(&b).await;
                *bucket = Some(b);
            }
            Err(e) => fleet.note_error(e),
        }
    }
    if let (Some(b), None) = (bucket.as_ref(), watch.as_ref()) {
        match b.watch_with_history(">").await {
            Ok(w) => *watch = Some(w),
            Err(e) => fleet.note_error(format!("watching the bucket: {e}")),
        }
    }
}

/// The servers without the `user:password@` of their URLs, and the first
/// such login (the client takes it as options, not from the URL).
fn split_logins(servers: &[String]) -> (Vec<String>, Option<(String, String)>) {
    let mut login = None;
    let bare = servers
        .iter()
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else { return url.clone() };
            match rest.split_once('@') {
                Some((userinfo, host)) => {
                    if login.is_none() {
                        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                        login = Some((user.to_string(), password.to_string()));
                    }
                    format!("{scheme}://{host}")
                }
                None => url.clone(),
            }
        })
        .collect();
    (bare, login)
}

#[cfg(test)]
mod tests {
    #[test]
    fn logins_are_taken_out_of_the_urls() {
        let (bare, login) =
            super::split_logins(&["nats://web1:secret@10.0.0.1:4222".into(), "tls://nats.example.org".into()]);
        assert_eq!(bare, ["nats://10.0.0.1:4222", "tls://nats.example.org"]);
        assert_eq!(login, Some(("web1".into(), "secret".into())));
    }
}
