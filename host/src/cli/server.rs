//! `wasmban server`: run the daemon in the foreground.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cli::Cli;
use crate::daemon::clock::SystemClock;
use crate::daemon::settings::Settings;
use crate::daemon::{ServerOptions, logging};

/// Arguments of `wasmban server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Seconds between looks at log files when no file event arrives.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub poll_interval: f64,
}

/// Start the daemon; returns when it stops.
pub fn run(cli: &Cli, args: &ServerArgs) -> anyhow::Result<()> {
    // SAFETY: first thing the daemon does, before it starts any thread.
    let notifier = unsafe { crate::daemon::notify::Notifier::from_env() };
    let settings = match Settings::load(&cli.config_dir) {
        Ok(s) => s,
        Err(e) => {
            let _ = logging::init(&Settings::default());
            return Err(e.into());
        }
    };
    let log = logging::init(&settings)?;
    for notice in &settings.notices {
        tracing::warn!("{notice}");
    }
    if !(0.01..=60.0).contains(&args.poll_interval) {
        anyhow::bail!("--poll-interval {}: give between 0.01 and 60 seconds", args.poll_interval);
    }
    crate::daemon::run(ServerOptions {
        confdir: cli.config_dir.clone(),
        socket: cli.socket.clone(),
        state_dir: cli.state_dir.clone(),
        clock: Arc::new(SystemClock),
        poll_interval: Duration::from_secs_f64(args.poll_interval),
        dbpurgeage: settings.dbpurgeage,
        dbmaxmatches: settings.dbmaxmatches,
        log: Some(log),
        syslogsocket: settings.syslogsocket.clone(),
        mail: settings.mail.clone(),
        whois: settings.whois.clone(),
        metrics_listen: settings.metrics_listen,
        lapi: settings.lapi.clone(),
        fleet: settings.fleet.clone(),
        notifier,
        pidfile: settings.pidfile.clone(),
    })
}
