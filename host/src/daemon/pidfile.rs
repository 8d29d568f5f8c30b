//! The pidfile (`pidfile` in wasmban.conf): the daemon's pid while it
//! runs, written whole, removed at stop if it still names this daemon, and
//! never taken from another process that still runs.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The pidfile, removed when the daemon stops (and only if it still holds
/// this daemon's pid).
pub(crate) struct Pidfile(PathBuf);

/// Why the pidfile was not written.
pub(crate) enum PidfileProblem {
    /// It names another process that runs: the daemon must not start.
    Taken(anyhow::Error),
    /// It could not be written: the daemon runs without one.
    Unwritable(anyhow::Error),
}

impl Pidfile {
    pub(crate) fn write(path: &Path) -> Result<Pidfile, PidfileProblem> {
        Pidfile::check_free(path).map_err(PidfileProblem::Taken)?;
        Pidfile::put(path).map_err(PidfileProblem::Unwritable)
    }

    fn put(path: &Path) -> anyhow::Result<Pidfile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = format!("{}\n", std::process::id());
        // Written aside and renamed: a reader never sees half a pid.
        let aside = path.with_extension("pid.new");
        std::fs::write(&aside, &text)
            .and_then(|()| std::fs::rename(&aside, path))
            .with_context(|| format!("writing the pidfile {} (pidfile in wasmban.conf)", path.display()))?;
        Ok(Pidfile(path.to_path_buf()))
    }

    /// A pidfile of a process that still runs (fail2ban's, when pointed at
    /// /etc/fail2ban with fail2ban still up) is not taken over.
    fn check_free(path: &Path) -> anyhow::Result<()> {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<libc::pid_t>().ok())
            && pid > 0
            && pid as u32 != std::process::id()
        {
            // SAFETY: signal 0 only asks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if alive {
                anyhow::bail!(
                    "the pidfile {} names process {pid}, which is running: stop it first (fail2ban?), or set \
                     another pidfile in wasmban.local",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_processs_pidfile_is_not_taken_and_a_stale_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/x.pid");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // pid 1 always runs.
        std::fs::write(&path, "1\n").unwrap();
        assert!(matches!(Pidfile::write(&path), Err(PidfileProblem::Taken(_))));
        // A pid no process has (above the kernel's limit).
        std::fs::write(&path, "99999999\n").unwrap();
        let pidfile = Pidfile::write(&path).unwrap_or_else(|_| panic!("a stale pidfile is taken over"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        drop(pidfile);
        assert!(!path.exists());
    }
}
