//! Python's `re` as a co-process: `python/re_oracle.py`, started once and
//! asked one search per line, so that a differential run costs a pipe
//! round trip per case rather than an interpreter start.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// The spans of every group of a match (group 0 first), or no match.
pub type Spans = Option<Vec<Option<(usize, usize)>>>;

/// How long one search may take in Python. Catastrophic backtracking is
/// Python's to have: the case is dropped and the process started again.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(3);

const SCRIPT: &str = include_str!("../python/re_oracle.py");

/// A running `re_oracle.py`.
pub struct PythonRe {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
}

static SHARED: Mutex<Option<PythonRe>> = Mutex::new(None);

/// fail2ban's interpreter when Debian's package is installed, so that the
/// answers are those of the `re` fail2ban runs on.
fn interpreter() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

impl PythonRe {
    /// Start the co-process; `None` when Python cannot be run here.
    pub fn start() -> Option<PythonRe> {
        let mut child = Command::new(interpreter())
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = child.stdout.take()?;
        let (send, replies) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Some(PythonRe { child, stdin, replies })
    }

    /// Run `f` with the process shared by this fuzzing process, started on
    /// first use and again after a search timed out. `None` when Python
    /// cannot be run, or the search did not answer in time.
    pub fn shared<T>(f: impl FnOnce(&mut PythonRe) -> Option<T>) -> Option<T> {
        let mut slot = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = PythonRe::start();
        }
        let answer = f(slot.as_mut()?);
        if answer.is_none() {
            // Dropping it ends the process.
            slot.take();
        }
        answer
    }

    /// Python's `re.compile(pattern, MULTILINE if multiline).search(text)`:
    /// `Err` when Python refuses the pattern; `None` on a timeout or a
    /// dead process.
    pub fn search(&mut self, pattern: &str, multiline: bool, text: &str) -> Option<Result<Spans, String>> {
        let request = json!({"p": pattern, "m": multiline, "s": text});
        writeln!(self.stdin, "{request}").ok()?;
        self.stdin.flush().ok()?;
        let reply = match self.replies.recv_timeout(SEARCH_TIMEOUT) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        };
        let reply: Value = serde_json::from_str(&reply).ok()?;
        if let Some(error) = reply.get("err") {
            return Some(Err(error.as_str().unwrap_or("refused").to_string()));
        }
        let spans = match reply.get("m")? {
            Value::Null => None,
            Value::Array(groups) => Some(
                groups
                    .iter()
                    .map(|g| {
                        let pair = g.as_array()?;
                        Some((pair.first()?.as_u64()? as usize, pair.get(1)?.as_u64()? as usize))
                    })
                    .collect(),
            ),
            _ => return None,
        };
        Some(Ok(spans))
    }
}

impl Drop for PythonRe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
