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

use wasmban_plugin_sdk::{Action, Options, Ticket, log, shell};

/// The commands of one action.
pub struct CommandAction {
    options: BTreeMap<String, String>,
    timeout_ms: u32,
    /// Families whose start ran (commands with `?family=` variants start
    /// once per family).
    started: Vec<&'static str>,
}

/// Quoting state at a point of a shell command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quote {
    None,
    Single,
    Double,
}

/// Where each `<tag>` of `template` stands: (start, end, tag, quoting).
fn tags_with_quoting(template: &str) -> Vec<(usize, usize, String, Quote)> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut state = Quote::None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match (state, c) {
            (Quote::None | Quote::Double, b'\\') => {
                i += 2;
                continue;
            }
            (Quote::None, b'\'') => state = Quote::Single,
            (Quote::Single, b'\'') => state = Quote::None,
            (Quote::None, b'"') => state = Quote::Double,
            (Quote::Double, b'"') => state = Quote::None,
            (_, b'<') => {
                if let Some(len) = template[i + 1..].find('>') {
                    let name = &template[i + 1..i + 1 + len];
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_?=.".contains(c)) {
                        out.push((i, i + len + 2, name.to_string(), state));
                        i += len + 2;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `value` written so that the shell reads it back unchanged at a place
/// with quoting `q`.
fn quote_for(value: &str, q: Quote) -> String {
    match q {
        Quote::None => format!("'{}'", value.replace('\'', r"'\''")),
        Quote::Single => value.replace('\'', r"'\''"),
        Quote::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// Log text made harmless for what commands do with it: backslashes are
/// doubled, so that `printf %b` (fail2ban's mail actions) cannot turn a
/// logged `\n~!` into a new line, and a line that starts with `~` (a
/// tilde escape in mail/mailx, which runs commands) is indented.
fn defang(text: &str) -> String {
    text.replace('\\', r"\\")
        .split('\n')
        .map(|l| if l.starts_with('~') { format!(" {l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The address's name in the reverse DNS tree without its zone, as
/// fail2ban's `<ip-rev>`: `4.3.2.1.` for 1.2.3.4, 32 nibbles for IPv6.
fn reverse_name(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(format!("{}.{}.{}.{}.", o[3], o[2], o[1], o[0]))
        }
        std::net::IpAddr::V6(v6) => {
            let mut out = String::with_capacity(64);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            Some(out)
        }
    }
}

/// What fail2ban puts for a tag nothing else names: `<br>` and `<sp>`,
/// and an empty text for a filter capture the failure did not have
/// (`<F-USER>` where no user was logged).
fn fallback(tag: &str) -> Option<&'static str> {
    match tag {
        "br" => Some("\n"),
        "sp" => Some(" "),
        _ if tag.strip_prefix("F-").is_some_and(|name| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
        }) =>
        {
            Some("")
        }
        _ => None,
    }
}

fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { "inet6" } else { "inet4" }
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
fn ticket_tags(ticket: &Ticket, context: Option<&Context>) -> BTreeMap<String, (String, bool)> {
    let mut tags = BTreeMap::new();
    let mut put = |k: &str, v: String, from_log: bool| {
        tags.insert(k.to_string(), (v, from_log));
    };
    put("ip", ticket.ip.clone(), false);
    put("fid", ticket.ip.clone(), false);
    put("family", family_of(&ticket.ip).to_string(), false);
    if let Some(rev) = reverse_name(&ticket.ip) {
        put("ip-rev", rev, false);
    }
    put("failures", ticket.failures.to_string(), false);
    put("time", ticket.time.to_string(), false);
    put("bantime", ticket.bantime.to_string(), false);
    put("bancount", ticket.ban_count.to_string(), false);
    put("jail.name", ticket.jail.clone(), false);
    let matches = defang(&ticket.matches.join("\n"));
    put("matches", matches.clone(), true);
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
    for (k, v) in &ticket.fields {
        let name = k.strip_prefix("F-").unwrap_or(k).to_ascii_lowercase();
        put(&format!("F-{}", name.to_ascii_uppercase()), defang(v), true);
    }
    tags
}

impl CommandAction {
    /// An option for `family`: its `?family=` variant first.
    fn option(&self, key: &str, family: &str) -> Option<&str> {
        self.options.get(&format!("{key}?family={family}")).or_else(|| self.options.get(key)).map(String::as_str)
    }

    /// Fill `template`'s tags: per-ban ones from `tags`, the rest from the
    /// options (`?family=` variants first), then fail2ban's fallbacks
    /// ([`fallback`]). Other unknown tags stay as written.
    fn fill(&self, template: &str, tags: &BTreeMap<String, (String, bool)>, family: &str, depth: u32) -> String {
        let mut out = String::with_capacity(template.len());
        let mut last = 0;
        for (start, end, name, quote) in tags_with_quoting(template) {
            out.push_str(&template[last..start]);
            last = end;
            let (base, variant) = match name.split_once('?') {
                Some((b, v)) => (b, Some(v)),
                None => (name.as_str(), None),
            };
            if let Some((value, from_log)) = tags.get(base) {
                // Values that are not from a log are plain numbers and
                // validated addresses; quoting them too would change what
                // templates expect (`<ip>/32`).
                if *from_log {
                    out.push_str(&quote_for(value, quote));
                } else {
                    out.push_str(value);
                }
                continue;
            }
            let looked_up = match variant {
                Some(v) => self.options.get(&format!("{base}?{v}")).map(String::as_str),
                None => self.option(base, family),
            };
            match looked_up {
                // Option values may hold tags of their own.
                Some(v) if depth < 10 => out.push_str(&self.fill(v, tags, family, depth + 1)),
                Some(v) => out.push_str(v),
                None => out.push_str(fallback(base).unwrap_or(&template[start..end])),
            }
        }
        out.push_str(&template[last..]);
        out
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

    fn run_for(&self, key: &str, family: &str, tags: &BTreeMap<String, (String, bool)>) -> Result<(), String> {
        match self.option(key, family) {
            Some(template) => {
                let command = self.fill(template, tags, family, 0);
                self.run(key, &command)
            }
            None => Ok(()),
        }
    }

    /// Families a start/stop command must run for: both when its commands
    /// differ by family, else one.
    fn families(&self, key: &str) -> Vec<&'static str> {
        let none = BTreeMap::new();
        let four = self.option(key, "inet4").map(|t| self.fill(t, &none, "inet4", 0));
        let six = self.option(key, "inet6").map(|t| self.fill(t, &none, "inet6", 0));
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
        let tags = ticket_tags(ticket, context);
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
        Ok(CommandAction { options, timeout_ms, started: Vec::new() })
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
        self.run_for("actionunban", family, &ticket_tags(ticket, None))
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
    fn quoting_follows_the_place_of_the_tag() {
        let t = r#"echo <a> '<b>' "<c>" \<d> "it's <e>""#;
        let q: Vec<(String, Quote)> = tags_with_quoting(t).into_iter().map(|(_, _, n, q)| (n, q)).collect();
        assert_eq!(
            q,
            [
                ("a".into(), Quote::None),
                ("b".into(), Quote::Single),
                ("c".into(), Quote::Double),
                ("e".into(), Quote::Double)
            ]
        );
        assert_eq!(quote_for("x'y", Quote::None), r"'x'\''y'");
        assert_eq!(quote_for("x'y", Quote::Single), r"x'\''y");
        assert_eq!(quote_for("$(id) `id` \"\\", Quote::Double), r#"\$(id) \`id\` \"\\"#);
        assert_eq!(defang("a\n~! touch x\nb"), "a\n ~! touch x\nb");
        assert_eq!(defang(r"x\n~! y"), r"x\\n~! y");
    }

    #[test]
    fn reverse_names_and_fallbacks_are_fail2bans() {
        assert_eq!(reverse_name("192.0.2.1").as_deref(), Some("1.2.0.192."));
        assert_eq!(
            reverse_name("2001:db8::1").as_deref(),
            Some("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.")
        );
        assert_eq!(reverse_name("host.example"), None);
        assert_eq!(fallback("F-USER"), Some(""));
        assert_eq!(fallback("F-ALT_USER1"), Some(""));
        assert_eq!(fallback("F-user"), None);
        assert_eq!(fallback("br"), Some("\n"));
        assert_eq!(fallback("nosuchtag"), None);
        let action = CommandAction { options: BTreeMap::new(), timeout_ms: 1000, started: Vec::new() };
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
        assert_eq!(action.fill("<F-USER>|<F-SERVICE>|<other><br>", &tags, "inet4", 0), "'root'||<other>\n");
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
                "inet4",
                0
            ),
            "1 7 3 'a\nb'\\''c' 'b'\\''c' sshd 2 5 1 9"
        );
    }
}
