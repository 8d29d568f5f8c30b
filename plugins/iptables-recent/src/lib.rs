//! fail2ban's `iptables-xt_recent-echo` action as a component: one rule in
//! `<chain>` (`-m recent --update --seconds 3600 --name f2b-<name> -j
//! <blocktype>`) and a ban is an address written to the kernel's list
//! (`+IP` to /proc/net/xt_recent/f2b-<name>, `-IP` to lift it, `/` to
//! empty it). The list holds up to the kernel's `ip_list_tot` addresses
//! (100 by default) and matches an address while it keeps sending within
//! `seconds`; IPv6 has a list of its own (`f2b-<name>6`) under ip6tables.
//!
//! It can only run `iptables` and `ip6tables`, and write the files of
//! /proc/net/xt_recent (its grant).

use std::collections::BTreeSet;

use wasmban_plugin_sdk::{Action, Options, Ticket, file, firewall, log};

const LISTS: &str = "/proc/net/xt_recent";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: &str) -> Family {
        if ip.contains(':') { Family::V6 } else { Family::V4 }
    }
    fn program(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
    const BOTH: [Family; 2] = [Family::V4, Family::V6];
}

/// The settings of one jail's xt_recent action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub chain: String,
    pub seconds: u32,
    blocktype: [Vec<String>; 2],
    pub timeout_ms: u32,
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn plain(option: &str, value: &str, longest: usize) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= longest
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!("option `{option}` = {value:?}: 1 to {longest} letters, digits, `-`, `_` or `.`"))
    }
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        // xt_recent names hold at most 200 characters; iptables' chain 28.
        let name = plain("name", options.get_or("name", "default"), 190)?;
        let chain = plain("chain", options.get_or("chain", "INPUT"), 28)?;
        let seconds = options
            .get_or("seconds", "3600")
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| format!("option `seconds` = {:?}: expected seconds", options.get_or("seconds", "")))?;
        let v4: Vec<String> = options
            .get_or("blocktype", "REJECT --reject-with icmp-port-unreachable")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if v4.is_empty() {
            return Err("option `blocktype` is empty: give a target such as REJECT or DROP".into());
        }
        let v6 = match options.get("blocktype?family=inet6").or(options.get("blocktype6")) {
            Some(v) => v.split_whitespace().map(str::to_string).collect(),
            None => v4.iter().map(|w| w.replace("icmp-port-unreachable", "icmp6-port-unreachable")).collect(),
        };
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan { name, chain, seconds, blocktype: [v4, v6], timeout_ms })
    }

    /// The family's list: fail2ban's `<iptname>`.
    pub fn list(&self, family: Family) -> String {
        match family {
            Family::V4 => format!("f2b-{}", self.name),
            Family::V6 => format!("f2b-{}6", self.name),
        }
    }

    /// The list's control file.
    pub fn list_file(&self, family: Family) -> String {
        format!("{LISTS}/{}", self.list(family))
    }

    /// The rule's argv for `op` (`-I`, `-D`, `-C`).
    pub fn rule(&self, family: Family, op: &str) -> Vec<String> {
        let mut a = argv(&["-w", op, &self.chain, "-m", "recent", "--update", "--seconds"]);
        a.push(self.seconds.to_string());
        a.extend(argv(&["--name", &self.list(family), "-j"]));
        a.extend(self.blocktype[family as usize].iter().cloned());
        a
    }
}

/// The addresses a list holds, from its control file (`src=IP ttl: ...`).
fn listed(lines: &[String]) -> BTreeSet<String> {
    lines.iter().filter_map(|l| l.strip_prefix("src=")?.split_whitespace().next().map(str::to_string)).collect()
}

pub struct IptablesRecent {
    plan: Plan,
    started: [bool; 2],
    applied: BTreeSet<String>,
}

impl IptablesRecent {
    fn run(&self, family: Family, args: &[String]) -> Result<firewall::Output, String> {
        firewall::run(family.program(), args, self.plan.timeout_ms)
    }

    fn ensure_rule(&self, family: Family) -> Result<bool, String> {
        if self.run(family, &self.plan.rule(family, "-C"))?.status == 0 {
            return Ok(false);
        }
        let args = self.plan.rule(family, "-I");
        let out = self.run(family, &args)?;
        if out.status != 0 {
            return Err(format!(
                "`{} {}` exited with status {}: {}",
                family.program(),
                args.join(" "),
                out.status,
                out.stderr.trim()
            ));
        }
        Ok(true)
    }

    fn start_family(&mut self, family: Family) -> Result<(), String> {
        self.ensure_rule(family)?;
        // The list outlives the rule's removal until the module unloads:
        // what an earlier run left is emptied; the daemon adds the live bans.
        file::write_control(&self.plan.list_file(family), "/\n")?;
        self.started[family as usize] = true;
        Ok(())
    }

    fn write(&mut self, ip: &str, sign: char) -> Result<(), String> {
        let family = Family::of(ip);
        if !self.started[family as usize] {
            if sign == '-' {
                return Ok(());
            }
            self.start_family(family)?;
        }
        file::write_control(&self.plan.list_file(family), &format!("{sign}{ip}\n"))
    }
}

/// Addresses only: the list takes nothing else.
fn checked_address(ip: &str) -> Result<(), String> {
    ip.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{ip:?} is not an IP address; xt_recent lists hold addresses"))
}

impl Action for IptablesRecent {
    fn new(options: Options) -> Result<Self, String> {
        Ok(IptablesRecent { plan: Plan::from_options(&options)?, started: [false; 2], applied: BTreeSet::new() })
    }

    fn start(&mut self) -> Result<(), String> {
        self.start_family(Family::V4)
    }

    fn stop(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for family in Family::BOTH {
            if !self.started[family as usize] {
                continue;
            }
            errors.extend(file::write_control(&self.plan.list_file(family), "/\n").err());
            let args = self.plan.rule(family, "-D");
            match self.run(family, &args) {
                Ok(out) if out.status != 0 => {
                    errors.push(format!("`{} {}`: {}", family.program(), args.join(" "), out.stderr.trim()))
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
            self.started[family as usize] = false;
        }
        self.applied.clear();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    fn check(&mut self) -> Result<(), String> {
        for family in Family::BOTH {
            if !self.started[family as usize] {
                continue;
            }
            if self.ensure_rule(family)? {
                log::warn(&format!(
                    "the {} rule of list {} was missing, inserted again",
                    family.program(),
                    self.plan.list(family)
                ));
            }
            let present = listed(&file::read_lines(&self.plan.list_file(family))?);
            let missing: Vec<String> =
                self.applied.iter().filter(|ip| Family::of(ip) == family && !present.contains(*ip)).cloned().collect();
            for ip in &missing {
                self.write(ip, '+')?;
            }
            if !missing.is_empty() {
                log::warn(&format!(
                    "list {} had lost {} ban(s), added again: {}",
                    self.plan.list(family),
                    missing.len(),
                    missing.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        checked_address(&ticket.ip)?;
        self.write(&ticket.ip, '+')?;
        self.applied.insert(ticket.ip.clone());
        Ok(())
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        checked_address(&ticket.ip)?;
        self.write(&ticket.ip, '-')?;
        self.applied.remove(&ticket.ip);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(IptablesRecent);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn the_rule_and_lists_are_fail2bans() {
        let p = plan(&[("name", "sshd")]).unwrap();
        assert_eq!(
            p.rule(Family::V4, "-I").join(" "),
            "-w -I INPUT -m recent --update --seconds 3600 --name f2b-sshd -j REJECT --reject-with icmp-port-unreachable"
        );
        assert!(
            p.rule(Family::V6, "-C")
                .join(" ")
                .ends_with("--name f2b-sshd6 -j REJECT --reject-with icmp6-port-unreachable")
        );
        assert_eq!(p.list_file(Family::V6), "/proc/net/xt_recent/f2b-sshd6");
        assert!(plan(&[("name", "../../etc")]).unwrap_err().contains("`name`"));
        assert!(plan(&[("seconds", "0")]).unwrap_err().contains("`seconds`"));
    }

    #[test]
    fn lists_are_read_from_the_control_file() {
        let lines = vec!["src=192.0.2.7 ttl: 0 last_seen: 4301584464 oldest_pkt: 1 4301584464".to_string()];
        assert!(listed(&lines).contains("192.0.2.7"));
        assert!(checked_address("192.0.2.7\n/").is_err());
    }
}
