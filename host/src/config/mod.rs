//! fail2ban's configuration, read unchanged: the INI dialect (`ini`),
//! interpolation and tag substitution (`interp`), and the typed definitions
//! the rest of the host uses (`filter`).
#![deny(missing_docs)]

use std::path::PathBuf;

pub mod action;
pub mod filter;
pub mod ini;
pub mod interp;
pub mod jail;
pub mod typos;
pub mod values;

/// What can be wrong with a configuration. Every variant names the file
/// (and where it can, the line, section and option).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: {message}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        message: String,
    },
    /// A line could not be parsed.
    #[error("{}:{line}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An option's value is wrong.
    #[error("{where_}: [{section}] {option}: {message}")]
    Value {
        /// `file:line`, or the files read when the value came from elsewhere.
        where_: String,
        /// The section.
        section: String,
        /// The option.
        option: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A filter or action name matches no file.
    #[error("{kind} {name:?} not found: looked for {looked}")]
    NotFound {
        /// "filter" or "action".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// Where it was looked for.
        looked: String,
    },
    /// A problem found while resolving one jail.
    #[error("[{jail}] {inner}")]
    Jail {
        /// The jail.
        jail: String,
        /// What is wrong.
        inner: Box<ConfigError>,
    },
}
