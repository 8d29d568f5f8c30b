//! The one assembly of a jail from its configuration: its source, its
//! filter instance, its actions, and the settings of its tracker and ban
//! manager. `wasmban check` and the daemon both build jails here, so
//! `check` validates exactly the filter the daemon runs (a journal jail's
//! filter skips date detection, a pack's filter reads the pack's default
//! log), and nothing is opened, started or changed by assembling.

use std::net::IpAddr;
use std::sync::Arc;

use crate::bans::{JailAction, JailActions};
use crate::config::action::ActionDefinition;
use crate::config::jail::Jail;
use crate::config::values::Reference;
use crate::config::values::parse_bool;
use crate::daemon::ignore_judge::IgnoreJudge;
use crate::jail::ids::{UseDns, local_addresses, lookup};
use crate::jail::{BanTime, TrackerSettings};
use crate::metrics::{self, PluginKey};
use crate::plugin::{FilterInstance, Plugin, PluginError, Registry, Runtime};
use crate::tail::{Backend, SourceSpec, has_glob};

/// Makes instances of a jail's filter.
pub type FilterMaker = Arc<dyn Fn() -> Result<FilterInstance, String> + Send + Sync>;

/// A jail's filter, planned: the component loaded, the options it will be
/// made with, and the source those options were chosen for.
pub struct FilterPlan {
    /// What the jail reads.
    pub source: SourceSpec,
    /// The options handed to the filter component.
    pub options: Vec<(String, String)>,
    plugin: Plugin,
    pack_filter: Option<String>,
    /// `filter NAME (FILE)`, for errors.
    label: String,
    /// What the admin should hear about how the jail reads (fail2ban 1.1's
    /// switch of `backend = auto` to the journal when no log file exists).
    pub notice: Option<String>,
    /// Why the jail is not to start at all (`skip_if_nologs`).
    pub skipped: Option<String>,
}

impl FilterPlan {
    /// Make the filter instance.
    pub fn instantiate(&self) -> Result<FilterInstance, String> {
        self.plugin
            .filter_for(self.pack_filter.as_deref(), self.options.clone())
            .map_err(|e| format!("{}: {e}", self.label))
    }

    /// What makes `jail`'s filter instances, metered under its name: the
    /// one its reader opens with, and a second one when a burst is split
    /// over two cores (`daemon::read_ahead`).
    pub fn maker_for(&self, jail: &Jail) -> FilterMaker {
        let (plugin, pack_filter, options, label) =
            (self.plugin.clone(), self.pack_filter.clone(), self.options.clone(), self.label.clone());
        let meter = PluginKey {
            jail: jail.name.clone(),
            kind: "filter".into(),
            instance: jail.filter.as_ref().map(|(r, _)| r.name.clone()).unwrap_or_default(),
            plugin: plugin.name().to_string(),
        };
        Arc::new(move || {
            let mut filter =
                plugin.filter_for(pack_filter.as_deref(), options.clone()).map_err(|e| format!("{label}: {e}"))?;
            filter.set_meter(metrics::global().plugin_meter(meter.clone()));
            Ok(filter)
        })
    }

    /// Whether the filter's work on a batch can be split over two
    /// instances (it exports `prepare`).
    pub fn can_prepare(&self) -> bool {
        self.plugin.can_prepare()
    }

    /// Equal for plans that read the same lines and find the same
    /// failures in them: jails whose plans are equal share one read.
    pub fn share_key(&self) -> String {
        let SourceSpec { jail: _, backend, logpaths, journalmatch } = &self.source;
        format!(
            "{}|{:?}|{backend}|{logpaths:?}|{journalmatch:?}|{:?}",
            self.plugin.name(),
            self.pack_filter,
            self.options
        )
    }
}

/// Plan `jail`'s filter and source. A pack's filter may bring the logpath
/// and journalmatch to use when the jail gives none: the pack is asked
/// here, before any source opens.
pub fn plan_filter(jail: &Jail, runtime: &Runtime, registry: &Registry) -> Result<FilterPlan, String> {
    let Some((reference, def)) = &jail.filter else {
        return Err("no filter set (filter = NAME in the jail)".into());
    };
    let label = format!("filter {} ({})", reference.name, def.where_());
    let fail = |e: &dyn std::fmt::Display| format!("{label}: {e}");
    let plugin = runtime.load_named(registry, def.plugin()).map_err(|e| fail(&e))?;
    let mut logpaths = jail.logpath.clone();
    let mut journalmatch = def.get("journalmatch").map(str::to_string);
    if let Some(filter_name) = def.pack_filter() {
        let info = plugin.describe().map_err(|e| fail(&e))?;
        let Some(meta) = info.filters.iter().find(|f| f.name == filter_name) else {
            let names: Vec<&str> = info.filters.iter().map(|f| f.name.as_str()).collect();
            return Err(fail(&format!(
                "the pack {} has no filter {filter_name:?}; it has: {}",
                info.name,
                names.join(", ")
            )));
        };
        if logpaths.is_empty()
            && let Some(default) = &meta.logpath
        {
            logpaths = vec![default.clone()];
        }
        if journalmatch.is_none() {
            journalmatch = meta.journalmatch.clone();
        }
    }
    let journal_running = std::path::Path::new(JOURNALD_SOCKET).exists();
    let (backend, notice, skipped) = when_no_log_exists(jail, &logpaths, journalmatch.is_some(), journal_running)?;
    let source = SourceSpec { jail: jail.name.clone(), backend, logpaths, journalmatch };
    source.validate()?;
    let mut options = def.component_options().map_err(|e| e.to_string())?;
    if let Some(zone) = jail.logtimezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        if def.pack_filter().is_some() {
            return Err(format!(
                "logtimezone = {zone}: {label} is a filter pack's, which reads its own dates; remove logtimezone \
                 from jail {}",
                jail.name
            ));
        }
        // The regex filter applies it to dates that carry no zone, as
        // fail2ban's date detector does; journal entries carry their time.
        options.push(("logtimezone".into(), zone.to_string()));
    }
    if source.is_journal() && def.pack_filter().is_none() {
        // Journal entries carry their time: no date to look for.
        options.push(("journal".into(), "1".into()));
    }
    Ok(FilterPlan {
        source,
        options,
        plugin,
        pack_filter: def.pack_filter().map(str::to_string),
        label,
        notice,
        skipped,
    })
}

/// Present while systemd-journald runs on this host.
const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// fail2ban 1.1's rules for a jail none of whose `logpath` entries names
/// an existing file: with `backend = auto` and a `journalmatch` it reads
/// the journal instead (unless `systemd_if_nologs = false`), here only
/// where a journal is being written (`journal_running`); otherwise
/// `skip_if_nologs = true` skips the jail. wasmban's own rule stays for
/// the rest: the jail waits for its files. The backend, a notice, and why
/// the jail is skipped.
fn when_no_log_exists(
    jail: &Jail,
    logpaths: &[String],
    has_journalmatch: bool,
    journal_running: bool,
) -> Result<(String, Option<String>, Option<String>), String> {
    let backend = jail.backend.clone();
    let word = backend.split(['[', ' ']).next().unwrap_or_default().trim();
    let file_backend = !matches!(Backend::parse(&backend), Ok(Backend::Systemd) | Err(_));
    if !file_backend || logpaths.is_empty() || logpaths.iter().any(|entry| log_exists(entry)) {
        return Ok((backend, None, None));
    }
    let flag = |key: &str, default: bool| match jail.options.get(key) {
        Some(v) => parse_bool(v).map_err(|e| format!("{key}: {e}")),
        None => Ok(default),
    };
    let missing = format!("Have not found any log file for '{}' jail.", jail.name);
    let auto = word.is_empty() || word == "auto";
    if auto && has_journalmatch && journal_running && flag("systemd_if_nologs", true)? {
        return Ok(("systemd".into(), Some(format!("{missing} Jail will monitor systemd journal.")), None));
    }
    if flag("skip_if_nologs", false)? {
        return Ok((
            backend,
            None,
            Some(format!("{missing} Jail skipped (skip_if_nologs), because of missing log files.")),
        ));
    }
    Ok((backend, None, None))
}

/// Whether a `logpath` entry (a path or glob, maybe followed by head or
/// tail) names a file that exists now.
fn log_exists(entry: &str) -> bool {
    let path = entry.split_whitespace().next().unwrap_or_default();
    if has_glob(path) {
        glob::glob(path).is_ok_and(|mut found| found.any(|p| p.is_ok_and(|p| p.is_file())))
    } else {
        std::path::Path::new(path).exists()
    }
}

/// Why an action of a jail was not made.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionProblem {
    /// Its plugin needs a capability the admin has not granted. The jail
    /// runs without it: a grant left out is a choice the admin can still be
    /// making, and one action should not take the other protections (or,
    /// through the unit's `check`, the whole service) down with it.
    Off(String),
    /// The action cannot be made at all (a bad file, a broken plugin,
    /// options the plugin rejects): the jail does not start.
    Broken(String),
}

impl ActionProblem {
    /// What to tell the admin.
    pub fn message(&self) -> &str {
        match self {
            ActionProblem::Off(m) | ActionProblem::Broken(m) => m,
        }
    }
}

/// Make each of `jail`'s actions, or say why it cannot be made.
pub fn actions(jail: &Jail, runtime: &Runtime, registry: &Registry) -> Vec<Result<JailAction, ActionProblem>> {
    jail.actions.iter().map(|(reference, def)| action(&jail.name, reference, def, runtime, registry)).collect()
}

/// Make the action `reference` of jail `jail`, not started.
pub fn action(
    jail: &str,
    reference: &Reference,
    def: &ActionDefinition,
    runtime: &Runtime,
    registry: &Registry,
) -> Result<JailAction, ActionProblem> {
    let label = format!("action {} ({})", reference.name, def.where_());
    let Some(plugin_name) = def.plugin() else {
        return Err(ActionProblem::Broken(format!(
            "{label} has neither `plugin` nor any action command: nothing to run"
        )));
    };
    let plugin = runtime.load_named(registry, plugin_name).map_err(|e| match e {
        PluginError::NotGranted { .. } => ActionProblem::Off(format!("{label}: {e}")),
        other => ActionProblem::Broken(format!("{label}: {other}")),
    })?;
    let mut instance =
        plugin.action(def.plugin_options()).map_err(|e| ActionProblem::Broken(format!("{label}: {e}")))?;
    instance.set_meter(metrics::global().plugin_meter(PluginKey {
        jail: jail.to_string(),
        kind: "action".into(),
        instance: reference.name.clone(),
        plugin: plugin.name().to_string(),
    }));
    let norestored =
        def.options.get("norestored").is_some_and(|v| crate::config::values::parse_bool(v).unwrap_or(false));
    Ok(JailAction { name: reference.name.clone(), instance, norestored, unban_each_at_stop: def.unbans_each_at_stop() })
}

/// `usedns`, from the jail or its filter (fail2ban's default: `warn`).
pub fn usedns(jail: &Jail) -> Result<UseDns, String> {
    let from_filter = jail.filter.as_ref().and_then(|(_, def)| def.get("usedns"));
    UseDns::parse(jail.options.get("usedns").map(String::as_str).or(from_filter).unwrap_or("warn"))
}

/// The tracker's settings, with `ignoreip`'s host names and (with
/// `ignoreself`) this machine's addresses resolved now.
pub fn tracker_settings(jail: &Jail) -> TrackerSettings {
    let mut ignore_addrs: Vec<IpAddr> = Vec::new();
    for name in jail.ignoreip.names() {
        // Bounded like every lookup of a jail's, so that a resolver that
        // hangs cannot hold the jail's start.
        match lookup(name) {
            Ok(addrs) if !addrs.is_empty() => ignore_addrs.extend(addrs),
            Ok(_) => tracing::warn!("[{}] ignoreip name {name} does not resolve; it is skipped", jail.name),
            Err(e) => tracing::warn!("[{}] ignoreip name {name}: {e}; it is skipped", jail.name),
        }
    }
    if jail.ignoreself {
        ignore_addrs.extend(local_addresses());
    }
    TrackerSettings {
        findtime: jail.findtime,
        maxretry: jail.maxretry,
        maxmatches: jail.maxmatches,
        max_tracked: jail.maxtracked,
        ignore: jail.ignoreip.clone(),
        ignore_addrs,
        banprefix: jail.banprefix,
    }
}

/// Everything a running jail is made of, built but not started.
pub struct AssembledJail {
    /// Its filter and what it reads, planned: the filter is made by
    /// whichever jail opens the reader it shares (`shared_read`).
    pub filter: FilterPlan,
    /// Its actions, not started.
    pub actions: JailActions,
    /// How ids that are not addresses are taken.
    pub usedns: UseDns,
    /// Its tracker's settings.
    pub tracker: TrackerSettings,
    /// How long its bans last.
    pub ban_time: BanTime,
    /// What to tell the admin when it starts (see [`FilterPlan::notice`]).
    pub notice: Option<String>,
    /// Its `ignorecommand` or `ignoreplugin`.
    pub ignore: Option<IgnoreJudge>,
    /// Its actions left off for want of a grant, each with the line to add.
    pub actions_off: Vec<String>,
}

/// Build `jail`; the first problem stops it, but for actions whose grant
/// is missing, which are left off.
pub fn assemble(jail: &Jail, runtime: &Runtime, registry: &Registry) -> Result<AssembledJail, String> {
    let plan = plan_filter(jail, runtime, registry)?;
    if let Some(why) = &plan.skipped {
        return Err(why.clone());
    }
    let mut made = Vec::new();
    let mut actions_off = Vec::new();
    for built in actions(jail, runtime, registry) {
        match built {
            Ok(action) => made.push(action),
            Err(ActionProblem::Off(why)) => actions_off.push(why),
            Err(ActionProblem::Broken(why)) => return Err(why),
        }
    }
    let ignore = IgnoreJudge::assemble(jail, runtime, registry)?;
    Ok(AssembledJail {
        notice: plan.notice.clone(),
        filter: plan,
        actions: JailActions::new(&jail.name, made),
        usedns: usedns(jail)?,
        tracker: tracker_settings(jail),
        ban_time: jail.ban_time.clone(),
        ignore,
        actions_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::jail::Jails;

    fn jails(conf: &str, filters: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Jail>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("filter.d")).unwrap();
        for (name, text) in filters {
            std::fs::write(dir.path().join("filter.d").join(format!("{name}.conf")), text).unwrap();
        }
        std::fs::write(dir.path().join("jail.conf"), conf).unwrap();
        let (jails, errors) = Jails::load(dir.path()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        (dir, jails.enabled)
    }

    #[test]
    fn a_journal_jails_filter_is_told_that_lines_carry_their_time() {
        let (_dir, jails) = jails(
            "[DEFAULT]\naction =\n[sshd]\nenabled = true\nfilter = sshd\nbackend = systemd\n",
            &[("sshd", "[Definition]\nfailregex = ^Failed for <HOST>$\njournalmatch = _SYSTEMD_UNIT=ssh.service\n")],
        );
        let runtime = Runtime::new(crate::plugin::RuntimeOptions::default()).unwrap();
        let plan = plan_filter(&jails[0], &runtime, &Registry::new(None)).unwrap();
        assert!(plan.source.is_journal());
        assert_eq!(plan.source.journalmatch.as_deref(), Some("_SYSTEMD_UNIT=ssh.service"));
        assert!(plan.options.contains(&("journal".into(), "1".into())), "{:?}", plan.options);
        plan.instantiate().unwrap();
    }

    #[test]
    fn an_action_without_its_grant_is_left_off_and_the_jail_is_built() {
        let (dir, _) = jails("", &[("svc", "[Definition]\nfailregex = ^x <HOST>$\n")]);
        std::fs::create_dir_all(dir.path().join("action.d")).unwrap();
        std::fs::write(dir.path().join("action.d/note.conf"), "[Definition]\nactionban = echo <ip>\n").unwrap();
        let conf = "[svc]\nenabled = true\nfilter = svc\nlogpath = /dev/null\naction = note\n";
        std::fs::write(dir.path().join("jail.conf"), conf).unwrap();
        let (loaded, errors) = Jails::load(dir.path()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let runtime = Runtime::new(crate::plugin::RuntimeOptions::default()).unwrap();
        let built = assemble(&loaded.enabled[0], &runtime, &Registry::new(None)).unwrap_or_else(|e| panic!("{e}"));
        assert!(built.actions.names().is_empty());
        let [off] = &built.actions_off[..] else { panic!("{:?}", built.actions_off) };
        assert!(off.starts_with("action note (") && off.contains("add `shell = true` under [grants]"), "{off}");
    }

    #[test]
    fn a_files_jails_filter_looks_for_dates() {
        let (_dir, jails) = jails(
            "[DEFAULT]\naction =\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = /var/log/auth.log\n",
            &[("sshd", "[Definition]\nfailregex = ^Failed for <HOST>$\n")],
        );
        let runtime = Runtime::new(crate::plugin::RuntimeOptions::default()).unwrap();
        let plan = plan_filter(&jails[0], &runtime, &Registry::new(None)).unwrap();
        assert!(!plan.source.is_journal());
        assert!(!plan.options.iter().any(|(k, _)| k == "journal"), "{:?}", plan.options);
    }

    #[test]
    fn a_jail_without_its_log_files_reads_the_journal_or_is_skipped_as_fail2ban_1_1_says() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.log").display().to_string();
        let present = dir.path().join("here.log");
        std::fs::write(&present, "").unwrap();
        let jail_with = |extra: &str, logpath: &str| {
            let (_d, jails) = jails(
                &format!("[DEFAULT]\naction =\n[svc]\nenabled = true\nfilter = svc\nlogpath = {logpath}\n{extra}"),
                &[("svc", "[Definition]\nfailregex = ^Failed for <HOST>$\n")],
            );
            jails[0].clone()
        };
        let decide = |jail: &Jail, logpath: &str, journalmatch: bool, running: bool| {
            when_no_log_exists(jail, &[logpath.to_string()], journalmatch, running).unwrap()
        };
        let auto = jail_with("", &missing);
        let (backend, notice, skipped) = decide(&auto, &missing, true, true);
        assert_eq!(backend, "systemd");
        assert!(notice.unwrap().ends_with("Jail will monitor systemd journal.") && skipped.is_none());
        // No journal being written, no journalmatch, a file there, another
        // backend, or systemd_if_nologs = false: the files are waited for.
        assert_eq!(decide(&auto, &missing, true, false), ("auto".into(), None, None));
        assert_eq!(decide(&auto, &missing, false, true), ("auto".into(), None, None));
        let here = present.display().to_string();
        assert_eq!(decide(&jail_with("", &here), &here, true, true), ("auto".into(), None, None));
        let polling = jail_with("backend = polling\n", &missing);
        assert_eq!(decide(&polling, &missing, true, true).0, "polling");
        let no_switch = jail_with("systemd_if_nologs = false\n", &missing);
        assert_eq!(decide(&no_switch, &missing, true, true).0, "auto");
        // skip_if_nologs: the jail does not start.
        let skip = jail_with("skip_if_nologs = true\n", &missing);
        let (_, _, skipped) = decide(&skip, &missing, false, true);
        assert!(skipped.unwrap().contains("Jail skipped"));
        assert!(decide(&skip, &format!("{}/*.log", dir.path().display()), false, true).2.is_none());
    }
}
