//! fail2ban's `nsupdate` action as a component: a ban publishes a TXT
//! record for the address in a DNS blocklist zone (`7.2.0.192.<domain>`,
//! IPv6 by reversed nibbles), an unban deletes it, through `nsupdate -k
//! <keyfile>` with the update on its standard input. A record already
//! there (the prerequisite fails) counts as published.
//!
//! It can only run nsupdate (its grant), with an argv list.

use wasmban_plugin_sdk::{Action, Options, Ticket, firewall};

#[derive(Debug, Clone)]
pub struct Plan {
    pub domain: String,
    pub ttl: u32,
    pub rdata: String,
    pub command: String,
    pub keyfile: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let domain = options.get_or("domain", "").trim().trim_end_matches('.').to_string();
        if domain.is_empty() || !domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(format!("domain = {domain:?}: give the blocklist zone, such as bl.example.org"));
        }
        let keyfile = options.get_or("keyfile", "").trim().to_string();
        if !keyfile.starts_with('/') {
            return Err(format!("keyfile = {keyfile:?}: give the absolute path of the TSIG key nsupdate signs with"));
        }
        let rdata = options.get_or("rdata", "Your IP has been banned").to_string();
        if rdata.contains(['"', '\\', '\n', '\r']) {
            return Err(format!("rdata = {rdata:?}: no quotes, backslashes or line breaks"));
        }
        let ttl = options.get_or("ttl", "60").trim();
        let ttl = ttl.parse::<u32>().map_err(|_| format!("ttl = {ttl:?}: expected seconds"))?;
        let command = options.get_or("nsupdatecmd", "/usr/bin/nsupdate").trim().to_string();
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan { domain, ttl, rdata, command, keyfile, timeout_ms })
    }

    /// The record's name: the address reversed under the zone.
    pub fn name(&self, ip: &str) -> Result<String, String> {
        let reversed = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => {
                v4.octets().iter().rev().map(|o| o.to_string()).collect::<Vec<_>>().join(".")
            }
            Ok(std::net::IpAddr::V6(v6)) => {
                let hex: String = v6.octets().iter().map(|o| format!("{o:02x}")).collect();
                hex.chars().rev().map(|c| c.to_string()).collect::<Vec<_>>().join(".")
            }
            Err(_) => return Err(format!("{ip:?} is not an IP address")),
        };
        Ok(format!("{reversed}.{}", self.domain))
    }

    pub fn add(&self, ip: &str) -> Result<String, String> {
        let name = self.name(ip)?;
        Ok(format!("prereq nxrrset {name} TXT\nupdate add {name} {} IN TXT \"{}\"\nsend\n", self.ttl, self.rdata))
    }

    pub fn delete(&self, ip: &str) -> Result<String, String> {
        Ok(format!("update delete {}\nsend\n", self.name(ip)?))
    }
}

pub struct NsUpdate {
    plan: Plan,
}

impl NsUpdate {
    fn run(&self, script: &str, present_is_done: bool) -> Result<(), String> {
        let args = vec!["-k".to_string(), self.plan.keyfile.clone()];
        let out = firewall::run_with_input(&self.plan.command, &args, script, self.plan.timeout_ms)?;
        if out.status == 0 || (present_is_done && out.stderr.contains("YXRRSET")) {
            Ok(())
        } else {
            Err(format!("nsupdate exited with status {}: {}{}", out.status, out.stdout.trim(), out.stderr.trim()))
        }
    }
}

impl Action for NsUpdate {
    fn new(options: Options) -> Result<Self, String> {
        Ok(NsUpdate { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.run(&self.plan.add(&ticket.ip)?, true)
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.run(&self.plan.delete(&ticket.ip)?, false)
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(NsUpdate);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn updates_are_fail2bans() {
        let p = plan(&[("domain", "bl.example.org"), ("keyfile", "/etc/bind/f2b.key")]).unwrap();
        assert_eq!(
            p.add("192.0.2.7").unwrap(),
            "prereq nxrrset 7.2.0.192.bl.example.org TXT\nupdate add 7.2.0.192.bl.example.org 60 IN TXT \"Your IP has \
             been banned\"\nsend\n"
        );
        assert_eq!(p.delete("192.0.2.7").unwrap(), "update delete 7.2.0.192.bl.example.org\nsend\n");
        assert!(
            p.name("2001:db8::1").unwrap().starts_with("1.0.0.0.")
                && p.name("2001:db8::1").unwrap().ends_with(".8.b.d.0.1.0.0.2.bl.example.org")
        );
        assert!(p.name("192.0.2.7\nsend").is_err());
    }

    #[test]
    fn bad_options_are_said_at_once() {
        assert!(plan(&[("keyfile", "/k")]).unwrap_err().contains("domain"));
        assert!(plan(&[("domain", "bl.example.org")]).unwrap_err().contains("keyfile"));
        assert!(plan(&[("domain", "bl.example.org"), ("keyfile", "/k"), ("rdata", "x\"\nupdate delete .")]).is_err());
    }
}
