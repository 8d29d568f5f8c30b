//! fail2ban's `nginx-block-map` action as a component: each banned id (a
//! session id taken by the filter's `<F-ID>`, or an address) is a line
//! `\ID 1;` in nginx's map file, which the admin's nginx configuration
//! includes in a `map` block to refuse those sessions; nginx is reloaded
//! after each change when its configuration tests good (`nginx -qt`), as
//! fail2ban does. At stop the file is emptied and nginx reloaded.
//!
//! It can only change the map file, and run exactly `nginx -qt` and
//! `nginx -s reload` (its grant).

use std::collections::BTreeSet;

use wasmban_plugin_sdk::{Action, Options, Ticket, file, firewall, log};

/// The settings of one jail's nginx-block-map action.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: String,
    pub command: String,
    pub timeout_ms: u32,
}

impl Plan {
    pub fn from_options(options: &Options) -> Result<Plan, String> {
        let file = match (options.get("blck_lst_file"), options.get("srv_cfg_path")) {
            (Some(file), _) => file.trim().to_string(),
            (None, Some(dir)) => format!("{}/blacklisted-sessions.map", dir.trim()),
            (None, None) => "/etc/nginx/blacklisted-sessions.map".to_string(),
        };
        // fail2ban's `%(srv_cfg_path)s/...` doubles the slash.
        let mut file = file.replace("//", "/");
        while file.contains("//") {
            file = file.replace("//", "/");
        }
        if !file.starts_with('/') {
            return Err(format!("option `blck_lst_file` = {file:?}: expected an absolute path"));
        }
        let command = options.get_or("srv_cmd", "nginx").trim().to_string();
        if command.is_empty() || command.contains(char::is_whitespace) {
            return Err(format!("option `srv_cmd` = {command:?}: expected the server's program, such as nginx"));
        }
        let timeout_ms = options.millis("timeout", 30_000)?;
        Ok(Plan { file, command, timeout_ms })
    }
}

/// The map line of a ban: the id escaped with `\` so that nginx reads it
/// as a string, never as a regex (`~`) or a keyword.
pub fn line(id: &str) -> Result<String, String> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id.chars().all(|c| c.is_ascii_graphic() && !matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\' | '$' | '#'));
    if !ok {
        return Err(format!("{id:?} cannot be a key of nginx's map: printable, no spaces, quotes, ; {{ }} $ # or \\"));
    }
    Ok(format!("\\{id} 1;"))
}

pub struct NginxBlockMap {
    plan: Plan,
    applied: BTreeSet<String>,
}

impl NginxBlockMap {
    /// Reload nginx if its configuration tests good; a server that is
    /// down or refuses is the admin's to see, not a failed ban.
    fn reload(&self) {
        let run = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            firewall::run(&self.plan.command, &args, self.plan.timeout_ms)
        };
        match run(&["-qt"]) {
            Ok(out) if out.status == 0 => match run(&["-s", "reload"]) {
                Ok(out) if out.status == 0 => {}
                Ok(out) => log::warn(&format!("{} -s reload failed: {}", self.plan.command, out.stderr.trim())),
                Err(e) => log::warn(&format!("{} -s reload: {e}", self.plan.command)),
            },
            Ok(out) => log::warn(&format!(
                "{} -qt: the configuration does not test good, so it is not reloaded: {}",
                self.plan.command,
                out.stderr.trim()
            )),
            Err(e) => log::warn(&format!("{} -qt: {e}", self.plan.command)),
        }
    }

    fn change(&mut self, tickets: &[Ticket], add: bool) -> Vec<Result<(), String>> {
        let lines: Vec<Result<String, String>> = tickets.iter().map(|t| line(&t.ip)).collect();
        let valid: Vec<String> = lines.iter().filter_map(|l| l.clone().ok()).collect();
        let done = if valid.is_empty() {
            Ok(0)
        } else if add {
            file::add_lines(&self.plan.file, &valid)
        } else {
            file::remove_lines(&self.plan.file, &valid)
        };
        if matches!(done, Ok(n) if n > 0) {
            self.reload();
        }
        lines
            .into_iter()
            .map(|l| {
                let l = l?;
                done.clone().map(|_| {
                    if add {
                        self.applied.insert(l);
                    } else {
                        self.applied.remove(&l);
                    }
                })
            })
            .collect()
    }
}

impl Action for NginxBlockMap {
    fn new(options: Options) -> Result<Self, String> {
        Ok(NginxBlockMap { plan: Plan::from_options(&options)?, applied: BTreeSet::new() })
    }

    /// The file is made when missing, so that nginx's include finds it.
    fn start(&mut self) -> Result<(), String> {
        file::add_lines(&self.plan.file, &[]).map(|_| ())
    }

    fn stop(&mut self) -> Result<(), String> {
        self.applied.clear();
        file::write_lines(&self.plan.file, &[])?;
        self.reload();
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        let present: BTreeSet<String> = file::read_lines(&self.plan.file)?.into_iter().collect();
        let missing: Vec<String> = self.applied.difference(&present).cloned().collect();
        if !missing.is_empty() {
            file::add_lines(&self.plan.file, &missing)?;
            log::warn(&format!("{} had lost {} ban line(s), added again", self.plan.file, missing.len()));
            self.reload();
        }
        Ok(())
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.change(std::slice::from_ref(ticket), true).remove(0)
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {
        self.change(std::slice::from_ref(ticket), false).remove(0)
    }

    /// One change of the file and one reload per batch.
    fn ban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        self.change(tickets, true)
    }

    fn unban_all(&mut self, tickets: &[Ticket]) -> Vec<Result<(), String>> {
        self.change(tickets, false)
    }
}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(NginxBlockMap);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_fail2bans_and_nothing_else_gets_in() {
        assert_eq!(line("9a7f3c0e").unwrap(), "\\9a7f3c0e 1;");
        assert_eq!(line("~.*").unwrap(), "\\~.* 1;");
        for bad in ["a b", "x;}", "x\n", "\"x", "$host", "", "a\\b"] {
            assert!(line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_file_is_fail2bans() {
        let p = Plan::from_options(&Options::new(vec![])).unwrap();
        assert_eq!(p.file, "/etc/nginx/blacklisted-sessions.map");
        let p = Plan::from_options(&Options::new(vec![("srv_cfg_path".into(), "/etc/nginx/".into())])).unwrap();
        assert_eq!(p.file, "/etc/nginx/blacklisted-sessions.map");
    }
}
