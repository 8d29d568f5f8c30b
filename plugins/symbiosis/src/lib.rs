//! fail2ban's `symbiosis-blacklist-allports` action as a component: for
//! Bytemark Symbiosis hosts, each ban is a file `<ip>.auto` holding `all`
//! in Symbiosis's blacklist folder (so that the ban survives Symbiosis
//! rebuilding its firewall) and a rule at the top of its `blacklist` chain
//! (so that it holds at once).
//!
//! It can only change the files of the blacklist folder and run
//! `iptables` and `ip6tables` (its grant).

use std::collections::BTreeSet;

use wasmban_plugin_sdk::{Action, Options, Ticket, file, firewall};

/// The settings of one jail's symbiosis action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub folder: String,
    pub chain: String,
    pub blocktype: Vec<String>,
    pub timeout_ms: u32,
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let folder =
            options.get_or("blacklist_dir", "/etc/symbiosis/firewall/blacklist.d").trim_end_matches('/').to_string();
        if !folder.starts_with('/') {
            return Err(format!("option `blacklist_dir` = {folder:?}: expected an absolute path"));
        }
        let chain = options.get_or("chain", "blacklist").trim().to_string();
        if chain.is_empty()
            || chain.len() > 28
            || !chain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(format!("option `chain` = {chain:?}: expected an iptables chain name"));
        }
        let blocktype: Vec<String> =
            options.get_or("blocktype", "DROP").split_whitespace().map(str::to_string).collect();
        if blocktype.is_empty() {
            return Err("option `blocktype` is empty: give a target such as DROP".into());
        }
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan { folder, chain, blocktype, timeout_ms })
    }

    pub fn marker(&self, ip: &str) -> String {
        format!("{}/{ip}.auto", self.folder)
    }

    pub fn rule(&self, op: &str, ip: &str) -> Vec<String> {
        let mut a = argv(&["-w", op, &self.chain]);
        if op == "-I" {
            a.push("1".into());
        }
        a.extend(argv(&["-s", ip, "-j"]));
        a.extend(self.blocktype.iter().cloned());
        a
    }
}

fn program(ip: &str) -> &'static str {
    if ip.contains(':') { "ip6tables" } else { "iptables" }
}

/// An address: it names a file, so nothing else may pass.
fn checked_address(ip: &str) -> Result<(), String> {
    ip.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| format!("{ip:?} is not an IP address"))
}

pub struct Symbiosis {
    plan: Plan,
    applied: BTreeSet<String>,
}

impl Symbiosis {
    fn run(&self, ip: &str, args: &[String]) -> Result<firewall::Output, String> {
        firewall::run(program(ip), args, self.plan.timeout_ms)
    }

    /// Remove the ban's marker file and rule.
    fn lift(&self, ip: &str) -> Result<(), String> {
        file::remove(&self.plan.marker(ip))?;
        // A rule already gone is lifted (fail2ban: `|| :`).
        self.run(ip, &self.plan.rule("-D", ip))?;
        Ok(())
    }
}

impl Action for Symbiosis {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Symbiosis { plan: Plan::from_options(&options)?, applied: BTreeSet::new() })
    }

    /// The jail's bans go with it, as fail2ban lifts each ban of an action
    /// without a flush when the jail stops.
    fn stop(&mut self) -> Result<(), String> {
        let errors: Vec<String> =
            std::mem::take(&mut self.applied).iter().filter_map(|ip| self.lift(ip).err()).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// fail2ban's check: Symbiosis's chain is there.
    fn check(&mut self) -> Result<(), String> {
        let args = argv(&["-w", "-n", "-L", &self.plan.chain]);
        let out = firewall::run("iptables", &args, self.plan.timeout_ms)?;
        if out.status != 0 {
            return Err(format!(
                "iptables chain {} is missing (is Symbiosis's firewall up?): {}",
                self.plan.chain,
                out.stderr.trim()
            ));
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let ip = ticket.ip.as_str();
        checked_address(ip)?;
        file::write_lines(&self.plan.marker(ip), &["all".to_string()])?;
        if self.run(ip, &self.plan.rule("-C", ip))?.status != 0 {
            let args = self.plan.rule("-I", ip);
            let out = self.run(ip, &args)?;
            if out.status != 0 {
                return Err(format!(
                    "`{} {}` exited with status {}: {}",
                    program(ip),
                    args.join(" "),
                    out.status,
                    out.stderr.trim()
                ));
            }
        }
        self.applied.insert(ip.to_string());
        Ok(())
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let ip = ticket.ip.as_str();
        checked_address(ip)?;
        self.lift(ip)?;
        self.applied.remove(ip);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Symbiosis);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_rules_are_fail2bans() {
        let p = Plan::from_options(&Options::new(vec![])).unwrap();
        assert_eq!(p.marker("192.0.2.7"), "/etc/symbiosis/firewall/blacklist.d/192.0.2.7.auto");
        assert_eq!(p.rule("-I", "192.0.2.7").join(" "), "-w -I blacklist 1 -s 192.0.2.7 -j DROP");
        assert_eq!(p.rule("-D", "2001:db8::7").join(" "), "-w -D blacklist -s 2001:db8::7 -j DROP");
        assert!(checked_address("../../passwd").is_err());
    }
}
