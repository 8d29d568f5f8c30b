//! `wasmban stats`: fail2ban-client's (1.1) table of every jail's backend
//! and its failure and ban counts, current and total, drawn with box
//! characters on a UTF-8 output and with ASCII elsewhere.

use crate::daemon::status::JailStatus;

/// The characters of one style: column bar, rule, the joints of the
/// rules (the head's left, head crossing, middle crossing, foot crossing),
/// the bar between current and total, and the head's rule.
struct Style {
    bar: &'static str,
    rule: &'static str,
    head_left: &'static str,
    head_cross: &'static str,
    cross: &'static str,
    foot_cross: &'static str,
    inner_bar: &'static str,
    head_rule: &'static str,
}

const ASCII: Style = Style {
    bar: "|",
    rule: "-",
    head_left: "|",
    head_cross: "x",
    cross: "x",
    foot_cross: "-",
    inner_bar: "|",
    head_rule: "-",
};
const UTF8: Style = Style {
    bar: "\u{2551}",
    rule: "\u{2550}",
    head_left: "\u{255F}",
    head_cross: "\u{256B}",
    cross: "\u{256C}",
    foot_cross: "\u{2569}",
    inner_bar: "\u{2502}",
    head_rule: "\u{2500}",
};

/// Whether standard output takes UTF-8, as Python decides it: the locale's
/// encoding, where the C and POSIX locales count as UTF-8 (Python coerces
/// them).
pub fn output_is_utf8() -> bool {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    let lower = locale.to_ascii_lowercase();
    matches!(lower.as_str(), "" | "c" | "posix") || lower.contains("utf-8") || lower.contains("utf8")
}

fn left(text: &str, width: usize) -> String {
    format!("{text:<width$}")
}

fn right(text: &str, width: usize) -> String {
    format!("{text:>width$}")
}

/// The table for `jails` (sorted by name by the caller).
pub fn render(jails: &[JailStatus], utf8: bool) -> String {
    if jails.is_empty() {
        return "No jails found.".into();
    }
    let s = if utf8 { &UTF8 } else { &ASCII };
    let rows: Vec<[String; 6]> = jails
        .iter()
        .map(|j| {
            [
                j.jail.clone(),
                j.backend.clone(),
                j.currently_failed.to_string(),
                j.total_failed.to_string(),
                j.currently_banned.to_string(),
                j.total_banned.to_string(),
            ]
        })
        .collect();
    let minimum = [8, 8, 3, 3, 3, 3];
    let width: Vec<usize> =
        (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(minimum[i])).collect();
    // The widths of the four top columns: Jail, Backend, Filter, Actions.
    let top = [width[0], width[1], 3 + width[2] + width[3], 3 + width[4] + width[5]];
    let sep = format!(" {} ", s.bar);
    let pair =
        |cur: &str, tot: &str, a: usize, b: usize| format!("{} {} {}", right(cur, a), s.inner_bar, right(tot, b));
    let mut out = Vec::new();
    out.push(format!(
        " {}",
        [left("", top[0]), left("", top[1]), left("Filter", top[2]), left("Actions", top[3])].join(&sep)
    ));
    let head_rules: Vec<String> = top[2..].iter().map(|n| s.head_rule.repeat(*n)).collect();
    out.push(format!(
        " {}{}{} {}{}{}{}",
        left("Jail", top[0]),
        sep,
        left("Backend", top[1]),
        s.head_left,
        s.head_rule,
        head_rules.join(&format!("{}{}{}", s.head_rule, s.head_cross, s.head_rule)),
        s.head_rule
    ));
    out.push(format!(
        " {}",
        [
            left("", width[0]),
            left("", width[1]),
            pair("cur", "tot", width[2], width[3]),
            pair("cur", "tot", width[4], width[5])
        ]
        .join(&sep)
    ));
    let rule = |joint: &str| {
        let parts: Vec<String> = top.iter().map(|n| s.rule.repeat(*n)).collect();
        format!("{}{}{}", s.rule, parts.join(&format!("{}{joint}{}", s.rule, s.rule)), s.rule)
    };
    out.push(rule(s.cross));
    for r in &rows {
        out.push(format!(
            " {}",
            [
                left(&r[0], width[0]),
                left(&r[1], width[1]),
                pair(&r[2], &r[3], width[2], width[3]),
                pair(&r[4], &r[5], width[4], width[5])
            ]
            .join(&sep)
        ));
    }
    out.push(rule(s.foot_cross));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(name: &str, backend: &str, counts: [usize; 4]) -> JailStatus {
        JailStatus {
            jail: name.into(),
            backend: backend.into(),
            currently_failed: counts[0],
            total_failed: counts[1] as u64,
            currently_banned: counts[2],
            total_banned: counts[3] as u64,
            ..JailStatus::default()
        }
    }

    #[test]
    fn the_table_is_laid_out_as_fail2ban_client_lays_it_out() {
        let jails = [jail("sshd", "polling", [1, 12, 2, 2]), jail("recidive-long", "inotify", [0, 0, 0, 1234])];
        // What fail2ban-client 1.1 prints for the same two jails.
        let ascii = "               |          | Filter    | Actions   \n \
                     Jail          | Backend  |-----------x------------\n               \
                     |          | cur | tot | cur |  tot\n\
                     ---------------x----------x-----------x------------\n \
                     sshd          | polling  |   1 |  12 |   2 |    2\n \
                     recidive-long | inotify  |   0 |   0 |   0 | 1234\n\
                     ---------------------------------------------------";
        assert_eq!(render(&jails, false), ascii);
        let utf8 = "               \u{2551}          \u{2551} Filter    \u{2551} Actions   \n \
                    Jail          \u{2551} Backend  \u{255f}───────────\u{256b}────────────\n               \
                    \u{2551}          \u{2551} cur │ tot \u{2551} cur │  tot\n\
                    ═══════════════\u{256c}══════════\u{256c}═══════════\u{256c}════════════\n \
                    sshd          \u{2551} polling  \u{2551}   1 │  12 \u{2551}   2 │    2\n \
                    recidive-long \u{2551} inotify  \u{2551}   0 │   0 \u{2551}   0 │ 1234\n\
                    ═══════════════\u{2569}══════════\u{2569}═══════════\u{2569}════════════";
        assert_eq!(render(&jails, true), utf8);
        assert_eq!(render(&[], true), "No jails found.");
    }
}
