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
    /// Run a filter pack's own samples through its filters and compare the
    /// verdicts with what the pack expects; exit 1 on any difference.
    Test {
        /// A pack `.wasm` file, or the name of an installed pack.
        plugin: String,
    },
    /// Make a plugin project that builds and tests as created.
    New {
        /// The language: rust (the SDK), python (componentize-py) or js
        /// (componentize-js).
        #[arg(long, value_enum)]
        lang: crate::cli::scaffold::Lang,
        /// The plugin's name (lower-case letters, digits, '-').
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Run an action once, as a jail would: create (with --option), start,
    /// ban and unban the given addresses, stop. Its log lines are shown.
    /// A `.wasm` file runs with the grants of the `.toml` beside it.
    Try {
        /// A `.wasm` file, or the name of a built-in or installed plugin.
        plugin: String,
        /// An option for `create`, KEY=VALUE (repeat it).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// The jail name the action is told (option `name`).
        #[arg(long, default_value = "test")]
        jail: String,
        /// Ban this address (repeat it).
        #[arg(long = "ban", value_name = "IP")]
        bans: Vec<String>,
        /// Then lift the ban of this address (repeat it).
        #[arg(long = "unban", value_name = "IP")]
        unbans: Vec<String>,
    },
}

fn registry(cli: &Cli) -> Registry {
    Registry::new(Some(cli.plugin_dir()))
}

/// Run a plugin subcommand.
pub fn run(cli: &Cli, cmd: &PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Inspect { plugin, json } => {
            let reg = registry(cli);
            let source = reg.resolve(&resolve_reference(plugin)?)?;
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
        PluginCommand::New { lang, name, dir } => {
            let root = crate::cli::scaffold::create(*lang, name, dir.as_deref())?;
            println!("created {}", root.display());
            let next = match lang {
                crate::cli::scaffold::Lang::Rust => "cargo test && cargo build --release --target wasm32-wasip2",
                _ => "./test.sh",
            };
            println!("next: cd {} && {next} (see README.md)", root.display());
            Ok(())
        }
        PluginCommand::Try { plugin, options, jail, bans, unbans } => {
            try_action(cli, plugin, options, jail, bans, unbans)
        }
        PluginCommand::Test { plugin } => test_pack(cli, plugin),
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

pub(crate) fn resolve_reference(plugin: &str) -> anyhow::Result<String> {
    // A path on the command line is taken as given, not relative to plugin.d.
    Ok(if plugin.ends_with(".wasm") && Path::new(plugin).exists() {
        std::fs::canonicalize(plugin).with_context(|| format!("cannot resolve {plugin}"))?.display().to_string()
    } else {
        plugin.to_string()
    })
}

fn try_action(
    cli: &Cli,
    plugin: &str,
    options: &[String],
    jail: &str,
    bans: &[String],
    unbans: &[String],
) -> anyhow::Result<()> {
    let mut pairs = vec![("name".to_string(), jail.to_string())];
    for option in options {
        let (key, value) =
            option.split_once('=').with_context(|| format!("--option {option:?}: write it as KEY=VALUE"))?;
        pairs.push((key.trim().to_string(), value.to_string()));
    }
    // Mail and whois go where the configuration says, if there is one.
    let settings = crate::daemon::settings::Settings::load(&cli.config_dir).unwrap_or_default();
    let runtime =
        Runtime::new(RuntimeOptions { mail: settings.mail, whois: settings.whois, ..RuntimeOptions::default() })?;
    let reg = registry(cli);
    let loaded = runtime.load_named(&reg, &resolve_reference(plugin)?)?;
    let mut action = loaded.action(pairs)?;
    let ticket = |ip: &str| crate::wit::types::Ticket {
        jail: jail.to_string(),
        ip: ip.to_string(),
        failures: 1,
        matches: vec![],
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        bantime: 600,
        ban_count: 0,
        fields: vec![],
    };
    let mut failed = false;
    let mut report = |what: String, result: Result<(), String>| match result {
        Ok(()) => println!("{what}: ok"),
        Err(e) => {
            failed = true;
            println!("{what}: error: {e}");
        }
    };
    println!("create: ok");
    report("start".into(), action.start().map_err(|e| e.to_string()));
    for (verb, ips) in [("ban", bans), ("unban", unbans)] {
        if ips.is_empty() {
            continue;
        }
        let tickets: Vec<_> = ips.iter().map(|ip| ticket(ip)).collect();
        let results = if verb == "ban" { action.ban(&tickets) } else { action.unban(&tickets) };
        match results {
            Ok(results) => {
                for (ip, r) in ips.iter().zip(results) {
                    report(format!("{verb} {ip}"), r);
                }
            }
            Err(e) => report(verb.to_string(), Err(e.to_string())),
        }
    }
    report("stop".into(), action.stop().map_err(|e| e.to_string()));
    if failed {
        anyhow::bail!("the action reported errors (above)");
    }
    Ok(())
}

/// `plugin test`: each filter of the pack, fresh, fed its samples one line
/// at a time in order (a filter may count across lines).
fn test_pack(cli: &Cli, plugin: &str) -> anyhow::Result<()> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let loaded = runtime.load_named(&registry(cli), &resolve_reference(plugin)?)?;
    let info = loaded.describe()?;
    println!("pack {} {} ({} filter(s))", info.name, info.version, info.filters.len());
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut wrong = 0usize;
    for filter in &info.filters {
        if filter.samples.is_empty() {
            wrong += 1;
            println!("  {}: FAIL: no samples; a filter must show what it matches", filter.name);
            continue;
        }
        let mut instance = loaded.pack_filter(&filter.name, Vec::new())?;
        let mut failed = Vec::new();
        for (i, sample) in filter.samples.iter().enumerate() {
            let scan = instance.feed(&sample.line, now, false)?;
            let found = scan.failures.iter().find(|f| f.line == 0).map(|f| f.host.clone());
            if found != sample.expect {
                failed.push(format!(
                    "    sample {}: expected {}, found {}: {}",
                    i + 1,
                    sample.expect.as_deref().unwrap_or("no failure"),
                    found.as_deref().unwrap_or("no failure"),
                    sample.line
                ));
            }
        }
        let expecting = filter.samples.iter().filter(|s| s.expect.is_some()).count();
        if failed.is_empty() {
            println!(
                "  {}: ok, {} samples ({expecting} failures, {} other lines) - {}",
                filter.name,
                filter.samples.len(),
                filter.samples.len() - expecting,
                filter.description
            );
        } else {
            wrong += failed.len();
            println!("  {}: FAIL", filter.name);
            for f in failed {
                println!("{f}");
            }
        }
    }
    if wrong > 0 {
        anyhow::bail!("{wrong} sample(s) of pack {} did not get their verdict", info.name);
    }
    Ok(())
}
