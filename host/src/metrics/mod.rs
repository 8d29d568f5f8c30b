//! What the daemon counts, for Prometheus (`[metrics] listen` in
//! wasmban.conf, served by [`http`]) and for `status --top`. One registry
//! per process: jails and plugin instances come and go with reloads, and a
//! counter must not go back to zero when they do (Prometheus reads a drop
//! as a restart). Counters are atomics, bumped where the work happens;
//! the gauges (bans in force, bytes behind a log) are set from the jails'
//! published status when a scrape asks, so that a scrape never waits on a
//! jail.

pub mod http;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{
    Counter, CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::daemon::status::JailStatus;
use crate::plugin::TrapKind;

/// Who started a ban, or what ended it: the `origin` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOrigin {
    /// The jail's filter found `maxretry` failures.
    Filter,
    /// An admin (`wasmban ban`, `unban`).
    Manual,
    /// The ban's time was up.
    Expired,
    /// Another host of the fleet.
    Fleet,
}

impl BanOrigin {
    fn label(self) -> &'static str {
        match self {
            BanOrigin::Filter => "filter",
            BanOrigin::Manual => "manual",
            BanOrigin::Expired => "expired",
            BanOrigin::Fleet => "fleet",
        }
    }
}

/// Every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    lines: IntCounterVec,
    lines_skipped: IntCounterVec,
    failures: IntCounterVec,
    addresses_forgotten: IntCounterVec,
    bans: IntCounterVec,
    unbans: IntCounterVec,
    /// Set at scrape time from the jails' status.
    jail_up: IntGaugeVec,
    bans_in_force: IntGaugeVec,
    addresses_counted: IntGaugeVec,
    unbans_pending: IntGaugeVec,
    log_bytes_behind: IntGaugeVec,
    scrape: Mutex<()>,
    plugin_calls: IntCounterVec,
    plugin_call_seconds: HistogramVec,
    plugin_cpu_seconds: CounterVec,
    plugin_traps: IntCounterVec,
    plugin_rebuilds: IntCounterVec,
    store_commit_seconds: Histogram,
    /// The meters handed out, for `status --top`.
    meters: Mutex<BTreeMap<PluginKey, PluginMeter>>,
}

/// The labels of one plugin instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PluginKey {
    /// The jail it works for.
    pub jail: String,
    /// `filter` or `action`.
    pub kind: String,
    /// Its name in the jail (`sshd`, `iptables-multiport`).
    pub instance: String,
    /// The component that runs it (`regex-filter`, `iptables`).
    pub plugin: String,
}

/// The counters of one plugin instance, resolved once so that a call
/// costs a few atomic additions.
#[derive(Clone)]
pub struct PluginMeter {
    calls: IntCounter,
    call_seconds: Histogram,
    cpu_seconds: Counter,
    timeouts: IntCounter,
    memory: IntCounter,
    panics: IntCounter,
    other_traps: IntCounter,
    rebuilds: IntCounter,
}

/// One row of `status --top`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PluginCost {
    /// Which instance.
    #[serde(flatten)]
    pub key: PluginKey,
    /// CPU time spent in its calls, in seconds.
    pub cpu_seconds: f64,
    /// Wall time spent in its calls, in seconds.
    pub call_seconds: f64,
    /// Calls made.
    pub calls: u64,
    /// Calls that trapped (the three below included).
    pub traps: u64,
    /// Calls stopped at the CPU deadline.
    pub timeouts: u64,
    /// Calls that hit the memory cap.
    pub memory_cap_hits: u64,
    /// Calls that panicked.
    pub panics: u64,
    /// Times the instance was rebuilt after a trap.
    pub rebuilds: u64,
}

/// Upper bounds of the call-time histogram: a filter batch takes from
/// tens of microseconds to the call deadline (seconds).
const CALL_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];
/// Upper bounds of the store's commit-time histogram.
const COMMIT_BUCKETS: &[f64] = &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// `made`, registered in `registry`. Names, help texts and labels are
/// constants: a failure here is a programming error, which the unit tests
/// below catch.
fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<M>) -> M {
    let metric = made.unwrap_or_else(|e| panic!("a metric of wasmban's is malformed: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("a metric of wasmban's: {e}"));
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

const PLUGIN_LABELS: &[&str] = &["jail", "kind", "instance", "plugin"];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let build = gauge_vec(r, "wasmban_build_info", "Always 1; the version of the running wasmban.", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let plugin_call_seconds = registered(
            r,
            HistogramVec::new(
                HistogramOpts::new("wasmban_plugin_call_seconds", "Wall time of calls into plugin instances.")
                    .buckets(CALL_BUCKETS.to_vec()),
                PLUGIN_LABELS,
            ),
        );
        let plugin_cpu_seconds = registered(
            r,
            CounterVec::new(
                Opts::new("wasmban_plugin_cpu_seconds_total", "CPU time spent in calls into plugin instances."),
                PLUGIN_LABELS,
            ),
        );
        let store_commit_seconds = registered(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "wasmban_store_commit_seconds",
                    "Time to write bans and read positions to the store.",
                )
                .buckets(COMMIT_BUCKETS.to_vec()),
            ),
        );
        let mut trap_labels = PLUGIN_LABELS.to_vec();
        trap_labels.push("reason");
        Metrics {
            lines: counter_vec(r, "wasmban_lines_read_total", "Log lines read by each jail.", &["jail"]),
            lines_skipped: counter_vec(
                r,
                "wasmban_lines_skipped_total",
                "Log lines lost because the jail's filter trapped on them.",
                &["jail"],
            ),
            failures: counter_vec(r, "wasmban_failures_total", "Failures found by each jail's filter.", &["jail"]),
            addresses_forgotten: counter_vec(
                r,
                "wasmban_addresses_forgotten_total",
                "Addresses whose failures were forgotten because the jail counted maxtracked of them.",
                &["jail"],
            ),
            bans: counter_vec(r, "wasmban_bans_total", "Bans made, by who made them.", &["jail", "origin"]),
            unbans: counter_vec(r, "wasmban_unbans_total", "Bans lifted, by what lifted them.", &["jail", "origin"]),
            jail_up: gauge_vec(r, "wasmban_jail_up", "1 when the jail runs, 0 when it failed to start.", &["jail"]),
            bans_in_force: gauge_vec(r, "wasmban_bans_in_force", "Bans in force.", &["jail"]),
            addresses_counted: gauge_vec(
                r,
                "wasmban_addresses_counted",
                "Addresses whose failures are being counted.",
                &["jail"],
            ),
            unbans_pending: gauge_vec(
                r,
                "wasmban_unbans_pending",
                "Bans whose time is up that an action has not lifted yet.",
                &["jail"],
            ),
            log_bytes_behind: gauge_vec(
                r,
                "wasmban_log_bytes_behind",
                "Bytes of a followed log file not read yet.",
                &["jail", "file"],
            ),
            plugin_calls: counter_vec(r, "wasmban_plugin_calls_total", "Calls into plugin instances.", PLUGIN_LABELS),
            plugin_call_seconds,
            plugin_cpu_seconds,
            plugin_traps: counter_vec(
                r,
                "wasmban_plugin_traps_total",
                "Calls into plugin instances that trapped, by reason (timeout, memory, panic, other).",
                &trap_labels,
            ),
            plugin_rebuilds: counter_vec(
                r,
                "wasmban_plugin_rebuilds_total",
                "Plugin instances rebuilt after a trap.",
                PLUGIN_LABELS,
            ),
            store_commit_seconds,
            meters: Mutex::new(BTreeMap::new()),
            scrape: Mutex::new(()),
            registry,
        }
    }

    /// `n` lines read by `jail`.
    pub fn lines_read(&self, jail: &str, n: u64) {
        self.lines.with_label_values(&[jail]).inc_by(n);
    }

    /// `n` lines lost to a trap of `jail`'s filter.
    pub fn lines_skipped(&self, jail: &str, n: u64) {
        self.lines_skipped.with_label_values(&[jail]).inc_by(n);
    }

    /// `n` failures found by `jail`'s filter.
    pub fn failures(&self, jail: &str, n: u64) {
        self.failures.with_label_values(&[jail]).inc_by(n);
    }

    /// `n` ids `jail` forgot because it counted `maxtracked` of them.
    pub fn addresses_forgotten(&self, jail: &str, n: u64) {
        self.addresses_forgotten.with_label_values(&[jail]).inc_by(n);
    }

    /// `n` bans made in `jail`.
    pub fn banned(&self, jail: &str, origin: BanOrigin, n: u64) {
        self.bans.with_label_values(&[jail, origin.label()]).inc_by(n);
    }

    /// `n` bans lifted in `jail`.
    pub fn unbanned(&self, jail: &str, origin: BanOrigin, n: u64) {
        self.unbans.with_label_values(&[jail, origin.label()]).inc_by(n);
    }

    /// One store commit that took `took`.
    pub fn store_commit(&self, took: Duration) {
        self.store_commit_seconds.observe(took.as_secs_f64());
    }

    /// The meter of one plugin instance (the same one for the same labels,
    /// so that counts go on across a jail's restart).
    pub fn plugin_meter(&self, key: PluginKey) -> PluginMeter {
        let mut meters = match self.meters.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(m) = meters.get(&key) {
            return m.clone();
        }
        let labels = [key.jail.as_str(), key.kind.as_str(), key.instance.as_str(), key.plugin.as_str()];
        let trap = |reason: &str| {
            let mut l = labels.to_vec();
            l.push(reason);
            self.plugin_traps.with_label_values(&l)
        };
        let meter = PluginMeter {
            calls: self.plugin_calls.with_label_values(&labels),
            call_seconds: self.plugin_call_seconds.with_label_values(&labels),
            cpu_seconds: self.plugin_cpu_seconds.with_label_values(&labels),
            timeouts: trap("timeout"),
            memory: trap("memory"),
            panics: trap("panic"),
            other_traps: trap("other"),
            rebuilds: self.plugin_rebuilds.with_label_values(&labels),
        };
        meters.insert(key, meter.clone());
        meter
    }

    /// What each plugin instance has cost since the daemon started, the
    /// most CPU first.
    pub fn plugin_costs(&self) -> Vec<PluginCost> {
        let meters = match self.meters.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut rows: Vec<PluginCost> = meters
            .into_iter()
            .map(|(key, m)| {
                let (timeouts, memory_cap_hits, panics) = (m.timeouts.get(), m.memory.get(), m.panics.get());
                PluginCost {
                    key,
                    cpu_seconds: m.cpu_seconds.get(),
                    call_seconds: m.call_seconds.get_sample_sum(),
                    calls: m.calls.get(),
                    traps: timeouts + memory_cap_hits + panics + m.other_traps.get(),
                    timeouts,
                    memory_cap_hits,
                    panics,
                    rebuilds: m.rebuilds.get(),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.cpu_seconds.total_cmp(&a.cpu_seconds).then(b.traps.cmp(&a.traps)).then(a.key.cmp(&b.key))
        });
        rows
    }

    /// The text for one scrape: the gauges set from `jails` (the status
    /// each running jail last published), then every metric.
    pub fn render(&self, jails: &[JailStatus]) -> String {
        // Two scrapes at once must not see each other's half-set gauges.
        let _one_at_a_time = match self.scrape.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Jails gone since the last scrape disappear from the gauges.
        for g in [&self.jail_up, &self.bans_in_force, &self.addresses_counted, &self.unbans_pending] {
            g.reset();
        }
        self.log_bytes_behind.reset();
        for s in jails {
            let jail = [s.jail.as_str()];
            self.jail_up.with_label_values(&jail).set(i64::from(s.problem.is_none()));
            self.bans_in_force.with_label_values(&jail).set(s.currently_banned as i64);
            self.addresses_counted.with_label_values(&jail).set(s.currently_failed as i64);
            self.unbans_pending.with_label_values(&jail).set(s.unbans_pending as i64);
            for (file, behind) in &s.behind {
                self.log_bytes_behind.with_label_values(&[s.jail.as_str(), file.as_str()]).set(*behind as i64);
            }
        }
        self.encode()
    }

    /// The text exposition format (version 0.0.4), which every Prometheus
    /// and `promtool check metrics` read.
    pub fn encode(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("encoding the metrics: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl PluginMeter {
    /// Count one call: its wall and CPU time, and how it ended.
    pub fn call(&self, wall: Duration, cpu: Duration, trap: Option<TrapKind>) {
        self.calls.inc();
        self.call_seconds.observe(wall.as_secs_f64());
        self.cpu_seconds.inc_by(cpu.as_secs_f64());
        match trap {
            None => {}
            Some(TrapKind::Timeout) => self.timeouts.inc(),
            Some(TrapKind::Memory) => self.memory.inc(),
            Some(TrapKind::Panic) => self.panics.inc(),
            Some(TrapKind::Other) => self.other_traps.inc(),
        }
    }

    /// Count one rebuild of the instance.
    pub fn rebuilt(&self) {
        self.rebuilds.inc();
    }
}

/// The CPU time this thread has used: plugin calls run on the calling
/// thread, so the difference around a call is what the call cost.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// A started measurement of wall and CPU time.
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    /// Start measuring.
    pub fn start() -> Stopwatch {
        Stopwatch { wall: Instant::now(), cpu: thread_cpu_time() }
    }

    /// Wall and CPU time since the start.
    pub fn elapsed(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), thread_cpu_time().saturating_sub(self.cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_encodes() {
        let m = Metrics::new();
        m.lines_read("sshd", 3);
        m.banned("sshd", BanOrigin::Filter, 1);
        let meter = m.plugin_meter(PluginKey {
            jail: "sshd".into(),
            kind: "filter".into(),
            instance: "sshd".into(),
            plugin: "regex-filter".into(),
        });
        meter.call(Duration::from_millis(2), Duration::from_millis(1), Some(TrapKind::Timeout));
        let status = JailStatus {
            jail: "sshd".into(),
            currently_banned: 2,
            behind: [("/var/log/auth.log".to_string(), 10)].into(),
            ..JailStatus::default()
        };
        let text = m.render(&[status]);
        assert!(text.contains("wasmban_lines_read_total{jail=\"sshd\"} 3"), "{text}");
        assert!(text.contains("wasmban_bans_in_force{jail=\"sshd\"} 2"), "{text}");
        assert!(text.contains("wasmban_log_bytes_behind{file=\"/var/log/auth.log\",jail=\"sshd\"} 10"), "{text}");
        // A jail gone at the next scrape is gone from the gauges.
        let text = m.render(&[]);
        assert!(!text.contains("wasmban_bans_in_force{"), "{text}");
        assert!(text.contains("wasmban_bans_total{jail=\"sshd\",origin=\"filter\"} 1"), "{text}");
        assert!(text.contains("reason=\"timeout\"} 1"), "{text}");
        assert!(text.contains("wasmban_build_info{version="), "{text}");
        assert!(text.contains("# TYPE wasmban_plugin_call_seconds histogram"), "{text}");
    }

    #[test]
    fn the_same_labels_give_the_same_meter_and_top_sorts_by_cpu() {
        let m = Metrics::new();
        let key = |j: &str| PluginKey { jail: j.into(), kind: "filter".into(), instance: j.into(), plugin: "p".into() };
        m.plugin_meter(key("cheap")).call(Duration::ZERO, Duration::from_millis(1), None);
        m.plugin_meter(key("dear")).call(Duration::ZERO, Duration::from_millis(50), Some(TrapKind::Memory));
        m.plugin_meter(key("dear")).call(Duration::ZERO, Duration::from_millis(50), None);
        let rows = m.plugin_costs();
        assert_eq!(rows[0].key.jail, "dear");
        assert_eq!((rows[0].calls, rows[0].traps, rows[0].memory_cap_hits), (2, 1, 1));
        assert!((rows[0].cpu_seconds - 0.1).abs() < 1e-9);
        assert_eq!(rows[1].key.jail, "cheap");
    }

    #[test]
    fn a_threads_cpu_time_grows_with_work() {
        let watch = Stopwatch::start();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (wall, cpu) = watch.elapsed();
        assert!(cpu > Duration::ZERO && cpu <= wall + Duration::from_millis(5), "{cpu:?} {wall:?}");
    }
}
