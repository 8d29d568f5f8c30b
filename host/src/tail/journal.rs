//! `backend = systemd`: a jail's lines from the systemd journal, read by
//! following `journalctl --output=json` (the journal's own reader, so
//! every journal format and compression it knows works here), filtered by
//! the filter's `journalmatch`, resumed from a saved cursor after restarts.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::values::parse_reference;
use crate::tail::Wake;

/// Entries buffered between the reader thread and the jail.
const QUEUE: usize = 65_536;
/// Wait before starting journalctl again after it ended.
const RESTART_DELAY: Duration = Duration::from_secs(5);

/// Which journal to read and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSpec {
    /// `journalfiles`: journal files to read instead of the system journal.
    pub files: Vec<String>,
    /// `journalpath`: a journal directory to read instead.
    pub directory: Option<String>,
    /// The filter's `journalmatch`, as journalctl arguments (`+` is "or").
    pub matches: Vec<String>,
    /// `journalflags` (sd_journal_open's flags) as journalctl options.
    pub flag_args: Vec<String>,
}

/// journalctl's options for sd_journal_open's `flags`: 1 local only (what
/// journalctl reads by default; without it, `--merge` adds remote
/// journals), 2 runtime only (`/run/log/journal`), 4 system, 8 current
/// user (one of the two: `--system` or `--user`).
fn journal_flag_args(value: &str) -> Result<Vec<String>, String> {
    let flags: u32 = value
        .trim()
        .parse()
        .map_err(|_| format!("backend systemd: journalflags = {value:?}: give sd_journal_open's flags as a number"))?;
    if flags & !15 != 0 {
        return Err(format!(
            "backend systemd: journalflags = {flags}: wasmban reads the journal with journalctl, which offers \
             local only (1), runtime only (2), system (4) and current user (8); use journalpath for another journal"
        ));
    }
    let mut args = Vec::new();
    if flags & 1 == 0 {
        args.push("--merge".to_string());
    }
    if flags & 2 != 0 {
        args.push("--directory=/run/log/journal".to_string());
    }
    match flags & 12 {
        4 => args.push("--system".to_string()),
        8 => args.push("--user".to_string()),
        _ => {}
    }
    Ok(args)
}

impl JournalSpec {
    /// From a jail's `backend = systemd[journalfiles=..., journalpath=...]`
    /// and its filter's `journalmatch`.
    pub fn parse(backend: &str, journalmatch: Option<&str>) -> Result<JournalSpec, String> {
        let reference = parse_reference(backend)?;
        let mut spec = JournalSpec {
            files: Vec::new(),
            directory: None,
            matches: journalmatch.map(|m| m.split_whitespace().map(str::to_string).collect()).unwrap_or_default(),
            flag_args: Vec::new(),
        };
        for (key, value) in reference.params {
            match key.as_str() {
                "journalfiles" => {
                    spec.files.extend(value.split([' ', ',']).filter(|f| !f.is_empty()).map(str::to_string))
                }
                "journalpath" => spec.directory = Some(value),
                "journalflags" => spec.flag_args = journal_flag_args(&value)?,
                // fail2ban leaves rotated (archived) files out unless asked;
                // journalctl reads them only to resume from a cursor in one,
                // which loses nothing either way.
                "rotated" => {}
                other => {
                    return Err(format!(
                        "backend systemd: unknown option {other:?}; use journalfiles, journalpath or journalflags"
                    ));
                }
            }
        }
        for m in &spec.matches {
            if m != "+" && !m.contains('=') {
                return Err(format!("journalmatch {m:?}: expected FIELD=VALUE terms, optionally joined by +"));
            }
        }
        Ok(spec)
    }

    /// Write every entry the spec selects, one line each as the filter
    /// sees it, to `out` (what `wasmban regex systemd-journal` scans);
    /// the entries' times, in order.
    pub fn export(&self, out: &mut impl std::io::Write) -> Result<Vec<f64>, String> {
        let mut cmd = self.command(None, false);
        let mut child = cmd.spawn().map_err(|e| format!("running journalctl: {e}"))?;
        let stdout = child.stdout.take().ok_or("journalctl gave no output")?;
        let mut times = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading journalctl: {e}"))?;
            if let Some(entry) = parse_entry(&line) {
                writeln!(out, "{}", entry.line).map_err(|e| e.to_string())?;
                times.push(entry.time);
            }
        }
        let done = child.wait_with_output().map_err(|e| format!("journalctl: {e}"))?;
        if !done.status.success() {
            return Err(format!("journalctl: {}", String::from_utf8_lossy(&done.stderr).trim()));
        }
        Ok(times)
    }

    fn command(&self, cursor: Option<&str>, follow: bool) -> Command {
        let mut cmd = Command::new("journalctl");
        cmd.args(["--output=json", "--no-pager", "--quiet"]);
        if follow {
            cmd.arg("--follow");
        }
        for f in &self.files {
            cmd.arg(format!("--file={f}"));
        }
        if let Some(d) = &self.directory {
            cmd.arg(format!("--directory={d}"));
        }
        cmd.args(&self.flag_args);
        match (cursor, follow) {
            (Some(c), _) => drop(cmd.arg(format!("--after-cursor={c}"))),
            // fail2ban's default: what is logged from now on.
            (None, true) => drop(cmd.arg("--lines=0")),
            (None, false) => {}
        }
        cmd.args(&self.matches);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
}

/// One journal entry as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// `HOST IDENT[PID]: MESSAGE`, as fail2ban formats journal entries.
    pub line: String,
    /// Unix seconds.
    pub time: f64,
    /// Where to resume after this entry.
    pub cursor: String,
}

fn field(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::String(s) => Some(s.clone()),
        // Binary fields come as byte arrays.
        Value::Array(bytes) => {
            let raw: Vec<u8> = bytes.iter().filter_map(|b| b.as_u64().map(|b| b as u8)).collect();
            Some(String::from_utf8_lossy(&raw).into_owned())
        }
        _ => None,
    }
}

/// Turn one line of `journalctl --output=json` into an entry.
pub fn parse_entry(json: &str) -> Option<JournalEntry> {
    let v: Value = serde_json::from_str(json).ok()?;
    let cursor = field(&v, "__CURSOR")?;
    let time = field(&v, "__REALTIME_TIMESTAMP")?.parse::<f64>().ok()? / 1e6;
    let message = field(&v, "MESSAGE").unwrap_or_default();
    let mut line = String::new();
    if let Some(host) = field(&v, "_HOSTNAME") {
        line.push_str(&host);
        line.push(' ');
    }
    let ident = field(&v, "SYSLOG_IDENTIFIER").or_else(|| field(&v, "_COMM")).unwrap_or_default();
    line.push_str(&ident);
    if let Some(pid) = field(&v, "SYSLOG_PID").or_else(|| field(&v, "_PID")) {
        line.push_str(&format!("[{pid}]"));
    }
    line.push_str(": ");
    // One entry is one line for the filter.
    line.push_str(&message.replace('\n', " "));
    Some(JournalEntry { line, time, cursor })
}

enum Fed {
    Entry(JournalEntry),
    Ended(String),
}

/// A followed journal.
pub struct JournalSource {
    jail: String,
    spec: JournalSpec,
    child: Option<Child>,
    entries: Option<Receiver<Fed>>,
    waker: Wake,
    cursor: Option<String>,
    restart_at: Option<Instant>,
}

impl JournalSource {
    /// Follow the journal for `jail`, after `cursor` when one was saved.
    pub fn new(jail: &str, spec: JournalSpec, cursor: Option<String>, waker: Wake) -> JournalSource {
        let mut source =
            JournalSource { jail: jail.to_string(), spec, child: None, entries: None, waker, cursor, restart_at: None };
        source.spawn();
        source
    }

    fn spawn(&mut self) {
        let mut cmd = self.spec.command(self.cursor.as_deref(), true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("[{}] cannot run journalctl ({e}); is systemd installed? retrying", self.jail);
                self.restart_at = Some(Instant::now() + RESTART_DELAY);
                return;
            }
        };
        let (Some(stdout), stderr) = (child.stdout.take(), child.stderr.take()) else {
            self.restart_at = Some(Instant::now() + RESTART_DELAY);
            return;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let waker = self.waker.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("journal-{}", self.jail))
            .spawn(move || pump(stdout, stderr, tx, waker));
        if let Err(e) = spawned {
            tracing::error!("[{}] cannot start the journal reader: {e}", self.jail);
            let _ = child.kill();
            let _ = child.wait();
            self.restart_at = Some(Instant::now() + RESTART_DELAY);
            return;
        }
        tracing::info!("[{}] following the journal{}", self.jail, self.describe());
        self.child = Some(child);
        self.entries = Some(rx);
        self.restart_at = None;
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.spec.files.is_empty() {
            parts.push(format!("files {}", self.spec.files.join(", ")));
        }
        if let Some(d) = &self.spec.directory {
            parts.push(format!("directory {d}"));
        }
        if !self.spec.matches.is_empty() {
            parts.push(format!("matching {}", self.spec.matches.join(" ")));
        }
        if parts.is_empty() { String::new() } else { format!(" ({})", parts.join("; ")) }
    }

    /// Up to `limit` new entries.
    pub fn read(&mut self, limit: usize) -> Vec<JournalEntry> {
        if self.entries.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            self.spawn();
        }
        let mut out = Vec::new();
        let Some(rx) = &self.entries else { return out };
        while out.len() < limit {
            match rx.try_recv() {
                Ok(Fed::Entry(e)) => out.push(e),
                Ok(Fed::Ended(why)) => {
                    tracing::error!("[{}] journalctl ended: {why}; starting it again shortly", self.jail);
                    self.restart_later();
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.restart_later();
                    break;
                }
            }
        }
        if let Some(last) = out.last() {
            self.cursor = Some(last.cursor.clone());
        }
        out
    }

    /// The cursor after the last entry handed out.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// What is being followed, for `status`.
    pub fn files(&self) -> Vec<String> {
        vec![format!("journal{}", self.describe())]
    }

    fn restart_later(&mut self) {
        self.stop_child();
        self.restart_at = Some(Instant::now() + RESTART_DELAY);
    }

    fn stop_child(&mut self) {
        self.entries = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        self.stop_child();
    }
}

fn pump(stdout: ChildStdout, stderr: Option<std::process::ChildStderr>, tx: SyncSender<Fed>, waker: Wake) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(entry) = parse_entry(line.trim_end()) {
                    if tx.send(Fed::Entry(entry)).is_err() {
                        return;
                    }
                    waker();
                }
            }
            Err(e) => {
                let _ = tx.send(Fed::Ended(e.to_string()));
                return;
            }
        }
    }
    let mut said = String::new();
    if let Some(mut err) = stderr {
        use std::io::Read;
        let _ = (&mut err).take(4096).read_to_string(&mut said);
    }
    let said = said.trim();
    let _ = tx.send(Fed::Ended(if said.is_empty() { "end of output".into() } else { said.to_string() }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_options_and_matches() {
        let s = JournalSpec::parse(
            r#"systemd[journalfiles="/a.journal /b.journal", journalflags=1]"#,
            Some("_SYSTEMD_UNIT=ssh.service + _COMM=sshd"),
        )
        .unwrap();
        assert_eq!(s.files, ["/a.journal", "/b.journal"]);
        assert_eq!(s.matches, ["_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd"]);
        assert!(s.flag_args.is_empty(), "local only: journalctl's default");
        let flags = |f: &str| JournalSpec::parse(&format!("systemd[journalflags={f}]"), None).map(|s| s.flag_args);
        assert_eq!(flags("0").unwrap(), ["--merge"]);
        assert_eq!(flags("5").unwrap(), ["--system"]);
        assert_eq!(flags("9").unwrap(), ["--user"]);
        assert_eq!(flags("3").unwrap(), ["--directory=/run/log/journal"]);
        assert!(flags("16").unwrap_err().contains("journalflags = 16"));
        assert!(flags("x").unwrap_err().contains("journalflags"));
        assert!(JournalSpec::parse("systemd[bogus=1]", None).unwrap_err().contains("bogus"));
        assert!(JournalSpec::parse("systemd", Some("sshd")).unwrap_err().contains("FIELD=VALUE"));
    }

    #[test]
    fn entries_are_formatted_like_fail2ban_formats_them() {
        let e = parse_entry(
            r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1700000000250000","_HOSTNAME":"web","SYSLOG_IDENTIFIER":"sshd","_PID":"77","MESSAGE":"Failed password for root from 192.0.2.5 port 22 ssh2"}"#,
        )
        .unwrap();
        assert_eq!(e.line, "web sshd[77]: Failed password for root from 192.0.2.5 port 22 ssh2");
        assert_eq!((e.time, e.cursor.as_str()), (1_700_000_000.25, "c1"));
        let binary =
            parse_entry(r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"1","_COMM":"x","MESSAGE":[104,105,255]}"#).unwrap();
        assert_eq!(binary.line, "x: hi\u{fffd}");
        assert!(parse_entry("not json").is_none());
    }
}
