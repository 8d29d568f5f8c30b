//! The client commands: `wasmban ping|status|banned|ban|unban|reload|stop`,
//! sent to the daemon over its control socket.

use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::cli::Cli;
use crate::daemon::control::{Request, call};
use crate::daemon::server_settings::SERVER_KEYS;
use std::collections::BTreeMap;

use crate::daemon::status::{Asked, BanView, JailStatus};
use crate::jail::ids;
use crate::metrics::PluginCost;

/// Commands for a running daemon.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Check that the daemon answers.
    Ping {
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// The jail list, or one jail's counters, files and bans (fail2ban's
    /// `status [JAIL] [short|basic]`); with `--top`, what each filter and
    /// action has cost since start; with `--all`, every jail's status.
    Status {
        /// The jail.
        jail: Option<String>,
        /// fail2ban's flavor: `basic` (the default) or `short` (counts
        /// only, without the file and address lists).
        #[arg(value_name = "FLAVOR")]
        flavor: Option<String>,
        /// Every jail's status, one after the other (`status --all [FLAVOR]`).
        #[arg(long)]
        all: bool,
        /// Per plugin instance: CPU time, calls, traps and timeouts since
        /// the daemon started, the most CPU first.
        #[arg(long, conflicts_with_all = ["jail", "all"])]
        top: bool,
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Every jail's backend and its failure and ban counts, current and
    /// total, in one table (fail2ban-client 1.1's `stats`).
    #[command(alias = "statistics")]
    Stats {
        /// Print the daemon's JSON answers instead.
        #[arg(long)]
        json: bool,
    },
    /// Every ban in force, per jail (fail2ban's `banned`), or, given
    /// addresses, the jails each is banned in (`banned IP ...`).
    Banned {
        /// Addresses to look up.
        #[arg(value_name = "IP")]
        ips: Vec<String>,
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
        /// One line per ban: jail, address, start, length, ban count.
        #[arg(long, conflicts_with = "json")]
        long: bool,
    },
    /// Ban an address in a jail now.
    Ban {
        /// The jail.
        jail: String,
        /// The address.
        ip: String,
        /// Ban it even when it is a loopback, broadcast or multicast
        /// address, or one of this host's own.
        #[arg(long)]
        force: bool,
    },
    /// Lift bans: `unban IP ...` (in every jail, as fail2ban-client),
    /// `unban JAIL IP` (in one jail), or `unban --all [JAIL]`.
    Unban {
        /// `IP ...`, or `JAIL IP`.
        #[arg(value_name = "[JAIL] IP")]
        args: Vec<String>,
        /// Lift every ban (of JAIL, when given).
        #[arg(long)]
        all: bool,
    },
    /// Read the configuration again; changed jails restart, bans are kept.
    Reload {
        /// Restart only this jail.
        jail: Option<String>,
    },
    /// Reopen the log file (logrotate's postrotate runs this).
    Flushlogs,
    /// Print wasmban's version.
    Version,
    /// A jail's setting, as fail2ban-client's `get JAIL KEY`: bantime,
    /// findtime, maxretry, maxmatches, maxtracked, maxlines, logpath, actions, banip
    /// [SEP], failregex, ignoreregex, ignoreip, usedns, idle, bantime.*...
    Get {
        /// `JAIL KEY [SEP]`, or a daemon setting: loglevel, logtarget,
        /// syslogsocket, dbfile, dbpurgeage.
        #[arg(num_args = 1..=3, value_name = "JAIL KEY")]
        args: Vec<String>,
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// fail2ban-client's `set JAIL KEY VALUE...`, until the next reload:
    /// banip, unbanip [--report-absent], bantime, findtime, maxretry,
    /// addignoreip, addlogpath, addfailregex, attempt, idle, usedns...
    Set {
        /// `JAIL KEY VALUE...`, or `loglevel|logtarget|syslogsocket|dbpurgeage VALUE`.
        #[arg(num_args = 2.., value_name = "JAIL KEY VALUE", allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Stop the daemon (every action's stop runs).
    Stop,
}

/// The requests `unban ARGS` stands for: `--all [JAIL]`, `JAIL IP` (two
/// arguments, the first not an address), or any number of addresses or
/// ban ids, each lifted in every jail, as fail2ban-client's `unban`.
fn unban_requests(args: &[String], all: bool) -> anyhow::Result<Vec<Request>> {
    Ok(match (args, all) {
        ([], true) => vec![Request::Unban { jail: None, ip: None, all: true }],
        ([jail], true) => vec![Request::Unban { jail: Some(jail.clone()), ip: None, all: true }],
        (_, true) => anyhow::bail!("unban --all takes at most a jail name"),
        ([], false) => anyhow::bail!("unban: give addresses (unban IP ...), a jail and an address, or --all"),
        ([jail, ip], false) if ids::canonical_ip(jail).is_none() => {
            vec![Request::Unban { jail: Some(jail.clone()), ip: Some(ip.clone()), all: false }]
        }
        (ips, false) => ips.iter().map(|ip| Request::Unban { jail: None, ip: Some(ip.clone()), all: false }).collect(),
    })
}

/// A Python string literal, as fail2ban-client prints them.
fn py_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `banned` as fail2ban-client prints it: `[{'sshd': ['192.0.2.1']}, ...]`.
fn fail2ban_banned(all: &BTreeMap<String, Vec<BanView>>) -> String {
    let jails: Vec<String> = all
        .iter()
        .map(|(jail, bans)| {
            let ips: Vec<String> = bans.iter().map(|b| py_str(&b.id)).collect();
            format!("{{{}: [{}]}}", py_str(jail), ips.join(", "))
        })
        .collect();
    format!("[{}]", jails.join(", "))
}

/// For each of `ips`, the jails it is banned in.
fn jails_of(all: &BTreeMap<String, Vec<BanView>>, ips: &[String]) -> Vec<Vec<String>> {
    ips.iter()
        .map(|ip| {
            let asked = Asked::new(ip);
            all.iter()
                .filter(|(_, bans)| bans.iter().any(|b| asked.is_held_by(&b.id)))
                .map(|(j, _)| j.clone())
                .collect()
        })
        .collect()
}

/// `status JAIL [FLAVOR]` as fail2ban-client prints it; `short` leaves the
/// address list out.
fn print_status(s: &JailStatus, short: bool) {
    println!("Status for the jail: {}", s.jail);
    if let Some(p) = &s.problem {
        println!("|- Problem:\t{p}");
    } else if !s.running {
        println!("|- Starting (loading its plugins)");
    }
    println!("|- Filter");
    println!("|  |- Currently failed:\t{}", s.currently_failed);
    println!("|  |- Total failed:\t{}", s.total_failed);
    if !s.waiting.is_empty() {
        println!("|  |- Waiting for:\t{}", s.waiting.join(" "));
    }
    match &s.journal_matches {
        Some(matches) => println!("|  `- Journal matches:\t{matches}"),
        None => println!("|  `- File list:\t{}", s.files.join(" ")),
    }
    println!("`- Actions");
    println!("   |- Currently banned:\t{}", s.currently_banned);
    let last = if short && s.unbans_pending == 0 { "`-" } else { "|-" };
    println!("   {last} Total banned:\t{}", s.total_banned);
    for off in &s.actions_off {
        // Not in fail2ban's tree: only a jail missing an action has it.
        println!("   |- Action off:\t{off}");
    }
    if s.unbans_pending > 0 {
        // Not in fail2ban's tree: shown only when there is something to say.
        println!("   {} Unbans pending:\t{}", if short { "`-" } else { "|-" }, s.unbans_pending);
    }
    if short {
        // fail2ban's short flavor: the last line is the total.
        return;
    }
    println!("   `- Banned IP list:\t{}", s.banned.iter().map(|b| b.id.as_str()).collect::<Vec<_>>().join(" "));
}

/// The `status --top` table: one row per filter and action instance.
fn print_top(rows: &[PluginCost]) {
    if rows.is_empty() {
        println!("No plugin instance has run yet.");
        return;
    }
    println!(
        "{:<16} {:<7} {:<24} {:<16} {:>10} {:>10} {:>9} {:>6} {:>8} {:>7} {:>8}",
        "JAIL", "KIND", "INSTANCE", "PLUGIN", "CPU (s)", "WALL (s)", "CALLS", "TRAPS", "TIMEOUTS", "MEMORY", "REBUILDS"
    );
    for r in rows {
        println!(
            "{:<16} {:<7} {:<24} {:<16} {:>10.3} {:>10.3} {:>9} {:>6} {:>8} {:>7} {:>8}",
            r.key.jail,
            r.key.kind,
            r.key.instance,
            r.key.plugin,
            r.cpu_seconds,
            r.call_seconds,
            r.calls,
            r.traps,
            r.timeouts,
            r.memory_cap_hits,
            r.rebuilds
        );
    }
}

/// fail2ban-client's list under a heading: `|- a`, ..., `` `- z``.
/// A setting as fail2ban-client prints the answer to `get JAIL KEY` (and
/// to the `set` that changed it).
fn fail2ban_setting(jail: &str, key: &str, value: &Value) -> String {
    let list: Vec<String> = serde_json::from_value(value.clone()).unwrap_or_default();
    match key {
        "logpath" if list.is_empty() => "No file is currently monitored".into(),
        "logpath" => format!("Current monitored log file(s):\n{}", tree_lines(&list)),
        "actions" if list.is_empty() => format!("No actions for jail {jail}"),
        "actions" => format!("The jail {jail} has the following actions:\n{}", list.join(", ")),
        "ignoreip" if list.is_empty() => "No IP address/network is ignored".into(),
        "ignoreip" => format!("These IP addresses/networks are ignored:\n{}", tree_lines(&list)),
        "failregex" | "ignoreregex" if list.is_empty() => "No regular expression is defined".into(),
        "failregex" | "ignoreregex" => {
            let numbered: Vec<String> = list.iter().enumerate().map(|(i, r)| format!("[{i}]: {r}")).collect();
            format!("The following regular expression are defined:\n{}", tree_lines(&numbered))
        }
        "journalmatch" if list.is_empty() => "No journal match filter set".into(),
        "journalmatch" => format!("Current match filter:\n{}", list.join(" + ")),
        "logencoding" => format!("Current log encoding is set to:\n{}", value.as_str().unwrap_or("")),
        "datepattern" => match value.as_str() {
            None => "Current date pattern set to: Not set/required".into(),
            Some(p) => format!("Current date pattern set to: {p}"),
        },
        _ => py_value(value),
    }
}

/// A daemon setting as fail2ban-client prints it.
fn fail2ban_server_setting(key: &str, value: &Value) -> String {
    let text = py_value(value);
    match key {
        "loglevel" => format!("Current logging level is {}", py_str(&text)),
        "logtarget" => format!("Current logging target is:\n`- {text}"),
        "syslogsocket" => format!("Current syslog socket is:\n`- {text}"),
        "dbfile" => format!("Current database file is:\n`- {text}"),
        "dbpurgeage" => format!("Current database purge age is:\n`- {text}seconds"),
        _ => text,
    }
}

/// A JSON value as Python prints the same value.
fn py_value(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| if let Value::String(s) = v { py_str(s) } else { py_value(v) })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn tree_lines(items: &[String]) -> String {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        out.push(format!("{} {item}", if i + 1 == items.len() { "`-" } else { "|-" }));
    }
    out.join("\n")
}

/// Whether `status` was given fail2ban's `short` flavor; other flavors
/// are refused with what there is.
fn short_flavor(flavor: Option<&str>) -> anyhow::Result<bool> {
    match flavor {
        None | Some("basic") => Ok(false),
        Some("short") => Ok(true),
        Some("cymru") => anyhow::bail!(
            "status flavor cymru (ASN, country and registry of each address from Team Cymru's DNS) is not \
             supported; use basic or short"
        ),
        Some(other) => anyhow::bail!("unsupported status flavor {other:?}; supported: basic, short"),
    }
}

/// Send control commands and print the answers as fail2ban-client does
/// (`--json`: the daemon's answers); an error reply is an error.
pub fn run(cli: &Cli, cmd: &ControlCommand) -> anyhow::Result<()> {
    let timeout = match cmd {
        ControlCommand::Reload { .. } | ControlCommand::Ban { .. } | ControlCommand::Unban { .. } => {
            Duration::from_secs(300)
        }
        _ => Duration::from_secs(10),
    };
    let ask = |request: Request| -> anyhow::Result<Value> {
        let reply = call(&cli.socket, &request, timeout)?;
        if !reply.ok {
            anyhow::bail!("{}", reply.error.unwrap_or_else(|| "the daemon refused without saying why".into()));
        }
        Ok(reply.result)
    };
    let print_json = |v: &Value| -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    };
    match cmd {
        ControlCommand::Version => println!("{}", env!("CARGO_PKG_VERSION")),
        ControlCommand::Ping { json } => {
            let result = ask(Request::Ping)?;
            if *json { print_json(&result)? } else { println!("Server replied: pong") }
        }
        ControlCommand::Status { top: true, json, .. } => {
            let result = ask(Request::Top)?;
            if *json {
                print_json(&result)?
            } else {
                print_top(&serde_json::from_value::<Vec<PluginCost>>(result["plugins"].clone())?);
            }
        }
        ControlCommand::Status { all: true, jail, flavor, json, .. } => {
            // `status --all [FLAVOR]`: clap puts a lone FLAVOR where the jail goes.
            let short = short_flavor(flavor.as_deref().or(jail.as_deref()))?;
            let all = every_status(&ask, false, short)?;
            if *json {
                print_json(&Value::Array(all))?;
            } else {
                for status in all {
                    print_status(&serde_json::from_value(status)?, short);
                }
            }
        }
        ControlCommand::Status { jail: Some(jail), flavor, json, .. } => {
            let short = short_flavor(flavor.as_deref())?;
            let result = ask(Request::Status { jail: Some(jail.clone()), without_bans: short })?;
            if *json { print_json(&result)? } else { print_status(&serde_json::from_value(result)?, short) }
        }
        ControlCommand::Stats { json } => {
            let all = every_status(&ask, true, true)?;
            if *json {
                print_json(&Value::Array(all))?;
            } else {
                let statuses: Vec<JailStatus> =
                    all.into_iter().map(serde_json::from_value).collect::<Result<_, _>>()?;
                println!("{}", crate::cli::stats_table::render(&statuses, crate::cli::stats_table::output_is_utf8()));
            }
        }
        ControlCommand::Status { jail: None, json, .. } => {
            let result = ask(Request::Status { jail: None, without_bans: true })?;
            if *json {
                print_json(&result)?;
            } else {
                let jails: Vec<String> = serde_json::from_value(result["jails"].clone()).unwrap_or_default();
                println!("Status");
                println!("|- Number of jail:\t{}", jails.len());
                println!("`- Jail list:\t{}", jails.join(", "));
            }
        }
        ControlCommand::Banned { ips, json, long } => {
            let result = ask(Request::Banned { ips: ips.clone() })?;
            let all: BTreeMap<String, Vec<BanView>> = serde_json::from_value(result.clone())?;
            match (ips.is_empty(), json, long) {
                (true, true, _) => print_json(&result)?,
                (true, false, true) => {
                    for (jail, bans) in all {
                        for b in bans {
                            let until = if b.bantime < 0 { "forever".to_string() } else { format!("{}s", b.bantime) };
                            println!(
                                "{jail}\t{}\tsince {}\tfor {until}\t(ban #{}, {}{})",
                                b.id,
                                b.time,
                                b.bancount,
                                b.origin.as_str(),
                                b.from.as_deref().map(|f| format!(" from {f}")).unwrap_or_default()
                            );
                        }
                    }
                }
                (true, false, false) => println!("{}", fail2ban_banned(&all)),
                (false, true, _) => print_json(&serde_json::to_value(jails_of(&all, ips))?)?,
                (false, false, _) => {
                    let lists: Vec<String> = jails_of(&all, ips)
                        .iter()
                        .map(|jails| format!("[{}]", jails.iter().map(|j| py_str(j)).collect::<Vec<_>>().join(", ")))
                        .collect();
                    println!("[{}]", lists.join(", "));
                }
            }
        }
        ControlCommand::Ban { jail, ip, force } => {
            let result = ask(Request::Ban { jail: jail.clone(), ip: ip.clone(), force: *force })?;
            let banned = result.get("banned").and_then(Value::as_bool).unwrap_or(false);
            println!("{}", if banned { "1" } else { "0 (already banned)" });
        }
        ControlCommand::Unban { args, all } => {
            let mut lifted = 0;
            for request in unban_requests(args, *all)? {
                lifted += ask(request)?.get("unbanned").and_then(Value::as_u64).unwrap_or(0);
            }
            println!("{lifted}");
        }
        ControlCommand::Reload { jail } => {
            let result = ask(Request::Reload { jail: jail.clone() })?;
            println!(
                "{}",
                if result.is_string() { result.as_str().unwrap_or("").to_string() } else { result.to_string() }
            );
        }
        ControlCommand::Get { args, json } if SERVER_KEYS.contains(&args[0].as_str()) => {
            let [key] = &args[..] else { anyhow::bail!("get {} takes no more arguments", args[0]) };
            let value = ask(Request::ServerGet { key: key.clone() })?;
            if *json { print_json(&value)? } else { println!("{}", fail2ban_server_setting(key, &value)) }
        }
        ControlCommand::Set { args } if SERVER_KEYS.contains(&args[0].as_str()) => {
            let [key, value] = &args[..] else { anyhow::bail!("set {} takes one value", args[0]) };
            let now = ask(Request::ServerSet { key: key.clone(), value: value.clone() })?;
            println!("{}", fail2ban_server_setting(key, &now));
        }
        ControlCommand::Get { args, json } => {
            let [jail, key, ..] = &args[..] else {
                anyhow::bail!("get JAIL KEY: give a jail and a key (or loglevel, logtarget, dbfile, dbpurgeage)")
            };
            let value = ask(Request::Get { jail: jail.clone(), key: key.clone() })?;
            if *json {
                print_json(&value)?;
            } else if key == "banip" {
                let list: Vec<String> = serde_json::from_value(value).unwrap_or_default();
                let sep = args.get(2).map_or(" ", String::as_str);
                if sep == "--with-time" {
                    anyhow::bail!(
                        "get {jail} banip --with-time is not supported; `wasmban banned --long` shows each ban's start and length"
                    );
                }
                println!("{}", list.join(sep));
            } else {
                println!("{}", fail2ban_setting(jail, key, &value));
            }
        }
        ControlCommand::Set { args } => {
            let [jail, key, values @ ..] = &args[..] else { anyhow::bail!("set JAIL KEY VALUE...: give a value") };
            let key = key.as_str();
            let mut count = 0;
            match key {
                "banip" => {
                    for ip in values {
                        let result = ask(Request::Ban { jail: jail.clone(), ip: ip.clone(), force: false })?;
                        count += u64::from(result.get("banned").and_then(Value::as_bool).unwrap_or(false));
                    }
                }
                "unbanip" => {
                    let (report_absent, ips) = match values.split_first() {
                        Some((flag, rest)) if flag == "--report-absent" => (true, rest),
                        _ => (false, values),
                    };
                    for ip in ips {
                        let lifted =
                            ask(Request::Unban { jail: Some(jail.clone()), ip: Some(ip.clone()), all: false })?
                                .get("unbanned")
                                .and_then(Value::as_u64)
                                .unwrap_or(0);
                        if lifted == 0 && report_absent {
                            anyhow::bail!("{ip} is not banned");
                        }
                        count += lifted;
                    }
                }
                _ => {
                    let now = ask(Request::Set { jail: jail.clone(), key: key.to_string(), args: values.to_vec() })?;
                    println!("{}", fail2ban_setting(jail, crate::daemon::jail_set::answered_by(key), &now));
                    return Ok(());
                }
            }
            println!("{count}");
        }
        ControlCommand::Flushlogs => {
            let result = ask(Request::FlushLogs)?;
            println!("logs: {}", result.as_str().unwrap_or("rolled over"));
        }
        ControlCommand::Stop => {
            ask(Request::Stop)?;
            println!("Shutdown successful");
        }
    }
    Ok(())
}

/// Every jail's status, one request each, in the daemon's order or by name.
fn every_status(
    ask: &dyn Fn(Request) -> anyhow::Result<Value>,
    by_name: bool,
    without_bans: bool,
) -> anyhow::Result<Vec<Value>> {
    let list = ask(Request::Status { jail: None, without_bans: true })?;
    let mut names: Vec<String> = serde_json::from_value(list["jails"].clone()).unwrap_or_default();
    if by_name {
        names.sort();
    }
    names.into_iter().map(|name| ask(Request::Status { jail: Some(name), without_bans })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str) -> BanView {
        BanView { id: id.into(), time: 0, bantime: 600, bancount: 1, origin: Default::default(), from: None }
    }

    #[test]
    fn banned_prints_as_fail2ban_client_does() {
        let mut all = BTreeMap::new();
        all.insert("recidive".to_string(), vec![]);
        all.insert("sshd".to_string(), vec![view("192.0.2.1"), view("2001:db8::1")]);
        assert_eq!(fail2ban_banned(&all), "[{'recidive': []}, {'sshd': ['192.0.2.1', '2001:db8::1']}]");
        assert_eq!(jails_of(&all, &["2001:DB8::1".into(), "192.0.2.9".into()]), vec![vec!["sshd".to_string()], vec![]]);
        assert_eq!(py_str("it's"), "'it\\'s'");
    }

    #[test]
    fn unban_takes_fail2bans_list_of_addresses_and_wasmbans_jail_form() {
        let ips = unban_requests(&["192.0.2.1".into(), "192.0.2.2".into()], false).unwrap();
        assert_eq!(ips.len(), 2);
        assert!(ips.iter().all(|r| matches!(r, Request::Unban { jail: None, ip: Some(_), all: false })));
        let jail = unban_requests(&["sshd".into(), "192.0.2.1".into()], false).unwrap();
        assert_eq!(jail, vec![Request::Unban { jail: Some("sshd".into()), ip: Some("192.0.2.1".into()), all: false }]);
        assert!(unban_requests(&[], false).is_err());
        assert!(short_flavor(Some("cymru")).unwrap_err().to_string().contains("use basic or short"));
    }
}
