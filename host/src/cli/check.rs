//! `wasmban check`: read the whole configuration and build everything that
//! starting would build (filters compiled in their component, actions
//! created in theirs), without changing anything on the system.

use std::path::Path;

use crate::cli::Cli;
use crate::config::jail::{Jail, Jails};
use crate::daemon::assemble;
use crate::plugin::{Registry, Runtime, RuntimeOptions};
use crate::tail::{Backend, has_glob};

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
    // The daemon's own assembly, piece by piece, so that every problem is
    // reported rather than the first.
    let mut source = None;
    if jail.filter.is_none() {
        report(warnings, "no filter set: the jail will never find a failure".into());
    } else {
        match assemble::plan_filter(jail, runtime, registry) {
            Ok(plan) => {
                if let Some(why) = &plan.skipped {
                    // fail2ban starts without such a jail; so does wasmban.
                    report(warnings, why.clone());
                    return;
                }
                if let Some(notice) = &plan.notice {
                    report(warnings, notice.clone());
                }
                if let Err(e) = plan.instantiate() {
                    report(errors, e);
                }
                source = Some(plan.source);
            }
            Err(e) => report(errors, e),
        }
    }
    if jail.actions.is_empty() {
        report(warnings, "no action set: failures will be counted but nobody is banned".into());
    }
    for built in assemble::actions(jail, runtime, registry) {
        match built {
            Ok(_) => {}
            Err(assemble::ActionProblem::Off(why)) => {
                report(warnings, format!("{why}; the jail will run without this action"))
            }
            Err(assemble::ActionProblem::Broken(why)) => report(errors, why),
        }
    }
    if let Err(e) = crate::daemon::ignore_judge::IgnoreJudge::assemble(jail, runtime, registry) {
        report(errors, e);
    }
    if let Err(e) = assemble::usedns(jail) {
        report(errors, e);
    }
    let Some(source) = source else {
        // Without a filter the source was not checked with it.
        if let Err(e) = Backend::parse(&jail.backend) {
            report(errors, format!("backend: {e}"));
        }
        return;
    };
    if source.logpaths.is_empty() && !source.is_journal() {
        report(warnings, format!("no logpath and backend {}: nothing to read", jail.backend));
    }
    if source.is_journal() {
        return;
    }
    for path in &source.logpaths {
        let path = path.split_whitespace().next().unwrap_or(path);
        if !has_glob(path) && !Path::new(path).exists() {
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
    // The daemon's own settings (wasmban.conf): a bad one stops the start.
    let notices = match crate::daemon::settings::Settings::load(&cli.config_dir) {
        Ok(settings) => settings.notices,
        Err(e) => {
            errors.push(Finding { jail: String::new(), message: e.to_string() });
            Vec::new()
        }
    };
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
    for notice in &notices {
        println!("warning: {notice}");
    }
    for suspect in &jails.suspects {
        println!("warning: {suspect}");
    }
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
