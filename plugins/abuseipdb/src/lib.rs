//! fail2ban's `abuseipdb` action as a component: each new ban is reported
//! to AbuseIPDB (`POST /api/v2/report` with the address, the categories
//! and the matched lines, at most 1000 characters of them, as the comment).
//! AbuseIPDB refuses a second report of an address within 15 minutes (422)
//! and limits the rate (429): both are logged, not retried, since a retry
//! would only be refused again. Unbans report nothing.
//!
//! It can only reach api.abuseipdb.com (its grant).

use wasmban_plugin_sdk::http::Request;
use wasmban_plugin_sdk::{Action, Options, Ticket, encode, http, log};

/// The settings of one jail's abuseipdb action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub key: String,
    pub categories: String,
    pub timeout_ms: u32,
}

/// How much of the matched lines goes in the comment.
const COMMENT_CHARS: usize = 1000;

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let key = options.get_or("abuseipdb_apikey", "").trim().to_string();
        if key.is_empty() || key.contains(['\r', '\n']) {
            return Err("abuseipdb_apikey is empty: set your AbuseIPDB API key (jail.local: action = \
                        %(action_)s\n abuseipdb[abuseipdb_apikey=KEY, abuseipdb_category=18,22])"
                .into());
        }
        let categories = options.get_or("abuseipdb_category", "").replace(' ', "");
        if categories.is_empty() || !categories.split(',').all(|c| c.parse::<u8>().is_ok()) {
            return Err(format!(
                "abuseipdb_category = {categories:?}: give AbuseIPDB's category numbers, such as 18,22 for SSH \
                 brute force"
            ));
        }
        let url = options.get_or("url", "https://api.abuseipdb.com/api/v2/report").trim().to_string();
        let timeout_ms = options.millis("timeout", 15_000)?;
        Ok(Plan { url, key, categories, timeout_ms })
    }

    /// The report of `ticket`.
    pub fn report(&self, ticket: &Ticket) -> Request {
        let matches = ticket.matches.join("\n");
        let comment: String = if matches.chars().count() > COMMENT_CHARS {
            matches.chars().take(COMMENT_CHARS).collect::<String>() + "\n..."
        } else {
            matches
        };
        Request {
            method: "POST".into(),
            url: self.url.clone(),
            headers: vec![
                ("Accept".into(), "application/json".into()),
                ("Key".into(), self.key.clone()),
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ],
            body: encode::form(&[("ip", &ticket.ip), ("categories", &self.categories), ("comment", &comment)]),
        }
    }
}

pub struct AbuseIpDb {
    plan: Plan,
}

impl Action for AbuseIpDb {
    fn new(options: Options) -> Result<Self, String> {
        Ok(AbuseIpDb { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        if wasmban_plugin_sdk::address::is_prefix(&ticket.ip) {
            log::info(&format!("{} is a prefix ban: not reported, as AbuseIPDB takes single addresses", ticket.ip));
            return Ok(());
        }
        let response = http::send(&self.plan.report(ticket), self.plan.timeout_ms)?;
        match response.status {
            200..=299 => Ok(()),
            422 | 429 => {
                log::warn(&format!(
                    "AbuseIPDB did not take the report of {} (HTTP {}): {}",
                    ticket.ip,
                    response.status,
                    response.body.chars().take(300).collect::<String>()
                ));
                Ok(())
            }
            status => Err(format!(
                "AbuseIPDB answered HTTP {status} to the report of {}: {}",
                ticket.ip,
                response.body.chars().take(300).collect::<String>()
            )),
        }
    }

    fn unban(&mut self, _ticket: &Ticket) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(AbuseIpDb);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn the_report_is_abuseipdbs() {
        let p = plan(&[("abuseipdb_apikey", "k3y"), ("abuseipdb_category", "18, 22")]).unwrap();
        let ticket = Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.7".into(),
            failures: 2,
            matches: vec!["Failed password for root".into(), "x".repeat(2000)],
            time: 0,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        };
        let r = p.report(&ticket);
        assert_eq!(r.url, "https://api.abuseipdb.com/api/v2/report");
        assert!(r.headers.contains(&("Key".into(), "k3y".into())));
        assert!(r.body.starts_with("ip=192.0.2.7&categories=18%2C22&comment=Failed+password+for+root%0Axxx"));
        assert!(r.body.ends_with("%0A..."));
    }

    #[test]
    fn a_missing_key_or_category_is_said_at_once() {
        assert!(plan(&[("abuseipdb_category", "18")]).unwrap_err().contains("abuseipdb_apikey"));
        assert!(plan(&[("abuseipdb_apikey", "k")]).unwrap_err().contains("abuseipdb_category"));
        assert!(plan(&[("abuseipdb_apikey", "k"), ("abuseipdb_category", "ssh")]).is_err());
    }
}
