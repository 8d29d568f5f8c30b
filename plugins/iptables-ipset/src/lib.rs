//! fail2ban's `iptables-ipset` actions (`iptables-ipset-proto4`,
//! `-proto6`, `-proto6-allports`, and 1.1's `iptables-ipset`) as a
//! component: one ipset per jail and family (`f2b-<name>`,
//! `f2b-<name>6`, `hash:ip`, or `hash:net` with `ipsettype = hash:net` for
//! prefix bans), and jump rules in `<chain>` that send the
//! jail's packets from an address in the set to `<blocktype>`. A ban is an
//! element of the set, so a host with a hundred thousand bans has a
//! handful of rules, and a batch of bans is one `ipset restore` run.
//!
//! Elements carry a kernel timeout when `ipsettime` asks for one (a number,
//! or fail2ban's `<timeout-bantime>`: the ban's own length), so a ban ends
//! in the kernel even if the daemon is gone; a prolonged ban is added again
//! with its new length (`-exist` updates the timeout).
//!
//! It can only run `iptables`, `ip6tables` and `ipset` (its grant), with
//! argv lists.

#[cfg(target_arch = "wasm32")]
mod component;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use wasmban_plugin_sdk::address::Net;
use wasmban_plugin_sdk::{Options, Ticket, firewall, log};

/// The longest kernel timeout fail2ban's `<timeout-bantime>` hands ipset
/// (a longer ban gets none, and is lifted by the daemon).
pub const MAX_IPSET_TIMEOUT: i64 = 2_147_483;

/// Which packets the jump rules check against the set.
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

    fn of(ip: &Net) -> Family {
        if ip.is_v6() { Family::V6 } else { Family::V4 }
    }

    const BOTH: [Family; 2] = [Family::V4, Family::V6];
}

/// The kernel timeout each element gets.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryTimeout {
    /// `ipsettime = N`: N seconds for every element, 0 for none.
    Fixed(u32),
    /// `ipsettime = <timeout-bantime>`: the ban's length, or none for a
    /// permanent ban or one longer than [`MAX_IPSET_TIMEOUT`].
    Bantime,
}

impl EntryTimeout {
    fn for_ban(&self, bantime: i64) -> u32 {
        match self {
            EntryTimeout::Fixed(seconds) => *seconds,
            EntryTimeout::Bantime if (1..=MAX_IPSET_TIMEOUT).contains(&bantime) => bantime as u32,
            EntryTimeout::Bantime => 0,
        }
    }
}

/// The settings of one jail's ipset action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub chains: Vec<String>,
    pub protocols: Vec<String>,
    pub ports: PortMatch,
    pub blocktype: Vec<String>,
    pub blocktype6: Vec<String>,
    pub entry_timeout: EntryTimeout,
    /// `default-ipsettime`: the set's own default element timeout.
    pub default_timeout: u32,
    /// `ipsettype` (fail2ban 1.1): `hash:ip`, or `hash:net`, which also
    /// holds prefixes (`banprefix6 = 64`).
    pub settype: String,
    /// `maxelem` (fail2ban 1.1): the most elements a set holds; ipset's
    /// own default (65536) when not given.
    pub maxelem: Option<u32>,
    /// `rules = no` (fail2ban's shorewall-ipset-proto6): the sets only,
    /// for rules the admin writes elsewhere (shorewall's blrules); they are
    /// emptied at stop, never destroyed, as those rules refer to them.
    pub rules: bool,
    pub timeout_ms: u32,
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_string).collect()
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn valid_name(option: &str, value: &str, longest: usize, what: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > longest {
        return Err(format!("option `{option}` = {value:?}: {what} must be 1 to {longest} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("option `{option}` = {value:?}: character {bad:?} is not allowed in {what}"));
    }
    Ok(())
}

fn seconds(option: &str, value: &str) -> Result<u32, String> {
    value.trim().parse::<u32>().map_err(|_| format!("option `{option}` = {value:?}: expected seconds (0 for none)"))
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
        let ports = match options.get_or("type", "oneport") {
            "multiport" => PortMatch::Multiport(port),
            "allports" => PortMatch::AllPorts,
            "oneport" => PortMatch::OnePort(port),
            other => return Err(format!("option `type` = {other:?}: expected multiport, allports or oneport")),
        };
        // ipset names hold at most 31 characters: `f2b-` + name + `6`.
        valid_name("name", &name, 26, "a jail name that names an ipset")?;
        if chains.is_empty() {
            return Err("option `chain` is empty: give a chain such as INPUT (or several: INPUT,DOCKER-USER)".into());
        }
        for chain in &chains {
            valid_name("chain", chain, 28, "an iptables chain name")?;
        }
        if let Some(protocol) =
            protocols.iter().find(|p| !matches!(p.as_str(), "tcp" | "udp" | "sctp" | "udplite" | "all"))
        {
            return Err(format!("option `protocol` = {protocol:?}: expected tcp, udp, sctp, udplite or all"));
        }
        if protocols.is_empty() {
            return Err("option `protocol` is empty: give tcp, udp, sctp, udplite or all (or several: tcp,udp)".into());
        }
        let blocktype = words(options.get_or("blocktype", "REJECT --reject-with icmp-port-unreachable"));
        if blocktype.is_empty() {
            return Err("option `blocktype` is empty: give a target such as REJECT or DROP".into());
        }
        let blocktype6 = match options.get("blocktype6") {
            Some(v) => words(v),
            None => blocktype
                .iter()
                .map(|w| if w == "icmp-port-unreachable" { "icmp6-port-unreachable".to_string() } else { w.clone() })
                .collect(),
        };
        let entry_timeout = match options.get("ipsettime").map(str::trim) {
            // fail2ban's <timeout-bantime> arrives as the shell expression
            // that computes it from <bantime>, a tag filled per ban.
            Some(v) if v.contains("<bantime>") => EntryTimeout::Bantime,
            Some(v) => EntryTimeout::Fixed(seconds("ipsettime", v)?),
            None => EntryTimeout::Fixed(0),
        };
        let default_timeout = match options.get("default-ipsettime") {
            Some(v) => seconds("default-ipsettime", v)?,
            None => 0,
        };
        let timeout_ms = options.millis("timeout", 30_000)?;
        let settype = options.get_or("ipsettype", "hash:ip").trim().to_string();
        if !matches!(settype.as_str(), "hash:ip" | "hash:net") {
            return Err(format!(
                "option `ipsettype` = {settype:?}: expected hash:ip (addresses) or hash:net (addresses and prefixes)"
            ));
        }
        let maxelem = match options.get("maxelem").map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("option `maxelem` = {v:?}: expected a number of elements, 1 or more"))?,
            ),
            None => None,
        };
        let rules = match options.get_or("rules", "yes") {
            "yes" | "true" | "1" => true,
            "no" | "false" | "0" => false,
            other => return Err(format!("option `rules` = {other:?}: expected yes or no")),
        };
        Ok(Plan {
            rules,
            name,
            chains,
            protocols,
            ports,
            blocktype,
            blocktype6,
            entry_timeout,
            default_timeout,
            settype,
            maxelem,
            timeout_ms,
        })
    }

    /// The family's set: fail2ban's names, so that its tools and habits
    /// (`ipset list f2b-sshd`) still work.
    pub fn set(&self, family: Family) -> String {
        match family {
            Family::V4 => format!("f2b-{}", self.name),
            Family::V6 => format!("f2b-{}6", self.name),
        }
    }

    /// `ipset` argv that makes the family's set (kept if it is there).
    pub fn create(&self, family: Family) -> Vec<String> {
        let mut a = argv(&["-exist", "create", &self.set(family), &self.settype, "timeout"]);
        a.push(self.default_timeout.to_string());
        if let Some(maxelem) = self.maxelem {
            a.extend(argv(&["maxelem", &maxelem.to_string()]));
        }
        if family == Family::V6 {
            a.extend(argv(&["family", "inet6"]));
        }
        a
    }

    /// The iptables argv of every jump rule of the family, for `op`
    /// (`-I`, `-D`, `-C`): one per chain and protocol (none with `rules =
    /// no`).
    pub fn jumps(&self, family: Family, op: &str) -> Vec<Vec<String>> {
        if !self.rules {
            return Vec::new();
        }
        let set = self.set(family);
        let block = match family {
            Family::V4 => &self.blocktype,
            Family::V6 => &self.blocktype6,
        };
        let mut all = Vec::new();
        for chain in &self.chains {
            for protocol in &self.protocols {
                let mut a = argv(&["-w", op, chain, "-p", protocol]);
                match &self.ports {
                    PortMatch::Multiport(p) => a.extend(argv(&["-m", "multiport", "--dports", p])),
                    PortMatch::AllPorts => {}
                    PortMatch::OnePort(p) => a.extend(argv(&["--dport", p])),
                }
                a.extend(argv(&["-m", "set", "--match-set", &set, "src", "-j"]));
                a.extend(block.iter().cloned());
                all.push(a);
            }
        }
        all
    }

    /// An `ipset restore` script adding each address with its timeout.
    pub fn add_script(&self, family: Family, entries: &[(Net, u32)]) -> String {
        let set = self.set(family);
        let mut script = String::new();
        for (ip, timeout) in entries {
            let _ = writeln!(script, "add {set} {ip} timeout {timeout}");
        }
        script
    }

    /// An `ipset restore` script deleting each address.
    pub fn del_script(&self, family: Family, ips: &[Net]) -> String {
        let set = self.set(family);
        let mut script = String::new();
        for ip in ips {
            let _ = writeln!(script, "del {set} {ip}");
        }
        script
    }
}

impl Plan {
    /// A ban's address or prefix as the set must see it: nothing a filter
    /// produced may become an option, and a `hash:ip` set takes no prefix.
    fn checked_member(&self, ip: &str) -> Result<Net, String> {
        let net = Net::parse(ip).map_err(|e| format!("{e}; an ipset bans addresses and prefixes only"))?;
        if net.is_prefix() && self.settype == "hash:ip" {
            return Err(format!(
                "{ip} is a prefix, and set {} is a hash:ip set of single addresses; give this action \
                 ipsettype = hash:net (stop the jail and `ipset destroy` the old set first)",
                self.set(Family::of(&net))
            ));
        }
        Ok(net)
    }
}

/// The addresses of the set that `ipset save` listed.
fn saved_members(saved: &str) -> BTreeSet<Net> {
    saved
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("add")).then_some(())?;
            Net::parse(words.nth(1)?).ok()
        })
        .collect()
}

pub struct IptablesIpset {
    plan: Plan,
    /// Which families' sets and jumps this instance built.
    started: [bool; 2],
    /// What the sets must hold: each address this instance added and has
    /// not lifted, with the kernel timeout it was given.
    applied: BTreeMap<Net, u32>,
}

impl IptablesIpset {
    pub fn new(options: Options) -> Result<Self, String> {
        Ok(IptablesIpset { plan: Plan::from_options(&options)?, started: [false; 2], applied: BTreeMap::new() })
    }

    fn run(&self, program: &str, args: &[String]) -> Result<firewall::Output, String> {
        firewall::run(program, args, self.plan.timeout_ms)
    }

    fn run_ok(&self, program: &str, args: &[String]) -> Result<(), String> {
        let out = self.run(program, args)?;
        if out.status == 0 { Ok(()) } else { Err(exit_error(program, args, &out)) }
    }

    fn restore(&self, script: &str) -> Result<(), String> {
        let args = argv(&["-exist", "restore"]);
        let out = firewall::run_with_input("ipset", &args, script, self.plan.timeout_ms)?;
        if out.status == 0 { Ok(()) } else { Err(exit_error("ipset", &args, &out)) }
    }

    /// The set, emptied (an earlier run killed before it could stop leaves
    /// it with bans that may have ended; the daemon applies the live ones
    /// again), and the jump rules that are missing.
    fn start_family(&mut self, family: Family) -> Result<(), String> {
        let set = self.plan.set(family);
        if let Err(first) = self.run_ok("ipset", &self.plan.create(family)) {
            // A set of that name with other settings (an older fail2ban's
            // `iphash`, or no timeout support): replace it.
            log::warn(&format!("{first}; replacing the set {set}"));
            for args in self.plan.jumps(family, "-D") {
                let _ = self.run(family.program(), &args);
            }
            self.run_ok("ipset", &argv(&["destroy", &set]))?;
            self.run_ok("ipset", &self.plan.create(family))?;
        }
        self.run_ok("ipset", &argv(&["flush", &set]))?;
        self.insert_missing_jumps(family)?;
        self.started[family as usize] = true;
        Ok(())
    }

    /// Insert each jump rule `-C` says is absent; how many were.
    fn insert_missing_jumps(&self, family: Family) -> Result<usize, String> {
        let mut inserted = 0;
        for (check, insert) in self.plan.jumps(family, "-C").into_iter().zip(self.plan.jumps(family, "-I")) {
            if self.run(family.program(), &check)?.status != 0 {
                self.run_ok(family.program(), &insert)?;
                inserted += 1;
            }
        }
        Ok(inserted)
    }

    fn ensure_started(&mut self, family: Family) -> Result<(), String> {
        if !self.started[family as usize] {
            self.start_family(family)?;
        }
        Ok(())
    }

    pub fn start(&mut self) -> Result<(), String> {
        self.start_family(Family::V4)
    }

    pub fn stop(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for family in Family::BOTH {
            if !self.started[family as usize] {
                continue;
            }
            // Every step is tried even when one fails, so that a partly
            // removed structure is removed as far as possible.
            for args in self.plan.jumps(family, "-D") {
                errors.extend(self.run_ok(family.program(), &args).err());
            }
            let set = self.plan.set(family);
            errors.extend(self.run_ok("ipset", &argv(&["flush", &set])).err());
            if self.plan.rules {
                errors.extend(self.run_ok("ipset", &argv(&["destroy", &set])).err());
            }
            self.started[family as usize] = false;
        }
        self.applied.clear();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// The set and its jumps first (a set destroyed by hand is made again
    /// and refilled), then its members: an applied address the set lost is
    /// added again, and a member the daemon does not hold is deleted.
    /// What was changed is logged; an error only when nothing could be.
    pub fn check(&mut self) -> Result<(), String> {
        for family in Family::BOTH {
            if !self.started[family as usize] {
                continue;
            }
            let set = self.plan.set(family);
            let saved = self.run("ipset", &argv(&["save", &set]))?;
            let present = if saved.status == 0 {
                saved_members(&saved.stdout)
            } else {
                log::warn(&format!("ipset {set} is gone; making it again with its bans"));
                self.run_ok("ipset", &self.plan.create(family))?;
                BTreeSet::new()
            };
            let jumps = self.insert_missing_jumps(family)?;
            if jumps > 0 {
                log::warn(&format!("{jumps} jump rule(s) to ipset {set} were missing, inserted again"));
            }
            let missing: Vec<(Net, u32)> = self
                .applied
                .iter()
                .filter(|(ip, _)| Family::of(ip) == family && !present.contains(ip))
                .map(|(ip, timeout)| (*ip, *timeout))
                .collect();
            let extra: Vec<Net> = present.iter().filter(|ip| !self.applied.contains_key(ip)).copied().collect();
            if !missing.is_empty() {
                self.restore(&self.plan.add_script(family, &missing))?;
                log::warn(&format!("ipset {set} had lost {} ban(s), added again: {}", missing.len(), shown(&missing)));
            }
            if !extra.is_empty() {
                self.restore(&self.plan.del_script(family, &extra))?;
                let listed: Vec<(Net, u32)> = extra.iter().map(|ip| (*ip, 0)).collect();
                log::warn(&format!(
                    "ipset {set} held {} address(es) the daemon does not ban, deleted: {}",
                    extra.len(),
                    shown(&listed)
                ));
            }
        }
        Ok(())
    }

    /// Add every ticket's address, one `ipset restore` per family; a new
    /// length for a ban already there replaces its timeout.
    pub fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        let mut results: Vec<Result<(), String>> = Vec::with_capacity(tickets.len());
        let mut by_family: [Vec<(usize, Net, u32)>; 2] = [Vec::new(), Vec::new()];
        for (at, ticket) in tickets.iter().enumerate() {
            match self.plan.checked_member(&ticket.ip) {
                Ok(ip) => {
                    by_family[Family::of(&ip) as usize].push((at, ip, self.plan.entry_timeout.for_ban(ticket.bantime)));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        for family in Family::BOTH {
            let batch = &by_family[family as usize];
            if batch.is_empty() {
                continue;
            }
            let outcome = self.ensure_started(family).and_then(|()| {
                let entries: Vec<(Net, u32)> = batch.iter().map(|(_, ip, t)| (*ip, *t)).collect();
                self.restore(&self.plan.add_script(family, &entries))
            });
            for (at, ip, timeout) in batch {
                let result = match &outcome {
                    Ok(()) => Ok(()),
                    // The batch stopped at its first bad line: find out
                    // which bans it was, one `ipset add` each.
                    Err(_) if self.started[family as usize] => {
                        let mut a = argv(&["-exist", "add", &self.plan.set(family), &ip.to_string(), "timeout"]);
                        a.push(timeout.to_string());
                        self.run_ok("ipset", &a)
                    }
                    Err(e) => Err(e.clone()),
                };
                if result.is_ok() {
                    self.applied.insert(*ip, *timeout);
                }
                results[*at] = result;
            }
        }
        results
    }

    /// Delete every ticket's address, one `ipset restore` per family; an
    /// address already gone is lifted.
    pub fn unban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        let mut results: Vec<Result<(), String>> = Vec::with_capacity(tickets.len());
        let mut by_family: [Vec<(usize, Net)>; 2] = [Vec::new(), Vec::new()];
        for (at, ticket) in tickets.iter().enumerate() {
            match self.plan.checked_member(&ticket.ip) {
                Ok(ip) => {
                    by_family[Family::of(&ip) as usize].push((at, ip));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        for family in Family::BOTH {
            let batch = &by_family[family as usize];
            if batch.is_empty() {
                continue;
            }
            let outcome = if self.started[family as usize] {
                let ips: Vec<Net> = batch.iter().map(|(_, ip)| *ip).collect();
                self.restore(&self.plan.del_script(family, &ips))
            } else {
                Ok(())
            };
            for (at, ip) in batch {
                let result = match &outcome {
                    Ok(()) => Ok(()),
                    Err(_) => self.run_ok("ipset", &argv(&["-exist", "del", &self.plan.set(family), &ip.to_string()])),
                };
                if result.is_ok() {
                    self.applied.remove(ip);
                }
                results[*at] = result;
            }
        }
        results
    }

    /// fail2ban's `actionflush`: empty the sets at once.
    pub fn flush(&mut self) -> Result<bool, String> {
        for family in Family::BOTH {
            if self.started[family as usize] {
                self.run_ok("ipset", &argv(&["flush", &self.plan.set(family)]))?;
            }
        }
        self.applied.clear();
        Ok(true)
    }
}

/// What a command that failed says, for the daemon log.
fn exit_error(program: &str, args: &[String], out: &firewall::Output) -> String {
    format!("`{program} {}` exited with status {}: {}", args.join(" "), out.status, out.stderr.trim())
}

/// At most ten addresses, for a log line.
fn shown(entries: &[(Net, u32)]) -> String {
    let mut text = entries.iter().take(10).map(|(ip, _)| ip.to_string()).collect::<Vec<_>>().join(", ");
    if entries.len() > 10 {
        text.push_str(&format!(" and {} more", entries.len() - 10));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn the_structure_is_fail2bans() {
        let p = plan(&[("name", "sshd"), ("port", "22, 2222"), ("type", "multiport")]).unwrap();
        assert_eq!(p.create(Family::V4).join(" "), "-exist create f2b-sshd hash:ip timeout 0");
        assert_eq!(p.create(Family::V6).join(" "), "-exist create f2b-sshd6 hash:ip timeout 0 family inet6");
        assert_eq!(
            p.jumps(Family::V4, "-I")[0].join(" "),
            "-w -I INPUT -p tcp -m multiport --dports 22,2222 -m set --match-set f2b-sshd src -j REJECT \
             --reject-with icmp-port-unreachable"
        );
        assert_eq!(
            p.jumps(Family::V6, "-C")[0].join(" "),
            "-w -C INPUT -p tcp -m multiport --dports 22,2222 -m set --match-set f2b-sshd6 src -j REJECT \
             --reject-with icmp6-port-unreachable"
        );
        let p = plan(&[("name", "x"), ("type", "allports"), ("chain", "INPUT,DOCKER-USER"), ("protocol", "tcp,udp")])
            .unwrap();
        let jumps: Vec<String> = p.jumps(Family::V4, "-D").iter().map(|a| a.join(" ")).collect();
        assert_eq!(jumps.len(), 4);
        assert_eq!(
            jumps[3],
            "-w -D DOCKER-USER -p udp -m set --match-set f2b-x src -j REJECT --reject-with icmp-port-unreachable"
        );
    }

    #[test]
    fn sets_only_for_shorewall() {
        let p = plan(&[("name", "sshd"), ("rules", "no")]).unwrap();
        assert!(p.jumps(Family::V4, "-I").is_empty());
        assert!(plan(&[("rules", "maybe")]).unwrap_err().contains("`rules`"));
    }

    #[test]
    fn kernel_timeouts_follow_ipsettime() {
        let p = plan(&[("ipsettime", "0")]).unwrap();
        assert_eq!(p.entry_timeout.for_ban(600), 0);
        let p = plan(&[("ipsettime", "3600")]).unwrap();
        assert_eq!(p.entry_timeout.for_ban(600), 3600);
        let expression = r#"$([ "<bantime>" -le 2147483 ] && echo "<bantime>" || echo 0)"#;
        let p = plan(&[("ipsettime", expression)]).unwrap();
        assert_eq!(p.entry_timeout, EntryTimeout::Bantime);
        assert_eq!(p.entry_timeout.for_ban(600), 600);
        assert_eq!(p.entry_timeout.for_ban(-1), 0);
        assert_eq!(p.entry_timeout.for_ban(MAX_IPSET_TIMEOUT + 1), 0);
        let ip: Net = "192.0.2.7".parse().unwrap();
        assert_eq!(p.add_script(Family::V4, &[(ip, 600)]), "add f2b-default 192.0.2.7 timeout 600\n");
        assert_eq!(p.del_script(Family::V4, &[ip]), "del f2b-default 192.0.2.7\n");
    }

    #[test]
    fn bad_options_name_the_option() {
        assert!(plan(&[("type", "someports")]).unwrap_err().contains("`type`"));
        assert!(plan(&[("name", "a b")]).unwrap_err().contains("`name`"));
        assert!(plan(&[("name", "a-jail-name-much-too-long-for-ipset")]).unwrap_err().contains("26"));
        assert!(plan(&[("ipsettime", "soon")]).unwrap_err().contains("`ipsettime`"));
        assert!(plan(&[("default-ipsettime", "-1")]).unwrap_err().contains("`default-ipsettime`"));
        assert!(plan(&[("protocol", "tcp;ls")]).unwrap_err().contains("`protocol`"));
    }

    #[test]
    fn only_addresses_and_prefixes_reach_the_set() {
        let by_address = plan(&[]).unwrap();
        assert!(by_address.checked_member("2001:db8::7").is_ok());
        let err = by_address.checked_member("192.0.2.0/24").unwrap_err();
        assert!(err.contains("ipsettype = hash:net"), "{err}");
        assert!(by_address.checked_member("-exist").is_err());
        assert!(by_address.checked_member("192.0.2.1\nflush").is_err());
        let by_net = plan(&[("ipsettype", "hash:net"), ("maxelem", "1000000")]).unwrap();
        assert_eq!(by_net.checked_member("2001:db8:0:7::9/64").unwrap().to_string(), "2001:db8:0:7::/64");
        assert_eq!(
            by_net.create(Family::V6).join(" "),
            "-exist create f2b-default6 hash:net timeout 0 maxelem 1000000 family inet6"
        );
        assert!(plan(&[("ipsettype", "list:set")]).unwrap_err().contains("`ipsettype`"));
        assert!(plan(&[("maxelem", "0")]).unwrap_err().contains("`maxelem`"));
    }

    #[test]
    fn saved_members_are_read_from_ipset_save() {
        let saved = "create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n\
                     add f2b-sshd 192.0.2.1 timeout 50\nadd f2b-sshd 192.0.2.2\n";
        let members = saved_members(saved);
        assert_eq!(members.len(), 2);
        assert!(members.contains(&"192.0.2.2".parse().unwrap()));
    }
}
