//! Write wasmban filters and actions in Rust.
//!
//! A plugin is one type implementing [`Filter`] or [`Action`] and one line
//! exporting it:
//!
//! ```ignore
//! use wasmban_plugin_sdk::{Filter, Options, Scan};
//!
//! struct Quiet;
//! impl Filter for Quiet {
//!     fn new(_options: Options) -> Result<Self, String> { Ok(Quiet) }
//!     fn feed(&mut self, _lines: &str, _now: f64, _notes: bool) -> Scan { Scan::default() }
//! }
//! wasmban_plugin_sdk::export_filter!(Quiet);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` from a
//! `cdylib` crate: the output is a component that wasmban loads.
//!
//! What a plugin may touch is decided by the admin's grant, not by the
//! plugin: the capability modules ([`firewall`], [`mail`], [`whois`],
//! [`shell`]) are only usable by actions whose grant names them, and a
//! component that imports an ungranted capability is refused at load.
#![deny(missing_docs)]

// Lets the generated code name this crate the way plugin crates do.
extern crate self as wasmban_plugin_sdk;

use std::cell::RefCell;

/// Generated bindings: not part of the SDK's API, and may change with every
/// release.
#[doc(hidden)]
pub mod wit {
    /// The filter world.
    pub mod filter_world {
        wit_bindgen::generate!({
            path: "../wit",
            world: "filter-plugin",
            pub_export_macro: true,
            export_macro_name: "export_filter_world",
            default_bindings_module: "wasmban_plugin_sdk::wit::filter_world",
            runtime_path: "wasmban_plugin_sdk::wit::rt",
            additional_derives: [PartialEq, Clone],
        });
    }
    /// The action world; shares the types and log bindings of the filter world.
    pub mod action_world {
        wit_bindgen::generate!({
            path: "../wit",
            world: "action-plugin",
            pub_export_macro: true,
            export_macro_name: "export_action_world",
            default_bindings_module: "wasmban_plugin_sdk::wit::action_world",
            runtime_path: "wasmban_plugin_sdk::wit::rt",
            with: {
                "wasmban:plugin/types@0.1.0": crate::wit::filter_world::wasmban::plugin::types,
                "wasmban:plugin/log@0.1.0": crate::wit::filter_world::wasmban::plugin::log,
            },
            additional_derives: [PartialEq, Clone],
        });
    }
    /// The filter-pack world; shares the filter world's types and log.
    pub mod pack_world {
        wit_bindgen::generate!({
            path: "../wit",
            world: "filter-pack",
            pub_export_macro: true,
            export_macro_name: "export_pack_world",
            default_bindings_module: "wasmban_plugin_sdk::wit::pack_world",
            runtime_path: "wasmban_plugin_sdk::wit::rt",
            with: {
                "wasmban:plugin/types@0.1.0": crate::wit::filter_world::wasmban::plugin::types,
                "wasmban:plugin/log@0.1.0": crate::wit::filter_world::wasmban::plugin::log,
            },
            additional_derives: [PartialEq, Clone],
        });
    }
    /// The ignore world; shares the action world's imports.
    pub mod ignore_world {
        wit_bindgen::generate!({
            path: "../wit",
            world: "ignore-plugin",
            pub_export_macro: true,
            export_macro_name: "export_ignore_world",
            default_bindings_module: "wasmban_plugin_sdk::wit::ignore_world",
            runtime_path: "wasmban_plugin_sdk::wit::rt",
            with: {
                "wasmban:plugin/types@0.1.0": crate::wit::filter_world::wasmban::plugin::types,
                "wasmban:plugin/log@0.1.0": crate::wit::filter_world::wasmban::plugin::log,
                "wasmban:plugin/firewall@0.1.0": crate::wit::action_world::wasmban::plugin::firewall,
                "wasmban:plugin/shell@0.1.0": crate::wit::action_world::wasmban::plugin::shell,
                "wasmban:plugin/dns@0.1.0": crate::wit::action_world::wasmban::plugin::dns,
            },
            additional_derives: [PartialEq, Clone],
        });
    }
    pub use wit_bindgen::rt;
}

pub mod classic;

use wit::action_world::exports::wasmban::plugin::action as action_export;
use wit::filter_world::exports::wasmban::plugin::filter as filter_export;
use wit::ignore_world::exports::wasmban::plugin::ignore as ignore_export;
use wit::pack_world::exports::wasmban::plugin::pack as pack_export;

/// What a filter pack says about itself and its filters.
pub use pack_export::{FilterInfo, PackInfo, Sample};
use wit::filter_world::wasmban::plugin::types;

pub use types::{Failure, LineNote, Scan, Ticket};

/// The SDK version stamped into every component built with it, in the
/// `wasmban:sdk-version` custom section.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

#[doc(hidden)]
pub const SDK_VERSION_BYTES: [u8; SDK_VERSION.len()] = {
    let src = SDK_VERSION.as_bytes();
    let mut out = [0u8; SDK_VERSION.len()];
    let mut i = 0;
    while i < src.len() {
        out[i] = src[i];
        i += 1;
    }
    out
};

// Written by hand: the type is generated, and a derive would have to be added
// to every generated type, enums included.
#[allow(clippy::derivable_impls)]
impl Default for Scan {
    fn default() -> Self {
        Scan { failures: Vec::new(), notes: Vec::new() }
    }
}

/// The settings a plugin is created with, in the order the host gave them.
#[derive(Debug, Clone, Default)]
pub struct Options(Vec<(String, String)>);

impl Options {
    /// Wrap key/value pairs (useful in a plugin's native unit tests).
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Options(pairs)
    }
    /// The value of `key`; when a key repeats, the last one wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// The value of `key`, or `default` when it is absent.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }
    /// The value of `key`, or an error that names the key.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("option `{key}` is required but was not given"))
    }
    /// The value of `key` as milliseconds (a command's or request's
    /// timeout), or `default` when it is absent.
    pub fn millis(&self, key: &str, default: u32) -> Result<u32, String> {
        match self.get(key) {
            Some(v) => v.parse::<u32>().map_err(|_| format!("option `{key}` = {v:?}: expected milliseconds")),
            None => Ok(default),
        }
    }
    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A filter: reads batches of log lines and reports the failures in them.
pub trait Filter: Sized + 'static {
    /// Build the filter from its options; an error names the option at fault.
    fn new(options: Options) -> Result<Self, String>;
    /// Scan one batch. `lines` holds whole lines separated by `\n`; `now` is
    /// the host's clock in unix seconds. With `notes`, return one
    /// [`LineNote`] per line as well.
    fn feed(&mut self, lines: &str, now: f64, notes: bool) -> Scan;
}

/// A filter pack: several named filters in one component. `Self` is one
/// configured filter of the pack (an enum, when the filters differ).
pub trait FilterPack: Sized + 'static {
    /// The pack's name, version and filters, with their samples.
    fn describe() -> PackInfo;
    /// The filter `filter` with the jail's options; an unknown name or a
    /// bad option is an error naming it.
    fn new(filter: &str, options: Options) -> Result<Self, String>;
    /// Scan one batch, as [`Filter::feed`].
    fn feed(&mut self, lines: &str, now: f64, notes: bool) -> Scan;
}

/// An action: what a ban means. Errors are plain messages for the admin.
pub trait Action: Sized + 'static {
    /// Build the action from its options. Change nothing on the system here.
    fn new(options: Options) -> Result<Self, String>;
    /// Set up what bans need.
    fn start(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Tear down what `start` built.
    fn stop(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Verify (and repair when possible) what `start` built.
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Ban one address.
    fn ban(&mut self, ticket: &Ticket) -> Result<(), String>;
    /// Lift one ban.
    fn unban(&mut self, ticket: &Ticket) -> Result<(), String>;
    /// Ban many addresses; override to apply them in one transaction.
    fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        tickets.iter().map(|t| self.ban(t)).collect()
    }
    /// Lift many bans; override to apply them in one transaction.
    fn unban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        tickets.iter().map(|t| self.unban(t)).collect()
    }
}

/// An ignore plugin (fail2ban's `ignorecommand` as a component): decides
/// whether a failing address is never counted.
pub trait Ignore: Sized + 'static {
    /// Build the judge from the jail's options.
    fn new(options: Options) -> Result<Self, String>;
    /// Whether to ignore `ip`, found failing in `failure`.
    fn ignore(&mut self, ip: &str, failure: &Failure) -> Result<bool, String>;
}

#[doc(hidden)]
pub struct IgnoreAdapter<T: Ignore>(RefCell<T>);

impl<T: Ignore> ignore_export::GuestJudge for IgnoreAdapter<T> {
    fn create(options: Vec<(String, String)>) -> Result<ignore_export::Judge, String> {
        T::new(Options(options)).map(|j| ignore_export::Judge::new(IgnoreAdapter(RefCell::new(j))))
    }
    fn ignore(&self, ip: String, failure: Failure) -> Result<bool, String> {
        self.0.borrow_mut().ignore(&ip, &failure)
    }
}

#[doc(hidden)]
pub struct FilterAdapter<T: Filter>(RefCell<T>);

impl<T: Filter> filter_export::GuestMatcher for FilterAdapter<T> {
    fn create(options: Vec<(String, String)>) -> Result<filter_export::Matcher, String> {
        T::new(Options(options)).map(|f| filter_export::Matcher::new(FilterAdapter(RefCell::new(f))))
    }
    fn feed(&self, lines: String, now: f64, notes: bool) -> Scan {
        self.0.borrow_mut().feed(&lines, now, notes)
    }
}

#[doc(hidden)]
pub struct PackAdapter<T: FilterPack>(RefCell<T>);

impl<T: FilterPack> pack_export::GuestMatcher for PackAdapter<T> {
    fn create(filter: String, options: Vec<(String, String)>) -> Result<pack_export::Matcher, String> {
        T::new(&filter, Options(options)).map(|f| pack_export::Matcher::new(PackAdapter(RefCell::new(f))))
    }
    fn feed(&self, lines: String, now: f64, notes: bool) -> Scan {
        self.0.borrow_mut().feed(&lines, now, notes)
    }
}

#[doc(hidden)]
pub struct ActionAdapter<T: Action>(RefCell<T>);

impl<T: Action> action_export::GuestHandler for ActionAdapter<T> {
    fn create(options: Vec<(String, String)>) -> Result<action_export::Handler, String> {
        T::new(Options(options)).map(|a| action_export::Handler::new(ActionAdapter(RefCell::new(a))))
    }
    fn start(&self) -> Result<(), String> {
        self.0.borrow_mut().start()
    }
    fn stop(&self) -> Result<(), String> {
        self.0.borrow_mut().stop()
    }
    fn check(&self) -> Result<(), String> {
        self.0.borrow_mut().check()
    }
    fn ban(&self, tickets: Vec<Ticket>) -> Vec<Result<(), String>> {
        self.0.borrow_mut().ban_all(&tickets)
    }
    fn unban(&self, tickets: Vec<Ticket>) -> Vec<Result<(), String>> {
        self.0.borrow_mut().unban_all(&tickets)
    }
}

/// Export a [`Filter`] implementation as this component's filter.
#[macro_export]
macro_rules! export_filter {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WasmbanFilterExport;
        impl $crate::wit::filter_world::exports::wasmban::plugin::filter::Guest
            for __WasmbanFilterExport
        {
            type Matcher = $crate::FilterAdapter<$ty>;
        }
        $crate::wit::filter_world::export_filter_world!(
            __WasmbanFilterExport with_types_in $crate::wit::filter_world
        );
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "wasmban:sdk-version")]
        #[used]
        static __WASMBAN_SDK_VERSION: [u8; $crate::SDK_VERSION.len()] = $crate::SDK_VERSION_BYTES;
    };
}

/// Export a [`FilterPack`] implementation as this component's pack.
#[macro_export]
macro_rules! export_pack {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WasmbanPackExport;
        impl $crate::wit::pack_world::exports::wasmban::plugin::pack::Guest for __WasmbanPackExport {
            type Matcher = $crate::PackAdapter<$ty>;
            fn describe() -> $crate::PackInfo {
                <$ty as $crate::FilterPack>::describe()
            }
        }
        $crate::wit::pack_world::export_pack_world!(
            __WasmbanPackExport with_types_in $crate::wit::pack_world
        );
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "wasmban:sdk-version")]
        #[used]
        static __WASMBAN_SDK_VERSION: [u8; $crate::SDK_VERSION.len()] = $crate::SDK_VERSION_BYTES;
    };
}

/// Export an [`Action`] implementation as this component's action.
#[macro_export]
macro_rules! export_action {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WasmbanActionExport;
        impl $crate::wit::action_world::exports::wasmban::plugin::action::Guest
            for __WasmbanActionExport
        {
            type Handler = $crate::ActionAdapter<$ty>;
        }
        $crate::wit::action_world::export_action_world!(
            __WasmbanActionExport with_types_in $crate::wit::action_world
        );
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "wasmban:sdk-version")]
        #[used]
        static __WASMBAN_SDK_VERSION: [u8; $crate::SDK_VERSION.len()] = $crate::SDK_VERSION_BYTES;
    };
}

/// Export an [`Ignore`] implementation as this component's judge.
#[macro_export]
macro_rules! export_ignore {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WasmbanIgnoreExport;
        impl $crate::wit::ignore_world::exports::wasmban::plugin::ignore::Guest for __WasmbanIgnoreExport {
            type Judge = $crate::IgnoreAdapter<$ty>;
        }
        $crate::wit::ignore_world::export_ignore_world!(
            __WasmbanIgnoreExport with_types_in $crate::wit::ignore_world
        );
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "wasmban:sdk-version")]
        #[used]
        static __WASMBAN_SDK_VERSION: [u8; $crate::SDK_VERSION.len()] = $crate::SDK_VERSION_BYTES;
    };
}

/// Write to the daemon log; the host tags every message with the plugin.
pub mod log {
    use crate::wit::filter_world::wasmban::plugin::log as imp;
    /// Log at debug level.
    pub fn debug(message: &str) {
        imp::log(imp::Level::Debug, message)
    }
    /// Log at info level.
    pub fn info(message: &str) {
        imp::log(imp::Level::Info, message)
    }
    /// Log at warning level.
    pub fn warn(message: &str) {
        imp::log(imp::Level::Warn, message)
    }
    /// Log at error level.
    pub fn error(message: &str) {
        imp::log(imp::Level::Error, message)
    }
}

/// Run firewall programs (actions only; the grant names the programs).
pub mod firewall {
    use crate::wit::action_world::wasmban::plugin::firewall as imp;
    pub use crate::wit::action_world::wasmban::plugin::firewall::Output;
    /// Run `program` with `args`, killed after `timeout_ms`.
    pub fn run(program: &str, args: &[String], timeout_ms: u32) -> Result<Output, String> {
        imp::run(program, args, timeout_ms)
    }
    /// Run `program` with `input` on its standard input.
    pub fn run_with_input(program: &str, args: &[String], input: &str, timeout_ms: u32) -> Result<Output, String> {
        imp::run_with_input(program, args, input, timeout_ms)
    }
}

/// Send mail through the admin's relay (actions only, when granted).
pub mod mail {
    pub use crate::wit::action_world::wasmban::plugin::mail::{Message, Part};
    /// Send one message.
    pub fn send(message: &Message) -> Result<(), String> {
        crate::wit::action_world::wasmban::plugin::mail::send(message)
    }
    /// Send one message with text parts after its body and `X-` headers.
    pub fn send_parts(message: &Message, parts: &[Part], x_headers: &[(String, String)]) -> Result<(), String> {
        crate::wit::action_world::wasmban::plugin::mail::send_parts(message, parts, x_headers)
    }
}

/// Abuse contacts of an address, as fail2ban's complain and X-ARF actions
/// find them: the TXT record of `<ip-rev>abuse-contacts.abusix.org` (when
/// granted `dns`).
pub mod abuse {
    /// Recipients one report goes to at most (the mail capability's limit).
    pub const MOST_RECIPIENTS: usize = 20;

    /// The name whose TXT record lists `ip`'s contacts: `resolver` with
    /// `<ip-rev>` filled in.
    pub fn question(resolver: &str, ip: &str) -> Option<String> {
        Some(resolver.replace("<ip-rev>", &crate::classic::reverse_name(ip)?))
    }

    /// The mail addresses in TXT records (`a@x.org, b@y.net`), valid ones
    /// only: nothing that could become a header or a second recipient.
    pub fn parse(records: &[String]) -> Vec<String> {
        let valid = |text: &str| {
            text.len() <= 254
                && text.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>' | '"'))
        };
        let mut contacts: Vec<String> =
            records.iter().flat_map(|r| r.split(',')).map(|c| c.trim().to_string()).filter(|c| valid(c)).collect();
        contacts.dedup();
        contacts.truncate(MOST_RECIPIENTS);
        contacts
    }

    /// `ip`'s abuse contacts, asked of DNS; empty when it has none.
    pub fn contacts(resolver: &str, ip: &str) -> Result<Vec<String>, String> {
        let name = question(resolver, ip).ok_or_else(|| format!("{ip:?} is not an IP address"))?;
        Ok(parse(&crate::dns::txt(&name)?))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn contacts_come_from_the_txt_records_and_only_addresses_pass() {
            let q = super::question("<ip-rev>abuse-contacts.abusix.org", "192.0.2.7");
            assert_eq!(q.as_deref(), Some("7.2.0.192.abuse-contacts.abusix.org"));
            let records = ["abuse@example.net, noc@example.net".to_string(), "x@y.org\nBcc: e@z.org,not one".into()];
            assert_eq!(super::parse(&records), ["abuse@example.net", "noc@example.net"]);
        }
    }
}

/// Whois look-ups (actions only, when granted).
pub mod whois {
    /// The whois report for `address`.
    pub fn lookup(address: &str) -> Result<String, String> {
        crate::wit::action_world::wasmban::plugin::whois::lookup(address)
    }
}

/// HTTP and HTTPS requests to the destinations the grant lists (actions
/// only).
pub mod http {
    pub use crate::wit::action_world::wasmban::plugin::http::{Request, Response};
    /// Send `request`; an error means no answer (refused, unreachable,
    /// timed out), while any HTTP status is an answer.
    pub fn send(request: &Request, timeout_ms: u32) -> Result<Response, String> {
        crate::wit::action_world::wasmban::plugin::http::send(request, timeout_ms)
    }
}

/// DNS lookups through the host's resolver (when granted `dns`).
pub mod dns {
    use crate::wit::action_world::wasmban::plugin::dns as imp;
    /// The names of `address` (PTR); empty when it has none.
    pub fn reverse(address: &str) -> Result<Vec<String>, String> {
        imp::reverse(address)
    }
    /// The addresses of `name` (A and AAAA); empty when it has none.
    pub fn forward(name: &str) -> Result<Vec<String>, String> {
        imp::forward(name)
    }
    /// The TXT records of `name`; empty when it has none.
    pub fn txt(name: &str) -> Result<Vec<String>, String> {
        imp::txt(name)
    }
}

/// What actions check of a ban's id before it reaches a program, a file
/// or a request.
pub mod address {
    /// `ip` is an IP address, or an address with a prefix length its
    /// family allows (`192.0.2.0/24`, `2001:db8::/64`): nothing a filter
    /// produced can pass for an option, a word or a line.
    pub fn check_address_or_prefix(ip: &str) -> Result<(), String> {
        let (addr, len) = ip.split_once('/').unwrap_or((ip, ""));
        let parsed = addr.parse::<std::net::IpAddr>().map_err(|_| format!("{ip:?} is not an IP address"))?;
        let longest = if parsed.is_ipv4() { 32 } else { 128 };
        if !len.is_empty() && len.parse::<u8>().map_or(true, |l| l > longest) {
            return Err(format!("{ip:?} is not an IP address or prefix"));
        }
        Ok(())
    }

    /// What a firewall holds for a ban: an address, or a prefix with its
    /// host bits cleared (`2001:db8::/64`), as the daemon sends prefix
    /// bans and firewalls list them back. IPv4-mapped IPv6 addresses are
    /// their IPv4 address.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct Net {
        /// The address, or the prefix's network address.
        pub addr: std::net::IpAddr,
        /// The prefix length: 32 or 128 for an address.
        pub len: u8,
    }

    impl Net {
        fn width(&self) -> u8 {
            if self.addr.is_ipv4() { 32 } else { 128 }
        }

        /// Whether it is IPv6.
        pub fn is_v6(&self) -> bool {
            self.addr.is_ipv6()
        }

        /// Whether it is a prefix, not one address.
        pub fn is_prefix(&self) -> bool {
            self.len < self.width()
        }

        /// `ip` as an address or `address/length` (1 to the family's
        /// width), the host bits cleared; an error for anything else.
        pub fn parse(ip: &str) -> Result<Net, String> {
            let (addr, len) = match ip.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (ip, None),
            };
            let addr = match addr.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(Into::into).unwrap_or(v6.into()),
                Ok(v4) => v4,
                Err(_) => return Err(format!("{ip:?} is not an IP address or prefix")),
            };
            let width = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                None => width,
                Some(l) => Some(l)
                    .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|l| l.parse::<u8>().ok())
                    .filter(|l| *l <= width && *l > 0)
                    .ok_or_else(|| format!("{ip:?}: a prefix length must be 1 to {width}"))?,
            };
            let bits: u128 = match addr {
                std::net::IpAddr::V4(a) => u32::from(a).into(),
                std::net::IpAddr::V6(a) => a.into(),
            };
            let kept = bits >> (width - len) << (width - len);
            let addr = match addr {
                std::net::IpAddr::V4(_) => std::net::IpAddr::V4((kept as u32).into()),
                std::net::IpAddr::V6(_) => std::net::IpAddr::V6(kept.into()),
            };
            Ok(Net { addr, len })
        }
    }

    /// The IANA number (/etc/protocols) of a protocol a jail names (`tcp`,
    /// `udp`, ... or a number).
    pub fn protocol_number(name: &str) -> Option<u8> {
        let number = match name.trim().to_ascii_lowercase().as_str() {
            "icmp" => 1,
            "tcp" => 6,
            "udp" => 17,
            "ipv6-icmp" | "icmpv6" => 58,
            "sctp" => 132,
            "udplite" => 136,
            other => return other.parse().ok(),
        };
        Some(number)
    }

    /// Whether a ban's id is a prefix ban (`2001:db8::/64`): services that
    /// take reports of single addresses are not sent those.
    pub fn is_prefix(ip: &str) -> bool {
        Net::parse(ip).is_ok_and(|net| net.is_prefix())
    }

    impl std::str::FromStr for Net {
        type Err = String;
        fn from_str(text: &str) -> Result<Net, String> {
            Net::parse(text)
        }
    }

    impl std::fmt::Display for Net {
        /// The address alone for one address; `network/length` otherwise.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.is_prefix() { write!(f, "{}/{}", self.addr, self.len) } else { write!(f, "{}", self.addr) }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::Net;

        #[test]
        fn nets_are_canonical_and_nothing_else_parses() {
            assert_eq!(Net::parse("::ffff:192.0.2.1").unwrap().to_string(), "192.0.2.1");
            assert_eq!(Net::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
            assert_eq!(Net::parse("2001:db8::7/128").unwrap().to_string(), "2001:db8::7");
            assert!(Net::parse("2001:db8:0:7::9/64").unwrap().is_prefix());
            for bad in ["10.0.0.0/0", "10.0.0.0/33", "1.2.3.4 } ; flush", "1.2.3.4/8 }", "-exist", "1.2.3.4/+8"] {
                assert!(Net::parse(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn addresses_and_prefixes_pass_and_nothing_else() {
            for ok in ["192.0.2.7", "2001:db8::7", "192.0.2.0/24", "2001:db8::/64"] {
                assert!(super::check_address_or_prefix(ok).is_ok(), "{ok}");
            }
            for bad in ["-j", "192.0.2.7 to any", "192.0.2.0/33", "2001:db8::/129", "any", "192.0.2.0/x"] {
                assert!(super::check_address_or_prefix(bad).is_err(), "{bad}");
            }
        }
    }
}

/// Dates that reports and mails carry.
pub mod time {
    /// A unix time as UTC `(year, month, day, hour, minute, second)`.
    pub fn utc_parts(time: i64) -> (i64, i64, i64, i64, i64, i64) {
        let (days, rem) = (time.div_euclid(86400), time.rem_euclid(86400));
        // Howard Hinnant's days-to-civil.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn unix_times_are_civil_utc() {
            assert_eq!(super::utc_parts(0), (1970, 1, 1, 0, 0, 0));
            assert_eq!(super::utc_parts(1_709_251_199), (2024, 2, 29, 23, 59, 59));
            assert_eq!(super::utc_parts(-1), (1969, 12, 31, 23, 59, 59));
        }
    }
}

/// Encodings that reporting actions need for the bodies they send.
pub mod encode {
    /// `application/x-www-form-urlencoded` of `pairs`.
    pub fn form(pairs: &[(&str, &str)]) -> String {
        let escape = |text: &str| {
            let mut out = String::with_capacity(text.len());
            for byte in text.bytes() {
                match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(byte as char),
                    b' ' => out.push('+'),
                    _ => out.push_str(&format!("%{byte:02X}")),
                }
            }
            out
        };
        pairs.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
    }

    /// `text` as a JSON string, quotes included.
    pub fn json_string(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn forms_and_json_strings_escape_what_they_must() {
            assert_eq!(
                super::form(&[("ip", "2001:db8::1"), ("comment", "a b&c=d\n")]),
                "ip=2001%3Adb8%3A%3A1&comment=a+b%26c%3Dd%0A"
            );
            assert_eq!(super::json_string("say \"hi\"\\\n\u{1}"), "\"say \\\"hi\\\"\\\\\\n\\u0001\"");
        }
    }
}

/// Whole-line changes to the files the grant names (`files = [...]`), each
/// atomic and locked (see the `file` interface in capabilities.wit).
pub mod file {
    use crate::wit::action_world::wasmban::plugin::file as imp;
    /// Add each of `lines` at the end unless it is there; how many were.
    pub fn add_lines(path: &str, lines: &[String]) -> Result<u32, String> {
        imp::add_lines(path, lines)
    }
    /// Remove every line equal to one of `lines`; how many there were.
    pub fn remove_lines(path: &str, lines: &[String]) -> Result<u32, String> {
        imp::remove_lines(path, lines)
    }
    /// The file's lines; empty when it does not exist.
    pub fn read_lines(path: &str) -> Result<Vec<String>, String> {
        imp::read_lines(path)
    }
    /// Make the file hold exactly `lines`.
    pub fn write_lines(path: &str, lines: &[String]) -> Result<(), String> {
        imp::write_lines(path, lines)
    }
    /// Remove the file; done when it does not exist.
    pub fn remove(path: &str) -> Result<(), String> {
        imp::remove(path)
    }
    /// One write of `text` to a kernel control file that exists.
    pub fn write_control(path: &str, text: &str) -> Result<(), String> {
        imp::write_control(path, text)
    }
}

/// Shell command lines (fail2ban's classic actions only, when granted).
pub mod shell {
    pub use crate::wit::action_world::wasmban::plugin::firewall::Output;
    /// Run `command` with `/bin/sh -c`, killed after `timeout_ms`.
    pub fn run(command: &str, timeout_ms: u32) -> Result<Output, String> {
        crate::wit::action_world::wasmban::plugin::shell::run(command, timeout_ms)
    }
}
