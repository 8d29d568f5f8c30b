//! Bans with nftables: one table `inet wasmban-<name>` per jail holding
//! address sets (IPv4 and IPv6, with per-element timeouts), prefix sets
//! (the same, with intervals, for prefix bans such as `2001:db8::/64`) and a
//! base chain that rejects the jail's ports for sources in them. Prefixes
//! have sets of their own so that the address sets stay plain hashes,
//! whose batches do not slow down as they grow.
//!
//! A table per jail makes start and stop single atomic transactions that
//! cannot disturb another jail's rules, and whatever an earlier run left
//! behind (a kill -9) is replaced by the same transaction that builds the
//! table. A batch of bans is one `nft -f -` run, however many addresses it
//! holds. Each element carries the ban's length as its timeout, so a ban
//! ends in the kernel even if the daemon is gone.
//!
//! It can only run `nft` (its grant), with its script on standard input.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use wasmban_plugin_sdk::address::Net;
use wasmban_plugin_sdk::{Action, Options, Ticket, firewall, log};

/// The longest element timeout handed to the kernel (30 days, in seconds).
pub const MAX_KERNEL_TIMEOUT: i64 = 30 * 24 * 3600;

/// Which packets are checked against the sets.
#[derive(Debug, Clone, PartialEq)]
pub enum PortMatch {
    /// The jail's ports (`port = ssh,2222` or `1000:2000`).
    Multiport(Vec<String>),
    /// Every port of the protocols.
    AllPorts,
}

/// The settings of one jail's nftables action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub protocols: Vec<String>,
    pub ports: PortMatch,
    pub hook: String,
    pub priority: i32,
    pub blocktype: String,
    /// The verdict for the jail's packets from addresses not banned, when
    /// not `return` (fail2ban's `returntype`).
    pub returntype: Option<String>,
    pub timeout_ms: u32,
}

/// nft identifiers: what a jail name may be if it is to name a table.
fn valid_identifier(option: &str, value: &str) -> Result<(), String> {
    // Every name made from it has a prefix (`wasmban-`, `f2b-`,
    // `addr-set-`), so a jail named `3proxy` (fail2ban's stock jail) makes
    // valid nftables names too.
    let ok = value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "option `{option}` = {value:?}: nftables names must start with a letter or digit and hold at most 64 letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// An nftables verdict from fail2ban's spelling of it (`REJECT`, `DROP`,
/// `RETURN` as iptables writes them, or `reject with tcp reset`).
fn verdict(option: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    let lowered = value.to_ascii_lowercase();
    let first = lowered.split_whitespace().next().unwrap_or("");
    let ok = matches!(first, "reject" | "drop" | "return" | "accept")
        && (first == "reject" || lowered == first)
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'));
    if !ok {
        return Err(format!(
            "option `{option}` = {value:?}: expected drop, reject, reject with a type (\"reject with tcp reset\"), \
             return or accept"
        ));
    }
    // Only the keyword is lowered: a reject type keeps its spelling.
    Ok(format!("{first}{}", &value[first.len()..]))
}

/// `ssh, 2222,1000:2000` → `["ssh", "2222", "1000-2000"]`.
fn parse_ports(value: &str) -> Result<Vec<String>, String> {
    let mut ports = Vec::new();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let word = word.replace(':', "-");
        let ok =
            word.split('-').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                && word.split('-').count() <= 2;
        if !ok {
            return Err(format!(
                "option `port` = {value:?}: {word:?} is not a port, a service name or a range such as 1000:2000"
            ));
        }
        ports.push(word);
    }
    if ports.is_empty() {
        return Err("option `port` is empty: give ports such as ssh or 22,2222, or use type = allports".into());
    }
    Ok(ports)
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let name = options.get_or("name", "default").to_string();
        valid_identifier("name", &name)?;
        let mut protocols = Vec::new();
        for p in options.get_or("protocol", "tcp").split([',', ' ']).filter(|p| !p.is_empty()) {
            if !matches!(p, "tcp" | "udp" | "sctp" | "udplite" | "dccp") {
                return Err(format!("option `protocol` = {p:?}: expected tcp, udp, sctp, udplite or dccp"));
            }
            protocols.push(p.to_string());
        }
        if protocols.is_empty() {
            return Err("option `protocol` is empty: give tcp, udp, ... (comma-separated)".into());
        }
        let ports = match options.get_or("type", "multiport") {
            "multiport" | "oneport" => PortMatch::Multiport(parse_ports(options.get_or("port", "ssh"))?),
            "allports" => PortMatch::AllPorts,
            other => return Err(format!("option `type` = {other:?}: expected multiport or allports")),
        };
        let hook = options.get_or("chain_hook", "input").to_string();
        if !matches!(hook.as_str(), "input" | "forward") {
            return Err(format!("option `chain_hook` = {hook:?}: expected input or forward"));
        }
        let priority = options.get_or("chain_priority", "-1");
        let priority = priority
            .trim()
            .parse::<i32>()
            .map_err(|_| format!("option `chain_priority` = {priority:?}: expected a number such as -1"))?;
        let blocktype = verdict("blocktype", options.get_or("blocktype", "reject"))?;
        // What the chain does with the jail's other packets: nothing by
        // default; fail2ban's pass2allow-ftp gives `blocktype = RETURN`
        // and `returntype = DROP` (banned addresses pass, the others not).
        let returntype = match verdict("returntype", options.get_or("returntype", "return"))?.as_str() {
            "return" => None,
            other => Some(other.to_string()),
        };
        let timeout_ms = options.millis("timeout", 60_000)?;
        Ok(Plan { name, protocols, ports, hook, priority, blocktype, returntype, timeout_ms })
    }

    pub fn table(&self) -> String {
        format!("wasmban-{}", self.name)
    }

    fn set(&self, v6: bool) -> String {
        if v6 { format!("addr6-set-{}", self.name) } else { format!("addr-set-{}", self.name) }
    }

    fn prefix_set(&self, v6: bool) -> String {
        if v6 { format!("net6-set-{}", self.name) } else { format!("net-set-{}", self.name) }
    }

    /// The set `net` goes in.
    fn set_of(&self, net: &Net) -> String {
        if net.is_prefix() { self.prefix_set(net.is_v6()) } else { self.set(net.is_v6()) }
    }

    fn chain(&self) -> String {
        format!("f2b-{}", self.name)
    }

    /// The jail's packets: its protocols and ports.
    fn packets(&self) -> String {
        let mut rule = format!("meta l4proto {{ {} }} ", self.protocols.join(", "));
        if let PortMatch::Multiport(ports) = &self.ports {
            let _ = write!(rule, "th dport {{ {} }} ", ports.join(", "));
        }
        rule
    }

    fn rule(&self, v6: bool, prefixes: bool) -> String {
        let family = if v6 { "ip6" } else { "ip" };
        let set = if prefixes { self.prefix_set(v6) } else { self.set(v6) };
        format!("{}{family} saddr @{set} {}", self.packets(), self.blocktype)
    }

    /// The rule after the set rules, for `returntype` (empty without one).
    fn return_rule(&self) -> String {
        match &self.returntype {
            Some(verdict) => format!("\t\t{}{verdict}\n", self.packets()),
            None => String::new(),
        }
    }

    /// One transaction that removes any table of this name (left by an
    /// earlier run) and builds it afresh.
    pub fn start_script(&self) -> String {
        let table = self.table();
        format!(
            "add table inet {table}\n\
             delete table inet {table}\n\
             table inet {table} {{\n\
             \tset {set4} {{ type ipv4_addr; flags timeout; }}\n\
             \tset {set6} {{ type ipv6_addr; flags timeout; }}\n\
             \tset {nets4} {{ type ipv4_addr; flags interval, timeout; }}\n\
             \tset {nets6} {{ type ipv6_addr; flags interval, timeout; }}\n\
             \tchain {chain} {{\n\
             \t\ttype filter hook {hook} priority {priority}; policy accept;\n\
             \t\t{rule4}\n\
             \t\t{rule6}\n\
             \t\t{prefix_rule4}\n\
             \t\t{prefix_rule6}\n\
             {returning}\
             \t}}\n\
             }}\n",
            set4 = self.set(false),
            set6 = self.set(true),
            nets4 = self.prefix_set(false),
            nets6 = self.prefix_set(true),
            chain = self.chain(),
            hook = self.hook,
            priority = self.priority,
            rule4 = self.rule(false, false),
            rule6 = self.rule(true, false),
            prefix_rule4 = self.rule(false, true),
            prefix_rule6 = self.rule(true, true),
            returning = self.return_rule(),
        )
    }

    /// Removes the table whether or not it is there.
    pub fn stop_script(&self) -> String {
        let table = self.table();
        format!("add table inet {table}\ndelete table inet {table}\n")
    }

    /// The elements of `tickets`, by their set: `192.0.2.1 timeout 600s`.
    /// Bans longer than [`MAX_KERNEL_TIMEOUT`] get no timeout: some kernels
    /// refuse longer ones, and the daemon lifts them anyway.
    fn elements(&self, tickets: &[(Net, i64)], with_timeout: bool) -> BTreeMap<String, Vec<String>> {
        let mut by_set: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (net, bantime) in tickets {
            let element = match (with_timeout, *bantime) {
                (true, secs) if secs > 0 && secs <= MAX_KERNEL_TIMEOUT => format!("{net} timeout {secs}s"),
                _ => net.to_string(),
            };
            by_set.entry(self.set_of(net)).or_default().push(element);
        }
        by_set
    }

    /// One transaction adding every address, each with its ban's length.
    pub fn ban_script(&self, tickets: &[(Net, i64)]) -> String {
        let mut script = String::new();
        for (set, elements) in self.elements(tickets, true) {
            let _ = writeln!(script, "add element inet {} {set} {{ {} }}", self.table(), elements.join(", "));
        }
        script
    }

    /// One transaction removing every address. Each is added first: an
    /// element whose timeout ran out is gone already, and deleting it
    /// alone would fail the whole transaction.
    pub fn unban_script(&self, tickets: &[(Net, i64)]) -> String {
        let mut script = String::new();
        let table = self.table();
        for (set, elements) in self.elements(tickets, false) {
            let list = elements.join(", ");
            let _ = writeln!(script, "add element inet {table} {set} {{ {list} }}");
            let _ = writeln!(script, "delete element inet {table} {set} {{ {list} }}");
        }
        script
    }

    /// `nft list chain` arguments for the check.
    pub fn list_chain(&self) -> Vec<String> {
        ["list", "chain", "inet", &self.table(), &self.chain()].iter().map(|s| s.to_string()).collect()
    }

    /// Every set's name.
    pub fn sets(&self) -> [String; 4] {
        [self.set(false), self.set(true), self.prefix_set(false), self.prefix_set(true)]
    }

    /// `nft list set` arguments for `set`.
    pub fn list_set(&self, set: &str) -> Vec<String> {
        ["list", "set", "inet", &self.table(), set].iter().map(|s| s.to_string()).collect()
    }

    /// Whether a `list chain` listing still holds the rule of every set.
    pub fn listing_is_complete(&self, listing: &str) -> bool {
        self.sets().iter().all(|set| listing.contains(&format!("@{set} ")))
    }
}

/// The addresses and prefixes in a `nft list set` listing: `elements = {
/// 192.0.2.1 timeout 10m expires 9m58s, 2001:db8::/64, ... }`, over one
/// line or several.
pub fn set_elements(listing: &str) -> Vec<Net> {
    let Some(start) = listing.find("elements = {") else {
        return Vec::new();
    };
    let body = &listing[start + "elements = {".len()..];
    let body = &body[..body.find('}').unwrap_or(body.len())];
    body.split(',').filter_map(|element| parse_net(element.split_whitespace().next()?).ok()).collect()
}

/// At most ten addresses, for a log line.
fn shown(ips: &[(Net, i64)]) -> String {
    let mut text = ips.iter().take(10).map(|(ip, _)| ip.to_string()).collect::<Vec<_>>().join(", ");
    if ips.len() > 10 {
        text.push_str(&format!(" and {} more", ips.len() - 10));
    }
    text
}

/// Only addresses and prefixes reach the script: a filter's id cannot add
/// a statement. A prefix's host bits are cleared, as nft would clear them,
/// so that what the sets list back compares equal.
pub fn parse_net(ip: &str) -> Result<Net, String> {
    Net::parse(ip).map_err(|e| format!("{e}; nftables can only ban addresses and prefixes"))
}

pub struct Nftables {
    plan: Plan,
    started: bool,
    /// The addresses this instance banned and has not lifted, with their
    /// ban's length: what the sets must hold, as `check` compares.
    applied: BTreeMap<Net, i64>,
}

impl Nftables {
    fn nft(&self, script: &str) -> Result<(), String> {
        let out = firewall::run_with_input("nft", &["-f".to_string(), "-".to_string()], script, self.plan.timeout_ms)?;
        if out.status == 0 {
            return Ok(());
        }
        let first = script.lines().next().unwrap_or("");
        let shown = if first.len() > 160 { format!("{}...", &first[..160]) } else { first.to_string() };
        Err(format!("`nft -f -` exited with status {} on `{shown}`: {}", out.status, out.stderr.trim()))
    }

    /// Run one batch script for `tickets`: every ticket gets the outcome of
    /// its transaction, except those whose address was refused before it.
    /// Prefixes go in a transaction of their own: one that overlaps a
    /// prefix already banned (nft refuses overlapping intervals) must not
    /// cost the batch's addresses their bans.
    fn batch(
        &mut self,
        tickets: &[Ticket],
        script: impl Fn(&Plan, &[(Net, i64)]) -> String,
    ) -> Vec<Result<(), String>> {
        let parsed: Vec<Result<Net, String>> = tickets.iter().map(|t| parse_net(&t.ip)).collect();
        let good = |prefixes: bool| -> Vec<(Net, i64)> {
            parsed
                .iter()
                .zip(tickets)
                .filter_map(|(p, t)| p.as_ref().ok().map(|net| (*net, t.bantime)))
                .filter(|(net, _)| net.is_prefix() == prefixes)
                .collect()
        };
        let outcome = |elements: Vec<(Net, i64)>| {
            if elements.is_empty() { Ok(()) } else { self.nft(&script(&self.plan, &elements)) }
        };
        let addresses = outcome(good(false));
        let prefixes = outcome(good(true));
        parsed
            .into_iter()
            .map(|p| match p {
                Ok(net) if net.is_prefix() => prefixes.clone(),
                Ok(_) => addresses.clone(),
                Err(e) => Err(e),
            })
            .collect()
    }
}

impl Action for Nftables {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Nftables { plan: Plan::from_options(&options)?, started: false, applied: BTreeMap::new() })
    }

    fn start(&mut self) -> Result<(), String> {
        self.nft(&self.plan.start_script())?;
        self.started = true;
        Ok(())
    }

    fn stop(&mut self) -> Result<(), String> {
        self.started = false;
        self.nft(&self.plan.stop_script())
    }

    /// The table first (rebuilt when it or a rule is gone, which empties
    /// the sets), then the sets: an address this instance banned that a
    /// set lost (deleted by hand, a flush) is added again, with its ban's
    /// length as the timeout, and an element it does not hold is deleted.
    /// What was changed is logged; an error only when nft failed.
    fn check(&mut self) -> Result<(), String> {
        let out = firewall::run("nft", &self.plan.list_chain(), self.plan.timeout_ms)?;
        if !(out.status == 0 && self.plan.listing_is_complete(&out.stdout)) {
            log::warn(&format!(
                "nftables table {} is missing or damaged ({}); rebuilding it",
                self.plan.table(),
                if out.status == 0 { "a rule is gone" } else { out.stderr.trim() }
            ));
            self.start()?;
        }
        let mut listed = BTreeSet::new();
        for set in self.plan.sets() {
            let out = firewall::run("nft", &self.plan.list_set(&set), self.plan.timeout_ms)?;
            if out.status != 0 {
                return Err(format!(
                    "`nft {}` exited with status {}: {}",
                    self.plan.list_set(&set).join(" "),
                    out.status,
                    out.stderr.trim()
                ));
            }
            listed.extend(set_elements(&out.stdout));
        }
        let missing: Vec<(Net, i64)> =
            self.applied.iter().filter(|(net, _)| !listed.contains(net)).map(|(net, t)| (*net, *t)).collect();
        let extra: Vec<(Net, i64)> =
            listed.iter().filter(|net| !self.applied.contains_key(net)).map(|net| (*net, 0)).collect();
        if !missing.is_empty() {
            self.nft(&self.plan.ban_script(&missing))?;
            log::warn(&format!(
                "nftables table {} had lost {} ban(s), added again: {}",
                self.plan.table(),
                missing.len(),
                shown(&missing)
            ));
        }
        if !extra.is_empty() {
            self.nft(&self.plan.unban_script(&extra))?;
            log::warn(&format!(
                "nftables table {} held {} address(es) the daemon does not hold, deleted: {}",
                self.plan.table(),
                extra.len(),
                shown(&extra)
            ));
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.ban_all(std::slice::from_ref(ticket)).pop().unwrap_or(Ok(()))
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.unban_all(std::slice::from_ref(ticket)).pop().unwrap_or(Ok(()))
    }

    fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        if !self.started
            && let Err(e) = self.start()
        {
            return tickets.iter().map(|_| Err(e.clone())).collect();
        }
        let results = self.batch(tickets, Plan::ban_script);
        for (ticket, result) in tickets.iter().zip(&results) {
            if result.is_ok()
                && let Ok(net) = parse_net(&ticket.ip)
            {
                self.applied.insert(net, ticket.bantime);
            }
        }
        results
    }

    fn unban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        let results = if self.started {
            self.batch(tickets, Plan::unban_script)
        } else {
            tickets.iter().map(|_| Ok(())).collect()
        };
        for (ticket, result) in tickets.iter().zip(&results) {
            if result.is_ok()
                && let Ok(net) = parse_net(&ticket.ip)
            {
                self.applied.remove(&net);
            }
        }
        results
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Nftables);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn the_start_script_replaces_any_earlier_table_in_one_transaction() {
        let p = plan(&[("name", "sshd"), ("port", "ssh, 2222,1000:2000")]).unwrap();
        let script = p.start_script();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[0], "add table inet wasmban-sshd");
        assert_eq!(lines[1], "delete table inet wasmban-sshd");
        assert!(
            script.contains("meta l4proto { tcp } th dport { ssh, 2222, 1000-2000 } ip saddr @addr-set-sshd reject\n")
        );
        assert!(script.contains("ip6 saddr @addr6-set-sshd reject\n"));
        assert!(script.contains("type filter hook input priority -1;"));
    }

    #[test]
    fn fail2bans_stock_jails_3proxy_and_pass2allow_ftp_build() {
        assert!(plan(&[("name", "3proxy")]).unwrap().start_script().contains("table inet wasmban-3proxy {"));
        let p = plan(&[
            ("name", "pass2allow-ftp"),
            ("port", "ftp,ftp-data"),
            ("blocktype", "RETURN"),
            ("returntype", "DROP"),
        ])
        .unwrap();
        let script = p.start_script();
        assert!(script.contains("th dport { ftp, ftp-data } ip saddr @addr-set-pass2allow-ftp return\n"), "{script}");
        assert!(script.contains("\t\tmeta l4proto { tcp } th dport { ftp, ftp-data } drop\n\t}"), "{script}");
        assert!(!plan(&[("name", "x")]).unwrap().start_script().contains("} drop"));
        assert_eq!(verdict("blocktype", "REJECT").unwrap(), "reject");
        assert_eq!(
            verdict("blocktype", "reject with icmpx type admin-prohibited").unwrap(),
            "reject with icmpx type admin-prohibited"
        );
        assert!(verdict("blocktype", "DROP now").is_err());
    }

    #[test]
    fn allports_matches_protocols_only() {
        let p = plan(&[("name", "x"), ("type", "allports"), ("protocol", "tcp,udp"), ("blocktype", "drop")]).unwrap();
        assert!(p.start_script().contains("meta l4proto { tcp, udp } ip saddr @addr-set-x drop"));
    }

    #[test]
    fn a_batch_is_one_statement_per_family_with_timeouts() {
        let p = plan(&[("name", "sshd")]).unwrap();
        let tickets = [
            (parse_net("192.0.2.1").unwrap(), 600),
            (parse_net("2001:db8::1").unwrap(), -1),
            (parse_net("192.0.2.2").unwrap(), 60),
            (parse_net("2001:db8::2").unwrap(), MAX_KERNEL_TIMEOUT + 1),
            (parse_net("2001:db8:0:7::/64").unwrap(), 600),
        ];
        assert_eq!(
            p.ban_script(&tickets),
            "add element inet wasmban-sshd addr-set-sshd { 192.0.2.1 timeout 600s, 192.0.2.2 timeout 60s }\n\
             add element inet wasmban-sshd addr6-set-sshd { 2001:db8::1, 2001:db8::2 }\n\
             add element inet wasmban-sshd net6-set-sshd { 2001:db8:0:7::/64 timeout 600s }\n"
        );
        let unban = p.unban_script(&tickets[..1]);
        assert_eq!(
            unban,
            "add element inet wasmban-sshd addr-set-sshd { 192.0.2.1 }\n\
             delete element inet wasmban-sshd addr-set-sshd { 192.0.2.1 }\n"
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        assert!(plan(&[("type", "someports")]).unwrap_err().contains("`type`"));
        assert!(plan(&[("name", "a b")]).unwrap_err().contains("`name`"));
        assert!(plan(&[("name", "x;flush ruleset")]).unwrap_err().contains("`name`"));
        assert!(plan(&[("port", "22 } ; flush ruleset")]).unwrap_err().contains("`port`"));
        assert!(plan(&[("protocol", "icmp")]).unwrap_err().contains("`protocol`"));
        assert!(plan(&[("blocktype", "continue")]).unwrap_err().contains("`blocktype`"));
        assert!(plan(&[("blocktype", "reject; flush ruleset")]).unwrap_err().contains("`blocktype`"));
        assert!(plan(&[("chain_hook", "prerouting")]).unwrap_err().contains("`chain_hook`"));
    }

    #[test]
    fn only_addresses_and_prefixes_reach_the_script() {
        assert!(parse_net("192.0.2.1").is_ok());
        assert_eq!(parse_net("::ffff:192.0.2.1").unwrap().to_string(), "192.0.2.1");
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("2001:db8::7/128").unwrap().to_string(), "2001:db8::7");
        assert!(parse_net("10.0.0.0/0").is_err() && parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("1.2.3.4 } ; flush ruleset ; {").is_err());
        assert!(parse_net("1.2.3.4/8 }").is_err());
    }

    #[test]
    fn the_check_needs_every_rule() {
        let p = plan(&[("name", "sshd")]).unwrap();
        let full = "table inet wasmban-sshd {\n chain f2b-sshd {\n tcp dport 22 ip saddr @addr-set-sshd reject\n tcp dport 22 ip6 saddr @addr6-set-sshd reject\n tcp dport 22 ip saddr @net-set-sshd reject\n tcp dport 22 ip6 saddr @net6-set-sshd reject\n }\n}";
        assert!(p.listing_is_complete(full));
        assert!(!p.listing_is_complete(&full.replace("@net6-set-sshd ", "@other ")));
        assert!(!p.listing_is_complete("table inet wasmban-sshd {\n chain f2b-sshd {\n }\n}"));
    }

    #[test]
    fn set_listings_give_their_addresses() {
        let one_line = "table inet wasmban-sshd {\n\tset addr-set-sshd {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\telements = { 192.0.2.1 timeout 10m expires 9m58s452ms, 192.0.2.2 }\n\t}\n}";
        assert_eq!(set_elements(one_line), [parse_net("192.0.2.1").unwrap(), parse_net("192.0.2.2").unwrap()]);
        let prefixes = "\t\telements = { 2001:db8:0:7::/64 timeout 1h expires 59m, 192.0.2.0/24 }\n";
        assert_eq!(
            set_elements(prefixes),
            [parse_net("2001:db8:0:7::/64").unwrap(), parse_net("192.0.2.0/24").unwrap()]
        );
        let several = "\t\telements = { 2001:db8::1 timeout 1h expires 59m,\n\t\t\t     2001:db8::2 }\n";
        assert_eq!(set_elements(several).len(), 2);
        assert!(set_elements("\tset addr-set-sshd {\n\t\ttype ipv4_addr\n\t}").is_empty());
    }
}
