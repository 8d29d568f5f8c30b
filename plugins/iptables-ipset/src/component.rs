//! The component's exports: `action` and `action-events` (so that a
//! prolonged ban gets its new kernel timeout, and `unban --all` is one
//! `ipset flush`). Generated here rather than through the SDK's
//! `export_action!`, as in command-action (wit-bindgen issue #1502: two
//! worlds exporting `action` cannot both export macros from one crate).

use std::cell::RefCell;

use wasmban_plugin_sdk::{Options, Ticket};

use super::IptablesIpset;

wit_bindgen::generate!({
    path: "../../wit",
    world: "evented-action",
    runtime_path: "wasmban_plugin_sdk::wit::rt",
    with: {
        "wasmban:plugin/types@0.1.0": wasmban_plugin_sdk::wit::filter_world::wasmban::plugin::types,
        "wasmban:plugin/log@0.1.0": wasmban_plugin_sdk::wit::filter_world::wasmban::plugin::log,
        "wasmban:plugin/firewall@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::firewall,
        "wasmban:plugin/mail@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::mail,
        "wasmban:plugin/whois@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::whois,
        "wasmban:plugin/shell@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::shell,
        "wasmban:plugin/http@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::http,
    },
});

use exports::wasmban::plugin::{action, action_events};

struct Component;

struct Handler(RefCell<IptablesIpset>);

impl action::Guest for Component {
    type Handler = Handler;
}

impl action::GuestHandler for Handler {
    fn create(options: Vec<(String, String)>) -> Result<action::Handler, String> {
        IptablesIpset::new(Options::new(options)).map(|a| action::Handler::new(Handler(RefCell::new(a))))
    }
    fn start(&self) -> Result<(), String> {
        self.0.borrow_mut().start()
    }
    fn stop(&self) -> Result<(), String> {
        self.0.borrow_mut().stop()
    }
    fn check(&self) -> Result<(), String> {
        self.0.borrow_mut().check()
    }
    fn ban(&self, tickets: Vec<Ticket>) -> Vec<Result<(), String>> {
        self.0.borrow_mut().ban_all(&tickets)
    }
    fn unban(&self, tickets: Vec<Ticket>) -> Vec<Result<(), String>> {
        self.0.borrow_mut().unban_all(&tickets)
    }
}

impl action_events::Guest for Component {
    /// Every kind of ban is an add: a ban already in the set (restored,
    /// applied again, prolonged) gets the ticket's timeout.
    fn apply(h: action::HandlerBorrow<'_>, bans: Vec<(Ticket, action_events::BanContext)>) -> Vec<Result<(), String>> {
        let tickets: Vec<Ticket> = bans.into_iter().map(|(ticket, _)| ticket).collect();
        h.get::<Handler>().0.borrow_mut().ban_all(&tickets)
    }
    fn flush(h: action::HandlerBorrow<'_>) -> Result<bool, String> {
        h.get::<Handler>().0.borrow_mut().flush()
    }
    fn reload(_h: action::HandlerBorrow<'_>) -> Result<(), String> {
        Ok(())
    }
}

export!(Component);

#[unsafe(link_section = "wasmban:sdk-version")]
#[used]
static SDK_VERSION: [u8; wasmban_plugin_sdk::SDK_VERSION.len()] = wasmban_plugin_sdk::SDK_VERSION_BYTES;
