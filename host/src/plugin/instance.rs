//! Plugin instances. Each owns its Store (one per instance: a trap poisons
//! the whole instance, and separate Stores keep one jail's failure away from
//! the others). A call that traps, times out or overruns memory costs that
//! call only: the instance is discarded and rebuilt before the next call.

use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap};

use crate::metrics::{PluginMeter, Stopwatch};
use crate::plugin::PluginError;
use crate::plugin::error::TrapKind;
use crate::plugin::runtime::{EPOCH_TICK, Plugin, Pre};
use crate::plugin::sandbox::PluginState;
use crate::wit::types::{Failure, Scan, Ticket};
use crate::wit::{
    ActionPlugin, BanContext, EventedAction, FilterPack, FilterPlugin, IgnorePlugin, PackInfo, PreparedFilter,
    ReportHits,
};

/// Counters of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that trapped (timeouts, memory, panics included).
    pub traps: u64,
    /// Times the instance was rebuilt after a trap.
    pub rebuilds: u64,
}

enum Bindings {
    Filter(FilterPlugin),
    /// A filter that also exports `prepare`.
    Prepared(PreparedFilter),
    Action(ActionPlugin),
    /// An action that also exports `action-events`.
    Evented(EventedAction),
    Pack(FilterPack),
    Ignore(IgnorePlugin),
}

struct Live {
    store: Store<PluginState>,
    bindings: Bindings,
    handle: ResourceAny,
}

/// What filter and action instances share: building, calling, rebuilding.
struct Sandboxed {
    plugin: Plugin,
    /// For a pack: which of its filters.
    pack_filter: Option<String>,
    options: Vec<(String, String)>,
    live: Option<Live>,
    stats: InstanceStats,
    /// Where the daemon counts this instance's calls (none outside it).
    meter: Option<PluginMeter>,
}

impl Sandboxed {
    fn new(
        plugin: Plugin,
        pack_filter: Option<&str>,
        options: Vec<(String, String)>,
    ) -> Result<Sandboxed, PluginError> {
        let pack_filter = pack_filter.map(str::to_string);
        let mut s =
            Sandboxed { plugin, pack_filter, options, live: None, stats: InstanceStats::default(), meter: None };
        s.live = Some(s.build()?);
        Ok(s)
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis() as u64;
        self.plugin.inner.limits.call_timeout_ms.div_ceil(tick) + 1
    }

    fn build(&self) -> Result<Live, PluginError> {
        let inner = &self.plugin.inner;
        let mut store = new_store(&self.plugin, self.deadline_ticks());
        let plugin = inner.name.to_string();
        let trap = |store: &mut Store<PluginState>, call, e| classify(&plugin, call, store, e);
        // Instantiate through one world's bindings and create its resource
        // (`IFACE().RESOURCE().create(options)`).
        macro_rules! made {
            ($pre:expr, $variant:ident, $iface:ident, $resource:ident) => {{
                let b = $pre.instantiate(&mut store).map_err(|e| trap(&mut store, "instantiate", e))?;
                let created = b
                    .$iface()
                    .$resource()
                    .call_create(&mut store, &self.options)
                    .map_err(|e| trap(&mut store, "create", e))?;
                (Bindings::$variant(b), created)
            }};
        }
        let (bindings, created) = match &inner.pre {
            Pre::Filter(_, Some(pre)) => made!(pre, Prepared, wasmban_plugin_filter, matcher),
            Pre::Filter(pre, None) => made!(pre, Filter, wasmban_plugin_filter, matcher),
            Pre::Action(_, Some(pre)) => made!(pre, Evented, wasmban_plugin_action, handler),
            Pre::Action(pre, None) => made!(pre, Action, wasmban_plugin_action, handler),
            Pre::Ignore(pre) => made!(pre, Ignore, wasmban_plugin_ignore, judge),
            Pre::Pack(pre) => {
                let b = pre.instantiate(&mut store).map_err(|e| trap(&mut store, "instantiate", e))?;
                let filter = self.pack_filter.as_deref().unwrap_or("");
                let created = b
                    .wasmban_plugin_pack()
                    .matcher()
                    .call_create(&mut store, filter, &self.options)
                    .map_err(|e| trap(&mut store, "create", e))?;
                (Bindings::Pack(b), created)
            }
        };
        let handle = created.map_err(|message| PluginError::Create { plugin, message })?;
        Ok(Live { store, bindings, handle })
    }

    /// Run `f` against a live instance, rebuilding it first if the last call
    /// trapped, and discarding it if this one does.
    fn call<R>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&mut Store<PluginState>, &Bindings, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        if self.live.is_none() {
            let live = self.build()?;
            self.stats.rebuilds += 1;
            if let Some(m) = &self.meter {
                m.rebuilt();
            }
            tracing::info!(plugin = self.plugin.name(), "plugin instance rebuilt after a trap");
            self.live = Some(live);
        }
        let ticks = self.deadline_ticks();
        let Some(live) = self.live.as_mut() else { unreachable!("just built") };
        self.stats.calls += 1;
        live.store.set_epoch_deadline(ticks);
        let watch = self.meter.as_ref().map(|_| Stopwatch::start());
        let result = f(&mut live.store, &live.bindings, live.handle);
        let count = |trap| {
            if let (Some(m), Some(w)) = (&self.meter, &watch) {
                let (wall, cpu) = w.elapsed();
                m.call(wall, cpu, trap);
            }
        };
        match result {
            Ok(r) => {
                count(None);
                Ok(r)
            }
            Err(e) => {
                self.stats.traps += 1;
                let mut dead = self.live.take();
                let err = match dead.as_mut() {
                    Some(l) => classify(self.plugin.name(), call, &mut l.store, e),
                    None => PluginError::Trap {
                        plugin: self.plugin.name().into(),
                        call,
                        kind: TrapKind::Other,
                        detail: format!("{e:#}"),
                    },
                };
                count(Some(err.trap_kind().unwrap_or(TrapKind::Other)));
                tracing::error!(plugin = self.plugin.name(), "{err}");
                Err(err)
            }
        }
    }
}

/// A fresh Store for one instance of `plugin`: its sandbox, memory cap and
/// CPU deadline.
fn new_store(plugin: &Plugin, deadline_ticks: u64) -> Store<PluginState> {
    let inner = &plugin.inner;
    let state = PluginState::new(&inner.name, &inner.grants, &inner.limits, &inner.services);
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|s| &mut s.memory);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(deadline_ticks);
    store
}

/// Run a pack's `describe` in a sandbox of its own.
pub(crate) fn describe_pack(plugin: &Plugin) -> Result<PackInfo, PluginError> {
    let tick = EPOCH_TICK.as_millis() as u64;
    let mut store = new_store(plugin, plugin.inner.limits.call_timeout_ms.div_ceil(tick) + 1);
    let Pre::Pack(pre) = &plugin.inner.pre else {
        return Err(PluginError::WrongKind { plugin: plugin.name().into(), message: "it is not a filter pack".into() });
    };
    let b = pre.instantiate(&mut store).map_err(|e| classify(plugin.name(), "instantiate", &mut store, e))?;
    b.wasmban_plugin_pack().call_describe(&mut store).map_err(|e| classify(plugin.name(), "describe", &mut store, e))
}

/// Turn a wasmtime error into a report that says what happened, with the
/// plugin's last stderr lines (a Rust panic message lands there).
fn classify(plugin: &str, call: &'static str, store: &mut Store<PluginState>, e: wasmtime::Error) -> PluginError {
    let said = store.data().stderr.take_recent();
    let memory = store.data().memory.exceeded;
    let kind = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => TrapKind::Timeout,
        _ if memory => TrapKind::Memory,
        Some(Trap::UnreachableCodeReached) => TrapKind::Panic,
        _ => TrapKind::Other,
    };
    let mut detail = format!("{e:#}");
    if !said.is_empty() {
        detail.push_str("; plugin stderr: ");
        detail.push_str(&said.join(" | "));
    }
    PluginError::Trap { plugin: plugin.to_string(), call, kind, detail }
}

/// A filter instance: feed it batches of lines.
pub struct FilterInstance(Sandboxed);

impl FilterInstance {
    pub(crate) fn new(plugin: Plugin, options: Vec<(String, String)>) -> Result<Self, PluginError> {
        Sandboxed::new(plugin, None, options).map(FilterInstance)
    }

    pub(crate) fn new_in_pack(
        plugin: Plugin,
        filter: &str,
        options: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        Sandboxed::new(plugin, Some(filter), options).map(FilterInstance)
    }

    /// Scan `lines` (newline-separated) at host time `now`.
    pub fn feed(&mut self, lines: &str, now: f64, notes: bool) -> Result<Scan, PluginError> {
        self.0.call("feed", |store, bindings, handle| match bindings {
            Bindings::Filter(b) => b.wasmban_plugin_filter().matcher().call_feed(store, handle, lines, now, notes),
            Bindings::Prepared(b) => b.wasmban_plugin_filter().matcher().call_feed(store, handle, lines, now, notes),
            Bindings::Pack(b) => b.wasmban_plugin_pack().matcher().call_feed(store, handle, lines, now, notes),
            Bindings::Action(_) | Bindings::Evented(_) | Bindings::Ignore(_) => {
                unreachable!("filter instances hold filter bindings")
            }
        })
    }

    /// Work out ahead what `feed_prepared` of another instance of the same
    /// filter needs for `lines` (every batch, in order, before that one
    /// gets it): all it can for the first `ahead` lines. Errors when the
    /// filter does not export `prepare`.
    pub fn prepare(&mut self, lines: &str, now: f64, ahead: u32) -> Result<Vec<u32>, PluginError> {
        let plugin = self.0.plugin.name().to_string();
        self.0.call("prepare", |store, bindings, handle| match bindings {
            Bindings::Prepared(b) => b.wasmban_plugin_prepare().call_prepare(store, handle, lines, now, ahead),
            _ => Err(wasmtime::Error::msg(format!("plugin {plugin} does not export wasmban:plugin/prepare"))),
        })
    }

    /// `feed` with what `prepare` of another instance found for `lines`.
    /// Once fed this way, an instance must be fed this way from then on.
    pub fn feed_prepared(&mut self, lines: &str, now: f64, notes: bool, prepared: &[u32]) -> Result<Scan, PluginError> {
        let plugin = self.0.plugin.name().to_string();
        self.0.call("feed-prepared", |store, bindings, handle| match bindings {
            Bindings::Prepared(b) => {
                b.wasmban_plugin_prepare().call_feed_prepared(store, handle, lines, now, notes, prepared)
            }
            _ => Err(wasmtime::Error::msg(format!("plugin {plugin} does not export wasmban:plugin/prepare"))),
        })
    }

    /// What matched since the instance was made, for fail2ban-regex's
    /// summary (made with the option `report = 1`); None when the filter
    /// does not count.
    pub fn report(&mut self) -> Result<Option<ReportHits>, PluginError> {
        let counted = matches!(self.0.live.as_ref().map(|l| &l.bindings), Some(Bindings::Prepared(_)));
        if !counted {
            return Ok(None);
        }
        self.0
            .call("report", |store, bindings, handle| match bindings {
                Bindings::Prepared(b) => b.wasmban_plugin_report().call_report(store, handle),
                _ => Err(wasmtime::Error::msg("the filter does not export wasmban:plugin/report")),
            })
            .map(Some)
    }

    /// Its counters.
    pub fn stats(&self) -> InstanceStats {
        self.0.stats
    }

    /// Count its calls on `meter` from now on.
    pub fn set_meter(&mut self, meter: PluginMeter) {
        self.0.meter = Some(meter);
    }

    /// The plugin it runs.
    pub fn plugin(&self) -> &Plugin {
        &self.0.plugin
    }
}

/// An action instance.
pub struct ActionInstance(Sandboxed);

/// Flatten a call that returns `result<_, string>` into our error type.
fn plugin_result(plugin: &str, call: &'static str, r: Result<(), String>) -> Result<(), PluginError> {
    r.map_err(|message| PluginError::Failed { plugin: plugin.to_string(), call, message })
}

macro_rules! action_call {
    ($self:ident, $name:literal, $method:ident $(, $arg:expr)*) => {{
        let r = $self.0.call($name, |store, bindings, handle| match bindings {
            Bindings::Action(b) => b.wasmban_plugin_action().handler().$method(store, handle $(, $arg)*),
            Bindings::Evented(b) => b.wasmban_plugin_action().handler().$method(store, handle $(, $arg)*),
            Bindings::Filter(_) | Bindings::Prepared(_) | Bindings::Pack(_) | Bindings::Ignore(_) => {
                unreachable!("action instances hold action bindings")
            }
        })?;
        r
    }};
}

impl ActionInstance {
    pub(crate) fn new(plugin: Plugin, options: Vec<(String, String)>) -> Result<Self, PluginError> {
        Sandboxed::new(plugin, None, options).map(ActionInstance)
    }

    /// Set up what bans need.
    pub fn start(&mut self) -> Result<(), PluginError> {
        let r = action_call!(self, "start", call_start);
        plugin_result(self.0.plugin.name(), "start", r)
    }

    /// Tear it down.
    pub fn stop(&mut self) -> Result<(), PluginError> {
        let r = action_call!(self, "stop", call_stop);
        plugin_result(self.0.plugin.name(), "stop", r)
    }

    /// Verify (and repair) it.
    pub fn check(&mut self) -> Result<(), PluginError> {
        let r = action_call!(self, "check", call_check);
        plugin_result(self.0.plugin.name(), "check", r)
    }

    /// Ban every ticket; one result per ticket.
    pub fn ban(&mut self, tickets: &[Ticket]) -> Result<Vec<Result<(), String>>, PluginError> {
        Ok(action_call!(self, "ban", call_ban, tickets))
    }

    /// Lift every ticket's ban; one result per ticket.
    pub fn unban(&mut self, tickets: &[Ticket]) -> Result<Vec<Result<(), String>>, PluginError> {
        Ok(action_call!(self, "unban", call_unban, tickets))
    }

    /// Whether the action exports `action-events` (and so wants each
    /// ban's context, and may flush).
    pub fn is_evented(&self) -> bool {
        matches!(&self.0.plugin.inner.pre, Pre::Action(_, Some(_)))
    }

    /// Apply bans with their context (`action-events`); one result per ban.
    /// An action without the interface gets a plain `ban`, and a `reban`
    /// or `prolong` it cannot tell from a new ban is applied as one.
    pub fn apply(&mut self, bans: &[(Ticket, BanContext)]) -> Result<Vec<Result<(), String>>, PluginError> {
        let plugin = self.0.plugin.name().to_string();
        self.0.call("apply", |store, bindings, handle| match bindings {
            Bindings::Evented(b) => b.wasmban_plugin_action_events().call_apply(store, handle, bans),
            _ => Err(wasmtime::Error::msg(format!("plugin {plugin} does not export wasmban:plugin/action-events"))),
        })
    }

    /// The configuration was read again and the action kept (fail2ban's
    /// `actionreload`); nothing for an action without `action-events`.
    pub fn reload(&mut self) -> Result<(), PluginError> {
        if !self.is_evented() {
            return Ok(());
        }
        let plugin = self.0.plugin.name().to_string();
        let r = self.0.call("reload", |store, bindings, handle| match bindings {
            Bindings::Evented(b) => b.wasmban_plugin_action_events().call_reload(store, handle),
            _ => Err(wasmtime::Error::msg(format!("plugin {plugin} does not export wasmban:plugin/action-events"))),
        })?;
        r.map_err(|message| PluginError::Failed { plugin, call: "reload", message })
    }

    /// Lift every ban at once (fail2ban's `actionflush`): false when the
    /// action has no such way, and its bans must be lifted one by one.
    pub fn flush(&mut self) -> Result<bool, PluginError> {
        if !self.is_evented() {
            return Ok(false);
        }
        let plugin = self.0.plugin.name().to_string();
        let r = self.0.call("flush", |store, bindings, handle| match bindings {
            Bindings::Evented(b) => b.wasmban_plugin_action_events().call_flush(store, handle),
            _ => Err(wasmtime::Error::msg(format!("plugin {plugin} does not export wasmban:plugin/action-events"))),
        })?;
        r.map_err(|message| PluginError::Failed { plugin, call: "flush", message })
    }

    /// Its counters.
    pub fn stats(&self) -> InstanceStats {
        self.0.stats
    }

    /// Count its calls on `meter` from now on.
    pub fn set_meter(&mut self, meter: PluginMeter) {
        self.0.meter = Some(meter);
    }

    /// The plugin it runs.
    pub fn plugin(&self) -> &Plugin {
        &self.0.plugin
    }
}

/// An ignore instance: fail2ban's `ignorecommand`, or a component that
/// decides by itself.
pub struct IgnoreInstance(Sandboxed);

impl IgnoreInstance {
    pub(crate) fn new(plugin: Plugin, options: Vec<(String, String)>) -> Result<Self, PluginError> {
        Sandboxed::new(plugin, None, options).map(IgnoreInstance)
    }

    /// Whether to ignore `ip`, found failing in `failure`.
    pub fn ignore(&mut self, ip: &str, failure: &Failure) -> Result<bool, PluginError> {
        let plugin = self.0.plugin.name().to_string();
        let r = self.0.call("ignore", |store, bindings, handle| match bindings {
            Bindings::Ignore(b) => b.wasmban_plugin_ignore().judge().call_ignore(store, handle, ip, failure),
            _ => Err(wasmtime::Error::msg(format!("plugin {plugin} does not export wasmban:plugin/ignore"))),
        })?;
        r.map_err(|message| PluginError::Failed { plugin, call: "ignore", message })
    }

    /// Its counters.
    pub fn stats(&self) -> InstanceStats {
        self.0.stats
    }

    /// The plugin it runs.
    pub fn plugin(&self) -> &Plugin {
        &self.0.plugin
    }
}
