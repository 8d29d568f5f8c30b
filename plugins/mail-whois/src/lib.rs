//! Tell an admin about bans by mail: one message per ban with the whois
//! report on the address, and with `lines = yes` the log lines that led to
//! it (fail2ban's mail-whois and mail-whois-lines). A message when the jail
//! starts and stops too, unless `startstop = no`.
//!
//! A burst of bans does not become a burst of mail: a batch of more than
//! `digest` bans (default 5) is one message listing them all, without
//! whois reports.
//!
//! fail2ban's other mail actions are options of the same component:
//! `whois = no` (mail, sendmail), `matches = ip` or `ipjail` (the matched
//! lines of every ban of the address, in all jails or this one:
//! sendmail-whois-ipmatches, -ipjailmatches), `buffer = yes` with `lines =
//! N` (mail-buffered, sendmail-buffered: one summary per N bans, the rest
//! at stop), and `bans = no` (sendmail-common: start and stop only).
//!
//! It can only send mail through the admin's relay and ask whois about
//! addresses (its grants); the host builds every header itself.

#[cfg(target_arch = "wasm32")]
mod component;

use std::fmt::Write as _;

use wasmban_plugin_sdk::mail::Message;
use wasmban_plugin_sdk::{Action, Options, Ticket, firewall, log, mail, whois};

/// The settings of one jail's mail action.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub jail: String,
    pub host: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub matches: Matches,
    pub whois: bool,
    pub startstop: bool,
    pub bans: bool,
    /// `buffer = yes`: bans are told N at a time (`lines = N`).
    pub buffer: Option<usize>,
    pub digest: usize,
    /// `geoip = yes` (fail2ban's sendmail-geoip-lines): the legacy GeoIP
    /// databases asked through `geoiplookup`, by label.
    pub geoip: Vec<GeoIpDatabase>,
}

/// A GeoIP database file and what it tells.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoIpDatabase {
    pub label: &'static str,
    pub v4: String,
    pub v6: Option<String>,
}

/// Which matched lines a ban message carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Matches {
    None,
    /// This ban's (fail2ban's `<matches>`).
    Ticket,
    /// Every ban's of the address, in all jails (`<ipmatches>`).
    Ip,
    /// Every ban's of the address in this jail (`<ipjailmatches>`).
    IpJail,
}

/// What the host knows about the address beyond the ticket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ip_failures: u32,
    pub ip_matches: Vec<String>,
    pub ip_jail_failures: u32,
    pub ip_jail_matches: Vec<String>,
}

fn flag(options: &Options, key: &str, default: bool) -> Result<bool, String> {
    match options.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "yes" | "true" | "on" | "1" => Ok(true),
            "no" | "false" | "off" | "0" => Ok(false),
            _ => Err(format!("option `{key}` = {v:?}: expected yes or no")),
        },
    }
}

impl Settings {
    pub fn from_options(options: &Options) -> Result<Settings, String> {
        let recipients: Vec<String> =
            options.get_or("dest", "root").split([',', ' ']).filter(|r| !r.is_empty()).map(str::to_string).collect();
        if recipients.is_empty() {
            return Err("option `dest` is empty: give the address to notify, such as root or ops@example.org".into());
        }
        let sender = options.get_or("sender", "wasmban").trim();
        let sendername = options.get_or("sendername", "wasmban").trim();
        let sender = if sendername.is_empty() { sender.to_string() } else { format!("{sendername} <{sender}>") };
        let digest = options.get_or("digest", "5");
        let digest = digest
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("option `digest` = {digest:?}: expected a number of bans"))?;
        let buffer = match flag(options, "buffer", false)? {
            true => {
                let lines = options.get_or("lines", "5").trim();
                Some(lines.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("option `lines` = {lines:?}: with buffer = yes, the number of bans per summary")
                })?)
            }
            false => None,
        };
        let matches = match (options.get("matches").map(str::trim), buffer) {
            (Some("none"), _) => Matches::None,
            (Some("ticket"), _) => Matches::Ticket,
            (Some("ip"), _) => Matches::Ip,
            (Some("ipjail"), _) => Matches::IpJail,
            (Some(other), _) => {
                return Err(format!("option `matches` = {other:?}: expected none, ticket, ip or ipjail"));
            }
            (None, Some(_)) => Matches::None,
            (None, None) if flag(options, "lines", false)? => Matches::Ticket,
            (None, None) => Matches::None,
        };
        let geoip = if flag(options, "geoip", false)? {
            let path = |key: &str, default: &str| -> Result<String, String> {
                let value = options.get_or(key, default).trim().to_string();
                if !value.starts_with('/') || value.contains(char::is_control) {
                    return Err(format!("option `{key}` = {value:?}: give the database file's absolute path"));
                }
                Ok(value)
            };
            vec![
                GeoIpDatabase {
                    label: "Country",
                    v4: path("geoip_country", "/usr/share/GeoIP/GeoIP.dat")?,
                    v6: Some(path("geoip_country6", "/usr/share/GeoIP/GeoIPv6.dat")?),
                },
                GeoIpDatabase { label: "AS", v4: path("geoip_asn", "/usr/share/GeoIP/GeoIPASNum.dat")?, v6: None },
            ]
        } else {
            Vec::new()
        };
        Ok(Settings {
            geoip,
            jail: options.get_or("name", "default").to_string(),
            host: options.get_or("host", "").trim().to_string(),
            sender,
            recipients,
            matches,
            whois: flag(options, "whois", true)?,
            startstop: flag(options, "startstop", true)?,
            bans: flag(options, "bans", true)?,
            buffer,
            digest,
        })
    }

    fn on_host(&self) -> String {
        if self.host.is_empty() { String::new() } else { format!(" on {}", self.host) }
    }

    fn message(&self, subject: String, body: String) -> Message {
        Message { sender: self.sender.clone(), recipients: self.recipients.clone(), subject, body }
    }

    pub fn started(&self) -> Message {
        self.message(
            format!("[wasmban] {}: started{}", self.jail, self.on_host()),
            format!("The jail {} has started{}.\n\n-- \nwasmban\n", self.jail, self.on_host()),
        )
    }

    pub fn stopped(&self) -> Message {
        self.message(
            format!("[wasmban] {}: stopped{}", self.jail, self.on_host()),
            format!("The jail {} has stopped{}.\n\n-- \nwasmban\n", self.jail, self.on_host()),
        )
    }

    fn length(bantime: i64) -> String {
        match bantime {
            t if t < 0 => "permanently".to_string(),
            t if t % 86400 == 0 => format!("for {} day(s)", t / 86400),
            t if t % 3600 == 0 => format!("for {} hour(s)", t / 3600),
            t if t % 60 == 0 => format!("for {} minute(s)", t / 60),
            t => format!("for {t} second(s)"),
        }
    }

    /// The message for one ban; `report` is the whois answer, or why there
    /// is none.
    pub fn banned(
        &self,
        ticket: &Ticket,
        report: Option<Result<String, String>>,
        history: Option<&History>,
        geoip: &[(&str, String)],
    ) -> Message {
        let mut body = format!(
            "The address {} has been banned {} by the jail {}{} after {} failure(s).\n",
            ticket.ip,
            Self::length(ticket.bantime),
            self.jail,
            self.on_host(),
            ticket.failures
        );
        if ticket.ban_count > 0 {
            let _ = writeln!(body, "It had been banned {} time(s) before.", ticket.ban_count);
        }
        if !geoip.is_empty() {
            body.push('\n');
            for (label, answer) in geoip {
                let _ = writeln!(body, "{label}: {answer}");
            }
        }
        let (heading, lines): (String, &[String]) = match (self.matches, history) {
            (Matches::Ticket, _) => ("The log lines that led to the ban:".into(), &ticket.matches),
            (Matches::Ip, Some(h)) => {
                (format!("The log lines of every ban of {} ({} failures):", ticket.ip, h.ip_failures), &h.ip_matches)
            }
            (Matches::IpJail, Some(h)) => (
                format!(
                    "The log lines of every ban of {} in {} ({} failures):",
                    ticket.ip, self.jail, h.ip_jail_failures
                ),
                &h.ip_jail_matches,
            ),
            // Without the host's history, the ban's own lines.
            (Matches::Ip | Matches::IpJail, None) => ("The log lines that led to the ban:".into(), &ticket.matches),
            (Matches::None, _) => (String::new(), &[]),
        };
        if !lines.is_empty() {
            let _ = writeln!(body, "\n{heading}\n");
            for line in lines {
                let _ = writeln!(body, "    {line}");
            }
        }
        match report {
            Some(Ok(text)) => {
                let _ = write!(body, "\nWhat whois knows about {}:\n\n{}\n", ticket.ip, text.trim_end());
            }
            Some(Err(e)) => {
                let _ = writeln!(body, "\nNo whois report: {e}");
            }
            None => {}
        }
        body.push_str("\n-- \nwasmban\n");
        self.message(format!("[wasmban] {}: banned {}{}", self.jail, ticket.ip, self.on_host()), body)
    }

    /// The summary of buffered bans (mail-buffered).
    pub fn summary(&self, entries: &[String]) -> Message {
        let mut body = format!("These addresses have been banned by the jail {}{}:\n\n", self.jail, self.on_host());
        for entry in entries {
            let _ = writeln!(body, "    {entry}");
        }
        body.push_str("\n-- \nwasmban\n");
        self.message(format!("[wasmban] {}: summary{}", self.jail, self.on_host()), body)
    }

    /// One message for a batch too large for a message each.
    pub fn digest(&self, tickets: &[Ticket]) -> Message {
        let mut body = format!(
            "The jail {}{} has banned {} addresses at once (one message for all of them; no whois reports):\n\n",
            self.jail,
            self.on_host(),
            tickets.len()
        );
        for t in tickets {
            let _ = writeln!(body, "    {}  {} failure(s), {}", t.ip, t.failures, Self::length(t.bantime));
        }
        body.push_str("\n-- \nwasmban\n");
        self.message(format!("[wasmban] {}: banned {} addresses{}", self.jail, tickets.len(), self.on_host()), body)
    }
}

/// `time` (unix seconds) as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(time: i64) -> String {
    let (year, month, day, hour, minute, second) = wasmban_plugin_sdk::time::utc_parts(time);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// geoiplookup's answer (`GeoIP Country Edition: US, United States`), or
/// `None` when the database is missing or does not know the address.
pub fn geoip_answer(stdout: &str) -> Option<String> {
    let line = stdout.lines().next()?;
    let (_, answer) = line.split_once(": ")?;
    let answer = answer.trim();
    (!answer.is_empty() && !answer.contains("not found") && !line.contains("not available")).then(|| answer.to_string())
}

pub struct MailWhois {
    settings: Settings,
    /// Bans waiting for the next summary (`buffer = yes`).
    buffered: Vec<String>,
}

impl MailWhois {
    /// Tell of one ban, with the host's history of the address if known.
    pub fn tell(&mut self, ticket: &Ticket, history: Option<&History>) -> Result<(), String> {
        if !self.settings.bans {
            return Ok(());
        }
        if let Some(size) = self.settings.buffer {
            self.buffered.push(format!("{}: {} ({} failures)", utc(ticket.time), ticket.ip, ticket.failures));
            if self.buffered.len() >= size {
                mail::send(&self.settings.summary(&self.buffered))?;
                self.buffered.clear();
            }
            return Ok(());
        }
        // whois knows networks by their addresses: a prefix ban asks
        // about its network address.
        let asked = wasmban_plugin_sdk::address::Net::parse(&ticket.ip).map(|n| n.addr.to_string());
        let report = self.settings.whois.then(|| whois::lookup(asked.as_deref().unwrap_or(&ticket.ip)));
        if let Some(Err(e)) = &report {
            log::info(&format!("no whois report for {}: {e}", ticket.ip));
        }
        let geoip = self.geoip(&ticket.ip);
        mail::send(&self.settings.banned(ticket, report, history, &geoip))
    }

    /// What each GeoIP database says of `ip` (`US, United States`), through
    /// geoiplookup; `unknown` when it knows nothing or cannot be asked.
    fn geoip(&self, ip: &str) -> Vec<(&'static str, String)> {
        let v6 = ip.contains(':');
        self.settings
            .geoip
            .iter()
            .filter_map(|db| {
                let file = if v6 { db.v6.as_ref()? } else { &db.v4 };
                let args = vec!["-f".to_string(), file.clone(), ip.to_string()];
                let answer = match firewall::run("geoiplookup", &args, 10_000) {
                    Ok(out) => geoip_answer(&out.stdout),
                    Err(e) => {
                        log::info(&format!("no GeoIP answer for {ip}: {e}"));
                        None
                    }
                };
                Some((db.label, answer.unwrap_or_else(|| "unknown".to_string())))
            })
            .collect()
    }

    /// Tell of a batch: each ban, or one digest for a burst.
    pub fn tell_all(&mut self, bans: &[(Ticket, Option<History>)]) -> Vec<Result<(), String>> {
        if bans.len() <= self.settings.digest || self.settings.buffer.is_some() || !self.settings.bans {
            return bans.iter().map(|(t, h)| self.tell(t, h.as_ref())).collect();
        }
        let tickets: Vec<Ticket> = bans.iter().map(|(t, _)| t.clone()).collect();
        let result = mail::send(&self.settings.digest(&tickets));
        bans.iter().map(|_| result.clone()).collect()
    }
}

impl Action for MailWhois {
    fn new(options: Options) -> Result<Self, String> {
        Ok(MailWhois { settings: Settings::from_options(&options)?, buffered: Vec::new() })
    }

    fn start(&mut self) -> Result<(), String> {
        if self.settings.startstop { mail::send(&self.settings.started()) } else { Ok(()) }
    }

    fn stop(&mut self) -> Result<(), String> {
        if !self.buffered.is_empty() {
            let summary = self.settings.summary(&self.buffered);
            self.buffered.clear();
            mail::send(&summary)?;
        }
        if self.settings.startstop { mail::send(&self.settings.stopped()) } else { Ok(()) }
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.tell(ticket, None)
    }

    fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        let bans: Vec<(Ticket, Option<History>)> = tickets.iter().map(|t| (t.clone(), None)).collect();
        self.tell_all(&bans)
    }

    /// Unbans are not announced (fail2ban's mail actions do not either).
    fn unban(&mut self, _ticket: &Ticket) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    fn ticket() -> Ticket {
        Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.9".into(),
            failures: 5,
            matches: vec!["sshd[1]: Failed password for root from 192.0.2.9".into()],
            time: 0,
            bantime: 600,
            ban_count: 1,
            fields: vec![],
        }
    }

    #[test]
    fn a_ban_message_carries_whois_and_with_lines_the_log_lines() {
        let s = settings(&[("name", "sshd"), ("dest", "root, ops@example.org"), ("host", "web1")]).unwrap();
        assert_eq!(s.recipients, ["root", "ops@example.org"]);
        let m = s.banned(&ticket(), Some(Ok("netname: TEST-NET-1\n".into())), None, &[]);
        assert_eq!(m.subject, "[wasmban] sshd: banned 192.0.2.9 on web1");
        assert_eq!(m.sender, "wasmban <wasmban>");
        assert!(m.body.contains("banned for 10 minute(s) by the jail sshd on web1 after 5 failure(s)"), "{}", m.body);
        assert!(m.body.contains("banned 1 time(s) before"));
        assert!(m.body.contains("netname: TEST-NET-1"));
        assert!(!m.body.contains("Failed password"));
        let s = settings(&[("name", "sshd"), ("lines", "yes")]).unwrap();
        let m = s.banned(&ticket(), Some(Err("timed out".into())), None, &[]);
        assert!(m.body.contains("    sshd[1]: Failed password for root from 192.0.2.9\n"), "{}", m.body);
        assert!(m.body.contains("No whois report: timed out"));
    }

    #[test]
    fn fail2bans_other_mail_actions_are_options() {
        let s = settings(&[("name", "sshd"), ("matches", "ipjail")]).unwrap();
        let history = History {
            ip_failures: 9,
            ip_matches: vec!["a".into(), "b".into()],
            ip_jail_failures: 7,
            ip_jail_matches: vec!["old sshd line".into()],
        };
        let m = s.banned(&ticket(), None, Some(&history), &[]);
        assert!(m.body.contains("every ban of 192.0.2.9 in sshd (7 failures):\n\n    old sshd line\n"), "{}", m.body);
        let s = settings(&[("name", "sshd"), ("buffer", "yes"), ("lines", "3")]).unwrap();
        assert_eq!((s.buffer, s.matches), (Some(3), Matches::None));
        assert!(settings(&[("buffer", "yes"), ("lines", "yes")]).unwrap_err().contains("`lines`"));
        let m = s.summary(&[format!("{}: 192.0.2.9 (5 failures)", utc(1_700_000_000))]);
        assert!(m.body.contains("    2023-11-14 22:13:20 UTC: 192.0.2.9 (5 failures)\n"), "{}", m.body);
    }

    #[test]
    fn geoip_answers_are_read_and_told() {
        assert_eq!(geoip_answer("GeoIP Country Edition: US, United States\n").as_deref(), Some("US, United States"));
        assert_eq!(geoip_answer("GeoIP Country Edition: IP Address not found\n"), None);
        assert_eq!(geoip_answer("/usr/share/GeoIP/GeoIPASNum.dat not available, skipping...\n"), None);
        let s = settings(&[("name", "sshd"), ("geoip", "yes"), ("lines", "yes")]).unwrap();
        assert_eq!(s.geoip[0].v4, "/usr/share/GeoIP/GeoIP.dat");
        let m = s.banned(&ticket(), None, None, &[("Country", "US, United States".into()), ("AS", "unknown".into())]);
        assert!(m.body.contains("\nCountry: US, United States\nAS: unknown\n"), "{}", m.body);
        assert!(settings(&[("geoip", "yes"), ("geoip_asn", "GeoIPASNum.dat")]).unwrap_err().contains("`geoip_asn`"));
    }

    #[test]
    fn a_large_batch_is_one_digest() {
        let s = settings(&[("name", "sshd")]).unwrap();
        let tickets: Vec<Ticket> = (0..100).map(|_| ticket()).collect();
        let m = s.digest(&tickets);
        assert!(m.subject.contains("banned 100 addresses"));
        assert_eq!(m.body.matches("192.0.2.9").count(), 100);
    }

    #[test]
    fn bad_options_name_the_option() {
        assert!(settings(&[("lines", "maybe")]).unwrap_err().contains("`lines`"));
        assert!(settings(&[("dest", " , ")]).unwrap_err().contains("`dest`"));
        assert!(settings(&[("digest", "many")]).unwrap_err().contains("`digest`"));
    }
}
