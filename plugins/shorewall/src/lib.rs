//! fail2ban's `shorewall` action as a component: a ban puts the address in
//! shorewall's dynamic blacklist (`shorewall reject IP`, `shorewall6` for
//! IPv6), an unban takes it out (`shorewall allow IP`). Shorewall keeps
//! the list across its own restarts (`shorewall save`), so the jail's
//! addresses are allowed again when it stops and blacklisted again from
//! the bans in force when it starts.
//!
//! shorewall exits 0 even when the rule could not be made (a blocktype
//! whose chain the configuration lacks), so what it prints is read too.
//!
//! It can only run `shorewall` and `shorewall6` with their blacklist
//! subcommands (its grant), with argv lists.

use std::collections::BTreeSet;

use wasmban_plugin_sdk::{Action, Options, Ticket, address, firewall};

/// The settings of one jail's shorewall action.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `blocktype`: drop, reject, logdrop or logreject.
    pub blocktype: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let blocktype = options.get_or("blocktype", "reject").trim().to_string();
        if !matches!(blocktype.as_str(), "drop" | "reject" | "logdrop" | "logreject") {
            return Err(format!("option `blocktype` = {blocktype:?}: expected drop, reject, logdrop or logreject"));
        }
        let timeout_ms = options.millis("timeout", 60_000)?;
        Ok(Plan { blocktype, timeout_ms })
    }

    /// The program and argv for `verb` (the blocktype, or `allow`) of `ip`.
    pub fn command(&self, verb: &str, ip: &str) -> (&'static str, Vec<String>) {
        let program = if ip.contains(':') { "shorewall6" } else { "shorewall" };
        (program, vec![verb.to_string(), ip.to_string()])
    }
}

/// Whether shorewall did what it was asked: it exits 0 when iptables
/// refused the rule, saying so on stderr, or when shorewall is not started.
fn done(out: &firewall::Output, allow: bool) -> bool {
    if out.status != 0 {
        return false;
    }
    let said = |word: &str| out.stdout.contains(word) || out.stderr.contains(word);
    // "already allowed (not dynamically blacklisted)": gone already.
    if allow && said("already allowed") {
        return true;
    }
    !(said("ERROR") || said("does not exist") || said("not started"))
}

pub struct Shorewall {
    plan: Plan,
    /// The addresses this instance blacklisted and has not allowed.
    applied: BTreeSet<String>,
}

impl Shorewall {
    fn run(&self, verb: &str, ip: &str) -> Result<(), String> {
        let (program, args) = self.plan.command(verb, ip);
        let out = firewall::run(program, &args, self.plan.timeout_ms)?;
        if done(&out, verb == "allow") {
            Ok(())
        } else {
            Err(format!(
                "`{program} {}` did not: exit status {}: {} {}",
                args.join(" "),
                out.status,
                out.stdout.trim(),
                out.stderr.trim()
            ))
        }
    }
}

impl Action for Shorewall {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Shorewall { plan: Plan::from_options(&options)?, applied: BTreeSet::new() })
    }

    fn stop(&mut self) -> Result<(), String> {
        let errors: Vec<String> =
            std::mem::take(&mut self.applied).iter().filter_map(|ip| self.run("allow", ip).err()).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        self.run(&self.plan.blocktype.clone(), &ticket.ip)?;
        self.applied.insert(ticket.ip.clone());
        Ok(())
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        self.run("allow", &ticket.ip)?;
        self.applied.remove(&ticket.ip);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Shorewall);

#[cfg(test)]
mod tests {
    use super::*;

    fn output(status: i32, stdout: &str, stderr: &str) -> firewall::Output {
        firewall::Output { status, stdout: stdout.into(), stderr: stderr.into() }
    }

    #[test]
    fn argv_is_fail2bans() {
        let plan = Plan::from_options(&Options::new(vec![])).unwrap();
        assert_eq!(plan.command("reject", "192.0.2.7"), ("shorewall", vec!["reject".into(), "192.0.2.7".into()]));
        assert_eq!(plan.command("allow", "2001:db8::7").0, "shorewall6");
        assert!(Plan::from_options(&Options::new(vec![("blocktype".into(), "clear".into())])).is_err());
    }

    #[test]
    fn what_shorewall_says_decides() {
        assert!(done(&output(0, "192.0.2.7 Dropped\n", ""), false));
        assert!(!done(&output(0, "", "iptables v1.8.9 (nf_tables): Chain 'reject' does not exist\n"), false));
        assert!(!done(&output(2, "", "   ERROR: Shorewall6 is not started\n"), false));
        assert!(done(&output(0, "", "   WARNING: 192.0.2.8 already allowed (not dynamically blacklisted)\n"), true));
        assert!(
            address::check_address_or_prefix("192.0.2.7").is_ok() && address::check_address_or_prefix("stop").is_err()
        );
    }
}
