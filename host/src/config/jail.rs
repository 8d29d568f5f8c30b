//! Jails: `jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local`,
//! typed, with their filter and actions resolved.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::config::action::ActionDefinition;
use crate::config::filter::{FILTER_OPTIONS, FilterDefinition};
use crate::config::ini::{Ini, require_layered_files};
use crate::config::interp::Vars;
use crate::config::values::{Reference, is_utf8_encoding, parse_bool, parse_reference, parse_time, split_references};

/// The jail options fail2ban reads (besides the filter options a jail may
/// override); these are what filters and actions see of their jail.
pub const JAIL_OPTIONS: &[&str] = &[
    "enabled",
    "backend",
    "maxretry",
    "maxmatches",
    "findtime",
    "bantime",
    "bantime.increment",
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
    "ignorecommand",
    "ignoreself",
    "ignoreip",
    "ignorecache",
    "filter",
    "logtimezone",
    "logencoding",
    "logpath",
    "action",
    // fail2ban 1.1: what a jail does when no file matches its logpath.
    "skip_if_nologs",
    "systemd_if_nologs",
    // wasmban's own: how often actions are compared with the bans in force,
    // and a component that decides what to ignore (ignorecommand's sandboxed
    // alternative).
    "reconcile",
    "ignoreplugin",
    // wasmban's own: count and ban the prefix an address is in (an IPv6
    // attacker holds a whole /64).
    "banprefix4",
    "banprefix6",
    // wasmban's own: whether the jail shares its bans with the fleet and
    // applies the fleet's.
    "fleet",
    // wasmban's own: how many addresses a jail counts at most (an attack
    // from a million addresses must not take the memory of a million).
    "maxtracked",
];

/// What a jail does with the fleet (`fleet =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetMode {
    /// Neither shares nor applies.
    Off,
    /// Publishes its bans.
    Share,
    /// Applies the fleet's bans.
    Receive,
    /// Both.
    Both,
}

impl FleetMode {
    /// Whether the jail publishes its bans.
    pub fn shares(self) -> bool {
        matches!(self, FleetMode::Share | FleetMode::Both)
    }

    /// Whether the jail applies the fleet's bans.
    pub fn receives(self) -> bool {
        matches!(self, FleetMode::Receive | FleetMode::Both)
    }
}

/// One jail, typed.
#[derive(Debug, Clone)]
pub struct Jail {
    /// The section name.
    pub name: String,
    /// `enabled`.
    pub enabled: bool,
    /// `backend`: auto, polling, pyinotify/inotify, systemd[...].
    pub backend: String,
    /// `logpath` entries (globs), one per line.
    pub logpath: Vec<String>,
    /// `maxretry`.
    pub maxretry: u32,
    /// `maxmatches`.
    pub maxmatches: u32,
    /// `maxtracked` (wasmban's own): ids counted at most.
    pub maxtracked: usize,
    /// `findtime` in seconds.
    pub findtime: i64,
    /// `bantime` in seconds; negative means forever.
    pub bantime: i64,
    /// `reconcile` (wasmban's own): seconds between comparisons of each
    /// action's firewall state with the bans in force; 0 turns them off.
    pub reconcile: i64,
    /// The ban time rule: `bantime` with the `bantime.increment` family.
    pub ban_time: crate::jail::BanTime,
    /// `ignoreip`, parsed.
    pub ignoreip: crate::jail::IgnoreList,
    /// `ignoreself`.
    pub ignoreself: bool,
    /// `banprefix4` and `banprefix6` (wasmban's own).
    pub banprefix: crate::jail::BanPrefixes,
    /// `fleet` (wasmban's own).
    pub fleet: FleetMode,
    /// `logtimezone`.
    pub logtimezone: Option<String>,
    /// The filter reference and its resolved definition.
    pub filter: Option<(Reference, FilterDefinition)>,
    /// The actions, resolved.
    pub actions: Vec<(Reference, ActionDefinition)>,
    /// Every jail option read, interpolated (for later issues and `status`).
    pub options: Vars,
}

/// All jails of a configuration directory.
#[derive(Debug)]
pub struct Jails {
    /// The enabled jails, resolved; disabled ones are not resolved.
    pub enabled: Vec<Jail>,
    /// Names of the disabled jails.
    pub disabled: Vec<String>,
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Keys that look like a mistyped jail option, for a warning.
    pub suspects: Vec<crate::config::typos::Suspect>,
}

impl Jails {
    /// Read and resolve every jail of `confdir`. Each jail's problems are
    /// collected so that one bad jail does not hide the others.
    pub fn load(confdir: &Path) -> Result<(Jails, Vec<ConfigError>), ConfigError> {
        let files = require_layered_files("jail configuration", "jail", &confdir.join("jail"))?;
        let mut ini = Ini::read(&files)?;
        // fail2ban defines these for jail configurations.
        for (key, value) in [
            ("fail2ban_confpath", confdir.display().to_string()),
            ("fail2ban_version", env!("CARGO_PKG_VERSION").to_string()),
        ] {
            let origin = crate::config::ini::Origin { file: PathBuf::from("(built in)"), line: 0 };
            ini.defaults.entry(key.to_string()).or_insert(crate::config::ini::RawValue { text: value, origin });
        }
        let suspects = crate::config::typos::suspects(&ini);
        let mut jails = Jails { enabled: Vec::new(), disabled: Vec::new(), files: ini.files.clone(), suspects };
        let mut errors = Vec::new();
        for name in ini.sections.keys() {
            if name == "INCLUDES" || name.starts_with("KNOWN/") {
                continue;
            }
            match load_jail(confdir, &ini, name) {
                Ok(Some(jail)) => jails.enabled.push(jail),
                Ok(None) => jails.disabled.push(name.clone()),
                // A value error names its section already.
                Err(e @ ConfigError::Value { .. }) => errors.push(e),
                Err(e) => errors.push(ConfigError::Jail { jail: name.clone(), inner: Box::new(e) }),
            }
        }
        Ok((jails, errors))
    }
}

fn value_error(ini: &Ini, section: &str, option: &str, message: String) -> ConfigError {
    ConfigError::Value {
        where_: ini.raw(section, option).map(|r| r.origin.to_string()).unwrap_or_else(|| "jail configuration".into()),
        section: section.to_string(),
        option: option.to_string(),
        message,
    }
}

fn load_jail(confdir: &Path, ini: &Ini, name: &str) -> Result<Option<Jail>, ConfigError> {
    let get = |opt: &str| ini.get(name, opt, &Vars::new());
    let enabled = match get("enabled")? {
        Some(v) => parse_bool(&v).map_err(|m| value_error(ini, name, "enabled", m))?,
        None => false,
    };
    if !enabled {
        return Ok(None);
    }
    let mut options = Vars::new();
    for opt in JAIL_OPTIONS.iter().chain(FILTER_OPTIONS.iter()) {
        if let Some(v) = get(opt)? {
            options.insert(opt.to_string(), v);
        }
    }
    let error = |opt: &str, message: String| value_error(ini, name, opt, message);
    let typed = TypedOptions::read(&options, &error)?;
    // The filter and actions see the jail's options, but not the jail's own
    // references to them.
    let mut seen = options.clone();
    seen.remove("filter");
    seen.remove("action");
    seen.remove("enabled");
    let filter = match options.get("filter").map(|f| f.trim()).filter(|f| !f.is_empty()) {
        Some(text) => {
            let reference = parse_reference(text).map_err(|m| value_error(ini, name, "filter", m))?;
            // As fail2ban does: filters learn whether their lines come from
            // the journal (prefixes differ), unless the jail says otherwise.
            let mut params = reference.params.clone();
            if !params.iter().any(|(k, _)| k == "logtype") {
                let journal = options.get("backend").is_some_and(|b| b.trim().starts_with("systemd"));
                params.push(("logtype".into(), if journal { "journal" } else { "file" }.into()));
            }
            let def = match FilterDefinition::from_pack(&reference.name, &reference.params) {
                Some(def) => def,
                None => FilterDefinition::load_for_jail(confdir, &reference.name, &params, &seen)?,
            };
            Some((reference, def))
        }
        None => None,
    };
    let mut actions = Vec::new();
    if let Some(text) = options.get("action") {
        for item in split_references(text) {
            let reference = parse_reference(&item).map_err(|m| value_error(ini, name, "action", m))?;
            actions.push(resolve_action(confdir, name, &seen, reference)?);
        }
    }
    let mut jail = Jail {
        name: name.to_string(),
        enabled,
        backend: String::new(),
        logpath: Vec::new(),
        maxretry: 0,
        maxmatches: 0,
        maxtracked: 0,
        findtime: 0,
        bantime: 0,
        ban_time: crate::jail::BanTime { base: 0, increment: None },
        reconcile: 0,
        ignoreip: crate::jail::IgnoreList::default(),
        banprefix: crate::jail::BanPrefixes::default(),
        fleet: FleetMode::Off,
        ignoreself: true,
        logtimezone: None,
        filter,
        actions,
        options,
    };
    typed.apply(&mut jail);
    Ok(Some(jail))
}

/// The action `reference` of jail `name`, whose options are `seen`.
fn resolve_action(
    confdir: &Path,
    name: &str,
    seen: &Vars,
    reference: Reference,
) -> Result<(Reference, ActionDefinition), ConfigError> {
    // As fail2ban does: an action is given its jail's name as `name`
    // unless the jail says otherwise (chains are f2b-<name>).
    let mut params = reference.params.clone();
    if !params.iter().any(|(k, _)| k == "name") {
        params.push(("name".into(), name.to_string()));
    }
    let def = ActionDefinition::load(confdir, &reference.name, &params, seen)?;
    Ok((reference, def))
}

impl Jail {
    /// The action `text` (`NAME[key=value, ...]`) resolved for this jail
    /// from `confdir`, as a line of its `action` option would be (fail2ban's
    /// runtime `addaction`).
    pub fn resolve_action(&self, confdir: &Path, text: &str) -> Result<(Reference, ActionDefinition), String> {
        let reference = parse_reference(text).map_err(|m| format!("addaction {text:?}: {m}"))?;
        let mut seen = self.options.clone();
        for own in ["filter", "action", "enabled"] {
            seen.remove(own);
        }
        resolve_action(confdir, &self.name, &seen, reference).map_err(|e| e.to_string())
    }

    /// Type `options` again after a runtime `set` changed them: every
    /// value is checked as the configuration's would be, and nothing of
    /// the jail changes when one is wrong.
    pub fn retype_options(&mut self) -> Result<(), String> {
        let section = self.name.clone();
        let error = |opt: &str, message: String| ConfigError::Value {
            where_: "set (until the next reload)".into(),
            section: section.clone(),
            option: opt.to_string(),
            message,
        };
        let typed = TypedOptions::read(&self.options, &error).map_err(|e| e.to_string())?;
        typed.apply(self);
        Ok(())
    }
}

/// A jail's options with a type, read from its interpolated values.
struct TypedOptions {
    backend: String,
    logpath: Vec<String>,
    maxretry: u32,
    maxmatches: u32,
    maxtracked: usize,
    findtime: i64,
    ban_time: crate::jail::BanTime,
    reconcile: i64,
    ignoreip: crate::jail::IgnoreList,
    ignoreself: bool,
    banprefix: crate::jail::BanPrefixes,
    fleet: FleetMode,
    logtimezone: Option<String>,
}

impl TypedOptions {
    fn read(options: &Vars, error: &dyn Fn(&str, String) -> ConfigError) -> Result<TypedOptions, ConfigError> {
        let time = |opt: &str, default: i64| -> Result<i64, ConfigError> {
            match options.get(opt) {
                Some(v) => parse_time(v).map_err(|m| error(opt, m)),
                None => Ok(default),
            }
        };
        let count = |opt: &str, default: u32| -> Result<u32, ConfigError> {
            match options.get(opt) {
                Some(v) => v.trim().parse().map_err(|_| error(opt, format!("{v:?} is not a whole number"))),
                None => Ok(default),
            }
        };
        let flag = |opt: &str, default: bool| -> Result<bool, ConfigError> {
            match options.get(opt) {
                Some(v) => parse_bool(v).map_err(|m| error(opt, m)),
                None => Ok(default),
            }
        };
        if let Some(encoding) = options.get("logencoding").filter(|e| !is_utf8_encoding(e)) {
            return Err(error(
                "logencoding",
                format!(
                    "{encoding:?}: wasmban reads logs as UTF-8 only; have the service write UTF-8 (or convert the log) \
                     and set logencoding = auto"
                ),
            ));
        }
        let bantime = time("bantime", 600)?;
        let reconcile = time("reconcile", 300)?;
        if reconcile < 0 {
            return Err(error("reconcile", format!("{reconcile}: expected a time of 0 (never) or more")));
        }
        let increment = if flag("bantime.increment", false)? {
            let factor = match options.get("bantime.factor") {
                Some(v) => {
                    v.trim().parse::<f64>().map_err(|_| error("bantime.factor", format!("{v:?} is not a number")))?
                }
                None => 1.0,
            };
            let multipliers = match options.get("bantime.multipliers") {
                Some(v) => {
                    v.split_whitespace().map(|m| m.parse::<f64>()).collect::<Result<Vec<f64>, _>>().map_err(|_| {
                        error("bantime.multipliers", format!("{v:?}: expected numbers separated by spaces"))
                    })?
                }
                None => Vec::new(),
            };
            if let Some(formula) = options.get("bantime.formula").map(|f| f.trim()).filter(|f| !f.is_empty()) {
                let default = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";
                if formula.replace(' ', "") != default.replace(' ', "") {
                    return Err(error("bantime.formula",
                        "custom Python formulas are not evaluated by wasmban; express the growth with bantime.multipliers (and bantime.factor, bantime.maxtime)".into(),
                    ));
                }
            }
            let optional_time = |opt: &str| -> Result<Option<i64>, ConfigError> {
                options.get(opt).map(|v| parse_time(v).map_err(|m| error(opt, m))).transpose()
            };
            Some(crate::jail::Increment {
                factor,
                multipliers,
                maxtime: optional_time("bantime.maxtime")?,
                rndtime: optional_time("bantime.rndtime")?,
                overalljails: flag("bantime.overalljails", false)?,
            })
        } else {
            None
        };
        let ignoreip = crate::jail::IgnoreList::parse(options.get("ignoreip").map(String::as_str).unwrap_or(""))
            .map_err(|m| error("ignoreip", m))?;
        let banprefix = crate::jail::BanPrefixes::parse(
            options.get("banprefix4").map(String::as_str),
            options.get("banprefix6").map(String::as_str),
        )
        .map_err(|(key, m)| error(key, m))?;
        let fleet = match options.get("fleet").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("off") | Some("") => FleetMode::Off,
            Some("share") => FleetMode::Share,
            Some("receive") => FleetMode::Receive,
            Some("both") => FleetMode::Both,
            Some(other) => return Err(error("fleet", format!("{other:?}: use share, receive, both or off"))),
        };
        Ok(TypedOptions {
            banprefix,
            fleet,
            backend: options.get("backend").cloned().unwrap_or_else(|| "auto".into()),
            logpath: options
                .get("logpath")
                .map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
                .unwrap_or_default(),
            maxretry: count("maxretry", 5)?,
            maxmatches: count("maxmatches", count("maxretry", 5)?)?,
            maxtracked: match count("maxtracked", crate::jail::counter::DEFAULT_MAX_TRACKED as u32)? {
                0 => return Err(error("maxtracked", "0: a jail must count at least 1 address".into())),
                n => n as usize,
            },
            findtime: time("findtime", 600)?,
            ban_time: crate::jail::BanTime { base: bantime, increment },
            reconcile,
            ignoreip,
            ignoreself: flag("ignoreself", true)?,
            logtimezone: options.get("logtimezone").cloned(),
        })
    }

    fn apply(self, jail: &mut Jail) {
        jail.backend = self.backend;
        jail.fleet = self.fleet;
        jail.logpath = self.logpath;
        jail.maxretry = self.maxretry;
        jail.maxmatches = self.maxmatches;
        jail.maxtracked = self.maxtracked;
        jail.findtime = self.findtime;
        jail.bantime = self.ban_time.base;
        jail.ban_time = self.ban_time;
        jail.reconcile = self.reconcile;
        jail.ignoreip = self.ignoreip;
        jail.ignoreself = self.ignoreself;
        jail.banprefix = self.banprefix;
        jail.logtimezone = self.logtimezone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("filter.d")).unwrap();
        std::fs::create_dir_all(d.join("action.d")).unwrap();
        std::fs::write(d.join("filter.d/svc.conf"), "[Definition]\nfailregex = ^fail <HOST> %(mode)s\nmode = n\n")
            .unwrap();
        std::fs::write(d.join("action.d/fw.conf"), "[Definition]\nplugin = iptables\n[Init]\nname = default\n")
            .unwrap();
        std::fs::write(
            d.join("jail.conf"),
            "[DEFAULT]\nbantime = 10m\nmaxretry = 5\naction = fw[name=%(__name__)s]\n[svc]\nfilter = svc[mode=aggr]\nfindtime = 1h\n[off]\nenabled = false\n",
        )
        .unwrap();
        std::fs::write(d.join("jail.local"), "[svc]\nenabled = true\nbantime = -1\n").unwrap();
        let (jails, errors) = Jails::load(d).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(jails.disabled, ["off"]);
        let svc = &jails.enabled[0];
        assert_eq!((svc.bantime, svc.findtime, svc.maxretry), (-1, 3600, 5));
        let (_, f) = svc.filter.as_ref().unwrap();
        assert_eq!(f.list("failregex"), ["^fail <HOST> aggr"]);
        let (_, a) = &svc.actions[0];
        assert_eq!(a.plugin(), Some("iptables"));
        assert_eq!(a.options["name"], "svc");
    }

    #[test]
    fn an_action_without_a_name_gets_its_jails() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("action.d")).unwrap();
        std::fs::write(d.join("action.d/fw.conf"), "[Definition]\nplugin = iptables\n[Init]\nname = default\n")
            .unwrap();
        std::fs::write(
            d.join("jail.conf"),
            "[DEFAULT]\naction = fw[port=22]\n[sshd]\nenabled = true\n[web]\nenabled = true\naction = fw[name=www]\n",
        )
        .unwrap();
        let (jails, errors) = Jails::load(d).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = jails.enabled.iter().map(|j| j.actions[0].1.options["name"].as_str()).collect();
        assert_eq!(names, ["sshd", "www"]);
    }

    #[test]
    fn ban_time_increments_and_ignore_lists_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jail.conf"),
            "[svc]\nenabled = true\nbantime = 10m\nbantime.increment = true\nbantime.multipliers = 1 2 4\nbantime.maxtime = 1h\nignoreip = 127.0.0.1/8 ::1\n",
        )
        .unwrap();
        let (jails, errors) = Jails::load(dir.path()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let j = &jails.enabled[0];
        assert_eq!(j.ban_time.seconds(5, 0.0), 2400);
        assert!(j.ignoreip.covers("127.0.0.53".parse().unwrap()));
        std::fs::write(
            dir.path().join("jail.local"),
            "[svc]\nignoreip = 10.0.0.0/40\nbantime.formula = ban.Time * 3\n",
        )
        .unwrap();
        let (_, errors) = Jails::load(dir.path()).unwrap();
        let e = errors[0].to_string();
        assert!(e.contains("[svc] bantime.formula") || e.contains("[svc] ignoreip"), "{e}");
    }

    #[test]
    fn maxtracked_defaults_to_the_cap_and_refuses_zero() {
        let dir = tempfile::tempdir().unwrap();
        let jail = |extra: &str| format!("[svc]\nenabled = true\n{extra}");
        std::fs::write(dir.path().join("jail.conf"), jail("")).unwrap();
        let (jails, _) = Jails::load(dir.path()).unwrap();
        assert_eq!(jails.enabled[0].maxtracked, crate::jail::counter::DEFAULT_MAX_TRACKED);
        std::fs::write(dir.path().join("jail.conf"), jail("maxtracked = 2000000\n")).unwrap();
        assert_eq!(Jails::load(dir.path()).unwrap().0.enabled[0].maxtracked, 2_000_000);
        std::fs::write(dir.path().join("jail.conf"), jail("maxtracked = 0\n")).unwrap();
        let e = Jails::load(dir.path()).unwrap().1[0].to_string();
        assert!(e.contains("[svc] maxtracked") && e.contains("at least 1"), "{e}");
    }

    #[test]
    fn a_bad_value_names_file_section_and_option() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jail.conf"), "[svc]\nenabled = true\nbantime = 10 parsecs\n").unwrap();
        let (_, errors) = Jails::load(dir.path()).unwrap();
        let e = errors[0].to_string();
        assert!(e.contains("jail.conf:3") && e.contains("[svc] bantime") && e.contains("parsecs"), "{e}");
    }

    #[test]
    fn an_encoding_other_than_utf8_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let jail = |encoding: &str| format!("[svc]\nenabled = true\nlogencoding = {encoding}\n");
        std::fs::write(dir.path().join("jail.conf"), jail("latin-1")).unwrap();
        let (_, errors) = Jails::load(dir.path()).unwrap();
        let e = errors[0].to_string();
        assert!(e.contains("[svc] logencoding") && e.contains("UTF-8"), "{e}");
        for fine in ["auto", "UTF-8", "utf8"] {
            std::fs::write(dir.path().join("jail.conf"), jail(fine)).unwrap();
            assert!(Jails::load(dir.path()).unwrap().1.is_empty(), "{fine}");
        }
    }
}
