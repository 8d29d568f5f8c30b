//! fail2ban's `complain` action as a component: for each new ban it asks
//! DNS for the address's abuse contacts (the TXT record of
//! `<ip-rev>abuse-contacts.abusix.org`, a comma-separated list) and mails
//! them `Abuse from <ip>`: the action's `message`, then the log lines that
//! led to the ban. An address with no contact is logged, not mailed.
//!
//! fail2ban greps the jail's `logpath` for the lines (its default,
//! /dev/null, gives none); the component has no file access and sends the
//! ban's own matched lines instead, at most `grepmax`.
//!
//! It can only send mail (through wasmban.conf's `[mail]`) and ask DNS.

use wasmban_plugin_sdk::mail::Message;
use wasmban_plugin_sdk::{Action, Options, Ticket, abuse, address, log, mail};

#[derive(Debug, Clone)]
pub struct Plan {
    pub resolver: String,
    pub message: String,
    pub sender: String,
    pub grepmax: usize,
}

/// `printf %b`'s escapes in a fail2ban option (`\n`, `\t`, `\\`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let resolver = options.get_or("addr_resolver", "<ip-rev>abuse-contacts.abusix.org").trim().to_string();
        if !resolver.contains("<ip-rev>") {
            return Err(format!(
                "option `addr_resolver` = {resolver:?}: it must hold <ip-rev>, the address's place in the zone"
            ));
        }
        let mailargs = options.get_or("mailargs", "").trim();
        if !mailargs.is_empty() {
            return Err(format!(
                "option `mailargs` = {mailargs:?}: mail goes through wasmban.conf's [mail], not a mail program; \
                 remove it (the sender is the `sender` option)"
            ));
        }
        let grepmax = options.get_or("grepmax", "1000").trim();
        let grepmax = grepmax.parse().map_err(|_| format!("option `grepmax` = {grepmax:?}: expected a number"))?;
        let message = options.get("message").map(unescape).unwrap_or_else(|| {
            "We have detected abuse from the IP address $IP, which according to abusix.com is on your network. \
             Please investigate and take action as appropriate.\n\nThe log lines are below.\n"
                .to_string()
        });
        Ok(Plan { resolver, message, sender: options.get_or("sender", "wasmban").trim().to_string(), grepmax })
    }

    pub fn complaint(&self, ticket: &Ticket, recipients: Vec<String>) -> Message {
        let mut body = self.message.replace("$IP", &ticket.ip);
        if !body.ends_with('\n') {
            body.push('\n');
        }
        body.push_str(&format!("\nLines containing failures of {} (max {})\n", ticket.ip, self.grepmax));
        for line in ticket.matches.iter().take(self.grepmax) {
            body.push_str(line);
            body.push('\n');
        }
        Message { sender: self.sender.clone(), recipients, subject: format!("Abuse from {}", ticket.ip), body }
    }
}

pub struct Complain {
    plan: Plan,
}

impl Action for Complain {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Complain { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        if address::is_prefix(&ticket.ip) {
            log::info(&format!("{} is a prefix ban: no abuse contact is asked for a prefix", ticket.ip));
            return Ok(());
        }
        let contacts = abuse::contacts(&self.plan.resolver, &ticket.ip)?;
        if contacts.is_empty() {
            log::info(&format!("no abuse contact for {}: no complaint sent", ticket.ip));
            return Ok(());
        }
        mail::send(&self.plan.complaint(ticket, contacts))
    }

    fn unban(&mut self, _ticket: &Ticket) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Complain);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn the_complaint_is_fail2bans() {
        let p = plan(&[("message", "Dear Sir/Madam,\\n\\nabuse from $IP.\\n"), ("grepmax", "1")]).unwrap();
        let ticket = Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.7".into(),
            failures: 2,
            matches: vec!["line one".into(), "line two".into()],
            time: 0,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        };
        let m = p.complaint(&ticket, vec!["abuse@example.net".into()]);
        assert_eq!(m.subject, "Abuse from 192.0.2.7");
        assert_eq!(
            m.body,
            "Dear Sir/Madam,\n\nabuse from 192.0.2.7.\n\nLines containing failures of 192.0.2.7 (max 1)\nline one\n"
        );
        assert!(plan(&[("mailargs", "-c boss@example.org")]).unwrap_err().contains("`mailargs`"));
        assert!(plan(&[("addr_resolver", "abuse.example.org")]).unwrap_err().contains("<ip-rev>"));
    }
}
