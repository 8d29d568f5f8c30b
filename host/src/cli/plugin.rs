//! `wasmban plugin ...`

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::Cli;
use crate::plugin::inspect::inspect;
use crate::plugin::{BUILTINS, Registry, Runtime, RuntimeOptions};

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a component's kind, exports, imports (the capabilities it asks
    /// for), size and sha256, without running any of it.
    Inspect {
        /// A `.wasm` file, or the name of a built-in or installed plugin.
        plugin: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the built-in plugins and those installed in plugin.d.
    List,
}

fn registry(cli: &Cli) -> Registry {
    Registry::new(Some(cli.plugin_dir()))
}

/// Run a plugin subcommand.
pub fn run(cli: &Cli, cmd: &PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Inspect { plugin, json } => {
            let reg = registry(cli);
            // A path on the command line is taken as given, not relative to plugin.d.
            let reference = if plugin.ends_with(".wasm") && Path::new(plugin).exists() {
                std::fs::canonicalize(plugin).with_context(|| format!("cannot resolve {plugin}"))?.display().to_string()
            } else {
                plugin.clone()
            };
            let source = reg.resolve(&reference)?;
            // Inspecting compiles but never caches: the file may be untrusted.
            let runtime = Runtime::new(RuntimeOptions::default())?;
            let report = inspect(&runtime, &source)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(())
        }
        PluginCommand::List => {
            for b in BUILTINS {
                let description =
                    crate::plugin::Manifest::parse(b.manifest).ok().and_then(|m| m.description).unwrap_or_default();
                println!("{:<16} built-in   {description}", b.name);
            }
            let dir = cli.plugin_dir();
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut names: Vec<_> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                names.sort();
                for path in names {
                    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    match registry(cli).resolve(&name) {
                        Ok(s) => println!(
                            "{name:<16} installed  {}",
                            s.manifest.description.unwrap_or_else(|| path.display().to_string())
                        ),
                        Err(e) => println!("{name:<16} BROKEN     {e}"),
                    }
                }
            }
            Ok(())
        }
    }
}
