//! What a manifest's `[grants]` table says: the capabilities a plugin may
//! import. Each capability's file decides what in here allows it.

use serde::Deserialize;

/// Capabilities granted to a plugin. Deny by default: an empty table grants
/// only `log`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Firewall programs it may run: bare names found in the system's
    /// sbin/bin folders, or absolute paths.
    #[serde(default)]
    pub firewall: Vec<String>,
    /// May send mail through the configured relay.
    #[serde(default)]
    pub mail: bool,
    /// May query whois.
    #[serde(default)]
    pub whois: bool,
    /// May look names up (reverse and forward DNS).
    #[serde(default)]
    pub dns: bool,
    /// May run shell command lines (fail2ban's classic actions).
    #[serde(default)]
    pub shell: bool,
    /// Where shell commands may write (absolute paths; beneath a folder,
    /// or the file itself). Everything else is read-only to them.
    #[serde(default)]
    pub shell_writes: Vec<String>,
    /// Whether shell commands may use the network (and the host's
    /// firewall: without it they run in an empty network namespace).
    #[serde(default)]
    pub shell_network: bool,
    /// Files whose lines it may change, and folders (ending in `/`) whose
    /// files it may: absolute paths.
    #[serde(default)]
    pub files: Vec<String>,
    /// HTTP(S) destinations it may reach: `host` (the scheme's default
    /// port) or `host:port`.
    #[serde(default)]
    pub http: Vec<String>,
}
