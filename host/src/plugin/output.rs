//! Guest stdout and stderr: each complete line goes to the daemon log,
//! tagged with the plugin, and the last lines are kept so that a trap report
//! can show what the plugin said before it died (a Rust panic message).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A line longer than this is cut when logged.
const LINE_LIMIT: usize = 4096;
/// How many recent lines are kept for trap reports.
const KEPT_LINES: usize = 8;

#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    recent: VecDeque<String>,
}

/// One guest output stream (stdout or stderr) of one plugin instance.
#[derive(Clone)]
pub struct GuestOutput {
    plugin: Arc<str>,
    stream: &'static str,
    lines: Arc<Mutex<Lines>>,
}

impl GuestOutput {
    /// Output of `plugin` on `stream` ("stdout" or "stderr").
    pub fn new(plugin: Arc<str>, stream: &'static str) -> Self {
        GuestOutput { plugin, stream, lines: Arc::default() }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = crate::capability::log::truncate(text.trim_end_matches('\r'), LINE_LIMIT);
        tracing::info!(target: "wasmban::plugin", plugin = &*self.plugin, stream = self.stream, "{text}");
        if let Ok(mut lines) = self.lines.lock() {
            if lines.recent.len() == KEPT_LINES {
                lines.recent.pop_front();
            }
            lines.recent.push_back(text.to_string());
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut complete = Vec::new();
        if let Ok(mut lines) = self.lines.lock() {
            for &b in bytes {
                if b == b'\n' {
                    complete.push(std::mem::take(&mut lines.partial));
                } else if lines.partial.len() < LINE_LIMIT {
                    lines.partial.push(b);
                }
            }
        }
        for line in complete {
            self.emit(&line);
        }
    }

    /// Log an unfinished last line, then hand back the recent lines (and
    /// forget them).
    pub fn take_recent(&self) -> Vec<String> {
        let partial = self.lines.lock().map(|mut l| std::mem::take(&mut l.partial)).unwrap_or_default();
        if !partial.is_empty() {
            self.emit(&partial);
        }
        self.lines.lock().map(|mut l| l.recent.drain(..).collect()).unwrap_or_default()
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
