//! wasmban: intrusion prevention with sandboxed WebAssembly filters and actions.
pub mod bans;
pub mod capability;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod fleet;
pub mod jail;
pub mod lapi;
pub mod listen;
pub mod metrics;
pub mod plugin;
pub mod store;
pub mod tail;
pub mod timezone;
pub mod wit;

/// The log target of ban and unban lines: fail2ban's logger name, so that
/// the stock recidive filter reads wasmban's log as it reads fail2ban's.
pub const BAN_TARGET: &str = "fail2ban.actions";
