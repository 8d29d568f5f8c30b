//! The client commands: `wasmban ping|status|banned|ban|unban|reload|stop`,
//! sent to the daemon over its control socket.

use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::cli::Cli;
use crate::daemon::control::{Request, call};
use crate::daemon::status::{BanView, JailStatus};
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
    /// The jail list, or one jail's counters, files and bans; with
    /// `--top`, what each filter and action has cost since start.
    Status {
        /// The jail.
        jail: Option<String>,
        /// Per plugin instance: CPU time, calls, traps and timeouts since
        /// the daemon started, the most CPU first.
        #[arg(long, conflicts_with = "jail")]
        top: bool,
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Every ban in force, per jail.
    Banned {
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
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
    /// Lift a ban: `unban IP`, `unban JAIL IP`, or `unban --all`.
    Unban {
        /// `[JAIL] IP`.
        #[arg(num_args = 0..=2, value_name = "[JAIL] IP")]
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
    /// Stop the daemon (every action's stop runs).
    Stop,
}

fn request(cmd: &ControlCommand) -> anyhow::Result<Request> {
    Ok(match cmd {
        ControlCommand::Ping { .. } => Request::Ping,
        ControlCommand::Status { top: true, .. } => Request::Top,
        ControlCommand::Status { jail, .. } => Request::Status { jail: jail.clone() },
        ControlCommand::Banned { .. } => Request::Banned,
        ControlCommand::Ban { jail, ip, force } => Request::Ban { jail: jail.clone(), ip: ip.clone(), force: *force },
        ControlCommand::Unban { args, all } => {
            let (jail, ip) = match (args.as_slice(), all) {
                ([], true) => (None, None),
                ([jail], true) => (Some(jail.clone()), None),
                ([ip], false) => (None, Some(ip.clone())),
                ([jail, ip], false) => (Some(jail.clone()), Some(ip.clone())),
                ([], false) => anyhow::bail!("unban: give an address ([JAIL] IP) or --all"),
                _ => anyhow::bail!("unban --all takes at most a jail name"),
            };
            Request::Unban { jail, ip, all: *all }
        }
        ControlCommand::Reload { jail } => Request::Reload { jail: jail.clone() },
        ControlCommand::Flushlogs => Request::FlushLogs,
        ControlCommand::Stop => Request::Stop,
    })
}

fn print_status(s: &JailStatus) {
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
    println!("|  `- File list:\t{}", s.files.join(" "));
    println!("`- Actions");
    println!("   |- Currently banned:\t{}", s.currently_banned);
    println!("   |- Total banned:\t{}", s.total_banned);
    if s.unbans_pending > 0 {
        // Not in fail2ban's tree: shown only when there is something to say.
        println!("   |- Unbans pending:\t{}", s.unbans_pending);
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

/// Send a control command and print the answer; an error reply is an error.
pub fn run(cli: &Cli, cmd: &ControlCommand) -> anyhow::Result<()> {
    let timeout = match cmd {
        ControlCommand::Reload { .. } | ControlCommand::Ban { .. } | ControlCommand::Unban { .. } => {
            Duration::from_secs(300)
        }
        _ => Duration::from_secs(10),
    };
    let reply = call(&cli.socket, &request(cmd)?, timeout)?;
    if !reply.ok {
        anyhow::bail!("{}", reply.error.unwrap_or_else(|| "the daemon refused without saying why".into()));
    }
    let result = reply.result;
    match cmd {
        ControlCommand::Status { json: true, .. }
        | ControlCommand::Banned { json: true }
        | ControlCommand::Ping { json: true } => {
            println!("{}", serde_json::to_string_pretty(&result)?);
        }
        ControlCommand::Status { top: true, .. } => {
            let rows: Vec<PluginCost> = serde_json::from_value(result.get("plugins").cloned().unwrap_or_default())?;
            print_top(&rows);
        }
        ControlCommand::Status { jail: Some(_), .. } => print_status(&serde_json::from_value(result)?),
        ControlCommand::Status { jail: None, .. } => {
            let jails: Vec<String> = result
                .get("jails")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            println!("Status");
            println!("|- Number of jail:\t{}", jails.len());
            println!("`- Jail list:\t{}", jails.join(", "));
        }
        ControlCommand::Banned { json: false } => {
            let all: std::collections::BTreeMap<String, Vec<BanView>> = serde_json::from_value(result)?;
            for (jail, bans) in all {
                for b in bans {
                    let until = if b.bantime < 0 { "forever".to_string() } else { format!("{}s", b.bantime) };
                    println!("{jail}\t{}\tsince {}\tfor {until}\t(ban #{})", b.id, b.time, b.bancount);
                }
            }
        }
        ControlCommand::Ping { json: false } => println!("Server replied: pong"),
        ControlCommand::Ban { .. } => {
            let banned = result.get("banned").and_then(Value::as_bool).unwrap_or(false);
            println!("{}", if banned { "1" } else { "0 (already banned)" });
        }
        ControlCommand::Unban { .. } => println!("{}", result.get("unbanned").and_then(Value::as_u64).unwrap_or(0)),
        ControlCommand::Reload { .. } | ControlCommand::Stop | ControlCommand::Flushlogs => {
            println!(
                "{}",
                if result.is_string() { result.as_str().unwrap_or("").to_string() } else { result.to_string() }
            )
        }
    }
    Ok(())
}
