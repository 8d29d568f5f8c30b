//! The metrics endpoint: `GET /metrics` over plain HTTP/1.x, one request
//! per connection. It is reachable by whoever can reach its address, so
//! it reads little and holds little: a request head of at most
//! [`MAX_HEAD`] bytes within [`HEAD_TIMEOUT`], at most [`MAX_CONNECTIONS`]
//! at once (more are closed at once), and only GET on its path. Rendering
//! reads counters and the jails' published status, never a jail's own
//! thread, so a scrape answers at once during a burst.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The path metrics are served on.
pub const PATH: &str = "/metrics";
/// The largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// What renders the metrics text for one scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Bind `listen` (`host:port`).
pub async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

/// Serve scrapes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, render: Render) {
    let bound = crate::listen::Bound { max: MAX_CONNECTIONS, warn: false };
    crate::listen::accept_bounded(listener, bound, "metrics endpoint", move |stream, _| {
        let render = render.clone();
        async move { answer(stream, &render).await }
    })
    .await
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// `GET /metrics`.
    Metrics,
    /// Another method on the path.
    WrongMethod,
    /// Another path.
    NotFound,
    /// Not HTTP, or too large.
    Bad,
}

/// Read what the request head `head` asks for.
pub fn parse_head(head: &[u8]) -> Asked {
    let Some(line_end) = head.iter().position(|&b| b == b'\n') else { return Asked::Bad };
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else { return Asked::Bad };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::Bad;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match (method, path) {
        ("GET", PATH) => Asked::Metrics,
        (_, PATH) => Asked::WrongMethod,
        _ => Asked::NotFound,
    }
}

/// Read a request head: up to the blank line, within the limits.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Some(());
            }
            if head.len() > MAX_HEAD {
                return None;
            }
        }
    })
    .await;
    matches!(read, Ok(Some(()))).then_some(head)
}

async fn answer(mut stream: TcpStream, render: &Render) {
    let asked = match read_head(&mut stream).await {
        Some(head) => parse_head(&head),
        None => Asked::Bad,
    };
    let (status, extra, body) = match asked {
        Asked::Metrics => {
            let render = render.clone();
            // Rendering takes short locks only; off the async workers all
            // the same, so that the control socket never waits on it.
            let body = tokio::task::spawn_blocking(move || render()).await.unwrap_or_default();
            ("200 OK", "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", body)
        }
        Asked::WrongMethod => ("405 Method Not Allowed", "Allow: GET\r\n", "only GET\n".to_string()),
        Asked::NotFound => ("404 Not Found", "", format!("metrics are at {PATH}\n")),
        Asked::Bad => ("400 Bad Request", "", "bad request\n".to_string()),
    };
    let response =
        format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = tokio::time::timeout(HEAD_TIMEOUT, stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_on_the_path() {
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Asked::Metrics);
        assert_eq!(parse_head(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Asked::Metrics);
        assert_eq!(parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"), Asked::WrongMethod);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(parse_head(b"GET /metrics\r\n\r\n"), Asked::Bad);
        assert_eq!(parse_head(b"\xff\xfe\r\n\r\n"), Asked::Bad);
        assert_eq!(parse_head(b"GET /metrics SSH-2.0 extra\r\n"), Asked::Bad);
    }

    #[tokio::test]
    async fn it_answers_scrapes_and_refuses_the_rest() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let render: Render = Arc::new(|| "wasmban_up 1\n".to_string());
        let server = tokio::spawn(serve(listener, render));
        // What the server answered; empty when it reset the connection
        // (as it may when it stops reading a request that is too long).
        let ask = |req: Vec<u8>| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&req).await;
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            out
        };
        let ok = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("wasmban_up 1\n"), "{ok}");
        assert!(ask(b"DELETE /metrics HTTP/1.1\r\n\r\n".to_vec()).await.starts_with("HTTP/1.1 405"));
        assert!(ask(b"GET /admin HTTP/1.1\r\n\r\n".to_vec()).await.starts_with("HTTP/1.1 404"));
        // A head that never ends is cut off at the limit.
        let big = ask([b"GET /metrics HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; MAX_HEAD * 2]].concat()).await;
        assert!(big.is_empty() || big.starts_with("HTTP/1.1 400"), "{big}");
        server.abort();
    }
}
