//! The daemon's log, in fail2ban's line format
//! (`2026-11-25 10:00:00,123 fail2ban.actions        [42]: NOTICE  [sshd] Ban 192.0.2.1`),
//! so that fail2ban's recidive filter and admins' habits work on it.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::BAN_TARGET;
use crate::daemon::log_output::LogOutput;
use crate::daemon::settings::{LogFormat, Settings, level_filter, level_name};

/// The line layout: fail2ban's, or one JSON object per line.
struct LineFormat {
    pid: u32,
    json: bool,
    /// Whether lines start with the date (syslog adds its own)...
    stamp: bool,
    /// ... or, when given, whether this output's target dates them.
    output: Option<LogOutput>,
}

/// Fields of an event that say what the message already says: written
/// in JSON lines, left out of fail2ban's (recidive's regex wants the line
/// to end with the address).
const STRUCTURED: &[&str] = &["jail", "event", "address", "failures", "bantime"];

/// An event's fields, in order, with the message apart.
#[derive(Default)]
struct Fields {
    /// For fail2ban's lines: the [`STRUCTURED`] fields are not kept (a jail
    /// in a burst logs a line per failure, each with three of them).
    plain: bool,
    message: String,
    rest: Vec<(&'static str, serde_json::Value)>,
}

impl Fields {
    fn keep(&mut self, field: &tracing::field::Field, value: impl FnOnce() -> serde_json::Value) {
        if !(self.plain && STRUCTURED.contains(&field.name())) {
            self.rest.push((field.name(), value()));
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.keep(field, || serde_json::Value::String(format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.keep(field, || serde_json::Value::String(value.to_string()));
        }
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.keep(field, || value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.keep(field, || value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.keep(field, || value.into());
    }
}

/// The jail a message is about, from its `[jail] ` prefix.
fn jail_of(message: &str) -> Option<&str> {
    let rest = message.strip_prefix('[')?;
    let (jail, _) = rest.split_once("] ")?;
    (!jail.is_empty() && !jail.contains(char::is_whitespace)).then_some(jail)
}

/// Write the local date and time with milliseconds, as fail2ban writes
/// them, and a space.
fn write_local_timestamp(writer: &mut impl std::fmt::Write) -> std::fmt::Result {
    thread_local! {
        // The second's text: glibc's local time takes a process-wide lock,
        // and a jail in a burst logs thousands of lines a second.
        static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != secs {
            let tm = crate::timezone::local_time(secs);
            second.1 = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            );
            second.0 = secs;
        }
        let millis = now.subsec_millis();
        let digits = [b'0' + (millis / 100) as u8, b'0' + (millis / 10 % 10) as u8, b'0' + (millis % 10) as u8];
        writer.write_str(&second.1)?;
        writer.write_char(',')?;
        writer.write_str(std::str::from_utf8(&digits).map_err(|_| std::fmt::Error)?)?;
        writer.write_char(' ')
    })
}

/// Write the logger, pid and level of a line (`fail2ban.actions        [42]: NOTICE  `),
/// made once per thread for the last logger and level it wrote.
fn write_header(
    writer: &mut impl std::fmt::Write,
    target: &'static str,
    name: &str,
    pid: u32,
    level: &'static str,
) -> std::fmt::Result {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(&'static str, &'static str, u32, String)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let fresh =
            !matches!(&*last, Some((t, l, p, _)) if std::ptr::eq(*t, target) && std::ptr::eq(*l, level) && *p == pid);
        if fresh {
            *last = Some((target, level, pid, format!("{name:<24}[{pid}]: {level:<7} ")));
        }
        writer.write_str(last.as_ref().map_or("", |(_, _, _, header)| header))
    })
}

/// The logger fail2ban's lines name for an event of `target`: the module
/// path with dots. The last one is kept per thread, as a jail logs from a
/// handful of modules, a line per failure in a burst.
fn logger_name(target: &'static str) -> std::rc::Rc<str> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(&'static str, std::rc::Rc<str>)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, name)) if std::ptr::eq(*seen, target) => name.clone(),
            _ => {
                let name: std::rc::Rc<str> =
                    if target == BAN_TARGET { target.into() } else { target.replace("::", ".").into() };
                *last = Some((target, name.clone()));
                name
            }
        }
    })
}

/// UTC time with milliseconds, RFC 3339, for JSON lines.
fn utc_timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (year, month, day) = crate::timezone::civil_from_days(secs.div_euclid(86400));
    let rem = secs.rem_euclid(86400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_millis()
    )
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let meta = event.metadata();
        let target = meta.target();
        let name = logger_name(target);
        let level = match *meta.level() {
            Level::INFO if target == BAN_TARGET => "NOTICE",
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        if self.json {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let mut object = serde_json::Map::new();
            object.insert("time".into(), utc_timestamp().into());
            object.insert("level".into(), level.into());
            object.insert("logger".into(), name.to_string().into());
            object.insert("pid".into(), self.pid.into());
            if let Some(jail) = jail_of(&fields.message) {
                object.insert("jail".into(), jail.into());
            }
            for (key, value) in fields.rest {
                object.insert(key.into(), value);
            }
            object.insert("message".into(), fields.message.into());
            // serde_json escapes every control character: one line each.
            let line = serde_json::to_string(&object).map_err(|_| std::fmt::Error)?;
            return writeln!(writer, "{line}");
        }
        if self.output.as_ref().map_or(self.stamp, LogOutput::dates_lines) {
            write_local_timestamp(&mut writer)?;
        }
        write_header(&mut writer, target, &name, self.pid, level)?;
        // Fields carry text from plugins and log lines: escaped, so that
        // none of it can start a line of its own (a forged `NOTICE [sshd]
        // Ban` that recidive would read) or carry terminal escapes into
        // the file. The message is escaped as it is written, without a
        // copy: a jail in a burst logs a line per failure.
        let mut line =
            PlainLine { out: Escaping(&mut writer), rest: Fields { plain: true, ..Fields::default() }, ok: Ok(()) };
        event.record(&mut line);
        line.ok?;
        for (key, value) in &line.rest.rest {
            match value {
                serde_json::Value::String(v) => write!(line.out, " {key}={v:?}")?,
                other => write!(line.out, " {key}={other}")?,
            }
        }
        writeln!(writer)
    }
}

/// `text` with every control character (newlines, carriage returns, ESC,
/// DEL, C1 controls) written as a visible escape.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{{{:02x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes what it is given with control characters escaped, as
/// [`escape_controls`] does.
struct Escaping<'w, W: std::fmt::Write>(&'w mut W);

impl<W: std::fmt::Write> std::fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.write_str(&escape_controls(text))
    }
}

/// An event's fields for fail2ban's line: the message is written as it
/// is visited; the other fields are kept for after it.
struct PlainLine<'w, W: std::fmt::Write> {
    out: Escaping<'w, W>,
    rest: Fields,
    ok: std::fmt::Result,
}

impl<W: std::fmt::Write> tracing::field::Visit for PlainLine<'_, W> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            if self.ok.is_ok() {
                self.ok = write!(self.out, "{value:?}");
            }
        } else {
            self.rest.record_debug(field, value);
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            if self.ok.is_ok() {
                self.ok = self.out.write_str(value);
            }
        } else {
            self.rest.record_str(field, value);
        }
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.rest.record_i64(field, value);
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.rest.record_u64(field, value);
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.rest.record_bool(field, value);
    }
}

/// What can be changed of the log while the daemon runs: fail2ban's
/// `set loglevel` and `set logtarget`.
pub struct LogControl {
    output: LogOutput,
    level: Mutex<String>,
    filter: tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// The daemon's log, once [`init`] installed it.
pub fn control() -> Option<&'static LogControl> {
    CONTROL.get()
}

impl LogControl {
    /// Where lines go.
    pub fn output(&self) -> &LogOutput {
        &self.output
    }

    /// The level, as fail2ban names it.
    pub fn level(&self) -> String {
        self.level.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Change the level now.
    pub fn set_level(&self, level: &str) -> Result<String, String> {
        let (Some(name), Some(directives)) = (level_name(level), level_filter(level)) else {
            return Err(format!(
                "loglevel {level:?}: use CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG, TRACEDEBUG or HEAVYDEBUG"
            ));
        };
        self.filter.reload(EnvFilter::new(directives)).map_err(|e| format!("loglevel {name}: {e}"))?;
        if let Ok(mut l) = self.level.lock() {
            *l = name.to_string();
        }
        Ok(name.to_string())
    }
}

/// Install the daemon's logger. `WASMBAN_LOG` overrides `loglevel` (until
/// a `set loglevel`). When
/// lines go elsewhere than the standard streams, a terminal the daemon
/// was started from shows them too. A target that cannot be opened is
/// stderr, with a warning.
pub fn init(settings: &Settings) -> anyhow::Result<&'static LogControl> {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let pid = std::process::id();
    let json = settings.log_format == LogFormat::Json;
    let (output, problem) = LogOutput::open(&settings.log_target);
    let main = tracing_subscriber::fmt::layer()
        .event_format(LineFormat { pid, json, stamp: true, output: Some(output.clone()) })
        .with_ansi(false)
        .with_writer(output.clone());
    let terminal = std::io::stderr().is_terminal().then(|| {
        let away = output.clone();
        tracing_subscriber::fmt::layer()
            .event_format(LineFormat { pid, json, stamp: true, output: None })
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::filter::filter_fn(move |_| away.is_away()))
    });
    let from_settings = || EnvFilter::new(&settings.log_filter);
    let (filter, handle) = tracing_subscriber::reload::Layer::new(
        EnvFilter::try_from_env("WASMBAN_LOG").unwrap_or_else(|_| from_settings()),
    );
    let _ = tracing_subscriber::registry().with(filter).with(main).with(terminal).try_init();
    if let Some(problem) = problem {
        tracing::warn!("{problem}; logging to stderr instead (run as root, or set logtarget in wasmban.local)");
    }
    let control = LogControl { output, level: Mutex::new(settings.log_level.clone()), filter: handle };
    Ok(CONTROL.get_or_init(|| control))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::settings::LogTarget;
    use tracing_subscriber::layer::SubscriberExt;

    /// What one event writes to a log file.
    fn logged(emit: impl FnOnce()) -> String {
        logged_as(false, emit)
    }

    fn logged_as(json: bool, emit: impl FnOnce()) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wasmban.log");
        let (file, _) = LogOutput::open(&LogTarget::File(path.clone()));
        let layer = tracing_subscriber::fmt::layer()
            .event_format(LineFormat { pid: 1, json, stamp: true, output: None })
            .with_ansi(false)
            .with_writer(file);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        std::fs::read_to_string(&path).expect("read")
    }

    #[test]
    fn a_message_cannot_forge_a_line_of_its_own() {
        let forged = "hello\n2026-12-04 10:00:00,000 fail2ban.actions        [1]: NOTICE  [sshd] Ban 192.0.2.9";
        let out = logged(|| tracing::warn!(target: "wasmban::plugin", plugin = "evil\rname", "{forged}"));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("hello\\n2026"), "{out}");
        assert!(out.contains("evil\\rname"), "{out}");
    }

    #[test]
    fn terminal_escapes_are_written_visibly() {
        let out = logged(|| tracing::info!(plugin = "p", "\x1b[31mred\x1b[0m \u{9b}2J"));
        assert!(!out.contains('\x1b') && !out.contains('\u{9b}'), "{out:?}");
        // tracing escapes ESC itself; what it leaves, we escape.
        assert!(out.contains("[31mred") && out.contains("2J"), "{out}");
    }

    #[test]
    fn fields_carry_no_colour_codes_even_where_the_layer_has_colour() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wasmban.log");
        let (file, _) = LogOutput::open(&LogTarget::File(path.clone()));
        let layer = tracing_subscriber::fmt::layer()
            .event_format(LineFormat { pid: 1, json: false, stamp: true, output: None })
            .with_ansi(true)
            .with_writer(file);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(plugin = "iptables", jail = "sshd", "started")
        });
        let out = std::fs::read_to_string(&path).expect("read");
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(out.contains("plugin=\"iptables\"") || out.contains("plugin=iptables"), "{out}");
    }

    fn ban_event() {
        tracing::info!(
            target: BAN_TARGET,
            jail = "sshd",
            event = "ban",
            address = "192.0.2.1",
            failures = 5u32,
            "[sshd] Ban 192.0.2.1"
        );
    }

    #[test]
    fn a_ban_line_ends_with_the_address_as_recidive_expects() {
        let out = logged(ban_event);
        assert!(out.trim_end().ends_with("NOTICE  [sshd] Ban 192.0.2.1"), "{out}");
    }

    #[test]
    fn json_lines_carry_jail_event_and_address() {
        let out = logged_as(true, ban_event);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        assert_eq!(
            (v["jail"].as_str(), v["event"].as_str(), v["address"].as_str()),
            (Some("sshd"), Some("ban"), Some("192.0.2.1"))
        );
        assert_eq!((v["level"].as_str(), v["failures"].as_u64()), (Some("NOTICE"), Some(5)));
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24), "{v}");
        // The jail is read from a message's prefix where no field gives it,
        // and text from a log line stays inside its string.
        let out = logged_as(true, || tracing::warn!("[web] odd line\nNOTICE  [sshd] Ban 192.0.2.9"));
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        assert_eq!(v["jail"], "web");
        assert_eq!(v["level"], "WARNING");
    }

    #[test]
    fn syslog_gets_one_datagram_per_event_with_its_priority_and_no_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let (output, problem) = LogOutput::open(&LogTarget::Syslog(path.clone()));
        assert!(problem.is_none());
        let layer = tracing_subscriber::fmt::layer()
            .event_format(LineFormat { pid: 7, json: false, stamp: true, output: Some(output.clone()) })
            .with_ansi(false)
            .with_writer(output);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            ban_event();
            tracing::error!("[sshd] broken");
        });
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "<29>fail2ban.actions        [7]: NOTICE  [sshd] Ban 192.0.2.1"
        );
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("<27>") && text.ends_with("ERROR   [sshd] broken"), "{text}");
    }
}
