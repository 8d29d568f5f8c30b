//! The `log` capability: a plugin's messages go to the daemon log, tagged
//! with the plugin's name. Every plugin has it.

use std::sync::Arc;

use crate::capability::{Grants, HostServices};
use crate::wit::log::{self as wit, Level};

/// A message longer than this is cut: a plugin must not be able to flood the
/// daemon log with one call.
const MESSAGE_LIMIT: usize = 4096;

/// The interface name (`wasmban:plugin/log`).
pub const NAME: &str = "log";

/// Every plugin may log.
pub fn granted(_grants: &Grants, _imports: &[String]) -> bool {
    true
}

/// Never needed: `log` is always granted.
pub fn grant_line(_imports: &[String]) -> String {
    String::new()
}

/// The state behind one plugin instance's `log` import.
pub struct LogCtx {
    plugin: Arc<str>,
}

impl LogCtx {
    /// Log on behalf of `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        LogCtx { plugin }
    }

    /// The state for `plugin`.
    pub fn for_plugin(plugin: &Arc<str>, _grants: &Grants, _services: &HostServices) -> Self {
        LogCtx::new(plugin.clone())
    }
}

/// Cut `text` to at most `limit` bytes on a character boundary.
pub(crate) fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl wit::Host for LogCtx {
    fn log(&mut self, level: Level, message: String) {
        let message = truncate(&message, MESSAGE_LIMIT);
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(target: "wasmban::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "wasmban::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "wasmban::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "wasmban::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "wasmban::plugin", plugin, "{message}"),
        }
    }
}

struct HasLog;
impl wasmtime::component::HasData for HasLog {
    type Data<'a> = &'a mut LogCtx;
}

/// Link `log` into `linker`, reaching each store's [`LogCtx`] through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLog>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
