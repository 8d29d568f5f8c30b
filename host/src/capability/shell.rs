//! The `shell` capability: run a command line with `/bin/sh -c`. Only
//! fail2ban's classic command actions need it, and only an admin's explicit
//! grant (`shell = true`) links it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::capability::firewall::{DEFAULT_TIMEOUT, MAX_TIMEOUT, to_wit};
use crate::capability::process::ProgramRunner;
use crate::capability::{Grants, HostServices};
use crate::wit::firewall::Output;
use crate::wit::shell as wit;

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

/// The state behind one plugin instance's `shell` import.
pub struct ShellCtx {
    plugin: Arc<str>,
    runner: Arc<dyn ProgramRunner>,
}

impl ShellCtx {
    /// Shell access for `plugin`, through `runner`.
    pub fn new(plugin: Arc<str>, runner: Arc<dyn ProgramRunner>) -> Self {
        ShellCtx { plugin, runner }
    }

    /// The state for `plugin`.
    pub fn for_plugin(plugin: &Arc<str>, _grants: &Grants, services: &HostServices) -> Self {
        ShellCtx::new(plugin.clone(), services.runner.clone())
    }
}

impl wit::Host for ShellCtx {
    fn run(&mut self, command: String, timeout_ms: u32) -> Result<Output, String> {
        let timeout = match timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_TIMEOUT),
        };
        tracing::debug!(plugin = &*self.plugin, command, "shell");
        self.runner
            .run(Path::new("/bin/sh"), &["-c".to_string(), command], None, timeout)
            .map(to_wit)
            .map_err(|e| e.to_string())
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
