//! What plugins may do beyond computing: one WIT interface, one module,
//! each with its state, its `Host` implementation and its `add_to_linker`.
//!
//! Deny by default: a capability is linked into a plugin's sandbox only when
//! the plugin's grant names it, and the implementation checks the grant
//! again on every call (for `firewall`, the program).
#![deny(missing_docs)]

pub mod firewall;
pub mod http;
pub mod log;
pub mod mail;
pub mod process;
pub mod shell;
pub mod whois;

/// What the host side of the capabilities reaches: the program runner
/// (firewall, shell, sendmail) and the admin's mail and whois settings.
#[derive(Clone)]
pub struct HostServices {
    /// Runs programs.
    pub runner: std::sync::Arc<dyn process::ProgramRunner>,
    /// `[mail]` of wasmban.conf.
    pub mail: std::sync::Arc<mail::MailSettings>,
    /// `[whois]` of wasmban.conf.
    pub whois: std::sync::Arc<whois::WhoisSettings>,
}

/// The capabilities a grant can name, with their WIT interface names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Write to the daemon log (always granted).
    Log,
    /// Run allow-listed firewall programs.
    Firewall,
    /// Send mail.
    Mail,
    /// Query whois.
    Whois,
    /// Run shell command lines.
    Shell,
    /// Send HTTP requests to allow-listed destinations.
    Http,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 6] = [
        Capability::Log,
        Capability::Firewall,
        Capability::Mail,
        Capability::Whois,
        Capability::Shell,
        Capability::Http,
    ];

    /// The name used in grants and in WIT (`wasmban:plugin/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Firewall => "firewall",
            Capability::Mail => "mail",
            Capability::Whois => "whois",
            Capability::Shell => "shell",
            Capability::Http => "http",
        }
    }

    /// The capability a component import names, if it is one of ours:
    /// `wasmban:plugin/firewall@0.1.0` gives `Firewall`.
    pub fn from_import(import: &str) -> Option<Capability> {
        let rest = import.strip_prefix("wasmban:plugin/")?;
        let name = rest.split('@').next()?;
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }
}
