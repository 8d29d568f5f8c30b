//! The backtracker against fancy-regex, pattern by pattern.

use super::*;

/// Our answer next to fancy-regex's, group by group.
fn compare(pattern: &str, hay: &str) {
    let fancy = fancy_regex::Regex::new(pattern).unwrap();
    let program = Program::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}"));
    assert_eq!(program.group_count(), fancy.captures_len(), "{pattern}");
    let mut slots = Vec::new();
    let mut scratch = Scratch::default();
    let ours = program.search(hay.as_bytes(), 0, &mut slots, &mut scratch);
    match fancy.captures(hay).unwrap() {
        None => assert_eq!(ours, Outcome::NoMatch, "{pattern} on {hay:?}: {slots:?}"),
        Some(caps) => {
            assert_eq!(ours, Outcome::Match, "{pattern} on {hay:?}");
            for g in 0..caps.len() {
                let mut theirs = caps.get(g).map(|m| (m.start(), m.end()));
                // fancy-regex runs the translated `$`, `(?:\n?\z)`, which
                // takes the final newline; ours, as Python's, does not.
                if pattern.contains(r"(?:\n?\z)")
                    && hay.ends_with('\n')
                    && let Some((start, end)) = theirs
                    && end == hay.len()
                {
                    theirs = Some((start.min(end - 1), end - 1));
                }
                let mine = (slots[2 * g] != NONE && slots[2 * g + 1] != NONE).then(|| (slots[2 * g], slots[2 * g + 1]));
                assert_eq!(mine, theirs, "{pattern} on {hay:?}, group {g}");
            }
        }
    }
}

#[test]
fn priorities_follow_backtracking() {
    let cases: &[(&str, &[&str])] = &[
        (r"(a|ab)(c|bcd)(d*)", &["abcd", "abc", "xabcdd"]),
        (r"a*?b", &["aaab", "b", "c"]),
        (r"(a+?)(a*)", &["aaaa"]),
        (r"(?:a|b)*c", &["ababc", "abab"]),
        (r"x{2,3}?(x*)", &["xxxxx"]),
        (r"(?:ab){1,3}(.*)", &["abababab", "abx"]),
        (r"(|a)b", &["ab", "b"]),
        (r"(\w+)\s+(\d{1,3})", &["abc  12345", "x 1", "x y"]),
        (r"^[^:]+:(.*)$", &["key: value", "novalue"]),
        (r"(a)|b", &["b", "a"]),
        (r"(?:(a)|b)+", &["ab", "ba"]),
        (r"(?:a?)*b", &["aab", "c"]),
        (r".+", &["ab\ncd"]),
        (r"(?s).+", &["ab\ncd"]),
        (r"(?m)^b$", &["a\nb\nc", "b"]),
        (r"^b$", &["a\nb\nc", "b"]),
        (r"(?i)HeLLo [a-c]+", &["hello ABC", "HELLO d"]),
        (r"\bfoo\b", &["a foo b", "afoo", "foo_"]),
        (r"\Bo\B", &["foo", "o"]),
        (r"a\z", &["a", "a\n"]),
    ];
    for (pattern, hays) in cases {
        for hay in *hays {
            compare(pattern, hay);
        }
    }
}

#[test]
fn group_boundaries_between_branches_and_repeats() {
    let patterns = [
        r"(a)(b)?(c|d)",
        r"((a)|b)+",
        r"(?:(x)|(y))(z)",
        r"(a(b)?)+c",
        r"(a|ab)(c|bcd)(d*)",
        r"((a)(b))((c)|(d))",
        r"(?:(a)|(b)|(c))*(d)",
        r"^(\w+?)(\d*)(?:-(\w+))?$",
        r"(?P<x>a)?(?P<y>(?(<x>)b|c))",
        r"(x)?(?(1)(y)|(z))(w)?",
    ];
    let hays =
        ["abd", "ac", "abab", "xz", "yz", "ababc", "abcd", "abd", "abcabd", "ab12-cd", "ab", "c", "xyw", "zw", ""];
    for pattern in patterns {
        for hay in hays {
            compare(pattern, hay);
        }
    }
}

#[test]
fn look_around_backreferences_and_conditionals() {
    let cases: &[(&str, &[&str])] = &[
        (r"foo(?=bar)", &["foobar", "foobaz"]),
        (r"foo(?!bar)", &["foobar", "foobaz"]),
        (r"(?<=x)y", &["xy", "zy"]),
        (r"(?<!x)y", &["xy", "zy", "y"]),
        (r"(?<=ab|cd)e", &["abe", "cde", "xe"]),
        (r"^(?:(?! from ).)*? from (\S+)", &["user x from 1.2.3.4 y", "a from b from c"]),
        (r"(?=(\w+))\w", &["abc"]),
        (r"(\w)\1", &["abccd", "abcd"]),
        (r"(?i)(a)\1", &["aA", "ab"]),
        (r"^(?P<a>x)?(?(<a>)y|z)$", &["xy", "z", "xz", "y"]),
        (r"(?P<u>\S+)(?(<u>): |(?:.*)$)", &["user: x", "user x"]),
        (r"(?>a+)a", &["aaaa"]),
        (r"(?>a|ab)c", &["abc", "ac"]),
        (r"(a)(?(1))b", &["ab"]),
        (r"x(?=\b|\W|$)", &["x", "x.", "xy", "ax y", "xx"]),
        (r"(?i)a(?=B|\d)", &["ab", "aB", "a1", "ac"]),
        (r"a(?!b|\d)", &["ab", "a1", "ac", "a"]),
        (r"(?<!ab)c", &["abc", "xbc", "c"]),
        (r"(?<=\d)x", &["1x", "ax"]),
        (r"^(?:(?! from ).)*(?= from )", &["user a from b", "no from", "x  from  y from z"]),
    ];
    for (pattern, hays) in cases {
        for hay in *hays {
            compare(pattern, hay);
        }
    }
}

#[test]
fn fail2ban_shaped_patterns() {
    let ip4 = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
    let ip6 = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
    let host = format!(r"\[?(?:{ip4}|{ip6})\]?");
    let failed = format!(
        r"^Failed (?:(?P<nofail>publickey)|\S+) for (?P<cond_inv>invalid user )?(?P<user>(?P<cond_user>\S+)|(?(<cond_inv>)(?:(?! from ).)*?|[^:]+)) from {host}(?: (?:port \d+|on \S+)){{0,2}}(?: ssh\d*)?(?(<cond_user>): |(?:(?:(?! from ).)*)$)"
    );
    let pref = r"^(?P<mlfid>(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?|[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?)(?:(?:error|fatal): (?:PAM: )?)?(?P<content>.+)(?:\n?\z)";
    let lines = [
        "Failed password for root from 192.0.2.4 port 22 ssh2\n",
        "Failed password for invalid user admin from 2001:db8::5 port 1 ssh2\n",
        "Failed publickey for bob from ::ffff:192.0.2.7 port 22 ssh2: RSA SHA256:abc\n",
        "Failed password for invalid user a from b from 192.0.2.9 port 4\n",
        "Failed none for user: with colon from 192.0.2.1\n",
        "Failed password for root from 192.0.2.4 port 22 ssh2 trailing from 1.2.3.4\n",
        "srv sshd[123]: error: PAM: Authentication failure for x from 192.0.2.1\n",
        "srv01 CRON[20081]: pam_unix(cron:session): session opened\n",
        "[] <auth.info> host kernel: [ 12.5]: sshd[1]: x\n",
    ];
    for hay in lines {
        compare(&failed, hay);
        compare(pref, hay);
        compare(&format!("from {host}"), hay);
    }
}

#[test]
fn a_literal_every_match_holds_is_looked_for_first() {
    let required = |pattern: &str| {
        let program = Program::new(pattern).unwrap();
        program.required.as_ref().map(|f| String::from_utf8(f.needle().to_vec()).unwrap())
    };
    assert_eq!(required(r"^Received x from \S+:\s*3: .*: Auth fail").as_deref(), Some(": Auth fail"));
    // The prefix is checked already; a literal in one branch only, in
    // an optional part, or in a look-ahead is not required.
    assert_eq!(required(r"^Received from"), None);
    assert_eq!(required(r"a(?:bcd|efg)h"), None);
    assert_eq!(required(r"a(?:bcd)?h"), None);
    assert_eq!(required(r"a(?=bcd)\w+"), None);
    assert_eq!(required(r"a(?:xy|z)+ bcd"), Some(" bcd".into()));
    assert_eq!(required(r"(?P<x>x)?(?(<x>)abc|abd)"), None);
    let cases: &[(&str, &[&str])] = &[
        (
            r"^Received x from (\S+)(?: port \d+)?:\s*3: .*: Auth fail",
            &[
                "Received x from h port 2:3: y: Auth fail",
                "Received x from h port 2:11: y: Auth fail",
                "Received x from h: Auth fail:3: y",
                "Received x from h:3: y: Auth fai",
            ],
        ),
        (r"a(?:xy|z)+ bcd", &["zz a bcd", "azz bcd", "a bcd", "axyz bc"]),
        (r"(?P<u>\S+)|[^:]+ from (?(<u>): |$)", &["u from ", "u v from ", "u: from : "]),
    ];
    for (pattern, hays) in cases {
        for hay in *hays {
            compare(pattern, hay);
        }
    }
}

#[test]
fn a_branch_whose_literal_is_missing_is_not_tried() {
    let needs = |pattern: &str| -> Vec<String> {
        let program = Program::new(pattern).unwrap();
        program.finders.iter().map(|f| String::from_utf8(f.needle().to_vec()).unwrap()).collect()
    };
    // sshd's shape: the first branch sets the group, so the conditional
    // then needs ": ".
    let failed =
        r"^Failed \S+ for (?P<user>(?P<cond_user>\S+)|[^:]+) from (?P<ip>\S+)(?: port \d+)?(?(<cond_user>): |$)";
    assert_eq!(needs(failed), [": "]);
    // Not when the group may be unset again before the conditional, not
    // when both branches need the literal, not right at a branch's start.
    assert!(needs(r"(?:(?P<g>\S+)|x)+(?P<h>y)?(?(<h>)ab|cd)").is_empty());
    assert!(needs(r"(?:\S+ab|[^:]+ab)").is_empty());
    assert!(needs(r"(?:port \d+|on \S+)").is_empty());
    let cases: &[(&str, &[&str])] = &[
        (
            failed,
            &[
                "Failed password for root from 192.0.2.4 port 22",
                "Failed password for root from 192.0.2.4 port 22: x",
                "Failed password for a b from 192.0.2.4",
                "Failed password for a: b from 192.0.2.4: c",
            ],
        ),
        (r"(?:(?P<g>a\w*)|b)+ (?(<g>)xy|z)", &["a b z", "aa b xy", "b a xy", "b z", "ab xy"]),
        (r"(?:(?P<g>\w+)|-)+ (?(<g>)xy|z)", &["a- z", "-a xy", "- z", "-- xy"]),
    ];
    for (pattern, hays) in cases {
        for hay in *hays {
            compare(pattern, hay);
        }
    }
}

#[test]
fn an_answer_depends_only_on_what_the_search_looked_at() {
    let patterns = [
        r"^(?:\W{0,2})?(?i:(?:(?P<a>mon|tue) )?(?P<b>jan|nov|november) (?P<d>[12]\d|[0 ]?[1-9]) ?(?P<H>[0-2]?\d):(?P<M>[0-5]?\d):(?P<S>[0-5]?\d)(?:\.(?P<f>\d{1,6}))?(?: (?P<Y>20\d\d))?)(?=\b|\W|$)",
        r"^(?P<mlfid>(?:\S+\s+)?(?:sshd(?:\[\d+\])?:?\s+)?)(?P<content>.+)(?:\n?\z)",
        r"^Failed \S+ for (?P<user>.*?) from (?P<ip>(?:\d{1,3}\.){3}\d{1,3})(?: port \d+)?(?: ssh\d*)?$",
        r"a.*?b(?!c)",
        r"(?<=x)\d+",
        r"(\w+) \1",
    ];
    let hays = [
        "Nov  2 00:00:01 srv01 sshd[1]: x",
        "Nov  2 00:00:01.5 2005 x",
        "Nov  2 00:00:01",
        "srv01 sshd[7]: Failed password for root from 192.0.2.1 port 22 ssh2",
        "Failed password for root from 192.0.2.1 port 22 ssh2",
        "Failed password for root from 192.0.2.1",
        "aab abbc x12 y12 ab ab",
        "",
    ];
    let mut scratch = Scratch::default();
    for pattern in patterns {
        let program = Program::new(pattern).unwrap();
        for hay in hays {
            let mut slots = Vec::new();
            let (outcome, reach) = program.search_reach(hay.as_bytes(), 0, &mut slots, &mut scratch);
            if reach > hay.len() {
                continue;
            }
            for tail in ["", "x", " 2005", ".25", "\n", " ", "c", "Z9 from 1.2.3.4"] {
                let other = format!("{}{tail}", &hay[..reach]);
                let mut other_slots = Vec::new();
                let again = program.search(other.as_bytes(), 0, &mut other_slots, &mut scratch);
                assert_eq!(again, outcome, "{pattern} on {hay:?} looked at {reach} bytes; then {other:?}");
                if outcome == Outcome::Match {
                    assert_eq!(other_slots, slots, "{pattern} on {hay:?} then {other:?}");
                }
            }
        }
    }
}

#[test]
fn ascii_and_byte_equality_agree_with_the_standard_library() {
    for len in 0..40 {
        let plain = "a".repeat(len);
        assert!(is_ascii(&plain));
        for at in 0..len {
            let mut s = plain.clone();
            s.replace_range(at..at + 1, "é");
            assert_eq!(is_ascii(&s), s.is_ascii(), "{s:?}");
            assert!(!same_bytes(s.as_bytes(), format!("{plain}x").as_bytes()));
            let mut other = plain.clone().into_bytes();
            other[at] = b'b';
            assert!(!same_bytes(plain.as_bytes(), &other));
        }
        assert!(same_bytes(plain.as_bytes(), plain.clone().as_bytes()));
    }
}

#[test]
fn what_it_cannot_run_exactly_is_refused() {
    assert!(Program::new(r"(a?)*").is_err());
    assert!(Program::new(r"(?<=a+)b").is_err());
    assert!(Program::new(r"(?i)\u{212a}").is_err());
}

#[test]
fn a_runaway_search_gives_up() {
    let program = Program::new(r"^(?:a|a)*(?:a|a)*(?:a|a)*b").unwrap();
    let hay = "a".repeat(40);
    let mut slots = Vec::new();
    let outcome = program.search(hay.as_bytes(), 0, &mut slots, &mut Scratch::default());
    assert_eq!(outcome, Outcome::GaveUp);
}

/// Python's `$` (no MULTILINE) is zero-width before a final newline;
/// spans as Python's `re` gives them (found by the `backtrack` fuzz target).
#[test]
fn python_dollar_does_not_take_the_final_newline() {
    type Spans = Option<&'static [(usize, usize)]>;
    let cases: &[(&str, &str, Spans)] = &[
        (r"^[^\]]*(\w)$", "ab xab\nroot\n", Some(&[(0, 11), (10, 11)])),
        (r"(?:a)*?$", "b\n", Some(&[(1, 1)])),
        (r"b$\n", "b\n", Some(&[(0, 2)])),
        (r"b$", "b\nc", None),
        (r"b$", "b", Some(&[(0, 1)])),
    ];
    for (python, hay, expected) in cases {
        let (outcome, slots) = python_search(python, hay);
        match expected {
            None => assert_eq!(outcome, Outcome::NoMatch, "{python} on {hay:?}"),
            Some(spans) => {
                assert_eq!(outcome, Outcome::Match, "{python} on {hay:?}");
                for (g, span) in spans.iter().enumerate() {
                    assert_eq!((slots[2 * g], slots[2 * g + 1]), *span, "{python} on {hay:?}, group {g}");
                }
            }
        }
    }
}

/// A Python regex, translated, searched for in `hay`: the outcome and the
/// slots.
fn python_search(python: &str, hay: &str) -> (Outcome, Vec<usize>) {
    let program = Program::new(&crate::dialect::translate(python, false)).expect("compiles");
    let mut slots = Vec::new();
    let outcome = program.search(hay.as_bytes(), 0, &mut slots, &mut Scratch::default());
    (outcome, slots)
}

/// Python refuses a reference to a group the pattern lacks; running one
/// read past the slots (found by the `dialect` fuzz target).
#[test]
fn a_reference_to_a_missing_group_is_refused() {
    for pattern in [r"(a)\2", r"(?P<a>\7+)x", r"(a)(?(3)b|c)"] {
        assert!(Program::new(pattern).is_err(), "{pattern}");
    }
}

/// Where Python's `re` differs from regex-syntax's Unicode classes and
/// assertions (found by the `backtrack` fuzz target): `\s` holds the ASCII
/// separators 0x1c to 0x1f, and `\B` never matches an empty text.
#[test]
fn python_space_and_empty_text_not_boundary() {
    let search = |python: &str, hay: &str| {
        let (outcome, slots) = python_search(python, hay);
        (outcome == Outcome::Match).then(|| (slots[0], slots[1]))
    };
    assert_eq!(search(r"\S+", "ab\x1fcd"), Some((0, 2)));
    assert_eq!(search(r"a\sb", "a\x1cb"), Some((0, 3)));
    assert_eq!(search(r"[^\s]+", "ab\x1dcd"), Some((0, 2)));
    assert_eq!(search(r"\B", ""), None);
    assert_eq!(search(r"\B", "ab"), Some((1, 1)));
}
