"""What the benchmark scripts share: fail2ban-rs, the Rust reimplementation
of fail2ban that wasmban is compared with, installed on first use with
`cargo install --root` into `.bench-tools/` (ignored by git), so that every
comparison is made in the same run on the same machine.
"""
import os, shutil, subprocess, sys

FAIL2BAN_RS_VERSION = "1.5.4"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, ".bench-tools")

# fail2ban-rs's own sshd patterns (`fail2ban-rs gen-config sshd`): each tool
# runs its own sshd filter, as an admin would.
FAIL2BAN_RS_SSHD = [
    r"sshd\[\d+\]: Failed password for .* from <HOST> port \d+",
    r"sshd\[\d+\]: Invalid user .* from <HOST> port \d+",
    r"sshd\[\d+\]: Connection closed by authenticating user .* <HOST> port \d+",
    r"sshd\[\d+\]: Disconnected from authenticating user .* <HOST> port \d+",
]


def fail2ban_rs():
    """The path of fail2ban-rs FAIL2BAN_RS_VERSION, installing it first
    (a few minutes, once) when it is not there."""
    binary = os.path.join(TOOLS, "bin", "fail2ban-rs")
    if os.path.exists(binary):
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
        if version[-1:] == [FAIL2BAN_RS_VERSION]:
            return binary
    if not shutil.which("cargo"):
        sys.exit("cargo is needed to install fail2ban-rs for the comparison")
    print(f"installing fail2ban-rs {FAIL2BAN_RS_VERSION} into {TOOLS} (once)...", file=sys.stderr, flush=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(TOOLS, "target"))
    subprocess.run(["cargo", "install", "--locked", "--quiet", "--root", TOOLS,
                    f"fail2ban-rs@{FAIL2BAN_RS_VERSION}"], check=True, env=env)
    shutil.rmtree(os.path.join(TOOLS, "target"), ignore_errors=True)
    return binary


def fail2ban_rs_config(path, state_dir, socket, log, findtime="60d", bantime="120d", maxretry=5):
    """A fail2ban-rs configuration with one sshd jail on `log`, its own
    patterns, and a /bin/true script backend (no firewall work)."""
    patterns = "\n".join(f"    '{p}'," for p in FAIL2BAN_RS_SSHD)
    with open(path, "w") as f:
        f.write(f"""[global]
state_dir = "{state_dir}"
socket_path = "{socket}"

[jail.sshd]
enabled = true
log_path = "{log}"
date_format = "syslog"
filter = [
{patterns}
]
max_retry = {maxretry}
find_time = "{findtime}"
ban_time = "{bantime}"
ignoreself = false

[jail.sshd.backend.script]
ban_cmd = "/bin/true"
unban_cmd = "/bin/true"
""")


def fail2ban_tree(conf, jail_local, extra=None):
    """A copy of Debian's /etc/fail2ban at `conf` (replaced if there) with
    no jail.d and `jail_local` as its jail.local: the same jails for
    wasmban and fail2ban. `extra` is an optional (file name, text) pair
    written beside it (wasmban.conf, fail2ban.local)."""
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree("/etc/fail2ban", conf)
    shutil.rmtree(os.path.join(conf, "jail.d"), ignore_errors=True)
    os.makedirs(os.path.join(conf, "jail.d"))
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write(jail_local)
    if extra:
        with open(os.path.join(conf, extra[0]), "w") as f:
            f.write(extra[1])
    return conf
