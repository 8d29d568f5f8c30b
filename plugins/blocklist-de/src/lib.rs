//! fail2ban's `blocklist_de` action as a component: each ban is reported
//! to blocklist.de's report form (the server's e-mail and API key of the
//! blocklist.de account, the service, the address and the matched lines).
//! Unbans report nothing.
//!
//! It can only reach www.blocklist.de (its grant).

use wasmban_plugin_sdk::http::Request;
use wasmban_plugin_sdk::{Action, Options, Ticket, encode, http, log};

#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub email: String,
    pub apikey: String,
    pub service: String,
    pub agent: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let get = |key: &str| options.get_or(key, "").trim().to_string();
        let (email, apikey) = (get("email"), get("apikey"));
        if email.is_empty() || apikey.is_empty() {
            return Err("email and apikey of your blocklist.de account must be set (jail.local: blocklist_de_apikey \
                        in [DEFAULT], sender for the e-mail)"
                .into());
        }
        let agent = match get("agent") {
            agent if agent.is_empty() || agent.contains(['\r', '\n']) => "wasmban".to_string(),
            agent => agent,
        };
        let timeout_ms = options.millis("timeout", 15_000)?;
        Ok(Plan {
            url: options.get_or("url", "https://www.blocklist.de/en/httpreports.html").trim().to_string(),
            email,
            apikey,
            service: options.get("service").or(options.get("name")).unwrap_or("ssh").trim().to_string(),
            agent,
            timeout_ms,
        })
    }

    pub fn report(&self, ticket: &Ticket) -> Request {
        let logs = ticket.matches.join("\n") + "\n";
        Request {
            method: "POST".into(),
            url: self.url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                ("User-Agent".into(), self.agent.clone()),
            ],
            body: encode::form(&[
                ("server", &self.email),
                ("apikey", &self.apikey),
                ("service", &self.service),
                ("ip", &ticket.ip),
                ("logs", &logs),
                ("format", "text"),
            ]),
        }
    }
}

pub struct BlocklistDe {
    plan: Plan,
}

impl Action for BlocklistDe {
    fn new(options: Options) -> Result<Self, String> {
        Ok(BlocklistDe { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        if wasmban_plugin_sdk::address::is_prefix(&ticket.ip) {
            log::info(&format!("{} is a prefix ban: not reported, as blocklist.de takes single addresses", ticket.ip));
            return Ok(());
        }
        let response = http::send(&self.plan.report(ticket), self.plan.timeout_ms)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(format!(
                "blocklist.de answered HTTP {} to the report of {}: {}",
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
wasmban_plugin_sdk::export_action!(BlocklistDe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_blocklist_des() {
        let options = Options::new(
            [("email", "ops@example.org"), ("apikey", "k"), ("service", "sshd"), ("agent", "Fail2Ban/1.0.2")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let ticket = Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.7".into(),
            failures: 1,
            matches: vec!["a line".into()],
            time: 0,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        };
        let r = Plan::from_options(&options).unwrap().report(&ticket);
        assert_eq!(r.body, "server=ops%40example.org&apikey=k&service=sshd&ip=192.0.2.7&logs=a+line%0A&format=text");
        assert!(r.headers.contains(&("User-Agent".into(), "Fail2Ban/1.0.2".into())));
        assert!(Plan::from_options(&Options::new(vec![])).unwrap_err().contains("apikey"));
    }
}
