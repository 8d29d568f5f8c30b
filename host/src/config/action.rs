//! An action definition (`action.d/NAME.conf` + `.local`) resolved the way
//! fail2ban resolves it for a jail: `[Definition]` interpolated with the
//! jail's options and the action's parameters, `[Init]` and parameters
//! combined over it, `<tag>` substitution except the tags filled per ban
//! and the conditional ones (`blocktype?family=inet6`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::config::ini::{Ini, require_layered_files};
use crate::config::interp::{Given, Vars, combine_definition};

/// The `[Definition]` options of a classic (command) action, and `plugin`.
pub const ACTION_OPTIONS: &[&str] = &[
    "actionstart",
    "actionstart_on_demand",
    "actionstop",
    "actionflush",
    "actionreload",
    "actioncheck",
    "actionreban",
    "actionban",
    "actionprolong",
    "actionunban",
    "actionrepair",
    "actionrepair_on_unban",
    "norestored",
    "plugin",
];

/// fail2ban's stock actions that built-in components carry out, with the
/// component and the options it gets, so that an unchanged fail2ban
/// configuration bans and notifies without running shell commands. The
/// iptables component builds the same chains and rules; the nftables one
/// keeps the ports, protocols, hook, priority and blocktype in a table of
/// its own per jail (see plugins/nftables); every mail action is an
/// option of mail-whois (GeoIP through geoiplookup); iptables-ipset makes the same
/// sets and jump rules as fail2ban's ipset files; route makes the same
/// routes through `ip route` only; ufw makes the same ufw rules; firewalld
/// the same direct chains, ipset rules and rich rules through firewall-cmd;
/// shorewall the same dynamic blacklist entries; hostsdeny the same lines
/// and iptables-recent the same xt_recent lists, nginx-block-map the same
/// map lines and symbiosis the same blacklist files, through the `file`
/// capability; abuseipdb, cloudflare, ipthreat, mynetwatchman and
/// blocklist-de the same
/// API calls, each to its API's host only; complain the same complaint to
/// the abuse contacts DNS gives, xarf the same in X-ARF; dshield
/// the same buffered DShield reports; apf the same deny entries through
/// the apf program; apprise the same notifications through
/// the apprise program;
/// mail-whois sends the ban mail
/// with the whois report (and the log lines for the `-lines` variants).
/// A stock action file's name, its component, and the options it gets.
type StockEquivalent = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

const STOCK_EQUIVALENTS: &[StockEquivalent] = &[
    ("iptables", "iptables", &[("type", "oneport")]),
    ("iptables-multiport", "iptables", &[("type", "multiport")]),
    ("iptables-allports", "iptables", &[("type", "allports")]),
    ("iptables-new", "iptables", &[("type", "oneport"), ("pre-rule", "-m state --state NEW")]),
    ("iptables-multiport-log", "iptables", &[("type", "multiport"), ("log", "yes")]),
    // fail2ban 1.0's proto4 file speaks ipset 4's syntax; the component
    // speaks today's, to the same sets.
    ("iptables-ipset", "iptables-ipset", &[("type", "oneport")]),
    ("iptables-ipset-proto4", "iptables-ipset", &[("type", "oneport")]),
    ("iptables-ipset-proto6", "iptables-ipset", &[("type", "multiport")]),
    ("iptables-ipset-proto6-allports", "iptables-ipset", &[("type", "allports")]),
    // The set only: the admin's shorewall blrules match it.
    ("shorewall-ipset-proto6", "iptables-ipset", &[("rules", "no")]),
    ("route", "route", &[]),
    ("ufw", "ufw", &[]),
    ("shorewall", "shorewall", &[]),
    ("hostsdeny", "hostsdeny", &[]),
    ("iptables-xt_recent-echo", "iptables-recent", &[]),
    ("nginx-block-map", "nginx-block-map", &[]),
    ("symbiosis-blacklist-allports", "symbiosis", &[]),
    ("abuseipdb", "abuseipdb", &[]),
    ("cloudflare", "cloudflare", &[("api", "user")]),
    ("cloudflare-token", "cloudflare", &[("api", "zone")]),
    ("ipthreat", "ipthreat", &[]),
    ("mynetwatchman", "mynetwatchman", &[]),
    ("complain", "complain", &[]),
    ("dshield", "dshield", &[]),
    ("xarf-login-attack", "xarf", &[]),
    ("apprise", "apprise", &[]),
    ("apf", "apf", &[]),
    ("blocklist_de", "blocklist-de", &[]),
    ("nsupdate", "nsupdate", &[]),
    ("firewallcmd-multiport", "firewalld", &[("kind", "multiport")]),
    ("firewallcmd-allports", "firewalld", &[("kind", "allports")]),
    ("firewallcmd-new", "firewalld", &[("kind", "new")]),
    ("firewallcmd-ipset", "firewalld", &[("kind", "ipset")]),
    ("firewallcmd-rich-rules", "firewalld", &[("kind", "rich-rules")]),
    ("firewallcmd-rich-logging", "firewalld", &[("kind", "rich-logging")]),
    ("nftables", "nftables", &[("type", "multiport")]),
    ("nftables-multiport", "nftables", &[("type", "multiport")]),
    ("nftables-allports", "nftables", &[("type", "allports")]),
    ("mail-whois", "mail-whois", &[("lines", "no")]),
    ("mail-whois-lines", "mail-whois", &[("lines", "yes")]),
    ("sendmail-whois", "mail-whois", &[("lines", "no")]),
    ("sendmail-whois-lines", "mail-whois", &[("lines", "yes")]),
    ("mail", "mail-whois", &[("whois", "no")]),
    ("sendmail", "mail-whois", &[("whois", "no")]),
    ("sendmail-common", "mail-whois", &[("whois", "no"), ("bans", "no")]),
    ("mail-buffered", "mail-whois", &[("whois", "no"), ("buffer", "yes")]),
    ("sendmail-buffered", "mail-whois", &[("whois", "no"), ("buffer", "yes")]),
    ("sendmail-whois-matches", "mail-whois", &[("matches", "ticket")]),
    ("sendmail-whois-ipmatches", "mail-whois", &[("matches", "ip")]),
    ("sendmail-whois-ipjailmatches", "mail-whois", &[("matches", "ipjail")]),
    ("sendmail-geoip-lines", "mail-whois", &[("whois", "no"), ("geoip", "yes"), ("matches", "ticket")]),
];

/// Tags filled at ban time, never at load time.
const PER_BAN_TAGS: &[&str] = &["matches", "ipmatches", "ipjailmatches", "timeout", "bantime"];

/// A resolved action.
#[derive(Debug, Clone)]
pub struct ActionDefinition {
    /// Its name (file stem), or `actname=` when given.
    pub name: String,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// Every combined option after interpolation and tag substitution.
    pub options: BTreeMap<String, String>,
    /// Whether this is a stock fail2ban firewall action given to a
    /// built-in component (see [`STOCK_EQUIVALENTS`]).
    pub stock_equivalent: bool,
}

impl ActionDefinition {
    /// The action `NAME` of `confdir`, with `params` from the jail's action
    /// line and the jail's options `jail`.
    pub fn load(confdir: &Path, name: &str, params: &[(String, String)], jail: &Vars) -> Result<Self, ConfigError> {
        if let Some(module) = name.strip_suffix(".py") {
            return Self::python(confdir, name, module, params, jail);
        }
        let files = require_layered_files("action", name, &confdir.join("action.d").join(name))?;
        let ini = Ini::read(&files)?;
        let params: Vars = params.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
        let mut vars = jail.clone();
        vars.extend(params.clone());
        // fail2ban's built-in tags for this machine's name.
        let host = crate::capability::mail::hostname();
        vars.entry("fq-hostname".into()).or_insert_with(|| host.clone());
        vars.entry("hostname".into()).or_insert(host);
        let mut options = combine_definition(&ini, ACTION_OPTIONS, &params, &vars, Given::ParamsOnly, PER_BAN_TAGS)?;
        // Only the untouched stock file: a `.local` may have changed its
        // commands, and those must then run as written.
        let untouched = !ini.files.iter().any(|f| f.extension().is_some_and(|e| e == "local"));
        let stock = STOCK_EQUIVALENTS.iter().find(|(stock, ..)| *stock == name);
        let mut stock_equivalent = false;
        if let (None, Some((_, plugin, given)), true) = (options.get("plugin"), stock, untouched) {
            options.insert("plugin".into(), plugin.to_string());
            for (key, value) in given.iter() {
                options.entry(key.to_string()).or_insert_with(|| value.to_string());
            }
            if matches!(*plugin, "mail-whois" | "apprise" | "xarf" | "dshield") {
                options.entry("host".into()).or_insert_with(crate::capability::mail::hostname);
            }
            stock_equivalent = true;
        }
        let name = params.get("actname").cloned().unwrap_or_else(|| name.to_string());
        Ok(ActionDefinition { name, files: ini.files, options, stock_equivalent })
    }

    /// A fail2ban Python action (`action = smtp.py[...]`). wasmban runs no
    /// Python from action.d: fail2ban's smtp.py is carried out by the
    /// mail-whois component with the same options, and any other is
    /// refused with what to do instead.
    fn python(
        confdir: &Path,
        name: &str,
        module: &str,
        params: &[(String, String)],
        jail: &Vars,
    ) -> Result<Self, ConfigError> {
        let file = confdir.join("action.d").join(name);
        if !file.is_file() {
            return Err(ConfigError::NotFound {
                kind: "action",
                name: name.to_string(),
                looked: file.display().to_string(),
            });
        }
        let refuse = |option: &str, message: String| ConfigError::Value {
            where_: file.display().to_string(),
            section: "action".into(),
            option: option.into(),
            message,
        };
        if module != "smtp" {
            return Err(refuse(
                name,
                "fail2ban's Python actions do not run in wasmban; build the action as a component (Python works, \
                 docs/plugins.md) and name it with `plugin =` in an action.d file"
                    .into(),
            ));
        }
        let params: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
        let get = |key: &str, default: &str| {
            params.get(key).or(jail.get(key)).map(|v| v.trim().to_string()).unwrap_or_else(|| default.to_string())
        };
        let matches = match get("matches", "").as_str() {
            "" | "none" => "none",
            "matches" => "ticket",
            "ipmatches" => "ip",
            "ipjailmatches" => "ipjail",
            other => {
                return Err(refuse("matches", format!("{other:?}: expected matches, ipmatches or ipjailmatches")));
            }
        };
        // The relay is the daemon's ([mail] in wasmban.conf): smtp.py's own
        // server settings would silently lose their effect, so they are
        // refused, with what to do.
        for key in ["host", "ssl", "user", "password"] {
            if params.contains_key(key) {
                return Err(refuse(
                    key,
                    "wasmban sends mail the way [mail] in wasmban.conf says (transport = sendmail, or smtp \
                     with relay = host:port, a relay that needs no login); set it there and remove this here"
                        .into(),
                ));
            }
        }
        let mut options = BTreeMap::new();
        options.insert("plugin".to_string(), "mail-whois".to_string());
        for (key, value) in [
            ("name", get("name", "default")),
            ("dest", get("dest", "root")),
            ("sender", get("sender", "fail2ban")),
            ("sendername", get("sendername", "Fail2Ban")),
            ("matches", matches.to_string()),
            ("whois", "no".to_string()),
            ("host", crate::capability::mail::hostname()),
        ] {
            options.insert(key.to_string(), value);
        }
        let actname = params.get("actname").cloned().unwrap_or_else(|| name.to_string());
        Ok(ActionDefinition { name: actname, files: vec![file], options, stock_equivalent: true })
    }

    /// The component that runs this action: the one it names, or for a
    /// classic action (shell commands) the built-in `command-action`.
    pub fn plugin(&self) -> Option<&str> {
        match self.options.get("plugin").map(|p| p.trim()).filter(|p| !p.is_empty()) {
            Some(p) => Some(p),
            None if self.is_command_action() => Some("command-action"),
            None => None,
        }
    }

    /// Whether stopping it leaves its bans behind unless each is lifted:
    /// a classic action with an `actionunban` but no `actionflush`, whose
    /// bans fail2ban lifts one by one when the jail stops.
    pub fn unbans_each_at_stop(&self) -> bool {
        let has = |command: &str| {
            self.options
                .iter()
                .any(|(k, v)| k.split('?').next() == Some(command) && !v.trim().is_empty() && !k.starts_with("known/"))
        };
        self.is_command_action() && has("actionunban") && !has("actionflush")
    }

    /// Whether it is a classic action made of shell commands.
    pub fn is_command_action(&self) -> bool {
        self.options.get("plugin").is_none_or(|p| p.trim().is_empty())
            && self.options.keys().any(|k| k.starts_with("action") && k.as_str() != "actname")
    }

    /// The files, for messages.
    pub fn where_(&self) -> String {
        self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// The options a component action is created with.
    pub fn plugin_options(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .filter(|(k, _)| !k.starts_with("known/") && k.as_str() != "plugin")
            // A stock action's shell commands are not the component's business.
            .filter(|(k, _)| !(self.stock_equivalent && k.starts_with("action")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_without_actionflush_lifts_each_ban_at_stop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("action.d")).unwrap();
        let load = |text: &str| {
            std::fs::write(dir.path().join("action.d/a.conf"), text).unwrap();
            ActionDefinition::load(dir.path(), "a", &[], &Vars::new()).unwrap().unbans_each_at_stop()
        };
        assert!(load("[Definition]\nactionban = add <ip>\nactionunban = del <ip>\n"));
        assert!(!load("[Definition]\nactionban = add <ip>\nactionunban = del <ip>\nactionflush = flush\n"));
        assert!(!load("[Definition]\nactionban = mail <ip>\nactionunban =\n"));
    }

    #[test]
    fn params_override_init_and_fill_tags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("action.d")).unwrap();
        std::fs::write(
            dir.path().join("action.d/fw.conf"),
            "[Definition]\nactionban = fw add <chain> <ip> <blocktype>\n[Init]\nchain = INPUT\nblocktype = REJECT\n[Init?family=inet6]\nblocktype = REJECT6\n",
        )
        .unwrap();
        let params = [("chain".to_string(), "FORWARD".to_string())];
        let a = ActionDefinition::load(dir.path(), "fw", &params, &Vars::new()).unwrap();
        // <blocktype> has a family variant: it stays for ban time, as does <ip>.
        assert_eq!(a.options["actionban"], "fw add FORWARD <ip> <blocktype>");
        assert!(a.is_command_action());
    }

    #[test]
    fn the_shipped_mail_action_gets_the_host_name_and_skips_restored_bans() {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let params = [("dest".to_string(), "ops@example.org".to_string())];
        let a = ActionDefinition::load(&config, "mail-whois-lines", &params, &Vars::new()).unwrap();
        assert_eq!(a.plugin(), Some("mail-whois"));
        let options: BTreeMap<String, String> = a.plugin_options().into_iter().collect();
        assert_eq!(options["lines"], "yes");
        assert_eq!(options["dest"], "ops@example.org");
        assert_eq!(options["host"], crate::capability::mail::hostname());
        assert_eq!(a.options["norestored"], "true");
    }

    #[test]
    fn fail2bans_mail_whois_runs_in_the_component() {
        let stock = Path::new("/etc/fail2ban");
        if !stock.join("action.d/mail-whois-lines.conf").is_file() {
            eprintln!("SKIPPED fail2bans_mail_whois_runs_in_the_component: fail2ban is not installed");
            return;
        }
        let a = ActionDefinition::load(stock, "mail-whois-lines", &[], &Vars::new()).unwrap();
        assert_eq!(a.plugin(), Some("mail-whois"));
        let options: BTreeMap<String, String> = a.plugin_options().into_iter().collect();
        assert_eq!((options["lines"].as_str(), options["dest"].as_str()), ("yes", "root"));
        assert!(!options.keys().any(|k| k.starts_with("action")), "{options:?}");
    }

    #[test]
    fn fail2bans_smtp_py_is_the_mail_component_and_other_python_actions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("action.d")).unwrap();
        std::fs::write(dir.path().join("action.d/smtp.py"), "# fail2ban's\n").unwrap();
        std::fs::write(dir.path().join("action.d/badips.py"), "# fail2ban's\n").unwrap();
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let a = ActionDefinition::load(
            dir.path(),
            "smtp.py",
            &params(&[("dest", "ops@example.org"), ("matches", "ipjailmatches"), ("name", "sshd")]),
            &Vars::new(),
        )
        .unwrap();
        assert_eq!(a.plugin(), Some("mail-whois"));
        let options: BTreeMap<String, String> = a.plugin_options().into_iter().collect();
        assert_eq!(
            (options["dest"].as_str(), options["matches"].as_str(), options["whois"].as_str()),
            ("ops@example.org", "ipjail", "no")
        );
        let err =
            ActionDefinition::load(dir.path(), "smtp.py", &params(&[("host", "smtp.example.org:587")]), &Vars::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("host") && err.contains("[mail] in wasmban.conf"), "{err}");
        let err = ActionDefinition::load(dir.path(), "badips.py", &[], &Vars::new()).unwrap_err().to_string();
        assert!(err.contains("as a component"), "{err}");
    }

    #[test]
    fn fail2bans_ipset_actions_run_in_the_component_with_their_timeouts() {
        let stock = Path::new("/etc/fail2ban");
        if !stock.join("action.d/iptables-ipset-proto6.conf").is_file() {
            eprintln!("SKIPPED fail2bans_ipset_actions_run_in_the_component: fail2ban is not installed");
            return;
        }
        for (file, kind) in [
            ("iptables-ipset", "oneport"),
            ("iptables-ipset-proto4", "oneport"),
            ("iptables-ipset-proto6", "multiport"),
            ("iptables-ipset-proto6-allports", "allports"),
        ] {
            let a = ActionDefinition::load(stock, file, &[("name".into(), "sshd".into())], &Vars::new()).unwrap();
            assert_eq!(a.plugin(), Some("iptables-ipset"), "{file}");
            let options: BTreeMap<String, String> = a.plugin_options().into_iter().collect();
            assert_eq!((options["type"].as_str(), options["name"].as_str()), (kind, "sshd"), "{file}");
            assert!(!options.keys().any(|k| k.starts_with("action")), "{file}: {options:?}");
        }
        // fail2ban's way to let the kernel end bans: the expression stays
        // tied to each ban's <bantime>, which the component reads.
        let params = [("ipsettime".to_string(), "<timeout-bantime>".to_string())];
        let a = ActionDefinition::load(stock, "iptables-ipset-proto6", &params, &Vars::new()).unwrap();
        assert!(a.options["ipsettime"].contains("<bantime>"), "{:?}", a.options["ipsettime"]);
    }
}
