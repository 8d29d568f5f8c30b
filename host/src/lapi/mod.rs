//! The part of CrowdSec's Local API that bouncers read, so that CrowdSec's
//! bouncers (firewall, nginx, traefik, caddy, haproxy, cloudflare...)
//! enforce wasmban's bans. Off unless `[lapi] listen` is set.
//!
//! A bouncer pulls `GET /v1/decisions/stream`: the first pull
//! (`startup=true`) gets every ban in force, later ones what changed since
//! its previous pull. wasmban remembers, per bouncer and query, which
//! decisions it handed out; after a restart of wasmban, a bouncer's next
//! pull is answered as a first one. Bans are read from the jails' lists of
//! bans in force (never from a jail's own thread), so a pull answers at
//! once during a burst.

pub mod decisions;
pub mod http;
pub mod keys;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::daemon::clock::Clock;
use decisions::{Answer, Current, Decision, Filter, Snapshot, Stream};
use keys::KeyRing;

/// `[lapi]` in `wasmban.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct LapiSettings {
    /// `listen`: the address and port served.
    pub listen: std::net::SocketAddr,
    /// `keys`: the bouncers' keys file (`bouncers.keys` in the state
    /// directory when not set).
    pub keys: Option<PathBuf>,
}

/// Where the keys file is: `[lapi] keys`, or the state directory's.
pub fn keys_path(keys: Option<&PathBuf>, state_dir: &std::path::Path) -> PathBuf {
    keys.cloned().unwrap_or_else(|| state_dir.join(keys::DEFAULT_FILE))
}

/// What reads all jails' bans in force.
pub type Source = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Streams kept per bouncer: one per distinct query it sends; the least
/// recently pulled goes first.
const STREAMS_PER_BOUNCER: usize = 8;

struct Slot {
    stream: Stream,
    last_pull: i64,
}

/// The API's state: keys, bans, and what each bouncer was told.
pub struct Lapi {
    keys: KeyRing,
    source: Source,
    clock: Arc<dyn Clock>,
    streams: Mutex<HashMap<String, HashMap<String, Slot>>>,
}

impl Lapi {
    /// An API over `source`, letting in the bouncers of `keys`.
    pub fn new(keys: KeyRing, source: Source, clock: Arc<dyn Clock>) -> Lapi {
        Lapi { keys, source, clock, streams: Mutex::new(HashMap::new()) }
    }

    /// The bouncer whose key is `key`.
    pub fn bouncer(&self, key: &str) -> Option<String> {
        self.keys.bouncer(key)
    }

    /// The keys file.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn now(&self) -> i64 {
        self.clock.now() as i64
    }

    /// A pull of the stream by `bouncer` with the query `query`.
    pub fn pull(&self, bouncer: &str, query: &str) -> Result<Answer, String> {
        let filter = Filter::parse(query, true)?;
        let startup =
            form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "startup" && v.eq_ignore_ascii_case("true"));
        let now = self.now();
        let current = Current::of(&(self.source)(), now);
        let mut streams = self.streams.lock().map_err(|_| "internal state poisoned".to_string())?;
        let mine = streams.entry(bouncer.to_string()).or_default();
        let key = stream_key(query);
        let answer = match mine.get_mut(&key) {
            Some(slot) if !startup => {
                slot.last_pull = now;
                slot.stream.next(&current, &filter, now)
            }
            _ => {
                let (stream, answer) = Stream::start(&current, &filter, now);
                mine.insert(key, Slot { stream, last_pull: now });
                answer
            }
        };
        if mine.len() > STREAMS_PER_BOUNCER
            && let Some(oldest) = mine.iter().min_by_key(|(_, s)| s.last_pull).map(|(k, _)| k.clone())
        {
            mine.remove(&oldest);
        }
        Ok(answer)
    }

    /// `GET /v1/decisions` with the query `query`: the bans in force it
    /// asks for.
    pub fn lookup(&self, query: &str) -> Result<Vec<Decision>, String> {
        let filter = Filter::parse(query, false)?;
        let now = self.now();
        let current = Current::of(&(self.source)(), now);
        Ok(current.matching(&filter).map(|b| b.decision(now)).collect())
    }
}

/// What names one stream of a bouncer: its query without `startup`, in
/// a fixed order.
fn stream_key(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "startup")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::BanView;
    use crate::daemon::clock::Clock;
    use decisions::JailBans;

    struct At(Mutex<f64>);
    impl Clock for At {
        fn now(&self) -> f64 {
            *self.0.lock().unwrap()
        }
    }

    fn lapi(bans: Arc<Mutex<Vec<BanView>>>, clock: Arc<At>) -> Lapi {
        let dir = tempfile::tempdir().unwrap();
        let source: Source = Arc::new(move || Snapshot {
            settled: true,
            jails: vec![JailBans { jail: "sshd".into(), running: true, bans: bans.lock().unwrap().clone() }],
        });
        Lapi::new(KeyRing::new(dir.path().join("none")), source, clock)
    }

    #[test]
    fn each_bouncer_and_query_has_its_own_stream() {
        let bans = Arc::new(Mutex::new(vec![BanView {
            id: "192.0.2.1".into(),
            time: 1000,
            bantime: 600,
            bancount: 1,
            origin: Default::default(),
            from: None,
        }]));
        let clock = Arc::new(At(Mutex::new(1000.0)));
        let api = lapi(bans.clone(), clock.clone());
        assert_eq!(api.pull("fw", "startup=true").unwrap().new.len(), 1);
        assert_eq!(api.pull("fw", "startup=false").unwrap(), Answer::default());
        // Another bouncer, or a query never seen: everything, once.
        assert_eq!(api.pull("nginx", "startup=false").unwrap().new.len(), 1);
        assert_eq!(api.pull("fw", "startup=false&scopes=ip").unwrap().new.len(), 1);
        assert_eq!(api.pull("fw", "scopes=ip").unwrap(), Answer::default());
        bans.lock().unwrap().clear();
        *clock.0.lock().unwrap() = 1010.0;
        assert_eq!(api.pull("fw", "startup=false").unwrap().deleted.len(), 1);
        assert_eq!(api.pull("nginx", "startup=false").unwrap().deleted.len(), 1);
        assert!(api.lookup("ip=192.0.2.1").unwrap().is_empty());
        assert!(api.pull("fw", "ip=bad").is_err());
    }
}
