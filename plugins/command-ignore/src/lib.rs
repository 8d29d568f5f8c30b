//! fail2ban's `ignorecommand` as a component: the jail's command, with the
//! failure's tags filled in (values from log lines quoted for where they
//! land, as the classic action quotes them), run through the host's
//! `shell` capability (which exists only where the admin granted it).
//! Exit status 0 ignores the address, 1 counts it; anything else is an
//! error, and the failure counts, as in fail2ban.

use wasmban_plugin_sdk::classic::{address_tags, fill};
use wasmban_plugin_sdk::{Failure, Ignore, Options};

/// One jail's `ignorecommand`.
pub struct CommandIgnore {
    command: String,
    timeout_ms: u32,
}

impl CommandIgnore {
    /// From the jail's options: `ignorecommand` (required) and `timeout`
    /// (seconds, default 30: under the component's 60 s call limit, so that
    /// a command that hangs is an error of its own, and the jail's other
    /// lines wait at most that long).
    pub fn from_options(options: &Options) -> Result<Self, String> {
        let command = options.require("ignorecommand")?.trim().to_string();
        if command.is_empty() {
            return Err("option `ignorecommand` is empty: nothing to run".into());
        }
        let timeout_ms = match options.get("timeout") {
            Some(t) => {
                let secs: f64 = t.trim().parse().map_err(|_| format!("option `timeout` = {t:?}: expected seconds"))?;
                (secs * 1000.0).clamp(1.0, 600_000.0) as u32
            }
            None => 30_000,
        };
        Ok(CommandIgnore { command, timeout_ms })
    }

    /// The command line for `ip` found failing in `failure`.
    pub fn command_for(&self, ip: &str, failure: &Failure) -> String {
        let mut tags = address_tags(ip, &failure.matches, &failure.fields);
        tags.insert("failures".into(), ("1".into(), false));
        if let Some(time) = failure.time {
            tags.insert("time".into(), (format!("{time}"), false));
        }
        fill(&self.command, &tags, &|_, _| None, 0)
    }

    /// fail2ban's reading of the exit status: 0 ignores, 1 counts.
    pub fn verdict(status: i32, stderr: &str) -> Result<bool, String> {
        match status {
            0 => Ok(true),
            1 => Ok(false),
            other => {
                let said = stderr.trim();
                Err(format!(
                    "ignorecommand exited with status {other}{}",
                    if said.is_empty() { String::new() } else { format!(": {said}") }
                ))
            }
        }
    }

    /// Whether to ignore `ip`: the command, run through the host's shell.
    pub fn decide(&self, ip: &str, failure: &Failure) -> Result<bool, String> {
        let out = wasmban_plugin_sdk::shell::run(&self.command_for(ip, failure), self.timeout_ms)?;
        Self::verdict(out.status, &out.stderr)
    }
}

impl Ignore for CommandIgnore {
    fn new(options: Options) -> Result<Self, String> {
        CommandIgnore::from_options(&options)
    }
    fn ignore(&mut self, ip: &str, failure: &Failure) -> Result<bool, String> {
        self.decide(ip, failure)
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_ignore!(CommandIgnore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_gets_the_failures_tags_quoted() {
        let options = Options::new(vec![("ignorecommand".into(), "/usr/bin/check <ip> <F-USER> \"<matches>\"".into())]);
        let judge = CommandIgnore::from_options(&options).unwrap();
        let failure = Failure {
            line: 0,
            host: "192.0.2.1".into(),
            time: Some(1000.0),
            rule: 0,
            fields: vec![("user".into(), "x'; reboot #".into())],
            matches: vec!["a \"$(id)\" line".into()],
        };
        assert_eq!(
            judge.command_for("192.0.2.1", &failure),
            r#"/usr/bin/check 192.0.2.1 'x'\''; reboot #' "a \"\$(id)\" line""#
        );
        assert_eq!(CommandIgnore::verdict(0, ""), Ok(true));
        assert_eq!(CommandIgnore::verdict(1, ""), Ok(false));
        assert!(CommandIgnore::verdict(127, "not found").unwrap_err().contains("127: not found"));
        assert!(CommandIgnore::from_options(&Options::new(vec![("ignorecommand".into(), " ".into())])).is_err());
    }
}
