//! fail2ban's `mynetwatchman` action as a component: each new ban is
//! reported to myNetWatchman's web report (`GET insertwebreport.asp` with
//! the agent's login, the attacker, the ports, the protocol's number, the
//! count and the time in UTC), and succeeds only when the answer says
//! `Attack Report Insert Successful`, as fail2ban's check does. Unbans
//! report nothing.
//!
//! It can only reach mynetwatchman.com (its grant).

use wasmban_plugin_sdk::http::Request;
use wasmban_plugin_sdk::{Action, Options, Ticket, address, http, log};

#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub login: String,
    pub password: String,
    /// This host's address, as the victim.
    pub victim: String,
    pub protocol: u8,
    pub port: u16,
    pub srcport: u16,
    pub agent: String,
    pub timeout_ms: u32,
}

/// Percent-encoding for a query value: everything but letters, digits and
/// `-_.~`, as fail2ban's perl one-liner does.
fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn port(key: &str, value: &str) -> Result<u16, String> {
    value.trim().parse().map_err(|_| format!("option `{key}` = {value:?}: expected a port number (0 for unknown)"))
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let login = options.get_or("mnwlogin", "").trim().to_string();
        let password = options.get_or("mnwpass", "").to_string();
        if login.is_empty() || password.is_empty() {
            return Err("mnwlogin or mnwpass is empty: set your myNetWatchman agent e-mail and password for the \
                        mynetwatchman action in jail.local"
                .into());
        }
        // fail2ban finds the victim address with a shell pipeline over
        // `ip addr show dev eth0`; a component has no shell, and eth0 is a
        // guess: the admin says which address.
        let victim = options.get_or("myip", "").trim().to_string();
        if victim.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "option `myip` = {victim:?}: give this host's public address (fail2ban's default runs a shell \
                 pipeline over eth0, which wasmban does not): myip = 203.0.113.5"
            ));
        }
        let protocol_name = options.get_or("protocol", "tcp");
        let protocol = address::protocol_number(protocol_name)
            .ok_or_else(|| format!("option `protocol` = {protocol_name:?}: expected tcp, udp, sctp or a number"))?;
        let agent = options.get_or("agent", "Fail2ban").trim().to_string();
        if agent.contains(['\r', '\n']) {
            return Err("option `agent` holds a line break".into());
        }
        Ok(Plan {
            url: options.get_or("mnwurl", "http://mynetwatchman.com/insertwebreport.asp").trim().to_string(),
            login,
            password,
            victim,
            protocol,
            // A jail's port list (`ssh,2222`) names no single port: 0.
            port: port("port", options.get_or("port", "0")).unwrap_or(0),
            srcport: port("srcport", options.get_or("srcport", "0"))?,
            agent,
            timeout_ms: options.millis("timeout", 60_000)?,
        })
    }

    pub fn report(&self, ticket: &Ticket) -> Request {
        let (y, mo, d, h, mi, s) = wasmban_plugin_sdk::time::utc_parts(ticket.time);
        let query = [
            ("AT", "2".to_string()),
            ("AV", "0".to_string()),
            ("AgentEmail", query_value(&self.login)),
            ("AgentPassword", query_value(&self.password)),
            ("AttackerIP", query_value(&ticket.ip)),
            ("SrcPort", self.srcport.to_string()),
            ("ProtocolID", self.protocol.to_string()),
            ("DestPort", self.port.to_string()),
            ("AttackCount", ticket.failures.to_string()),
            ("VictimIP", query_value(&self.victim)),
            // The `+` is the query's space, as fail2ban sends it.
            ("AttackDateTime", format!("{y:04}-{mo:02}-{d:02}+{h:02}:{mi:02}:{s:02}")),
        ];
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Request {
            method: "GET".into(),
            url: format!("{}?{}", self.url, query.join("&")),
            headers: vec![("User-Agent".into(), self.agent.clone())],
            body: String::new(),
        }
    }
}

pub struct MyNetWatchman {
    plan: Plan,
}

impl Action for MyNetWatchman {
    fn new(options: Options) -> Result<Self, String> {
        Ok(MyNetWatchman { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        if address::is_prefix(&ticket.ip) {
            log::info(&format!("{} is a prefix ban: not reported, as myNetWatchman takes single addresses", ticket.ip));
            return Ok(());
        }
        address::check_address_or_prefix(&ticket.ip)?;
        let response = http::send(&self.plan.report(ticket), self.plan.timeout_ms)?;
        if (200..300).contains(&response.status) && response.body.contains("Attack Report Insert Successful") {
            Ok(())
        } else {
            Err(format!(
                "myNetWatchman did not take the report of {} (HTTP {}): {}",
                ticket.ip,
                response.status,
                response.body.chars().take(300).collect::<String>()
            ))
        }
    }

    fn unban(&mut self, _ticket: &Ticket) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(MyNetWatchman);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn the_report_is_fail2bans_query() {
        let p =
            plan(&[("mnwlogin", "ops@example.org"), ("mnwpass", "p&ss w"), ("myip", "203.0.113.5"), ("port", "22")])
                .unwrap();
        let ticket = Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.7".into(),
            failures: 5,
            matches: vec![],
            time: 1_709_251_199,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        };
        let r = p.report(&ticket);
        assert_eq!(
            r.url,
            "http://mynetwatchman.com/insertwebreport.asp?AT=2&AV=0&AgentEmail=ops%40example.org&\
             AgentPassword=p%26ss%20w&AttackerIP=192.0.2.7&SrcPort=0&ProtocolID=6&DestPort=22&AttackCount=5&\
             VictimIP=203.0.113.5&AttackDateTime=2024-02-29+23:59:59"
        );
        assert_eq!(r.headers, [("User-Agent".to_string(), "Fail2ban".to_string())]);
    }

    #[test]
    fn what_fail2ban_computed_with_the_shell_is_asked_for() {
        let err = plan(&[("mnwlogin", "a"), ("mnwpass", "b"), ("myip", "`ip -4 addr show dev eth0 | ...`")]);
        assert!(err.unwrap_err().contains("`myip`"));
        assert!(plan(&[("myip", "203.0.113.5")]).unwrap_err().contains("mnwlogin"));
        assert!(plan(&[("mnwlogin", "a"), ("mnwpass", "b"), ("myip", "203.0.113.5"), ("protocol", "ipx")]).is_err());
        let ok = plan(&[("mnwlogin", "a"), ("mnwpass", "b"), ("myip", "203.0.113.5"), ("port", "ssh,2222")]).unwrap();
        assert_eq!(ok.port, 0);
    }
}
