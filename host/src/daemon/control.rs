//! The control socket: one JSON request per connection, one JSON reply.
//! The socket is a unix socket of mode 0600, so only its owner (root) can
//! ban or unban; anything malformed gets an error reply, never a crash.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The largest request accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client may ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon there?
    Ping,
    /// The jail list, or one jail's counters.
    Status {
        /// The jail; all when absent.
        #[serde(default)]
        jail: Option<String>,
        /// Leave the list of bans out (`status JAIL short`, `stats`): a
        /// jail may hold a million.
        #[serde(default)]
        without_bans: bool,
    },
    /// Every ban in force, per jail; given addresses, only the bans that
    /// hold them (the daemon sends those, not a million others).
    Banned {
        /// Addresses or ids asked about.
        #[serde(default)]
        ips: Vec<String>,
    },
    /// Ban an address in a jail.
    Ban {
        /// The jail.
        jail: String,
        /// The address.
        ip: String,
        /// Ban it even when it is loopback or this host's own.
        #[serde(default)]
        force: bool,
    },
    /// Lift bans.
    Unban {
        /// Only in this jail; every jail when absent.
        #[serde(default)]
        jail: Option<String>,
        /// This address; with `all`, absent.
        #[serde(default)]
        ip: Option<String>,
        /// Every ban.
        #[serde(default)]
        all: bool,
    },
    /// Read the configuration again.
    Reload {
        /// Restart only this jail.
        #[serde(default)]
        jail: Option<String>,
    },
    /// What each plugin instance has cost since start, the most CPU first.
    Top,
    /// The fleet: connection, outbox, what each origin sent.
    FleetStatus,
    /// Lift all an origin of the fleet contributed, and take nothing
    /// more from it until the daemon restarts.
    FleetRevoke {
        /// The origin host.
        origin: String,
    },
    /// Take a quarantined or revoked origin's records again.
    FleetRelease {
        /// The origin host.
        origin: String,
    },
    /// Change a jail's setting until the next reload, as fail2ban's `set
    /// JAIL KEY VALUE...`.
    Set {
        /// The jail.
        jail: String,
        /// The setting.
        key: String,
        /// Its new value or values.
        args: Vec<String>,
    },
    /// A jail's setting, as fail2ban's `get JAIL KEY`.
    Get {
        /// The jail.
        jail: String,
        /// The setting, as fail2ban names it.
        key: String,
    },
    /// A daemon setting, as fail2ban's `get loglevel|logtarget|...`.
    ServerGet {
        /// loglevel, logtarget, syslogsocket, dbfile or dbpurgeage.
        key: String,
    },
    /// Change a daemon setting until the next start, as fail2ban's `set
    /// loglevel|logtarget|syslogsocket|dbpurgeage VALUE`.
    ServerSet {
        /// The setting.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Reopen the log file (after logrotate moved it).
    #[serde(rename = "flushlogs")]
    FlushLogs,
    /// Stop the daemon.
    Stop,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What was asked for.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The result already written as JSON, sent in place of `result`: a
    /// jail's million bans are written once, never built as a `Value`.
    /// The client reads it into `result`.
    #[serde(skip)]
    pub written: Option<String>,
}

impl Reply {
    /// Success with a result.
    pub fn ok(result: Value) -> Reply {
        Reply { ok: true, result, error: None, written: None }
    }
    /// Success with a result written as JSON already.
    pub fn ok_written(json: String) -> Reply {
        Reply { ok: true, result: Value::Null, error: None, written: Some(json) }
    }
    /// Failure with a reason.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply { ok: false, result: Value::Null, error: Some(message.into()), written: None }
    }
}

/// Read one request from `stream`: a line of JSON within the size and time
/// limits. The error is the reply to send.
pub async fn read_request(stream: &mut UnixStream) -> Result<Request, Reply> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut limited = (&mut reader).take(MAX_REQUEST as u64 + 1);
        limited.read_until(b'\n', &mut line).await
    })
    .await;
    match read {
        Err(_) => return Err(Reply::error("timed out waiting for the request")),
        Ok(Err(e)) => return Err(Reply::error(format!("reading the request: {e}"))),
        Ok(Ok(_)) => {}
    }
    parse_request(&line)
}

/// One request from the bytes a client sent (a line of JSON). The error
/// is the reply to send.
pub fn parse_request(line: &[u8]) -> Result<Request, Reply> {
    if line.len() > MAX_REQUEST {
        return Err(Reply::error(format!("request longer than {MAX_REQUEST} bytes")));
    }
    let text = std::str::from_utf8(line).map_err(|_| Reply::error("the request is not UTF-8"))?;
    serde_json::from_str(text.trim()).map_err(|e| Reply::error(format!("not a valid request: {e}")))
}

/// Send `reply` and close.
pub async fn write_reply(stream: &mut UnixStream, reply: &Reply) {
    if let Some(written) = &reply.written {
        let _ = stream.write_all(br#"{"ok":true,"result":"#).await;
        let _ = stream.write_all(written.as_bytes()).await;
        let _ = stream.write_all(b"}\n").await;
    } else {
        let mut text =
            serde_json::to_string(reply).unwrap_or_else(|_| r#"{"ok":false,"error":"unencodable reply"}"#.into());
        text.push('\n');
        let _ = stream.write_all(text.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

/// The client side: send `request` to the daemon at `socket`, wait for
/// the reply (synchronously; the CLI needs nothing more).
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> anyhow::Result<Reply> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the wasmban daemon at {} ({e}); is it running (`systemctl status wasmban`), and are you root?",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut text = serde_json::to_string(request)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(line.trim())
        .map_err(|e| anyhow::anyhow!("the daemon at {} sent an unreadable reply ({e})", socket.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r: Request = serde_json::from_str(r#"{"command":"unban","ip":"192.0.2.1"}"#).unwrap();
        assert_eq!(r, Request::Unban { jail: None, ip: Some("192.0.2.1".into()), all: false });
        assert_eq!(serde_json::to_string(&Request::Ping).unwrap(), r#"{"command":"ping"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"command":"rm -rf"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"command":"ban","jail":"a","ip":"192.0.2.1","x":1}"#).is_err());
    }
}
