//! What plugins may do beyond computing: one WIT interface, one module,
//! each with its state, its `Host` implementation and its `add_to_linker`.
//!
//! Deny by default: a capability is linked into a plugin's sandbox only when
//! the plugin's grant names it, and the implementation checks the grant
//! again on every call (for `firewall`, the program).
#![deny(missing_docs)]

use std::sync::Arc;

use wasmtime::component::Linker;

pub use grants::Grants;

pub mod dns;
pub mod file;
pub mod firewall;
pub mod grants;
pub mod http;
pub mod log;
pub mod mail;
pub mod nft_library;
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
    /// Answers of the `dns` capability, shared by every instance.
    pub dns: std::sync::Arc<dns::DnsCache>,
}

/// Whether `imports` name our interface `name` (`wasmban:plugin/NAME@...`).
pub fn imports(imports: &[String], name: &str) -> bool {
    imports.iter().any(|i| Capability::from_import(i).is_some_and(|c| c.name() == name))
}

/// Gives the linker each instance's capability states.
pub trait HasContexts: Send + 'static {
    /// The states of this instance's capabilities.
    fn contexts(&mut self) -> &mut Contexts;
}

/// The registration of every capability: its variant, its module (which
/// holds `NAME`, `granted`, `grant_line`, `add_to_linker`) and its state.
/// Adding a capability is its WIT interface, its file, and one line here.
macro_rules! capabilities {
    ($($variant:ident => $module:ident :: $state:ident),* $(,)?) => {
        /// The capabilities a grant can name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Capability {
            $(
                #[doc = concat!("`wasmban:plugin/", stringify!($module), "`.")]
                $variant,
            )*
        }

        impl Capability {
            /// Every capability, in a stable order.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant),*];

            /// The name used in grants and in WIT (`wasmban:plugin/<name>`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Capability::$variant => $module::NAME,)*
                }
            }

            /// Whether `grants` allow it to a plugin that imports `imports`.
            pub fn granted(self, grants: &Grants, imports: &[String]) -> bool {
                match self {
                    $(Capability::$variant => $module::granted(grants, imports),)*
                }
            }

            /// The line under `[grants]` that allows it.
            pub fn grant_line(self, imports: &[String]) -> String {
                match self {
                    $(Capability::$variant => $module::grant_line(imports),)*
                }
            }
        }

        /// The host-side state of every capability, for one plugin instance.
        pub struct Contexts {
            $(
                #[doc = concat!("State of `", stringify!($module), "`.")]
                pub $module: $module::$state,
            )*
        }

        impl Contexts {
            /// The states for `plugin` under `grants`.
            pub fn new(plugin: &Arc<str>, grants: &Grants, services: &HostServices) -> Contexts {
                Contexts { $($module: $module::$state::for_plugin(plugin, grants, services),)* }
            }
        }

        /// Link `log`, and every other capability `grants` allow when
        /// `log_only` is false (filters get `log` only).
        pub fn link_granted<T: HasContexts>(
            linker: &mut Linker<T>,
            grants: &Grants,
            imports: &[String],
            log_only: bool,
        ) -> wasmtime::Result<()> {
            $(
                let capability = Capability::$variant;
                if capability == Capability::Log || (!log_only && capability.granted(grants, imports)) {
                    $module::add_to_linker(linker, |s: &mut T| &mut s.contexts().$module)?;
                }
            )*
            Ok(())
        }
    };
}

capabilities! {
    Log => log::LogCtx,
    Firewall => firewall::FirewallCtx,
    Mail => mail::MailCtx,
    Whois => whois::WhoisCtx,
    Shell => shell::ShellCtx,
    Http => http::HttpCtx,
    Dns => dns::DnsCtx,
    File => file::FileCtx,
}

impl Capability {
    /// The capability a component import names, if it is one of ours:
    /// `wasmban:plugin/firewall@0.1.0` gives `Firewall`.
    pub fn from_import(import: &str) -> Option<Capability> {
        let rest = import.strip_prefix("wasmban:plugin/")?;
        let name = rest.split('@').next()?;
        Capability::ALL.iter().copied().find(|c| c.name() == name)
    }
}
