//! Host bindings generated from `wit/`, the single source of truth, in one
//! module that `plugin/` (instances) and `capability/` (host sides) both
//! use. Every other module imports WIT types from here.

/// The filter world: exports `filter`, imports `log`.
pub mod filter_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "filter-plugin",
    });
}

/// The action world: exports `action`, imports the capabilities. It shares
/// the filter world's `types` and `log` so one host implementation serves both.
pub mod action_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "action-plugin",
        with: {
            "wasmban:plugin/types": super::filter_world::wasmban::plugin::types,
            "wasmban:plugin/log": super::filter_world::wasmban::plugin::log,
        },
    });
}

/// The prepared-filter world: a filter that also exports `prepare` (its
/// work can be split between two instances). Shares the filter world's
/// `types` and `log`.
pub mod prepared_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "prepared-filter",
        with: {
            "wasmban:plugin/types": super::filter_world::wasmban::plugin::types,
            "wasmban:plugin/log": super::filter_world::wasmban::plugin::log,
        },
    });
}

/// The evented-action world: an action that also exports `action-events`.
/// Shares the action world's imports, so one linker serves both.
pub mod evented_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "evented-action",
        with: {
            "wasmban:plugin/types": super::filter_world::wasmban::plugin::types,
            "wasmban:plugin/log": super::filter_world::wasmban::plugin::log,
            "wasmban:plugin/firewall": super::action_world::wasmban::plugin::firewall,
            "wasmban:plugin/mail": super::action_world::wasmban::plugin::mail,
            "wasmban:plugin/whois": super::action_world::wasmban::plugin::whois,
            "wasmban:plugin/shell": super::action_world::wasmban::plugin::shell,
            "wasmban:plugin/http": super::action_world::wasmban::plugin::http,
            "wasmban:plugin/dns": super::action_world::wasmban::plugin::dns,
            "wasmban:plugin/file": super::action_world::wasmban::plugin::file,
        },
    });
}

/// The ignore world: exports `ignore`; imports `log`, `dns` and `shell`,
/// shared with the action world.
pub mod ignore_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "ignore-plugin",
        with: {
            "wasmban:plugin/types": super::filter_world::wasmban::plugin::types,
            "wasmban:plugin/log": super::filter_world::wasmban::plugin::log,
            "wasmban:plugin/firewall": super::action_world::wasmban::plugin::firewall,
            "wasmban:plugin/shell": super::action_world::wasmban::plugin::shell,
            "wasmban:plugin/dns": super::action_world::wasmban::plugin::dns,
        },
    });
}

/// The filter-pack world: exports `pack`, imports `log`.
pub mod pack_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "filter-pack",
        with: {
            "wasmban:plugin/types": super::filter_world::wasmban::plugin::types,
            "wasmban:plugin/log": super::filter_world::wasmban::plugin::log,
        },
    });
}

pub use action_world::ActionPlugin;
pub use action_world::ActionPluginPre;
pub use evented_world::EventedAction;
pub use evented_world::EventedActionPre;
pub use evented_world::exports::wasmban::plugin::action_events::{BanContext, BanKind};
pub use filter_world::FilterPlugin;
pub use filter_world::FilterPluginPre;
pub use pack_world::FilterPack;
pub use pack_world::FilterPackPre;
pub use pack_world::exports::wasmban::plugin::pack::{FilterInfo, PackInfo, Sample};
pub use prepared_world::PreparedFilter;
pub use prepared_world::PreparedFilterPre;
pub use prepared_world::exports::wasmban::plugin::report::Hits as ReportHits;

pub use action_world::wasmban::plugin::{dns, file, firewall, http, mail, shell, whois};
pub use filter_world::wasmban::plugin::{log, types};
pub use ignore_world::IgnorePlugin;
pub use ignore_world::IgnorePluginPre;
