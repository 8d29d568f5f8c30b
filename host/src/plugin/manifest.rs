//! A plugin's manifest: where its component is, what it may do, and its
//! limits. Built-in plugins ship one beside their crate
//! (`plugins/NAME/wasmban.toml`); admins write one in `plugin.d/NAME.toml`
//! to install a component or to change a built-in's grants.
//!
//! ```toml
//! file = "webhook.wasm"          # relative to this file; absent: the built-in NAME
//! sha256 = "3f1c..."             # optional pin: loading fails if the file differs
//! description = "POST bans to our chat"
//!
//! [grants]                      # nothing is granted unless named here
//! firewall = ["iptables", "ip6tables"]
//! shell = false
//! http = ["hooks.example.org"]     # host, or host:port
//!
//! [limits]
//! memory-mb = 64
//! call-timeout-ms = 5000
//! ```

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::capability::Grants;

/// What one manifest says.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// One line saying what the plugin does.
    pub description: Option<String>,
    /// The component file, relative to the manifest. Absent: the built-in
    /// plugin of the manifest's name, run with this manifest's grants.
    pub file: Option<PathBuf>,
    /// Hex sha256 the component must have.
    pub sha256: Option<String>,
    /// The capabilities the plugin may import. Log is always granted.
    #[serde(default)]
    pub grants: Grants,
    /// Resource limits of every instance.
    #[serde(default)]
    pub limits: Limits,
}

/// Resource limits of each instance of a plugin.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Linear memory, summed over the instance's memories, in MiB.
    #[serde(default = "Limits::default_memory_mb")]
    pub memory_mb: u32,
    /// How long one call into the plugin may run (its host calls included).
    #[serde(default = "Limits::default_call_timeout_ms")]
    pub call_timeout_ms: u64,
}

impl Limits {
    fn default_memory_mb() -> u32 {
        64
    }
    fn default_call_timeout_ms() -> u64 {
        5_000
    }
    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mb as usize) << 20
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: Self::default_memory_mb(), call_timeout_ms: Self::default_call_timeout_ms() }
    }
}

impl Manifest {
    /// Parse a manifest; the error text says what is wrong and where.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(pin) = &manifest.sha256
            && (pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(format!("sha256 = {pin:?}: expected 64 hex digits"));
        }
        if manifest.limits.memory_mb == 0 || manifest.limits.memory_mb > 4096 {
            return Err(format!("limits.memory-mb = {}: expected 1 to 4096", manifest.limits.memory_mb));
        }
        if manifest.limits.call_timeout_ms == 0 || manifest.limits.call_timeout_ms > 600_000 {
            return Err(format!("limits.call-timeout-ms = {}: expected 1 to 600000", manifest.limits.call_timeout_ms));
        }
        for entry in &manifest.grants.firewall {
            let grant =
                crate::capability::firewall::ProgramGrant::parse(entry).map_err(|e| format!("grants.firewall: {e}"))?;
            let program = grant.program;
            let bare = !program.is_empty() && !program.contains('/');
            if !(bare || program.starts_with('/')) {
                return Err(format!("grants.firewall: {program:?} must be a bare program name or an absolute path"));
            }
            crate::capability::process::refuse_interpreter(program).map_err(|e| format!("grants.firewall: {e}"))?;
        }
        for entry in &manifest.grants.files {
            crate::capability::file::check_grant(entry).map_err(|e| format!("grants.files: {e}"))?;
        }
        crate::capability::shell::check_grant(&manifest.grants)?;
        for entry in &manifest.grants.http {
            let ok = !entry.is_empty() && !entry.contains(['/', '@', '*']) && !entry.contains(char::is_whitespace);
            if !ok {
                return Err(format!(
                    "grants.http: {entry:?} must be a host name or address, optionally with :port (no scheme, path or wildcard)"
                ));
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_manifest_grants_nothing() {
        let m = Manifest::parse("").unwrap();
        assert_eq!(m.grants, Grants::default());
        assert_eq!(m.limits, Limits::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Manifest::parse("[grants]\nnetwork = true\n").unwrap_err();
        assert!(err.contains("network"), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        assert!(Manifest::parse("sha256 = \"abc\"").unwrap_err().contains("64 hex"));
        assert!(Manifest::parse("[limits]\nmemory-mb = 0").unwrap_err().contains("memory-mb"));
        assert!(Manifest::parse("[grants]\nfirewall = [\"../sh\"]").unwrap_err().contains("bare"));
    }

    #[test]
    fn shells_and_interpreters_are_not_firewall_programs() {
        for program in
            ["sh", "bash", "/bin/sh", "/usr/bin/dash", "/tmp/../bin/sh", "python3", "python3.13", "perl", "env"]
        {
            let err = Manifest::parse(&format!("[grants]\nfirewall = [\"{program}\"]")).unwrap_err();
            assert!(
                err.contains("grants.firewall") && (err.contains("shell") || err.contains("..")),
                "{program}: {err}"
            );
        }
        assert!(Manifest::parse("[grants]\nfirewall = [\"/usr/sbin/./iptables\"]").unwrap_err().contains("`.`"));
        for program in ["iptables", "ip6tables", "nft", "/usr/sbin/ipset", "firewall-cmd", "ufw"] {
            Manifest::parse(&format!("[grants]\nfirewall = [\"{program}\"]")).unwrap();
        }
    }

    #[test]
    fn shell_confinement_grants_need_the_shell_and_plain_absolute_paths() {
        let m = Manifest::parse(
            "[grants]\nshell = true\nshell-writes = [\"/var/log/x/\", \"/run/xtables.lock\"]\nshell-network = true",
        )
        .unwrap();
        assert_eq!(m.grants.shell_writes, ["/var/log/x/", "/run/xtables.lock"]);
        assert!(m.grants.shell_network);
        for (text, expected) in [
            ("shell-network = true", "shell = true"),
            ("shell-writes = [\"/tmp/\"]", "shell = true"),
            ("shell = true\nshell-writes = [\"var/log\"]", "absolute"),
            ("shell = true\nshell-writes = [\"/var/../etc\"]", "`..`"),
        ] {
            let err = Manifest::parse(&format!("[grants]\n{text}")).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
