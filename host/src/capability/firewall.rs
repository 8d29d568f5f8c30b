//! The `firewall` capability: run the firewall programs named in the
//! plugin's grant (for the iptables action, `iptables` and `ip6tables`),
//! with an argv list, never through a shell.

use std::sync::Arc;
use std::time::Duration;

use crate::capability::process::{ProgramOutput, ProgramRunner, resolve_program};
use crate::capability::{Grants, HostServices};
use crate::wit::firewall::{self as wit, Output};

/// No firewall program may run longer than this, whatever the plugin asks.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// What a timeout of 0 means.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The interface name (`wasmban:plugin/firewall`).
pub const NAME: &str = "firewall";

/// Granted by a list of programs. The shell interface borrows its
/// `output` type from firewall, so a shell plugin imports firewall too:
/// the shell grant links it with no program allowed, and the host refuses
/// every call.
pub fn granted(grants: &Grants, imports: &[String]) -> bool {
    !grants.firewall.is_empty() || (grants.shell && crate::capability::imports(imports, crate::capability::shell::NAME))
}

/// The line that grants it (or the shell, when it is only there for the
/// shell's types).
pub fn grant_line(imports: &[String]) -> String {
    if crate::capability::imports(imports, crate::capability::shell::NAME) {
        crate::capability::shell::grant_line(imports)
    } else {
        "firewall = [\"PROGRAM\", ...]".to_string()
    }
}

/// Programs that can run any command through one of their subcommands
/// (`ip netns exec`): granted only together with the one subcommand the
/// plugin needs (`ip route`), never alone.
const NEED_SUBCOMMAND: &[&str] = &["ip"];

/// One entry of a firewall grant: a program, and when the entry says so,
/// the only subcommand it may be run with (`"ip route"`: `ip route ...`)
/// or the only command (`"nginx -s reload"`: exactly that, since the
/// entry starts with an option).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramGrant<'a> {
    /// The program, bare or absolute.
    pub program: &'a str,
    /// Its only allowed subcommand.
    pub subcommand: Option<&'a str>,
    /// Its only allowed arguments, when the entry gives them.
    pub exactly: Option<Vec<&'a str>>,
}

impl<'a> ProgramGrant<'a> {
    /// Read a grant entry; an error says what is wrong with it.
    pub fn parse(entry: &'a str) -> Result<Self, String> {
        let mut words = entry.split(' ');
        let program = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let word_ok = |w: &&str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !rest.iter().all(word_ok) {
            return Err(format!(
                "{entry:?}: expected a program, a program and one subcommand (\"ip route\"), or a program and \
                 its exact arguments, starting with an option (\"nginx -s reload\")"
            ));
        }
        let name = program.rsplit('/').next().unwrap_or(program);
        if rest.first().is_some_and(|w| w.starts_with('-')) && !NEED_SUBCOMMAND.contains(&name) {
            return Ok(ProgramGrant { program, subcommand: None, exactly: Some(rest) });
        }
        if rest.len() > 1 || rest.first().is_some_and(|s| !s.chars().all(|c| c.is_ascii_lowercase())) {
            return Err(format!("{entry:?}: expected a program, or a program and one subcommand (\"ip route\")"));
        }
        let subcommand = rest.first().copied();
        if subcommand.is_none() && NEED_SUBCOMMAND.contains(&name) {
            return Err(format!(
                "{entry:?} would run any command (`{name} netns exec`), which is the `shell` grant; grant the \
                 program with the one subcommand the plugin needs, such as \"{name} route\""
            ));
        }
        Ok(ProgramGrant { program, subcommand, exactly: None })
    }

    /// Whether `args` stay within the entry: its subcommand first, after
    /// at most a family flag (`ip -6 route ...`).
    fn allows(&self, args: &[String]) -> bool {
        if let Some(exactly) = &self.exactly {
            return args.len() == exactly.len() && args.iter().zip(exactly).all(|(a, e)| a == e);
        }
        let Some(subcommand) = self.subcommand else { return true };
        let rest = match args.first().map(String::as_str) {
            Some("-4" | "-6") => &args[1..],
            _ => args,
        };
        rest.first().is_some_and(|first| first == subcommand)
    }
}

/// The state behind one plugin instance's `firewall` import.
pub struct FirewallCtx {
    plugin: Arc<str>,
    programs: Vec<String>,
    runner: Arc<dyn ProgramRunner>,
}

impl FirewallCtx {
    /// `plugin` may run exactly `programs` (bare names or absolute paths),
    /// through `runner`. An empty list grants nothing.
    pub fn new(plugin: Arc<str>, programs: Vec<String>, runner: Arc<dyn ProgramRunner>) -> Self {
        FirewallCtx { plugin, programs, runner }
    }

    /// The state for `plugin`: the programs its grant names.
    pub fn for_plugin(plugin: &Arc<str>, grants: &Grants, services: &HostServices) -> Self {
        FirewallCtx::new(plugin.clone(), grants.firewall.clone(), services.runner.clone())
    }

    /// Run a granted program; every refusal is an error value for the plugin.
    pub fn run(
        &self,
        program: &str,
        args: &[String],
        input: Option<&str>,
        timeout_ms: u32,
    ) -> Result<ProgramOutput, String> {
        let grants: Vec<ProgramGrant> =
            self.programs.iter().filter_map(|entry| ProgramGrant::parse(entry).ok()).collect();
        let for_program: Vec<&ProgramGrant> = grants.iter().filter(|g| g.program == program).collect();
        if !for_program.is_empty() && !for_program.iter().any(|g| g.allows(args)) {
            tracing::warn!(plugin = &*self.plugin, program, ?args, "refused a subcommand outside the grant");
            return Err(format!(
                "`{program} {}` is outside plugin {}'s grant, which allows only: {}",
                args.join(" "),
                self.plugin,
                self.programs.join(", ")
            ));
        }
        if for_program.is_empty() {
            tracing::warn!(plugin = &*self.plugin, program, "refused a firewall program outside the grant");
            return Err(format!(
                "program {program:?} is not granted to plugin {}; it may run: {}",
                self.plugin,
                if self.programs.is_empty() { "nothing".to_string() } else { self.programs.join(", ") }
            ));
        }
        let path = resolve_program(program).ok_or_else(|| {
            format!("program {program:?} is not installed (looked in {})", crate::capability::process::program_dirs())
        })?;
        // A granted name may be a link to a shell (`/usr/local/sbin/fw ->
        // /bin/sh`): what actually runs is checked too.
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if let Err(why) = crate::capability::process::refuse_interpreter(&real.to_string_lossy()) {
            tracing::warn!(plugin = &*self.plugin, program, "refused a firewall program that is an interpreter");
            return Err(format!("program {program:?} resolves to {}: {why}", real.display()));
        }
        let timeout = match timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_TIMEOUT),
        };
        tracing::debug!(plugin = &*self.plugin, program = %path.display(), ?args, "firewall");
        self.runner.run(&path, args, input, timeout).map_err(|e| e.to_string())
    }
}

pub(crate) fn to_wit(out: ProgramOutput) -> Output {
    Output { status: out.status, stdout: out.stdout, stderr: out.stderr }
}

impl wit::Host for FirewallCtx {
    fn run(&mut self, program: String, args: Vec<String>, timeout_ms: u32) -> Result<Output, String> {
        FirewallCtx::run(self, &program, &args, None, timeout_ms).map(to_wit)
    }

    fn run_with_input(
        &mut self,
        program: String,
        args: Vec<String>,
        input: String,
        timeout_ms: u32,
    ) -> Result<Output, String> {
        FirewallCtx::run(self, &program, &args, Some(&input), timeout_ms).map(to_wit)
    }
}

struct HasFirewall;
impl wasmtime::component::HasData for HasFirewall {
    type Data<'a> = &'a mut FirewallCtx;
}

/// Link `firewall` into `linker`, reaching each store's [`FirewallCtx`]
/// through `get`. Call it only for plugins whose grant names firewall.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut FirewallCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasFirewall>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::process::RecordingRunner;

    fn ctx(programs: &[&str]) -> (FirewallCtx, RecordingRunner) {
        let recorder = RecordingRunner::default();
        let ctx = FirewallCtx::new(
            "test".into(),
            programs.iter().map(|p| p.to_string()).collect(),
            Arc::new(recorder.clone()),
        );
        (ctx, recorder)
    }

    #[test]
    fn granted_program_runs_by_absolute_path() {
        let (ctx, recorder) = ctx(&["true"]);
        ctx.run("true", &["-n".into()], None, 100).unwrap();
        let runs = recorder.runs();
        assert_eq!(runs.len(), 1);
        assert!(runs[0].program.is_absolute());
        assert_eq!(runs[0].args, ["-n"]);
    }

    #[test]
    fn a_granted_name_that_links_to_a_shell_is_refused_and_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("fw");
        std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
        let link = link.to_str().unwrap();
        let (ctx, recorder) = ctx(&[link]);
        let err = ctx.run(link, &["-c".into(), "id".into()], None, 100).unwrap_err();
        assert!(err.contains("shell or an interpreter"), "{err}");
        assert!(recorder.runs().is_empty());
    }

    #[test]
    fn ungranted_program_is_refused_and_not_run() {
        let (ctx, recorder) = ctx(&["iptables"]);
        let err = ctx.run("sh", &["-c".into(), "id".into()], None, 100).unwrap_err();
        assert!(err.contains("not granted") && err.contains("iptables"), "{err}");
        let err = ctx.run("/bin/sh", &[], None, 100).unwrap_err();
        assert!(err.contains("not granted"), "{err}");
        assert!(recorder.runs().is_empty());
    }

    #[test]
    fn a_program_granted_with_a_subcommand_runs_only_that_subcommand() {
        let (ctx, recorder) = ctx(&["ip route"]);
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        ctx.run("ip", &args("route add unreachable 192.0.2.1"), None, 100).unwrap();
        ctx.run("ip", &args("-6 route del unreachable 2001:db8::1"), None, 100).unwrap();
        for escape in ["netns exec x /bin/sh", "-batch /tmp/x", "-n x route add unreachable 192.0.2.1", ""] {
            let err = ctx.run("ip", &args(escape), None, 100).unwrap_err();
            assert!(err.contains("outside") && err.contains("ip route"), "{err}");
        }
        assert_eq!(recorder.runs().len(), 2);
        assert!(ProgramGrant::parse("ip").unwrap_err().contains("ip route"));
        assert!(ProgramGrant::parse("/usr/sbin/ip").unwrap_err().contains("netns exec"));
        assert!(ProgramGrant::parse("ip route add").is_err());
        assert!(ProgramGrant::parse("ip -b").is_err());
        assert_eq!(
            ProgramGrant::parse("ufw").unwrap(),
            ProgramGrant { program: "ufw", subcommand: None, exactly: None }
        );
    }

    #[test]
    fn a_program_granted_with_its_arguments_runs_only_that_command() {
        // `true` stands in for nginx: the grant is what is tested.
        let (ctx, recorder) = ctx(&["true -s reload", "true -qt"]);
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        ctx.run("true", &args("-s reload"), None, 100).unwrap();
        ctx.run("true", &args("-qt"), None, 100).unwrap();
        for other in ["-s stop", "-s reload -c /tmp/evil.conf", "-c /tmp/evil.conf", "-qt -g x"] {
            assert!(ctx.run("true", &args(other), None, 100).unwrap_err().contains("outside"), "{other}");
        }
        assert_eq!(recorder.runs().len(), 2);
    }

    #[test]
    fn empty_grant_allows_nothing() {
        let (ctx, _) = ctx(&[]);
        assert!(ctx.run("iptables", &[], None, 100).unwrap_err().contains("nothing"));
    }
}
