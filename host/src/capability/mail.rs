//! The `mail` capability: send one plain-text message through what the
//! admin configured in wasmban.conf's `[mail]`: a sendmail-compatible
//! program (the default, `/usr/sbin/sendmail`), or SMTP to a relay.
//!
//! The plugin chooses sender, recipients, subject and body (and, for
//! reports such as X-ARF, text parts and `X-` headers); the host builds
//! the headers itself, so nothing a plugin passes (or a log line inside
//! it) can add another header, a recipient or end the message early.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::capability::process::ProgramRunner;
use crate::capability::{Grants, HostServices};
use crate::wit::mail::{self as wit, Message, Part};

/// The interface name (`wasmban:plugin/mail`).
pub const NAME: &str = "mail";

/// Granted by `mail = true`.
pub fn granted(grants: &Grants, _imports: &[String]) -> bool {
    grants.mail
}

/// The line that grants it.
pub fn grant_line(_imports: &[String]) -> String {
    "mail = true".to_string()
}

/// A body longer than this is cut (whois reports and matched lines are
/// far shorter; a plugin must not be able to mail megabytes).
pub const BODY_LIMIT: usize = 256 * 1024;
/// At most this many recipients per message.
pub const RECIPIENT_LIMIT: usize = 20;

/// How mail leaves the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum MailTransport {
    /// Pipe the message to a sendmail-compatible program (`-i -f SENDER --
    /// RECIPIENTS`), as fail2ban's sendmail actions do.
    Sendmail(PathBuf),
    /// Speak SMTP to `host:port` (no TLS, no authentication: a local or
    /// trusted relay).
    Smtp {
        /// `host:port`.
        relay: String,
    },
}

/// The admin's `[mail]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MailSettings {
    /// Where messages go.
    pub transport: MailTransport,
    /// How long sending one message may take.
    pub timeout: Duration,
    /// This machine's name: EHLO argument and Message-ID domain.
    pub hostname: String,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            transport: MailTransport::Sendmail(PathBuf::from("/usr/sbin/sendmail")),
            timeout: Duration::from_secs(30),
            hostname: hostname(),
        }
    }
}

/// The machine's host name, or `localhost` when it has none.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match (rc, std::str::from_utf8(&buf[..end])) {
        (0, Ok(name)) if !name.is_empty() => name.to_string(),
        _ => "localhost".to_string(),
    }
}

/// An address as given (`Name <user@host>` or `user@host` or `root`): the
/// bare address, and the header form.
fn mailbox(field: &str, value: &str) -> Result<(String, String), String> {
    let value = value.trim();
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("mail {field} {value:?} holds a control character"));
    }
    let (display, address) = match (value.rfind('<'), value.ends_with('>')) {
        (Some(open), true) => (value[..open].trim().trim_matches('"'), &value[open + 1..value.len() - 1]),
        _ => ("", value),
    };
    let ok = !address.is_empty()
        && !address.starts_with('-')
        && address.len() <= 254
        && address.chars().all(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')'));
    if !ok {
        return Err(format!("mail {field} {value:?} is not an address such as root or admin@example.org"));
    }
    let header = if display.is_empty() {
        address.to_string()
    } else {
        format!("{} <{address}>", encode_header(&display.replace(['"', '\\'], "")))
    };
    Ok((address.to_string(), header))
}

/// RFC 2047 for a header value that is not plain ASCII.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    // Encoded words of at most 45 input bytes, on character boundaries.
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 45).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!("=?UTF-8?B?{}?=", base64(&text.as_bytes()[start..end])));
        start = end;
    }
    words.join("\r\n ")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 5322 date, in UTC.
fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let (year, month, day) = crate::timezone::civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A message ready to send: the envelope and the whole text, with CRLF
/// line ends and no line longer than SMTP allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Envelope sender.
    pub sender: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Headers, blank line, body.
    pub text: String,
}

/// Text parts and `X-` headers a message carries at most.
const PARTS_LIMIT: usize = 8;

/// Check what the plugin gave and build the message around it.
pub fn prepare(message: &Message, hostname: &str, now: i64) -> Result<Prepared, String> {
    prepare_parts(message, &[], &[], hostname, now)
}

/// A part's content type: `text/plain`, with a plain file name at most.
fn part_type(content_type: &str) -> Result<String, String> {
    let bad = || format!("mail part type {content_type:?}: expected text/plain, or text/plain; name=\"FILE.txt\"");
    let mut pieces = content_type.split(';').map(str::trim);
    if !pieces.next().is_some_and(|t| t.eq_ignore_ascii_case("text/plain")) {
        return Err(bad());
    }
    let mut kept = "text/plain; charset=UTF-8".to_string();
    for piece in pieces.filter(|p| !p.is_empty()) {
        let name = piece.strip_prefix("name=").map(|n| n.trim_matches('"')).ok_or_else(bad)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(bad());
        }
        kept.push_str(&format!("; name=\"{name}\""));
    }
    Ok(kept)
}

/// Append `body` to `text` as CRLF lines no longer than SMTP allows.
fn push_body(text: &mut String, body: &str) {
    let body = crate::capability::log::truncate(body, BODY_LIMIT);
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line).replace(['\0', '\r'], "");
        // SMTP allows 998 bytes a line: longer ones are folded.
        let mut rest = line.as_str();
        loop {
            let mut cut = rest.len().min(990);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            text.push_str(&rest[..cut]);
            text.push_str("\r\n");
            rest = &rest[cut..];
            if rest.is_empty() {
                break;
            }
        }
    }
}

/// As [`prepare`], with text `parts` after the body (then a
/// multipart/mixed message) and `X-` headers.
pub fn prepare_parts(
    message: &Message,
    parts: &[Part],
    x_headers: &[(String, String)],
    hostname: &str,
    now: i64,
) -> Result<Prepared, String> {
    if parts.len() > PARTS_LIMIT || x_headers.len() > PARTS_LIMIT {
        return Err(format!("mail has more than {PARTS_LIMIT} parts or extra headers"));
    }
    for (name, value) in x_headers {
        let name_ok = name.len() > 2
            && name.len() <= 64
            && name[..2].eq_ignore_ascii_case("x-")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !name_ok || value.len() > 256 || value.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(format!("mail header {name:?}: {value:?}: only X- headers with one plain line are allowed"));
        }
    }
    let part_types = parts.iter().map(|p| part_type(&p.content_type)).collect::<Result<Vec<_>, _>>()?;
    let (sender, from) = mailbox("sender", &message.sender)?;
    if message.recipients.is_empty() {
        return Err("mail has no recipient".into());
    }
    if message.recipients.len() > RECIPIENT_LIMIT {
        return Err(format!("mail has {} recipients; at most {RECIPIENT_LIMIT} are allowed", message.recipients.len()));
    }
    let mut recipients = Vec::new();
    let mut to = Vec::new();
    for r in &message.recipients {
        let (address, header) = mailbox("recipient", r)?;
        recipients.push(address);
        to.push(header);
    }
    if message.subject.chars().any(|c| c.is_control()) {
        return Err(format!("mail subject {:?} holds a control character (a line break?)", message.subject));
    }
    // A boundary no line of any part can hold: 128 random bits.
    let boundary = format!("wasmban-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let content_type = if parts.is_empty() {
        "text/plain; charset=UTF-8".to_string()
    } else {
        format!("multipart/mixed; boundary=\"{boundary}\"")
    };
    let mut text = String::new();
    let mut headers = vec![
        ("From".to_string(), from),
        ("To".to_string(), to.join(", ")),
        ("Subject".to_string(), encode_header(&message.subject)),
        ("Date".to_string(), rfc5322_date(now)),
        ("Message-ID".to_string(), format!("<{now}.{}.{}@{hostname}>", std::process::id(), fastrand::u64(..))),
        ("MIME-Version".to_string(), "1.0".into()),
        ("Content-Type".to_string(), content_type),
        ("Content-Transfer-Encoding".to_string(), "8bit".into()),
        ("Auto-Submitted".to_string(), "auto-generated".into()),
        ("X-Mailer".to_string(), "wasmban".into()),
    ];
    headers.extend(x_headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("x-mailer")).cloned());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    if parts.is_empty() {
        push_body(&mut text, &message.body);
        return Ok(Prepared { sender, recipients, text });
    }
    let bodies = std::iter::once(("text/plain; charset=UTF-8".to_string(), message.body.as_str()))
        .chain(part_types.into_iter().zip(parts.iter().map(|p| p.body.as_str())));
    for (content_type, body) in bodies {
        text.push_str(&format!(
            "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        ));
        push_body(&mut text, body);
    }
    text.push_str(&format!("--{boundary}--\r\n"));
    Ok(Prepared { sender, recipients, text })
}

/// One SMTP reply: its code and text.
fn reply(reader: &mut impl BufRead) -> Result<(u16, String), String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|e| format!("reading from the relay: {e}"))?;
        if n == 0 {
            return Err("the relay closed the connection".into());
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("the relay answered {:?}, which is not SMTP", line.trim_end()))?;
        text.push_str(line.get(4..).unwrap_or("").trim_end());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

/// Send `message` by SMTP to `relay`.
pub fn send_smtp(relay: &str, hostname: &str, message: &Prepared, timeout: Duration) -> Result<(), String> {
    let addrs: Vec<_> =
        relay.to_socket_addrs().map_err(|e| format!("mail relay {relay:?} in [mail] relay: {e}"))?.collect();
    let mut last = format!("mail relay {relay:?} has no address");
    let stream = addrs.iter().find_map(|a| match TcpStream::connect_timeout(a, timeout) {
        Ok(s) => Some(s),
        Err(e) => {
            last = format!("connecting to mail relay {relay} ({a}): {e}");
            None
        }
    });
    let stream = stream.ok_or(last)?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut step = |command: Option<String>, want: &[u16]| -> Result<(), String> {
        if let Some(c) = &command {
            writer.write_all(c.as_bytes()).map_err(|e| format!("writing to mail relay {relay}: {e}"))?;
        }
        let (code, text) = reply(&mut reader)?;
        if want.contains(&code) {
            Ok(())
        } else {
            let what = command.as_deref().map(|c| c.lines().next().unwrap_or("").to_string());
            Err(format!(
                "mail relay {relay} answered {code} {text} to {}",
                what.unwrap_or_else(|| "the connection".into())
            ))
        }
    };
    step(None, &[220])?;
    step(Some(format!("EHLO {hostname}\r\n")), &[250])?;
    step(Some(format!("MAIL FROM:<{}>\r\n", message.sender)), &[250])?;
    for r in &message.recipients {
        step(Some(format!("RCPT TO:<{r}>\r\n")), &[250, 251])?;
    }
    step(Some("DATA\r\n".into()), &[354])?;
    // Dot-stuffing: a line that starts with "." gets another, so that no
    // body line (a logged "." included) can end the message.
    let mut data = String::with_capacity(message.text.len() + 64);
    for line in message.text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
    }
    data.push_str(".\r\n");
    step(Some(data), &[250])?;
    let _ = step(Some("QUIT\r\n".into()), &[221]);
    Ok(())
}

/// The state behind one plugin instance's `mail` import.
pub struct MailCtx {
    plugin: Arc<str>,
    settings: Arc<MailSettings>,
    runner: Arc<dyn ProgramRunner>,
}

impl MailCtx {
    /// Mail for `plugin` as `settings` say, running sendmail through `runner`.
    pub fn new(plugin: Arc<str>, settings: Arc<MailSettings>, runner: Arc<dyn ProgramRunner>) -> Self {
        MailCtx { plugin, settings, runner }
    }

    /// The state for `plugin`, sending as wasmban.conf's `[mail]` says.
    pub fn for_plugin(plugin: &Arc<str>, _grants: &Grants, services: &HostServices) -> Self {
        MailCtx::new(plugin.clone(), services.mail.clone(), services.runner.clone())
    }

    /// Send one message.
    pub fn send(&self, message: &Message, now: i64) -> Result<(), String> {
        self.send_parts(message, &[], &[], now)
    }

    /// Send one message with text parts and `X-` headers.
    pub fn send_parts(
        &self,
        message: &Message,
        parts: &[Part],
        x_headers: &[(String, String)],
        now: i64,
    ) -> Result<(), String> {
        let prepared = prepare_parts(message, parts, x_headers, &self.settings.hostname, now)?;
        tracing::debug!(plugin = &*self.plugin, to = ?prepared.recipients, subject = message.subject, "mail");
        match &self.settings.transport {
            MailTransport::Smtp { relay } => {
                send_smtp(relay, &self.settings.hostname, &prepared, self.settings.timeout)
            }
            MailTransport::Sendmail(program) => {
                let mut args = vec!["-i".to_string(), "-f".to_string(), prepared.sender.clone(), "--".to_string()];
                args.extend(prepared.recipients.iter().cloned());
                // sendmail reads lines ending in LF.
                let text = prepared.text.replace("\r\n", "\n");
                let out = self
                    .runner
                    .run(program, &args, Some(&text), self.settings.timeout)
                    .map_err(|e| format!("running {} (from [mail] sendmail): {e}", program.display()))?;
                if out.status == 0 {
                    Ok(())
                } else {
                    Err(format!("{} exited with status {}: {}", program.display(), out.status, out.stderr.trim()))
                }
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl wit::Host for MailCtx {
    fn send(&mut self, message: Message) -> Result<(), String> {
        self.send_parts(message, Vec::new(), Vec::new())
    }

    fn send_parts(
        &mut self,
        message: Message,
        parts: Vec<Part>,
        x_headers: Vec<(String, String)>,
    ) -> Result<(), String> {
        let result = MailCtx::send_parts(self, &message, &parts, &x_headers, unix_now());
        if let Err(e) = &result {
            tracing::warn!(plugin = &*self.plugin, "mail not sent: {e}");
        }
        result
    }
}

struct HasMail;
impl wasmtime::component::HasData for HasMail {
    type Data<'a> = &'a mut MailCtx;
}

/// Link `mail` into `linker`. Call it only for plugins granted `mail`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut MailCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasMail>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::process::RecordingRunner;

    fn message(sender: &str, to: &[&str], subject: &str, body: &str) -> Message {
        Message {
            sender: sender.into(),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            subject: subject.into(),
            body: body.into(),
        }
    }

    #[test]
    fn headers_are_built_by_the_host() {
        let m = message("wasmban <wasmban@example.org>", &["root"], "[sshd] banned 192.0.2.1", "hello\nworld");
        let p = prepare(&m, "web1", 1_764_000_000).unwrap();
        assert_eq!(p.sender, "wasmban@example.org");
        assert_eq!(p.recipients, ["root"]);
        assert!(
            p.text
                .starts_with("From: wasmban <wasmban@example.org>\r\nTo: root\r\nSubject: [sshd] banned 192.0.2.1\r\n")
        );
        assert!(p.text.contains("Date: Mon, 24 Nov 2025 16:00:00 +0000\r\n"), "{}", p.text);
        assert!(p.text.ends_with("\r\n\r\nhello\r\nworld\r\n"), "{}", p.text);
    }

    #[test]
    fn nothing_from_the_plugin_can_add_a_header_or_a_recipient() {
        let bad = [
            message("a@b", &["root"], "x\r\nBcc: victim@example.org", ""),
            message("a@b\nBcc: v@e", &["root"], "x", ""),
            message("a@b", &["root, victim@example.org"], "x", ""),
            message("a@b", &["root>\r\nRCPT TO:<victim@example.org"], "x", ""),
            message("a@b", &[], "x", ""),
        ];
        for m in bad {
            assert!(prepare(&m, "h", 0).is_err(), "{m:?}");
        }
        // In the body, a forged header is only text.
        let p = prepare(&message("a@b", &["root"], "x", "\nBcc: victim@example.org"), "h", 0).unwrap();
        assert!(p.text.contains("\r\n\r\n\r\nBcc: victim@example.org\r\n"));
    }

    #[test]
    fn reports_are_multipart_with_checked_parts_and_x_headers_only() {
        let m = message("a@b", &["abuse@example.net"], "abuse report about 192.0.2.7", "Dear Sir/Madam");
        let report = Part { content_type: "text/plain; name=\"report.txt\"".into(), body: "Category: abuse".into() };
        let xarf = [("X-XARF".to_string(), "PLAIN".to_string())];
        let p = prepare_parts(&m, std::slice::from_ref(&report), &xarf, "h", 0).unwrap();
        let boundary = p.text.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        assert!(p.text.contains("\r\nX-XARF: PLAIN\r\n"), "{}", p.text);
        assert!(p.text.contains(&format!("--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\n")));
        assert!(p.text.contains("Content-Type: text/plain; charset=UTF-8; name=\"report.txt\"\r\n"), "{}", p.text);
        assert!(p.text.ends_with(&format!("Category: abuse\r\n--{boundary}--\r\n")), "{}", p.text);
        for (name, value) in [("Bcc", "v@e"), ("X-A", "b\r\nBcc: v@e"), ("X-", "x"), ("Content-Type", "text/html")] {
            let headers = [(name.to_string(), value.to_string())];
            assert!(prepare_parts(&m, &[], &headers, "h", 0).is_err(), "{name}: {value}");
        }
        for content_type in ["text/html", "text/plain; name=\"../x\"", "text/plain; charset=x\r\nBcc: v"] {
            let part = Part { content_type: content_type.into(), body: String::new() };
            assert!(prepare_parts(&m, &[part], &[], "h", 0).is_err(), "{content_type}");
        }
    }

    #[test]
    fn non_ascii_subjects_are_encoded_and_long_lines_folded() {
        let p = prepare(&message("a@b", &["root"], "Sperre für 192.0.2.1", &"x".repeat(3000)), "h", 0).unwrap();
        assert!(p.text.contains("Subject: =?UTF-8?B?U3BlcnJlIGbDvHIgMTkyLjAuMi4x?=\r\n"), "{}", p.text);
        assert!(p.text.lines().all(|l| l.len() <= 998));
    }

    #[test]
    fn sendmail_gets_the_envelope_as_arguments_and_the_message_on_stdin() {
        let recorder = RecordingRunner::default();
        let settings = MailSettings {
            transport: MailTransport::Sendmail("/usr/sbin/sendmail".into()),
            timeout: Duration::from_secs(5),
            hostname: "h".into(),
        };
        let ctx = MailCtx::new("mail-whois".into(), Arc::new(settings), Arc::new(recorder.clone()));
        ctx.send(&message("wasmban", &["root", "-oQ/tmp/x"], "s", "b"), 0).unwrap_err();
        ctx.send(&message("wasmban", &["root", "ops@example.org"], "s", ".\nb"), 0).unwrap();
        let runs = recorder.runs();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].args, ["-i", "-f", "wasmban", "--", "root", "ops@example.org"]);
        assert!(runs[0].input.as_deref().unwrap().ends_with("\n\n.\nb\n"));
    }
}
