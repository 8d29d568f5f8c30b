//! Values fail2ban configs write in their own syntax: times (`10m`,
//! `1h30m`, `1w`, `-1`), booleans, and `name[key=value, ...]` references.

use std::collections::BTreeMap;

/// Seconds of a fail2ban time value: a number, or numbers with units
/// (`1h30m`, `2 days`, `1.5h`), summed; `-1` stays -1 (forever).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty time value".into());
    }
    if let Ok(n) = t.parse::<f64>() {
        return Ok(n as i64);
    }
    let lower = t.to_lowercase();
    let mut total = 0f64;
    let mut rest = lower.as_str();
    let mut sign = 1.0;
    if let Some(r) = rest.strip_prefix('-') {
        sign = -1.0;
        rest = r;
    }
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("{text:?}: expected a number before {:?}", rest));
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| format!("{text:?}: bad number {:?}", &rest[..num_len]))?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let factor = match unit {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "mi" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "ho" | "hour" | "hours" => 3600.0,
            "d" | "da" | "day" | "days" => 86400.0,
            "w" | "we" | "wee" | "week" | "weeks" => 7.0 * 86400.0,
            "mo" | "mon" | "month" | "months" => 30.4375 * 86400.0,
            "y" | "ye" | "yea" | "year" | "years" => 365.25 * 86400.0,
            other => {
                return Err(format!("{text:?}: unknown unit {other:?} (use s, m, h, d, w, mo, y)"));
            }
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Ok((sign * total).round() as i64)
}

/// Python configparser's booleans.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (use true or false)")),
    }
}

/// A reference to a filter or action with parameters: `sshd[mode=aggressive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The filter or action name.
    pub name: String,
    /// Its parameters, in order of appearance (later ones win).
    pub params: Vec<(String, String)>,
}

impl Reference {
    /// The parameters as a map.
    pub fn param_map(&self) -> BTreeMap<String, String> {
        self.params.iter().cloned().collect()
    }
}

/// Parse `name[k=v, k2="a,b", k3='x'][k4=y]`.
pub fn parse_reference(text: &str) -> Result<Reference, String> {
    let text = text.trim();
    let (name, mut rest) = match text.find('[') {
        Some(i) => (text[..i].trim(), &text[i..]),
        None => (text, ""),
    };
    if name.is_empty() {
        return Err(format!("{text:?}: missing a name before the options"));
    }
    let mut params = Vec::new();
    while let Some(group) = rest.strip_prefix('[') {
        let mut i = 0;
        let bytes = group.as_bytes();
        loop {
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\n' || bytes[i] == b'\t' || bytes[i] == b',') {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(format!("{text:?}: `[` is never closed"));
            }
            if bytes[i] == b']' {
                i += 1;
                break;
            }
            let key_end = group[i..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .map(|p| i + p)
                .unwrap_or(group.len());
            let key = &group[i..key_end];
            if key.is_empty() || group.as_bytes().get(key_end) != Some(&b'=') {
                return Err(format!("{text:?}: expected key=value at {:?}", cut(&group[i..])));
            }
            i = key_end + 1;
            let value;
            match bytes.get(i) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let close = group[i + 1..].find(q as char).ok_or_else(|| format!("{text:?}: unclosed quote"))?;
                    value = &group[i + 1..i + 1 + close];
                    i += close + 2;
                }
                _ => {
                    let end = group[i..].find([',', ']']).map(|p| i + p).unwrap_or(group.len());
                    value = &group[i..end];
                    i = end;
                }
            }
            params.push((key.trim().to_string(), value.trim().to_string()));
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {}
                _ => return Err(format!("{text:?}: unexpected {:?} after option {key}", cut(&group[i..]))),
            }
        }
        rest = group[i..].trim_start();
    }
    if !rest.is_empty() {
        return Err(format!("{text:?}: unexpected {:?} after the options", cut(rest)));
    }
    Ok(Reference { name: name.to_string(), params })
}

fn cut(s: &str) -> &str {
    let end = s.char_indices().nth(25).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

/// Split an `action` value into references: one per line, and several on
/// one line when separated by spaces outside brackets.
pub fn split_references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), _) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), _) => current.push(c),
            (None, '"' | '\'') if depth > 0 => {
                quote = Some(c);
                current.push(c);
            }
            (None, '[') => {
                depth += 1;
                current.push(c);
            }
            (None, ']') => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            (None, c) if c.is_whitespace() && depth == 0 => {
                if !current.trim().is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                current.clear();
            }
            (None, c) => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Whether a `logencoding` value reads as UTF-8 (`auto` does, on the
/// UTF-8 locales wasmban supports).
pub fn is_utf8_encoding(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().replace('_', "-").as_str(), "auto" | "utf-8" | "utf8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("600").unwrap(), 600);
        assert_eq!(parse_time("10m").unwrap(), 600);
        assert_eq!(parse_time("1h30m").unwrap(), 5400);
        assert_eq!(parse_time("1w").unwrap(), 604800);
        assert_eq!(parse_time("2 days").unwrap(), 172800);
        assert_eq!(parse_time("-1").unwrap(), -1);
        assert_eq!(parse_time("1.5h").unwrap(), 5400);
        assert!(parse_time("10 parsecs").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn references() {
        let r =
            parse_reference(r#"iptables-multiport[name=SSH, port="22,2222", protocol='tcp'][chain=INPUT]"#).unwrap();
        assert_eq!(r.name, "iptables-multiport");
        assert_eq!(
            r.params,
            [("name", "SSH"), ("port", "22,2222"), ("protocol", "tcp"), ("chain", "INPUT")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(parse_reference("sshd").unwrap().params, []);
        assert!(parse_reference("sshd[mode=aggressive").is_err());
        assert!(parse_reference("sshd[mode]").is_err());
    }

    #[test]
    fn action_lists() {
        let v = "iptables-multiport[name=sshd, port=\"ssh, 2222\"]\n  sendmail-whois[name=sshd, dest=root] mail";
        assert_eq!(
            split_references(v),
            ["iptables-multiport[name=sshd, port=\"ssh, 2222\"]", "sendmail-whois[name=sshd, dest=root]", "mail"]
        );
    }
}
