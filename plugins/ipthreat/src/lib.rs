//! fail2ban's `ipthreat` action as a component: each new ban is reported to
//! IPThreat (`POST /api/report`, JSON with the address, the flags, the
//! system and `fail2ban` as notes, the key in `X-API-KEY`). Unbans report
//! nothing.
//!
//! It can only reach api.ipthreat.net (its grant).

use wasmban_plugin_sdk::http::Request;
use wasmban_plugin_sdk::{Action, Options, Ticket, encode, http, log};

#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub key: String,
    pub flags: String,
    pub system: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let key = options.get_or("ipthreat_apikey", "").trim().to_string();
        if key.is_empty() || key.contains(['\r', '\n']) {
            return Err(
                "ipthreat_apikey is empty: set your IPThreat API key for the ipthreat action in jail.local".into()
            );
        }
        let flags = options.get_or("ipthreat_flags", "8").trim().to_string();
        if flags.is_empty() || !flags.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ',' | ' ' | '|')) {
            return Err(format!("ipthreat_flags = {flags:?}: give IPThreat's flags, such as 8 (BruteForce)"));
        }
        let timeout_ms = options.millis("timeout", 15_000)?;
        Ok(Plan {
            url: options.get_or("url", "https://api.ipthreat.net/api/report").trim().to_string(),
            key,
            flags,
            system: options.get_or("ipthreat_system", options.get_or("name", "wasmban")).to_string(),
            timeout_ms,
        })
    }

    pub fn report(&self, ip: &str) -> Request {
        Request {
            method: "POST".into(),
            url: self.url.clone(),
            headers: vec![("Content-Type".into(), "application/json".into()), ("X-API-KEY".into(), self.key.clone())],
            body: format!(
                "{{\"ip\":{},\"flags\":{},\"system\":{},\"notes\":\"fail2ban\"}}",
                encode::json_string(ip),
                encode::json_string(&self.flags),
                encode::json_string(&self.system)
            ),
        }
    }
}

pub struct IpThreat {
    plan: Plan,
}

impl Action for IpThreat {
    fn new(options: Options) -> Result<Self, String> {
        Ok(IpThreat { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        if wasmban_plugin_sdk::address::is_prefix(&ticket.ip) {
            log::info(&format!("{} is a prefix ban: not reported, as IPThreat takes single addresses", ticket.ip));
            return Ok(());
        }
        let response = http::send(&self.plan.report(&ticket.ip), self.plan.timeout_ms)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(format!(
                "IPThreat answered HTTP {} to the report of {}: {}",
                response.status,
                ticket.ip,
                response.body.chars().take(300).collect::<String>()
            ))
        }
    }

    fn unban(&mut self, _ticket: &Ticket) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(IpThreat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_ipthreats() {
        let options = Options::new(vec![("ipthreat_apikey".into(), "k".into()), ("name".into(), "sshd".into())]);
        let r = Plan::from_options(&options).unwrap().report("192.0.2.7");
        assert_eq!(r.body, r#"{"ip":"192.0.2.7","flags":"8","system":"sshd","notes":"fail2ban"}"#);
        assert!(r.headers.contains(&("X-API-KEY".into(), "k".into())));
        assert!(Plan::from_options(&Options::new(vec![])).unwrap_err().contains("ipthreat_apikey"));
    }
}
