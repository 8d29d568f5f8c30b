//! The `shell` capability: run a command line with `/bin/sh -c`. Only
//! fail2ban's classic command actions and `ignorecommand` need it, and only
//! an admin's explicit grant (`shell = true`) links it. Even then the
//! commands run confined (see [`confine`]): read-only but for
//! `shell-writes`, no network unless `shell-network = true`, and no new
//! privileges.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::capability::firewall::{DEFAULT_TIMEOUT, MAX_TIMEOUT, to_wit};
use crate::capability::process::ProgramRunner;
use crate::capability::{Grants, HostServices};
use crate::wit::firewall::Output;
use crate::wit::shell as wit;

pub mod confine;
mod landlock;

pub use confine::{Confinement, WriteGuard};

/// The interface name (`wasmban:plugin/shell`).
pub const NAME: &str = "shell";

/// Granted by `shell = true` only.
pub fn granted(grants: &Grants, _imports: &[String]) -> bool {
    grants.shell
}

/// The line that grants it.
pub fn grant_line(_imports: &[String]) -> String {
    "shell = true".to_string()
}

/// Refuse `shell-writes` and `shell-network` without `shell`, and
/// `shell-writes` entries that are not plain absolute paths.
pub fn check_grant(grants: &Grants) -> Result<(), String> {
    if !grants.shell && (!grants.shell_writes.is_empty() || grants.shell_network) {
        return Err("grants.shell-writes and grants.shell-network widen the shell grant: add `shell = true`, \
                    or remove them"
            .to_string());
    }
    for entry in &grants.shell_writes {
        let inner = entry.trim_end_matches('/');
        if !entry.starts_with('/') {
            return Err(format!("grants.shell-writes: {entry:?} must be an absolute path"));
        }
        if !inner.is_empty() && inner[1..].split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(format!(
                "grants.shell-writes: {entry:?} has an empty, `.` or `..` part; give the plain absolute path"
            ));
        }
    }
    Ok(())
}

/// Programs whose work a private network namespace would swallow: run
/// through the shell without `shell-network`, they change the firewall of
/// an empty namespace, not the host's.
const NETWORK_PROGRAMS: &[&str] =
    &["iptables", "ip6tables", "nft", "ipset", "firewall-cmd", "ufw", "ip", "route", "shorewall", "pfctl", "conntrack"];

/// What stderr says when the confinement refused something.
const REFUSALS: &[&str] = &[
    "Read-only file system",
    "Permission denied",
    "Operation not permitted",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Could not resolve host",
];

/// The state behind one plugin instance's `shell` import.
pub struct ShellCtx {
    plugin: Arc<str>,
    runner: Arc<dyn ProgramRunner>,
    writes: Vec<String>,
    network: bool,
    /// Built on the first command, so that a plugin never run costs
    /// nothing; an error is kept and reported on every command.
    confinement: Option<Result<Confinement, String>>,
    warned_network_program: bool,
    warned_refusal: bool,
}

impl ShellCtx {
    /// Shell access for `plugin`, through `runner`, confined to writing
    /// beneath `writes` and to the network only when `network`.
    pub fn new(plugin: Arc<str>, runner: Arc<dyn ProgramRunner>, writes: Vec<String>, network: bool) -> Self {
        ShellCtx {
            plugin,
            runner,
            writes,
            network,
            confinement: None,
            warned_network_program: false,
            warned_refusal: false,
        }
    }

    /// The state for `plugin`.
    pub fn for_plugin(plugin: &Arc<str>, grants: &Grants, services: &HostServices) -> Self {
        ShellCtx::new(plugin.clone(), services.runner.clone(), grants.shell_writes.clone(), grants.shell_network)
    }

    fn confinement(&mut self) -> Result<&Confinement, String> {
        if self.confinement.is_none() {
            let built = match Confinement::build(&self.writes, self.network) {
                Ok((confinement, missing)) => {
                    for path in missing {
                        tracing::warn!(
                            plugin = &*self.plugin,
                            "grants.shell-writes names {path}, which does not exist: commands cannot write there"
                        );
                    }
                    tracing::info!(
                        plugin = &*self.plugin,
                        guard = ?confinement.guard(),
                        writes = ?confinement.writable(),
                        network = confinement.network(),
                        "shell commands run confined"
                    );
                    Ok(confinement)
                }
                Err(e) => {
                    Err(format!("plugin {}: could not confine its shell commands: {e}; they are not run", self.plugin))
                }
            };
            self.confinement = Some(built);
        }
        match &self.confinement {
            Some(Ok(confinement)) => Ok(confinement),
            Some(Err(e)) => Err(e.clone()),
            None => Err("unreachable: the confinement was just built".to_string()),
        }
    }

    fn warn_about(&mut self, command: &str, output: &Output) {
        if !self.network && !self.warned_network_program {
            let words = command.split(|c: char| c.is_whitespace() || ";|&()`$".contains(c));
            if let Some(program) =
                words.map(|w| w.rsplit('/').next().unwrap_or(w)).find(|w| NETWORK_PROGRAMS.contains(w))
            {
                self.warned_network_program = true;
                tracing::warn!(
                    plugin = &*self.plugin,
                    "a shell command runs `{program}` without grants.shell-network: it runs in an empty \
                     network namespace, so it cannot change this host's firewall or routes; add \
                     `shell-network = true` under [grants] of plugin.d/{}.toml",
                    self.plugin
                );
            }
        }
        // Also when the command went on and succeeded: a refused step may
        // be hidden behind `|| true`.
        if !self.warned_refusal && REFUSALS.iter().any(|r| output.stderr.contains(r)) {
            self.warned_refusal = true;
            tracing::warn!(
                plugin = &*self.plugin,
                stderr = output.stderr.trim_end(),
                "a shell command was refused something: commands under the shell grant may write only beneath \
                 grants.shell-writes = {:?} and reach the network only with grants.shell-network = true; \
                 widen them in plugin.d/{}.toml if the command needs it",
                self.writes,
                self.plugin
            );
        }
    }
}

impl wit::Host for ShellCtx {
    fn run(&mut self, command: String, timeout_ms: u32) -> Result<Output, String> {
        let timeout = match timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_TIMEOUT),
        };
        tracing::debug!(plugin = &*self.plugin, command, "shell");
        let runner = self.runner.clone();
        let confinement = self.confinement()?;
        let output = runner
            .run_confined(Path::new("/bin/sh"), &["-c".to_string(), command.clone()], None, timeout, confinement)
            .map(to_wit)
            .map_err(|e| e.to_string())?;
        self.warn_about(&command, &output);
        Ok(output)
    }
}

struct HasShell;
impl wasmtime::component::HasData for HasShell {
    type Data<'a> = &'a mut ShellCtx;
}

/// Link `shell` into `linker`. Call it only for plugins granted `shell`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut ShellCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasShell>(linker, get)
}
