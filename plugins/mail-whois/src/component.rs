//! The component's exports: `action` and `action-events`, so that a ban
//! message can carry the host's history of the address (fail2ban's
//! `<ipmatches>`, `<ipjailmatches>`). Generated here rather than through the
//! SDK's `export_action!`, as in command-action (wit-bindgen issue #1502).

use std::cell::RefCell;

use wasmban_plugin_sdk::{Action, Options, Ticket};

use super::{History, MailWhois};

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
        "wasmban:plugin/dns@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::dns,
        "wasmban:plugin/file@0.1.0": wasmban_plugin_sdk::wit::action_world::wasmban::plugin::file,
    },
});

use exports::wasmban::plugin::{action, action_events};

struct Component;

struct Handler(RefCell<MailWhois>);

impl action::Guest for Component {
    type Handler = Handler;
}

impl action::GuestHandler for Handler {
    fn create(options: Vec<(String, String)>) -> Result<action::Handler, String> {
        MailWhois::new(Options::new(options)).map(|a| action::Handler::new(Handler(RefCell::new(a))))
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
    /// New and restored bans are told; a ban applied again after a repair
    /// or made longer is not news to the admin.
    fn apply(h: action::HandlerBorrow<'_>, bans: Vec<(Ticket, action_events::BanContext)>) -> Vec<Result<(), String>> {
        let mut action = h.get::<Handler>().0.borrow_mut();
        let mut results: Vec<Result<(), String>> = Vec::with_capacity(bans.len());
        let mut told = Vec::new();
        let mut at = Vec::new();
        for (i, (ticket, context)) in bans.into_iter().enumerate() {
            results.push(Ok(()));
            if matches!(context.kind, action_events::BanKind::Fresh | action_events::BanKind::Restored) {
                let history = History {
                    ip_failures: context.ip_failures,
                    ip_matches: context.ip_matches,
                    ip_jail_failures: context.ip_jail_failures,
                    ip_jail_matches: context.ip_jail_matches,
                };
                told.push((ticket, Some(history)));
                at.push(i);
            }
        }
        for (i, result) in at.into_iter().zip(action.tell_all(&told)) {
            results[i] = result;
        }
        results
    }
    fn flush(_h: action::HandlerBorrow<'_>) -> Result<bool, String> {
        // Nothing to lift: the host then unbans one by one, which mail
        // ignores.
        Ok(false)
    }
    fn reload(_h: action::HandlerBorrow<'_>) -> Result<(), String> {
        Ok(())
    }
}

export!(Component);

#[unsafe(link_section = "wasmban:sdk-version")]
#[used]
static SDK_VERSION: [u8; wasmban_plugin_sdk::SDK_VERSION.len()] = wasmban_plugin_sdk::SDK_VERSION_BYTES;
