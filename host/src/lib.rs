//! wasmban: intrusion prevention with sandboxed WebAssembly filters and actions.
pub mod capability;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod jail;
pub mod plugin;
pub mod store;
pub mod tail;
pub mod timezone;
