//! The `wasmban` command line: one binary for the daemon and its client.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod bouncers;
pub mod check;
pub mod control;
pub mod dump;
pub mod fleet;
pub mod import;
pub mod interactive;
mod log_batches;
pub mod plugin;
pub mod regex;
pub(crate) mod regex_out;
pub mod scaffold;
pub mod server;
mod stats_table;

/// Where the configuration lives by default.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/wasmban";
/// Where state (bans, positions, compiled plugins) lives by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/wasmban";
/// Where the daemon's control socket is by default.
pub const DEFAULT_SOCKET: &str = "/run/wasmban/wasmban.sock";

/// wasmban: intrusion prevention with sandboxed WebAssembly filters and actions.
#[derive(Debug, Parser)]
#[command(name = "wasmban", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration directory (fail2ban's layout: jail.conf, filter.d, action.d, plugin.d).
    #[arg(short = 'c', long = "config", global = true, default_value = DEFAULT_CONFIG_DIR, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// State directory: ban database, read positions, compiled plugins.
    #[arg(long, global = true, default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The daemon's control socket.
    #[arg(short = 's', long = "socket", global = true, default_value = DEFAULT_SOCKET, value_name = "SOCKET")]
    pub socket: PathBuf,
    /// Print the seconds a time abbreviation stands for (`1h30m`, `1w`)
    /// and exit, as fail2ban-client's `--str2sec`.
    #[arg(long, value_name = "STRING", allow_hyphen_values = true)]
    pub str2sec: Option<String>,
    /// Check the configuration and exit (fail2ban-client's `-t`; the same
    /// as `wasmban check`).
    #[arg(short = 't', long = "test")]
    pub test: bool,
    /// Print the resolved configuration as the stream of commands
    /// fail2ban-client's `-d` prints, and exit.
    #[arg(short = 'd', long = "dump")]
    pub dump: bool,
    /// Interactive mode: read one command a line (fail2ban-client's `-i`).
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and list plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run a filter over a log file and show what it finds (fail2ban-regex).
    Regex(regex::RegexArgs),
    /// Load the whole configuration and build every enabled jail's filter
    /// and actions, changing nothing; exit 1 on any error.
    Check,
    /// Run the daemon in the foreground.
    Server(server::ServerArgs),
    /// Take over fail2ban's database (read-only): bans in force, ban
    /// history and log read positions, into wasmban's store.
    #[command(name = "import-fail2ban")]
    ImportFail2ban(import::ImportArgs),
    /// The CrowdSec bouncers let into the bans API (`[lapi]`).
    #[command(subcommand)]
    Bouncers(bouncers::BouncersCommand),
    /// This host's place in a fleet that shares bans (`[fleet]`).
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Talk to a running daemon.
    #[command(flatten)]
    Control(control::ControlCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (wasmban.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Manpages {
        /// Where to write them.
        dir: PathBuf,
    },
}

impl Cli {
    /// The directories and socket of this command line, with no command.
    fn clone_paths(&self) -> Cli {
        Cli {
            config_dir: self.config_dir.clone(),
            state_dir: self.state_dir.clone(),
            socket: self.socket.clone(),
            str2sec: None,
            test: false,
            dump: false,
            interactive: false,
            command: None,
        }
    }

    /// The admin's plugin directory.
    pub fn plugin_dir(&self) -> PathBuf {
        self.config_dir.join("plugin.d")
    }
    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.state_dir.join("cache")
    }
}

/// Write `wasmban.1` and `wasmban-SUBCOMMAND.1` for every visible
/// subcommand into `dir`.
fn manpages(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(command, dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(())
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(text) = &cli.str2sec {
        let seconds =
            crate::config::values::parse_time(text).map_err(|e| anyhow::anyhow!("--str2sec {text:?}: {e}"))?;
        println!("{seconds}");
        return Ok(());
    }
    if cli.dump {
        let dumped = dump::run(&cli)?;
        // As fail2ban-client: `-d -t` tests after the dump.
        if cli.test && !check::run(&cli)? || !dumped {
            anyhow::bail!("the configuration has errors (listed above)");
        }
        return Ok(());
    }
    if cli.interactive {
        let paths = cli.clone_paths();
        // fail2ban-client -i runs a command given with it first.
        match cli.command {
            Some(Command::Server(_)) => {
                anyhow::bail!("-i: the daemon is started with `wasmban server`, not from the interactive mode")
            }
            Some(command) => {
                run(Cli { command: Some(command), ..paths.clone_paths() })?;
                return interactive::run(&paths);
            }
            None => return interactive::run(&paths),
        }
    }
    let command = match (&cli.command, cli.test) {
        (Some(command), _) => command,
        (None, true) => &Command::Check,
        (None, false) => anyhow::bail!("no command given; `wasmban --help` lists them (server, status, check, ...)"),
    };
    match command {
        Command::Plugin(cmd) => plugin::run(&cli, cmd),
        Command::Regex(args) => regex::run(&cli, args),
        Command::Server(args) => server::run(&cli, args),
        Command::ImportFail2ban(args) => import::run(&cli, args),
        Command::Control(cmd) => control::run(&cli, cmd),
        Command::Bouncers(cmd) => bouncers::run(&cli, cmd),
        Command::Fleet(cmd) => fleet::run(&cli, cmd),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "wasmban", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { dir } => manpages(dir),
        Command::Check => {
            if check::run(&cli)? {
                Ok(())
            } else {
                anyhow::bail!("the configuration has errors (listed above)")
            }
        }
    }
}
