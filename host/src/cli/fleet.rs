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
    }
    Ok(())
}
