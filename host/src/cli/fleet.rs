//! `wasmban fleet`: this host's place in a fleet that shares bans.

use clap::Subcommand;

use crate::cli::Cli;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Make this host's signing key in the state directory and print its
    /// public key on the last line (for the other hosts' `[fleet] trust`).
    Keygen {
        /// Replace an existing key (the other hosts must then trust the
        /// new one).
        #[arg(long)]
        replace: bool,
    },
    /// Print this host's public key.
    Pubkey,
    /// The running daemon's fleet: connection, outbox, and what each
    /// origin sent (received, taken, refused and why).
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a quarantined or revoked origin's bans again (the bucket is
    /// read again at once).
    Release {
        /// The origin host.
        origin: String,
    },
    /// Lift everything an origin contributed, and take nothing more from
    /// it until the daemon restarts (remove it from `trust` for good).
    Revoke {
        /// The origin host.
        origin: String,
    },
}

fn ask(cli: &Cli, request: crate::daemon::control::Request) -> anyhow::Result<serde_json::Value> {
    let reply = crate::daemon::control::call(&cli.socket, &request, std::time::Duration::from_secs(30))?;
    if !reply.ok {
        anyhow::bail!("{}", reply.error.unwrap_or_else(|| "the daemon refused without saying why".into()));
    }
    Ok(reply.result)
}

/// Run a `fleet` subcommand.
pub fn run(cli: &Cli, command: &FleetCommand) -> anyhow::Result<()> {
    let path = crate::fleet::key_path(&cli.state_dir);
    match command {
        FleetCommand::Keygen { replace } => {
            crate::daemon::private_dir(&cli.state_dir)?;
            let public = crate::fleet::keygen(&path, *replace)?;
            println!("signing key written to {}; its public key, for the other hosts' [fleet] trust:", path.display());
            println!("{public}");
        }
        FleetCommand::Pubkey => println!("{}", crate::fleet::load_key(&path)?.public_key()),
        FleetCommand::Status { json } => {
            let status = ask(cli, crate::daemon::control::Request::FleetStatus)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let text = |k: &str| status[k].as_str().unwrap_or("").to_string();
                println!("Fleet status for {} (bucket {})", text("name"), text("bucket"));
                println!("|- Connected:\t{}", status["connected"]);
                if let Some(e) = status["last_error"].as_str() {
                    println!("|- Last error:\t{e}");
                }
                println!("|- Outbox:\t{}", status["outbox"]);
                println!("|- Published:\t{}", status["published"]);
                println!("|- Applied here:\t{}", status["applied"]);
                println!("`- Origins:");
                if let Some(origins) = status["origins"].as_object() {
                    for (origin, s) in origins {
                        let mut state = String::new();
                        if s["revoked"] == true {
                            state.push_str(" REVOKED");
                        }
                        if let Some(q) = s["quarantined"].as_str() {
                            state.push_str(&format!(" QUARANTINED ({q})"));
                        }
                        println!(
                            "   {origin}: received {}, taken {}, refused {}{state}",
                            s["received"], s["accepted"], s["rejected"]
                        );
                    }
                }
            }
        }
        FleetCommand::Release { origin } => {
            ask(cli, crate::daemon::control::Request::FleetRelease { origin: origin.clone() })?;
            println!("origin {origin} released");
        }
        FleetCommand::Revoke { origin } => {
            let result = ask(cli, crate::daemon::control::Request::FleetRevoke { origin: origin.clone() })?;
            println!("origin {origin} revoked: {} ban(s) lifted", result["lifted"]);
        }
    }
    Ok(())
}
