//! fail2ban's `<tag>` substitution for commands run by `/bin/sh`, shared
//! by the classic action and `ignorecommand` components: where each tag
//! stands (unquoted, in `'...'` or in `"..."`), and how a value taken from
//! a log line is written there so that the shell reads it back unchanged
//! and no log line can run a command.

use std::collections::BTreeMap;

/// Quoting state at a point of a shell command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Quote {
    /// Outside quotes.
    None,
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
}

/// Where each `<tag>` of `template` stands: (start, end, tag, quoting).
pub fn tags_with_quoting(template: &str) -> Vec<(usize, usize, String, Quote)> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut state = Quote::None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match (state, c) {
            (Quote::None | Quote::Double, b'\\') => {
                i += 2;
                continue;
            }
            (Quote::None, b'\'') => state = Quote::Single,
            (Quote::Single, b'\'') => state = Quote::None,
            (Quote::None, b'"') => state = Quote::Double,
            (Quote::Double, b'"') => state = Quote::None,
            (_, b'<') => {
                if let Some(len) = template[i + 1..].find('>') {
                    let name = &template[i + 1..i + 1 + len];
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_?=.".contains(c)) {
                        out.push((i, i + len + 2, name.to_string(), state));
                        i += len + 2;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `value` written so that the shell reads it back unchanged at a place
/// with quoting `q`.
pub fn quote_for(value: &str, q: Quote) -> String {
    match q {
        Quote::None => format!("'{}'", value.replace('\'', r"'\''")),
        Quote::Single => value.replace('\'', r"'\''"),
        Quote::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// Log text made harmless for what commands do with it: backslashes are
/// doubled, so that `printf %b` (fail2ban's mail actions) cannot turn a
/// logged `\n~!` into a new line, and a line that starts with `~` (a
/// tilde escape in mail/mailx, which runs commands) is indented.
pub fn defang(text: &str) -> String {
    text.replace('\\', r"\\")
        .split('\n')
        .map(|l| if l.starts_with('~') { format!(" {l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The address's name in the reverse DNS tree without its zone, as
/// fail2ban's `<ip-rev>`: `4.3.2.1.` for 1.2.3.4, 32 nibbles for IPv6.
pub fn reverse_name(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(format!("{}.{}.{}.{}.", o[3], o[2], o[1], o[0]))
        }
        std::net::IpAddr::V6(v6) => {
            let mut out = String::with_capacity(64);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            Some(out)
        }
    }
}

/// What fail2ban puts for a tag nothing else names: `<br>` and `<sp>`,
/// and an empty text for a filter capture the failure did not have
/// (`<F-USER>` where no user was logged).
pub fn fallback(tag: &str) -> Option<&'static str> {
    match tag {
        "br" => Some("\n"),
        "sp" => Some(" "),
        _ if tag.strip_prefix("F-").is_some_and(|name| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
        }) =>
        {
            Some("")
        }
        _ => None,
    }
}

/// fail2ban's `<family>` of an address.
pub fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { "inet6" } else { "inet4" }
}

/// Per-ban (or per-failure) tags: name to (value, whether it comes from a
/// log line, and so must be quoted).
pub type Tags = BTreeMap<String, (String, bool)>;

/// The tags fail2ban gives for an address found failing or banned: `ip`,
/// `fid`, `family`, `ip-rev`, `matches` and the captures as `F-NAME`.
pub fn address_tags(ip: &str, matches: &[String], fields: &[(String, String)]) -> Tags {
    let mut tags = Tags::new();
    let mut put = |k: &str, v: String, from_log: bool| {
        tags.insert(k.to_string(), (v, from_log));
    };
    put("ip", ip.to_string(), false);
    put("fid", ip.to_string(), false);
    put("family", family_of(ip).to_string(), false);
    if let Some(rev) = reverse_name(ip) {
        put("ip-rev", rev, false);
    }
    put("matches", defang(&matches.join("\n")), true);
    for (k, v) in fields {
        let name = k.strip_prefix("F-").unwrap_or(k).to_ascii_lowercase();
        put(&format!("F-{}", name.to_ascii_uppercase()), defang(v), true);
    }
    tags
}

/// Fill `template`'s tags: from `tags` first (values from logs quoted for
/// where they land), then from `option` (a tag naming an option, which may
/// hold tags of its own, up to 10 levels), then fail2ban's fallbacks. A
/// tag nothing names stays as written.
pub fn fill(template: &str, tags: &Tags, option: &dyn Fn(&str, Option<&str>) -> Option<String>, depth: u32) -> String {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for (start, end, name, quote) in tags_with_quoting(template) {
        out.push_str(&template[last..start]);
        last = end;
        let (base, variant) = match name.split_once('?') {
            Some((b, v)) => (b, Some(v)),
            None => (name.as_str(), None),
        };
        if let Some((value, from_log)) = tags.get(base) {
            // Values that are not from a log are plain numbers and
            // validated addresses; quoting them too would change what
            // templates expect (`<ip>/32`).
            if *from_log {
                out.push_str(&quote_for(value, quote));
            } else {
                out.push_str(value);
            }
            continue;
        }
        match option(base, variant) {
            Some(v) if depth < 10 => out.push_str(&fill(&v, tags, option, depth + 1)),
            Some(v) => out.push_str(&v),
            None => out.push_str(fallback(base).unwrap_or(&template[start..end])),
        }
    }
    out.push_str(&template[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_the_place_of_the_tag() {
        let t = r#"echo <a> '<b>' "<c>" \<d> "it's <e>""#;
        let q: Vec<(String, Quote)> = tags_with_quoting(t).into_iter().map(|(_, _, n, q)| (n, q)).collect();
        assert_eq!(
            q,
            [
                ("a".into(), Quote::None),
                ("b".into(), Quote::Single),
                ("c".into(), Quote::Double),
                ("e".into(), Quote::Double)
            ]
        );
        assert_eq!(quote_for("x'y", Quote::None), r"'x'\''y'");
        assert_eq!(quote_for("x'y", Quote::Single), r"x'\''y");
        assert_eq!(quote_for("$(id) `id` \"\\", Quote::Double), r#"\$(id) \`id\` \"\\"#);
        assert_eq!(defang("a\n~! touch x\nb"), "a\n ~! touch x\nb");
        assert_eq!(defang(r"x\n~! y"), r"x\\n~! y");
    }

    #[test]
    fn reverse_names_and_fallbacks_are_fail2bans() {
        assert_eq!(reverse_name("192.0.2.1").as_deref(), Some("1.2.0.192."));
        assert_eq!(
            reverse_name("2001:db8::1").as_deref(),
            Some("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.")
        );
        assert_eq!(reverse_name("host.example"), None);
        assert_eq!(fallback("F-USER"), Some(""));
        assert_eq!(fallback("F-ALT_USER1"), Some(""));
        assert_eq!(fallback("F-user"), None);
        assert_eq!(fallback("br"), Some("\n"));
        assert_eq!(fallback("nosuchtag"), None);
        let tags = address_tags("192.0.2.1", &["a'b".into()], &[("user".into(), "root".into())]);
        let none = |_: &str, _: Option<&str>| None;
        assert_eq!(fill("<ip> <F-USER> <F-OTHER> <matches> <x>", &tags, &none, 0), "192.0.2.1 'root'  'a'\\''b' <x>");
    }
}
