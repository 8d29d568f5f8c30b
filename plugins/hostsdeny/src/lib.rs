//! fail2ban's `hostsdeny` action as a component: a ban is the line
//! `<daemon_list>: <ip_value>` in the TCP wrappers' deny file (IPv6
//! addresses in brackets, prefixes as net/mask or `[net]/length`, as the
//! wrappers want them), an unban removes it.
//! Lines go in and out through the `file` capability, atomically and under
//! a lock, so the admin's own lines and other writers' are kept and no
//! reader sees half a file. The jail's lines are removed when it stops (the
//! file outlives wasmban) and written again from the bans in force when it
//! starts; `check` puts back lines removed by hand.
//!
//! It can only change the files its grant names (/etc/hosts.deny).

use std::collections::BTreeSet;

use wasmban_plugin_sdk::address::Net;
use wasmban_plugin_sdk::{Action, Options, Ticket, file, log};

/// The settings of one jail's hostsdeny action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: String,
    pub daemon_list: String,
    /// How an address is written, `<ip>` standing for it, per family.
    pub ip_value: [String; 2],
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let file = options.get_or("file", "/etc/hosts.deny").trim().to_string();
        if !file.starts_with('/') {
            return Err(format!("option `file` = {file:?}: expected an absolute path"));
        }
        let daemon_list = options.get_or("daemon_list", "ALL").trim().to_string();
        if daemon_list.is_empty() || daemon_list.contains([':', '\n']) {
            return Err(format!("option `daemon_list` = {daemon_list:?}: expected daemon names such as ALL or sshd"));
        }
        let v4 = options.get_or("ip_value", "<ip>").trim().to_string();
        let v6 = match options.get("ip_value?family=inet6") {
            Some(v) => v.trim().to_string(),
            None if v4 == "<ip>" => "[<ip>]".to_string(),
            None => v4.clone(),
        };
        for value in [&v4, &v6] {
            if !value.contains("<ip>") {
                return Err(format!("option `ip_value` = {value:?}: it must contain <ip>"));
            }
        }
        Ok(Plan { file, daemon_list, ip_value: [v4, v6] })
    }

    /// The line of a ban of `ip`, an address or a prefix in the forms TCP
    /// wrappers read: `192.0.2.0/255.255.255.0` (net/mask) and
    /// `[2001:db8::]/64` (the network in `ip_value`'s brackets, then the
    /// length).
    pub fn line(&self, net: &Net) -> String {
        let value = &self.ip_value[usize::from(net.is_v6())];
        let written = match (net.is_prefix(), net.addr) {
            (false, addr) => value.replace("<ip>", &addr.to_string()),
            (true, std::net::IpAddr::V4(addr)) => {
                let mask = std::net::Ipv4Addr::from(u32::MAX << (32 - net.len));
                value.replace("<ip>", &format!("{addr}/{mask}"))
            }
            (true, addr) => format!("{}/{}", value.replace("<ip>", &addr.to_string()), net.len),
        };
        format!("{}: {written}", self.daemon_list)
    }

    /// The line of a ban of `ip`, when it is an address or a prefix.
    fn checked_line(&self, ip: &str) -> Result<String, String> {
        Ok(self.line(&Net::parse(ip)?))
    }
}

pub struct HostsDeny {
    plan: Plan,
    /// The lines this instance wrote and has not removed.
    applied: BTreeSet<String>,
}

impl Action for HostsDeny {
    fn new(options: Options) -> Result<Self, String> {
        Ok(HostsDeny { plan: Plan::from_options(&options)?, applied: BTreeSet::new() })
    }

    fn stop(&mut self) -> Result<(), String> {
        let lines: Vec<String> = std::mem::take(&mut self.applied).into_iter().collect();
        if lines.is_empty() {
            return Ok(());
        }
        file::remove_lines(&self.plan.file, &lines).map(|_| ())
    }

    fn check(&mut self) -> Result<(), String> {
        let present: BTreeSet<String> = file::read_lines(&self.plan.file)?.into_iter().collect();
        let missing: Vec<String> = self.applied.difference(&present).cloned().collect();
        if !missing.is_empty() {
            file::add_lines(&self.plan.file, &missing)?;
            log::warn(&format!("{} had lost {} ban line(s), added again", self.plan.file, missing.len()));
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.ban_all(std::slice::from_ref(ticket)).remove(0)
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.unban_all(std::slice::from_ref(ticket)).remove(0)
    }

    /// One rewrite of the file for the whole batch.
    fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        let checked: Vec<Result<String, String>> = tickets.iter().map(|t| self.plan.checked_line(&t.ip)).collect();
        let lines: Vec<String> = checked.iter().filter_map(|l| l.clone().ok()).collect();
        let written = if lines.is_empty() { Ok(0) } else { file::add_lines(&self.plan.file, &lines) };
        checked
            .into_iter()
            .map(|line| {
                let line = line?;
                written.clone().map(|_| {
                    self.applied.insert(line);
                })
            })
            .collect()
    }

    fn unban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        let checked: Vec<Result<String, String>> = tickets.iter().map(|t| self.plan.checked_line(&t.ip)).collect();
        let lines: Vec<String> = checked.iter().filter_map(|l| l.clone().ok()).collect();
        let removed = if lines.is_empty() { Ok(0) } else { file::remove_lines(&self.plan.file, &lines) };
        checked
            .into_iter()
            .map(|line| {
                let line = line?;
                removed.clone().map(|_| {
                    self.applied.remove(&line);
                })
            })
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(HostsDeny);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn lines_are_fail2bans() {
        let p = plan(&[("ip_value", "<ip>"), ("ip_value?family=inet6", "[<ip>]")]).unwrap();
        let line = |p: &Plan, ip: &str| p.checked_line(ip).unwrap();
        assert_eq!(line(&p, "192.0.2.7"), "ALL: 192.0.2.7");
        assert_eq!(line(&p, "2001:db8::7"), "ALL: [2001:db8::7]");
        assert_eq!(line(&p, "192.0.2.0/24"), "ALL: 192.0.2.0/255.255.255.0");
        assert_eq!(line(&p, "2001:db8:0:7::/64"), "ALL: [2001:db8:0:7::]/64");
        let p = plan(&[("daemon_list", "sshd, vsftpd")]).unwrap();
        assert_eq!(line(&p, "2001:db8::7"), "sshd, vsftpd: [2001:db8::7]");
    }

    #[test]
    fn bad_options_name_the_option() {
        assert!(plan(&[("file", "hosts.deny")]).unwrap_err().contains("`file`"));
        assert!(plan(&[("daemon_list", "ALL: ALL\nsshd")]).unwrap_err().contains("`daemon_list`"));
        assert!(plan(&[("ip_value", "everyone")]).unwrap_err().contains("<ip>"));
        let p = plan(&[]).unwrap();
        assert!(p.checked_line("ALL").is_err() && p.checked_line("192.0.2.7\nALL: ALL").is_err());
    }
}
