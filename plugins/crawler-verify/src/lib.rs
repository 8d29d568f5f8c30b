//! Verifies search-engine crawlers with DNS only, as search engines say to
//! verify them: the address's name (reverse lookup) must end in one of the
//! engine's domains, and that name must resolve back to the address
//! (forward lookup), so that a PTR record an attacker controls proves
//! nothing. An address that passes is ignored: fail2ban's
//! `apache-fakegooglebot` ignorecommand, without the shell.

use wasmban_plugin_sdk::{Failure, Ignore, Options};

/// Googlebot's domains, the default (what fail2ban's script accepts).
pub const GOOGLE: &str = "google.com googlebot.com";

/// One jail's verifier.
pub struct CrawlerVerify {
    domains: Vec<String>,
}

impl CrawlerVerify {
    /// From the option `domains` (space- or comma-separated; default
    /// Google's).
    pub fn from_options(options: &Options) -> Result<Self, String> {
        let domains: Vec<String> = options
            .get_or("domains", GOOGLE)
            .split([' ', ',', '\n'])
            .map(|d| d.trim().trim_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        if domains.is_empty() {
            return Err("option `domains` is empty: name the crawler's domains, such as googlebot.com".into());
        }
        if let Some(bad) = domains
            .iter()
            .find(|d| !d.contains('.') || d.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')))
        {
            return Err(format!("option `domains`: {bad:?} is not a domain name"));
        }
        Ok(CrawlerVerify { domains })
    }

    /// Whether `name` is in one of the domains (the domain itself or a
    /// name under it).
    pub fn in_domains(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|d| name.ends_with(&format!(".{d}")))
    }

    /// Whether `ip` is the crawler: some name of it in the domains
    /// resolves back to it.
    pub fn verify(
        &self,
        ip: &str,
        reverse: impl Fn(&str) -> Result<Vec<String>, String>,
        forward: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<bool, String> {
        let canonical = ip.parse::<std::net::IpAddr>().map_err(|_| format!("{ip:?} is not an IP address"))?;
        for name in reverse(ip)?.iter().filter(|n| self.in_domains(n)) {
            let back = forward(name)?;
            if back.iter().any(|a| a.parse::<std::net::IpAddr>().is_ok_and(|a| a == canonical)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Ignore for CrawlerVerify {
    fn new(options: Options) -> Result<Self, String> {
        CrawlerVerify::from_options(&options)
    }
    fn ignore(&mut self, ip: &str, _failure: &Failure) -> Result<bool, String> {
        self.verify(ip, wasmban_plugin_sdk::dns::reverse, wasmban_plugin_sdk::dns::forward)
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_ignore!(CrawlerVerify);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crawler_is_one_when_its_name_resolves_back_to_it() {
        let v = CrawlerVerify::from_options(&Options::new(Vec::new())).unwrap();
        let reverse = |ip: &str| -> Result<Vec<String>, String> {
            Ok(match ip {
                "66.249.66.1" => vec!["crawl-66-249-66-1.googlebot.com".into()],
                // Its own PTR record claims Google's name...
                "192.0.2.66" => vec!["crawl-66-249-66-1.googlebot.com".into()],
                "192.0.2.7" => vec!["evilgooglebot.com".into()],
                _ => Vec::new(),
            })
        };
        // ...which resolves to Google's address, not to it.
        let forward = |name: &str| -> Result<Vec<String>, String> {
            Ok(if name == "crawl-66-249-66-1.googlebot.com" {
                vec!["66.249.66.1".into()]
            } else {
                vec!["192.0.2.7".into()]
            })
        };
        assert_eq!(v.verify("66.249.66.1", reverse, forward), Ok(true));
        assert_eq!(v.verify("192.0.2.66", reverse, forward), Ok(false));
        assert_eq!(v.verify("192.0.2.7", reverse, forward), Ok(false), "not under googlebot.com");
        assert_eq!(v.verify("192.0.2.8", reverse, forward), Ok(false), "no name");
        let timeout = |_: &str| -> Result<Vec<String>, String> { Err("timed out".into()) };
        assert!(v.verify("66.249.66.1", timeout, forward).is_err());
        let bing =
            CrawlerVerify::from_options(&Options::new(vec![("domains".into(), "search.msn.com".into())])).unwrap();
        assert!(bing.in_domains("msnbot-157-55-39-1.search.msn.com.") && !bing.in_domains("googlebot.com"));
        assert!(CrawlerVerify::from_options(&Options::new(vec![("domains".into(), "not a domain".into())])).is_err());
    }
}
