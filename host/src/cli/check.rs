//! `wasmban check`: read the whole configuration and build everything that
//! starting would build (filters compiled in their component, actions
//! created in theirs), without changing anything on the system.

use std::path::Path;

use crate::cli::Cli;
use crate::config::jail::{Jail, Jails};
use crate::daemon::source::has_glob;
use crate::plugin::{Registry, Runtime, RuntimeOptions};

/// One finding.
struct Finding {
    jail: String,
    message: String,
}

fn check_jail(
    jail: &Jail,
    registry: &Registry,
    runtime: &Runtime,
    errors: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) {
    let report = |list: &mut Vec<Finding>, message: String| list.push(Finding { jail: jail.name.clone(), message });
    match &jail.filter {
        None => report(warnings, "no filter set: the jail will never find a failure".into()),
        Some((reference, def)) => {
            let built = def.component_options().map_err(|e| e.to_string()).and_then(|options| {
                let plugin = runtime.load_named(registry, def.plugin()).map_err(|e| e.to_string())?;
                plugin.filter_for(def.pack_filter(), options).map(|_| ()).map_err(|e| e.to_string())
            });
            if let Err(e) = built {
                report(errors, format!("filter {} ({}): {e}", reference.name, def.where_()));
            }
        }
    }
    if jail.actions.is_empty() {
        report(warnings, "no action set: failures will be counted but nobody is banned".into());
    }
    for (reference, def) in &jail.actions {
        match def.plugin() {
            None => report(
                errors,
                format!(
                    "action {} ({}) has neither `plugin` nor any action command: nothing to run",
                    reference.name,
                    def.where_()
                ),
            ),
            Some(name) => {
                let built = runtime
                    .load_named(registry, name)
                    .and_then(|plugin| plugin.action(def.plugin_options()).map(|_| ()))
                    .map_err(|e| e.to_string());
                if let Err(e) = built {
                    report(errors, format!("action {} ({}): {e}", reference.name, def.where_()));
                }
            }
        }
    }
    if jail.options.get("ignorecommand").is_some_and(|c| !c.trim().is_empty()) {
        report(
            warnings,
            "ignorecommand is not run by wasmban (it would need a shell); list the addresses in ignoreip instead"
                .into(),
        );
    }
    if let Err(e) = crate::daemon::source::Backend::parse(&jail.backend) {
        report(errors, format!("backend: {e}"));
    }
    let systemd = jail.backend.trim_start().starts_with("systemd");
    let from_pack = jail.filter.as_ref().is_some_and(|(_, def)| def.pack_filter().is_some());
    if jail.logpath.is_empty() && !systemd && !from_pack {
        report(warnings, format!("no logpath and backend {}: nothing to read", jail.backend));
    }
    for path in &jail.logpath {
        let path = path.split_whitespace().next().unwrap_or(path);
        if !systemd && !has_glob(path) && !Path::new(path).exists() {
            report(warnings, format!("log {path} does not exist yet; the jail will wait for it"));
        }
    }
}

/// Run `wasmban check`; returns whether the configuration is usable.
pub fn run(cli: &Cli) -> anyhow::Result<bool> {
    let (jails, load_errors) = Jails::load(&cli.config_dir)?;
    let registry = Registry::new(Some(cli.plugin_dir()));
    let runtime = Runtime::new(RuntimeOptions { cache_dir: Some(cli.cache_dir()), ..RuntimeOptions::default() })?;
    let mut errors: Vec<Finding> =
        load_errors.into_iter().map(|e| Finding { jail: String::new(), message: e.to_string() }).collect();
    let mut warnings = Vec::new();
    for jail in &jails.enabled {
        check_jail(jail, &registry, &runtime, &mut errors, &mut warnings);
    }
    println!("configuration: {}", cli.config_dir.display());
    println!("files read: {}", jails.files.len());
    println!(
        "jails: {} enabled ({}), {} disabled",
        jails.enabled.len(),
        jails.enabled.iter().map(|j| j.name.as_str()).collect::<Vec<_>>().join(", "),
        jails.disabled.len()
    );
    for w in &warnings {
        println!("warning: [{}] {}", w.jail, w.message);
    }
    for e in &errors {
        if e.jail.is_empty() {
            println!("error: {}", e.message);
        } else {
            println!("error: [{}] {}", e.jail, e.message);
        }
    }
    if errors.is_empty() {
        println!("OK");
        Ok(true)
    } else {
        println!("{} error(s)", errors.len());
        Ok(false)
    }
}
