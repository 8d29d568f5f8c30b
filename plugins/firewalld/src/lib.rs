//! fail2ban's `firewallcmd-*` actions as a component, through firewalld's
//! own command so that firewalld keeps owning the firewall:
//!
//! - `multiport`, `allports`, `new`: a direct chain `f2b-<name>` ending in
//!   RETURN, jumped to from `<chain>` (`INPUT_direct`), one direct rule per
//!   ban;
//! - `ipset`: an ipset per family (`f2b-<name>`, `f2b-<name>6`) matched by
//!   one direct rule, the bans being its elements (with kernel timeouts
//!   from `ipsettime`, as in the iptables-ipset component);
//! - `rich-rules`, `rich-logging`: one rich rule per ban and port (the
//!   latter logging with a rate limit).
//!
//! Runtime rules are lost when firewalld reloads: `check` puts back what
//! the jail holds. It can only run `firewall-cmd` and `ipset` (its grant).

use std::collections::BTreeMap;

use wasmban_plugin_sdk::{Action, Options, Ticket, address, firewall, log};

/// The longest kernel timeout fail2ban's `<timeout-bantime>` hands ipset.
const MAX_IPSET_TIMEOUT: i64 = 2_147_483;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Multiport,
    AllPorts,
    New,
    Ipset,
    RichRules,
    RichLogging { level: String, rate: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: &str) -> Family {
        if ip.contains(':') { Family::V6 } else { Family::V4 }
    }
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    const BOTH: [Family; 2] = [Family::V4, Family::V6];
}

/// The settings of one jail's firewalld action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub name: String,
    pub chain: String,
    /// `zone`: where rich rules go (fail2ban 1.1).
    pub zone: String,
    pub protocol: String,
    pub ports: Vec<String>,
    blocktype: [Vec<String>; 2],
    rich_blocktype: [String; 2],
    /// `actiontype` of firewallcmd-ipset: the direct rule's match.
    actiontype: Vec<String>,
    /// The ipset element timeout: a number, or `None` for the ban's length.
    ipsettime: Option<u32>,
    default_ipsettime: u32,
    ipset_type: String,
    maxelem: u32,
    pub timeout_ms: u32,
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_string).collect()
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// A word that goes inside a rich rule's quotes, or names a chain: it must
/// not close the quote or start another element.
fn plain(option: &str, value: &str, extra: &[char]) -> Result<String, String> {
    if value.is_empty()
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    {
        return Err(format!("option `{option}` = {value:?}: letters, digits, `-` and `_` only"));
    }
    Ok(value.to_string())
}

fn number(option: &str, value: &str) -> Result<u32, String> {
    value.trim().parse().map_err(|_| format!("option `{option}` = {value:?}: expected a whole number"))
}

/// The IPv6 reject type that says what an IPv4 one says.
fn icmp6_twin(v4: &str) -> &str {
    match v4 {
        "icmp-port-unreachable" | "port-unreach" => "icmp6-port-unreachable",
        "icmp-host-prohibited"
        | "icmp-net-prohibited"
        | "icmp-admin-prohibited"
        | "host-prohib"
        | "net-prohib"
        | "admin-prohib" => "icmp6-adm-prohibited",
        "icmp-host-unreachable" | "icmp-net-unreachable" | "host-unreach" | "net-unreach" => "icmp6-addr-unreachable",
        other => other,
    }
}

/// An option's value for `family`, with `<rejecttype>` filled: fail2ban
/// leaves tags whose value depends on the family (`[Init?family=inet6]`)
/// to the action, which runs once per family; the component gets both
/// values (`rejecttype`, `rejecttype?family=inet6`) and fills them here.
fn for_family(options: &Options, key: &str, default: &str, family: Family) -> String {
    let v6_key = |key: &str| format!("{key}?family=inet6");
    let pick = |key: &str| match family {
        Family::V4 => options.get(key).map(str::to_string),
        Family::V6 => options.get(&v6_key(key)).or(options.get(key)).map(str::to_string),
    };
    let rejecttype = pick("rejecttype").unwrap_or_else(|| "icmp-port-unreachable".into());
    let rejecttype = match (family, options.get(&v6_key("rejecttype"))) {
        (Family::V6, None) => icmp6_twin(&rejecttype).to_string(),
        _ => rejecttype,
    };
    let value = pick(key).unwrap_or_else(|| default.to_string()).replace("<rejecttype>", &rejecttype);
    match (family, options.get(&v6_key(key))) {
        (Family::V6, None) => value.replace("icmp-port-unreachable", "icmp6-port-unreachable"),
        _ => value,
    }
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let kind = match options.get_or("kind", "multiport") {
            "multiport" => Kind::Multiport,
            "allports" => Kind::AllPorts,
            "new" => Kind::New,
            "ipset" => Kind::Ipset,
            "rich-rules" => Kind::RichRules,
            "rich-logging" => Kind::RichLogging {
                level: plain("level", options.get_or("level", "info"), &[])?,
                rate: number("rate", options.get_or("rate", "1"))?,
            },
            other => {
                return Err(format!(
                    "option `kind` = {other:?}: expected multiport, allports, new, ipset, rich-rules or rich-logging"
                ));
            }
        };
        let name = plain("name", options.get_or("name", "default"), &['.'])?;
        if name.len() > 26 {
            return Err(format!("option `name` = {name:?}: at most 26 characters (it names f2b-<name>6)"));
        }
        let chain = plain("chain", options.get_or("chain", "INPUT_direct"), &[])?;
        let zone = plain("zone", options.get_or("zone", "public"), &[])?;
        let protocol = options.get_or("protocol", "tcp").trim().to_string();
        if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp" | "dccp") {
            return Err(format!("option `protocol` = {protocol:?}: expected tcp, udp, sctp or dccp"));
        }
        let ports = options
            .get_or("port", "1:65535")
            .split([',', ' '])
            .filter(|p| !p.is_empty())
            .map(|p| plain("port", p, &[':']))
            .collect::<Result<Vec<_>, _>>()?;
        if ports.is_empty() {
            return Err("option `port` is empty: give the jail's ports (port = ssh,2222)".into());
        }
        let blocktype =
            Family::BOTH.map(|f| words(&for_family(options, "blocktype", "REJECT --reject-with <rejecttype>", f)));
        if blocktype[0].is_empty() {
            return Err("option `blocktype` is empty: give a target such as REJECT or DROP".into());
        }
        let rich = Family::BOTH
            .map(|f| for_family(options, "rich-blocktype", "reject type='<rejecttype>'", f).trim().to_string());
        for rich in &rich {
            let shaped =
                rich == "drop" || rich == "reject" || rich.starts_with("reject type='") && rich.ends_with('\'');
            if !shaped || rich.matches('\'').count() > 2 || rich.contains('<') {
                return Err(format!(
                    "option `rich-blocktype` = {rich:?}: expected drop, reject, or reject type='TYPE'"
                ));
            }
        }
        // fail2ban 1.1 names the backend `ipsetbackend` and the set's type
        // `ipsettype`; 1.0 said `ipsettype = ipset|firewalld` for the backend.
        let (backend, ipset_type) = match (options.get("ipsetbackend"), options.get_or("ipsettype", "hash:ip")) {
            (Some(backend), set_type) => (backend.trim(), set_type.trim()),
            (None, backend @ ("ipset" | "firewalld")) => (backend, "hash:ip"),
            (None, set_type) => ("ipset", set_type.trim()),
        };
        if kind == Kind::Ipset && backend != "ipset" {
            return Err(format!(
                "ipset backend {backend:?}: firewalld makes ipsets only in its permanent configuration \
                 (`firewall-cmd --direct --new-ipset` is refused at run time); use ipsetbackend = ipset, the default"
            ));
        }
        if !matches!(ipset_type, "hash:ip" | "hash:net") {
            return Err(format!("option `ipsettype` = {ipset_type:?}: expected hash:ip or hash:net"));
        }
        let ipsettime = match options.get("ipsettime").map(str::trim) {
            Some(v) if v.contains("<bantime>") => None,
            Some(v) => Some(number("ipsettime", v)?),
            None => Some(0),
        };
        let multiport = format!("-p {protocol} -m multiport --dports {}", ports.join(","));
        let timeout_ms = match options.get("timeout") {
            Some(v) => number("timeout", v)?,
            None => 30_000,
        };
        Ok(Plan {
            kind,
            name,
            chain,
            zone,
            ports,
            blocktype,
            rich_blocktype: rich,
            actiontype: words(options.get_or("actiontype", &multiport)),
            ipsettime,
            default_ipsettime: number("default-ipsettime", options.get_or("default-ipsettime", "0"))?,
            ipset_type: ipset_type.to_string(),
            maxelem: number("maxelem", options.get_or("maxelem", "65536"))?,
            protocol,
            timeout_ms,
        })
    }

    fn jail_chain(&self) -> String {
        format!("f2b-{}", self.name)
    }

    pub fn set(&self, family: Family) -> String {
        match family {
            Family::V4 => format!("f2b-{}", self.name),
            Family::V6 => format!("f2b-{}6", self.name),
        }
    }

    fn direct(&self, verb: &str, family: Family, chain: &str, rest: &[String]) -> Vec<String> {
        let mut a = argv(&["--direct", verb, family.name(), "filter", chain]);
        a.extend(rest.iter().cloned());
        a
    }

    /// The rule in `<chain>` that sends the jail's packets on.
    fn jump(&self, family: Family) -> Vec<String> {
        let ports = self.ports.join(",");
        let mut rule = vec!["0".to_string()];
        match self.kind {
            Kind::Multiport => rule.extend(words(&format!(
                "-m conntrack --ctstate NEW -p {} -m multiport --dports {ports} -j {}",
                self.protocol,
                self.jail_chain()
            ))),
            Kind::New => rule.extend(words(&format!(
                "-m state --state NEW -p {} -m multiport --dports {ports} -j {}",
                self.protocol,
                self.jail_chain()
            ))),
            Kind::AllPorts => rule.extend(argv(&["-j", &self.jail_chain()])),
            Kind::Ipset => {
                rule.extend(self.actiontype.iter().cloned());
                rule.extend(argv(&["-m", "set", "--match-set", &self.set(family), "src", "-j"]));
                rule.extend(self.blocktype[family as usize].iter().cloned());
            }
            Kind::RichRules | Kind::RichLogging { .. } => return Vec::new(),
        }
        rule
    }

    /// `firewall-cmd` argv that build the family's structure, in order.
    pub fn start(&self, family: Family) -> Vec<Vec<String>> {
        let c = self.jail_chain();
        match self.kind {
            Kind::Multiport | Kind::AllPorts | Kind::New => vec![
                argv(&["--direct", "--add-chain", family.name(), "filter", &c]),
                self.direct("--add-rule", family, &c, &argv(&["1000", "-j", "RETURN"])),
                self.direct("--add-rule", family, &self.chain, &self.jump(family)),
            ],
            Kind::Ipset => vec![self.direct("--add-rule", family, &self.chain, &self.jump(family))],
            Kind::RichRules | Kind::RichLogging { .. } => Vec::new(),
        }
    }

    /// `firewall-cmd` argv that remove the family's structure, in order.
    pub fn stop(&self, family: Family) -> Vec<Vec<String>> {
        let c = self.jail_chain();
        match self.kind {
            Kind::Multiport | Kind::AllPorts | Kind::New => vec![
                self.direct("--remove-rule", family, &self.chain, &self.jump(family)),
                argv(&["--direct", "--remove-rules", family.name(), "filter", &c]),
                argv(&["--direct", "--remove-chain", family.name(), "filter", &c]),
            ],
            Kind::Ipset => vec![self.direct("--remove-rule", family, &self.chain, &self.jump(family))],
            Kind::RichRules | Kind::RichLogging { .. } => Vec::new(),
        }
    }

    /// The direct rule of a ban in the jail's chain, after its priority.
    fn ban_rule(&self, ip: &str) -> Vec<String> {
        let mut rule = argv(&["0", "-s", ip, "-j"]);
        rule.extend(self.blocktype[Family::of(ip) as usize].iter().cloned());
        rule
    }

    /// The rich rules of a ban: one per port.
    pub fn rich_rules(&self, ip: &str) -> Vec<String> {
        let family = Family::of(ip);
        let block = &self.rich_blocktype[family as usize];
        let suffix = match &self.kind {
            Kind::RichLogging { level, rate } => {
                format!("log prefix='{}' level='{level}' limit value='{rate}/m' {block}", self.jail_chain())
            }
            _ => block.clone(),
        };
        self.ports
            .iter()
            .map(|port| {
                format!(
                    "rule family='{}' source address='{ip}' port port='{}' protocol='{}' {suffix}",
                    family.name(),
                    // firewalld writes port ranges with `-`; jails give `:`.
                    port.replace(':', "-"),
                    self.protocol
                )
            })
            .collect()
    }

    /// `firewall-cmd` argv that add (`add`) or remove a ban.
    pub fn ban(&self, ip: &str, add: bool) -> Vec<Vec<String>> {
        let family = Family::of(ip);
        match self.kind {
            Kind::Multiport | Kind::AllPorts | Kind::New => {
                let verb = if add { "--add-rule" } else { "--remove-rule" };
                vec![self.direct(verb, family, &self.jail_chain(), &self.ban_rule(ip))]
            }
            Kind::RichRules | Kind::RichLogging { .. } => {
                let verb = if add { "--add-rich-rule" } else { "--remove-rich-rule" };
                let zone = format!("--zone={}", self.zone);
                self.rich_rules(ip).into_iter().map(|rule| vec![zone.clone(), format!("{verb}={rule}")]).collect()
            }
            Kind::Ipset => Vec::new(),
        }
    }

    /// `ipset` argv that makes the family's set.
    pub fn create_set(&self, family: Family) -> Vec<String> {
        let mut a = argv(&["-exist", "create", &self.set(family), &self.ipset_type, "timeout"]);
        a.push(self.default_ipsettime.to_string());
        a.extend(["maxelem".to_string(), self.maxelem.to_string()]);
        if family == Family::V6 {
            a.extend(argv(&["family", "inet6"]));
        }
        a
    }

    fn element_timeout(&self, bantime: i64) -> u32 {
        match self.ipsettime {
            Some(seconds) => seconds,
            None if (1..=MAX_IPSET_TIMEOUT).contains(&bantime) => bantime as u32,
            None => 0,
        }
    }
}

pub struct Firewalld {
    plan: Plan,
    started: [bool; 2],
    /// The bans this instance applied and has not lifted, with their
    /// ipset timeout (0 for the other kinds).
    applied: BTreeMap<String, u32>,
}

impl Firewalld {
    fn run(&self, program: &str, args: &[String]) -> Result<firewall::Output, String> {
        firewall::run(program, args, self.plan.timeout_ms)
    }

    fn run_ok(&self, program: &str, args: &[String]) -> Result<(), String> {
        let out = self.run(program, args)?;
        // firewall-cmd says ALREADY_ENABLED / NOT_ENABLED, exiting 0, when
        // the firewall is already as asked.
        if out.status == 0 {
            Ok(())
        } else {
            Err(format!("`{program} {}` exited with status {}: {}", args.join(" "), out.status, out.stderr.trim()))
        }
    }

    fn start_family(&mut self, family: Family) -> Result<(), String> {
        if self.plan.kind == Kind::Ipset {
            let set = self.plan.set(family);
            self.run_ok("ipset", &self.plan.create_set(family))?;
            // Left by a run that could not stop: the live bans come again.
            self.run_ok("ipset", &argv(&["flush", &set]))?;
        }
        for args in self.plan.start(family) {
            self.run_ok("firewall-cmd", &args)?;
        }
        self.started[family as usize] = true;
        Ok(())
    }

    fn apply(&mut self, ip: &str, timeout: u32) -> Result<(), String> {
        let family = Family::of(ip);
        if !self.started[family as usize] {
            self.start_family(family)?;
        }
        if self.plan.kind == Kind::Ipset {
            let mut a = argv(&["-exist", "add", &self.plan.set(family), ip, "timeout"]);
            a.push(timeout.to_string());
            return self.run_ok("ipset", &a);
        }
        for args in self.plan.ban(ip, true) {
            self.run_ok("firewall-cmd", &args)?;
        }
        Ok(())
    }

    fn lift(&self, ip: &str) -> Result<(), String> {
        let family = Family::of(ip);
        if !self.started[family as usize] {
            return Ok(());
        }
        if self.plan.kind == Kind::Ipset {
            return self.run_ok("ipset", &argv(&["-exist", "del", &self.plan.set(family), ip]));
        }
        for args in self.plan.ban(ip, false) {
            self.run_ok("firewall-cmd", &args)?;
        }
        Ok(())
    }

    /// Whether the family's structure is in place (after a `firewall-cmd
    /// --reload`, runtime direct rules are gone).
    fn structure_present(&self, family: Family) -> Result<bool, String> {
        let mut present = true;
        if self.plan.kind == Kind::Ipset {
            present &= self.run("ipset", &argv(&["list", "-n", &self.plan.set(family)]))?.status == 0;
        }
        if let Some(jump) = self.plan.start(family).last() {
            let mut query = jump.clone();
            query[1] = "--query-rule".into();
            present &= self.run("firewall-cmd", &query)?.status == 0;
        }
        Ok(present)
    }

    /// Whether ban `ip` is in the firewall.
    fn ban_present(&self, ip: &str) -> Result<bool, String> {
        let family = Family::of(ip);
        if self.plan.kind == Kind::Ipset {
            return Ok(self.run("ipset", &argv(&["test", &self.plan.set(family), ip]))?.status == 0);
        }
        for args in self.plan.ban(ip, true) {
            let query: Vec<String> = args
                .iter()
                .map(|a| match a.strip_prefix("--add-") {
                    Some(rest) => format!("--query-{rest}"),
                    None => a.clone(),
                })
                .collect();
            if self.run("firewall-cmd", &query)?.status != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Action for Firewalld {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Firewalld { plan: Plan::from_options(&options)?, started: [false; 2], applied: BTreeMap::new() })
    }

    fn start(&mut self) -> Result<(), String> {
        self.start_family(Family::V4)
    }

    fn stop(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        // Rich rules have no chain to take them: each goes by itself, as
        // fail2ban lifts each ban of an action without a flush.
        if matches!(self.plan.kind, Kind::RichRules | Kind::RichLogging { .. }) {
            for ip in self.applied.keys() {
                errors.extend(self.lift(ip).err());
            }
        }
        for family in Family::BOTH {
            if !self.started[family as usize] {
                continue;
            }
            for args in self.plan.stop(family) {
                errors.extend(self.run_ok("firewall-cmd", &args).err());
            }
            if self.plan.kind == Kind::Ipset {
                let set = self.plan.set(family);
                errors.extend(self.run_ok("ipset", &argv(&["flush", &set])).err());
                errors.extend(self.run_ok("ipset", &argv(&["destroy", &set])).err());
            }
            self.started[family as usize] = false;
        }
        self.applied.clear();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// The structure first (made again, with every ban, when firewalld
    /// lost it in a reload), then each ban.
    fn check(&mut self) -> Result<(), String> {
        for family in Family::BOTH {
            if self.started[family as usize] && !self.structure_present(family)? {
                log::warn(&format!(
                    "firewalld lost the {} structure of f2b-{} (a reload?); making it again",
                    family.name(),
                    self.plan.name
                ));
                self.start_family(family)?;
            }
        }
        let mut restored = Vec::new();
        for (ip, timeout) in self.applied.clone() {
            if !self.ban_present(&ip)? {
                self.apply(&ip, timeout)?;
                restored.push(ip);
            }
        }
        if !restored.is_empty() {
            log::warn(&format!(
                "{} ban(s) had gone from firewalld, applied again: {}",
                restored.len(),
                restored.join(", ")
            ));
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        if self.plan.kind == Kind::Ipset && self.plan.ipset_type == "hash:ip" && address::is_prefix(&ticket.ip) {
            return Err(format!(
                "{} is a prefix, and this action's ipsets are hash:ip sets of single addresses; give it \
                 ipsettype = hash:net (stop the jail and `ipset destroy` the old sets first)",
                ticket.ip
            ));
        }
        let timeout = self.plan.element_timeout(ticket.bantime);
        self.apply(&ticket.ip, timeout)?;
        self.applied.insert(ticket.ip.clone(), timeout);
        Ok(())
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        self.lift(&ticket.ip)?;
        self.applied.remove(&ticket.ip);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Firewalld);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    fn joined(all: Vec<Vec<String>>) -> Vec<String> {
        all.iter().map(|a| a.join(" ")).collect()
    }

    #[test]
    fn direct_chains_are_fail2bans() {
        let p = plan(&[("name", "sshd"), ("port", "ssh,2222")]).unwrap();
        assert_eq!(
            joined(p.start(Family::V4)),
            [
                "--direct --add-chain ipv4 filter f2b-sshd",
                "--direct --add-rule ipv4 filter f2b-sshd 1000 -j RETURN",
                "--direct --add-rule ipv4 filter INPUT_direct 0 -m conntrack --ctstate NEW -p tcp -m multiport \
                 --dports ssh,2222 -j f2b-sshd",
            ]
        );
        assert_eq!(
            joined(p.ban("2001:db8::7", true)),
            [
                "--direct --add-rule ipv6 filter f2b-sshd 0 -s 2001:db8::7 -j REJECT --reject-with icmp6-port-unreachable"
            ]
        );
        let p = plan(&[("name", "x"), ("kind", "new"), ("port", "22")]).unwrap();
        assert!(p.start(Family::V4)[2].join(" ").contains("0 -m state --state NEW -p tcp -m multiport --dports 22"));
        let p = plan(&[("name", "x"), ("kind", "allports")]).unwrap();
        assert_eq!(p.stop(Family::V6)[0].join(" "), "--direct --remove-rule ipv6 filter INPUT_direct 0 -j f2b-x");
    }

    #[test]
    fn ipset_kind_matches_the_set_in_a_direct_rule() {
        let p = plan(&[("name", "sshd"), ("kind", "ipset"), ("port", "22"), ("ipsettime", "<bantime>")]).unwrap();
        assert_eq!(
            p.start(Family::V6)[0].join(" "),
            "--direct --add-rule ipv6 filter INPUT_direct 0 -p tcp -m multiport --dports 22 -m set --match-set \
             f2b-sshd6 src -j REJECT --reject-with icmp6-port-unreachable"
        );
        assert_eq!(
            p.create_set(Family::V6).join(" "),
            "-exist create f2b-sshd6 hash:ip timeout 0 maxelem 65536 family inet6"
        );
        assert_eq!((p.element_timeout(600), p.element_timeout(-1)), (600, 0));
        let err = plan(&[("kind", "ipset"), ("ipsettype", "firewalld")]).unwrap_err();
        assert!(err.contains("permanent") && err.contains("ipsetbackend = ipset"), "{err}");
        assert!(plan(&[("kind", "ipset"), ("ipsetbackend", "ipset"), ("ipsettype", "hash:net")]).is_ok());
    }

    #[test]
    fn rich_rules_are_one_per_port() {
        let p = plan(&[("name", "sshd"), ("kind", "rich-rules"), ("port", "22, 2222")]).unwrap();
        assert_eq!(
            p.rich_rules("192.0.2.7"),
            [
                "rule family='ipv4' source address='192.0.2.7' port port='22' protocol='tcp' reject \
                 type='icmp-port-unreachable'",
                "rule family='ipv4' source address='192.0.2.7' port port='2222' protocol='tcp' reject \
                 type='icmp-port-unreachable'",
            ]
        );
        let p = plan(&[("name", "sshd"), ("kind", "rich-logging"), ("port", "22"), ("rate", "2")]).unwrap();
        assert_eq!(
            p.ban("2001:db8::7", false)[0].join(" "),
            "--zone=public --remove-rich-rule=rule family='ipv6' source address='2001:db8::7' port port='22' protocol='tcp' log \
             prefix='f2b-sshd' level='info' limit value='2/m' reject type='icmp6-port-unreachable'"
        );
    }

    #[test]
    fn the_family_tags_are_filled_per_family() {
        let stock = [
            ("rejecttype", "icmp-port-unreachable"),
            ("rejecttype?family=inet6", "icmp6-port-unreachable"),
            ("blocktype", "REJECT --reject-with <rejecttype>"),
            ("rich-blocktype", "reject type='<rejecttype>'"),
        ];
        let p = plan(&stock).unwrap();
        assert_eq!(p.blocktype[1].join(" "), "REJECT --reject-with icmp6-port-unreachable");
        assert_eq!(p.rich_blocktype[0], "reject type='icmp-port-unreachable'");
        let p = plan(&[("rejecttype", "icmp-host-prohibited"), ("blocktype", "REJECT --reject-with <rejecttype>")])
            .unwrap();
        assert_eq!(p.blocktype[0].join(" "), "REJECT --reject-with icmp-host-prohibited");
        assert_eq!(p.blocktype[1].join(" "), "REJECT --reject-with icmp6-adm-prohibited");
    }

    #[test]
    fn nothing_can_break_out_of_a_rich_rule() {
        assert!(plan(&[("port", "22' accept")]).unwrap_err().contains("`port`"));
        assert!(plan(&[("kind", "rich-logging"), ("level", "info' x")]).unwrap_err().contains("`level`"));
        assert!(plan(&[("rich-blocktype", "accept")]).unwrap_err().contains("`rich-blocktype`"));
        assert!(plan(&[("rich-blocktype", "reject type='x' accept type='y'")]).is_err());
        assert!(address::check_address_or_prefix("192.0.2.7' accept").is_err());
        assert!(address::check_address_or_prefix("2001:db8::/48").is_ok());
    }
}
