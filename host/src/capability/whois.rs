//! The `whois` capability: ask about an IP address (RFC 3912: one line
//! sent to TCP port 43, the answer read until the server closes), starting
//! at the server the admin configured in wasmban.conf's `[whois]`
//! (`whois.iana.org` by default) and following its referral to the
//! registry that holds the address, as whois(1) does.
//!
//! Only IP addresses are asked about: a plugin cannot use the capability
//! to send other text to the network.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capability::{Grants, HostServices};
use crate::wit::whois as wit;

/// The interface name (`wasmban:plugin/whois`).
pub const NAME: &str = "whois";

/// Granted by `whois = true`.
pub fn granted(grants: &Grants, _imports: &[String]) -> bool {
    grants.whois
}

/// The line that grants it.
pub fn grant_line(_imports: &[String]) -> String {
    "whois = true".to_string()
}

/// An answer longer than this is cut.
pub const ANSWER_LIMIT: usize = 256 * 1024;
/// Referrals followed at most (IANA to a registry, a registry to another).
pub const MAX_REFERRALS: usize = 2;

/// The admin's `[whois]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WhoisSettings {
    /// The first server asked: `host` or `host:port`.
    pub server: String,
    /// How long one lookup may take, referrals included.
    pub timeout: Duration,
    /// Whether referrals are followed.
    pub follow_referrals: bool,
}

impl Default for WhoisSettings {
    fn default() -> Self {
        WhoisSettings { server: "whois.iana.org".into(), timeout: Duration::from_secs(15), follow_referrals: true }
    }
}

/// `host` or `host:port` (port 43 by default); `[v6]:port` for literals.
fn endpoint(server: &str) -> String {
    let bare_v6 = server.parse::<std::net::Ipv6Addr>().is_ok();
    if bare_v6 {
        format!("[{server}]:43")
    } else if server.starts_with('[') || server.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        server.to_string()
    } else {
        format!("{server}:43")
    }
}

/// One query to one server.
pub fn query(server: &str, question: &str, deadline: Instant) -> Result<String, String> {
    let left = |what: &str| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("whois server {server}: timed out {what}"))
    };
    let target = endpoint(server);
    let addrs: Vec<_> = target.to_socket_addrs().map_err(|e| format!("whois server {server}: {e}"))?.collect();
    let mut stream = None;
    let mut last = format!("whois server {server} has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, left("connecting")?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("whois server {server} ({a}): {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream.set_write_timeout(Some(left("sending")?)).map_err(|e| e.to_string())?;
    stream.write_all(format!("{question}\r\n").as_bytes()).map_err(|e| format!("whois server {server}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        stream.set_read_timeout(Some(left("reading the answer")?)).map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() >= ANSWER_LIMIT {
                    answer.truncate(ANSWER_LIMIT);
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("whois server {server}: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The server an answer refers to: IANA's `refer:`, `whois:`, ARIN's
/// `ReferralServer: whois://host`. `rwhois://` and web referrals are not
/// whois and are not followed.
pub fn referral(answer: &str) -> Option<String> {
    for line in answer.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.trim().to_ascii_lowercase();
        if !matches!(key.as_str(), "refer" | "whois" | "referralserver") {
            continue;
        }
        let value = value.trim();
        let host = match value.split_once("://") {
            Some(("whois", rest)) => rest.trim_end_matches('/'),
            Some(_) => continue,
            None => value,
        };
        if !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Some(host.to_string());
        }
    }
    None
}

/// Look `address` up, following referrals.
pub fn lookup(settings: &WhoisSettings, address: &str) -> Result<String, String> {
    let ip: IpAddr =
        address.trim().parse().map_err(|_| format!("whois looks up IP addresses only; {address:?} is not one"))?;
    let deadline = Instant::now() + settings.timeout;
    let mut server = settings.server.clone();
    let mut answer = query(&server, &ip.to_string(), deadline)?;
    for _ in 0..MAX_REFERRALS {
        if !settings.follow_referrals {
            break;
        }
        let Some(next) = referral(&answer) else { break };
        if next.eq_ignore_ascii_case(&server) {
            break;
        }
        match query(&next, &ip.to_string(), deadline) {
            Ok(more) => {
                answer = more;
                server = next;
            }
            // The referring server's answer is better than none.
            Err(e) => {
                tracing::debug!("whois referral failed: {e}");
                break;
            }
        }
    }
    Ok(answer)
}

/// The state behind one plugin instance's `whois` import.
pub struct WhoisCtx {
    plugin: Arc<str>,
    settings: Arc<WhoisSettings>,
}

impl WhoisCtx {
    /// Whois lookups for `plugin` as `settings` say.
    pub fn new(plugin: Arc<str>, settings: Arc<WhoisSettings>) -> Self {
        WhoisCtx { plugin, settings }
    }

    /// The state for `plugin`, asking wasmban.conf's `[whois]` server.
    pub fn for_plugin(plugin: &Arc<str>, _grants: &Grants, services: &HostServices) -> Self {
        WhoisCtx::new(plugin.clone(), services.whois.clone())
    }
}

impl wit::Host for WhoisCtx {
    fn lookup(&mut self, address: String) -> Result<String, String> {
        tracing::debug!(plugin = &*self.plugin, address, "whois");
        lookup(&self.settings, &address)
    }
}

struct HasWhois;
impl wasmtime::component::HasData for HasWhois {
    type Data<'a> = &'a mut WhoisCtx;
}

/// Link `whois` into `linker`. Call it only for plugins granted `whois`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut WhoisCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasWhois>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrals_are_found_in_the_usual_forms() {
        assert_eq!(referral("% IANA WHOIS server\nrefer:        whois.ripe.net\n").as_deref(), Some("whois.ripe.net"));
        assert_eq!(referral("ReferralServer:  whois://whois.lacnic.net\n").as_deref(), Some("whois.lacnic.net"));
        assert_eq!(referral("ReferralServer: rwhois://rwhois.example.net:4321\n"), None);
        assert_eq!(referral("refer: evil.example; rm -rf /\n"), None);
        assert_eq!(referral("inetnum: 192.0.2.0 - 192.0.2.255\n"), None);
    }

    #[test]
    fn servers_get_port_43_unless_they_name_one() {
        assert_eq!(endpoint("whois.iana.org"), "whois.iana.org:43");
        assert_eq!(endpoint("127.0.0.1:4343"), "127.0.0.1:4343");
        assert_eq!(endpoint("::1"), "[::1]:43");
        assert_eq!(endpoint("[::1]:4343"), "[::1]:4343");
    }

    #[test]
    fn only_addresses_are_asked_about() {
        let s = WhoisSettings { server: "127.0.0.1:9".into(), ..WhoisSettings::default() };
        assert!(lookup(&s, "example.org\r\nEVIL").unwrap_err().contains("IP addresses only"));
    }

    #[test]
    fn a_lookup_follows_the_referral_on_loopback() {
        use std::net::TcpListener;
        fn responder(answer: String) -> (String, std::thread::JoinHandle<String>) {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let handle = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut q = Vec::new();
                let mut b = [0u8; 1];
                while !q.ends_with(b"\r\n") {
                    s.read_exact(&mut b).unwrap();
                    q.push(b[0]);
                }
                s.write_all(answer.as_bytes()).unwrap();
                String::from_utf8(q).unwrap()
            });
            (addr, handle)
        }
        let (registry, asked_registry) = responder("inetnum: 192.0.2.0 - 192.0.2.255\nnetname: TEST-NET-1\n".into());
        let (iana, asked_iana) = responder(format!("refer: {registry}\n"));
        let s = WhoisSettings { server: iana, ..WhoisSettings::default() };
        let answer = lookup(&s, "192.0.2.9").unwrap();
        assert!(answer.contains("netname: TEST-NET-1"), "{answer}");
        assert_eq!(asked_iana.join().unwrap(), "192.0.2.9\r\n");
        assert_eq!(asked_registry.join().unwrap(), "192.0.2.9\r\n");
    }
}
