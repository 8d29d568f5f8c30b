//! fail2ban's `route` action as a component: a banned address (or prefix)
//! gets a route of type `<blocktype>` (`unreachable`, `blackhole` or
//! `prohibit`), so the host answers it nothing whatever port it talks to,
//! without any firewall. A route already there counts as added, one gone as
//! deleted, and `check` puts back the routes of bans that lost theirs
//! (routes of the same type that are not the jail's are the admin's own,
//! and are left alone).
//!
//! It can only run `ip route` (its grant: `ip` with no other subcommand),
//! with argv lists.

use std::collections::BTreeSet;

use wasmban_plugin_sdk::{Action, Options, Ticket, firewall, log};

/// The settings of one jail's route action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub blocktype: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let blocktype = options.get_or("blocktype", "unreachable").trim().to_string();
        if !matches!(blocktype.as_str(), "unreachable" | "blackhole" | "prohibit") {
            return Err(format!("option `blocktype` = {blocktype:?}: expected unreachable, blackhole or prohibit"));
        }
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan { blocktype, timeout_ms })
    }

    /// `ip` argv for `verb` (`add`, `del`) of the route for `target`.
    pub fn route(&self, verb: &str, target: &str) -> Vec<String> {
        ["route", verb, &self.blocktype, target].iter().map(|s| s.to_string()).collect()
    }

    /// `ip` argv listing the routes of the jail's type in one family.
    pub fn list(&self, family: &str) -> Vec<String> {
        [family, "route", "show", "type", &self.blocktype].iter().map(|s| s.to_string()).collect()
    }
}

/// A route target: an address, or a prefix whose address has no host bits
/// (the kernel refuses `192.0.2.7/24`), in the form `ip route show` prints
/// (a single address without its `/32` or `/128`).
fn route_target(id: &str) -> Result<String, String> {
    let bad = || format!("{id:?} is not an IP address or prefix; routes are made for addresses only");
    let Some((addr, len)) = id.split_once('/') else {
        return id.parse::<std::net::IpAddr>().map(|ip| ip.to_string()).map_err(|_| bad());
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
    if u32::from(len) > bits {
        return Err(bad());
    }
    if u32::from(len) == bits {
        return Ok(ip.to_string());
    }
    let network = match ip {
        std::net::IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            std::net::IpAddr::V4((u32::from(v4) & mask).into())
        }
        std::net::IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            std::net::IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Ok(format!("{network}/{len}"))
}

/// What `ip route show type T` lists: each route's target.
fn listed_targets(listing: &str) -> BTreeSet<String> {
    listing.lines().filter_map(|line| line.split_whitespace().nth(1)).map(str::to_string).collect()
}

pub struct Route {
    plan: Plan,
    /// The targets this instance routed and has not lifted.
    applied: BTreeSet<String>,
}

impl Route {
    fn ip(&self, args: &[String]) -> Result<firewall::Output, String> {
        firewall::run("ip", args, self.plan.timeout_ms)
    }

    fn change(&self, verb: &str, target: &str, done_already: &str) -> Result<(), String> {
        let args = self.plan.route(verb, target);
        let out = self.ip(&args)?;
        // `File exists` on add and `No such process` on delete: the kernel
        // is already as the ban wants it.
        if out.status == 0 || out.stderr.contains(done_already) {
            Ok(())
        } else {
            Err(format!("`ip {}` exited with status {}: {}", args.join(" "), out.status, out.stderr.trim()))
        }
    }
}

impl Action for Route {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Route { plan: Plan::from_options(&options)?, applied: BTreeSet::new() })
    }

    /// The jail's routes go with it, as fail2ban lifts each ban of an
    /// action that has no flush when the jail stops.
    fn stop(&mut self) -> Result<(), String> {
        let errors: Vec<String> = std::mem::take(&mut self.applied)
            .iter()
            .filter_map(|target| self.change("del", target, "No such process").err())
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    fn check(&mut self) -> Result<(), String> {
        let mut present = BTreeSet::new();
        for family in ["-4", "-6"] {
            let args = self.plan.list(family);
            let out = self.ip(&args)?;
            if out.status != 0 {
                return Err(format!(
                    "`ip {}` exited with status {}: {}",
                    args.join(" "),
                    out.status,
                    out.stderr.trim()
                ));
            }
            present.extend(listed_targets(&out.stdout));
        }
        let missing: Vec<String> = self.applied.difference(&present).cloned().collect();
        for target in &missing {
            self.change("add", target, "File exists")?;
        }
        if !missing.is_empty() {
            log::warn(&format!(
                "{} {} route(s) had gone, added again: {}",
                missing.len(),
                self.plan.blocktype,
                missing.join(", ")
            ));
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let target = route_target(&ticket.ip)?;
        self.change("add", &target, "File exists")?;
        self.applied.insert(target);
        Ok(())
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let target = route_target(&ticket.ip)?;
        self.change("del", &target, "No such process")?;
        self.applied.remove(&target);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Route);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_addresses_or_clean_prefixes() {
        assert_eq!(route_target("192.0.2.7").unwrap(), "192.0.2.7");
        assert_eq!(route_target("192.0.2.7/32").unwrap(), "192.0.2.7");
        assert_eq!(route_target("192.0.2.7/24").unwrap(), "192.0.2.0/24");
        assert_eq!(route_target("2001:db8:1:2:3::9/64").unwrap(), "2001:db8:1:2::/64");
        assert_eq!(route_target("2001:DB8::1").unwrap(), "2001:db8::1");
        for bad in ["-batch", "192.0.2.7/33", "192.0.2.7 table 5", "netns", "::/x"] {
            assert!(route_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn argv_is_fail2bans() {
        let plan = Plan::from_options(&Options::new(vec![])).unwrap();
        assert_eq!(plan.route("add", "192.0.2.7").join(" "), "route add unreachable 192.0.2.7");
        let plan = Plan::from_options(&Options::new(vec![("blocktype".into(), "blackhole".into())])).unwrap();
        assert_eq!(plan.list("-6").join(" "), "-6 route show type blackhole");
        assert!(Plan::from_options(&Options::new(vec![("blocktype".into(), "via 10.0.0.1".into())])).is_err());
    }

    #[test]
    fn listings_give_their_targets() {
        let listing = "unreachable 192.0.2.7 \\nunreachable 198.51.100.0/24 \\n";
        let targets = listed_targets(&listing.replace("\\n", "\n"));
        assert!(targets.contains("192.0.2.7") && targets.contains("198.51.100.0/24"));
    }
}
