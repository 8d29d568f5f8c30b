//! The built-in route action: fail2ban's `route` file carried out with
//! `ip route` only, against the real routing table of a namespace.

use std::sync::Arc;

use wasmban::capability::process::SystemRunner;

use crate::util::{NetNs, builtin, root_skip_reason, runtime_with, ticket};

#[test]
fn fail2bans_route_action_in_a_network_namespace() {
    use wasmban::config::action::ActionDefinition;
    if let Some(why) = root_skip_reason(&["ip"]) {
        crate::util::skipped!("fail2bans_route_action_in_a_network_namespace: {why}");
        return;
    }
    let stock = std::path::Path::new("/etc/fail2ban");
    if !stock.join("action.d/route.conf").is_file() {
        crate::util::skipped!("fail2bans_route_action_in_a_network_namespace: fail2ban is not installed");
        return;
    }
    let def = ActionDefinition::load(stock, "route", &[], &Default::default()).unwrap();
    assert_eq!(def.plugin(), Some("route"));
    let ns = NetNs::new("route");
    let rt = runtime_with(Arc::new(SystemRunner));
    let mut action = builtin(&rt, "route").action(def.plugin_options()).unwrap();
    // The admin's own unreachable route, which is not the jail's.
    ns.exec(&["ip", "route", "add", "unreachable", "203.0.113.0/24"]);
    ns.run(|| {
        action.start().unwrap();
        let results = action.ban(&[ticket("192.0.2.7"), ticket("2001:db8::7"), ticket("198.51.100.9/24")]).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // Banned again (restored at start): no error, one route.
        assert!(action.ban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());
        assert!(action.ban(&[ticket("-batch")]).unwrap()[0].is_err());
    });
    let routes = ns.exec(&["ip", "-4", "route", "show", "type", "unreachable"]);
    assert_eq!(routes.matches("unreachable 192.0.2.7").count(), 1, "{routes}");
    assert!(routes.contains("unreachable 198.51.100.0/24"), "{routes}");
    assert!(ns.exec(&["ip", "-6", "route", "show", "type", "unreachable"]).contains("unreachable 2001:db8::7"));

    // A route deleted by hand comes back at check; the admin's stays.
    ns.exec(&["ip", "route", "del", "unreachable", "192.0.2.7"]);
    ns.run(|| action.check().unwrap());
    let routes = ns.exec(&["ip", "-4", "route", "show", "type", "unreachable"]);
    assert!(routes.contains("unreachable 192.0.2.7") && routes.contains("203.0.113.0/24"), "{routes}");

    // Unbans, one of a route already gone, then the stop.
    ns.exec(&["ip", "route", "del", "unreachable", "2001:db8::7"]);
    ns.run(|| {
        let results = action.unban(&[ticket("192.0.2.7"), ticket("2001:db8::7")]).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // Stopping lifts the routes of the bans still in force.
        action.stop().unwrap();
    });
    let routes = ns.exec(&["ip", "-4", "route", "show", "type", "unreachable"]);
    assert_eq!(routes.trim(), "unreachable 203.0.113.0/24", "{routes}");
}
