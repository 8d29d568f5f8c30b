//! `ignoreip`: addresses, networks (CIDR) and host names never banned.

use std::net::IpAddr;

/// One `ignoreip` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum IgnoreEntry {
    /// An address or a network.
    Net {
        /// The network address.
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// A host name, resolved by whoever checks (DNS is not done here).
    Name(String),
}

/// A parsed `ignoreip` list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IgnoreList {
    entries: Vec<IgnoreEntry>,
}

fn mask(addr: IpAddr, prefix: u8) -> u128 {
    let (bits, width) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32u8),
        IpAddr::V6(a) => (u128::from(a), 128u8),
    };
    let keep = prefix.min(width);
    if keep == 0 { 0 } else { bits >> (width - keep) }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        other => other,
    }
}

impl IgnoreList {
    /// Parse entries separated by spaces, commas or newlines. An entry is an
    /// address, `address/prefix`, or a host name; anything else is an error
    /// naming the entry.
    pub fn parse(text: &str) -> Result<IgnoreList, String> {
        let mut entries = Vec::new();
        for item in text.split([' ', ',', '\n', '\t']).map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (item, None),
            };
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let ip = normalize(ip);
                    let width = if ip.is_ipv4() { 32 } else { 128 };
                    let prefix = match prefix {
                        None => width,
                        Some(p) => p
                            .parse::<u8>()
                            .ok()
                            .filter(|p| *p <= width)
                            .ok_or_else(|| format!("ignoreip entry {item:?}: prefix must be 0 to {width}"))?,
                    };
                    entries.push(IgnoreEntry::Net { addr: ip, prefix });
                }
                Err(_) if prefix.is_none() && is_host_name(item) => entries.push(IgnoreEntry::Name(item.to_string())),
                Err(_) => {
                    return Err(format!("ignoreip entry {item:?} is neither an address, a network nor a host name"));
                }
            }
        }
        Ok(IgnoreList { entries })
    }

    /// Whether `ip` is covered by an address or network entry.
    pub fn covers(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        self.entries.iter().any(|e| match e {
            IgnoreEntry::Net { addr, prefix } => {
                addr.is_ipv4() == ip.is_ipv4() && mask(*addr, *prefix) == mask(ip, *prefix)
            }
            IgnoreEntry::Name(_) => false,
        })
    }

    /// The host names to resolve (and then check with [`IgnoreList::covers`]).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            IgnoreEntry::Name(n) => Some(n.as_str()),
            _ => None,
        })
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_networks_and_names() {
        let l = IgnoreList::parse("127.0.0.1/8 ::1, 192.0.2.0/24\n2001:db8::/32 trusted.example.org").unwrap();
        assert!(l.covers(ip("127.1.2.3")));
        assert!(l.covers(ip("::1")));
        assert!(l.covers(ip("192.0.2.200")));
        assert!(l.covers(ip("::ffff:192.0.2.9")));
        assert!(l.covers(ip("2001:db8:1::7")));
        assert!(!l.covers(ip("192.0.3.1")));
        assert!(!l.covers(ip("2001:db9::1")));
        assert_eq!(l.names().collect::<Vec<_>>(), ["trusted.example.org"]);
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(IgnoreList::parse("10.0.0.0/33").unwrap_err().contains("10.0.0.0/33"));
        assert!(IgnoreList::parse("not an_address!").unwrap_err().contains("an_address!"));
        assert!(IgnoreList::parse("0.0.0.0/0").unwrap().covers(ip("203.0.113.5")));
    }
}
