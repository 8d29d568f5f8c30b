//! Loading and running plugin components in their sandboxes.
//!
//! `registry` finds a component and its manifest; `runtime` compiles it
//! (with the on-disk `cache`), checks its imports against its grants and
//! links only those (`sandbox`); `instance` runs calls with a CPU deadline
//! and a memory cap, rebuilding an instance after a trap; `split` runs a
//! filter that exports `prepare` on two cores.
pub mod cache;
pub mod error;
pub mod inspect;
pub mod instance;
pub mod manifest;
pub mod output;
pub mod registry;
pub mod runtime;
pub mod sandbox;
pub mod split;

pub use error::{PluginError, TrapKind};
pub use instance::{ActionInstance, FilterInstance, IgnoreInstance, InstanceStats};
pub use manifest::{Grants, Limits, Manifest};
pub use registry::{BUILTINS, PluginSource, Registry};
pub use runtime::{Plugin, Runtime, RuntimeOptions};
pub use sandbox::PluginKind;
