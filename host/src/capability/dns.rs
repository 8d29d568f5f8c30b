//! The `dns` capability: reverse (PTR), forward (A, AAAA) and TXT lookups
//! through the host's resolver, which honours /etc/hosts and nsswitch as
//! every program on the machine does. Nothing else reaches the network:
//! no sockets, no other record types, no server of the plugin's choosing.
//! Each lookup runs on a thread of its own with a timeout, so a resolver
//! that hangs costs the caller the timeout, and answers are kept for five
//! minutes in a cache every plugin instance shares.

use std::collections::HashMap;
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::capability::{Grants, HostServices};
use crate::wit::dns as wit;

/// The interface name (`wasmban:plugin/dns`).
pub const NAME: &str = "dns";

/// Granted by `dns = true`, and with the shell to a plugin that imports
/// it (a shell could run `host` anyway): fail2ban's classic actions look
/// up `<ip-host>` with it.
pub fn granted(grants: &Grants, imports: &[String]) -> bool {
    grants.dns || (grants.shell && crate::capability::imports(imports, crate::capability::shell::NAME))
}

/// The line that grants it.
pub fn grant_line(_imports: &[String]) -> String {
    "dns = true".to_string()
}

/// How long one lookup may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer is kept.
const KEEP_FOR: Duration = Duration::from_secs(300);
/// Answers kept at most; the cache starts afresh beyond.
const KEEP_AT_MOST: usize = 4096;

/// A question: (reverse, the address or name asked about).
type Question = (bool, String);
/// An answer, with when it came.
type Answer = (Instant, Vec<String>);

/// Answers shared by every instance.
#[derive(Default)]
pub struct DnsCache {
    answers: Mutex<HashMap<Question, Answer>>,
}

impl DnsCache {
    fn answer(
        &self,
        reverse: bool,
        question: &str,
        ask: impl FnOnce() -> Result<Vec<String>, String>,
    ) -> Result<Vec<String>, String> {
        let key = (reverse, question.to_ascii_lowercase());
        if let Some((at, answer)) = self.answers.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
            && at.elapsed() < KEEP_FOR
        {
            return Ok(answer.clone());
        }
        // Failures (timeouts) are not kept: the next failure asks again.
        let answer = ask()?;
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= KEEP_AT_MOST {
            answers.clear();
        }
        answers.insert(key, (Instant::now(), answer.clone()));
        Ok(answer)
    }
}

/// Run `work` on a thread of its own, waiting at most [`TIMEOUT`].
fn within_timeout<R: Send + 'static>(what: String, work: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("wasmban-dns".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    rx.recv_timeout(TIMEOUT).map_err(|_| format!("{what} took longer than {} s", TIMEOUT.as_secs()))
}

/// The name of `ip` (getnameinfo with NI_NAMEREQD): empty when it has none.
pub fn reverse(ip: IpAddr) -> Result<Vec<String>, String> {
    within_timeout(format!("the reverse lookup of {ip}"), move || {
        let address = SocketAddr::new(ip, 0);
        let (storage, len) = socket_address(&address);
        let mut host = [0 as libc::c_char; 1025];
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes and
        // `host` is a writable buffer of the length given.
        let rc = unsafe {
            libc::getnameinfo(
                (&raw const storage).cast(),
                len,
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                std::ptr::null_mut(),
                0,
                libc::NI_NAMEREQD,
            )
        };
        if rc != 0 {
            return Vec::new();
        }
        // SAFETY: getnameinfo wrote a NUL-terminated name into `host`.
        let name = unsafe { CStr::from_ptr(host.as_ptr()) }.to_string_lossy().trim_end_matches('.').to_string();
        if name.is_empty() { Vec::new() } else { vec![name] }
    })
}

fn socket_address(address: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The addresses of `name`, canonical and sorted: empty when it has none.
pub fn forward(name: &str) -> Result<Vec<String>, String> {
    if !crate::jail::ids::is_host_name(name) {
        return Err(format!("{name:?} is not a host name"));
    }
    let addresses = crate::jail::ids::lookup(name)?;
    Ok(addresses.iter().map(IpAddr::to_string).collect())
}

/// The TXT records of `name` (res_query, through the host's resolver and
/// its /etc/resolv.conf), each record's strings joined: empty when the
/// name has none or does not exist.
pub fn txt(name: &str) -> Result<Vec<String>, String> {
    if !crate::jail::ids::is_host_name(name) {
        return Err(format!("{name:?} is not a host name"));
    }
    let c_name = std::ffi::CString::new(name).map_err(|_| format!("{name:?} is not a host name"))?;
    within_timeout(format!("the TXT lookup of {name}"), move || {
        const CLASS_IN: libc::c_int = 1;
        const TYPE_TXT: libc::c_int = 16;
        let mut answer = vec![0u8; 65_535];
        // SAFETY: a NUL-terminated name and a writable buffer of the length
        // given; res_query keeps its state per thread.
        let len = unsafe { res_query(c_name.as_ptr(), CLASS_IN, TYPE_TXT, answer.as_mut_ptr(), answer.len() as _) };
        if len < 0 {
            // SAFETY: h_errno of this thread, which res_query just set.
            return match unsafe { *__h_errno_location() } {
                // HOST_NOT_FOUND, NO_DATA: the name has no TXT record.
                1 | 4 => Ok(Vec::new()),
                code => Err(format!("the resolver failed (h_errno {code})")),
            };
        }
        answer.truncate(len as usize);
        txt_records(&answer)
    })?
}

unsafe extern "C" {
    // glibc 2.34 moved the resolver into libc.
    fn res_query(
        dname: *const libc::c_char,
        class: libc::c_int,
        kind: libc::c_int,
        answer: *mut u8,
        anslen: libc::c_int,
    ) -> libc::c_int;
    fn __h_errno_location() -> *mut libc::c_int;
}

/// The TXT records of a DNS answer message (RFC 1035 4.1, 3.3.14).
fn txt_records(message: &[u8]) -> Result<Vec<String>, String> {
    let bad = || "the resolver's answer is malformed".to_string();
    let u16_at = |at: usize| message.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(bad);
    // A name: labels, ended by a zero or by a compression pointer.
    let skip_name = |mut at: usize| -> Result<usize, String> {
        loop {
            let len = *message.get(at).ok_or_else(bad)?;
            match len {
                0 => return Ok(at + 1),
                l if l & 0xC0 == 0xC0 => return Ok(at + 2),
                l => at += 1 + usize::from(l),
            }
        }
    };
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(at)? + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        at = skip_name(at)?;
        let (kind, rdlength) = (u16_at(at)?, usize::from(u16_at(at + 8)?));
        let rdata = message.get(at + 10..at + 10 + rdlength).ok_or_else(bad)?;
        at += 10 + rdlength;
        if kind != 16 {
            continue;
        }
        let mut text = Vec::new();
        let mut pos = 0;
        while pos < rdata.len() {
            let len = usize::from(rdata[pos]);
            text.extend_from_slice(rdata.get(pos + 1..pos + 1 + len).ok_or_else(bad)?);
            pos += 1 + len;
        }
        records.push(String::from_utf8_lossy(&text).into_owned());
    }
    Ok(records)
}

/// The state of one instance.
pub struct DnsCtx {
    plugin: Arc<str>,
    cache: Arc<DnsCache>,
}

impl DnsCtx {
    /// The state for `plugin`, sharing the daemon's cache.
    pub fn for_plugin(plugin: &Arc<str>, _grants: &Grants, services: &HostServices) -> Self {
        DnsCtx { plugin: plugin.clone(), cache: services.dns.clone() }
    }
}

impl wit::Host for DnsCtx {
    fn reverse(&mut self, address: String) -> Result<Vec<String>, String> {
        let ip: IpAddr = address.trim().parse().map_err(|_| format!("{address:?} is not an IP address"))?;
        tracing::debug!(plugin = &*self.plugin, %ip, "dns reverse");
        self.cache.answer(true, &ip.to_string(), || reverse(ip))
    }

    fn forward(&mut self, name: String) -> Result<Vec<String>, String> {
        tracing::debug!(plugin = &*self.plugin, name, "dns forward");
        let name = name.trim().trim_end_matches('.').to_string();
        self.cache.answer(false, &name, || forward(&name))
    }

    fn txt(&mut self, name: String) -> Result<Vec<String>, String> {
        tracing::debug!(plugin = &*self.plugin, name, "dns txt");
        let name = name.trim().trim_end_matches('.').to_string();
        // A space is in no host name: TXT answers get keys of their own.
        self.cache.answer(false, &format!("txt {name}"), || txt(&name))
    }
}

struct HasDns;
impl wasmtime::component::HasData for HasDns {
    type Data<'a> = &'a mut DnsCtx;
}

/// Link `dns` into `linker`. Call it only for plugins granted `dns`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut DnsCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasDns>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_both_ways_through_the_hosts_file() {
        let addresses = forward("localhost").unwrap();
        assert!(addresses.iter().any(|a| a.starts_with("127.") || a == "::1"), "{addresses:?}");
        let names = reverse("127.0.0.1".parse().unwrap()).unwrap();
        assert!(names.iter().any(|n| n.starts_with("localhost")), "{names:?}");
        assert!(forward("not a name").unwrap_err().contains("not a host name"));
    }

    #[test]
    fn txt_records_are_read_from_the_answer() {
        // An answer to `7.2.0.192.abuse-contacts.abusix.org TXT` with two
        // records, the second of two strings, and a CNAME to skip.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        let name: &[u8] = b"\x017\x012\x010\x03192\x0eabuse-contacts\x06abusix\x03org\x00";
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 16, 0, 1]);
        let record = |m: &mut Vec<u8>, kind: u8, rdata: &[u8]| {
            m.extend_from_slice(&[0xC0, 12, 0, kind, 0, 1, 0, 0, 0, 60, 0, rdata.len() as u8]);
            m.extend_from_slice(rdata);
        };
        record(&mut m, 5, b"\x01a\x00");
        record(&mut m, 16, b"\x11abuse@example.net");
        record(&mut m, 16, b"\x06a@b.c,\x07d@e.org");
        assert_eq!(txt_records(&m).unwrap(), ["abuse@example.net", "a@b.c,d@e.org"]);
        assert!(txt_records(&m[..m.len() - 3]).is_err());
        assert!(txt("not a name").is_err());
    }

    #[test]
    fn answers_are_kept_and_failures_are_not() {
        let cache = DnsCache::default();
        assert_eq!(cache.answer(false, "a.example", || Ok(vec!["192.0.2.1".into()])).unwrap(), ["192.0.2.1"]);
        assert_eq!(cache.answer(false, "A.example", || Err("asked again".into())).unwrap(), ["192.0.2.1"]);
        assert!(cache.answer(true, "192.0.2.9", || Err("timed out".into())).is_err());
        assert_eq!(cache.answer(true, "192.0.2.9", || Ok(Vec::new())).unwrap(), Vec::<String>::new());
    }
}
