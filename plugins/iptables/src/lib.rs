//! fail2ban's iptables action as a component: a chain `f2b-<name>` that ends
//! in RETURN, a jump to it from `<chain>` for the jail's protocol and ports,
//! and one rule per banned address at the top of that chain. IPv6 addresses
//! go to ip6tables, whose chain is built the first time it is needed.
//!
//! It can only run `iptables` and `ip6tables` (its grant), with argv lists.

use std::collections::BTreeSet;

use wasmban_plugin_sdk::{Action, Options, Ticket, firewall, log};

/// Which packets the jump rule sends to the jail's chain.
#[derive(Debug, Clone, PartialEq)]
pub enum PortMatch {
    /// `-m multiport --dports 22,2222`
    Multiport(String),
    /// Every port of the protocol.
    AllPorts,
    /// `--dport 22`
    OnePort(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn program(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
    fn restore_program(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }
    fn of(ip: &str) -> Family {
        if ip.contains(':') { Family::V6 } else { Family::V4 }
    }
    const BOTH: [Family; 2] = [Family::V4, Family::V6];
}

/// The settings of one jail's iptables action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// `chain`: where the jump rules go; fail2ban 1.1 takes a
    /// comma-separated list (`INPUT,FORWARD`, `DOCKER-USER`).
    pub chains: Vec<String>,
    /// `protocol`: one jump rule per protocol (fail2ban 1.1: `tcp,udp`).
    pub protocols: Vec<String>,
    pub ports: PortMatch,
    pub blocktype: Vec<String>,
    pub blocktype6: Vec<String>,
    pub returntype: String,
    pub timeout_ms: u32,
    /// `pre-rule`: match words put before the jump rule's own
    /// (fail2ban's iptables-new: `-m state --state NEW`).
    pub pre_rule: Vec<String>,
    /// `log = yes` (fail2ban's iptables-multiport-log): banned packets go
    /// through a chain `f2b-<name>-log` that logs them, rate-limited, and
    /// then applies the blocktype.
    pub log: bool,
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_string).collect()
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Chain names are limited to 28 characters by the kernel; jail names are
/// admin-chosen, so check them here with a message that names the option.
fn valid_chain_name(option: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 28 {
        return Err(format!("option `{option}` = {value:?}: an iptables chain name must be 1 to 28 characters"));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("option `{option}` = {value:?}: character {bad:?} is not allowed in a chain name"));
    }
    Ok(())
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let name = options.get_or("name", "default").to_string();
        let list = |key: &str, default: &str| -> Vec<String> {
            options.get_or(key, default).split([',', ' ']).filter(|w| !w.is_empty()).map(str::to_string).collect()
        };
        let chains = list("chain", "INPUT");
        let protocols = list("protocol", "tcp");
        let port = options.get_or("port", "ssh").replace(' ', "");
        let ports = match options.get_or("type", "multiport") {
            "multiport" => PortMatch::Multiport(port),
            "allports" => PortMatch::AllPorts,
            "oneport" => PortMatch::OnePort(port),
            other => {
                return Err(format!("option `type` = {other:?}: expected multiport, allports or oneport"));
            }
        };
        let log = matches!(options.get_or("log", "no"), "yes" | "true" | "1" | "on");
        valid_chain_name("name", &format!("f2b-{name}{}", if log { "-log" } else { "" }))?;
        if chains.is_empty() {
            return Err("option `chain` is empty: give a chain such as INPUT (or several: INPUT,FORWARD)".into());
        }
        for chain in &chains {
            valid_chain_name("chain", chain)?;
        }
        if protocols.is_empty() {
            return Err("option `protocol` is empty: give tcp, udp, sctp, udplite or all (or several: tcp,udp)".into());
        }
        if let Some(protocol) =
            protocols.iter().find(|p| !matches!(p.as_str(), "tcp" | "udp" | "sctp" | "udplite" | "all"))
        {
            return Err(format!("option `protocol` = {protocol:?}: expected tcp, udp, sctp, udplite or all"));
        }
        let blocktype = words(options.get_or("blocktype", "REJECT --reject-with icmp-port-unreachable"));
        let blocktype6 = match options.get("blocktype6") {
            Some(v) => words(v),
            None => blocktype
                .iter()
                .map(|w| if w == "icmp-port-unreachable" { "icmp6-port-unreachable".to_string() } else { w.clone() })
                .collect(),
        };
        if blocktype.is_empty() {
            return Err("option `blocktype` is empty: give a target such as REJECT or DROP".into());
        }
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan {
            name,
            chains,
            protocols,
            ports,
            blocktype,
            blocktype6,
            returntype: options.get_or("returntype", "RETURN").to_string(),
            timeout_ms,
            pre_rule: words(&options.get_or("pre-rule", "").replace("<sp>", " ")),
            log,
        })
    }

    fn jail_chain(&self) -> String {
        format!("f2b-{}", self.name)
    }

    fn log_chain(&self) -> String {
        format!("f2b-{}-log", self.name)
    }

    /// The match part of a jump rule: `-p tcp -m multiport --dports 22`.
    fn jump_match(&self, protocol: &str) -> Vec<String> {
        let mut m = self.pre_rule.clone();
        m.extend(["-p".to_string(), protocol.to_string()]);
        match &self.ports {
            PortMatch::Multiport(p) => m.extend(argv(&["-m", "multiport", "--dports", p])),
            PortMatch::AllPorts => {}
            PortMatch::OnePort(p) => m.extend(argv(&["--dport", p])),
        }
        m
    }

    /// The jump rules, one per chain and protocol, for iptables' `op`.
    fn jumps(&self, op: &str) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for chain in &self.chains {
            for protocol in &self.protocols {
                let mut a = argv(&["-w", op, chain]);
                a.extend(self.jump_match(protocol));
                a.extend(argv(&["-j", &self.jail_chain()]));
                all.push(a);
            }
        }
        all
    }

    /// The log chain's rules (fail2ban's iptables-multiport-log): a
    /// rate-limited LOG whose prefix is the jail's chain (at most 23
    /// characters, as fail2ban cuts it), then the blocktype.
    fn log_rules(&self, family: Family) -> [Vec<String>; 2] {
        let l = self.log_chain();
        let prefix: String = self.jail_chain().chars().take(23).collect();
        let mut log = argv(&["-w", "-A", &l, "-j", "LOG", "--log-prefix"]);
        log.push(format!("{prefix}:DROP "));
        log.extend(argv(&["--log-level", "warning", "-m", "limit", "--limit", "6/m", "--limit-burst", "2"]));
        let mut block = argv(&["-w", "-A", &l, "-j"]);
        block.extend(self.blocktype_of(family).iter().cloned());
        [log, block]
    }

    /// Commands that build the structure, in order.
    pub fn start(&self, family: Family) -> Vec<Vec<String>> {
        let c = self.jail_chain();
        let mut steps = vec![argv(&["-w", "-N", &c]), argv(&["-w", "-A", &c, "-j", &self.returntype])];
        if self.log {
            steps.push(argv(&["-w", "-N", &self.log_chain()]));
            steps.extend(self.log_rules(family));
        }
        steps.extend(self.jumps("-I"));
        steps
    }

    /// Commands that remove the structure, in order.
    pub fn stop(&self) -> Vec<Vec<String>> {
        let c = self.jail_chain();
        let mut steps = self.jumps("-D");
        steps.extend([argv(&["-w", "-F", &c]), argv(&["-w", "-X", &c])]);
        if self.log {
            let l = self.log_chain();
            steps.extend([argv(&["-w", "-F", &l]), argv(&["-w", "-X", &l])]);
        }
        steps
    }

    /// The commands that succeed only while each jump rule is in place.
    pub fn check_jumps(&self) -> Vec<Vec<String>> {
        self.jumps("-C")
    }

    /// The commands that succeed only while the chain ends in RETURN (and
    /// the log chain, when there is one, blocks).
    pub fn check_return(&self, family: Family) -> Vec<Vec<String>> {
        let mut checks = vec![argv(&["-w", "-C", &self.jail_chain(), "-j", &self.returntype])];
        if self.log {
            let [_, mut block] = self.log_rules(family);
            block[1] = "-C".into();
            checks.push(block);
        }
        checks
    }

    fn blocktype_of(&self, family: Family) -> &[String] {
        match family {
            Family::V4 => &self.blocktype,
            Family::V6 => &self.blocktype6,
        }
    }

    /// Where a ban rule sends the address's packets.
    fn block(&self, family: Family) -> Vec<String> {
        if self.log { vec![self.log_chain()] } else { self.blocktype_of(family).to_vec() }
    }

    pub fn ban(&self, ip: &str) -> Vec<String> {
        let mut a = argv(&["-w", "-I", &self.jail_chain(), "1", "-s", ip, "-j"]);
        a.extend(self.block(Family::of(ip)));
        a
    }

    pub fn unban(&self, ip: &str) -> Vec<String> {
        let mut a = argv(&["-w", "-D", &self.jail_chain(), "-s", ip, "-j"]);
        a.extend(self.block(Family::of(ip)));
        a
    }

    pub fn check_ban(&self, ip: &str) -> Vec<String> {
        let mut a = argv(&["-w", "-C", &self.jail_chain(), "-s", ip, "-j"]);
        a.extend(self.block(Family::of(ip)));
        a
    }
}

/// An address as the firewall must see it: IPv4 or IPv6, nothing else, so
/// that no id a filter produced can smuggle an option into the argv.
fn checked_address(ip: &str) -> Result<&str, String> {
    if ip.parse::<std::net::IpAddr>().is_ok() {
        return Ok(ip);
    }
    // CIDR ranges are accepted when the prefix is a valid length.
    if let Some((addr, len)) = ip.split_once('/')
        && let (Ok(a), Ok(l)) = (addr.parse::<std::net::IpAddr>(), len.parse::<u8>())
        && l <= if a.is_ipv4() { 32 } else { 128 }
    {
        return Ok(ip);
    }
    Err(format!("{ip:?} is not an IP address or CIDR range; iptables can only ban addresses"))
}

pub struct Iptables {
    plan: Plan,
    /// Which families' structures this instance built.
    started: [bool; 2],
    /// The addresses this instance banned and has not lifted: what the
    /// chain must hold, as `check` compares it with what it does hold.
    applied: BTreeSet<String>,
}

impl Iptables {
    fn run(&self, family: Family, args: &[String]) -> Result<firewall::Output, String> {
        firewall::run(family.program(), args, self.plan.timeout_ms)
    }

    /// Run `rules` (argv of -I/-D commands) as one `iptables-restore
    /// --noflush` transaction of the filter table: all of them, or none.
    fn restore(&self, family: Family, rules: &[Vec<String>]) -> Result<(), String> {
        let mut script = String::from("*filter\n");
        for rule in rules {
            // The restore format splits on white space: a word holding any
            // (or a quote) goes through the one-at-a-time path instead.
            let words: Vec<&String> = rule.iter().filter(|w| w.as_str() != "-w").collect();
            if words.iter().any(|w| w.is_empty() || w.contains(|c: char| c.is_whitespace() || "\"'#".contains(c))) {
                return Err("a rule word holds white space or a quote".into());
            }
            script.push_str(&words.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(" "));
            script.push('\n');
        }
        script.push_str("COMMIT\n");
        let program = family.restore_program();
        let args = vec!["-w".to_string(), "--noflush".to_string()];
        let out = firewall::run_with_input(program, &args, &script, self.plan.timeout_ms)?;
        if out.status == 0 {
            Ok(())
        } else {
            let why = format!("`{program} --noflush` exited with status {}: {}", out.status, out.stderr.trim());
            log::info(&format!("{why}; applying the {} rule(s) one at a time", rules.len()));
            Err(why)
        }
    }

    fn run_ok(&self, family: Family, args: &[String]) -> Result<(), String> {
        let out = self.run(family, args)?;
        if out.status == 0 { Ok(()) } else { Err(exit_error(family, args, &out)) }
    }

    fn start_family(&mut self, family: Family) -> Result<(), String> {
        let steps = self.plan.start(family);
        let Some((create, rest)) = steps.split_first() else { return Ok(()) };
        if self.run(family, create)?.status != 0 {
            // The chain is there already: left by a run that could not stop
            // (kill -9, a crash), with rules for bans that may have ended.
            // Remove it and build afresh; the daemon re-applies live bans.
            log::warn(&format!(
                "{} chain f2b-{} already exists (left by an earlier run); rebuilding it",
                family.program(),
                self.plan.name
            ));
            for args in self.plan.stop() {
                let _ = self.run(family, &args);
            }
            self.run_ok(family, create)?;
        }
        for args in rest {
            self.run_ok(family, args)?;
        }
        self.started[family as usize] = true;
        Ok(())
    }

    fn ensure_started(&mut self, family: Family) -> Result<(), String> {
        if !self.started[family as usize] {
            self.start_family(family)?;
        }
        Ok(())
    }
}

/// What a firewall command that failed says, for the daemon log.
fn exit_error(family: Family, args: &[String], out: &firewall::Output) -> String {
    format!("`{} {}` exited with status {}: {}", family.program(), args.join(" "), out.status, out.stderr.trim())
}

/// At most ten addresses, for a log line.
fn shown(ips: &[&String]) -> String {
    let mut text = ips.iter().take(10).map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if ips.len() > 10 {
        text.push_str(&format!(" and {} more", ips.len() - 10));
    }
    text
}

/// The ways a listed source (`192.0.2.7/32`) may have been given: as
/// listed, and as the bare address a single-host prefix stands for.
fn source_forms(listed: &str) -> [&str; 2] {
    [listed, listed.strip_suffix("/32").or_else(|| listed.strip_suffix("/128")).unwrap_or(listed)]
}

/// Every form of every listed source, to look addresses up in: a chain
/// holds thousands of rules on a busy host, so no scan per address.
fn source_set<'a>(listed: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    listed.into_iter().flat_map(|l| source_forms(l).map(str::to_string)).collect()
}

impl Iptables {
    /// Make the chain's ban rules of `family` exactly the applied set.
    fn reconcile_bans(&mut self, family: Family) -> Result<(), String> {
        let listed = self.listed_rules(family)?;
        let wanted: Vec<String> = self.applied.iter().filter(|ip| Family::of(ip) == family).cloned().collect();
        let present = source_set(listed.iter().map(|(l, _)| l));
        let missing: Vec<&String> = wanted.iter().filter(|ip| !present.contains(ip.as_str())).collect();
        let extra: Vec<&(String, Vec<String>)> =
            listed.iter().filter(|(l, _)| !source_forms(l).iter().any(|form| self.applied.contains(*form))).collect();
        for ip in &missing {
            self.run_ok(family, &self.plan.ban(ip))?;
        }
        for (_, delete) in &extra {
            self.run_ok(family, delete)?;
        }
        let extra: Vec<&String> = extra.iter().map(|(source, _)| source).collect();
        if !missing.is_empty() {
            log::warn(&format!(
                "{} chain f2b-{} had lost {} ban(s), inserted again: {}",
                family.program(),
                self.plan.name,
                missing.len(),
                shown(&missing)
            ));
        }
        if !extra.is_empty() {
            log::warn(&format!(
                "{} chain f2b-{} held {} ban rule(s) the daemon does not hold, deleted: {}",
                family.program(),
                self.plan.name,
                extra.len(),
                shown(&extra)
            ));
        }
        Ok(())
    }

    /// The sources banned in the jail's chain now (`-S` listing).
    fn listed_sources(&self, family: Family) -> Result<Vec<String>, String> {
        Ok(self.listed_rules(family)?.into_iter().map(|(source, _)| source).collect())
    }

    /// The chain's rules that match a source, with the words that delete
    /// each exactly as listed (`-D f2b-sshd -s 192.0.2.7/32 -j REJECT ...`).
    fn listed_rules(&self, family: Family) -> Result<Vec<(String, Vec<String>)>, String> {
        let args = argv(&["-w", "-S", &self.plan.jail_chain()]);
        let out = self.run(family, &args)?;
        if out.status != 0 {
            return Err(exit_error(family, &args, &out));
        }
        Ok(out
            .stdout
            .lines()
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "-s")?;
                let source = words.get(at + 1)?.to_string();
                let (&"-A", rest) = words.split_first()? else { return None };
                let mut delete = argv(&["-w", "-D"]);
                delete.extend(rest.iter().map(|w| w.to_string()));
                Some((source, delete))
            })
            .collect())
    }
}

impl Action for Iptables {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Iptables { plan: Plan::from_options(&options)?, started: [false; 2], applied: BTreeSet::new() })
    }

    fn start(&mut self) -> Result<(), String> {
        self.start_family(Family::V4)
    }

    fn stop(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for family in [Family::V4, Family::V6] {
            if !self.started[family as usize] {
                continue;
            }
            // Every step is tried even when one fails, so that a partly
            // removed structure is removed as far as possible.
            for args in self.plan.stop() {
                if let Err(e) = self.run_ok(family, &args) {
                    errors.push(e);
                }
            }
            self.started[family as usize] = false;
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// The structure first (rebuilt when its jump or its return rule is
    /// gone, then every ban of the family applied again), then the bans:
    /// one this instance applied that the chain lost (a rule deleted by
    /// hand) is inserted again, and a ban rule it does not hold (left by a
    /// failed unban, or by an earlier run) is deleted. What was changed is
    /// logged; an error only when the firewall could not be changed.
    fn check(&mut self) -> Result<(), String> {
        for family in [Family::V4, Family::V6] {
            if !self.started[family as usize] {
                continue;
            }
            let mut jump_ok = true;
            for args in self.plan.check_jumps() {
                jump_ok &= self.run(family, &args)?.status == 0;
            }
            let mut return_ok = true;
            for args in self.plan.check_return(family) {
                return_ok &= self.run(family, &args)?.status == 0;
            }
            if !(jump_ok && return_ok) {
                log::warn(&format!(
                    "{} structure of f2b-{} is damaged (jump present: {jump_ok}, return rule present: \
                     {return_ok}); rebuilding it",
                    family.program(),
                    self.plan.name
                ));
                // Rebuild from scratch: remove what is left, then start again.
                for args in self.plan.stop() {
                    let _ = self.run(family, &args);
                }
                self.start_family(family)?;
            }
            self.reconcile_bans(family)?;
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let ip = checked_address(&ticket.ip)?;
        let family = Family::of(ip);
        self.ensure_started(family)?;
        // Already banned (for instance restored after a restart): adding the
        // rule again would need two unbans to lift it.
        if self.run(family, &self.plan.check_ban(ip))?.status != 0 {
            self.run_ok(family, &self.plan.ban(ip))?;
        }
        self.applied.insert(ip.to_string());
        Ok(())
    }

    /// A batch lists the chain once per family and inserts what is not
    /// there yet in one `iptables-restore --noflush` transaction per
    /// family: three processes for n bans. When the restore cannot run (an
    /// admin's grant without it, an old iptables) or fails, the rules go
    /// in one at a time, so one bad rule costs the others nothing.
    fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        if tickets.len() == 1 {
            return vec![self.ban(&tickets[0])];
        }
        let mut present: [Option<Result<BTreeSet<String>, String>>; 2] = [None, None];
        let mut wanted: [Vec<(usize, &str)>; 2] = [Vec::new(), Vec::new()];
        let mut results: Vec<Result<(), String>> = tickets
            .iter()
            .enumerate()
            .map(|(at, ticket)| {
                let ip = checked_address(&ticket.ip)?;
                let family = Family::of(ip);
                if present[family as usize].is_none() {
                    let listed = self
                        .ensure_started(family)
                        .and_then(|()| self.listed_sources(family))
                        .map(|sources| source_set(&sources));
                    present[family as usize] = Some(listed);
                }
                match &present[family as usize] {
                    Some(Ok(sources)) if sources.contains(ip) => Ok(()),
                    Some(Err(e)) => Err(e.clone()),
                    _ => {
                        wanted[family as usize].push((at, ip));
                        Ok(())
                    }
                }
            })
            .collect();
        for family in Family::BOTH {
            let batch = &wanted[family as usize];
            let rules: Vec<Vec<String>> = batch.iter().map(|(_, ip)| self.plan.ban(ip)).collect();
            // One rule is one process either way.
            if batch.is_empty() || (batch.len() > 1 && self.restore(family, &rules).is_ok()) {
                continue;
            }
            for ((at, _), rule) in batch.iter().zip(&rules) {
                results[*at] = self.run_ok(family, rule);
            }
        }
        for (ticket, result) in tickets.iter().zip(&results) {
            if result.is_ok() {
                self.applied.insert(ticket.ip.clone());
            }
        }
        results
    }

    /// A batch of unbans is one `iptables-restore --noflush` transaction
    /// per family; when a rule is gone already (the transaction fails),
    /// each is lifted alone, which accepts a rule the kernel lost.
    fn unban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        if tickets.len() == 1 {
            return vec![self.unban(&tickets[0])];
        }
        let mut results: Vec<Option<Result<(), String>>> = vec![None; tickets.len()];
        let addresses: Vec<(usize, &str)> =
            tickets.iter().enumerate().filter_map(|(at, t)| checked_address(&t.ip).ok().map(|ip| (at, ip))).collect();
        for family in Family::BOTH {
            if !self.started[family as usize] {
                continue;
            }
            let batch: Vec<(usize, &str)> =
                addresses.iter().copied().filter(|(_, ip)| Family::of(ip) == family).collect();
            let rules: Vec<Vec<String>> = batch.iter().map(|(_, ip)| self.plan.unban(ip)).collect();
            if batch.len() > 1 && self.restore(family, &rules).is_ok() {
                for (at, ip) in batch {
                    self.applied.remove(ip);
                    results[at] = Some(Ok(()));
                }
            }
        }
        tickets.iter().zip(results).map(|(ticket, done)| done.unwrap_or_else(|| self.unban(ticket))).collect()
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        let ip = checked_address(&ticket.ip)?;
        let family = Family::of(ip);
        if !self.started[family as usize] {
            self.applied.remove(ip);
            return Ok(());
        }
        if let Err(e) = self.run_ok(family, &self.plan.unban(ip)) {
            // Lifted already (by hand, or by a flush): the kernel agrees,
            // which is all an unban asks. Otherwise it stays applied, and
            // the daemon tries again.
            if self.run(family, &self.plan.check_ban(ip))?.status == 0 {
                return Err(e);
            }
        }
        self.applied.remove(ip);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Iptables);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn multiport_structure_matches_fail2ban() {
        let p = plan(&[("name", "sshd"), ("port", "22, 2222")]).unwrap();
        assert_eq!(p.start(Family::V4)[2].join(" "), "-w -I INPUT -p tcp -m multiport --dports 22,2222 -j f2b-sshd");
        assert_eq!(
            p.ban("192.0.2.7").join(" "),
            "-w -I f2b-sshd 1 -s 192.0.2.7 -j REJECT --reject-with icmp-port-unreachable"
        );
        assert_eq!(
            p.ban("2001:db8::7").join(" "),
            "-w -I f2b-sshd 1 -s 2001:db8::7 -j REJECT --reject-with icmp6-port-unreachable"
        );
    }

    #[test]
    fn allports_and_oneport() {
        let p = plan(&[("name", "x"), ("type", "allports"), ("protocol", "udp")]).unwrap();
        assert_eq!(p.check_jumps()[0].join(" "), "-w -C INPUT -p udp -j f2b-x");
        let p = plan(&[("name", "x"), ("type", "oneport"), ("port", "25")]).unwrap();
        assert_eq!(p.check_jumps()[0].join(" "), "-w -C INPUT -p tcp --dport 25 -j f2b-x");
    }

    #[test]
    fn several_chains_and_protocols_get_a_jump_each_as_in_fail2ban_1_1() {
        let p = plan(&[("name", "x"), ("type", "allports"), ("chain", "INPUT,DOCKER-USER"), ("protocol", "tcp,udp")])
            .unwrap();
        let jumps: Vec<String> = p.check_jumps().iter().map(|a| a.join(" ")).collect();
        assert_eq!(
            jumps,
            [
                "-w -C INPUT -p tcp -j f2b-x",
                "-w -C INPUT -p udp -j f2b-x",
                "-w -C DOCKER-USER -p tcp -j f2b-x",
                "-w -C DOCKER-USER -p udp -j f2b-x"
            ]
        );
        assert_eq!(p.start(Family::V4).len(), 6);
        assert_eq!(p.stop().len(), 6);
        assert!(plan(&[("chain", "INPUT,bad chain!")]).unwrap_err().contains("`chain`"));
        assert!(plan(&[("protocol", "tcp,icmp")]).unwrap_err().contains("icmp"));
    }

    #[test]
    fn iptables_new_puts_its_pre_rule_first() {
        let p = plan(&[("name", "x"), ("type", "oneport"), ("port", "22"), ("pre-rule", "-m state --state NEW<sp>")])
            .unwrap();
        assert_eq!(p.check_jumps()[0].join(" "), "-w -C INPUT -m state --state NEW -p tcp --dport 22 -j f2b-x");
    }

    #[test]
    fn multiport_log_sends_bans_through_a_logging_chain() {
        let p = plan(&[("name", "xinetd-fail"), ("log", "yes"), ("blocktype", "DROP")]).unwrap();
        let start: Vec<String> = p.start(Family::V4).iter().map(|a| a.join(" ")).collect();
        assert_eq!(
            start[..5],
            [
                "-w -N f2b-xinetd-fail",
                "-w -A f2b-xinetd-fail -j RETURN",
                "-w -N f2b-xinetd-fail-log",
                "-w -A f2b-xinetd-fail-log -j LOG --log-prefix f2b-xinetd-fail:DROP  --log-level warning -m limit \
                 --limit 6/m --limit-burst 2",
                "-w -A f2b-xinetd-fail-log -j DROP",
            ]
        );
        assert_eq!(p.ban("192.0.2.7").join(" "), "-w -I f2b-xinetd-fail 1 -s 192.0.2.7 -j f2b-xinetd-fail-log");
        assert_eq!(p.stop().len(), 5);
        assert_eq!(p.check_return(Family::V6)[1].join(" "), "-w -C f2b-xinetd-fail-log -j DROP");
        // The log prefix is cut at 23 characters, as fail2ban cuts it.
        let p = plan(&[("name", "a-rather-long-name-x"), ("log", "yes")]).unwrap();
        assert!(p.start(Family::V4)[3].contains(&"f2b-a-rather-long-name-:DROP ".to_string()));
        assert!(plan(&[("name", "a-rather-long-name-xy"), ("log", "yes")]).unwrap_err().contains("28"));
    }

    #[test]
    fn bad_options_name_the_option() {
        assert!(plan(&[("type", "someports")]).unwrap_err().contains("`type`"));
        assert!(plan(&[("name", "a b")]).unwrap_err().contains("`name`"));
        assert!(plan(&[("name", "a-very-long-jail-name-indeed")]).unwrap_err().contains("28"));
        assert!(plan(&[("protocol", "tcp;ls")]).unwrap_err().contains("`protocol`"));
    }

    /// Whether a listed source is the address or range `ip`.
    fn same_source(listed: &str, ip: &str) -> bool {
        source_set([&listed.to_string()]).contains(ip)
    }

    #[test]
    fn listed_sources_match_their_address() {
        assert!(same_source("192.0.2.7/32", "192.0.2.7"));
        assert!(same_source("2001:db8::7/128", "2001:db8::7"));
        assert!(same_source("10.0.0.0/8", "10.0.0.0/8"));
        assert!(!same_source("192.0.2.70/32", "192.0.2.7"));
    }

    #[test]
    fn only_addresses_reach_the_argv() {
        assert!(checked_address("192.0.2.1").is_ok());
        assert!(checked_address("2001:db8::/32").is_ok());
        assert!(checked_address("-F").is_err());
        assert!(checked_address("192.0.2.1 -j ACCEPT").is_err());
        assert!(checked_address("10.0.0.0/33").is_err());
    }
}
