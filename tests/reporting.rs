//! The built-in reporting actions (abuseipdb, cloudflare, ipthreat,
//! blocklist_de) with Debian's stock files, driven by the
//! daemon against loopback servers that play AbuseIPDB's and Cloudflare's
//! APIs (granted in plugin.d, the URLs given as action options), and a
//! server outside the grants that must see nothing.

use std::path::Path;

use crate::util::api_server::ApiServer;
use crate::util::daemon::{Daemon, append, failure, tree};

#[test]
fn bans_are_reported_to_the_granted_apis_only() {
    let stock = Path::new("/etc/fail2ban/action.d");
    if !stock.join("abuseipdb.conf").is_file() || !stock.join("cloudflare-token.conf").is_file() {
        return crate::util::skipped!("bans_are_reported_to_the_granted_apis_only: fail2ban is not installed");
    }
    let abuseipdb = ApiServer::start(|_| (200, r#"{"data":{"abuseConfidenceScore":52}}"#.into()));
    let cloudflare = ApiServer::start(|seen| match seen.method.as_str() {
        "GET" => (
            200,
            r#"{"success":true,"result":[{"id":"92f17202ed8bd63d69a66b86a49a8f6b","notes":"Fail2Ban sshd",
                "configuration":{"target":"ip","value":"192.0.2.44"}}]}"#
                .into(),
        ),
        _ => (200, r#"{"success":true,"result":{"id":"92f17202ed8bd63d69a66b86a49a8f6b"}}"#.into()),
    });
    let outsider = ApiServer::start(|_| (200, "{}".into()));
    let ipthreat = ApiServer::start(|_| (200, "{}".into()));
    let blocklist = ApiServer::start(|_| (200, "OK".into()));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        &format!(
            "[sshd]\naction = abuseipdb[abuseipdb_apikey=k3y, abuseipdb_category=\"18,22\", \
             url=\"http://127.0.0.1:{a}/api/v2/report\"]\n         \
             cloudflare-token[cfzone=0123abcd, cftoken=t0ken, url=\"http://127.0.0.1:{c}/client/v4\"]\n         \
             cloudflare[cfuser=me@example.org, cftoken=k, url=\"http://127.0.0.1:{o}/client/v4\"]\n         \
             ipthreat[ipthreat_apikey=ipk, url=\"http://127.0.0.1:{i}/api/report\"]\n         \
             blocklist_de[email=ops@example.org, apikey=blk, service=sshd, agent=wasmban, \
             url=\"http://127.0.0.1:{b}/en/httpreports.html\"]\n",
            a = abuseipdb.port,
            c = cloudflare.port,
            o = outsider.port,
            i = ipthreat.port,
            b = blocklist.port
        ),
    );
    crate::util::daemon::copy_fail2ban_actions(root);
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/abuseipdb.toml"),
        format!("[grants]\nhttp = [\"127.0.0.1:{}\"]\n", abuseipdb.port),
    )
    .unwrap();
    std::fs::write(
        root.join("conf/plugin.d/cloudflare.toml"),
        format!("[grants]\nhttp = [\"127.0.0.1:{}\"]\n", cloudflare.port),
    )
    .unwrap();
    for (plugin, port) in [("ipthreat", ipthreat.port), ("blocklist-de", blocklist.port)] {
        std::fs::write(
            root.join(format!("conf/plugin.d/{plugin}.toml")),
            format!("[grants]\nhttp = [\"127.0.0.1:{port}\"]\n"),
        )
        .unwrap();
    }
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    d.wait_for("the report", || !abuseipdb.seen().is_empty() && !cloudflare.seen().is_empty());
    let report = &abuseipdb.seen()[0];
    assert_eq!((report.method.as_str(), report.target.as_str()), ("POST", "/api/v2/report"));
    assert_eq!(report.header("Key"), Some("k3y"));
    assert!(report.body.starts_with("ip=192.0.2.44&categories=18%2C22&comment=20"), "{}", report.body);
    assert!(report.body.contains("Failed+password+for+root+from+192.0.2.44"), "{}", report.body);
    let rule = &cloudflare.seen()[0];
    assert_eq!(rule.target, "/client/v4/zones/0123abcd/firewall/access_rules/rules");
    assert_eq!(rule.header("Authorization"), Some("Bearer t0ken"));
    assert_eq!(
        rule.body,
        r#"{"mode":"block","configuration":{"target":"ip","value":"192.0.2.44"},"notes":"Fail2Ban sshd"}"#
    );
    d.wait_for("the other reports", || !ipthreat.seen().is_empty() && !blocklist.seen().is_empty());
    assert_eq!(ipthreat.seen()[0].body, r#"{"ip":"192.0.2.44","flags":"8","system":"sshd","notes":"fail2ban"}"#);
    assert_eq!(ipthreat.seen()[0].header("X-API-KEY"), Some("ipk"));
    let form = &blocklist.seen()[0].body;
    assert!(form.starts_with("server=ops%40example.org&apikey=blk&service=sshd&ip=192.0.2.44&logs=20"), "{form}");
    // The third action points outside its grant: refused, never sent.
    let refusal = format!("failed to ban 192.0.2.44: 127.0.0.1:{} is not in the `http` grant", outsider.port);
    d.wait_for("the refusal", || d.log().contains(&refusal));
    assert!(outsider.seen().is_empty(), "{:?}", outsider.seen());

    assert!(d.client(&["unban", "192.0.2.44"]).0);
    d.wait_for("the rule deleted", || cloudflare.seen().len() == 3);
    let seen = cloudflare.seen();
    assert_eq!(seen[1].method, "GET");
    assert!(seen[1].target.contains("configuration.value=192.0.2.44&notes=Fail2Ban+sshd"), "{}", seen[1].target);
    assert_eq!(
        (seen[2].method.as_str(), seen[2].target.as_str()),
        ("DELETE", "/client/v4/zones/0123abcd/firewall/access_rules/rules/92f17202ed8bd63d69a66b86a49a8f6b")
    );
    assert_eq!(abuseipdb.seen().len(), 1, "an unban reports nothing");
    assert!(outsider.seen().is_empty());
}

/// Debian's nsupdate action: the update nsupdate is given on its standard
/// input, signed with the key file, and nothing else run.
#[test]
fn nsupdate_publishes_and_deletes_the_bans_record() {
    use std::sync::Arc;

    use wasmban::capability::process::{ProgramOutput, RecordingRunner};
    use wasmban::config::action::ActionDefinition;

    use crate::util::{builtin, runtime_with, ticket};
    let stock = Path::new("/etc/fail2ban");
    if !stock.join("action.d/nsupdate.conf").is_file() || !crate::util::has_program("nsupdate") {
        return crate::util::skipped!("nsupdate_publishes_and_deletes_the_bans_record: needs fail2ban and nsupdate");
    }
    let params: Vec<(String, String)> = [("domain", "bl.example.org"), ("keyfile", "/etc/bind/f2b.key")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let def = ActionDefinition::load(stock, "nsupdate", &params, &Default::default()).unwrap();
    assert_eq!(def.plugin(), Some("nsupdate"));
    let rec = RecordingRunner::answering(|_| ProgramOutput::default());
    let rt = runtime_with(Arc::new(rec.clone()));
    let mut action = builtin(&rt, "nsupdate").action(def.plugin_options()).unwrap();
    assert!(action.ban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());
    assert!(action.unban(&[ticket("192.0.2.7")]).unwrap()[0].is_ok());
    let runs = rec.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.program == Path::new("/usr/bin/nsupdate") && r.args == ["-k", "/etc/bind/f2b.key"]));
    assert_eq!(
        runs[0].input.as_deref(),
        Some(
            "prereq nxrrset 7.2.0.192.bl.example.org TXT\nupdate add 7.2.0.192.bl.example.org 60 IN TXT \"Your IP has been banned\"\nsend\n"
        )
    );
    assert_eq!(runs[1].input.as_deref(), Some("update delete 7.2.0.192.bl.example.org\nsend\n"));
}

/// A prefix ban (`banprefix6 = 64`) is a Cloudflare `ip_range` rule, and is
/// not reported to AbuseIPDB, which takes single addresses (the log says
/// so).
#[test]
fn prefix_bans_are_ranges_at_cloudflare_and_not_reported_as_addresses() {
    let stock = Path::new("/etc/fail2ban/action.d");
    if !stock.join("abuseipdb.conf").is_file() || !stock.join("cloudflare-token.conf").is_file() {
        return crate::util::skipped!("prefix_bans_are_ranges_at_cloudflare: fail2ban is not installed");
    }
    let abuseipdb = ApiServer::start(|_| (200, "{}".into()));
    let cloudflare = ApiServer::start(|_| (200, r#"{"success":true,"result":{"id":"92f1"}}"#.into()));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        &format!(
            "[sshd]\nmaxretry = 2\nbanprefix6 = 64\n\
             action = abuseipdb[abuseipdb_apikey=k3y, abuseipdb_category=22, url=\"http://127.0.0.1:{a}/api/v2/report\"]\n         \
             cloudflare-token[cfzone=0123abcd, cftoken=t0ken, url=\"http://127.0.0.1:{c}/client/v4\"]\n",
            a = abuseipdb.port,
            c = cloudflare.port,
        ),
    );
    crate::util::daemon::copy_fail2ban_actions(root);
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    for (plugin, port) in [("abuseipdb", abuseipdb.port), ("cloudflare", cloudflare.port)] {
        std::fs::write(
            root.join(format!("conf/plugin.d/{plugin}.toml")),
            format!("[grants]\nhttp = [\"127.0.0.1:{port}\"]\n"),
        )
        .unwrap();
    }
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &(failure("2001:db8:0:7::1") + &failure("2001:db8:0:7::2")));
    d.wait_for("the rule", || !cloudflare.seen().is_empty());
    assert_eq!(
        cloudflare.seen()[0].body,
        r#"{"mode":"block","configuration":{"target":"ip_range","value":"2001:db8:0:7::/64"},"notes":"Fail2Ban sshd"}"#
    );
    d.wait_for("the note", || d.log().contains("2001:db8:0:7::/64 is a prefix ban: not reported"));
    assert!(abuseipdb.seen().is_empty(), "{:?}", abuseipdb.seen());
}

/// Debian's mynetwatchman file: each ban a GET of myNetWatchman's web
/// report with fail2ban's query, succeeding only on its success text.
#[test]
fn mynetwatchman_gets_fail2bans_web_report() {
    let stock = Path::new("/etc/fail2ban/action.d/mynetwatchman.conf");
    if !stock.is_file() {
        return crate::util::skipped!("mynetwatchman_gets_fail2bans_web_report: fail2ban is not installed");
    }
    let server = ApiServer::start(|seen| {
        if seen.target.contains("AttackerIP=192.0.2.44") {
            (200, "<html>Attack Report Insert Successful</html>".into())
        } else {
            (200, "<html>Invalid agent</html>".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(
        root,
        &format!(
            "[sshd]\naction = mynetwatchman[mnwlogin=ops@example.org, mnwpass=s3cret, myip=203.0.113.5, \
             mnwurl=\"http://127.0.0.1:{}/insertwebreport.asp\"]\n",
            server.port
        ),
    );
    crate::util::daemon::copy_fail2ban_actions(root);
    std::fs::create_dir_all(root.join("conf/plugin.d")).unwrap();
    std::fs::write(
        root.join("conf/plugin.d/mynetwatchman.toml"),
        format!("[grants]\nhttp = [\"127.0.0.1:{}\"]\n", server.port),
    )
    .unwrap();
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    append(&root.join("auth.log"), &(failure("192.0.2.44") + &failure("192.0.2.45")));
    d.wait_for("the reports", || server.seen().len() >= 2);
    let report = server.seen().into_iter().find(|s| s.target.contains("192.0.2.44")).unwrap();
    assert_eq!(report.method, "GET");
    assert!(
        report.target.starts_with(
            "/insertwebreport.asp?AT=2&AV=0&AgentEmail=ops%40example.org&AgentPassword=s3cret&\
             AttackerIP=192.0.2.44&SrcPort=0&ProtocolID=6&DestPort=0&AttackCount=1&VictimIP=203.0.113.5&AttackDateTime=20"
        ),
        "{}",
        report.target
    );
    assert_eq!(report.header("User-Agent"), Some("Fail2ban"));
    d.wait_for("the failed report", || d.log().contains("myNetWatchman did not take the report of 192.0.2.45"));
}

/// Debian's apprise file, with the real apprise program: the jail's start
/// and each ban reach a loopback JSON endpoint that apprise's own
/// configuration names.
#[test]
fn apprise_tells_of_bans_through_the_real_program() {
    let stock = Path::new("/etc/fail2ban/action.d/apprise.conf");
    if !stock.is_file() || !crate::util::has_program("apprise") {
        return crate::util::skipped!("apprise_tells_of_bans: needs fail2ban and apprise (.ci/run installs them)");
    }
    let server = ApiServer::start(|_| (200, "{}".into()));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = root.join("apprise.yml");
    std::fs::write(&config, format!("urls:\n  - json://127.0.0.1:{}/notify\n", server.port)).unwrap();
    tree(root, &format!("[sshd]\naction = apprise[config={}]\n", config.display()));
    crate::util::daemon::copy_fail2ban_actions(root);
    append(&root.join("auth.log"), "");
    let d = Daemon::start(root);
    d.wait_for("the start", || server.seen().iter().any(|s| s.body.contains("started on")));
    append(&root.join("auth.log"), &failure("192.0.2.44"));
    d.wait_for("the ban", || server.seen().iter().any(|s| s.body.contains("banned 192.0.2.44")));
    let ban = server.seen().into_iter().find(|s| s.body.contains("banned 192.0.2.44")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&ban.body).unwrap();
    assert_eq!(json["type"], "warning", "{json}");
    assert!(json["title"].as_str().unwrap().starts_with("[Fail2Ban] sshd: banned 192.0.2.44 from "), "{json}");
    assert_eq!(json["message"], "The IP 192.0.2.44 has just been banned by Fail2Ban after 1 attempts against sshd");
}
