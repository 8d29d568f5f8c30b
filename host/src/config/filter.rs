//! A filter definition (`filter.d/NAME.conf` + `.local`, or a file given by
//! path) resolved the way fail2ban resolves it: `[Definition]` options
//! interpolated with the jail's parameters as vars, `[Init]` values and the
//! parameters combined over them, then `<tag>` substitution.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::config::ini::{Ini, require_layered_files};
use crate::config::interp::{Given, Vars, combine_definition};

/// The `[Definition]` options a filter is made of.
pub const FILTER_OPTIONS: &[&str] =
    &["usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch", "plugin"];

/// A resolved filter.
#[derive(Debug, Clone)]
pub struct FilterDefinition {
    /// Its name (file stem).
    pub name: String,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Every combined option after interpolation and tag substitution.
    pub options: BTreeMap<String, String>,
}

impl FilterDefinition {
    /// The filter `NAME` of the configuration directory `confdir`
    /// (`filter.d/NAME.conf`, `filter.d/NAME.d/*.conf`, `.local`s).
    pub fn load(confdir: &Path, name: &str, params: &[(String, String)]) -> Result<Self, ConfigError> {
        Self::load_for_jail(confdir, name, params, &Vars::new())
    }

    /// The filter `NAME` as a jail uses it: the jail's options are visible
    /// to `%(name)s` (under the filter's own parameters).
    pub fn load_for_jail(
        confdir: &Path,
        name: &str,
        params: &[(String, String)],
        jail: &Vars,
    ) -> Result<Self, ConfigError> {
        let files = require_layered_files("filter", name, &confdir.join("filter.d").join(name))?;
        let ini = Ini::read(&files)?;
        Self::resolve(name, ini, params, jail)
    }

    /// A filter given by its file path, as `fail2ban-regex` reads one.
    pub fn load_file(path: &Path, params: &[(String, String)]) -> Result<Self, ConfigError> {
        let ini = Ini::read_explicit(path)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Self::resolve(&name, ini, params, &Vars::new())
    }

    fn resolve(name: &str, ini: Ini, params: &[(String, String)], jail: &Vars) -> Result<Self, ConfigError> {
        let params: Vars = params.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
        let mut vars = jail.clone();
        vars.extend(params.clone());
        // A filter option the jail or the parameters set replaces the
        // definition's.
        let options = combine_definition(&ini, FILTER_OPTIONS, &params, &vars, Given::Replaces, &[])?;
        Ok(FilterDefinition { name: name.to_string(), files: ini.files, options })
    }

    /// A filter of a filter pack, as a jail names it (`filter =
    /// PACK:FILTER[key=value, ...]`): no file is read, the parameters are
    /// the filter's options. `None` when `reference` names no pack.
    pub fn from_pack(reference: &str, params: &[(String, String)]) -> Option<Self> {
        let (pack, filter) = reference.rsplit_once(':')?;
        let (pack, filter) = (pack.trim(), filter.trim());
        if pack.is_empty() || filter.is_empty() {
            return None;
        }
        let mut options: BTreeMap<String, String> = params.iter().cloned().collect();
        options.insert("plugin".into(), pack.to_string());
        options.insert("pack-filter".into(), filter.to_string());
        Some(FilterDefinition { name: reference.to_string(), files: Vec::new(), options })
    }

    /// A filter of one failregex given on the command line
    /// (`wasmban regex LOG REGEX`), read by the built-in regex filter.
    pub fn from_regex(failregex: &str) -> Self {
        let options = BTreeMap::from([("failregex".to_string(), failregex.to_string())]);
        FilterDefinition { name: "failregex".into(), files: Vec::new(), options }
    }

    /// For a pack's filter: its name in the pack.
    pub fn pack_filter(&self) -> Option<&str> {
        self.get("pack-filter")
    }

    /// For a pack's filter: the options it is created with (the jail's
    /// parameters, without what selects the pack).
    pub fn pack_options(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "plugin" | "pack-filter"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The options its component is created with: a pack filter's
    /// parameters, or the regex filter's definition.
    pub fn component_options(&self) -> Result<Vec<(String, String)>, ConfigError> {
        match self.pack_filter() {
            Some(_) => Ok(self.pack_options()),
            None => self.regex_plugin_options(),
        }
    }

    /// A multi-line option as a list: one entry per non-empty line.
    pub fn list(&self, option: &str) -> Vec<String> {
        self.options
            .get(option)
            .map(|v| v.split('\n').filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// A single option, if set and not empty.
    pub fn get(&self, option: &str) -> Option<&str> {
        self.options.get(option).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The component that runs this filter: its `plugin` option, or the
    /// built-in regex filter.
    pub fn plugin(&self) -> &str {
        self.get("plugin").unwrap_or("regex-filter")
    }

    /// `maxlines`, checked.
    pub fn maxlines(&self) -> Result<u32, ConfigError> {
        match self.get("maxlines") {
            None => Ok(1),
            Some(v) => v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| ConfigError::Value {
                where_: self.where_(),
                section: "Definition".into(),
                option: "maxlines".into(),
                message: format!("{v:?} is not a whole number of at least 1"),
            }),
        }
    }

    /// The files this definition came from, for messages.
    pub fn where_(&self) -> String {
        if self.files.is_empty() {
            return match self.get("plugin") {
                Some(pack) => format!("filter pack {pack}"),
                None => "given on the command line".to_string(),
            };
        }
        self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// The options handed to the regex filter component, with the host's
    /// time zone and year, which it needs to read dates and has no other
    /// way to learn.
    pub fn regex_plugin_options(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        for key in ["prefregex", "datepattern"] {
            if let Some(v) = self.get(key) {
                out.push((key.to_string(), v.to_string()));
            }
        }
        for key in ["failregex", "ignoreregex"] {
            let list = self.list(key);
            if !list.is_empty() {
                out.push((key.to_string(), list.join("\n")));
            }
        }
        out.push(("maxlines".to_string(), self.maxlines()?.to_string()));
        out.push(("timezone".to_string(), crate::timezone::local_rule()));
        out.push(("year".to_string(), crate::timezone::current_year().to_string()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn sample(dir: &Path) {
        write(
            dir,
            "filter.d/common.conf",
            "[DEFAULT]\nlogtype = file\n__prefix_line = <lt_<logtype>/pfx>\n[lt_file]\npfx = F\n[lt_journal]\npfx = J\n",
        );
        write(
            dir,
            "filter.d/svc.conf",
            "[INCLUDES]\nbefore = common.conf\n[Definition]\nmode = normal\nprefregex = ^%(__prefix_line)s<F-CONTENT>.+</F-CONTENT>$\nfailregex = ^fail from <HOST>$\n            <mdre-<mode>>\nmdre-normal =\nmdre-ddos = ^ddos <HOST>\nmaxlines = 1\n",
        );
    }

    #[test]
    fn modes_and_logtypes_select_regexes_at_load_time() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let f = FilterDefinition::load(dir.path(), "svc", &[]).unwrap();
        assert_eq!(f.list("failregex"), ["^fail from <HOST>$"]);
        assert_eq!(f.get("prefregex"), Some("^F<F-CONTENT>.+</F-CONTENT>$"));
        let params = [("mode".to_string(), "ddos".to_string()), ("logtype".to_string(), "journal".to_string())];
        let f = FilterDefinition::load(dir.path(), "svc", &params).unwrap();
        assert_eq!(f.list("failregex"), ["^fail from <HOST>$", "^ddos <HOST>"]);
        assert_eq!(f.get("prefregex"), Some("^J<F-CONTENT>.+</F-CONTENT>$"));
    }

    #[test]
    fn a_local_file_extends_with_known() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        write(
            dir.path(),
            "filter.d/svc.local",
            "[Definition]\nfailregex = %(known/failregex)s\n            ^extra <HOST>\n",
        );
        let f = FilterDefinition::load(dir.path(), "svc", &[]).unwrap();
        assert_eq!(f.list("failregex"), ["^fail from <HOST>$", "^extra <HOST>"]);
    }

    #[test]
    fn init_values_and_parameters_fill_tags() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "filter.d/t.conf", "[Definition]\nfailregex = ^<who> from <HOST>\n[Init]\nwho = bob\n");
        let f = FilterDefinition::load(dir.path(), "t", &[]).unwrap();
        assert_eq!(f.list("failregex"), ["^bob from <HOST>"]);
        let f = FilterDefinition::load(dir.path(), "t", &[("who".into(), "eve".into())]).unwrap();
        assert_eq!(f.list("failregex"), ["^eve from <HOST>"]);
    }

    #[test]
    fn a_missing_filter_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let e = FilterDefinition::load(dir.path(), "nope", &[]).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("filter.d/nope.conf"), "{e}");
    }
}
