//! fail2ban's classic actions as a component: the `actionstart`,
//! `actionban`, ... commands of an action.d file, with their per-ban tags
//! filled in, run through the host's `shell` capability (which exists only
//! where the admin granted it).
//!
//! Everything that comes from a log line (the matched lines, `<F-*>`
//! fields) is quoted for the place in the command where it lands, so that
//! no log line can run a command; lines that start with `~` are indented,
//! so that mail programs never see a tilde escape (CVE-2021-32749).

use std::collections::BTreeMap;

use wasmban_plugin_sdk::classic::{Tags, address_tags, defang, fill};
use wasmban_plugin_sdk::{Action, Options, Ticket, log, shell};

fn family_of(ip: &str) -> &'static str {
    wasmban_plugin_sdk::classic::family_of(ip)
}

/// The commands of one action.
pub struct CommandAction {
    options: BTreeMap<String, String>,
    timeout_ms: u32,
    /// Families whose start ran (commands with `?family=` variants start
    /// once per family).
    started: Vec<&'static str>,
    /// Whether a command uses `<ip-host>` (a DNS lookup per ban).
    uses_ip_host: bool,
}

/// Why a ban is applied, as the host's `action-events` says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A new ban.
    Fresh,
    /// Put back at start (`<restored>` = 1).
    Restored,
    /// Applied again after a repair (`actionreban`).
    Reban,
    /// Made longer (`actionprolong`).
    Prolong,
}

/// What the host says of a ban besides its ticket (fail2ban's merged and
/// jail tags).
#[derive(Clone, Debug)]
pub struct Context {
    pub kind: Kind,
    pub ip_failures: u32,
    pub ip_matches: Vec<String>,
    pub ip_jail_failures: u32,
    pub ip_jail_matches: Vec<String>,
    pub jail_banned: u32,
    pub jail_banned_total: u32,
    pub jail_found: u32,
    pub jail_found_total: u32,
}

/// The per-ban tags of `ticket`: (value, whether it comes from a log).
/// Without a `context` (a host that does not send one), the merged tags
/// hold this ban alone.
fn ticket_tags(ticket: &Ticket, context: Option<&Context>) -> Tags {
    let mut tags = address_tags(&ticket.ip, &ticket.matches, &ticket.fields);
    let mut put = |k: &str, v: String, from_log: bool| {
        tags.insert(k.to_string(), (v, from_log));
    };
    put("failures", ticket.failures.to_string(), false);
    put("time", ticket.time.to_string(), false);
    put("bantime", ticket.bantime.to_string(), false);
    put("bancount", ticket.ban_count.to_string(), false);
    put("jail.name", ticket.jail.clone(), false);
    let matches = defang(&ticket.matches.join("\n"));
    match context {
        Some(c) => {
            put("restored", u8::from(c.kind == Kind::Restored).to_string(), false);
            put("ipmatches", defang(&c.ip_matches.join("\n")), true);
            put("ipjailmatches", defang(&c.ip_jail_matches.join("\n")), true);
            put("ipfailures", c.ip_failures.to_string(), false);
            put("ipjailfailures", c.ip_jail_failures.to_string(), false);
            put("jail.banned", c.jail_banned.to_string(), false);
            put("jail.banned_total", c.jail_banned_total.to_string(), false);
            put("jail.found", c.jail_found.to_string(), false);
            put("jail.found_total", c.jail_found_total.to_string(), false);
        }
        None => {
            put("restored", "0".to_string(), false);
            put("ipmatches", matches.clone(), true);
            put("ipjailmatches", matches, true);
            put("ipfailures", ticket.failures.to_string(), false);
            put("ipjailfailures", ticket.failures.to_string(), false);
        }
    }
    tags
}

impl CommandAction {
    /// An option for `family`: its `?family=` variant first.
    fn option(&self, key: &str, family: &str) -> Option<&str> {
        self.options.get(&format!("{key}?family={family}")).or_else(|| self.options.get(key)).map(String::as_str)
    }

    /// Fill `template`'s tags: per-ban ones from `tags`, the rest from the
    /// options (`?family=` variants first), then fail2ban's fallbacks.
    fn fill(&self, template: &str, tags: &Tags, family: &str) -> String {
        let option = |base: &str, variant: Option<&str>| match variant {
            Some(v) => self.options.get(&format!("{base}?{v}")).cloned(),
            None => self.option(base, family).map(str::to_string),
        };
        fill(template, tags, &option, 0)
    }

    fn run(&self, what: &str, command: &str) -> Result<(), String> {
        if command.trim().is_empty() {
            return Ok(());
        }
        let out = shell::run(command, self.timeout_ms)?;
        if out.status != 0 {
            let said = out.stderr.trim();
            return Err(format!(
                "{what} exited with status {}{}",
                out.status,
                if said.is_empty() { String::new() } else { format!(": {said}") }
            ));
        }
        Ok(())
    }

    fn run_for(&self, key: &str, family: &str, tags: &Tags) -> Result<(), String> {
        match self.option(key, family) {
            Some(template) => {
                let command = self.fill(template, tags, family);
                self.run(key, &command)
            }
            None => Ok(()),
        }
    }

    /// Families a start/stop command must run for: both when its commands
    /// differ by family, else one.
    fn families(&self, key: &str) -> Vec<&'static str> {
        let none = BTreeMap::new();
        let four = self.option(key, "inet4").map(|t| self.fill(t, &none, "inet4"));
        let six = self.option(key, "inet6").map(|t| self.fill(t, &none, "inet6"));
        if four == six { vec!["inet4"] } else { vec!["inet4", "inet6"] }
    }

    fn ensure_started(&mut self, family: &'static str) -> Result<(), String> {
        if self.started.contains(&family) {
            return Ok(());
        }
        let per_family = self.families("actionstart").len() == 2;
        self.run_for("actionstart", family, &BTreeMap::new())?;
        if per_family {
            self.started.push(family);
        } else {
            self.started.extend(["inet4", "inet6"]);
        }
        Ok(())
    }
}

impl CommandAction {
    /// `tags` with `<ip-host>`, the address's name, looked up only when a
    /// command uses it. The name comes from whoever controls the address's
    /// PTR record, so it is quoted as log text is.
    fn with_host(&self, mut tags: Tags, ip: &str) -> Tags {
        if self.uses_ip_host {
            let name = match wasmban_plugin_sdk::dns::reverse(ip) {
                Ok(names) => names.into_iter().next().unwrap_or_default(),
                Err(e) => {
                    log::warn(&format!("<ip-host> of {ip}: {e}"));
                    String::new()
                }
            };
            tags.insert("ip-host".into(), (defang(&name), true));
        }
        tags
    }

    /// Whether `key` holds a command (fail2ban skips empty ones).
    fn has_command(&self, key: &str) -> bool {
        self.options.iter().any(|(k, v)| (k == key || k.starts_with(&format!("{key}?"))) && !v.trim().is_empty())
    }

    /// Apply one ban as its `context` says: `actionban`, or `actionreban`
    /// when the action has it and the ban is applied again, or
    /// `actionprolong` (nothing when the action has none) for a ban made
    /// longer.
    pub fn apply(&mut self, ticket: &Ticket, context: Option<&Context>) -> Result<(), String> {
        let family = family_of(&ticket.ip);
        let kind = context.map_or(Kind::Fresh, |c| c.kind);
        let command = match kind {
            Kind::Reban if self.has_command("actionreban") => "actionreban",
            Kind::Prolong if !self.has_command("actionprolong") => return Ok(()),
            Kind::Prolong => "actionprolong",
            _ => "actionban",
        };
        self.ensure_started(family)?;
        let tags = self.with_host(ticket_tags(ticket, context), &ticket.ip);
        match self.run_for(command, family, &tags) {
            Ok(()) => Ok(()),
            // fail2ban checks (and repairs) the action after a failed ban,
            // then tries once more.
            Err(first) if self.options.contains_key("actionrepair") => {
                log::warn(&format!("{command} of {} failed ({first}); running actionrepair", ticket.ip));
                self.run_for("actionrepair", family, &tags)?;
                self.run_for(command, family, &tags)
            }
            Err(e) => Err(e),
        }
    }

    /// Run `actionreload` for each family started (fail2ban runs it when
    /// the configuration is read again and the action kept).
    pub fn reload(&mut self) -> Result<(), String> {
        if !self.has_command("actionreload") {
            return Ok(());
        }
        for family in self.families("actionreload") {
            if self.started.contains(&family) {
                self.run_for("actionreload", family, &BTreeMap::new())?;
            }
        }
        Ok(())
    }

    /// Lift every ban at once with `actionflush`, for each family started;
    /// false when the action has no `actionflush`.
    pub fn flush(&mut self) -> Result<bool, String> {
        if !self.has_command("actionflush") {
            return Ok(false);
        }
        for family in self.families("actionflush") {
            if self.started.contains(&family) {
                self.run_for("actionflush", family, &BTreeMap::new())?;
            }
        }
        Ok(true)
    }
}

impl Action for CommandAction {
    fn new(options: Options) -> Result<Self, String> {
        let options: BTreeMap<String, String> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if !options.keys().any(|k| k.starts_with("actionban")) {
            return Err("the action has no `actionban` command: nothing to do on a ban".into());
        }
        let timeout_ms = match options.get("timeout") {
            Some(t) => {
                let secs: f64 = t.trim().parse().map_err(|_| format!("option `timeout` = {t:?}: expected seconds"))?;
                (secs * 1000.0).clamp(1.0, 600_000.0) as u32
            }
            None => 60_000,
        };
        let uses_ip_host = options.values().any(|v| v.contains("<ip-host>"));
        Ok(CommandAction { options, timeout_ms, started: Vec::new(), uses_ip_host })
    }

    fn start(&mut self) -> Result<(), String> {
        // fail2ban's actionstart_on_demand: start at the first ban instead.
        let on_demand = self.options.get("actionstart_on_demand").is_some_and(|v| v.trim() == "true");
        if on_demand {
            return Ok(());
        }
        // Once, or once per family when the commands differ by family.
        for family in self.families("actionstart") {
            self.ensure_started(family)?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), String> {
        if self.started.is_empty() {
            return Ok(());
        }
        let started: Vec<&'static str> = self.started.drain(..).collect();
        let mut result = Ok(());
        for family in self.families("actionstop") {
            if started.contains(&family) {
                if let Err(e) = self.run_for("actionflush", family, &BTreeMap::new()) {
                    log::warn(&e);
                }
                if let Err(e) = self.run_for("actionstop", family, &BTreeMap::new()) {
                    result = Err(e);
                }
            }
        }
        result
    }

    fn check(&mut self) -> Result<(), String> {
        self.run_for("actioncheck", "inet4", &BTreeMap::new())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.apply(ticket, None)
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let family = family_of(&ticket.ip);
        let tags = self.with_host(ticket_tags(ticket, None), &ticket.ip);
        self.run_for("actionunban", family, &tags)
    }
}

/// The component's exports: `action` and `action-events`. Generated here
/// rather than through the SDK's `export_action!`, for the reason the
/// regex filter gives (wit-bindgen issue #1502: two worlds exporting
/// `action` cannot both export macros from one crate).
#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    use wasmban_plugin_sdk::{Action, Options};

    use super::{CommandAction, Context, Kind};

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
    use wasmban_plugin_sdk::Ticket;

    struct Component;

    struct Handler(RefCell<CommandAction>);

    impl action::Guest for Component {
        type Handler = Handler;
    }

    impl action::GuestHandler for Handler {
        fn create(options: Vec<(String, String)>) -> Result<action::Handler, String> {
            CommandAction::new(Options::new(options)).map(|a| action::Handler::new(Handler(RefCell::new(a))))
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

    fn context(c: action_events::BanContext) -> Context {
        Context {
            kind: match c.kind {
                action_events::BanKind::Fresh => Kind::Fresh,
                action_events::BanKind::Restored => Kind::Restored,
                action_events::BanKind::Reban => Kind::Reban,
                action_events::BanKind::Prolong => Kind::Prolong,
            },
            ip_failures: c.ip_failures,
            ip_matches: c.ip_matches,
            ip_jail_failures: c.ip_jail_failures,
            ip_jail_matches: c.ip_jail_matches,
            jail_banned: c.jail_banned,
            jail_banned_total: c.jail_banned_total,
            jail_found: c.jail_found,
            jail_found_total: c.jail_found_total,
        }
    }

    impl action_events::Guest for Component {
        fn apply(
            h: action::HandlerBorrow<'_>,
            bans: Vec<(Ticket, action_events::BanContext)>,
        ) -> Vec<Result<(), String>> {
            let mut action = h.get::<Handler>().0.borrow_mut();
            bans.into_iter().map(|(ticket, c)| action.apply(&ticket, Some(&context(c)))).collect()
        }
        fn flush(h: action::HandlerBorrow<'_>) -> Result<bool, String> {
            h.get::<Handler>().0.borrow_mut().flush()
        }
        fn reload(h: action::HandlerBorrow<'_>) -> Result<(), String> {
            h.get::<Handler>().0.borrow_mut().reload()
        }
    }

    export!(Component);

    #[unsafe(link_section = "wasmban:sdk-version")]
    #[used]
    static SDK_VERSION: [u8; wasmban_plugin_sdk::SDK_VERSION.len()] = wasmban_plugin_sdk::SDK_VERSION_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_tags_are_fail2bans() {
        let action =
            CommandAction { options: BTreeMap::new(), timeout_ms: 1000, started: Vec::new(), uses_ip_host: false };
        let ticket = Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.1".into(),
            failures: 1,
            matches: vec![],
            time: 0,
            bantime: 60,
            ban_count: 1,
            fields: vec![("user".into(), "root".into())],
        };
        let tags = ticket_tags(&ticket, None);
        assert_eq!(action.fill("<F-USER>|<F-SERVICE>|<other><br>", &tags, "inet4"), "'root'||<other>\n");
        let context = Context {
            kind: Kind::Restored,
            ip_failures: 7,
            ip_matches: vec!["a".into(), "b'c".into()],
            ip_jail_failures: 3,
            ip_jail_matches: vec!["b'c".into()],
            jail_banned: 2,
            jail_banned_total: 5,
            jail_found: 1,
            jail_found_total: 9,
        };
        let tags = ticket_tags(&ticket, Some(&context));
        assert_eq!(
            action.fill(
                "<restored> <ipfailures> <ipjailfailures> <ipmatches> <ipjailmatches> <jail.name> <jail.banned> \
                 <jail.banned_total> <jail.found> <jail.found_total>",
                &tags,
                "inet4"
            ),
            "1 7 3 'a\nb'\\''c' 'b'\\''c' sshd 2 5 1 9"
        );
    }
}
