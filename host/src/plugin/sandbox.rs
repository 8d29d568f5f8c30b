//! One plugin instance's sandbox: its Store data, its memory cap, and the
//! linker that holds exactly the capabilities its grant names.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::capability::{Capability, Contexts, HasContexts, HostServices};
use crate::plugin::PluginError;
use crate::plugin::manifest::{Grants, Limits};
use crate::plugin::output::GuestOutput;

/// What a component is, judged by its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `wasmban:plugin/filter`.
    Filter,
    /// Exports `wasmban:plugin/action`.
    Action,
    /// Exports `wasmban:plugin/pack`: several named filters.
    Pack,
    /// Exports `wasmban:plugin/ignore`: decides whether a failing address
    /// is never counted.
    Ignore,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Filter => "filter",
            PluginKind::Action => "action",
            PluginKind::Pack => "filter pack",
            PluginKind::Ignore => "ignore",
        })
    }
}

/// The WIT versions this host serves.
const WIT_VERSION_PREFIX: &str = "0.1.";

fn our_interface<'a>(name: &'a str, interface: &str) -> Option<&'a str> {
    let rest = name.strip_prefix("wasmban:plugin/")?;
    let (iface, version) = rest.split_once('@')?;
    (iface == interface).then_some(version)
}

/// Decide the plugin kind from the component's export names.
pub fn kind_of(plugin: &str, exports: &[String]) -> Result<PluginKind, PluginError> {
    let mut found = Vec::new();
    for name in exports {
        for (iface, kind) in [
            ("filter", PluginKind::Filter),
            ("action", PluginKind::Action),
            ("pack", PluginKind::Pack),
            ("ignore", PluginKind::Ignore),
        ] {
            if let Some(version) = our_interface(name, iface) {
                if !version.starts_with(WIT_VERSION_PREFIX) {
                    return Err(PluginError::WrongKind {
                        plugin: plugin.to_string(),
                        message: format!(
                            "it exports {name}, but this wasmban serves wasmban:plugin@{WIT_VERSION_PREFIX}x; rebuild it against this version's wit/"
                        ),
                    });
                }
                found.push(kind);
            }
        }
    }
    match found.as_slice() {
        [kind] => Ok(*kind),
        [] => Err(PluginError::WrongKind {
            plugin: plugin.to_string(),
            message: format!(
                "it exports none of wasmban:plugin/filter, action, pack or ignore (it exports: {}); is it a wasmban plugin?",
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            ),
        }),
        _ => Err(PluginError::WrongKind {
            plugin: plugin.to_string(),
            message: "it exports more than one of filter, action, pack and ignore; a plugin is one of them".into(),
        }),
    }
}

/// `wasmban:plugin/types` declares records only: importing it reaches nothing.
pub fn is_types_only(import: &str) -> bool {
    our_interface(import, "types").is_some()
}

/// Check every import against the grant, before anything is instantiated.
pub fn check_imports(
    plugin: &str,
    kind: PluginKind,
    imports: &[String],
    grants: &Grants,
    grant_file: &str,
) -> Result<(), PluginError> {
    let refuse = |import: &str, reason: String| {
        Err(PluginError::Refused { plugin: plugin.to_string(), import: import.to_string(), reason })
    };
    for import in imports {
        if import.starts_with("wasi:http/") {
            return refuse(
                import,
                "and plugins are never given wasi:http; an action may be granted wasmban's `http` instead".into(),
            );
        }
        if import.starts_with("wasi:") {
            // Linked against an empty context: no files, environment,
            // network or clock to reach. wasi:sockets is linked too
            // (CPython's runtime imports it whether or not the code uses
            // it), with every address, lookup and protocol refused.
            continue;
        }
        if is_types_only(import) {
            continue;
        }
        let Some(capability) = Capability::from_import(import) else {
            return refuse(
                import,
                "which wasmban does not provide: plugins may import wasi:* (sandboxed) and wasmban:plugin/{log,firewall,mail,whois,shell,http,dns,file}".into(),
            );
        };
        let version = import.split('@').nth(1).unwrap_or("");
        if !version.starts_with(WIT_VERSION_PREFIX) {
            return refuse(import, format!("but this wasmban serves wasmban:plugin@{WIT_VERSION_PREFIX}x"));
        }
        if capability == Capability::Log {
            continue;
        }
        if matches!(kind, PluginKind::Filter | PluginKind::Pack) {
            return refuse(import, format!("but filters are granted only `log`, never `{}`", capability.name()));
        }
        if !capability.granted(grants, imports) {
            let line = capability.grant_line(imports);
            // `firewall` is imported for the shell's types: name the shell.
            let shell = imports.iter().find(|i| Capability::from_import(i) == Some(Capability::Shell));
            let import = match (capability, shell) {
                (Capability::Firewall, Some(shell)) if grants.firewall.is_empty() => shell,
                _ => import,
            };
            return Err(PluginError::NotGranted {
                plugin: plugin.to_string(),
                import: import.to_string(),
                line,
                grant_file: grant_file.to_string(),
            });
        }
    }
    Ok(())
}

/// Counts linear memory across all of an instance's memories and refuses
/// growth past the cap (the per-memory limit alone would let a component
/// with several memories exceed it).
pub struct MemoryCap {
    limit: usize,
    used: usize,
    /// Set when a growth was refused, so a trap can be reported as such.
    pub exceeded: bool,
}

impl MemoryCap {
    fn new(limit: usize) -> Self {
        MemoryCap { limit, used: 0, exceeded: false }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        if self.used.saturating_add(grow) > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit reached: {} MiB in use, {} MiB more asked, limit {} MiB",
                self.used >> 20,
                grow >> 20,
                self.limit >> 20
            );
        }
        self.used += grow;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn memories(&self) -> usize {
        8
    }
}

/// Plugins learn the time only through the WIT (`now`, ticket times):
/// their WASI wall clock is stuck at the epoch.
struct EpochClock;

impl HostWallClock for EpochClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The data of one plugin instance's Store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The memory cap.
    pub memory: MemoryCap,
    capabilities: Contexts,
    /// The guest's stderr, for trap reports.
    pub stderr: GuestOutput,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl HasContexts for PluginState {
    fn contexts(&mut self) -> &mut Contexts {
        &mut self.capabilities
    }
}

impl PluginState {
    /// A fresh sandbox for `plugin`: no preopened files, no environment, no
    /// arguments, no network, a frozen wall clock; stdout and stderr to the
    /// daemon log.
    pub fn new(plugin: &Arc<str>, grants: &Grants, limits: &Limits, services: &HostServices) -> Self {
        let stderr = GuestOutput::new(plugin.clone(), "stderr");
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new(plugin.clone(), "stdout"))
            .stderr(stderr.clone())
            .wall_clock(EpochClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        PluginState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(limits.memory_bytes()),
            capabilities: Contexts::new(plugin, grants, services),
            stderr,
        }
    }
}

/// A linker with WASI (sandboxed), `log`, and the granted capabilities only
/// (none but `log` for filters and packs).
pub fn linker_for(
    engine: &Engine,
    kind: PluginKind,
    grants: &Grants,
    imports: &[String],
) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let log_only = matches!(kind, PluginKind::Filter | PluginKind::Pack);
    crate::capability::link_granted(&mut linker, grants, imports, log_only)?;
    Ok(linker)
}

/// The names of a component's imports and exports.
pub fn interface_names(engine: &Engine, component: &Component) -> (Vec<String>, Vec<String>) {
    let ty = component.component_type();
    let imports = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
    let exports = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    (imports, exports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kind_comes_from_exports() {
        assert_eq!(kind_of("p", &names(&["wasmban:plugin/filter@0.1.0"])).unwrap(), PluginKind::Filter);
        assert_eq!(kind_of("p", &names(&["wasmban:plugin/action@0.1.3"])).unwrap(), PluginKind::Action);
        let err = kind_of("p", &names(&["wasi:cli/run@0.2.0"])).unwrap_err().to_string();
        assert!(err.contains("none of") && err.contains("wasi:cli/run"), "{err}");
        let err = kind_of("p", &names(&["wasmban:plugin/filter@0.2.0"])).unwrap_err().to_string();
        assert!(err.contains("rebuild"), "{err}");
    }

    #[test]
    fn ungranted_capability_is_refused_with_the_fix() {
        let err = check_imports(
            "pack",
            PluginKind::Action,
            &names(&["wasmban:plugin/shell@0.1.0"]),
            &Grants::default(),
            "/etc/wasmban/plugin.d/pack.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pack") && err.contains("wasmban:plugin/shell@0.1.0"), "{err}");
        assert!(err.contains("shell = true") && err.contains("/etc/wasmban/plugin.d/pack.toml"), "{err}");
    }

    #[test]
    fn packs_are_filters_and_get_log_only() {
        assert_eq!(kind_of("p", &names(&["wasmban:plugin/pack@0.1.0"])).unwrap(), PluginKind::Pack);
        let grants = Grants { firewall: vec!["iptables".into()], shell: true, ..Grants::default() };
        let err = check_imports("p", PluginKind::Pack, &names(&["wasmban:plugin/shell@0.1.0"]), &grants, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only `log`"), "{err}");
    }

    #[test]
    fn filters_never_get_capabilities() {
        let grants = Grants { firewall: vec!["iptables".into()], ..Grants::default() };
        let err = check_imports("f", PluginKind::Filter, &names(&["wasmban:plugin/firewall@0.1.0"]), &grants, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only `log`"), "{err}");
    }

    #[test]
    fn network_and_unknown_imports_are_refused() {
        let g = Grants::default();
        let err =
            check_imports("f", PluginKind::Action, &names(&["wasi:http/outgoing-handler@0.2.0"]), &g, "x").unwrap_err();
        assert!(err.to_string().contains("`http`"), "{err}");
        let err = check_imports("f", PluginKind::Action, &names(&["acme:evil/api"]), &g, "x").unwrap_err();
        assert!(err.to_string().contains("does not provide"));
        check_imports("f", PluginKind::Filter, &names(&["wasi:io/streams@0.2.6", "wasmban:plugin/log@0.1.0"]), &g, "x")
            .unwrap();
    }

    #[test]
    fn memory_cap_counts_every_memory() {
        let mut cap = MemoryCap::new(10 << 20);
        assert!(cap.memory_growing(0, 6 << 20, None).unwrap());
        assert!(cap.memory_growing(0, 4 << 20, None).unwrap());
        assert!(cap.memory_growing(0, 1 << 20, None).is_err());
        assert!(cap.exceeded);
    }
}
