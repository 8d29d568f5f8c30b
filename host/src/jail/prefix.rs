//! Prefix bans: an IPv6 attacker holds a whole /64 and walks through it,
//! so counting and banning each address finds nothing. A jail's
//! `banprefix6 = 64` (and `banprefix4`) counts and bans the prefix the
//! address is in; a filter's `<SUBNET>`/`<CIDR>` capture is a prefix from
//! the start. A ban id is an address, or `network/length` with the host
//! bits cleared, the form iptables, ipset and nft print back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network: an address with its host bits cleared, and a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    network: IpAddr,
    len: u8,
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn keep_top(value: u128, len: u8, width: u8) -> u128 {
    if len == 0 { 0 } else { value >> (width - len) << (width - len) }
}

impl Prefix {
    /// The prefix of `len` bits that holds `ip` (an IPv4-mapped IPv6
    /// address counts as IPv4; `len` is cut to the family's width).
    pub fn of(ip: IpAddr, len: u8) -> Prefix {
        let ip = crate::jail::normalize(ip);
        let width = width(ip);
        let len = len.min(width);
        let kept = keep_top(bits(ip), len, width);
        let network = match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(kept as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(kept)),
        };
        Prefix { network, len }
    }

    /// `text` as an address or `address/length`; `None` for anything else
    /// or a length beyond the family's width. IPv4-mapped IPv6 prefixes of
    /// /96 or longer are the IPv4 prefixes they hold.
    pub fn parse(text: &str) -> Option<Prefix> {
        let text = text.trim();
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
        let ip: IpAddr = addr.parse().ok()?;
        let len = match len {
            None => width(ip),
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => l.parse::<u8>().ok()?,
            Some(_) => return None,
        };
        if len > width(ip) {
            return None;
        }
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return (len >= 96).then(|| Prefix::of(IpAddr::V4(v4), len - 96));
        }
        Some(Prefix::of(ip, len))
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The length in bits.
    pub fn length(&self) -> u8 {
        self.len
    }

    /// Whether it is one address (a /32 or /128).
    pub fn is_address(&self) -> bool {
        self.len == width(self.network)
    }

    /// Whether `ip` is in it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::jail::normalize(ip);
        ip.is_ipv4() == self.network.is_ipv4() && Prefix::of(ip, self.len).network == self.network
    }

    /// Whether the two share any address (one holds the other).
    pub fn overlaps(&self, other: &Prefix) -> bool {
        let shorter = self.len.min(other.len);
        self.network.is_ipv4() == other.network.is_ipv4()
            && Prefix::of(self.network, shorter).network == Prefix::of(other.network, shorter).network
    }
}

impl std::fmt::Display for Prefix {
    /// An address alone when it is one; `network/length` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_address() { write!(f, "{}", self.network) } else { write!(f, "{}/{}", self.network, self.len) }
    }
}

/// A jail's `banprefix4` and `banprefix6`: the prefix lengths its
/// addresses are counted and banned by (32 and 128: each address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPrefixes {
    /// For IPv4 addresses.
    pub v4: u8,
    /// For IPv6 addresses.
    pub v6: u8,
}

impl Default for BanPrefixes {
    fn default() -> Self {
        BanPrefixes { v4: 32, v6: 128 }
    }
}

/// The shortest prefixes a jail may ban: shorter ones would shut out whole
/// providers on one attacker's failures.
pub const SHORTEST_V4: u8 = 16;
/// See [`SHORTEST_V4`]; a /32 is a whole IPv6 provider's allocation.
pub const SHORTEST_V6: u8 = 32;

impl BanPrefixes {
    /// Parse `banprefix4`/`banprefix6` values (`None`: the default).
    pub fn parse(v4: Option<&str>, v6: Option<&str>) -> Result<BanPrefixes, (&'static str, String)> {
        let read = |key: &'static str, text: Option<&str>, shortest: u8, longest: u8| match text {
            None => Ok(longest),
            Some(t) => {
                let t = t.trim().trim_start_matches('/');
                match t.parse::<u8>() {
                    Ok(len) if (shortest..=longest).contains(&len) => Ok(len),
                    _ => Err((
                        key,
                        format!(
                            "{t:?}: give a prefix length from {shortest} to {longest} ({longest}, the default, \
                             bans each address alone)"
                        ),
                    )),
                }
            }
        };
        Ok(BanPrefixes { v4: read("banprefix4", v4, SHORTEST_V4, 32)?, v6: read("banprefix6", v6, SHORTEST_V6, 128)? })
    }

    /// The prefix `ip` is counted and banned by.
    pub fn widen(&self, ip: IpAddr) -> Prefix {
        let ip = crate::jail::normalize(ip);
        Prefix::of(ip, if ip.is_ipv4() { self.v4 } else { self.v6 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_are_canonical_and_addresses_stay_addresses() {
        for (given, canonical) in [
            ("2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::/64"),
            ("192.0.2.77/24", "192.0.2.0/24"),
            ("192.0.2.77/32", "192.0.2.77"),
            ("192.0.2.77", "192.0.2.77"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:192.0.2.9/120", "192.0.2.0/24"),
            ("10.1.2.3/0", "0.0.0.0/0"),
        ] {
            assert_eq!(Prefix::parse(given).map(|p| p.to_string()).as_deref(), Some(canonical), "{given}");
        }
        for bad in ["192.0.2.1/33", "2001:db8::/129", "192.0.2.1/", "192.0.2.1/+8", "::ffff:1.2.3.4/64", "host/24"] {
            assert_eq!(Prefix::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn containment_and_overlap_follow_the_bits() {
        let net = Prefix::parse("2001:db8:0:1::/64").unwrap();
        assert!(net.contains(ip("2001:db8:0:1:ffff::1")));
        assert!(!net.contains(ip("2001:db8:0:2::1")));
        assert!(!net.contains(ip("192.0.2.1")));
        assert!(net.overlaps(&Prefix::parse("2001:db8::/32").unwrap()));
        assert!(net.overlaps(&Prefix::parse("2001:db8:0:1::5").unwrap()));
        assert!(!net.overlaps(&Prefix::parse("2001:db8:0:2::/64").unwrap()));
        assert!(Prefix::parse("192.0.2.0/24").unwrap().contains(ip("::ffff:192.0.2.200")));
    }

    #[test]
    fn ban_prefixes_widen_each_family_and_refuse_reckless_lengths() {
        let p = BanPrefixes::parse(Some("24"), Some("/64")).unwrap();
        assert_eq!(p.widen(ip("192.0.2.77")).to_string(), "192.0.2.0/24");
        assert_eq!(p.widen(ip("2001:db8::7")).to_string(), "2001:db8::/64");
        assert_eq!(p.widen(ip("::ffff:192.0.2.7")).to_string(), "192.0.2.0/24");
        let default = BanPrefixes::parse(None, None).unwrap();
        assert_eq!(default.widen(ip("2001:db8::7")).to_string(), "2001:db8::7");
        for (v4, v6, key) in
            [(Some("8"), None, "banprefix4"), (None, Some("16"), "banprefix6"), (Some("x"), None, "banprefix4")]
        {
            assert_eq!(BanPrefixes::parse(v4, v6).unwrap_err().0, key);
        }
    }
}
