//! Bans that hold on Docker hosts. Docker publishes a container's port by
//! forwarding, and accepts that traffic in FORWARD before any rule in
//! INPUT could see it, so a ban in INPUT is reported but ineffective (a
//! top complaint about fail2ban). The cure is to ban where Docker leaves
//! room for it: the DOCKER-USER chain for iptables and ipset, a forward
//! hook before Docker's filter for nftables.
//!
//! Three namespaces play it for real: a client, a Docker-like host that
//! forwards to a container and accepts that traffic as Docker does, and the
//! container serving on a port. A ban in INPUT leaves the client in; a ban
//! in DOCKER-USER (or at the forward hook) shuts it out.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmban::capability::process::SystemRunner;

use crate::util::{NetNs, builtin, opts, root_skip_reason, runtime_with, ticket};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 2);
const CONTAINER: Ipv4Addr = Ipv4Addr::new(10, 89, 1, 2);
const PORT: u16 = 8080;

struct DockerHost {
    client: NetNs,
    host: NetNs,
    container: NetNs,
    server: Child,
}

impl DockerHost {
    fn new(tag: &str) -> DockerHost {
        let (client, host, container) =
            (NetNs::new(&format!("{tag}c")), NetNs::new(&format!("{tag}h")), NetNs::new(&format!("{tag}k")));
        let pid = std::process::id();
        for (a, b, ns_a, ns_b, net) in [("c", "h", &client, &host, 0), ("k", "g", &container, &host, 1)] {
            // Made in the machine's namespace, then moved: unique names
            // (at most 15 characters) across the tests running at once.
            let (end_a, end_b) = (format!("w{tag}{a}{pid}"), format!("w{tag}{b}{pid}"));
            let status = Command::new("ip")
                .args(["link", "add", &end_a, "type", "veth", "peer", "name", &end_b])
                .status()
                .unwrap();
            assert!(status.success());
            for (end, ns) in [(&end_a, ns_a), (&end_b, ns_b)] {
                assert!(Command::new("ip").args(["link", "set", end, "netns", &ns.name]).status().unwrap().success());
            }
            let (addr_a, addr_b) = (format!("10.89.{net}.2/24"), format!("10.89.{net}.1/24"));
            ns_a.exec(&["ip", "addr", "add", &addr_a, "dev", &end_a]);
            ns_b.exec(&["ip", "addr", "add", &addr_b, "dev", &end_b]);
            for (ns, end) in [(ns_a, &end_a), (ns_b, &end_b)] {
                ns.exec(&["ip", "link", "set", end, "up"]);
                ns.exec(&["ip", "link", "set", "lo", "up"]);
            }
            ns_a.exec(&["ip", "route", "add", "default", "via", &format!("10.89.{net}.1")]);
        }
        host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // What Docker makes: DOCKER-USER first in FORWARD, then its own
        // acceptance of the published container's traffic, and a policy that
        // drops everything else forwarded.
        host.exec(&["iptables", "-w", "-N", "DOCKER-USER"]);
        host.exec(&["iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN"]);
        host.exec(&["iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-USER"]);
        host.exec(&["iptables", "-w", "-A", "FORWARD", "-d", &CONTAINER.to_string(), "-j", "ACCEPT"]);
        host.exec(&["iptables", "-w", "-A", "FORWARD", "-s", &CONTAINER.to_string(), "-j", "ACCEPT"]);
        host.exec(&["iptables", "-w", "-P", "FORWARD", "DROP"]);
        let server = Command::new("ip")
            .args(["netns", "exec", &container.name, "python3", "-m", "http.server", "--bind"])
            .args([CONTAINER.to_string(), PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let docker = DockerHost { client, host, container, server };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !docker.client_gets_in() {
            assert!(Instant::now() < deadline, "the container's server never answered the client");
            std::thread::sleep(Duration::from_millis(100));
        }
        docker
    }

    /// Whether the client reaches the container's port.
    fn client_gets_in(&self) -> bool {
        let probe =
            format!("import socket; s = socket.create_connection(('{CONTAINER}', {PORT}), timeout=1); s.close()");
        Command::new("ip")
            .args(["netns", "exec", &self.client.name, "python3", "-c", &probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = &self.container;
    }
}

fn skip_reason() -> Option<String> {
    root_skip_reason(&["iptables", "ipset", "nft", "ip", "python3"])
}

#[test]
fn a_ban_in_input_leaves_a_containers_client_in_and_docker_user_shuts_it_out() {
    if let Some(why) = skip_reason() {
        return crate::util::skipped!("a_ban_in_input_leaves_a_containers_client_in: {why}");
    }
    let docker = DockerHost::new("dk1");
    let rt = runtime_with(Arc::new(SystemRunner));
    let client = ticket(&CLIENT.to_string());
    let port = PORT.to_string();
    // fail2ban's default chain: reported as banned, and the client still in.
    let mut input = builtin(&rt, "iptables").action(opts(&[("name", "input"), ("port", &port)])).unwrap();
    docker.host.run(|| {
        input.start().unwrap();
        assert!(input.ban(std::slice::from_ref(&client)).unwrap()[0].is_ok());
    });
    assert!(docker.client_gets_in(), "a ban in INPUT does not see forwarded traffic");
    docker.host.run(|| input.stop().unwrap());

    for plugin in ["iptables", "iptables-ipset"] {
        let options = opts(&[("name", "docker"), ("port", &port), ("chain", "DOCKER-USER"), ("type", "multiport")]);
        let mut action = builtin(&rt, plugin).action(options).unwrap();
        docker.host.run(|| {
            action.start().unwrap();
            assert!(action.ban(std::slice::from_ref(&client)).unwrap()[0].is_ok());
        });
        assert!(!docker.client_gets_in(), "{plugin} in DOCKER-USER must shut the client out");
        docker.host.run(|| {
            assert!(action.unban(std::slice::from_ref(&client)).unwrap()[0].is_ok());
        });
        assert!(docker.client_gets_in(), "{plugin}: the unban lets the client in again");
        docker.host.run(|| action.stop().unwrap());
    }
}

#[test]
fn nftables_at_the_forward_hook_shuts_a_containers_client_out() {
    if let Some(why) = skip_reason() {
        return crate::util::skipped!("nftables_at_the_forward_hook_shuts_a_containers_client_out: {why}");
    }
    let docker = DockerHost::new("dk2");
    let rt = runtime_with(Arc::new(SystemRunner));
    let client = ticket(&CLIENT.to_string());
    let port = PORT.to_string();
    let options = opts(&[("name", "docker"), ("port", &port), ("chain_hook", "forward")]);
    let mut action = builtin(&rt, "nftables").action(options).unwrap();
    docker.host.run(|| {
        action.start().unwrap();
        assert!(action.ban(std::slice::from_ref(&client)).unwrap()[0].is_ok());
    });
    assert!(!docker.client_gets_in(), "a ban at the forward hook comes before Docker's acceptance");
    docker.host.run(|| action.stop().unwrap());
    assert!(docker.client_gets_in());
}
