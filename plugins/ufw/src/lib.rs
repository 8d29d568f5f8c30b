//! fail2ban's `ufw` action as a component: a ban is a ufw rule
//! (`ufw prepend reject from IP to any comment "..."`, with the jail's
//! application profile when ufw knows it), so it shows in `ufw status`
//! beside the admin's own rules and survives ufw reloads; an unban is
//! `ufw delete` of the same rule. With `kill-mode = ss` or `conntrack`,
//! the address's open connections are cut after the ban, as fail2ban does.
//!
//! ufw keeps its rules across reboots, so the jail's rules are deleted
//! when it stops (fail2ban lifts each ban of an action without a flush),
//! and put back at start from the bans in force.
//!
//! It can only run `ufw`, `ss` and `conntrack` (its grant), with argv lists.

use std::collections::BTreeMap;

use wasmban_plugin_sdk::{Action, Options, Ticket, address, firewall, log};

/// The settings of one jail's ufw action.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `add`: how the rule goes in (`prepend`, or `insert N`).
    pub add: Vec<String>,
    /// `blocktype`: `reject`, `deny` or `limit`.
    pub blocktype: String,
    /// `destination`: `any` or this host's address the rule protects.
    pub destination: String,
    /// `application`: a ufw application profile (`OpenSSH`), or none.
    pub application: Option<String>,
    /// `comment`, with `<ip>`, `<failures>` and `<bantime>` filled per ban.
    pub comment: String,
    /// `kill-mode`: how to cut the address's connections after a ban.
    pub kill: Kill,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kill {
    None,
    Ss,
    Conntrack,
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let add: Vec<String> = options.get_or("add", "prepend").split_whitespace().map(str::to_string).collect();
        let add_ok = match add.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["prepend"] => true,
            ["insert", n] => n.parse::<u32>().is_ok_and(|n| n > 0),
            _ => false,
        };
        if !add_ok {
            return Err(format!("option `add` = {:?}: expected prepend or insert N", add.join(" ")));
        }
        let blocktype = options.get_or("blocktype", "reject").trim().to_string();
        if !matches!(blocktype.as_str(), "reject" | "deny" | "limit") {
            return Err(format!("option `blocktype` = {blocktype:?}: expected reject, deny or limit"));
        }
        let destination = options.get_or("destination", "any").trim().to_string();
        if destination != "any"
            && destination.split('/').next().and_then(|a| a.parse::<std::net::IpAddr>().ok()).is_none()
        {
            return Err(format!("option `destination` = {destination:?}: expected any, or an address of this host"));
        }
        let application = options.get("application").map(str::trim).filter(|a| !a.is_empty()).map(str::to_string);
        if let Some(app) = &application
            && app.starts_with('-')
        {
            return Err(format!("option `application` = {app:?}: expected a ufw application profile name"));
        }
        let kill = match options.get_or("kill-mode", "").trim() {
            "" => Kill::None,
            "ss" => Kill::Ss,
            "conntrack" => Kill::Conntrack,
            other => return Err(format!("option `kill-mode` = {other:?}: expected ss, conntrack, or nothing")),
        };
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan {
            add,
            blocktype,
            destination,
            application,
            comment: options.get_or("comment", "by wasmban after <failures> attempts").to_string(),
            kill,
            timeout_ms,
        })
    }

    /// The rule's words after the verb: `reject from IP to any [app A]`.
    fn rule(&self, ip: &str, application: Option<&str>) -> Vec<String> {
        let mut a = argv(&[&self.blocktype, "from", ip, "to", &self.destination]);
        if let Some(app) = application {
            a.extend(argv(&["app", app]));
        }
        a
    }

    /// `ufw` argv that adds the ban's rule.
    pub fn ban(&self, ticket: &Ticket, application: Option<&str>) -> Vec<String> {
        let mut a = self.add.clone();
        a.extend(self.rule(&ticket.ip, application));
        let comment = self
            .comment
            .replace("<ip>", &ticket.ip)
            .replace("<failures>", &ticket.failures.to_string())
            .replace("<bantime>", &ticket.bantime.to_string());
        a.extend(["comment".to_string(), comment]);
        a
    }

    /// `ufw` argv that deletes the ban's rule.
    pub fn unban(&self, ip: &str, application: Option<&str>) -> Vec<String> {
        let mut a = vec!["delete".to_string()];
        a.extend(self.rule(ip, application));
        a
    }

    /// The program and argv that cut the address's connections, if asked.
    pub fn kill(&self, ip: &str) -> Option<(&'static str, Vec<String>)> {
        match self.kill {
            Kill::None => None,
            Kill::Ss => Some(("ss", argv(&["-K", "dst", &format!("[{ip}]")]))),
            Kill::Conntrack => Some(("conntrack", argv(&["-D", "-s", ip]))),
        }
    }
}

pub struct Ufw {
    plan: Plan,
    /// Whether ufw knows the application profile (asked once, as fail2ban
    /// asks `ufw app info` before each ban; without it, the rule has no app).
    application_known: Option<bool>,
    /// The rules this instance added and has not deleted: for each
    /// address, the application the rule was made with and the argv that
    /// made it (to make it again, comment included, if ufw loses it).
    applied: BTreeMap<String, (Option<String>, Vec<String>)>,
}

impl Ufw {
    fn ufw(&self, args: &[String]) -> Result<String, String> {
        let out = firewall::run("ufw", args, self.plan.timeout_ms)?;
        if out.status == 0 {
            Ok(out.stdout)
        } else {
            Err(format!(
                "`ufw {}` exited with status {}: {}{}",
                args.join(" "),
                out.status,
                out.stdout.trim(),
                out.stderr.trim()
            ))
        }
    }

    fn application(&mut self) -> Option<String> {
        let app = self.plan.application.clone()?;
        let known = match self.application_known {
            Some(known) => known,
            None => {
                let known = self.ufw(&argv(&["app", "info", &app])).is_ok();
                if !known {
                    log::warn(&format!("ufw has no application profile {app:?}; rules are made without it"));
                }
                self.application_known = Some(known);
                known
            }
        };
        known.then_some(app)
    }
}

impl Action for Ufw {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Ufw { plan: Plan::from_options(&options)?, application_known: None, applied: BTreeMap::new() })
    }

    /// ufw would keep the jail's rules forever: they go with the jail.
    fn stop(&mut self) -> Result<(), String> {
        let errors: Vec<String> = std::mem::take(&mut self.applied)
            .iter()
            .filter_map(|(ip, (app, _))| self.ufw(&self.plan.unban(ip, app.as_deref())).err())
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// Put back the rules of bans that ufw lost (a `ufw reset`, a rule
    /// deleted by hand), from what `ufw status` lists.
    fn check(&mut self) -> Result<(), String> {
        let status = self.ufw(&["status".to_string()])?;
        let listed: std::collections::BTreeSet<&str> =
            status.lines().flat_map(|line| line.split_whitespace().take(4)).collect();
        let missing: Vec<(&String, &Vec<String>)> = self
            .applied
            .iter()
            .filter(|(ip, _)| !listed.contains(ip.as_str()))
            .map(|(ip, (_, add))| (ip, add))
            .collect();
        for (_, add) in &missing {
            self.ufw(add)?;
        }
        if !missing.is_empty() {
            let ips: Vec<&str> = missing.iter().map(|(ip, _)| ip.as_str()).collect();
            log::warn(&format!("ufw had lost {} ban rule(s), added again: {}", ips.len(), ips.join(", ")));
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        let app = self.application();
        // ufw skips a rule it has already ("Skipping adding existing rule").
        let add = self.plan.ban(ticket, app.as_deref());
        self.ufw(&add)?;
        self.applied.insert(ticket.ip.clone(), (app, add));
        if let Some((program, args)) = self.plan.kill(&ticket.ip) {
            // Nothing to cut is no failure of the ban.
            if let Err(e) = firewall::run(program, &args, self.plan.timeout_ms).map(|o| o.status) {
                log::warn(&format!("cutting {}'s connections with {program}: {e}", ticket.ip));
            }
        }
        Ok(())
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        address::check_address_or_prefix(&ticket.ip)?;
        let app = match self.applied.get(&ticket.ip) {
            Some((app, _)) => app.clone(),
            None => self.application(),
        };
        // "Could not delete non-existent rule" exits 0: gone already.
        self.ufw(&self.plan.unban(&ticket.ip, app.as_deref()))?;
        self.applied.remove(&ticket.ip);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Ufw);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    fn ticket(ip: &str) -> Ticket {
        Ticket {
            jail: "sshd".into(),
            ip: ip.into(),
            failures: 5,
            matches: vec![],
            time: 0,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        }
    }

    #[test]
    fn argv_is_fail2bans() {
        let p = plan(&[("comment", "by Fail2Ban after <failures> attempts against sshd")]).unwrap();
        assert_eq!(
            p.ban(&ticket("192.0.2.7"), None),
            argv(&[
                "prepend",
                "reject",
                "from",
                "192.0.2.7",
                "to",
                "any",
                "comment",
                "by Fail2Ban after 5 attempts against sshd"
            ])
        );
        assert_eq!(p.unban("192.0.2.7", Some("OpenSSH")).join(" "), "delete reject from 192.0.2.7 to any app OpenSSH");
        let p = plan(&[("add", "insert 1"), ("blocktype", "deny"), ("kill-mode", "ss")]).unwrap();
        assert_eq!(p.ban(&ticket("2001:db8::7"), None)[..3], argv(&["insert", "1", "deny"]));
        assert_eq!(p.kill("2001:db8::7").unwrap().1, argv(&["-K", "dst", "[2001:db8::7]"]));
    }

    #[test]
    fn bad_options_name_the_option() {
        assert!(plan(&[("add", "append")]).unwrap_err().contains("`add`"));
        assert!(plan(&[("blocktype", "allow")]).unwrap_err().contains("`blocktype`"));
        assert!(plan(&[("destination", "anywhere; rm")]).unwrap_err().contains("`destination`"));
        assert!(plan(&[("kill-mode", "pkill")]).unwrap_err().contains("`kill-mode`"));
        assert!(plan(&[("application", "--dry-run")]).unwrap_err().contains("`application`"));
    }

    #[test]
    fn only_addresses_reach_ufw() {
        assert!(
            address::check_address_or_prefix("192.0.2.7").is_ok()
                && address::check_address_or_prefix("2001:db8::/64").is_ok()
        );
        for bad in ["--dry-run", "192.0.2.7 to any", "192.0.2.7/40", "any"] {
            assert!(address::check_address_or_prefix(bad).is_err(), "{bad}");
        }
    }
}
