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

/// fail2ban's stock firewall actions, with the built-in component that
/// carries each out and the `type` it gets, so that an unchanged fail2ban
/// configuration bans without running shell commands. The iptables
/// component builds the same chains and rules; the nftables one keeps the
/// ports, protocols, hook, priority and blocktype in a table of its own per
/// jail (see plugins/nftables).
const STOCK_FIREWALL: &[(&str, &str, &str)] = &[
    ("iptables", "iptables", "oneport"),
    ("iptables-multiport", "iptables", "multiport"),
    ("iptables-allports", "iptables", "allports"),
    ("nftables", "nftables", "multiport"),
    ("nftables-multiport", "nftables", "multiport"),
    ("nftables-allports", "nftables", "allports"),
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
    /// built-in component (see [`STOCK_FIREWALL`]).
    pub stock_equivalent: bool,
}

impl ActionDefinition {
    /// The action `NAME` of `confdir`, with `params` from the jail's action
    /// line and the jail's options `jail`.
    pub fn load(confdir: &Path, name: &str, params: &[(String, String)], jail: &Vars) -> Result<Self, ConfigError> {
        let files = require_layered_files("action", name, &confdir.join("action.d").join(name))?;
        let ini = Ini::read(&files)?;
        let params: Vars = params.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
        let mut vars = jail.clone();
        vars.extend(params.clone());
        let mut options = combine_definition(&ini, ACTION_OPTIONS, &params, &vars, Given::ParamsOnly, PER_BAN_TAGS)?;
        // Only the untouched stock file: a `.local` may have changed its
        // commands, and those must then run as written.
        let untouched = !ini.files.iter().any(|f| f.extension().is_some_and(|e| e == "local"));
        let stock = STOCK_FIREWALL.iter().find(|(stock, ..)| *stock == name);
        let mut stock_equivalent = false;
        if let (None, Some((_, plugin, kind)), true) = (options.get("plugin"), stock, untouched) {
            options.insert("plugin".into(), plugin.to_string());
            options.entry("type".into()).or_insert_with(|| kind.to_string());
            stock_equivalent = true;
        }
        let name = params.get("actname").cloned().unwrap_or_else(|| name.to_string());
        Ok(ActionDefinition { name, files: ini.files, options, stock_equivalent })
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
}
