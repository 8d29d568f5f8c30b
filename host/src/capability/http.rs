//! The `http` capability: HTTP and HTTPS requests to the destinations the
//! plugin's grant lists (`http = ["hooks.example.org", "127.0.0.1:8080"]`),
//! for webhook actions.
//!
//! A grant entry `host` allows that host on the scheme's default port (80
//! or 443); `host:port` allows exactly that port. Redirects are never
//! followed: a granted server could otherwise send the plugin anywhere.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use crate::capability::{Grants, HostServices};
use crate::wit::http::{self as wit, Request, Response};

/// The interface name (`wasmban:plugin/http`).
pub const NAME: &str = "http";

/// Granted by a list of destinations.
pub fn granted(grants: &Grants, _imports: &[String]) -> bool {
    !grants.http.is_empty()
}

/// The line that grants it.
pub fn grant_line(_imports: &[String]) -> String {
    "http = [\"HOST\", \"HOST:PORT\", ...]".to_string()
}

/// No request may take longer than this, whatever the plugin asks.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// What a timeout of 0 means.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much of a response body reaches the plugin.
pub const BODY_LIMIT: u64 = 1 << 20;
/// At most this much request body leaves the machine.
pub const REQUEST_LIMIT: usize = 1 << 20;

/// Headers the host sets itself.
const HOST_HEADERS: &[&str] = &["host", "content-length", "connection", "transfer-encoding", "upgrade", "te"];

/// `scheme`, lower-cased host and port of an absolute http(s) URL.
pub fn destination(url: &str) -> Result<(String, String, u16), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(format!("{url:?}: only http:// and https:// URLs can be requested")),
    };
    let host = uri.host().ok_or_else(|| format!("{url:?} names no host"))?.to_ascii_lowercase();
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{url:?}: credentials in the URL are not allowed; send an Authorization header"));
    }
    Ok((scheme, host.trim_matches(['[', ']']).to_string(), uri.port_u16().unwrap_or(default_port)))
}

/// Whether grant entry `entry` allows `host`:`port` for `scheme`.
fn allows(entry: &str, scheme: &str, host: &str, port: u16) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    let default_port = if scheme == "https" { 443 } else { 80 };
    // `[v6]:port`, `v6` bare, `host:port`, `host`.
    let (entry_host, entry_port) = if let Some(rest) = entry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h.to_string(), p.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default_port)),
            None => return false,
        }
    } else if entry.parse::<std::net::Ipv6Addr>().is_ok() {
        (entry.clone(), default_port)
    } else {
        match entry.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) => (h.to_string(), p),
                Err(_) => return false,
            },
            None => (entry.clone(), default_port),
        }
    };
    entry_host == host && entry_port == port
}

/// The state behind one plugin instance's `http` import.
pub struct HttpCtx {
    plugin: Arc<str>,
    allowed: Vec<String>,
}

impl HttpCtx {
    /// `plugin` may reach exactly the `allowed` destinations.
    pub fn new(plugin: Arc<str>, allowed: Vec<String>) -> Self {
        HttpCtx { plugin, allowed }
    }

    /// The state for `plugin`: the destinations its grant names.
    pub fn for_plugin(plugin: &Arc<str>, grants: &Grants, _services: &HostServices) -> Self {
        HttpCtx::new(plugin.clone(), grants.http.clone())
    }

    /// Check `request` against the grant, send it, read the answer.
    pub fn send(&self, request: &Request, timeout_ms: u32) -> Result<Response, String> {
        let (scheme, host, port) = destination(&request.url)?;
        if !self.allowed.iter().any(|entry| allows(entry, &scheme, &host, port)) {
            tracing::warn!(plugin = &*self.plugin, url = request.url, "refused an HTTP destination outside the grant");
            return Err(format!(
                "{host}:{port} is not in the `http` grant of plugin {}; it may reach: {}",
                self.plugin,
                if self.allowed.is_empty() { "nothing".to_string() } else { self.allowed.join(", ") }
            ));
        }
        let method = request.method.to_ascii_uppercase();
        if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(format!("HTTP method {:?}: use GET, POST, PUT, PATCH or DELETE", request.method));
        }
        if request.body.len() > REQUEST_LIMIT {
            return Err(format!(
                "the request body is {} bytes; at most {REQUEST_LIMIT} may be sent",
                request.body.len()
            ));
        }
        let mut builder = ureq::http::Request::builder().method(method.as_str()).uri(&request.url);
        for (name, value) in &request.headers {
            if HOST_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("header {name:?} is set by the host; leave it out"));
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        let built = builder.body(request.body.clone()).map_err(|e| format!("a bad request: {e}"))?;
        let timeout = match timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_TIMEOUT),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(format!("wasmban/{} ({})", env!("CARGO_PKG_VERSION"), self.plugin))
            .build()
            .into();
        tracing::debug!(plugin = &*self.plugin, method, url = request.url, "http");
        let mut response = agent.run(built).map_err(|e| format!("{} {}: {e}", method, request.url))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(BODY_LIMIT)
            .read_to_end(&mut body)
            .map_err(|e| format!("{} {}: reading the answer: {e}", method, request.url))?;
        Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

impl wit::Host for HttpCtx {
    fn send(&mut self, request: Request, timeout_ms: u32) -> Result<Response, String> {
        HttpCtx::send(self, &request, timeout_ms)
    }
}

struct HasHttp;
impl wasmtime::component::HasData for HasHttp {
    type Data<'a> = &'a mut HttpCtx;
}

/// Link `http` into `linker`. Call it only for plugins whose grant lists
/// destinations.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut HttpCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasHttp>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_entries_name_host_and_port() {
        assert!(allows("hooks.example.org", "https", "hooks.example.org", 443));
        assert!(!allows("hooks.example.org", "https", "hooks.example.org", 8443));
        assert!(allows("Hooks.Example.org:8443", "https", "hooks.example.org", 8443));
        assert!(allows("127.0.0.1:8080", "http", "127.0.0.1", 8080));
        assert!(allows("[::1]:8080", "http", "::1", 8080));
        assert!(allows("::1", "http", "::1", 80));
        assert!(!allows("example.org", "https", "evil-example.org", 443));
        assert!(!allows("example.org", "https", "example.org.evil.net", 443));
    }

    #[test]
    fn destinations_are_parsed_strictly() {
        assert_eq!(
            destination("https://Hooks.example.org/x?y=1").unwrap(),
            ("https".into(), "hooks.example.org".into(), 443)
        );
        assert_eq!(destination("http://[::1]:9/").unwrap(), ("http".into(), "::1".into(), 9));
        assert!(destination("file:///etc/shadow").is_err());
        assert!(destination("gopher://x/").is_err());
        assert!(destination("https://user:pw@example.org/").unwrap_err().contains("credentials"));
    }

    #[test]
    fn a_destination_outside_the_grant_is_refused_before_any_connection() {
        let ctx = HttpCtx::new("webhook".into(), vec!["hooks.example.org".into()]);
        let request =
            Request { method: "POST".into(), url: "http://127.0.0.1:9/".into(), headers: vec![], body: String::new() };
        let err = ctx.send(&request, 1000).unwrap_err();
        assert!(err.contains("not in the `http` grant") && err.contains("hooks.example.org"), "{err}");
    }
}
