//! `wasmban plugin new --lang rust|python|js NAME`: a plugin project that
//! builds and tests as created, with wasmban's WIT (and for Rust, the SDK)
//! copied in, so that it builds anywhere without this source tree.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The languages a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A cargo crate using the Rust SDK (built for wasm32-wasip2).
    Rust,
    /// componentize-py, against the `log-action` world.
    Python,
    /// componentize-js, against the `log-action` world.
    Js,
}

const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("filter.wit", include_str!("../../../wit/filter.wit")),
    ("action.wit", include_str!("../../../wit/action.wit")),
    ("capabilities.wit", include_str!("../../../wit/capabilities.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
    ("ignore.wit", include_str!("../../../wit/ignore.wit")),
];
const SDK_LIB: &str = include_str!("../../../plugin-sdk/src/lib.rs");
const SDK_CLASSIC: &str = include_str!("../../../plugin-sdk/src/classic.rs");
const SDK_MANIFEST: &str = include_str!("../../../plugin-sdk/Cargo.toml");

/// What a name must be: it becomes a crate, a file and a plugin name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "plugin name {name:?}: use lower-case letters, digits and '-', starting with a letter (it names the crate, the .wasm and plugin.d/NAME.toml)"
        );
    }
    Ok(())
}

fn rust_files(name: &str) -> Vec<(String, String)> {
    let crate_name = name.replace('-', "_");
    vec![
        (
            "Cargo.toml".into(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmban-plugin-sdk = {{ path = "wasmban-plugin-sdk" }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"
"#
            ),
        ),
        ("wasmban-plugin-sdk/Cargo.toml".into(), SDK_MANIFEST.to_string()),
        ("wasmban-plugin-sdk/src/lib.rs".into(), SDK_LIB.to_string()),
        ("wasmban-plugin-sdk/src/classic.rs".into(), SDK_CLASSIC.to_string()),
        (
            "src/lib.rs".into(),
            format!(
                r#"//! {name}: a wasmban action. It logs each ban and unban; replace the
//! bodies with what a ban should mean for you.

use wasmban_plugin_sdk::{{Action, Options, Ticket, log}};

pub struct Plugin {{
    jail: String,
    prefix: String,
}}

impl Plugin {{
    /// The line logged for a ban: kept apart so that native tests see it.
    pub fn describe(&self, verb: &str, ticket: &Ticket) -> String {{
        format!("{{}}[{{}}] {{verb}} {{}} after {{}} failure(s)", self.prefix, self.jail, ticket.ip, ticket.failures)
    }}
}}

impl Action for Plugin {{
    fn new(options: Options) -> Result<Self, String> {{
        Ok(Plugin {{
            jail: options.get_or("name", "default").to_string(),
            prefix: options.get_or("prefix", "").to_string(),
        }})
    }}

    fn ban(&mut self, ticket: &Ticket) -> Result<(), String> {{
        log::info(&self.describe("ban", ticket));
        Ok(())
    }}

    fn unban(&mut self, ticket: &Ticket) -> Result<(), String> {{
        log::info(&self.describe("unban", ticket));
        Ok(())
    }}
}}

#[cfg(target_arch = "wasm32")]
wasmban_plugin_sdk::export_action!(Plugin);

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn a_ban_is_described_with_its_jail_and_address() {{
        let options = Options::new(vec![("name".into(), "sshd".into()), ("prefix".into(), "> ".into())]);
        let plugin = Plugin::new(options).unwrap();
        let ticket = Ticket {{
            jail: "sshd".into(),
            ip: "192.0.2.1".into(),
            failures: 5,
            matches: vec![],
            time: 0,
            bantime: 600,
            ban_count: 0,
            fields: vec![],
        }};
        assert_eq!(plugin.describe("ban", &ticket), "> [sshd] ban 192.0.2.1 after 5 failure(s)");
    }}
}}
"#
            ),
        ),
        ("wasmban.toml".into(), manifest(name, "an action written in Rust")),
        (".gitignore".into(), "/target\n".into()),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA wasmban action in Rust.\n\n\
                 Test the logic natively, build the component, try it:\n\n\
                 \x20   cargo test\n\
                 \x20   cargo build --release --target wasm32-wasip2\n\
                 \x20   cp target/wasm32-wasip2/release/{crate_name}.wasm {name}.wasm\n\
                 \x20   wasmban plugin try {name}.wasm --ban 192.0.2.1\n\n{INSTALL}",
            ),
        ),
    ]
}

fn python_files(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "action.py".into(),
            format!(
                r#""""{name}: a wasmban action in Python. It logs each ban and unban;
replace the bodies with what a ban should mean for you. To reach a web
service, build against the `http-action` world and import `http` from
wit_world.imports (see wasmban's docs/plugins.md).

componentize-py finds the classes of the exported `action` interface in a
module named `action`: keep this file's name."""
from typing import List, Tuple

from componentize_py_types import Err, Ok, Result
from wit_world import exports
from wit_world.exports import action as action_api
from wit_world.imports import log, types


class Handler(action_api.Handler):
    def __init__(self, jail: str, prefix: str):
        self.jail = jail
        self.prefix = prefix

    @classmethod
    def create(cls, options: List[Tuple[str, str]]) -> "Handler":
        opts = dict(options)
        if "fail" in opts:
            raise Err("option `fail` is set: this is how a bad option is reported")
        return cls(opts.get("name", "default"), opts.get("prefix", ""))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def check(self) -> None:
        pass

    def ban(self, tickets: List[types.Ticket]) -> List[Result[None, str]]:
        for t in tickets:
            log.log(log.Level.INFO, f"{{self.prefix}}[{{self.jail}}] ban {{t.ip}} after {{t.failures}} failure(s)")
        return [Ok(None) for _ in tickets]

    def unban(self, tickets: List[types.Ticket]) -> List[Result[None, str]]:
        for t in tickets:
            log.log(log.Level.INFO, f"{{self.prefix}}[{{self.jail}}] unban {{t.ip}}")
        return [Ok(None) for _ in tickets]


class Action(exports.Action):
    pass
"#
            ),
        ),
        (
            "build.sh".into(),
            format!(
                "#!/bin/sh\n# Needs componentize-py: pip install componentize-py==0.25.1\nset -e\ncd \"$(dirname \"$0\")\"\n\
                 componentize-py -d wit -w log-action componentize action -o {name}.wasm\n"
            ),
        ),
        ("test.sh".into(), test_script(name)),
        ("wasmban.toml".into(), manifest(name, "an action written in Python")),
        (".gitignore".into(), format!("/{name}.wasm\n__pycache__/\n")),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA wasmban action in Python (componentize-py).\n\n\
                 \x20   ./build.sh     # {name}.wasm\n\
                 \x20   ./test.sh      # builds, then runs a ban and an unban through it with wasmban\n\n{INSTALL}"
            ),
        ),
    ]
}

fn js_files(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "plugin.js".into(),
            format!(
                r#"// {name}: a wasmban action in JavaScript. It logs each ban and unban;
// replace the bodies with what a ban should mean for you.
import {{ log }} from 'wasmban:plugin/log@0.1.0';

class Handler {{
  constructor(jail, prefix) {{
    this.jail = jail;
    this.prefix = prefix;
  }}

  // Throw a string to report a bad option.
  static create(pairs) {{
    const options = new Map(pairs);
    if (options.has('fail')) throw 'option `fail` is set: this is how a bad option is reported';
    return new Handler(options.get('name') ?? 'default', options.get('prefix') ?? '');
  }}

  start() {{}}
  stop() {{}}
  check() {{}}

  ban(tickets) {{
    return tickets.map((t) => {{
      log('info', `${{this.prefix}}[${{this.jail}}] ban ${{t.ip}} after ${{t.failures}} failure(s)`);
      return {{ tag: 'ok', val: undefined }};
    }});
  }}

  unban(tickets) {{
    return tickets.map((t) => {{
      log('info', `${{this.prefix}}[${{this.jail}}] unban ${{t.ip}}`);
      return {{ tag: 'ok', val: undefined }};
    }});
  }}
}}

export const action = {{ Handler }};
"#
            ),
        ),
        (
            "build.sh".into(),
            format!(
                "#!/bin/sh\n# Needs componentize-js: npm install -g @bytecodealliance/componentize-js@0.23.0\nset -e\ncd \"$(dirname \"$0\")\"\n\
                 componentize-js --wit wit --world-name log-action -d http -d fetch-event --out {name}.wasm plugin.js\n"
            ),
        ),
        ("test.sh".into(), test_script(name)),
        ("wasmban.toml".into(), manifest(name, "an action written in JavaScript")),
        (".gitignore".into(), format!("/{name}.wasm\n")),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA wasmban action in JavaScript (componentize-js).\n\n\
                 \x20   ./build.sh     # {name}.wasm\n\
                 \x20   ./test.sh      # builds, then runs a ban and an unban through it with wasmban\n\n{INSTALL}"
            ),
        ),
    ]
}

const INSTALL: &str = "Install: copy the .wasm and wasmban.toml (renamed NAME.toml) into\n\
/etc/wasmban/plugin.d/, pin it with the sha256 `wasmban plugin inspect` prints,\n\
add action.d/NAME.conf with `[Definition] plugin = NAME`, and name it in a jail's\n\
`action`. See docs/plugins.md in wasmban for the capabilities a grant can give.\n";

fn manifest(name: &str, what: &str) -> String {
    format!(
        "# Copy to plugin.d/{name}.toml beside {name}.wasm. Nothing is granted\n\
         # unless listed under [grants]; see `wasmban plugin inspect {name}.wasm`.\n\
         file = \"{name}.wasm\"\ndescription = \"{what}\"\n\n[grants]\n\n[limits]\nmemory-mb = 128\ncall-timeout-ms = 5000\n"
    )
}

fn test_script(name: &str) -> String {
    format!(
        "#!/bin/sh\n# Build, then run the action once: create, start, ban, unban, stop.\nset -e\ncd \"$(dirname \"$0\")\"\n./build.sh\n\
         wasmban plugin try {name}.wasm --option prefix='test: ' --ban 192.0.2.1 --unban 192.0.2.1\n"
    )
}

/// Create the project; returns its directory.
pub fn create(lang: Lang, name: &str, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let root = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if root.exists() && std::fs::read_dir(&root).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty; choose another name or --dir", root.display());
    }
    let mut files = match lang {
        Lang::Rust => rust_files(name),
        Lang::Python => python_files(name),
        Lang::Js => js_files(name),
    };
    for (file, text) in WIT {
        files.push((format!("wit/{file}"), text.to_string()));
    }
    for (path, text) in &files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_crates_and_files() {
        assert!(check_name("my-webhook2").is_ok());
        for bad in ["", "My", "9a", "a_b", "a/b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    /// A new project builds only with every WIT file and every SDK source:
    /// a file added to either must be added to what projects get.
    #[test]
    fn projects_get_every_wit_file_and_every_sdk_source() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names = |dir: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let mut embedded: Vec<String> = WIT.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(names("wit"), embedded);
        assert_eq!(names("plugin-sdk/src"), ["classic.rs", "lib.rs"]);
    }

    #[test]
    fn a_project_holds_the_wit_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let root = create(Lang::Python, "notify", Some(&dir.path().join("notify"))).unwrap();
        assert!(root.join("wit/worlds.wit").is_file() && root.join("action.py").is_file());
        assert!(create(Lang::Js, "notify", Some(&root)).is_err());
    }
}
