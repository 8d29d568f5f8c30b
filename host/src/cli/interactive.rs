//! `wasmban -i`: fail2ban-client's interactive mode. Each line is one
//! command (`status sshd`, `set sshd banip 192.0.2.1`), split as a shell
//! would split it, run against the same daemon; a bad line is said and the
//! session goes on. `exit` or `quit` (or end of input) ends it.

use std::io::{BufRead, Write};

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

/// fail2ban-client's prompt.
pub const PROMPT: &str = "fail2ban> ";

/// Read commands from standard input until `exit`, `quit` or its end.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    println!("wasmban {}: one command a line, as after `wasmban` (help, exit)\n", env!("CARGO_PKG_VERSION"));
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("{PROMPT}");
        std::io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else {
            println!();
            return Ok(());
        };
        match line.trim() {
            "" => continue,
            "exit" | "quit" => return Ok(()),
            "help" => {
                println!("{}", Cli::command().render_help());
                continue;
            }
            _ => {}
        }
        let Some(words) = shlex::split(&line) else {
            eprintln!("wasmban: {line:?}: a quote is not closed");
            continue;
        };
        let mut argv = vec!["wasmban".to_string()];
        for (flag, value) in [("-c", &cli.config_dir), ("-s", &cli.socket), ("--state-dir", &cli.state_dir)] {
            argv.push(flag.to_string());
            argv.push(value.display().to_string());
        }
        argv.extend(words);
        match Cli::try_parse_from(&argv) {
            Err(e) => eprintln!("{}", e.render()),
            Ok(inner) if inner.interactive || matches!(inner.command, Some(Command::Server(_))) => {
                eprintln!("wasmban: {line:?} cannot be run from the interactive mode");
            }
            Ok(inner) => {
                if let Err(e) = crate::cli::run(inner) {
                    eprintln!("wasmban: {e:#}");
                }
            }
        }
    }
}
