//! From a fail2ban regex to a compiled one: fail2ban's tags (`<HOST>`,
//! `<F-USER>...</F-USER>`, ...) are expanded first, as fail2ban does, then
//! Python's `re` dialect is translated to fancy-regex's where they differ.

/// An IPv4 address (optionally IPv4-mapped IPv6).
const IP4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
/// An IPv6 address. fail2ban writes its last alternative as `(?<=:):`; every
/// repetition of the group before it ends with ':', so that lookbehind
/// always holds and is left out: without it the pattern stays in what the
/// `regex` crate's automata run, instead of fancy-regex's backtracking VM.
const IP6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
/// A host name.
const DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const CIDR: &str = r"(?P<cidr>\d+)";

fn addr() -> String {
    format!(r"\[?(?:{IP4}|{IP6})\]?")
}

/// The replacement of a fixed tag, if `name` is one.
fn fixed_tag(name: &str, use_dns: bool) -> Option<String> {
    Some(match name {
        "HOST" if use_dns => format!("(?:{}|{DNS})", addr()),
        "HOST" => addr(),
        "IP4" | "F-IP4/" => IP4.to_string(),
        "IP6" | "F-IP6/" => IP6.to_string(),
        "ADDR" | "F-ADDR/" => addr(),
        "CIDR" | "F-CIDR/" => CIDR.to_string(),
        "SUBNET" | "F-SUBNET/" => format!(r"\[?(?:{IP4}|{IP6})(?:/{CIDR})?\]?"),
        "DNS" | "F-DNS/" => DNS.to_string(),
        "F-ID/" => r"(?P<fid>\S+)".to_string(),
        "F-PORT/" => r"(?P<fport>\w+)".to_string(),
        _ => return None,
    })
}

/// fail2ban's group names for `<F-NAME>` tags.
pub fn group_name(tag: &str) -> String {
    match tag.to_ascii_lowercase().as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        other => other.to_string(),
    }
}

/// Expand fail2ban's tags. Unknown tags are left as written (they then
/// match literally, as in fail2ban).
pub fn expand_tags(regex: &str, use_dns: bool) -> String {
    let mut out = String::with_capacity(regex.len() * 2);
    let mut open: Vec<String> = Vec::new();
    let mut skiplines = 0;
    let mut rest = regex;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        // A tag is `</?[\w-]+/?>`.
        let body_end = candidate[1..]
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '/'))
            .map(|(i, _)| i + 1);
        let tag = match body_end {
            Some(end) if candidate[end..].starts_with('>') && end > 1 => Some(&candidate[1..end]),
            _ => None,
        };
        let valid = tag.is_some_and(|t| {
            let t = t.strip_prefix('/').unwrap_or(t);
            let t = t.strip_suffix('/').unwrap_or(t);
            !t.is_empty() && !t.contains('/')
        });
        let Some(tag) = tag.filter(|_| valid) else {
            out.push('<');
            rest = &candidate[1..];
            continue;
        };
        let whole = tag.len() + 2;
        let replacement = if tag == "SKIPLINES" {
            skiplines += 1;
            Some(format!(r"\n(?P<skiplines{}>(?:(?:.*\n)*?))", skiplines - 1))
        } else if let Some(fixed) = fixed_tag(tag, use_dns) {
            Some(fixed)
        } else if let Some(name) = tag.strip_prefix("/F-").filter(|n| is_custom(n)) {
            if open.iter().any(|o| o == name) { Some(")".to_string()) } else { None }
        } else if let Some(name) = tag.strip_prefix("F-").filter(|n| is_custom(n)) {
            open.push(name.to_string());
            Some(format!("(?P<{}>", group_name(name)))
        } else {
            None
        };
        match replacement {
            Some(r) => out.push_str(&r),
            None => out.push_str(&candidate[..whole]),
        }
        rest = &candidate[whole..];
    }
    out.push_str(rest);
    out
}

fn is_custom(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Python's `\s` on text (a `str` pattern): what `str.isspace()` holds,
/// which is Unicode's White_Space (regex-syntax's `\s`) plus the ASCII
/// separators U+001C to U+001F. (`\S` inside a class keeps regex-syntax's
/// meaning: a negated set cannot be spelled flat inside another class.)
const PYTHON_SPACE: &str = r"\s\x1c-\x1f";

/// Translate Python's `re` syntax to fancy-regex's. `multiline` is
/// Python's re.MULTILINE. Without it Python's `$` also matches before a
/// final newline, which is how fail2ban's buffers end.
pub fn translate(py: &str, multiline: bool) -> String {
    let chars: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len() + 16);
    if multiline {
        out.push_str("(?m)");
    }
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_class {
            match c {
                '\\' if i + 1 < chars.len() => {
                    let n = chars[i + 1];
                    match n {
                        '<' | '>' => out.push(n),
                        // See PYTHON_SPACE.
                        's' => out.push_str(PYTHON_SPACE),
                        _ => {
                            out.push('\\');
                            out.push(n);
                        }
                    }
                    i += 2;
                    continue;
                }
                ']' if i > class_start => {
                    in_class = false;
                    out.push(']');
                }
                ']' => out.push_str("\\]"),
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if chars.get(i + 1) == Some(&'-') => out.push_str("\\-"),
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                match n {
                    '<' | '>' => out.push(n),
                    'Z' => out.push_str("\\z"),
                    's' => {
                        out.push('[');
                        out.push_str(PYTHON_SPACE);
                        out.push(']');
                    }
                    'S' => {
                        out.push_str("[^");
                        out.push_str(PYTHON_SPACE);
                        out.push(']');
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
            }
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right at the start is a literal.
                class_start = i;
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '$' if !multiline => {
                out.push_str(r"(?:\n?\z)");
                i += 1;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i..].iter().take(64).collect();
                if let Some(body) = rest.strip_prefix("(?(") {
                    // Conditional on a group: (?(name)...) becomes (?(<name>)...).
                    if let Some(end) = body.find(')') {
                        let name = &body[..end];
                        if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) {
                            out.push_str(&format!("(?({name})"));
                        } else {
                            out.push_str(&format!("(?(<{name}>)"));
                        }
                        i += 3 + name.chars().count() + 1;
                        continue;
                    }
                }
                if rest.starts_with("(?#") {
                    // A comment group: drop it.
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                // Inline flags: keep i, m, s, x; Python's u (the default) and a, L go.
                let flags: String = chars[i + 2..].iter().take_while(|c| c.is_ascii_alphabetic()).collect();
                let after = chars.get(i + 2 + flags.len());
                if !flags.is_empty() && matches!(after, Some(')') | Some(':')) && !rest.starts_with("(?P") {
                    let kept: String = flags.chars().filter(|f| matches!(f, 'i' | 'm' | 's' | 'x')).collect();
                    let close = after.copied().unwrap_or(')');
                    if kept.is_empty() {
                        out.push_str(if close == ':' { "(?:" } else { "" });
                    } else {
                        out.push_str(&format!("(?{kept}{close}"));
                    }
                    i += 2 + flags.len() + 1;
                    continue;
                }
                out.push('(');
                i += 1;
            }
            '{' => {
                // A quantifier is {n}, {n,}, {n,m} or Python's {,m}; any
                // other brace is a literal in Python.
                let rest: String = chars[i..].iter().take(24).collect();
                match quantifier(&rest) {
                    Some((len, q)) => {
                        out.push_str(&q);
                        i += len;
                    }
                    None => {
                        out.push_str("\\{");
                        i += 1;
                    }
                }
            }
            '}' => {
                out.push_str("\\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// A superset of a translated regex that the `regex` crate can run: look-
/// arounds dropped, conditionals made alternations, backreferences widened
/// to any text, atomic groups made plain. Whatever the exact regex matches,
/// this matches too, so "no match here" is exact and cheap.
pub fn relax(translated: &str) -> String {
    let chars: Vec<char> = translated.chars().collect();
    let mut out = String::with_capacity(translated.len());
    // For each open group: does its `)` need a `?` (a conditional)?
    let mut groups: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                if n.is_ascii_digit() && n != '0' {
                    out.push_str("(?s:.*?)");
                    i += 2;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                if n == 'k' && chars.get(i + 2) == Some(&'<') {
                    out.push_str("(?s:.*?)");
                    while i < chars.len() && chars[i] != '>' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                out.push(c);
                out.push(n);
                i += 2;
            }
            '[' => {
                let end = class_end(&chars, i);
                out.extend(&chars[i..end]);
                i = end;
            }
            '(' => {
                let rest: String = chars[i..].iter().take(5).collect();
                if rest.starts_with("(?=")
                    || rest.starts_with("(?!")
                    || rest.starts_with("(?<=")
                    || rest.starts_with("(?<!")
                {
                    i = skip_group(&chars, i);
                } else if rest.starts_with("(?P=") {
                    out.push_str("(?s:.*?)");
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                } else if rest.starts_with("(?(") {
                    // Skip the condition `(name)` / `(<name>)`, keep the branches.
                    let mut j = i + 2;
                    while j < chars.len() && chars[j] != ')' {
                        j += 1;
                    }
                    out.push_str("(?:");
                    groups.push(true);
                    i = j + 1;
                } else if rest.starts_with("(?>") {
                    out.push_str("(?:");
                    groups.push(false);
                    i += 3;
                } else {
                    out.push('(');
                    groups.push(false);
                    i += 1;
                }
            }
            ')' => {
                out.push(')');
                if groups.pop() == Some(true) {
                    out.push('?');
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// A relaxed regex with its anchors and word boundaries removed: it
/// matches any text that contains a match of the original, so it can be
/// run over a whole buffer to learn whether a part of it (a prefregex's
/// content) could match.
pub fn unanchor(relaxed: &str) -> String {
    let chars: Vec<char> = relaxed.chars().collect();
    let mut out = String::with_capacity(relaxed.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if !matches!(n, 'A' | 'z' | 'Z' | 'b' | 'B') {
                out.push(c);
                out.push(n);
            }
            i += 2;
            continue;
        }
        match c {
            '[' => {
                let end = class_end(&chars, i);
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            '^' | '$' => {}
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The index just past the character class opening at `start` (a `[`): a
/// `^` and a `]` right after the opening are part of it, escapes are
/// skipped. Unclosed: the end of the pattern.
fn class_end(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    if chars.get(i) == Some(&'^') {
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        i += 1;
    }
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            ']' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The index just past the group opening at `start` (balanced parentheses,
/// classes and escapes respected).
fn skip_group(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if c == '[' {
            i = class_end(chars, i);
            continue;
        } else if c == '(' {
            depth += 1;
        } else if c == ')' {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    chars.len()
}

/// Parse a `{...}` quantifier at the start of `s`: (chars consumed, text).
fn quantifier(s: &str) -> Option<(usize, String)> {
    let end = s.find('}')?;
    let body = &s[1..end];
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let text = match body.split_once(',') {
        None if !body.is_empty() && digits(body) => format!("{{{body}}}"),
        Some(("", m)) if !m.is_empty() && digits(m) => format!("{{0,{m}}}"),
        Some((n, m)) if !n.is_empty() && digits(n) && digits(m) => format!("{{{n},{m}}}"),
        _ => return None,
    };
    Some((body.chars().count() + 2, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_groups() {
        let e = expand_tags("^<F-USER>\\S+</F-USER> from <HOST> <F-ID>x</F-ID> <ANY> </F-NOPE>", true);
        assert!(e.starts_with("^(?P<user>\\S+) from (?:\\[?(?:"), "{e}");
        assert!(e.contains("(?P<dns>"), "{e}");
        assert!(e.contains("(?P<fid>x) <ANY> </F-NOPE>"), "{e}");
        assert!(!expand_tags("<HOST>", false).contains("dns"));
    }

    #[test]
    fn python_dialect_differences() {
        assert_eq!(translate(r"a$", false), r"a(?:\n?\z)");
        assert_eq!(translate(r"a$", true), r"(?m)a$");
        assert_eq!(translate(r"\<a\>", false), "<a>");
        assert_eq!(translate(r"(?(cond)x|y)", false), "(?(<cond>)x|y)");
        assert_eq!(translate(r"x{,3}y{2}z{a}", false), r"x{0,3}y{2}z\{a\}");
        assert_eq!(translate(r"[]a[&]$", false), r"[\]a\[\&](?:\n?\z)");
        assert_eq!(translate(r"(?iu)ab(?#note)", false), "(?i)ab");
        assert_eq!(translate(r"[$]\$", false), r"[$]\$");
    }

    #[test]
    fn relaxed_regexes_are_supersets_the_regex_crate_runs() {
        let cases = [
            (r"^a(?=b)b(?<!x)c", r"^abc"),
            (r"(?P<u>x)(?(<u>)y|z)", r"(?P<u>x)(?:y|z)?"),
            (r"(?P<s>[-/])a(?P=s)\1", r"(?P<s>[-/])a(?s:.*?)(?s:.*?)"),
            (r"[(?=]x(?>y)", r"[(?=]x(?:y)"),
        ];
        for (from, to) in cases {
            assert_eq!(relax(from), to);
            regex::Regex::new(to).unwrap();
        }
    }

    #[test]
    fn unanchored_regexes_find_their_original_inside_longer_text() {
        let original = translate(r"^Failed \S+ from <HOST>$", false);
        let gate = regex::Regex::new(&unanchor(&relax(&expand_tags(&original, true)))).unwrap();
        assert!(gate.is_match("Nov 1 host sshd[1]: Failed x from 192.0.2.1 port 22\n"));
        assert!(!gate.is_match("Nov 1 host sshd[1]: Accepted x from 192.0.2.1\n"));
        assert_eq!(unanchor(r"[^a$]^b\bc$\$"), r"[^a$]bc\$");
    }

    #[test]
    fn translated_regexes_compile_and_behave_like_python() {
        let re = |p: &str| fancy_regex::Regex::new(&translate(&expand_tags(p, true), false)).unwrap();
        assert!(re("^a b$").is_match("a b\n").unwrap());
        assert!(!re("^a b$").is_match("a b\nc\n").unwrap());
        let r = re(r"^(?P<inv>invalid )?user (?(inv)\S+|root) from <HOST>$");
        assert!(r.is_match("invalid user bob from 192.0.2.1\n").unwrap());
        assert!(r.is_match("user root from 2001:db8::1\n").unwrap());
        assert!(!r.is_match("user bob from 192.0.2.1\n").unwrap());
        let c = re(r"from <HOST>").captures("from ::ffff:192.0.2.7 x").unwrap().unwrap();
        assert_eq!(c.name("ip4").unwrap().as_str(), "192.0.2.7");
    }
}
