//! Dates as fail2ban reads them.

use super::*;
use crate::date::strptime::{int_of, month_of};

const TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
const NOW: f64 = 1124013600.0; // 2005-08-14 12:00 CEST

fn detect(d: &mut Detector, line: &str) -> Option<(String, f64)> {
    let tz = TzRule::parse(TZ).unwrap();
    let (m, i) = d.find(line, line.is_ascii(), NOW)?;
    Some((line[m.ds..m.de].to_string(), d.read(i, &m, line, NOW, &tz)?))
}

#[test]
fn syslog_dates_get_this_year_or_last() {
    let mut d = Detector::new(None, &year_prefix(2026)).unwrap();
    let (text, t) = detect(&mut d, "Aug 14 11:58:59 host sshd[1]: x").unwrap();
    assert_eq!(text, "Aug 14 11:58:59");
    assert_eq!(t, NOW - 61.0);
    // Later in the year than now: last year.
    let (_, t) = detect(&mut d, "Dec 31 23:59:59 host x").unwrap();
    assert_eq!(t, 1104533999.0);
}

#[test]
fn iso_with_zone_and_epoch() {
    let mut d = Detector::new(None, &year_prefix(2026)).unwrap();
    let (text, t) = detect(&mut d, "2005-01-23T21:59:59+0100 x").unwrap();
    assert_eq!(text, "2005-01-23T21:59:59+0100");
    assert_eq!(t, 1106513999.0);
    let mut d = Detector::new(None, &year_prefix(2026)).unwrap();
    let (_, t) = detect(&mut d, "1106513999.500 x").unwrap();
    assert_eq!(t, 1106513999.5);
}

#[test]
fn custom_patterns() {
    let mut d = Detector::new(Some("^%Y/%m/%d %H:%M:%S"), &year_prefix(2026)).unwrap();
    let (_, t) = detect(&mut d, "2005/01/23 21:59:59 x").unwrap();
    assert_eq!(t, 1106513999.0);
    assert!(Detector::new(Some("%Q"), &year_prefix(2026)).is_err());
}

#[test]
fn field_indices_follow_their_names() {
    let named = [
        ("Y", at::Y),
        ("y", at::y),
        ("m", at::m),
        ("B", at::B),
        ("b", at::b),
        ("d", at::d),
        ("H", at::H),
        ("I", at::I),
        ("p", at::p),
        ("M", at::M),
        ("S", at::S),
        ("z", at::z),
        ("Z", at::Z),
        ("j", at::j),
    ];
    assert_eq!(named.len(), FIELD_NAMES.len());
    for (name, index) in named {
        assert_eq!(field(name), index, "{name}");
    }
    assert_eq!(month_of("SEPT"), None);
    assert_eq!(month_of("Se"), None);
    assert_eq!(month_of("MAYO"), None);
    assert_eq!(int_of("07"), Some(7));
    assert_eq!(int_of(" 7"), Some(7));
    assert_eq!(int_of("-3"), Some(-3));
    assert_eq!(int_of(""), None);
    assert_eq!(int_of("1x"), None);
    assert_eq!(month_of("sEp"), Some(9));
    assert_eq!(month_of("December"), Some(12));
}

#[test]
fn zones() {
    assert_eq!(zone_offset("CEST"), Some(120));
    assert_eq!(zone_offset("-0430"), Some(-270));
    assert_eq!(zone_offset("+05:30"), Some(330));
    assert_eq!(zone_offset("UTC+02"), Some(120));
    assert_eq!(zone_offset("XYZW"), None);
}

/// A non-ASCII character just before a directive: the check for an
/// escaped `%` sliced inside it (found by the `date` fuzz target).
#[test]
fn a_datepattern_with_non_ascii_text_before_a_directive_builds() {
    let d = Detector::new(Some("%d/é%b/%Y:%H:%M:%S"), &year_prefix(2026));
    assert!(d.is_ok(), "{:?}", d.err());
}

#[test]
fn templates_are_named_as_fail2ban_names_them() {
    assert_eq!(
        super::display_name(r"{^LN-BEG}(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?"),
        r"{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\.Microseconds)?(?: ExYear)?"
    );
    assert_eq!(super::display_name("%Exy%Exm%Exd 100%%"), "ExYear2ExMonthExDay 100%");
}
