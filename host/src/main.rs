use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = wasmban::cli::Cli::parse();
    quiet_on_a_closed_pipe(&cli.command);
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

/// A command that only prints (`status ... | head`, `regex ... | less`)
/// ends quietly when its reader goes away, as any Unix tool does, instead
/// of panicking on the failed print. Rust ignores SIGPIPE; that stays so
/// for the daemon, whose writes to a closed pipe or socket must be errors
/// it handles, and for commands that run plugins (which may write to a
/// program's pipe).
fn quiet_on_a_closed_pipe(command: &Option<wasmban::cli::Command>) {
    use wasmban::cli::Command;
    if matches!(command, Some(Command::Control(_) | Command::Regex(_) | Command::Completions { .. })) {
        // SAFETY: restoring a signal's default disposition before any other
        // thread exists has no effect on memory.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}
