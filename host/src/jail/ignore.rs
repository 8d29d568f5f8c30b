//! `ignoreip`: addresses, networks (CIDR), host names and, as in fail2ban
//! 1.1, `file:PATH` sets of them, never banned.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::jail::Prefix;

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
    /// `file:PATH`: the entries of a file, read when first needed and again
    /// when it changes.
    File(IgnoreFile),
}

/// How long a file set is trusted before its file is looked at again: a
/// change takes effect within this, and a burst of failures costs one
/// `stat`, not one each (fail2ban reloads "after small latency" too).
const FILE_RECHECK: Duration = Duration::from_secs(5);

/// A `file:PATH` entry of `ignoreip`.
#[derive(Debug, Clone)]
pub struct IgnoreFile {
    path: PathBuf,
    state: Arc<Mutex<FileState>>,
}

#[derive(Debug, Default)]
struct FileState {
    checked: Option<Instant>,
    modified: Option<SystemTime>,
    /// What the file held when last read: addresses and networks, and the
    /// addresses its host names resolved to.
    nets: Vec<(IpAddr, u8)>,
    /// Why it could not be read, said once per change.
    problem: Option<String>,
}

impl PartialEq for IgnoreFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl IgnoreFile {
    fn new(path: PathBuf) -> IgnoreFile {
        IgnoreFile { path, state: Arc::new(Mutex::new(FileState::default())) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn covers(&self, ip: IpAddr) -> bool {
        self.any_net(|addr, prefix| addr.is_ipv4() == ip.is_ipv4() && mask(addr, prefix) == mask(ip, prefix))
    }

    fn overlaps(&self, banned: &Prefix) -> bool {
        self.any_net(|addr, prefix| Prefix::of(addr, prefix).overlaps(banned))
    }

    fn any_net(&self, test: impl Fn(IpAddr, u8) -> bool) -> bool {
        let Ok(mut state) = self.state.lock() else { return false };
        if state.checked.is_none_or(|at| at.elapsed() >= FILE_RECHECK) {
            state.checked = Some(Instant::now());
            self.reload(&mut state);
        }
        state.nets.iter().any(|(addr, prefix)| test(*addr, *prefix))
    }

    /// Read the file again if it changed; a file that cannot be read
    /// ignores nothing, and says so once.
    fn reload(&self, state: &mut FileState) {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified());
        let modified = match modified {
            Ok(m) => m,
            Err(e) => {
                let problem =
                    format!("ignoreip file:{}: {e}; it ignores nothing until it can be read", self.path.display());
                if state.problem.as_ref() != Some(&problem) {
                    tracing::warn!("{problem}");
                    state.problem = Some(problem);
                }
                state.nets.clear();
                state.modified = None;
                return;
            }
        };
        if state.modified == Some(modified) {
            return;
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!("ignoreip file:{}: {e}", self.path.display());
                return;
            }
        };
        let mut nets = Vec::new();
        for item in file_entries(&text) {
            match parse_entry(item) {
                Ok(IgnoreEntry::Net { addr, prefix }) => nets.push((addr, prefix)),
                Ok(IgnoreEntry::Name(name)) => match crate::jail::ids::lookup(&name) {
                    Ok(found) => nets.extend(found.into_iter().map(|a| {
                        let a = normalize(a);
                        (a, if a.is_ipv4() { 32 } else { 128 })
                    })),
                    Err(e) => tracing::warn!("ignoreip file:{}: {name}: {e}; skipped", self.path.display()),
                },
                // fail2ban keeps other text as raw ids; wasmban's ids that
                // are not addresses are never ignored by address.
                Ok(IgnoreEntry::File(_)) | Err(_) => {
                    tracing::warn!(
                        "ignoreip file:{}: {item:?} is not an address, network or host name; skipped",
                        self.path.display()
                    )
                }
            }
        }
        tracing::info!("ignoreip file:{}: {} address(es) and network(s)", self.path.display(), nets.len());
        state.nets = nets;
        state.modified = Some(modified);
        state.problem = None;
    }
}

/// The entries of an ignoreip file: separated by commas, spaces or lines;
/// `#` or `;` at the start of a line or after white space starts a comment
/// to the end of the line.
fn file_entries(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut end = line.len();
        for (i, c) in line.char_indices() {
            if (c == '#' || c == ';') && (i == 0 || line[..i].ends_with(char::is_whitespace)) {
                end = i;
                break;
            }
        }
        out.extend(line[..end].split([' ', ',', '\t']).map(str::trim).filter(|s| !s.is_empty()));
    }
    out
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
        let entries = text
            .split([' ', ',', '\n', '\t'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
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
            IgnoreEntry::File(file) => file.covers(ip),
        })
    }

    /// Whether `banned` holds any address an entry covers: banning it
    /// would ban an ignored address.
    pub fn overlaps(&self, banned: &Prefix) -> bool {
        self.entries.iter().any(|e| match e {
            IgnoreEntry::Net { addr, prefix } => Prefix::of(*addr, *prefix).overlaps(banned),
            IgnoreEntry::Name(_) => false,
            IgnoreEntry::File(file) => file.overlaps(banned),
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

/// One entry: an address, `address/prefix`, a host name or `file:PATH`;
/// anything else is an error naming the entry.
fn parse_entry(item: &str) -> Result<IgnoreEntry, String> {
    if let Some(path) = item.strip_prefix("file:") {
        // fail2ban writes file:/abs, file:///abs; a relative path would
        // depend on the daemon's working directory.
        let path = format!("/{}", path.trim_start_matches('/'));
        if path == "/" {
            return Err(format!(
                "ignoreip entry {item:?}: give the file's absolute path (file:/etc/wasmban/ignore.list)"
            ));
        }
        return Ok(IgnoreEntry::File(IgnoreFile::new(PathBuf::from(path))));
    }
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
            Ok(IgnoreEntry::Net { addr: ip, prefix })
        }
        Err(_) if prefix.is_none() && is_host_name(item) => Ok(IgnoreEntry::Name(item.to_string())),
        Err(_) => Err(format!("ignoreip entry {item:?} is neither an address, a network, a host name nor file:PATH")),
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
    fn a_file_set_is_read_when_needed_and_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ignore.list");
        std::fs::write(&path, "# the office\n192.0.2.0/24, 198.51.100.7 ; the VPN\n2001:db8::1#x\n").unwrap();
        let list = IgnoreList::parse(&format!("127.0.0.1 file:{}", path.display())).unwrap();
        assert!(list.covers(ip("192.0.2.77")) && list.covers(ip("198.51.100.7")));
        // `#` inside a word is not a comment: that entry is not an address.
        assert!(!list.covers(ip("2001:db8::1")));
        assert!(!list.covers(ip("203.0.113.9")));
        // A change is read after the recheck interval.
        std::fs::write(&path, "203.0.113.9\n").unwrap();
        let file = list
            .entries
            .iter()
            .find_map(|e| if let IgnoreEntry::File(f) = e { Some(f.clone()) } else { None })
            .unwrap();
        if let Ok(mut state) = file.state.lock() {
            state.checked = None;
            state.modified = None;
        }
        assert!(list.covers(ip("203.0.113.9")) && !list.covers(ip("192.0.2.77")));
        // A file that disappears ignores nothing (said in the log).
        std::fs::remove_file(&path).unwrap();
        file.state.lock().unwrap().checked = None;
        assert!(!list.covers(ip("203.0.113.9")));
        assert!(list.covers(ip("127.0.0.1")));
        assert_eq!(IgnoreList::parse("file:///etc/x").unwrap(), IgnoreList::parse("file:/etc/x").unwrap());
        assert!(IgnoreList::parse("file:").unwrap_err().contains("absolute path"));
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(IgnoreList::parse("10.0.0.0/33").unwrap_err().contains("10.0.0.0/33"));
        assert!(IgnoreList::parse("not an_address!").unwrap_err().contains("an_address!"));
        assert!(IgnoreList::parse("0.0.0.0/0").unwrap().covers(ip("203.0.113.5")));
    }
}
