//! Bans as CrowdSec bouncers read them: one decision per banned value
//! (the longest of the jails that ban it), the filters bouncers send, and
//! each bouncer's stream: what it was told, so that the next pull says
//! only what changed. Pure: the caller gives the bans and the time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bans::BanView;
use crate::jail::Prefix;

/// What a forever ban (`bantime = -1`) is announced as: bouncers know no
/// forever, and ten years outlasts any host.
pub const FOREVER_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// The `origin` of wasmban's bans, which bouncers can select with
/// `origins=`.
pub const ORIGIN: &str = "wasmban";

/// One jail's bans in force, as the daemon sees them now.
#[derive(Debug, Clone)]
pub struct JailBans {
    /// The jail.
    pub jail: String,
    /// Whether the jail is up. A jail that is starting has not restored
    /// its bans yet: what it banned before is kept, not withdrawn.
    pub running: bool,
    /// Its bans in force.
    pub bans: Vec<BanView>,
}

/// All jails' bans at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Whether the set of jails is settled. During a reload or a stop,
    /// jails are missing for a moment: nothing is withdrawn then.
    pub settled: bool,
    /// The jails.
    pub jails: Vec<JailBans>,
}

/// One banned value.
#[derive(Debug, Clone, PartialEq)]
pub struct Ban {
    /// The address or `network/length`.
    pub value: String,
    /// The same, parsed.
    pub prefix: Prefix,
    /// The jail whose ban lasts longest.
    pub jail: Arc<str>,
    /// When it ends (unix seconds); `None`: never.
    pub end: Option<i64>,
}

impl Ban {
    fn scope(&self) -> &'static str {
        if self.prefix.is_address() { "Ip" } else { "Range" }
    }

    fn scenario(&self) -> String {
        format!("{ORIGIN}/{}", self.jail)
    }

    /// Whether this ban outlasts `other`.
    fn outlasts(&self, other: &Ban) -> bool {
        match (self.end, other.end) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a > b,
            _ => false,
        }
    }

    /// The decision a bouncer is given at `now`.
    pub fn decision(&self, now: i64) -> Decision {
        let seconds = match self.end {
            None => FOREVER_SECONDS,
            Some(end) => end - now,
        };
        self.decision_lasting(seconds)
    }

    fn decision_lasting(&self, seconds: i64) -> Decision {
        // The id names this value's ban with this end: a ban whose end
        // moves is another decision, announced again.
        let digest = Sha256::digest(format!("{}\0{:?}", self.value, self.end));
        let mut high = [0u8; 8];
        high.copy_from_slice(&digest[..8]);
        // 53 bits: exact as a JSON number in every language.
        let id = (u64::from_be_bytes(high) >> 11) as i64;
        let hex: String = digest[8..24].iter().map(|b| format!("{b:02x}")).collect();
        let uuid = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
        Decision {
            id,
            uuid,
            origin: ORIGIN,
            kind: "ban",
            scope: self.scope(),
            value: self.value.clone(),
            duration: go_duration(seconds),
            scenario: self.scenario(),
            simulated: false,
        }
    }
}

/// A decision as CrowdSec's API writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// A number naming this decision.
    pub id: i64,
    /// The same, as CrowdSec's newer API also gives it.
    pub uuid: String,
    /// Who decided.
    pub origin: &'static str,
    /// Always `ban`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `Ip` or `Range`.
    pub scope: &'static str,
    /// The address or range.
    pub value: String,
    /// Time left, in Go's form (`3h59m12s`).
    pub duration: String,
    /// `wasmban/JAIL`.
    pub scenario: String,
    /// Always false.
    pub simulated: bool,
}

/// `seconds` as Go's `time.Duration` prints it, which is what bouncers
/// parse: `1h2m3s`, `4m0s`, `5s`, `0s`, `-7s`.
pub fn go_duration(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", go_duration(seconds.saturating_neg()));
    }
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The bans in force, one per value.
#[derive(Debug, Clone, Default)]
pub struct Current {
    bans: BTreeMap<String, Ban>,
    /// Jails whose bans are not known now (starting, or missing during a
    /// reload): what they banned is neither announced nor withdrawn.
    unknown: Vec<String>,
    /// Whether any jail may be missing (a reload or stop under way).
    unsettled: bool,
}

impl Current {
    /// The bans of `snapshot` in force at `now`, one per value. Ids that
    /// are not addresses or ranges (a filter's user names) mean nothing to
    /// a bouncer and are left out.
    pub fn of(snapshot: &Snapshot, now: i64) -> Current {
        let mut bans: BTreeMap<String, Ban> = BTreeMap::new();
        let mut unknown = Vec::new();
        for jail in &snapshot.jails {
            if !jail.running {
                unknown.push(jail.jail.clone());
                continue;
            }
            let name: Arc<str> = Arc::from(jail.jail.as_str());
            for view in &jail.bans {
                let end = (view.bantime >= 0).then(|| view.time.saturating_add(view.bantime));
                if end.is_some_and(|e| e <= now) {
                    continue;
                }
                let Some(prefix) = Prefix::parse(&view.id) else { continue };
                let ban = Ban { value: prefix.to_string(), prefix, jail: name.clone(), end };
                match bans.get(&ban.value) {
                    Some(known) if !ban.outlasts(known) => {}
                    _ => {
                        bans.insert(ban.value.clone(), ban);
                    }
                }
            }
        }
        Current { bans, unknown, unsettled: !snapshot.settled }
    }

    /// The bans `filter` admits.
    pub fn matching<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a Ban> + 'a {
        self.bans.values().filter(move |b| filter.admits(b))
    }

    /// How many values are banned.
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// Whether nothing is banned.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    fn may_withdraw(&self, jail: &str) -> bool {
        !self.unsettled && !self.unknown.iter().any(|j| j == jail)
    }
}

/// What a bouncer asks for: CrowdSec's query parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `scopes` (or `scope`): lower-cased; empty: any.
    scopes: Vec<String>,
    /// `origins`.
    origins: Vec<String>,
    /// `scenarios_containing`: lower-cased words, any of them.
    containing: Vec<String>,
    /// `scenarios_not_containing`: none of them.
    not_containing: Vec<String>,
    /// `type`.
    kind: Option<String>,
    /// `value`.
    value: Option<String>,
    /// `ip` or `range`.
    range: Option<Prefix>,
    /// `contains`: decisions holding `range` (true, the default), or held
    /// by it.
    contains: bool,
}

fn words(value: &str, lower: bool) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| if lower { w.to_ascii_lowercase() } else { w.to_string() })
        .collect()
}

impl Filter {
    /// Read the query string `query` (without `?`). A stream with no
    /// `scopes` gets addresses and ranges, as CrowdSec's does.
    pub fn parse(query: &str, stream: bool) -> Result<Filter, String> {
        let mut filter = Filter { contains: true, ..Filter::default() };
        let mut scoped = false;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "scopes" | "scope" => {
                    filter.scopes = words(&value, true);
                    scoped = true;
                }
                "origins" | "origin" => filter.origins = words(&value, false),
                "scenarios_containing" => filter.containing = words(&value, true),
                "scenarios_not_containing" => filter.not_containing = words(&value, true),
                "type" => filter.kind = Some(value.into_owned()),
                "value" => filter.value = Some(value.into_owned()),
                "ip" | "range" => {
                    let prefix = Prefix::parse(&value)
                        .ok_or_else(|| format!("{key}={value}: not an address or range (such as 192.0.2.0/24)"))?;
                    filter.range = Some(prefix);
                }
                "contains" => {
                    filter.contains = match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("contains={value}: give true or false")),
                    }
                }
                // What a bouncer may send that changes nothing here:
                // `startup` is read by the stream itself, the rest tune
                // CrowdSec's own database queries.
                _ => {}
            }
        }
        if stream && !scoped {
            filter.scopes = vec!["ip".into(), "range".into()];
        }
        Ok(filter)
    }

    /// Whether `ban` is one of the decisions asked for.
    pub fn admits(&self, ban: &Ban) -> bool {
        // Built only when asked about: most pulls name no scenario.
        let scenario = || ban.scenario().to_ascii_lowercase();
        (self.scopes.is_empty() || self.scopes.iter().any(|s| s.eq_ignore_ascii_case(ban.scope())))
            && (self.origins.is_empty() || self.origins.iter().any(|o| o == ORIGIN))
            && (self.containing.is_empty() || {
                let scenario = scenario();
                self.containing.iter().any(|w| scenario.contains(w.as_str()))
            })
            && (self.not_containing.is_empty() || {
                let scenario = scenario();
                !self.not_containing.iter().any(|w| scenario.contains(w.as_str()))
            })
            && self.kind.as_deref().is_none_or(|k| k == "ban")
            && self.value.as_deref().is_none_or(|v| v == ban.value)
            && self.range.is_none_or(|r| {
                if self.contains {
                    ban.prefix.length() <= r.length() && ban.prefix.contains(r.network())
                } else {
                    ban.prefix.length() >= r.length() && r.contains(ban.prefix.network())
                }
            })
    }
}

/// What one pull of the stream answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Answer {
    /// Decisions to enforce.
    pub new: Vec<Decision>,
    /// Decisions to lift.
    pub deleted: Vec<Decision>,
}

/// What a bouncer was last told of one value (the value is the key).
#[derive(Debug, Clone)]
struct Told {
    prefix: Prefix,
    jail: Arc<str>,
    end: Option<i64>,
}

impl Told {
    fn of(ban: &Ban) -> Told {
        Told { prefix: ban.prefix, jail: ban.jail.clone(), end: ban.end }
    }

    fn ban(self, value: String) -> Ban {
        Ban { value, prefix: self.prefix, jail: self.jail, end: self.end }
    }
}

/// One bouncer's stream: the decisions it holds, as far as wasmban knows.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    told: HashMap<String, Told>,
}

impl Stream {
    /// A bouncer starting (`startup=true`), or one wasmban does not know
    /// yet (it restarted since): every ban in force is new.
    pub fn start(current: &Current, filter: &Filter, now: i64) -> (Stream, Answer) {
        let mut stream = Stream::default();
        let mut answer = Answer::default();
        for ban in current.matching(filter) {
            answer.new.push(ban.decision(now));
            stream.told.insert(ban.value.clone(), Told::of(ban));
        }
        (stream, answer)
    }

    /// A later pull: bans that are new or whose end moved, and bans that
    /// ended or were lifted.
    pub fn next(&mut self, current: &Current, filter: &Filter, now: i64) -> Answer {
        let mut answer = Answer::default();
        for ban in current.matching(filter) {
            let moved = match self.told.get(&ban.value) {
                Some(told) => told.end != ban.end,
                None => true,
            };
            if moved {
                answer.new.push(ban.decision(now));
                self.told.insert(ban.value.clone(), Told::of(ban));
            }
        }
        let mut gone = Vec::new();
        for (value, told) in &self.told {
            let still = current.bans.get(value).is_some_and(|b| filter.admits(b));
            if !still && current.may_withdraw(&told.jail) {
                gone.push(value.clone());
            }
        }
        gone.sort();
        for value in gone {
            if let Some(told) = self.told.remove(&value) {
                let left = told.end.map_or(0, |end| (end - now).min(0));
                answer.deleted.push(told.ban(value).decision_lasting(left));
            }
        }
        answer
    }

    /// How many decisions the bouncer holds.
    pub fn len(&self) -> usize {
        self.told.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.told.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, time: i64, bantime: i64) -> BanView {
        BanView { id: id.into(), time, bantime, bancount: 1, origin: Default::default(), from: None }
    }

    fn snapshot(jails: &[(&str, bool, Vec<BanView>)]) -> Snapshot {
        Snapshot {
            settled: true,
            jails: jails
                .iter()
                .map(|(j, running, bans)| JailBans { jail: j.to_string(), running: *running, bans: bans.clone() })
                .collect(),
        }
    }

    fn values(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().map(|d| d.value.as_str()).collect()
    }

    #[test]
    fn durations_are_written_as_go_writes_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5), "5s");
        assert_eq!(go_duration(240), "4m0s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(3723), "1h2m3s");
        assert_eq!(go_duration(-7), "-7s");
        assert_eq!(go_duration(FOREVER_SECONDS), "87600h0m0s");
    }

    #[test]
    fn one_decision_per_value_the_longest_and_only_addresses() {
        let s = snapshot(&[
            (
                "sshd",
                true,
                vec![view("192.0.2.1", 1000, 600), view("alice", 1000, 600), view("2001:db8::/64", 1000, 600)],
            ),
            ("recidive", true, vec![view("192.0.2.1", 900, 3600), view("198.51.100.7", 100, 100)]),
        ]);
        let current = Current::of(&s, 1100);
        let all = Filter::parse("", true).unwrap();
        let (_, answer) = Stream::start(&current, &all, 1100);
        assert_eq!(values(&answer.new), ["192.0.2.1", "2001:db8::/64"]);
        let d = &answer.new[0];
        assert_eq!(
            (d.scenario.as_str(), d.duration.as_str(), d.scope, d.kind),
            ("wasmban/recidive", "56m40s", "Ip", "ban")
        );
        assert_eq!(answer.new[1].scope, "Range");
        let json = serde_json::to_value(d).unwrap();
        for key in ["id", "uuid", "origin", "type", "scope", "value", "duration", "scenario", "simulated"] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json["id"].as_i64().unwrap() < (1 << 53));
    }

    #[test]
    fn a_pull_tells_what_changed_and_a_moved_end_again() {
        let all = Filter::parse("", true).unwrap();
        let first = Current::of(&snapshot(&[("sshd", true, vec![view("192.0.2.1", 1000, 600)])]), 1000);
        let (mut stream, answer) = Stream::start(&first, &all, 1000);
        assert_eq!(values(&answer.new), ["192.0.2.1"]);
        let first_id = answer.new[0].id;
        assert_eq!(stream.next(&first, &all, 1010), Answer::default());

        let moved = Current::of(&snapshot(&[("sshd", true, vec![view("192.0.2.1", 1000, 1200)])]), 1020);
        let answer = stream.next(&moved, &all, 1020);
        assert_eq!(values(&answer.new), ["192.0.2.1"]);
        assert_ne!(answer.new[0].id, first_id);
        assert!(answer.deleted.is_empty());

        let lifted = Current::of(&snapshot(&[("sshd", true, vec![view("198.51.100.7", 1030, 60)])]), 1030);
        let answer = stream.next(&lifted, &all, 1030);
        assert_eq!(values(&answer.new), ["198.51.100.7"]);
        assert_eq!(values(&answer.deleted), ["192.0.2.1"]);
        // Ended by its time: withdrawn too.
        let later = Current::of(&snapshot(&[("sshd", true, vec![view("198.51.100.7", 1030, 60)])]), 1100);
        assert_eq!(values(&stream.next(&later, &all, 1100).deleted), ["198.51.100.7"]);
        assert!(stream.is_empty());
    }

    #[test]
    fn a_starting_jail_or_a_reload_withdraws_nothing() {
        let all = Filter::parse("", true).unwrap();
        let up = Current::of(&snapshot(&[("sshd", true, vec![view("192.0.2.1", 1000, 600)])]), 1000);
        let (mut stream, _) = Stream::start(&up, &all, 1000);
        let starting = Current::of(&snapshot(&[("sshd", false, vec![])]), 1010);
        assert_eq!(stream.next(&starting, &all, 1010), Answer::default());
        let mut reloading = snapshot(&[]);
        reloading.settled = false;
        assert_eq!(stream.next(&Current::of(&reloading, 1020), &all, 1020), Answer::default());
        // Gone after a settled reload: withdrawn.
        let answer = stream.next(&Current::of(&snapshot(&[]), 1030), &all, 1030);
        assert_eq!(values(&answer.deleted), ["192.0.2.1"]);
    }

    #[test]
    fn filters_as_crowdsec_reads_them() {
        let s = snapshot(&[
            ("sshd", true, vec![view("192.0.2.1", 1000, 600), view("192.0.2.0/24", 1000, 600)]),
            ("nginx-http-auth", true, vec![view("2001:db8::5", 1000, 600)]),
        ]);
        let current = Current::of(&s, 1000);
        let pick = |q: &str, stream: bool| -> Vec<String> {
            let f = Filter::parse(q, stream).unwrap();
            current.matching(&f).map(|b| b.value.clone()).collect()
        };
        assert_eq!(pick("scopes=ip", true), ["192.0.2.1", "2001:db8::5"]);
        assert_eq!(pick("scopes=Range", true), ["192.0.2.0/24"]);
        assert_eq!(pick("scenarios_containing=SSH", true), ["192.0.2.0/24", "192.0.2.1"]);
        assert_eq!(pick("scenarios_not_containing=ssh,foo", true), ["2001:db8::5"]);
        assert_eq!(pick("origins=crowdsec,cscli", true).len(), 0);
        assert_eq!(pick("origins=wasmban", true).len(), 3);
        assert_eq!(pick("ip=192.0.2.1", false), ["192.0.2.0/24", "192.0.2.1"]);
        assert_eq!(pick("ip=192.0.2.9", false), ["192.0.2.0/24"]);
        assert_eq!(pick("range=192.0.2.0/16&contains=false", false), ["192.0.2.0/24", "192.0.2.1"]);
        assert_eq!(pick("ip=%3A%3Affff%3A192.0.2.1", false), ["192.0.2.0/24", "192.0.2.1"]);
        assert_eq!(pick("type=captcha", false).len(), 0);
        assert!(Filter::parse("ip=nonsense", false).is_err());
        assert!(Filter::parse("contains=maybe", false).is_err());
    }
}
