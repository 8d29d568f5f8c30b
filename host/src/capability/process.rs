//! Running a program for a capability: absolute path, argv list, no shell,
//! a cleared environment, a timeout that kills the whole process group.
//!
//! The runner is a trait so that capabilities can be tested without touching
//! the machine (see [`RecordingRunner`]).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capability::shell::Confinement;

/// The environment a capability program sees: nothing from the daemon's.
const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where bare program names granted to a plugin are looked up.
const PROGRAM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Output beyond this is cut, so a chatty program cannot exhaust memory.
const OUTPUT_LIMIT: usize = 1 << 20;

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramOutput {
    /// Exit status, or -1 when a signal ended it.
    pub status: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Why a program could not be run to completion.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// Spawning failed.
    #[error("could not start {program}: {reason}")]
    Spawn {
        /// The program's path.
        program: String,
        /// The OS error.
        reason: String,
    },
    /// It ran past its deadline and was killed.
    #[error("{program} was killed after {ms} ms (timeout)")]
    Timeout {
        /// The program's path.
        program: String,
        /// The timeout that elapsed.
        ms: u128,
    },
}

/// Runs programs on behalf of capabilities.
pub trait ProgramRunner: Send + Sync {
    /// Run `program` with `args`, feeding `input` on stdin when given.
    fn run(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
        timeout: Duration,
    ) -> Result<ProgramOutput, RunError>;

    /// As [`ProgramRunner::run`], with `program` started inside
    /// `confinement` (the shell grant's).
    fn run_confined(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
        timeout: Duration,
        confinement: &Confinement,
    ) -> Result<ProgramOutput, RunError>;
}

/// Programs that run whatever they are told to: granting one of them as a
/// firewall program would be the shell grant in disguise.
const INTERPRETERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "ash",
    "zsh",
    "ksh",
    "ksh93",
    "mksh",
    "pdksh",
    "csh",
    "tcsh",
    "fish",
    "rbash",
    "busybox",
    "toybox",
    "env",
    "sudo",
    "su",
    "doas",
    "runuser",
    "setsid",
    "nohup",
    "nice",
    "ionice",
    "timeout",
    "stdbuf",
    "chroot",
    "unshare",
    "nsenter",
    "xargs",
    "find",
    "flock",
    "watch",
    "script",
    "expect",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "sed",
    "perl",
    "python",
    "python2",
    "python3",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "guile",
    "rscript",
    "pwsh",
    "systemd-run",
    "at",
    "batch",
    "crontab",
    "ssh",
    "socat",
    "nc",
    "ncat",
];

/// Where bare program names are looked up, for messages.
pub fn program_dirs() -> String {
    PROGRAM_DIRS.join(", ")
}

/// Refuse a program grant that names a shell or an interpreter (also
/// behind a version suffix such as `python3.13` or `perl5.40`), or a path
/// with `.` or `..` in it.
pub fn refuse_interpreter(program: &str) -> Result<(), String> {
    if program.starts_with('/') && program.split('/').any(|part| part == "." || part == "..") {
        return Err(format!("{program:?} has `.` or `..` in it; give the program's plain absolute path"));
    }
    let name = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or(program);
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    let lowered = base.to_ascii_lowercase();
    if INTERPRETERS.contains(&name) || INTERPRETERS.contains(&lowered.as_str()) {
        return Err(format!(
            "{program:?} is a shell or an interpreter: it would run any command, which is the `shell` grant; \
             grant `shell = true` to the plugin that needs it (only command-action uses it), or name the \
             firewall program itself"
        ));
    }
    Ok(())
}

/// Find a granted program: an absolute path is taken as it is; a bare name
/// is looked up in the system's sbin/bin folders, never in `$PATH`.
pub fn resolve_program(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    if name.is_empty() || name.contains('/') {
        return None;
    }
    PROGRAM_DIRS.iter().map(|dir| Path::new(dir).join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Runs programs on this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

/// Whether `program` is the nft that nftables installs (not a wrapper an
/// admin put first in the path, which must run as it is).
fn is_system_nft(program: &Path) -> bool {
    let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].iter().any(|nft| real == Path::new(nft))
}

fn read_limited(mut stream: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

impl ProgramRunner for SystemRunner {
    fn run(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
        timeout: Duration,
    ) -> Result<ProgramOutput, RunError> {
        // The system's nft given a script: run through its library, in the
        // daemon, when that is installed (see `nft_library`).
        if let Some(script) = input
            && args == ["-f", "-"]
            && is_system_nft(program)
            && let Some(out) = crate::capability::nft_library::run_script(script)
        {
            return Ok(out);
        }
        run_command(command(program, args, input.is_some()), program, input, timeout)
    }

    fn run_confined(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
        timeout: Duration,
        confinement: &Confinement,
    ) -> Result<ProgramOutput, RunError> {
        let mut command = command(program, args, input.is_some());
        confinement.apply_to(&mut command);
        run_command(command, program, input, timeout).map_err(|e| match e {
            RunError::Spawn { program, reason } => RunError::Spawn {
                program,
                reason: format!(
                    "{reason} (while confining it as the shell grant asks: the daemon must run as root, \
                     and the shell-writes paths must be folders or files it can bind)"
                ),
            },
            timeout => timeout,
        })
    }
}

/// `program` with `args`, a cleared environment and piped output.
fn command(program: &Path, args: &[String], with_input: bool) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", SAFE_PATH)
        .env("LC_ALL", "C")
        .stdin(if with_input { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills whatever it spawned.
        .process_group(0);
    command
}

/// Run `command`, feeding it `input`, until it ends or `timeout` passes.
fn run_command(
    mut command: Command,
    program: &Path,
    input: Option<&str>,
    timeout: Duration,
) -> Result<ProgramOutput, RunError> {
    let name = program.display().to_string();
    let mut child = command.spawn().map_err(|e| RunError::Spawn { program: name.clone(), reason: e.to_string() })?;

    let writer = match (input, child.stdin.take()) {
        (Some(text), Some(mut stdin)) => {
            let text = text.to_owned();
            Some(std::thread::spawn(move || {
                // A program that exits early closes the pipe; that is its
                // answer, reported through its status.
                let _ = stdin.write_all(text.as_bytes());
            }))
        }
        _ => None,
    };
    let stdout = child.stdout.take().map(|s| std::thread::spawn(move || read_limited(s)));
    let stderr = child.stderr.take().map(|s| std::thread::spawn(move || read_limited(s)));

    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                // SAFETY: kill(2) on our child's own process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(RunError::Timeout { program: name, ms: timeout.as_millis() });
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Err(e) => return Err(RunError::Spawn { program: name, reason: e.to_string() }),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let collect = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    };
    Ok(ProgramOutput { status: status.code().unwrap_or(-1), stdout: collect(stdout), stderr: collect(stderr) })
}

/// One program run, as a [`RecordingRunner`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRun {
    /// The resolved program path.
    pub program: PathBuf,
    /// Its argv after the program.
    pub args: Vec<String>,
    /// What it got on stdin.
    pub input: Option<String>,
}

/// Records runs instead of making them, answering each with a status chosen
/// by a rule. For tests of capabilities and of actions' argv.
#[derive(Clone)]
pub struct RecordingRunner {
    runs: Arc<Mutex<Vec<RecordedRun>>>,
    #[allow(clippy::type_complexity)]
    answer: Arc<dyn Fn(&RecordedRun) -> ProgramOutput + Send + Sync>,
}

impl Default for RecordingRunner {
    fn default() -> Self {
        Self::answering(|_| ProgramOutput::default())
    }
}

impl RecordingRunner {
    /// A recorder whose runs are answered by `answer`.
    pub fn answering(answer: impl Fn(&RecordedRun) -> ProgramOutput + Send + Sync + 'static) -> Self {
        RecordingRunner { runs: Arc::default(), answer: Arc::new(answer) }
    }
    /// Every run so far, in order.
    pub fn runs(&self) -> Vec<RecordedRun> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl ProgramRunner for RecordingRunner {
    fn run(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
        _timeout: Duration,
    ) -> Result<ProgramOutput, RunError> {
        self.record(program, args, input)
    }

    fn run_confined(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
        _timeout: Duration,
        _confinement: &Confinement,
    ) -> Result<ProgramOutput, RunError> {
        self.record(program, args, input)
    }
}

impl RecordingRunner {
    fn record(&self, program: &Path, args: &[String], input: Option<&str>) -> Result<ProgramOutput, RunError> {
        let run = RecordedRun { program: program.to_path_buf(), args: args.to_vec(), input: input.map(str::to_owned) };
        let out = (self.answer)(&run);
        if let Ok(mut runs) = self.runs.lock() {
            runs.push(run);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_argv_without_a_shell() {
        let out = SystemRunner
            .run(Path::new("/bin/echo"), &["a;b".into(), "$HOME".into()], None, Duration::from_secs(5))
            .unwrap();
        assert_eq!(out.stdout, "a;b $HOME\n");
        assert_eq!(out.status, 0);
    }

    #[test]
    fn environment_is_cleared() {
        let out = SystemRunner.run(Path::new("/usr/bin/env"), &[], None, Duration::from_secs(5)).unwrap();
        let mut names: Vec<&str> = out.stdout.lines().filter_map(|l| l.split('=').next()).collect();
        names.sort();
        assert_eq!(names, ["LC_ALL", "PATH"]);
    }

    #[test]
    fn input_reaches_stdin_and_status_is_kept() {
        let out = SystemRunner
            .run(Path::new("/bin/sh"), &["-c".into(), "cat; exit 3".into()], Some("hello"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.status, 3);
    }

    #[test]
    fn a_program_past_its_timeout_is_killed_with_its_children() {
        let err = SystemRunner
            .run(Path::new("/bin/sh"), &["-c".into(), "sleep 30 & sleep 30".into()], None, Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
    }

    #[test]
    fn only_system_folders_are_searched() {
        let sh = resolve_program("sh").expect("sh is installed");
        assert!(PROGRAM_DIRS.iter().any(|dir| sh.starts_with(dir)), "{}", sh.display());
        assert_eq!(resolve_program("../bin/sh"), None);
        assert_eq!(resolve_program(""), None);
        assert_eq!(resolve_program("no-such-program-here"), None);
    }
}
