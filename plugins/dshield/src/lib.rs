//! fail2ban's `dshield` action as a component: each ban becomes a line of
//! DShield's tab-separated report format (date, user id, count, source,
//! source port, target, target port, protocol number, TCP flags), buffered
//! and mailed to DShield with the subject `FORMAT DSHIELD USERID <userid>
//! TZ +00:00 Fail2Ban` once `lines` are buffered and `minreportinterval`
//! has passed since the last report, or when the oldest line is older than
//! `maxbufferage`; what is buffered is sent when the jail stops.
//!
//! fail2ban keeps the buffer in files under `tmpfile`; the component keeps
//! it in memory (it has no file access), so a daemon killed between
//! reports loses what was buffered. Times are the bans' own (a component
//! has no clock), in UTC.
//!
//! It can only send mail (through wasmban.conf's `[mail]`).

use wasmban_plugin_sdk::mail::Message;
use wasmban_plugin_sdk::{Action, Options, Ticket, address, log, mail};

#[derive(Debug, Clone)]
pub struct Plan {
    pub dest: String,
    pub sender: String,
    pub userid: String,
    pub victim: String,
    pub port: String,
    pub srcport: String,
    pub protocol: u8,
    pub tcpflags: String,
    pub lines: usize,
    pub minreportinterval: i64,
    pub maxbufferage: i64,
}

/// An option that lands in a report column: no tab, no line break.
fn column(options: &Options, key: &str, default: &str) -> Result<String, String> {
    let value = options.get_or(key, default).trim().to_string();
    if value.chars().any(char::is_control) {
        return Err(format!("option `{key}` = {value:?}: no tabs or line breaks"));
    }
    Ok(value)
}

fn seconds(options: &Options, key: &str, default: &str) -> Result<i64, String> {
    let value = options.get_or(key, default).trim();
    value.parse().map_err(|_| format!("option `{key}` = {value:?}: expected a number"))
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let victim = options.get_or("myip", "").trim().to_string();
        if victim.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "option `myip` = {victim:?}: give this host's public address (fail2ban's default runs a shell \
                 pipeline over eth0, which wasmban does not): myip = 203.0.113.5"
            ));
        }
        let mailargs = options.get_or("mailargs", "").trim();
        if !mailargs.is_empty() {
            return Err(format!(
                "option `mailargs` = {mailargs:?}: mail goes through wasmban.conf's [mail], not a mail program; \
                 remove it (the sender is the `sender` option)"
            ));
        }
        let protocol_name = options.get_or("protocol", "tcp");
        let protocol = address::protocol_number(protocol_name)
            .ok_or_else(|| format!("option `protocol` = {protocol_name:?}: expected tcp, udp, icmp or a number"))?;
        let lines = seconds(options, "lines", "50")?.max(1) as usize;
        let host = options.get_or("host", "localhost").trim();
        Ok(Plan {
            dest: column(options, "dest", "reports@dshield.org")?,
            sender: column(options, "sender", &format!("fail2ban@{host}"))?,
            userid: column(options, "userid", "0")?,
            victim,
            port: column(options, "port", "???")?,
            srcport: column(options, "srcport", "???")?,
            protocol,
            tcpflags: column(options, "tcpflags", "")?,
            lines,
            minreportinterval: seconds(options, "minreportinterval", "3600")?,
            maxbufferage: seconds(options, "maxbufferage", "21600")?,
        })
    }

    /// The report line of one ban.
    pub fn line(&self, ticket: &Ticket) -> String {
        let (y, mo, d, h, mi, s) = wasmban_plugin_sdk::time::utc_parts(ticket.time);
        format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +00:00\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.userid, ticket.failures, ticket.ip, self.srcport, self.victim, self.port, self.protocol, self.tcpflags
        )
    }

    pub fn report(&self, lines: &[String]) -> Message {
        Message {
            sender: self.sender.clone(),
            recipients: vec![self.dest.clone()],
            subject: format!("FORMAT DSHIELD USERID {} TZ +00:00 Fail2Ban", self.userid),
            body: lines.join("\n"),
        }
    }
}

pub struct DShield {
    plan: Plan,
    buffer: Vec<String>,
    /// When the oldest buffered line's ban began.
    first: Option<i64>,
    last_sent: i64,
}

impl DShield {
    /// Send the buffer when it is due at `now` (or `always`).
    fn flush(&mut self, now: i64, always: bool) -> Result<(), String> {
        let Some(first) = self.first else { return Ok(()) };
        let full = self.buffer.len() >= self.plan.lines && now - self.last_sent > self.plan.minreportinterval;
        if !(always || full || now - first > self.plan.maxbufferage) {
            return Ok(());
        }
        mail::send(&self.plan.report(&self.buffer))?;
        log::info(&format!("reported {} ban(s) to DShield", self.buffer.len()));
        self.buffer.clear();
        self.first = None;
        self.last_sent = now;
        Ok(())
    }
}

impl Action for DShield {
    fn new(options: Options) -> Result<Self, String> {
        Ok(DShield { plan: Plan::from_options(&options)?, buffer: Vec::new(), first: None, last_sent: 0 })
    }

    fn stop(&mut self) -> Result<(), String> {
        self.flush(i64::MAX, true)
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        if address::is_prefix(&ticket.ip) {
            log::info(&format!("{} is a prefix ban: DShield's format takes single addresses", ticket.ip));
            return Ok(());
        }
        address::check_address_or_prefix(&ticket.ip)?;
        self.buffer.push(self.plan.line(ticket));
        self.first.get_or_insert(ticket.time);
        self.flush(ticket.time, false)
    }

    /// An unban at the end of a ban is a moment to send a buffer grown old.
    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.flush(ticket.time + ticket.bantime.max(0), false)
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(DShield);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    fn ticket(ip: &str, time: i64) -> Ticket {
        Ticket {
            jail: "sshd".into(),
            ip: ip.into(),
            failures: 5,
            matches: vec![],
            time,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        }
    }

    #[test]
    fn lines_are_dshields_format() {
        let p = plan(&[("myip", "203.0.113.5"), ("userid", "1234"), ("port", "22"), ("host", "web1")]).unwrap();
        assert_eq!(
            p.line(&ticket("192.0.2.7", 1_709_251_199)),
            "2024-02-29 23:59:59 +00:00\t1234\t5\t192.0.2.7\t???\t203.0.113.5\t22\t6\t"
        );
        let report = p.report(&["a".into(), "b".into()]);
        assert_eq!(report.subject, "FORMAT DSHIELD USERID 1234 TZ +00:00 Fail2Ban");
        assert_eq!(
            (report.recipients, report.sender, report.body),
            (vec!["reports@dshield.org".to_string()], "fail2ban@web1".to_string(), "a\nb".to_string())
        );
        assert!(plan(&[("myip", "`ip -4 addr show dev eth0`")]).unwrap_err().contains("`myip`"));
        assert!(plan(&[("myip", "203.0.113.5"), ("tcpflags", "S\tX")]).unwrap_err().contains("`tcpflags`"));
    }
}
