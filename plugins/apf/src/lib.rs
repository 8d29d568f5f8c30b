//! fail2ban's `apf` action as a component: a ban is `apf --deny <ip>
//! "banned by Fail2Ban <name>"` (APF's deny list, with its comment), an
//! unban `apf --remove <ip>`. Prefix bans go in as APF's CIDR entries.
//!
//! It can only run apf (its grant), with an argv list.

use wasmban_plugin_sdk::{Action, Options, Ticket, address, firewall};

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// The program: `apf`, or its absolute path (also granted then).
    pub program: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let name = options.get_or("name", "default").trim().to_string();
        if name.contains(char::is_control) {
            return Err(format!("option `name` = {name:?}: one line, no control characters"));
        }
        let program = options.get_or("apf", "apf").trim().to_string();
        if program != "apf" && !program.starts_with('/') {
            return Err(format!("option `apf` = {program:?}: give apf's absolute path, or leave it out"));
        }
        Ok(Plan { name, program, timeout_ms: options.millis("timeout", 60_000)? })
    }

    pub fn deny(&self, ip: &str) -> Vec<String> {
        vec!["--deny".into(), ip.into(), format!("banned by Fail2Ban {}", self.name)]
    }

    pub fn remove(&self, ip: &str) -> Vec<String> {
        vec!["--remove".into(), ip.into()]
    }
}

pub struct Apf {
    plan: Plan,
}

impl Apf {
    fn apf(&self, args: Vec<String>) -> Result<(), String> {
        let out = firewall::run(&self.plan.program, &args, self.plan.timeout_ms)?;
        if out.status == 0 {
            Ok(())
        } else {
            Err(format!("`apf {}` exited with status {}: {}", args[0], out.status, out.stderr.trim()))
        }
    }
}

impl Action for Apf {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Apf { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        self.apf(self.plan.deny(&ticket.ip))
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        self.apf(self.plan.remove(&ticket.ip))
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Apf);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_fail2bans() {
        let p = Plan::from_options(&Options::new(vec![("name".into(), "sshd".into())])).unwrap();
        assert_eq!(p.deny("192.0.2.7"), ["--deny", "192.0.2.7", "banned by Fail2Ban sshd"]);
        assert_eq!(p.remove("2001:db8::/64"), ["--remove", "2001:db8::/64"]);
    }
}
