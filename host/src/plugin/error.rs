//! Errors of loading and running plugins. Each names the plugin and, where a
//! person can act, says what to do.

use std::path::PathBuf;

/// How a call into a plugin ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// It ran past its CPU deadline.
    Timeout,
    /// It asked for more memory than its limit.
    Memory,
    /// It panicked or aborted.
    Panic,
    /// Any other trap.
    Other,
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrapKind::Timeout => "timed out",
            TrapKind::Memory => "ran out of its memory limit",
            TrapKind::Panic => "panicked",
            TrapKind::Other => "trapped",
        })
    }
}

/// What went wrong with a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin of that name.
    #[error("plugin {name:?} not found (looked in: {searched})")]
    NotFound {
        /// What was asked for.
        name: String,
        /// Where it was looked for.
        searched: String,
    },
    /// A manifest is unreadable or invalid.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A component file is unreadable.
    #[error("cannot read plugin component {}: {message}", path.display())]
    Read {
        /// The component file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The component differs from its manifest's pin.
    #[error(
        "plugin {plugin}: component sha256 is {actual} but its manifest pins {expected}; \
         if the new file is trusted, update `sha256` in the manifest"
    )]
    PinMismatch {
        /// The plugin.
        plugin: String,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The bytes are not a valid component for this host.
    #[error("plugin {plugin}: not a loadable WebAssembly component: {message}")]
    Compile {
        /// The plugin.
        plugin: String,
        /// The compiler's words.
        message: String,
    },
    /// The component exports neither plugin interface, or the wrong one.
    #[error("plugin {plugin}: {message}")]
    WrongKind {
        /// The plugin.
        plugin: String,
        /// What it exports and what was expected.
        message: String,
    },
    /// The component imports something its grant does not allow.
    #[error("plugin {plugin} is refused: it imports `{import}`, {reason}")]
    Refused {
        /// The plugin.
        plugin: String,
        /// The import that was not granted.
        import: String,
        /// Why, and what would allow it.
        reason: String,
    },
    /// The component imports a capability its grant file does not give:
    /// the configuration, not the plugin, is what to change.
    #[error(
        "plugin {plugin} is refused: it imports `{import}`, which its grant does not allow; to allow it, add `{line}` \
         under [grants] in {grant_file}"
    )]
    NotGranted {
        /// The plugin.
        plugin: String,
        /// The import that was not granted.
        import: String,
        /// The grant line that would allow it.
        line: String,
        /// Where that line goes.
        grant_file: String,
    },
    /// Instantiation failed.
    #[error("plugin {plugin}: cannot instantiate: {message}")]
    Instantiate {
        /// The plugin.
        plugin: String,
        /// The runtime's words.
        message: String,
    },
    /// The plugin's `create` returned an error value.
    #[error("plugin {plugin} rejected its options: {message}")]
    Create {
        /// The plugin.
        plugin: String,
        /// The plugin's own message.
        message: String,
    },
    /// A call returned an error value (the plugin's own report).
    #[error("plugin {plugin}: `{call}` failed: {message}")]
    Failed {
        /// The plugin.
        plugin: String,
        /// The exported function.
        call: &'static str,
        /// The plugin's own message.
        message: String,
    },
    /// A call trapped; the instance has been discarded and will be rebuilt.
    #[error("plugin {plugin}: `{call}` {kind}: {detail}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The exported function.
        call: &'static str,
        /// Timeout, memory, panic, other.
        kind: TrapKind,
        /// The trap and the plugin's last stderr lines.
        detail: String,
    },
    /// The compiled-component cache could not be used.
    #[error("compiled plugin cache {}: {message}", path.display())]
    Cache {
        /// The cache directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl PluginError {
    /// The trap kind, when this error is a trap.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        match self {
            PluginError::Trap { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}
