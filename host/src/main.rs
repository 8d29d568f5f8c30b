use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = wasmban::cli::Cli::parse();
    // The daemon sets up its own log from its configuration.
    if !matches!(cli.command, Some(wasmban::cli::Command::Server(_))) {
        // `plugin try` is there to show what the plugin logs.
        let trying = matches!(
            &cli.command,
            Some(wasmban::cli::Command::Plugin(wasmban::cli::plugin::PluginCommand::Try { .. }))
        );
        let default = if trying { "warn,wasmban::plugin=trace" } else { "warn" };
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_from_env("WASMBAN_LOG").unwrap_or_else(|_| EnvFilter::new(default)))
            .with_writer(std::io::stderr)
            .init();
    }
    match wasmban::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmban: {e:#}");
            ExitCode::from(2)
        }
    }
}
