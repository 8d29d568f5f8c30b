//! `wasmban bouncers`: the CrowdSec bouncers let into the bans API
//! (`[lapi]`), as `cscli bouncers` does for CrowdSec's.

use anyhow::Context;
use clap::Subcommand;

use crate::cli::Cli;
use crate::daemon::settings::Settings;
use crate::lapi::keys;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum BouncersCommand {
    /// Let a bouncer in: print its new API key on the last line (it is
    /// shown once: only its digest is kept).
    Add {
        /// The bouncer's name.
        name: String,
        /// Use this key instead of a random one (16 characters or more).
        #[arg(long)]
        key: Option<String>,
    },
    /// The bouncers let in.
    #[command(alias = "ls")]
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Shut a bouncer out (a running daemon sees it at the next request).
    #[command(alias = "remove")]
    Delete {
        /// The bouncer's name.
        name: String,
    },
}

/// Run a `bouncers` subcommand.
pub fn run(cli: &Cli, command: &BouncersCommand) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config_dir)?;
    let path = crate::lapi::keys_path(settings.lapi.as_ref().and_then(|l| l.keys.as_ref()), &cli.state_dir);
    match command {
        BouncersCommand::Add { name, key } => {
            if settings.lapi.is_none() {
                eprintln!(
                    "note: the bans API is off; set [lapi] listen = 127.0.0.1:8080 in {}/wasmban.local and restart",
                    cli.config_dir.display()
                );
            }
            if key.is_none() && path.starts_with(&cli.state_dir) {
                crate::daemon::private_dir(&cli.state_dir)?;
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let key = keys::add(&path, name, key.as_deref(), now)?;
            println!("API key for bouncer {name} (shown once; put it in the bouncer's api_key):");
            println!("{key}");
        }
        BouncersCommand::List { json } => {
            let bouncers = keys::load(&path)?;
            if *json {
                println!("{}", serde_json::to_string(&bouncers).context("writing JSON")?);
            } else if bouncers.is_empty() {
                println!("no bouncers in {}", path.display());
            } else {
                for b in bouncers {
                    let t = crate::timezone::local_time(b.created);
                    println!(
                        "{}\tadded {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                        b.name,
                        t.tm_year + 1900,
                        t.tm_mon + 1,
                        t.tm_mday,
                        t.tm_hour,
                        t.tm_min,
                        t.tm_sec
                    );
                }
            }
        }
        BouncersCommand::Delete { name } => {
            keys::delete(&path, name)?;
            println!("bouncer {name} deleted");
        }
    }
    Ok(())
}
