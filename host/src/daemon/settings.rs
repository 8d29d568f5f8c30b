//! The daemon's own settings: `[Definition]` of `wasmban.conf` (or, when
//! pointed at a fail2ban tree, `fail2ban.conf`), each with its `.local`.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::config::ini::{Ini, layered_files};
use crate::config::interp::Vars;
use crate::config::values::parse_time;

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error: what systemd's journal collects.
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, appended to (and reopened on reload, for logrotate).
    File(PathBuf),
}

/// The daemon settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `loglevel`, as a tracing filter directive.
    pub log_filter: String,
    /// `logtarget`.
    pub log_target: LogTarget,
    /// `dbpurgeage` in seconds: lifted bans older than this are forgotten
    /// (and stop counting for `bantime.increment`).
    pub dbpurgeage: i64,
    /// The file the settings came from, if any.
    pub file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_filter: level_filter("INFO").unwrap_or_default(),
            log_target: LogTarget::Stderr,
            dbpurgeage: 86400,
            file: None,
        }
    }
}

/// fail2ban's level names (and numbers) as a tracing filter. NOTICE keeps
/// the ban and unban lines and drops other information.
fn level_filter(level: &str) -> Option<String> {
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
        let value_error = |option: &str, message: String| ConfigError::Value {
            where_: ini
                .raw("Definition", option)
                .map(|r| r.origin.to_string())
                .unwrap_or_else(|| files[0].display().to_string()),
            section: "Definition".into(),
            option: option.into(),
            message,
        };
        let mut settings = Settings { file: files.first().cloned(), ..Settings::default() };
        if let Some(level) = get("loglevel")? {
            settings.log_filter = level_filter(&level).ok_or_else(|| {
                value_error("loglevel", format!("{level:?}: use CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG"))
            })?;
        }
        if let Some(target) = get("logtarget")? {
            let target = target.trim();
            settings.log_target = match target.to_ascii_uppercase().as_str() {
                // The journal reads a service's stderr; syslog gets it from there.
                "STDERR" | "SYSLOG" | "SYSTEMD-JOURNAL" => LogTarget::Stderr,
                "STDOUT" => LogTarget::Stdout,
                _ if target.starts_with('/') => LogTarget::File(PathBuf::from(target)),
                _ => {
                    return Err(value_error(
                        "logtarget",
                        format!("{target:?}: use STDERR, STDOUT, SYSLOG, SYSTEMD-JOURNAL or an absolute file path"),
                    ));
                }
            };
        }
        if let Some(age) = get("dbpurgeage")? {
            settings.dbpurgeage = parse_time(&age).map_err(|m| value_error("dbpurgeage", m))?;
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
        assert_eq!((s.log_target, s.dbpurgeage), (LogTarget::Stderr, 86400));
        assert!(s.log_filter.starts_with("warn,fail2ban.actions=info"));
    }

    #[test]
    fn a_bad_level_names_file_and_option() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wasmban.conf"), "[Definition]\nloglevel = LOUD\n").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("wasmban.conf:2") && e.contains("[Definition] loglevel"), "{e}");
    }
}
