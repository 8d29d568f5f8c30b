//! `wasmban check` against real configuration trees.

use std::path::Path;
use std::process::Command;

fn check(confdir: &Path, state: &Path) -> (bool, String) {
    let run = crate::util::wasmban(&["-c", confdir.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "check"]);
    (run.ok, run.both())
}

/// Debian's whole /etc/fail2ban, unchanged, plus a jail.local enabling
/// every stock jail: every jail and filter must load and every filter must
/// compile in the regex component, and every stock action runs in a
/// built-in component, with no shell. A classic shell action of the
/// admin's runs in command-action, which needs the `shell` grant: without
/// it, it is reported as off, with its jail, file and the line to add,
/// and the check passes; with it, all is OK without a word about it.
#[test]
fn debians_fail2ban_tree_loads_with_every_stock_jail_enabled() {
    let stock = Path::new("/etc/fail2ban");
    if !stock.join("jail.conf").is_file() {
        crate::util::skipped!("debians_fail2ban_tree_loads_with_every_stock_jail_enabled: fail2ban is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fail2ban");
    let status = Command::new("cp").args(["-r", stock.to_str().unwrap(), tree.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let jail_conf = std::fs::read_to_string(tree.join("jail.conf")).unwrap();
    let names: Vec<&str> = jail_conf
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix('[').and_then(|r| r.strip_suffix(']')))
        .filter(|n| *n != "INCLUDES" && *n != "DEFAULT")
        .collect();
    assert!(names.len() > 80, "{names:?}");
    let local: String = names.iter().map(|n| format!("[{n}]\nenabled = true\n\n")).collect();
    std::fs::write(tree.join("jail.local"), local).unwrap();

    let (ok, out) = check(&tree, &dir.path().join("state"));
    let jails_line = out.lines().find(|l| l.starts_with("jails: ")).unwrap_or("");
    assert!(jails_line.starts_with(&format!("jails: {} enabled", names.len())), "{jails_line}\n{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(errors.is_empty(), "unexpected errors:\n{}", errors.join("\n"));
    // Every stock jail's actions run in built-in components: none needs
    // the shell.
    assert!(ok && !out.contains("shell = true"), "{out}");

    // An action of the admin's own, made of shell commands, without the
    // grant: a warning with its jail, file and the line to add, the jail
    // runs without it, and the unit's `check` passes.
    std::fs::write(tree.join("action.d/note.conf"), "[Definition]\nactionban = logger banned <ip>\n").unwrap();
    let local = std::fs::read_to_string(tree.join("jail.local")).unwrap();
    std::fs::write(tree.join("jail.local"), format!("{local}[sshd]\naction = %(action_)s\n         note\n")).unwrap();
    let (ok, out) = check(&tree, &dir.path().join("state"));
    let off: Vec<&str> = out.lines().filter(|l| l.contains("add `shell = true` under [grants]")).collect();
    assert!(
        matches!(&off[..], [line] if line.starts_with("warning: [sshd] action note (")
            && line.contains("action.d/note.conf")
            && line.ends_with("the jail will run without this action")),
        "{out}"
    );
    assert!(ok, "a missing grant must not fail the check:\n{out}");

    // With the grant the admin gives classic actions, everything loads.
    std::fs::create_dir_all(tree.join("plugin.d")).unwrap();
    std::fs::write(tree.join("plugin.d/command-action.toml"), "[grants]\nshell = true\n").unwrap();
    let (ok, out) = check(&tree, &dir.path().join("state"));
    assert!(ok && out.contains("\nOK\n") && !out.contains("shell = true"), "{out}");
    // Debian's own keys raise no typo warning; an admin's typo does, with
    // its file, line and the option meant, and the tree still loads.
    assert!(!out.contains("did you mean"), "{out}");
    let mut local = std::fs::read_to_string(tree.join("jail.local")).unwrap();
    local.push_str("[sshd]\nmaxretries = 3\n");
    std::fs::write(tree.join("jail.local"), &local).unwrap();
    let (ok, out) = check(&tree, &dir.path().join("state"));
    let line = local.lines().count();
    let said = format!("warning: {}:{line}: [sshd] maxretries is not an option", tree.join("jail.local").display());
    assert!(ok && out.contains(&said) && out.contains("did you mean maxretry?"), "{out}");
}

/// The same tree with nftables banactions (fail2ban 1.1's default on
/// several distributions): the stock jails `3proxy` (a name that starts
/// with a digit) and `pass2allow-ftp` (`blocktype = RETURN`, `returntype =
/// DROP`) build too, and fail2ban's Googlebot ignorecommand needs no shell.
#[test]
fn debians_tree_with_nftables_banactions_loads_every_stock_jail() {
    let stock = Path::new("/etc/fail2ban");
    if !stock.join("jail.conf").is_file() {
        crate::util::skipped!(
            "debians_tree_with_nftables_banactions_loads_every_stock_jail: fail2ban is not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fail2ban");
    let status = Command::new("cp").args(["-r", stock.to_str().unwrap(), tree.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(tree.join("jail.d"));
    std::fs::write(
        tree.join("jail.local"),
        "[DEFAULT]\nenabled = true\nbanaction = nftables-multiport\nbanaction_allports = nftables-allports\n",
    )
    .unwrap();
    std::fs::create_dir_all(tree.join("plugin.d")).unwrap();
    std::fs::write(tree.join("plugin.d/command-action.toml"), "[grants]\nshell = true\n").unwrap();
    let (ok, out) = check(&tree, &dir.path().join("state"));
    assert!(ok && out.contains("\nOK\n"), "{out}");
    for jail in ["3proxy", "pass2allow-ftp", "apache-fakegooglebot"] {
        assert!(!out.lines().any(|l| l.starts_with(&format!("error: [{jail}]"))), "{out}");
    }
}

#[test]
fn a_broken_filter_is_reported_with_its_jail_file_and_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("filter.d")).unwrap();
    std::fs::create_dir_all(d.join("action.d")).unwrap();
    std::fs::write(
        d.join("filter.d/bad.conf"),
        "[Definition]\nfailregex = ^ok <HOST>$\n            ^(unclosed <HOST>\n",
    )
    .unwrap();
    std::fs::write(d.join("action.d/fw.conf"), "[Definition]\nplugin = iptables\n").unwrap();
    std::fs::write(
        d.join("jail.conf"),
        "[web]\nenabled = true\nfilter = bad\naction = fw[name=web]\nlogpath = /nonexistent.log\n",
    )
    .unwrap();
    let (ok, out) = check(d, &d.join("state"));
    assert!(!ok);
    assert!(
        out.contains("error: [web] filter bad (") && out.contains("bad.conf") && out.contains("pattern 2"),
        "{out}"
    );
    assert!(out.contains("warning: [web] log /nonexistent.log does not exist yet"), "{out}");
}

#[test]
fn a_component_action_with_bad_options_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("filter.d")).unwrap();
    std::fs::create_dir_all(d.join("action.d")).unwrap();
    std::fs::write(d.join("filter.d/f.conf"), "[Definition]\nfailregex = ^fail <HOST>$\n").unwrap();
    std::fs::write(d.join("action.d/fw.conf"), "[Definition]\nplugin = iptables\n[Init]\ntype = someports\n").unwrap();
    std::fs::write(d.join("jail.conf"), "[web]\nenabled = true\nfilter = f\naction = fw\nbackend = systemd\n").unwrap();
    let (ok, out) = check(d, &d.join("state"));
    assert!(!ok);
    assert!(out.contains("error: [web] action fw (") && out.contains("`type`"), "{out}");
    // Fixed, it passes.
    std::fs::write(d.join("action.d/fw.conf"), "[Definition]\nplugin = iptables\n[Init]\ntype = multiport\n").unwrap();
    let (ok, out) = check(d, &d.join("state"));
    assert!(ok, "{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
}

/// The shipped default tree, with every jail in it enabled, loads and
/// builds (filters compiled, iptables actions created, nothing started).
#[test]
fn the_shipped_configuration_checks_ok_with_every_jail_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("conf");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let status = Command::new("cp").args(["-r", shipped.to_str().unwrap(), tree.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    std::fs::write(
        tree.join("jail.local"),
        "[sshd]\nenabled = true\n[sshd-aggressive]\nenabled = true\n[recidive]\nenabled = true\n\
         [nginx-http-auth]\nenabled = true\n[nginx-limit-req]\nenabled = true\n",
    )
    .unwrap();
    let (ok, out) = check(&tree, &dir.path().join("state"));
    assert!(ok, "{out}");
    assert!(out.contains("jails: 5 enabled"), "{out}");
}

/// Debian's tree switched to nftables the way fail2ban's docs show it
/// (`banaction = nftables-multiport`, `banaction_allports = nftables-allports`):
/// the stock nftables actions run in the built-in nftables component, so
/// no jail needs the shell grant for them.
#[test]
fn debians_tree_with_nftables_banactions_needs_no_shell() {
    let stock = Path::new("/etc/fail2ban");
    if !stock.join("jail.conf").is_file() {
        crate::util::skipped!("debians_tree_with_nftables_banactions_needs_no_shell: fail2ban is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fail2ban");
    let status = Command::new("cp").args(["-r", stock.to_str().unwrap(), tree.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    std::fs::write(
        tree.join("jail.local"),
        "[DEFAULT]\nbanaction = nftables-multiport\nbanaction_allports = nftables-allports\n\n\
         [sshd]\nenabled = true\n\n[recidive]\nenabled = true\nlogpath = /dev/null\n",
    )
    .unwrap();
    let (ok, out) = check(&tree, &dir.path().join("state"));
    assert!(ok && out.contains("\nOK\n"), "{out}");
}

/// The daemon's own settings are checked too: a bad `[metrics] listen`
/// would stop the start, so check names it.
#[test]
fn check_reports_a_bad_daemon_setting_with_its_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    crate::util::daemon::tree(dir.path(), "");
    let conf = dir.path().join("conf");
    std::fs::write(conf.join("wasmban.conf"), "[Definition]\nloglevel = INFO\n").unwrap();
    let (ok, out) = check(&conf, &dir.path().join("state"));
    assert!(ok, "{out}");
    std::fs::write(conf.join("wasmban.local"), "[metrics]\nlisten = 9191\n").unwrap();
    let (ok, out) = check(&conf, &dir.path().join("state"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("wasmban.local:2") && out.contains("[metrics] listen") && out.contains("127.0.0.1:9191"),
        "{out}"
    );
}

/// Each action.d file wasmban ships makes its component, with the grant
/// the component carries: none of them needs the shell.
#[test]
fn every_shipped_action_file_builds_its_component() {
    use wasmban::config::action::ActionDefinition;
    use wasmban::plugin::Registry;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let runtime = crate::util::runtime();
    let registry = Registry::new(None);
    let mut seen = 0;
    for entry in std::fs::read_dir(config.join("action.d")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let def = ActionDefinition::load(&config, &name, &[("name".into(), "sshd".into())], &Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let plugin = def.plugin().unwrap_or_else(|| panic!("{name} names no component"));
        assert_ne!(plugin, "command-action", "{name} would need the shell");
        let loaded = runtime.load_named(&registry, plugin).unwrap_or_else(|e| panic!("{name}: {e}"));
        loaded.action(def.plugin_options()).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert!(seen >= 10, "{seen}");
}
