//! `wasmban plugin inspect`: what a component is and what it asks for, so
//! that an admin can judge a third-party plugin before granting it anything.

use serde::Serialize;

use crate::capability::Capability;
use crate::plugin::PluginError;
use crate::plugin::registry::PluginSource;
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::{PluginKind, interface_names, is_types_only, kind_of};

/// What an import gives the plugin.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ImportClass {
    /// A wasmban capability that a grant must allow.
    Capability,
    /// `log` and the shared types: every plugin has them.
    AlwaysAllowed,
    /// WASI, linked against an empty context: nothing to reach.
    SandboxedWasi,
    /// Never linked (network, unknown interfaces).
    Refused,
}

/// One import of the component.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    /// The interface name.
    pub name: String,
    /// What it gives.
    pub class: ImportClass,
    /// Its effect in a sentence.
    pub note: String,
}

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin's name.
    pub name: String,
    /// Filter or action, when it is a valid plugin.
    pub kind: Option<PluginKind>,
    /// Why it is not a valid plugin, when it is not.
    pub problem: Option<String>,
    /// Size in bytes.
    pub size: usize,
    /// Hex sha256.
    pub sha256: String,
    /// The SDK version stamped in it, if built with the Rust SDK.
    pub sdk_version: Option<String>,
    /// Exported interfaces.
    pub exports: Vec<String>,
    /// Imported interfaces.
    pub imports: Vec<Import>,
    /// Capabilities it would need granted (besides log).
    pub capabilities: Vec<String>,
    /// What its manifest grants it now.
    pub granted: crate::plugin::manifest::Grants,
}

/// How `name`, one of `all` the component imports, would be linked.
fn classify_import(name: &str, all: &[String]) -> Import {
    let (class, note) = if name.starts_with("wasi:http/") {
        (
            ImportClass::Refused,
            "wasi:http is never linked; the plugin will be refused (grant wasmban's `http`)".to_string(),
        )
    } else if name.starts_with("wasi:sockets/") {
        (ImportClass::SandboxedWasi, "sandboxed: linked with every connection, lookup and address refused".to_string())
    } else if is_types_only(name) {
        (ImportClass::AlwaysAllowed, "type definitions only: reaches nothing".to_string())
    } else if name.starts_with("wasi:") {
        (ImportClass::SandboxedWasi, "sandboxed: no files, environment, network or clock behind it".to_string())
    } else {
        match Capability::from_import(name) {
            Some(Capability::Log) => {
                (ImportClass::AlwaysAllowed, "writes to the daemon log, tagged with the plugin".to_string())
            }
            // The grant line says what allows it: `firewall` imported for
            // the shell's types comes with `shell = true`.
            Some(cap) => {
                (ImportClass::Capability, format!("allowed by `{}` in the plugin's grant", cap.grant_line(all)))
            }
            None => (ImportClass::Refused, "not provided by wasmban; the plugin will be refused".to_string()),
        }
    };
    Import { name: name.to_string(), class, note }
}

/// Read the `wasmban:sdk-version` custom section from any core module
/// nested in the component.
fn sdk_version(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(section)) = payload
            && section.name() == "wasmban:sdk-version"
        {
            return std::str::from_utf8(section.data()).ok().map(str::to_string);
        }
    }
    None
}

/// Inspect a component without running any of it.
pub fn inspect(runtime: &Runtime, source: &PluginSource) -> Result<Report, PluginError> {
    let (component, _) = runtime.compile(source)?;
    let (imports, exports) = interface_names(runtime.engine(), &component);
    let (kind, problem) = match kind_of(&source.name, &exports) {
        Ok(k) => (Some(k), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let imports: Vec<Import> = imports.iter().map(|i| classify_import(i, &imports)).collect();
    let capabilities = imports
        .iter()
        .filter(|i| i.class == ImportClass::Capability)
        .filter_map(|i| Capability::from_import(&i.name).map(|c| c.name().to_string()))
        .collect();
    Ok(Report {
        name: source.name.clone(),
        kind,
        problem,
        size: source.bytes.len(),
        sha256: source.sha256(),
        sdk_version: sdk_version(&source.bytes.wasm(&source.name)?),
        exports,
        imports,
        capabilities,
        granted: source.manifest.grants.clone(),
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "plugin:       {}", self.name)?;
        match (&self.kind, &self.problem) {
            (Some(kind), _) => writeln!(f, "kind:         {kind}")?,
            (None, Some(problem)) => writeln!(f, "kind:         none ({problem})")?,
            (None, None) => writeln!(f, "kind:         none")?,
        }
        writeln!(f, "size:         {} bytes", self.size)?;
        writeln!(f, "sha256:       {}", self.sha256)?;
        writeln!(
            f,
            "sdk:          {}",
            self.sdk_version.as_deref().unwrap_or("(not built with the wasmban Rust SDK)")
        )?;
        writeln!(f, "exports:")?;
        for e in &self.exports {
            writeln!(f, "  {e}")?;
        }
        writeln!(f, "imports:")?;
        for i in &self.imports {
            writeln!(f, "  {:<40} {}", i.name, i.note)?;
        }
        let asks =
            if self.capabilities.is_empty() { "none beyond log".to_string() } else { self.capabilities.join(", ") };
        writeln!(f, "capabilities: {asks}")?;
        let g = &self.granted;
        let mut granted = Vec::new();
        if !g.firewall.is_empty() {
            granted.push(format!("firewall [{}]", g.firewall.join(", ")));
        }
        if !g.http.is_empty() {
            granted.push(format!("http [{}]", g.http.join(", ")));
        }
        if !g.files.is_empty() {
            granted.push(format!("files [{}]", g.files.join(", ")));
        }
        for (on, name) in [(g.mail, "mail"), (g.whois, "whois"), (g.dns, "dns"), (g.shell, "shell")] {
            if on {
                granted.push(name.to_string());
            }
        }
        write!(
            f,
            "granted:      {}",
            if granted.is_empty() { "log only".to_string() } else { format!("log, {}", granted.join(", ")) }
        )
    }
}
