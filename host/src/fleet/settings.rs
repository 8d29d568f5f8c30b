//! `[fleet]` in `wasmban.conf`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::values::parse_time;
use crate::fleet::policy::Policy;
use crate::fleet::record::valid_origin;
use crate::jail::Prefix;

/// The fleet's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    /// `servers`: NATS URLs (`nats://`, `tls://`).
    pub servers: Vec<String>,
    /// `name`: this host's origin name.
    pub name: String,
    /// `credentials`: a NATS credentials file.
    pub credentials: Option<PathBuf>,
    /// `auth = nkey`: this host's signing key is also its NATS user.
    pub nkey_auth: bool,
    /// `bucket`: the key-value bucket.
    pub bucket: String,
    /// `trust`: origin -> its public nkey.
    pub trust: BTreeMap<String, String>,
    /// `allow`, `members`, `maxbantime`, `minprefix4`, `minprefix6`,
    /// `rate`, `quorum`.
    pub policy: Policy,
}

/// The default bucket.
pub const DEFAULT_BUCKET: &str = "wasmban-bans";

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split([',', '\n', ' ', '\t']).map(str::trim).filter(|v| !v.is_empty())
}

/// Read `[fleet]` with `get(key)`; `None` when the section sets no
/// `servers`. `error(key, message)` makes the error that names the file.
pub fn read<E>(
    get: impl Fn(&str) -> Result<Option<String>, E>,
    error: impl Fn(&str, String) -> E,
) -> Result<Option<FleetSettings>, E> {
    let Some(servers) = get("servers")?.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    let servers: Vec<String> = list(&servers).map(str::to_string).collect();
    for s in &servers {
        if !["nats://", "tls://", "ws://", "wss://"].iter().any(|scheme| s.starts_with(scheme)) {
            return Err(error("servers", format!("{s:?}: give nats://HOST:PORT or tls://HOST:PORT")));
        }
    }
    let name = get("name")?.map(|n| n.trim().to_string()).unwrap_or_default();
    if !valid_origin(&name) {
        return Err(error(
            "name",
            format!("{name:?}: give this host's name in the fleet: 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    let credentials = match get("credentials")?.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) if p.starts_with('/') => Some(PathBuf::from(p)),
        Some(p) => return Err(error("credentials", format!("{p:?}: give an absolute path"))),
    };
    let nkey_auth = match get("auth")?.as_deref().map(str::trim) {
        None | Some("") | Some("none") => false,
        Some("nkey") => true,
        Some("credentials") if credentials.is_some() => false,
        Some(other) => {
            return Err(error(
                "auth",
                format!(
                    "{other:?}: use nkey (this host's signing key is its NATS user), credentials (with \
                     credentials = FILE) or none (a user and password in the servers' URL, or no auth)"
                ),
            ));
        }
    };
    let bucket = get("bucket")?.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
    let bucket = bucket.unwrap_or_else(|| DEFAULT_BUCKET.to_string());
    if !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(error("bucket", format!("{bucket:?}: letters, digits, '-' and '_' only")));
    }
    let mut trust = BTreeMap::new();
    for entry in list(&get("trust")?.unwrap_or_default()) {
        let Some((origin, key)) = entry.split_once(':') else {
            return Err(error(
                "trust",
                format!("{entry:?}: give NAME:PUBLIC-KEY (what `wasmban fleet keygen` printed)"),
            ));
        };
        if !valid_origin(origin) {
            return Err(error("trust", format!("{entry:?}: {origin:?} is not a host name")));
        }
        if nkeys::KeyPair::from_public_key(key).is_err() {
            return Err(error("trust", format!("{entry:?}: {key:?} is not a public nkey (U...)")));
        }
        trust.insert(origin.to_string(), key.to_string());
    }
    let mut policy = Policy::default();
    for option in ["allow", "members"] {
        for entry in list(&get(option)?.unwrap_or_default()) {
            let prefix = Prefix::parse(entry)
                .ok_or_else(|| error(option, format!("{entry:?}: give addresses or prefixes (192.0.2.0/24)")))?;
            policy.allow.push(prefix);
        }
    }
    if let Some(t) = get("maxbantime")? {
        policy.max_bantime = parse_time(&t)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| error("maxbantime", format!("{t:?}: give a time such as 1d (remote bans are capped)")))?;
    }
    for (option, family_width) in [("minprefix4", 32u8), ("minprefix6", 128u8)] {
        if let Some(v) = get(option)? {
            let len = v.trim().trim_start_matches('/').parse::<u8>().ok().filter(|l| *l <= family_width);
            let len = len.ok_or_else(|| error(option, format!("{v:?}: give a prefix length up to {family_width}")))?;
            if option == "minprefix4" {
                policy.floor4 = len;
            } else {
                policy.floor6 = len;
            }
        }
    }
    if let Some(v) = get("rate")? {
        let bad = || error("rate", format!("{v:?}: give new bans per origin and window, such as 1000/1m"));
        let (count, window) = v.trim().split_once('/').unwrap_or((v.trim(), "1m"));
        policy.rate = count.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        policy.rate_window = parse_time(window).ok().filter(|s| *s > 0).ok_or_else(bad)?;
    }
    if let Some(v) = get("quorum")? {
        policy.quorum = v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            error("quorum", format!("{v:?}: give how many origins must report an address (1 or more)"))
        })?;
    }
    Ok(Some(FleetSettings { servers, name, credentials, nkey_auth, bucket, trust, policy }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<FleetSettings>, String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read(|k| Ok(map.get(k).cloned()), |k, m| format!("{k}: {m}"))
    }

    #[test]
    fn a_whole_section() {
        let key = nkeys::KeyPair::new_user().public_key();
        let trust = format!("web2:{key}, web3:{key}");
        let s = parse(&[
            ("servers", "nats://127.0.0.1:4222, tls://nats.example.org:4222"),
            ("name", "web1"),
            ("trust", &trust),
            ("allow", "192.0.2.0/24"),
            ("members", "198.51.100.1 2001:db8::1"),
            ("maxbantime", "1d"),
            ("minprefix4", "/16"),
            ("rate", "100/10s"),
            ("quorum", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((s.servers.len(), s.name.as_str(), s.bucket.as_str()), (2, "web1", DEFAULT_BUCKET));
        assert_eq!(s.trust.keys().collect::<Vec<_>>(), ["web2", "web3"]);
        let p = &s.policy;
        assert_eq!((p.allow.len(), p.max_bantime, p.floor4, p.floor6), (3, 86400, 16, 48));
        assert_eq!((p.rate, p.rate_window, p.quorum), (100, 10, 2));
    }

    #[test]
    fn off_without_servers_and_bad_values_are_named() {
        assert!(parse(&[("name", "web1")]).unwrap().is_none());
        let base = [("servers", "nats://127.0.0.1:4222"), ("name", "web1")];
        for (key, value, said) in [
            ("servers", "127.0.0.1:4222", "servers:"),
            ("name", "web.1", "name:"),
            ("trust", "web2", "trust:"),
            ("trust", "web2:SOMETHING", "not a public nkey"),
            ("allow", "everyone", "allow:"),
            ("minprefix6", "129", "minprefix6:"),
            ("rate", "lots", "rate:"),
            ("quorum", "0", "quorum:"),
            ("credentials", "relative.creds", "credentials:"),
        ] {
            let mut pairs = base.to_vec();
            pairs.retain(|(k, _)| *k != key);
            pairs.push((key, value));
            let e = parse(&pairs).map(|_| ()).unwrap_err();
            assert!(e.contains(said), "{key} = {value}: {e}");
        }
    }
}
