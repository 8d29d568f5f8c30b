//! The daemon's log, in fail2ban's line format
//! (`2026-11-25 10:00:00,123 fail2ban.actions        [42]: NOTICE  [sshd] Ban 192.0.2.1`),
//! so that fail2ban's recidive filter and admins' habits work on it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::BAN_TARGET;
use crate::daemon::settings::{LogTarget, Settings};

/// fail2ban's line layout.
struct Fail2banFormat {
    pid: u32,
}

/// Local date and time with milliseconds, as fail2ban writes them.
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes the tm it is given.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

impl<S, N> FormatEvent<S, N> for Fail2banFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let meta = event.metadata();
        let target = meta.target();
        let name = if target == BAN_TARGET { target.to_string() } else { target.replace("::", ".") };
        let level = match *meta.level() {
            Level::INFO if target == BAN_TARGET => "NOTICE",
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        write!(writer, "{} {:<24}[{}]: {:<7} ", local_timestamp(), name, self.pid, level)?;
        // Fields carry text from plugins and log lines: formatted apart and
        // escaped, so that none of it can start a line of its own (a forged
        // `NOTICE [sshd] Ban` that recidive would read) or carry terminal
        // escapes into the file.
        let mut fields = String::new();
        ctx.field_format().format_fields(Writer::new(&mut fields), event)?;
        writer.write_str(&escape_controls(&fields))?;
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

/// A log file that can be reopened (after logrotate moved it).
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Open `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        Ok(LogFile { path: path.to_path_buf(), file: Arc::new(Mutex::new(open_log(path)?)) })
    }

    /// Reopen the file by name.
    pub fn reopen(&self) -> std::io::Result<()> {
        let fresh = open_log(&self.path)?;
        if let Ok(mut f) = self.file.lock() {
            *f = fresh;
        }
        Ok(())
    }
}

/// One line written to the log file.
pub struct LogFileWriter(Arc<Mutex<File>>);

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.file.clone())
    }
}

/// Install the daemon's logger. `WASMBAN_LOG` overrides `loglevel`.
/// Returns the log file, to reopen on reload, when logging to one. With a
/// file target, lines are also shown on a terminal when started from one;
/// a file that cannot be opened falls back to stderr, with a warning.
pub fn init(settings: &Settings) -> anyhow::Result<Option<LogFile>> {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_env("WASMBAN_LOG").unwrap_or_else(|_| EnvFilter::new(&settings.log_filter));
    let pid = std::process::id();
    // Colour only on a terminal: escape codes in a file or the journal are
    // noise in every field a script reads.
    let colour = std::io::stderr().is_terminal();
    let stderr_layer = || {
        tracing_subscriber::fmt::layer()
            .event_format(Fail2banFormat { pid })
            .with_ansi(colour)
            .with_writer(std::io::stderr)
    };
    let registry = tracing_subscriber::registry().with(filter);
    match &settings.log_target {
        LogTarget::Stderr => {
            let _ = registry.with(stderr_layer()).try_init();
            Ok(None)
        }
        LogTarget::Stdout => {
            let layer = tracing_subscriber::fmt::layer()
                .event_format(Fail2banFormat { pid })
                .with_ansi(false)
                .with_writer(std::io::stdout);
            let _ = registry.with(layer).try_init();
            Ok(None)
        }
        LogTarget::File(path) => match LogFile::open(path) {
            Ok(file) => {
                let file_layer = tracing_subscriber::fmt::layer()
                    .event_format(Fail2banFormat { pid })
                    .with_ansi(false)
                    .with_writer(file.clone());
                let terminal = std::io::stderr().is_terminal().then(stderr_layer);
                let _ = registry.with(file_layer.and_then(terminal)).try_init();
                Ok(Some(file))
            }
            Err(e) => {
                let _ = registry.with(stderr_layer()).try_init();
                tracing::warn!(
                    "logtarget {}: {e}; logging to stderr instead (run as root, or set logtarget in wasmban.local)",
                    path.display()
                );
                Ok(None)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// What one event writes to a log file.
    fn logged(emit: impl FnOnce()) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wasmban.log");
        let file = LogFile::open(&path).expect("open");
        let layer =
            tracing_subscriber::fmt::layer().event_format(Fail2banFormat { pid: 1 }).with_ansi(false).with_writer(file);
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
        let file = LogFile::open(&path).expect("open");
        let layer =
            tracing_subscriber::fmt::layer().event_format(Fail2banFormat { pid: 1 }).with_ansi(true).with_writer(file);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(plugin = "iptables", jail = "sshd", "started")
        });
        let out = std::fs::read_to_string(&path).expect("read");
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(out.contains("plugin=\"iptables\"") || out.contains("plugin=iptables"), "{out}");
    }
}
