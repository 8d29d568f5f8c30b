//! The daemon's own settings: `[Definition]` of `wasmban.conf` (or, when
//! pointed at a fail2ban tree, `fail2ban.conf`), each with its `.local`,
//! and wasmban.conf's `[mail]` and `[whois]`, which the mail and whois
//! capabilities use.

use std::path::{Path, PathBuf};

use crate::capability::mail::{MailSettings, MailTransport};
use crate::capability::whois::WhoisSettings;
use crate::config::ConfigError;
use crate::config::ini::{Ini, layered_files};
use crate::config::interp::Vars;
use crate::config::values::{parse_bool, parse_time};

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error: what systemd's journal collects.
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, appended to (and reopened on reload, for logrotate).
    File(PathBuf),
    /// The syslog daemon, at this socket (`syslogsocket`, `/dev/log` for
    /// `auto`), facility daemon.
    Syslog(PathBuf),
    /// The systemd journal, through its native socket.
    Journal(PathBuf),
}

impl LogTarget {
    /// `logtarget` as fail2ban reads it; `syslogsocket` is where SYSLOG
    /// sends (`auto`: `/dev/log`).
    pub fn parse(target: &str, syslogsocket: &str) -> Result<LogTarget, (&'static str, String)> {
        let target = target.trim();
        Ok(match target.to_ascii_uppercase().as_str() {
            "STDERR" => LogTarget::Stderr,
            "STDOUT" => LogTarget::Stdout,
            "SYSTEMD-JOURNAL" => LogTarget::Journal(PathBuf::from(crate::daemon::log_output::JOURNAL_SOCKET)),
            "SYSLOG" => match syslogsocket.trim() {
                "auto" => LogTarget::Syslog(PathBuf::from("/dev/log")),
                socket if socket.starts_with('/') => LogTarget::Syslog(PathBuf::from(socket)),
                socket => {
                    return Err((
                        "syslogsocket",
                        format!("{socket:?}: use auto (/dev/log) or the absolute path of the syslog socket"),
                    ));
                }
            },
            _ if target.starts_with('/') => LogTarget::File(PathBuf::from(target)),
            _ => {
                return Err((
                    "logtarget",
                    format!("{target:?}: use STDERR, STDOUT, SYSLOG, SYSTEMD-JOURNAL or an absolute file path"),
                ));
            }
        })
    }

    /// The target as fail2ban names it (`get logtarget`).
    pub fn name(&self) -> String {
        match self {
            LogTarget::Stderr => "STDERR".into(),
            LogTarget::Stdout => "STDOUT".into(),
            LogTarget::File(path) => path.display().to_string(),
            LogTarget::Syslog(_) => "SYSLOG".into(),
            LogTarget::Journal(_) => "SYSTEMD-JOURNAL".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// fail2ban's line format (recidive reads it).
    #[default]
    Fail2ban,
    /// One JSON object per line.
    Json,
}

/// The daemon settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `loglevel`, as a tracing filter directive.
    pub log_filter: String,
    /// `loglevel`, as fail2ban names it.
    pub log_level: String,
    /// `logtarget`.
    pub log_target: LogTarget,
    /// `logformat`.
    pub log_format: LogFormat,
    /// `syslogsocket`, as written (`auto`: `/dev/log`).
    pub syslogsocket: String,
    /// `[metrics] listen`: where Prometheus metrics are served (off when
    /// `None`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[lapi]`: where CrowdSec bouncers are served (off when `None`).
    pub lapi: Option<crate::lapi::LapiSettings>,
    /// `[fleet]`: bans shared over NATS.
    pub fleet: Option<crate::fleet::settings::FleetSettings>,
    /// `pidfile`: where the daemon writes its pid while it runs.
    pub pidfile: Option<PathBuf>,
    /// `dbpurgeage` in seconds: lifted bans older than this are forgotten
    /// (and stop counting for `bantime.increment`).
    pub dbpurgeage: i64,
    /// `dbmaxmatches`: matched lines the store keeps per ban.
    pub dbmaxmatches: usize,
    /// What was read but is not used as fail2ban would use it, each
    /// naming its file, key and what to do: said by `check` and at start.
    pub notices: Vec<String>,
    /// The file the settings came from, if any.
    pub file: Option<PathBuf>,
    /// `[mail]`: how the mail capability sends.
    pub mail: MailSettings,
    /// `[whois]`: where the whois capability asks.
    pub whois: WhoisSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_filter: level_filter("INFO").unwrap_or_default(),
            log_level: "INFO".into(),
            log_target: LogTarget::Stderr,
            log_format: LogFormat::Fail2ban,
            syslogsocket: "auto".into(),
            metrics_listen: None,
            lapi: None,
            fleet: None,
            pidfile: None,
            dbpurgeage: 86400,
            dbmaxmatches: crate::store::DEFAULT_MAX_MATCHES,
            notices: Vec::new(),
            file: None,
            mail: MailSettings::default(),
            whois: WhoisSettings::default(),
        }
    }
}

/// fail2ban's name of a level given by name or number.
pub fn level_name(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" | "50" => "CRITICAL",
        "ERROR" | "40" => "ERROR",
        "WARNING" | "WARN" | "30" => "WARNING",
        "NOTICE" | "25" => "NOTICE",
        "INFO" | "20" => "INFO",
        "DEBUG" | "10" => "DEBUG",
        "TRACEDEBUG" | "7" => "TRACEDEBUG",
        "HEAVYDEBUG" | "5" => "HEAVYDEBUG",
        _ => return None,
    })
}

/// fail2ban's level names (and numbers) as a tracing filter. NOTICE keeps
/// the ban and unban lines and drops other information.
pub fn level_filter(level: &str) -> Option<String> {
    let quiet = "wasmtime=warn,cranelift=warn,cranelift_codegen=warn,notify=warn";
    let base = match level.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" | "50" => "error".to_string(),
        "ERROR" | "40" => "error".to_string(),
        "WARNING" | "WARN" | "30" => "warn".to_string(),
        "NOTICE" | "25" => "warn,fail2ban.actions=info".to_string(),
        "INFO" | "20" => "info".to_string(),
        "DEBUG" | "10" | "TRACEDEBUG" | "HEAVYDEBUG" | "5" | "7" => "debug".to_string(),
        _ => return None,
    };
    Some(format!("{base},{quiet}"))
}

impl Settings {
    /// Read the settings of `confdir`: `wasmban.conf` when it exists, else
    /// `fail2ban.conf`, else the defaults.
    pub fn load(confdir: &Path) -> Result<Settings, ConfigError> {
        let mut files = layered_files(&confdir.join("wasmban"));
        if files.is_empty() {
            files = layered_files(&confdir.join("fail2ban"));
        }
        if files.is_empty() {
            return Ok(Settings::default());
        }
        let ini = Ini::read(&files)?;
        let vars = Vars::new();
        let get = |opt: &str| ini.get("Definition", opt, &vars);
        let in_section = |section: &str, opt: &str| {
            if ini.sections.contains_key(section) { ini.get(section, opt, &vars) } else { Ok(None) }
        };
        let error_in = |section: &str, option: &str, message: String| ConfigError::Value {
            where_: ini
                .raw(section, option)
                .map(|r| r.origin.to_string())
                .unwrap_or_else(|| files[0].display().to_string()),
            section: section.into(),
            option: option.into(),
            message,
        };
        let value_error = |option: &str, message: String| error_in("Definition", option, message);
        let mut settings = Settings { file: files.first().cloned(), ..Settings::default() };
        if let Some(level) = get("loglevel")? {
            settings.log_level = level_name(&level).unwrap_or("INFO").to_string();
            settings.log_filter = level_filter(&level).ok_or_else(|| {
                value_error("loglevel", format!("{level:?}: use CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG"))
            })?;
        }
        if let Some(target) = get("logtarget")? {
            let socket = get("syslogsocket")?.unwrap_or_else(|| "auto".into());
            settings.log_target = LogTarget::parse(&target, &socket).map_err(|(key, m)| value_error(key, m))?;
            settings.syslogsocket = socket.trim().to_string();
        }
        if let Some(pidfile) = get("pidfile")? {
            let pidfile = pidfile.trim();
            settings.pidfile = match pidfile {
                "" => None,
                p if p.starts_with('/') => Some(PathBuf::from(p)),
                p => return Err(value_error("pidfile", format!("{p:?}: give an absolute path (empty: none)"))),
            };
        }
        if let Some(format) = get("logformat")? {
            settings.log_format = match format.trim().to_ascii_lowercase().as_str() {
                "fail2ban" | "text" => LogFormat::Fail2ban,
                "json" => LogFormat::Json,
                _ => return Err(value_error("logformat", format!("{format:?}: use fail2ban (the default) or json"))),
            };
        }
        // `[section] listen`: an address and port, or empty (off).
        let listen_in = |section: &str, port: u16, off: &str| -> Result<Option<std::net::SocketAddr>, ConfigError> {
            let Some(listen) = in_section(section, "listen")?.filter(|l| !l.trim().is_empty()) else {
                return Ok(None);
            };
            let listen = listen.trim();
            listen.parse().map(Some).map_err(|_| {
                error_in(
                    section,
                    "listen",
                    format!(
                        "{listen:?}: give an address and port, such as 127.0.0.1:{port} or [::1]:{port} (empty: {off})"
                    ),
                )
            })
        };
        settings.metrics_listen = listen_in("metrics", 9191, "no metrics endpoint")?;
        if let Some(listen) = listen_in("lapi", 8080, "no bouncer API")? {
            let keys = match in_section("lapi", "keys")?.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(p) if p.starts_with('/') => Some(PathBuf::from(p)),
                Some(p) => return Err(error_in("lapi", "keys", format!("{p:?}: give an absolute path"))),
            };
            settings.lapi = Some(crate::lapi::LapiSettings { listen, keys });
        }
        settings.fleet =
            crate::fleet::settings::read(|key| in_section("fleet", key), |key, m| error_in("fleet", key, m))?;
        if let Some(age) = get("dbpurgeage")? {
            settings.dbpurgeage = parse_time(&age).map_err(|m| value_error("dbpurgeage", m))?;
        }
        if let Some(n) = get("dbmaxmatches")? {
            settings.dbmaxmatches = n
                .trim()
                .parse()
                .map_err(|_| value_error("dbmaxmatches", format!("{n:?}: give a number of lines, 0 or more")))?;
        }
        let origin = |option: &str| {
            ini.raw("Definition", option)
                .map(|r| r.origin.to_string())
                .unwrap_or_else(|| files[0].display().to_string())
        };
        if let Some(db) = get("dbfile")?.filter(|d| !d.trim().is_empty()) {
            settings.notices.push(format!(
                "{}: [Definition] dbfile = {}: not used; wasmban keeps its bans in wasmban.sqlite3 in its state \
                 directory (--state-dir, /var/lib/wasmban by default; it cannot be in memory or off, so that no \
                 ban is lost); `wasmban import-fail2ban` takes over fail2ban's bans",
                origin("dbfile"),
                db.trim()
            ));
        }
        if let Some(v6) = get("allowipv6")? {
            match v6.trim().to_ascii_lowercase().as_str() {
                "auto" | "yes" | "on" | "true" | "1" => {}
                "no" | "off" | "false" | "0" => settings.notices.push(format!(
                    "{}: [Definition] allowipv6 = {}: not used; wasmban reads, counts and bans IPv6 addresses \
                     whatever it says (to keep a jail's actions to IPv4, give them IPv4 commands only)",
                    origin("allowipv6"),
                    v6.trim()
                )),
                _ => return Err(value_error("allowipv6", format!("{v6:?}: use auto, yes or no"))),
            }
        }
        let seconds = |section: &str, option: &str, value: &str| {
            parse_time(value)
                .ok()
                .filter(|s| (1..=600).contains(s))
                .map(|s| std::time::Duration::from_secs(s as u64))
                .ok_or_else(|| {
                    error_in(section, option, format!("{value:?}: give a time between 1 second and 10 minutes"))
                })
        };
        let sendmail = in_section("mail", "sendmail")?;
        let relay = in_section("mail", "relay")?;
        settings.mail.transport = match in_section("mail", "transport")?.as_deref().map(str::trim) {
            None | Some("sendmail") => {
                let program = sendmail.unwrap_or_else(|| "/usr/sbin/sendmail".into());
                if !program.starts_with('/') {
                    return Err(error_in("mail", "sendmail", format!("{program:?}: give the program's absolute path")));
                }
                MailTransport::Sendmail(PathBuf::from(program.trim()))
            }
            Some("smtp") => {
                let relay = relay.unwrap_or_else(|| "localhost:25".into());
                let relay = relay.trim();
                let relay = if relay.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
                    relay.to_string()
                } else {
                    format!("{relay}:25")
                };
                MailTransport::Smtp { relay }
            }
            Some(other) => {
                return Err(error_in("mail", "transport", format!("{other:?}: use sendmail or smtp")));
            }
        };
        if let Some(t) = in_section("mail", "timeout")? {
            settings.mail.timeout = seconds("mail", "timeout", &t)?;
        }
        if let Some(h) = in_section("mail", "hostname")? {
            settings.mail.hostname = h.trim().to_string();
        }
        if let Some(server) = in_section("whois", "server")? {
            settings.whois.server = server.trim().to_string();
        }
        if let Some(t) = in_section("whois", "timeout")? {
            settings.whois.timeout = seconds("whois", "timeout", &t)?;
        }
        if let Some(r) = in_section("whois", "referrals")? {
            settings.whois.follow_referrals = parse_bool(&r).map_err(|m| error_in("whois", "referrals", m))?;
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasmban_conf_wins_and_local_overrides() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), Settings::default());
        std::fs::write(dir.path().join("fail2ban.conf"), "[Definition]\nlogtarget = /var/log/fail2ban.log\n").unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap().log_target, LogTarget::File("/var/log/fail2ban.log".into()));
        std::fs::write(dir.path().join("wasmban.conf"), "[Definition]\nloglevel = NOTICE\ndbpurgeage = 1d\n").unwrap();
        std::fs::write(dir.path().join("wasmban.local"), "[Definition]\nlogtarget = SYSTEMD-JOURNAL\n").unwrap();
        let s = Settings::load(dir.path()).unwrap();
        assert_eq!((s.log_target, s.dbpurgeage), (LogTarget::Journal("/run/systemd/journal/socket".into()), 86400));
        assert!(s.log_filter.starts_with("warn,fail2ban.actions=info"));
    }

    #[test]
    fn mail_and_whois_sections() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wasmban.conf"),
            "[Definition]\n[mail]\ntransport = smtp\nrelay = mail.example.org\ntimeout = 1m\n[whois]\nserver = 127.0.0.1:4343\nreferrals = no\n",
        )
        .unwrap();
        let s = Settings::load(dir.path()).unwrap();
        assert_eq!(s.mail.transport, MailTransport::Smtp { relay: "mail.example.org:25".into() });
        assert_eq!(s.mail.timeout, std::time::Duration::from_secs(60));
        assert_eq!((s.whois.server.as_str(), s.whois.follow_referrals), ("127.0.0.1:4343", false));
        std::fs::write(dir.path().join("wasmban.local"), "[mail]\ntransport = pigeon\n").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("wasmban.local:2") && e.contains("[mail] transport"), "{e}");
    }

    #[test]
    fn fail2bans_database_keys_are_used_or_said_to_be_unused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("fail2ban.conf"),
            "[Definition]\ndbfile = /var/lib/fail2ban/fail2ban.sqlite3\ndbmaxmatches = 3\nallowipv6 = auto\n",
        )
        .unwrap();
        let s = Settings::load(dir.path()).unwrap();
        assert_eq!(s.dbmaxmatches, 3);
        assert_eq!(s.notices.len(), 1, "{:?}", s.notices);
        assert!(
            s.notices[0].contains("fail2ban.conf:2") && s.notices[0].contains("import-fail2ban"),
            "{:?}",
            s.notices
        );
        std::fs::write(dir.path().join("fail2ban.local"), "[Definition]\nallowipv6 = no\n").unwrap();
        let s = Settings::load(dir.path()).unwrap();
        assert!(s.notices.iter().any(|n| n.contains("fail2ban.local:2") && n.contains("IPv6")), "{:?}", s.notices);
        std::fs::write(dir.path().join("fail2ban.local"), "[Definition]\ndbmaxmatches = many\n").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("fail2ban.local:2") && e.contains("dbmaxmatches"), "{e}");
    }

    #[test]
    fn metrics_and_log_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wasmban.conf"),
            "[Definition]\nlogformat = json\n[metrics]\nlisten = 127.0.0.1:9191\n",
        )
        .unwrap();
        let s = Settings::load(dir.path()).unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9191".parse().unwrap()));
        std::fs::write(dir.path().join("wasmban.local"), "[metrics]\nlisten = everywhere\n").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("wasmban.local:2") && e.contains("[metrics] listen") && e.contains("127.0.0.1:9191"), "{e}");
        std::fs::write(dir.path().join("wasmban.local"), "[Definition]\nlogformat = xml\n").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("logformat") && e.contains("json"), "{e}");
    }

    #[test]
    fn a_bad_level_names_file_and_option() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wasmban.conf"), "[Definition]\nloglevel = LOUD\n").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("wasmban.conf:2") && e.contains("[Definition] loglevel"), "{e}");
    }
}
