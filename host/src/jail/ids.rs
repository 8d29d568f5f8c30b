//! What may become a ban id. A filter reports a failure's id as text taken
//! from a log line: an address, a host name (fail2ban's `<HOST>` matches
//! names too), or an id the filter declares with `<F-ID>`. Only a
//! normalised address reaches the jail's counting and ignore lists, unless
//! the filter declared a non-address id; names are resolved as `usedns`
//! says, and the addresses they resolve to are checked like any other.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// fail2ban's `usedns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseDns {
    /// Resolve names; each address counts.
    Yes,
    /// Resolve names, with a warning (fail2ban's default).
    Warn,
    /// Names are not banned.
    No,
    /// The text is the id as it is (no lookup).
    Raw,
}

impl UseDns {
    /// Parse a jail's `usedns` value.
    pub fn parse(text: &str) -> Result<UseDns, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "on" => Ok(UseDns::Yes),
            "" | "warn" => Ok(UseDns::Warn),
            "no" | "false" | "0" | "off" => Ok(UseDns::No),
            "raw" => Ok(UseDns::Raw),
            other => Err(format!("usedns = {other:?}: use yes, warn, no or raw")),
        }
    }
}

/// The address `text` names, normalised (an IPv4-mapped IPv6 address is
/// the IPv4 address; brackets are taken off).
pub fn canonical_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Whether a non-address id is safe to hand to actions and the store:
/// printable, no white space, not taken for an option (`-j ACCEPT`).
pub fn is_safe_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && !text.starts_with('-')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `text` as the store keeps a banned id: an address normalised as bans
/// are, or an id a filter declared; `None` for neither.
pub fn stored_id(text: &str) -> Option<String> {
    address_id(text).or_else(|| is_safe_id(text.trim()).then(|| text.trim().to_string()))
}

/// `text` as the id an address or a prefix is banned under (normalised);
/// `None` for neither.
fn address_id(text: &str) -> Option<String> {
    let text = text.trim();
    // Most failures name an IPv4 address, and std takes only its canonical
    // text (dotted decimal, no leading zeros): the text is the id as it
    // is, without formatting the address again.
    if text.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some(text.to_string());
    }
    if let Some(address) = canonical_ip(text) {
        return Some(address.to_string());
    }
    // `<SUBNET>` and `<CIDR>` captures: the prefix is the id.
    canonical_prefix(text)
}

/// `text` as a prefix ban id (`2001:db8::/64`, host bits cleared), when it
/// is `address/length`; a full-length one is its address.
pub fn canonical_prefix(text: &str) -> Option<String> {
    text.contains('/').then(|| crate::jail::Prefix::parse(text)).flatten().map(|p| p.to_string())
}

/// Whether `text` has the shape of a DNS name worth a lookup.
pub fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && !text.starts_with(['-', '.'])
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// How long a name lookup may hold up its jail.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a lookup's answer is kept (fail2ban caches them too).
const CACHE_FOR: Duration = Duration::from_secs(300);
/// Names cached at most; the cache starts over beyond this.
const CACHE_MAX: usize = 10_000;

/// Turns failure ids into ban ids for one jail.
pub struct IdPolicy {
    usedns: UseDns,
    cache: HashMap<String, (Instant, Vec<IpAddr>)>,
}

impl IdPolicy {
    /// A policy with the jail's `usedns`.
    pub fn new(usedns: UseDns) -> IdPolicy {
        IdPolicy { usedns, cache: HashMap::new() }
    }

    /// The ids to count for a failure whose filter reported `id`, with
    /// the failure's captured `fields`; `Err` says why nothing is counted.
    pub fn ids_for(&mut self, jail: &str, id: &str, fields: &[(String, String)]) -> Result<Vec<String>, String> {
        let id = id.trim();
        if let Some(address) = address_id(id) {
            return Ok(vec![address]);
        }
        let declared = fields.iter().any(|(k, v)| k == "fid" && v.trim() == id);
        if declared || self.usedns == UseDns::Raw {
            return if is_safe_id(id) {
                Ok(vec![id.to_string()])
            } else {
                Err(format!("the id {id:?} has white space or control characters, or starts with '-'"))
            };
        }
        if !is_host_name(id) {
            return Err(format!("{id:?} is neither an address nor a host name"));
        }
        if self.usedns == UseDns::No {
            return Err(format!("{id} is a host name, not an address, and usedns = no"));
        }
        let addresses = self.resolve(id)?;
        if self.usedns == UseDns::Warn {
            let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
            tracing::warn!("[{jail}] Determined IP using DNS Lookup: {id} = [{}]", list.join(", "));
        }
        Ok(addresses.iter().map(IpAddr::to_string).collect())
    }

    fn resolve(&mut self, name: &str) -> Result<Vec<IpAddr>, String> {
        let key = name.to_ascii_lowercase();
        if let Some((at, addresses)) = self.cache.get(&key)
            && at.elapsed() < CACHE_FOR
        {
            return if addresses.is_empty() {
                Err(format!("{name} resolves to no address"))
            } else {
                Ok(addresses.clone())
            };
        }
        let addresses = lookup(&key)?;
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, (Instant::now(), addresses.clone()));
        if addresses.is_empty() { Err(format!("{name} resolves to no address")) } else { Ok(addresses) }
    }
}

/// The system resolver's answer for `name`, within [`LOOKUP_TIMEOUT`]: the
/// lookup runs on a thread of its own, so a resolver that hangs costs its
/// jail the timeout, not its lines.
pub fn lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    let (tx, rx) = mpsc::channel();
    let owned = name.to_string();
    std::thread::Builder::new()
        .name("wasmban-dns".into())
        .spawn(move || {
            let found: Vec<IpAddr> = (owned.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip().to_canonical()).collect())
                .unwrap_or_default();
            let _ = tx.send(found);
        })
        .map_err(|e| format!("cannot start a lookup of {name}: {e}"))?;
    let mut found = rx
        .recv_timeout(LOOKUP_TIMEOUT)
        .map_err(|_| format!("looking up {name} took longer than {} s", LOOKUP_TIMEOUT.as_secs()))?;
    found.sort();
    found.dedup();
    Ok(found)
}

/// Why a manual ban of `ip` needs `--force`: loopback, unspecified,
/// broadcast and multicast addresses, and this host's own addresses.
pub fn needs_force(ip: IpAddr) -> Option<String> {
    let what = match ip {
        _ if ip.is_loopback() => Some("a loopback address"),
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        _ => None,
    };
    if let Some(what) = what {
        return Some(format!("{ip} is {what}"));
    }
    own_addresses().contains(&ip).then(|| format!("{ip} is an address of this host"))
}

/// Why banning `prefix` by hand needs `--force`: it holds this host's own
/// or a loopback address, or is shorter than a jail may ban.
pub fn prefix_needs_force(prefix: &crate::jail::Prefix) -> Option<String> {
    use crate::jail::prefix::{SHORTEST_V4, SHORTEST_V6};
    let shortest = if prefix.network().is_ipv4() { SHORTEST_V4 } else { SHORTEST_V6 };
    if prefix.length() < shortest {
        return Some(format!("{prefix} is shorter than /{shortest}"));
    }
    if let Some(why) = needs_force(prefix.network()) {
        return Some(why);
    }
    local_addresses()
        .into_iter()
        .find(|ip| prefix.contains(*ip))
        .map(|ip| format!("{prefix} holds {ip}, an address of this host"))
}

/// This machine's addresses for `ignoreself`: loopback and every
/// interface's.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])];
    out.extend(own_addresses());
    out.sort();
    out.dedup();
    out
}

/// The addresses of this host's interfaces.
pub fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below;
    // every node is read only while the list is alive.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut node = list;
        while !node.is_null() {
            let addr = (*node).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_id_is_a_normalised_address_or_a_safe_id() {
        assert_eq!(stored_id(" ::ffff:192.0.2.1 ").as_deref(), Some("192.0.2.1"));
        assert_eq!(stored_id("[2001:DB8::1]").as_deref(), Some("2001:db8::1"));
        assert_eq!(stored_id(" user42 ").as_deref(), Some("user42"));
        assert_eq!(stored_id("-j ACCEPT"), None);
        assert_eq!(stored_id(""), None);
    }

    #[test]
    fn an_ipv4_address_taken_as_written_is_its_canonical_text() {
        for text in ["192.0.2.1", "0.0.0.0", "255.255.255.255", "10.20.30.40"] {
            assert_eq!(ids(UseDns::No, text, &[]).unwrap(), [canonical_ip(text).unwrap().to_string()]);
        }
        // What std does not take as written goes the long way, or nowhere.
        for text in ["192.0.2.01", "0192.0.2.1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "+1.2.3.4"] {
            assert!(text.parse::<std::net::Ipv4Addr>().is_err(), "{text}");
        }
        assert_eq!(ids(UseDns::No, " ::ffff:192.0.2.1", &[]).unwrap(), ["192.0.2.1"]);
    }

    fn ids(usedns: UseDns, id: &str, fields: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        IdPolicy::new(usedns).ids_for("test", id, &fields)
    }

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(ids(UseDns::No, "::ffff:192.0.2.1", &[]).unwrap(), ["192.0.2.1"]);
        assert_eq!(ids(UseDns::No, "2001:DB8:0:0::1", &[]).unwrap(), ["2001:db8::1"]);
        assert_eq!(ids(UseDns::No, "[2001:db8::2]", &[]).unwrap(), ["2001:db8::2"]);
    }

    #[test]
    fn names_follow_usedns() {
        assert!(ids(UseDns::No, "localhost", &[]).unwrap_err().contains("usedns = no"));
        let resolved = ids(UseDns::Yes, "localhost", &[]).unwrap();
        assert!(resolved.iter().all(|ip| canonical_ip(ip).is_some_and(|a| a.is_loopback())), "{resolved:?}");
        assert_eq!(ids(UseDns::Raw, "localhost", &[]).unwrap(), ["localhost"]);
        assert!(ids(UseDns::Warn, "-j.ACCEPT", &[]).is_err());
        assert!(ids(UseDns::Raw, "-j", &[]).is_err());
    }

    #[test]
    fn a_declared_id_is_kept_when_it_is_safe() {
        assert_eq!(ids(UseDns::No, "user42", &[("fid", "user42")]).unwrap(), ["user42"]);
        assert!(ids(UseDns::No, "-oProxyCommand", &[("fid", "-oProxyCommand")]).is_err());
    }

    #[test]
    fn ignoreself_covers_loopback() {
        let addrs = local_addresses();
        assert!(addrs.contains(&"127.0.0.1".parse().unwrap()) && addrs.contains(&"::1".parse().unwrap()));
    }

    #[test]
    fn manual_bans_of_loopback_and_own_addresses_need_force() {
        assert!(needs_force("127.0.0.1".parse().unwrap()).is_some());
        assert!(needs_force("::1".parse().unwrap()).is_some());
        assert!(needs_force("255.255.255.255".parse().unwrap()).is_some());
        assert!(needs_force("0.0.0.0".parse().unwrap()).is_some());
        assert!(needs_force("192.0.2.7".parse().unwrap()).is_none());
        for own in own_addresses() {
            assert!(needs_force(own).is_some(), "{own}");
        }
    }
}
