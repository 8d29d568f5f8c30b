//! `wasmban -d`: the resolved configuration as fail2ban-client's `-d`
//! prints it, one command of the stream a daemon would be given per line
//! (`['set', 'sshd', 'maxretry', 5]`), so that an admin can compare what
//! wasmban reads with what fail2ban reads from the same files.

use serde_json::{Value, json};

use crate::cli::Cli;
use crate::config::jail::{JAIL_OPTIONS, Jail, Jails};
use crate::daemon::settings::Settings;

/// Options written in the stream by their own command, or not at all.
const OWN_COMMANDS: &[&str] =
    &["enabled", "backend", "filter", "action", "logpath", "ignoreip", "maxretry", "maxmatches"];

/// A value as Python's `repr` writes it inside a list.
fn py_repr(value: &Value) -> String {
    match value {
        Value::String(s) => py_string(s),
        Value::Array(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python's `repr` of a string: single quotes unless the text has one and
/// no double quote; backslashes, quotes and control characters escaped.
fn py_string(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The stream of one jail.
fn jail_stream(jail: &Jail) -> Vec<Value> {
    let name = jail.name.as_str();
    let mut out = vec![json!(["add", name, jail.backend])];
    let usedns = crate::daemon::assemble::usedns(jail).map(|u| format!("{u:?}").to_ascii_lowercase());
    out.push(json!(["set", name, "usedns", usedns.unwrap_or_else(|e| e)]));
    if let Some((reference, def)) = &jail.filter {
        if let Some(pack_filter) = def.pack_filter() {
            out.push(json!([
                "set",
                name,
                "filter",
                format!("{} (filter {pack_filter} of a filter pack)", reference.name)
            ]));
        } else {
            if def.plugin() != "regex-filter" {
                out.push(json!(["set", name, "filterplugin", def.plugin()]));
            }
            if let Some(prefregex) = def.get("prefregex") {
                out.push(json!(["set", name, "prefregex", prefregex]));
            }
            out.push(json!(["set", name, "maxlines", def.maxlines().unwrap_or(1)]));
            for option in ["failregex", "ignoreregex"] {
                let list = def.list(option);
                if !list.is_empty() {
                    out.push(json!(["multi-set", name, format!("add{option}"), list]));
                }
            }
            if let Some(datepattern) = def.get("datepattern") {
                out.push(json!(["set", name, "datepattern", datepattern]));
            }
        }
        if let Some(journalmatch) = def.get("journalmatch") {
            let mut command = vec![json!("set"), json!(name), json!("addjournalmatch")];
            command.extend(journalmatch.split_whitespace().map(|w| json!(w)));
            out.push(Value::Array(command));
        }
    }
    out.push(json!(["set", name, "maxretry", jail.maxretry]));
    out.push(json!(["set", name, "maxmatches", jail.maxmatches]));
    for option in JAIL_OPTIONS.iter().filter(|o| !OWN_COMMANDS.contains(o)) {
        if let Some(value) = jail.options.get(*option) {
            out.push(json!(["set", name, option, value]));
        }
    }
    let ignored: Vec<&str> = jail
        .options
        .get("ignoreip")
        .map(|v| v.split([' ', ',', '\n', '\t']).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if !ignored.is_empty() {
        let mut command = vec![json!("set"), json!(name), json!("addignoreip")];
        command.extend(ignored.iter().map(|ip| json!(ip)));
        out.push(Value::Array(command));
    }
    for entry in &jail.logpath {
        let mut words = entry.split_whitespace();
        let path = words.next().unwrap_or_default();
        out.push(json!(["set", name, "addlogpath", path, words.next().unwrap_or("tail")]));
    }
    for (reference, def) in &jail.actions {
        out.push(json!(["set", name, "addaction", reference.name]));
        let mut options: Vec<Value> = Vec::new();
        if let Some(plugin) = def.plugin() {
            options.push(json!(["plugin", plugin]));
        }
        options.extend(def.options.iter().filter(|(k, _)| k.as_str() != "plugin").map(|(k, v)| json!([k, v])));
        out.push(json!(["multi-set", name, "action", reference.name, options]));
    }
    out.push(json!(["start", name]));
    out
}

/// Print the stream; false when the configuration has errors (printed on
/// stderr, with the stream of every jail that could be read).
pub fn run(cli: &Cli) -> anyhow::Result<bool> {
    let settings = Settings::load(&cli.config_dir)?;
    let mut stream = vec![
        json!(["set", "syslogsocket", settings.syslogsocket]),
        json!(["set", "loglevel", settings.log_level]),
        json!(["set", "logtarget", settings.log_target.name()]),
        json!(["set", "dbfile", cli.state_dir.join(crate::daemon::STORE_FILE).display().to_string()]),
        json!(["set", "dbpurgeage", settings.dbpurgeage]),
    ];
    let (jails, errors) = Jails::load(&cli.config_dir)?;
    for jail in &jails.enabled {
        stream.extend(jail_stream(jail));
    }
    for command in &stream {
        println!("{}", py_repr(command));
    }
    for e in &errors {
        eprintln!("ERROR: {e}");
    }
    Ok(errors.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_python_writes_them() {
        assert_eq!(py_string("plain"), "'plain'");
        assert_eq!(py_string("it's"), "\"it's\"");
        assert_eq!(py_string("both ' and \""), "'both \\' and \"'");
        assert_eq!(py_string("a\\d+\nb"), "'a\\\\d+\\nb'");
        assert_eq!(py_repr(&json!(["set", "sshd", "maxretry", 5])), "['set', 'sshd', 'maxretry', 5]");
    }
}
