//! The plugin runtime: one wasmtime engine, an epoch ticker bounding CPU per
//! call, compiled components cached in memory and on disk, and loading that
//! checks a component's imports against its grant before anything runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::capability::HostServices;
use crate::capability::mail::MailSettings;
use crate::capability::process::{ProgramRunner, SystemRunner};
use crate::capability::whois::WhoisSettings;
use crate::plugin::cache::{CacheOutcome, CompiledCache, compile};
use crate::plugin::instance::{ActionInstance, FilterInstance, IgnoreInstance};
use crate::plugin::manifest::{Grants, Limits};
use crate::plugin::registry::PluginSource;
use crate::plugin::sandbox::{PluginKind, PluginState, check_imports, interface_names, kind_of, linker_for};
use crate::plugin::{PluginError, registry::Origin};
use crate::wit::{
    ActionPluginPre, EventedActionPre, FilterPackPre, FilterPluginPre, IgnorePluginPre, PackInfo, PreparedFilterPre,
};

/// How often the engine's epoch advances; a call's deadline is counted in
/// these ticks, so this is the precision of plugin timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the runtime is set up.
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// What runs programs for the firewall and shell capabilities.
    pub runner: Arc<dyn ProgramRunner>,
    /// How the `mail` capability sends (wasmban.conf `[mail]`).
    pub mail: MailSettings,
    /// Where the `whois` capability asks (wasmban.conf `[whois]`).
    pub whois: WhoisSettings,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            runner: Arc::new(SystemRunner),
            mail: MailSettings::default(),
            whois: WhoisSettings::default(),
        }
    }
}

/// Advances the engine's epoch until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasmban-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One component's compile, shared by every caller: its outcome, or the
/// compiler's words.
type CompileSlot = Arc<OnceLock<Result<Component, String>>>;

/// Loads and instantiates plugins. One per daemon; cheap to share by `Arc`.
pub struct Runtime {
    engine: Engine,
    cache: Option<CompiledCache>,
    services: HostServices,
    /// One slot per component digest: the first jail to ask compiles it,
    /// every other jail asking meanwhile waits for that one compile
    /// instead of compiling its own copy (500 jails on a cold cache would
    /// otherwise compile the same component 500 times at once).
    compiled: Mutex<HashMap<String, CompileSlot>>,
    _ticker: EpochTicker,
}

/// How a component was obtained, for measurements.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    /// From the disk cache, or compiled.
    pub outcome: CacheOutcome,
    /// Wall time of compiling or deserialising.
    pub elapsed: Duration,
}

impl Runtime {
    /// A runtime with the lean engine configuration: component model,
    /// Cranelift, epoch interruption; no async, no component-model-async.
    pub fn new(options: RuntimeOptions) -> Result<Runtime, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        if std::env::var_os("WASMBAN_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(|e| PluginError::Compile { plugin: "(engine)".into(), message: format!("{e:#}") })?;
        let cache = match &options.cache_dir {
            Some(dir) => match CompiledCache::open(dir) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!("{e}; plugins will be compiled at every start");
                    None
                }
            },
            None => None,
        };
        Ok(Runtime {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            cache,
            services: HostServices {
                runner: options.runner,
                mail: Arc::new(options.mail),
                whois: Arc::new(options.whois),
                dns: Arc::default(),
            },
            compiled: Mutex::default(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile `source` (or take it from the caches). Concurrent calls for
    /// the same component share one compile.
    pub fn compile(&self, source: &PluginSource) -> Result<(Component, LoadReport), PluginError> {
        let sha = source.sha256();
        let started = Instant::now();
        let slot = self.compiled.lock().unwrap_or_else(PoisonError::into_inner).entry(sha.clone()).or_default().clone();
        let mut outcome = CacheOutcome::Hit;
        let result = slot.get_or_init(|| {
            let loaded = match &self.cache {
                Some(cache) => cache.load(&self.engine, &source.name, &sha, &source.bytes),
                None => source
                    .bytes
                    .wasm(&source.name)
                    .and_then(|wasm| compile(&self.engine, &source.name, &wasm))
                    .map(|c| (c, CacheOutcome::Compiled)),
            };
            match loaded {
                Ok((component, how)) => {
                    outcome = how;
                    Ok(component)
                }
                Err(PluginError::Compile { message, .. }) => Err(message),
                Err(other) => Err(other.to_string()),
            }
        });
        match result {
            Ok(component) => {
                let elapsed = started.elapsed();
                tracing::debug!(plugin = source.name, ?outcome, ?elapsed, "component ready");
                Ok((component.clone(), LoadReport { outcome, elapsed }))
            }
            Err(message) => {
                // Forget the failure so that a reload with a mended file
                // tries again.
                self.compiled.lock().unwrap_or_else(PoisonError::into_inner).remove(&sha);
                Err(PluginError::Compile { plugin: source.name.clone(), message: message.clone() })
            }
        }
    }

    /// Load a plugin: compile, decide its kind, check its imports against
    /// its grant, and link exactly what it was granted. Nothing of the
    /// plugin runs here.
    pub fn load(&self, source: &PluginSource, grant_file: &str) -> Result<Plugin, PluginError> {
        let (component, _) = self.compile(source)?;
        let (imports, exports) = interface_names(&self.engine, &component);
        let kind = kind_of(&source.name, &exports)?;
        let grants = source.manifest.grants.clone();
        check_imports(&source.name, kind, &imports, &grants, grant_file)?;
        let fail =
            |e: wasmtime::Error| PluginError::Instantiate { plugin: source.name.clone(), message: format!("{e:#}") };
        let linker = linker_for(&self.engine, kind, &grants, &imports).map_err(fail)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(fail)?;
        let pre = match kind {
            PluginKind::Filter => {
                // A filter that also exports `prepare` is instantiated
                // through the world that has it.
                let prepared = PreparedFilterPre::new(instance_pre.clone()).ok();
                Pre::Filter(FilterPluginPre::new(instance_pre).map_err(fail)?, prepared)
            }
            PluginKind::Action => {
                // An action that also exports `action-events` is
                // instantiated through the world that has it.
                let evented = EventedActionPre::new(instance_pre.clone()).ok();
                Pre::Action(ActionPluginPre::new(instance_pre).map_err(fail)?, evented)
            }
            PluginKind::Pack => Pre::Pack(FilterPackPre::new(instance_pre).map_err(fail)?),
            PluginKind::Ignore => Pre::Ignore(IgnorePluginPre::new(instance_pre).map_err(fail)?),
        };
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                name: Arc::from(source.name.as_str()),
                kind,
                origin: source.origin.clone(),
                grants,
                limits: source.manifest.limits.clone(),
                services: self.services.clone(),
                engine: self.engine.clone(),
                pre,
            }),
        })
    }
}

impl Runtime {
    /// Resolve what a configuration names (`iptables`, `pack.wasm`) in
    /// `registry` and load it; a refusal points at the grant file to edit.
    pub fn load_named(&self, registry: &crate::plugin::Registry, reference: &str) -> Result<Plugin, PluginError> {
        let source = registry.resolve(reference)?;
        let grant_file = source.grant_file_hint(registry.plugin_dir());
        self.load(&source, &grant_file)
    }
}

pub(crate) enum Pre {
    Filter(FilterPluginPre<PluginState>, Option<PreparedFilterPre<PluginState>>),
    Action(ActionPluginPre<PluginState>, Option<EventedActionPre<PluginState>>),
    Pack(FilterPackPre<PluginState>),
    Ignore(IgnorePluginPre<PluginState>),
}

pub(crate) struct PluginInner {
    pub(crate) name: Arc<str>,
    pub(crate) kind: PluginKind,
    pub(crate) origin: Origin,
    pub(crate) grants: Grants,
    pub(crate) limits: Limits,
    pub(crate) services: HostServices,
    pub(crate) engine: Engine,
    pub(crate) pre: Pre,
}

/// A loaded plugin, ready to make instances. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

impl Plugin {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// Filter or action.
    pub fn kind(&self) -> PluginKind {
        self.inner.kind
    }
    /// Where it came from.
    pub fn origin(&self) -> &Origin {
        &self.inner.origin
    }
    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// A filter that exports `prepare`: its work on a batch can be split
    /// between two instances (see `plugin::split`).
    pub fn can_prepare(&self) -> bool {
        matches!(self.inner.pre, Pre::Filter(_, Some(_)))
    }

    fn expect(&self, kind: PluginKind) -> Result<(), PluginError> {
        if self.inner.kind == kind {
            Ok(())
        } else {
            Err(PluginError::WrongKind {
                plugin: self.name().to_string(),
                message: format!(
                    "it is {} {}, but it is used as {} {kind}",
                    article(self.inner.kind),
                    self.inner.kind,
                    article(kind)
                ),
            })
        }
    }

    /// A new filter instance built from `options`.
    pub fn filter(&self, options: Vec<(String, String)>) -> Result<FilterInstance, PluginError> {
        if self.inner.kind == PluginKind::Pack {
            return Err(PluginError::WrongKind {
                plugin: self.name().to_string(),
                message: format!("it is a filter pack: name one of its filters, as {}:FILTER", self.name()),
            });
        }
        self.expect(PluginKind::Filter)?;
        FilterInstance::new(self.clone(), options)
    }

    /// A new instance of the filter `filter` of this pack.
    pub fn pack_filter(&self, filter: &str, options: Vec<(String, String)>) -> Result<FilterInstance, PluginError> {
        self.expect(PluginKind::Pack)?;
        FilterInstance::new_in_pack(self.clone(), filter, options)
    }

    /// The filter a definition names: `pack_filter` of this pack when
    /// given, else this plugin as a filter.
    pub fn filter_for(
        &self,
        pack_filter: Option<&str>,
        options: Vec<(String, String)>,
    ) -> Result<FilterInstance, PluginError> {
        match pack_filter {
            Some(name) => self.pack_filter(name, options),
            None => self.filter(options),
        }
    }

    /// What this pack provides (its `describe`), run in a fresh sandbox.
    pub fn describe(&self) -> Result<PackInfo, PluginError> {
        self.expect(PluginKind::Pack)?;
        crate::plugin::instance::describe_pack(self)
    }

    /// A new action instance built from `options`.
    pub fn action(&self, options: Vec<(String, String)>) -> Result<ActionInstance, PluginError> {
        self.expect(PluginKind::Action)?;
        ActionInstance::new(self.clone(), options)
    }

    /// A new ignore instance built from `options`.
    pub fn ignore(&self, options: Vec<(String, String)>) -> Result<IgnoreInstance, PluginError> {
        self.expect(PluginKind::Ignore)?;
        IgnoreInstance::new(self.clone(), options)
    }
}

fn article(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Action | PluginKind::Ignore => "an",
        PluginKind::Filter => "a",
        PluginKind::Pack => "a",
    }
}
