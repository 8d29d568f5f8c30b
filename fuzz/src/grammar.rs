//! Patterns drawn from the grammar of fail2ban's failregexes, with the
//! fuzzer's bytes as the choices: a mutation of the bytes is a mutation
//! of the pattern that stays a plausible failregex (words of real log
//! lines, fail2ban's tags, the classes, groups, look-arounds,
//! backreferences, conditionals and repetitions its filters use).

/// The input's bytes, read as a sequence of choices (0 once used up, so
/// every input gives a pattern).
pub struct Choices<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Named groups opened so far (backreferences name one of them).
    named: usize,
    /// Groups opened so far, named or not (`\N` and `(?(N)...)`).
    groups: usize,
}

/// Words and pieces of real log lines and of failregexes.
const LITERALS: &[&str] = &[
    "Failed ",
    "password",
    " for ",
    "invalid user ",
    "from ",
    " port ",
    "ssh2",
    "sshd",
    r"\[",
    r"\]",
    ":",
    " ",
    "user",
    "root",
    "a",
    "b",
    "ab",
    "x",
    "-",
    r"\.",
    "=",
    "'",
    "authentication failure",
    "rhost=",
    "Connection closed by ",
    r"\d",
    r"\w",
    r"\s",
    r"\S",
    "[0-9]",
    "[a-z]",
    "[^ ]",
    r"[^\]]",
    r"[\d.]",
    r"[A-Za-z0-9_-]",
    ".",
    r"\W",
    r"\D",
    r"[\s\S]",
    "[^:]",
    r"\x00",
    r"\t",
    "[^a-c\\d]",
];

/// Whole repeated pieces as filters write them.
const PIECES: &[&str] =
    &[r"\d+", r"\S+", r"\s*", r"\s+", r"\w+", ".*", ".*?", ".+", ".+?", r"[^\]]*", r"\S*?", r"(?:\s+\S+)*", r"[^']+"];

const TAGS: &[&str] = &["<HOST>", "<ADDR>", "<IP4>", "<IP6>", "<DNS>", "<F-ID>\\S+</F-ID>", "<CIDR>", "<SUBNET>"];

const ANCHORS: &[&str] = &["^", "$", r"\b", r"\B", r"\A", r"\Z"];

const QUANTIFIERS: &[&str] = &["*", "+", "?", "{2}", "{1,3}", "{,2}", "{2,}", "{0}"];

impl<'a> Choices<'a> {
    pub fn new(bytes: &'a [u8]) -> Choices<'a> {
        Choices { bytes, at: 0, named: 0, groups: 0 }
    }

    fn next(&mut self) -> usize {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b as usize
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.next() % from.len()]
    }

    fn exhausted(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// A pattern, and whether it is compiled with re.MULTILINE.
    pub fn pattern(mut self) -> (String, bool) {
        let flags = self.next();
        let mut out = String::new();
        if flags & 0x10 != 0 {
            out.push_str("(?i)");
        }
        if flags & 0x20 != 0 {
            out.push('^');
        }
        self.alternation(&mut out, 0);
        if flags & 0x40 != 0 {
            out.push('$');
        }
        (out, flags & 0x80 != 0)
    }

    fn alternation(&mut self, out: &mut String, depth: usize) {
        self.sequence(out, depth);
        while !self.exhausted() && self.next().is_multiple_of(5) {
            out.push('|');
            self.sequence(out, depth);
        }
    }

    fn sequence(&mut self, out: &mut String, depth: usize) {
        let length = 1 + self.next() % 6;
        for i in 0..length {
            if i > 0 && self.exhausted() {
                break;
            }
            self.item(out, depth);
        }
    }

    fn item(&mut self, out: &mut String, depth: usize) {
        let kind = self.next() % 16;
        let start = out.len();
        let quantifiable = match kind {
            0..=4 => {
                out.push_str(self.pick(LITERALS));
                true
            }
            5 | 6 => {
                out.push_str(self.pick(PIECES));
                false
            }
            7 => {
                out.push_str(self.pick(TAGS));
                false
            }
            8 => {
                out.push_str(self.pick(ANCHORS));
                false
            }
            _ if depth >= 4 => {
                out.push_str(self.pick(LITERALS));
                true
            }
            9 | 10 => {
                let opening = match self.next() % 8 {
                    0 | 1 => "(?:".to_string(),
                    2 => {
                        self.groups += 1;
                        "(".to_string()
                    }
                    3 => {
                        self.groups += 1;
                        self.named += 1;
                        format!("(?P<g{}>", self.named)
                    }
                    4 => "(?=".to_string(),
                    5 => "(?!".to_string(),
                    _ => "(?i:".to_string(),
                };
                out.push_str(&opening);
                self.alternation(out, depth + 1);
                out.push(')');
                true
            }
            11 => {
                // Look-behind: fixed width in Python, so one literal.
                out.push_str(if self.next().is_multiple_of(2) { "(?<=" } else { "(?<!" });
                out.push_str(self.pick(LITERALS));
                out.push(')');
                false
            }
            12 if self.named > 0 => {
                out.push_str(&format!("(?P=g{})", 1 + self.next() % self.named));
                true
            }
            12 | 13 if self.groups > 0 => {
                out.push_str(&format!("\\{}", 1 + self.next() % self.groups));
                true
            }
            14 if self.groups > 0 => {
                out.push_str(&format!("(?({})", 1 + self.next() % self.groups));
                self.sequence(out, depth + 1);
                out.push('|');
                self.sequence(out, depth + 1);
                out.push(')');
                false
            }
            _ => {
                self.groups += 1;
                self.named += 1;
                out.push_str(&format!("<F-G{}>", self.named));
                self.sequence(out, depth + 1);
                out.push_str(&format!("</F-G{}>", self.named));
                false
            }
        };
        if quantifiable && out.len() > start && self.next().is_multiple_of(3) {
            out.push_str(self.pick(QUANTIFIERS));
            // Lazy sometimes. Possessive quantifiers and atomic groups are
            // left out: fail2ban's filters have none (Python before 3.11
            // lacks them), and Python 3.11's own disagree with its
            // backtracking rules in corner cases the fuzzer finds at once.
            if self.next().is_multiple_of(3) {
                out.push('?');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_gives_a_pattern_and_one_byte_changes_it() {
        let (empty, _) = Choices::new(&[]).pattern();
        assert!(!empty.is_empty());
        let base = [0u8, 3, 9, 3, 1, 2, 7, 7, 4, 1];
        let patterns: std::collections::HashSet<String> = (0..=255u8)
            .map(|b| {
                let mut bytes = base;
                bytes[5] = b;
                Choices::new(&bytes).pattern().0
            })
            .collect();
        assert!(patterns.len() >= 10, "{patterns:?}");
    }
}
