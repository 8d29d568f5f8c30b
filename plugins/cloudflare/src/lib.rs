//! fail2ban's `cloudflare` and `cloudflare-token` actions as a component:
//! a ban is a Cloudflare IP access rule (`mode` block, target `ip` or
//! `ip6`, or `ip_range` for a prefix ban, notes `Fail2Ban <name>`), an unban finds the rule by address and
//! notes and deletes it. `cloudflare` uses the account-wide rules with the
//! legacy e-mail and global key (`cfuser`, `cftoken`); `cloudflare-token`
//! a zone's rules (`cfzone`) with an API token (`cftoken`).
//!
//! It can only reach api.cloudflare.com (its grant).

use wasmban_plugin_sdk::http::Request;
use wasmban_plugin_sdk::{Action, Options, Ticket, encode, http, log};

/// How the API is addressed.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Account rules, `X-Auth-Email` and `X-Auth-Key`.
    Legacy { user: String, key: String },
    /// A zone's rules, `Authorization: Bearer`.
    Token { zone: String, token: String },
}

/// The settings of one jail's cloudflare action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub auth: Auth,
    pub mode: String,
    pub notes: String,
    pub api: String,
    pub timeout_ms: u32,
}

fn value(options: &Options, key: &str) -> String {
    options.get_or(key, "").trim().to_string()
}

fn header_safe(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.contains(['\r', '\n']) {
        return Err(format!("{key} is empty: set it for the cloudflare action in jail.local"));
    }
    Ok(())
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let auth = match options.get_or("api", "user") {
            "user" => {
                let (user, key) = (value(options, "cfuser"), value(options, "cftoken"));
                header_safe("cfuser", &user)?;
                header_safe("cftoken", &key)?;
                Auth::Legacy { user, key }
            }
            "zone" => {
                let (zone, token) = (value(options, "cfzone"), value(options, "cftoken"));
                header_safe("cftoken", &token)?;
                if zone.is_empty() || !zone.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(format!(
                        "cfzone = {zone:?}: give the zone's id (32 hex digits, from its overview page)"
                    ));
                }
                Auth::Token { zone, token }
            }
            other => return Err(format!("option `api` = {other:?}: expected user or zone")),
        };
        let mode = options.get_or("cfmode", "block").trim().to_string();
        if !matches!(mode.as_str(), "block" | "challenge" | "js_challenge" | "managed_challenge" | "whitelist") {
            return Err(format!("cfmode = {mode:?}: expected block, challenge, js_challenge or managed_challenge"));
        }
        let name = options.get_or("name", "default");
        let notes = options.get("notes").map(str::to_string).unwrap_or_else(|| format!("Fail2Ban {name}"));
        let api = options.get_or("url", "https://api.cloudflare.com/client/v4").trim_end_matches('/').to_string();
        let timeout_ms = options.millis("timeout", 15_000)?;
        Ok(Plan { auth, mode, notes, api, timeout_ms })
    }

    fn rules_url(&self) -> String {
        match &self.auth {
            Auth::Legacy { .. } => format!("{}/user/firewall/access_rules/rules", self.api),
            Auth::Token { zone, .. } => format!("{}/zones/{zone}/firewall/access_rules/rules", self.api),
        }
    }

    fn request(&self, method: &str, url: String, body: String) -> Request {
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        match &self.auth {
            Auth::Legacy { user, key } => {
                headers.push(("X-Auth-Email".into(), user.clone()));
                headers.push(("X-Auth-Key".into(), key.clone()));
            }
            Auth::Token { token, .. } => headers.push(("Authorization".into(), format!("Bearer {token}"))),
        }
        Request { method: method.into(), url, headers, body }
    }

    /// The rule of a ban of `ip`.
    pub fn create(&self, ip: &str) -> Request {
        let body = format!(
            "{{\"mode\":{},\"configuration\":{{\"target\":\"{}\",\"value\":{}}},\"notes\":{}}}",
            encode::json_string(&self.mode),
            target(ip),
            encode::json_string(ip),
            encode::json_string(&self.notes)
        );
        self.request("POST", self.rules_url(), body)
    }

    /// The search for the rule of `ip`.
    pub fn find(&self, ip: &str) -> Request {
        let query = encode::form(&[
            ("mode", &self.mode),
            ("configuration.target", target(ip)),
            ("configuration.value", ip),
            ("notes", &self.notes),
            ("page", "1"),
            ("per_page", "5"),
        ]);
        self.request("GET", format!("{}?{query}", self.rules_url()), String::new())
    }

    pub fn delete(&self, id: &str) -> Request {
        self.request("DELETE", format!("{}/{id}", self.rules_url()), "{\"cascade\":\"none\"}".into())
    }
}

/// The rule's target: `ip` or `ip6` for an address, `ip_range` for a
/// prefix ban.
fn target(ip: &str) -> &'static str {
    match (ip.contains('/'), ip.contains(':')) {
        (true, _) => "ip_range",
        (false, true) => "ip6",
        (false, false) => "ip",
    }
}

/// The ids of the rules an answer lists that are exactly this ban's.
fn rule_ids(answer: &str, ip: &str, notes: &str) -> Result<Vec<String>, String> {
    let json: serde_json::Value =
        serde_json::from_str(answer).map_err(|e| format!("Cloudflare's answer is not JSON: {e}"))?;
    let Some(result) = json.get("result").and_then(|r| r.as_array()) else {
        return Err(format!("Cloudflare's answer has no result: {}", answer.chars().take(300).collect::<String>()));
    };
    Ok(result
        .iter()
        .filter(|rule| rule["configuration"]["value"] == ip && rule["notes"] == notes)
        .filter_map(|rule| rule["id"].as_str())
        // An id goes into the URL: Cloudflare's are hex.
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .collect())
}

/// An address, or a prefix of a length Cloudflare's `ip_range` rules take
/// (/16 or /24 for IPv4, /32, /48 or /64 for IPv6).
fn checked_address(ip: &str) -> Result<(), String> {
    let net = wasmban_plugin_sdk::address::Net::parse(ip)?;
    let allowed: &[u8] = if net.is_v6() { &[32, 48, 64] } else { &[16, 24] };
    if net.is_prefix() && !allowed.contains(&net.len) {
        return Err(format!(
            "{ip}: Cloudflare's IP access rules take ranges of /16 or /24 (IPv4) and /32, /48 or /64 (IPv6) only; \
             set the jail's banprefix4/banprefix6 to one of those"
        ));
    }
    Ok(())
}

pub struct Cloudflare {
    plan: Plan,
}

impl Cloudflare {
    fn send(&self, request: &Request) -> Result<http::Response, String> {
        let response = http::send(request, self.plan.timeout_ms)?;
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(format!(
                "Cloudflare answered HTTP {} to {} {}: {}",
                response.status,
                request.method,
                request.url.split('?').next().unwrap_or_default(),
                response.body.chars().take(300).collect::<String>()
            ))
        }
    }
}

impl Action for Cloudflare {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Cloudflare { plan: Plan::from_options(&options)? })
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        checked_address(&ticket.ip)?;
        match self.send(&self.plan.create(&ticket.ip)) {
            Ok(_) => Ok(()),
            // A rule for the address is there already (restored at start).
            Err(e) if e.contains("already exists") || e.contains("\"code\":10009") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        checked_address(&ticket.ip)?;
        let answer = self.send(&self.plan.find(&ticket.ip))?;
        let ids = rule_ids(&answer.body, &ticket.ip, &self.plan.notes)?;
        if ids.is_empty() {
            log::info(&format!(
                "no Cloudflare rule for {} with notes {:?}: lifted already",
                ticket.ip, self.plan.notes
            ));
        }
        for id in ids {
            self.send(&self.plan.delete(&id))?;
        }
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Cloudflare);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn requests_are_cloudflares() {
        let p = plan(&[("cfuser", "me@example.org"), ("cftoken", "k"), ("name", "sshd")]).unwrap();
        let r = p.create("2001:db8::7");
        assert_eq!(r.url, "https://api.cloudflare.com/client/v4/user/firewall/access_rules/rules");
        assert_eq!(
            r.body,
            r#"{"mode":"block","configuration":{"target":"ip6","value":"2001:db8::7"},"notes":"Fail2Ban sshd"}"#
        );
        assert!(r.headers.contains(&("X-Auth-Email".into(), "me@example.org".into())));
        let p = plan(&[("api", "zone"), ("cfzone", "0123abcd"), ("cftoken", "t"), ("name", "sshd")]).unwrap();
        let r = p.find("192.0.2.7");
        assert!(r.url.starts_with("https://api.cloudflare.com/client/v4/zones/0123abcd/firewall/access_rules/rules?mode=block&configuration.target=ip&configuration.value=192.0.2.7&notes=Fail2Ban+sshd"), "{}", r.url);
        assert!(r.headers.contains(&("Authorization".into(), "Bearer t".into())));
        let r = p.create("2001:db8:0:7::/64");
        assert!(r.body.contains(r#""target":"ip_range","value":"2001:db8:0:7::/64""#), "{}", r.body);
    }

    #[test]
    fn prefixes_are_ranges_of_the_lengths_cloudflare_takes() {
        for ok in ["192.0.2.7", "192.0.2.0/24", "10.1.0.0/16", "2001:db8::/32", "2001:db8:0:7::/64"] {
            assert!(checked_address(ok).is_ok(), "{ok}");
        }
        for bad in ["192.0.2.0/25", "2001:db8::/56", "range", "192.0.2.0/24 x"] {
            assert!(checked_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_this_bans_rules_are_deleted() {
        let answer = r#"{"success":true,"result":[
            {"id":"92f17202ed8bd63d69a66b86a49a8f6b","notes":"Fail2Ban sshd","configuration":{"target":"ip","value":"192.0.2.7"}},
            {"id":"aaaa","notes":"the admin's","configuration":{"target":"ip","value":"192.0.2.7"}},
            {"id":"../../zones","notes":"Fail2Ban sshd","configuration":{"target":"ip","value":"192.0.2.7"}}]}"#;
        assert_eq!(rule_ids(answer, "192.0.2.7", "Fail2Ban sshd").unwrap(), ["92f17202ed8bd63d69a66b86a49a8f6b"]);
        assert!(rule_ids("<html>", "192.0.2.7", "x").is_err());
    }

    #[test]
    fn missing_credentials_are_said_at_once() {
        assert!(plan(&[("cftoken", "k")]).unwrap_err().contains("cfuser"));
        assert!(plan(&[("api", "zone"), ("cftoken", "k")]).unwrap_err().contains("cfzone"));
        assert!(plan(&[("cfuser", "u"), ("cftoken", "k\r\nX-Evil: 1")]).is_err());
    }
}
