//! wasmban: intrusion prevention with sandboxed WebAssembly filters and actions.
pub mod capability;
pub mod cli;
pub mod plugin;
