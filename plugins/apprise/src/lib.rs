//! fail2ban's `apprise` action as a component: the jail's start and stop,
//! and each ban (type `warning`), told through `apprise -c <config>` with
//! fail2ban's titles and the text on standard input. The component builds
//! the argv itself: nothing from a log line or an option becomes an
//! apprise option (such as `--plugin-path`, which would load Python from
//! a folder of the option's choosing).
//!
//! It can only run apprise (its grant), with an argv list.

use wasmban_plugin_sdk::{Action, Options, Ticket, firewall};

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub config: String,
    pub host: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let config = options.get_or("config", "/etc/fail2ban/apprise.conf").trim().to_string();
        if !config.starts_with('/') {
            return Err(format!("option `config` = {config:?}: give the absolute path of apprise's configuration"));
        }
        // fail2ban's `apprise = apprise -c "<config>"` is the command the
        // shell ran; the component runs the same, and refuses other
        // commands, whose options it would otherwise drop unseen.
        if let Some(command) = options.get("apprise") {
            let words: Vec<&str> = command.split_whitespace().map(|w| w.trim_matches('"')).collect();
            if !matches!(words.as_slice(), ["apprise", "-c", path] if *path == config) {
                return Err(format!(
                    "option `apprise` = {command:?}: wasmban runs `apprise -c <config>` itself; set `config` and \
                     leave `apprise` as fail2ban ships it"
                ));
            }
        }
        Ok(Plan {
            name: options.get_or("name", "default").to_string(),
            config,
            host: options.get_or("host", "localhost").to_string(),
            timeout_ms: options.millis("timeout", 30_000)?,
        })
    }

    /// apprise's argv for one notification, and its text.
    pub fn notify(&self, kind: Option<&str>, title: String, body: String) -> (Vec<String>, String) {
        let mut args = vec!["-c".to_string(), self.config.clone()];
        if let Some(kind) = kind {
            args.extend(["-n".to_string(), kind.to_string()]);
        }
        args.extend(["-t".to_string(), title]);
        (args, body)
    }

    pub fn started(&self) -> (Vec<String>, String) {
        self.notify(
            None,
            format!("[Fail2Ban] {}: started on {}", self.name, self.host),
            format!("The jail {} as been started successfully.", self.name),
        )
    }

    pub fn stopped(&self) -> (Vec<String>, String) {
        self.notify(
            None,
            format!("[Fail2Ban] {}: stopped on {}", self.name, self.host),
            format!("The jail {} has been stopped.", self.name),
        )
    }

    pub fn banned(&self, ticket: &Ticket) -> (Vec<String>, String) {
        self.notify(
            Some("warning"),
            format!("[Fail2Ban] {}: banned {} from {}", self.name, ticket.ip, self.host),
            format!(
                "The IP {} has just been banned by Fail2Ban after {} attempts against {}",
                ticket.ip, ticket.failures, self.name
            ),
        )
    }
}

pub struct Apprise {
    plan: Plan,
}

impl Apprise {
    fn tell(&self, (args, body): (Vec<String>, String)) -> Result<(), String> {
        let out = firewall::run_with_input("apprise", &args, &body, self.plan.timeout_ms)?;
        if out.status == 0 {
            Ok(())
        } else {
            Err(format!("apprise exited with status {}: {}", out.status, out.stderr.trim()))
        }
    }
}

impl Action for Apprise {
    fn new(options: Options) -> Result<Self, String> {
        Ok(Apprise { plan: Plan::from_options(&options)? })
    }

    fn start(&mut self) -> Result<(), String> {
        self.tell(self.plan.started())
    }

    fn stop(&mut self) -> Result<(), String> {
        self.tell(self.plan.stopped())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.tell(self.plan.banned(ticket))
    }

    fn unban(&mut self, _ticket: &Ticket) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Apprise);

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, String> {
        Plan::from_options(&Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn notifications_are_fail2bans() {
        let p = plan(&[("name", "sshd"), ("host", "web1"), ("apprise", "apprise -c \"/etc/fail2ban/apprise.conf\"")])
            .unwrap();
        let ticket = Ticket {
            jail: "sshd".into(),
            ip: "192.0.2.7".into(),
            failures: 5,
            matches: vec![],
            time: 0,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        };
        let (args, body) = p.banned(&ticket);
        assert_eq!(
            args,
            ["-c", "/etc/fail2ban/apprise.conf", "-n", "warning", "-t", "[Fail2Ban] sshd: banned 192.0.2.7 from web1"]
        );
        assert_eq!(body, "The IP 192.0.2.7 has just been banned by Fail2Ban after 5 attempts against sshd");
        assert_eq!(p.started().0, ["-c", "/etc/fail2ban/apprise.conf", "-t", "[Fail2Ban] sshd: started on web1"]);
    }

    #[test]
    fn another_command_is_refused() {
        let err = plan(&[("apprise", "apprise --plugin-path /tmp/x -c /etc/fail2ban/apprise.conf")]).unwrap_err();
        assert!(err.contains("`apprise`"), "{err}");
        assert!(plan(&[("config", "apprise.conf")]).unwrap_err().contains("`config`"));
    }
}
