//! Reading a date's fields as Python's strptime does, with time zones by
//! offset or abbreviation.

use super::*;

/// Offsets (minutes east of UTC) of zone abbreviations.
pub(super) fn zone_abbreviation(abbr: &str) -> Option<i64> {
    const TABLE: &[(f64, &[&str])] = &[
        (-12.0, &["Y"]),
        (-11.0, &["X", "NUT", "SST"]),
        (-10.0, &["W", "CKT", "HAST", "HST", "TAHT", "TKT"]),
        (-9.0, &["V", "AKST", "GAMT", "GIT", "HADT", "HNY"]),
        (-8.0, &["U", "AKDT", "CIST", "HAY", "HNP", "PST", "PT"]),
        (-7.0, &["T", "HAP", "HNR", "MST", "PDT"]),
        (-6.0, &["S", "CST", "EAST", "GALT", "HAR", "HNC", "MDT"]),
        (-5.0, &["R", "CDT", "COT", "EASST", "ECT", "EST", "ET", "HAC", "HNE", "PET"]),
        (-4.0, &["Q", "AST", "BOT", "CLT", "COST", "EDT", "FKT", "GYT", "HAE", "HNA", "PYT"]),
        (-3.0, &["P", "ADT", "ART", "BRT", "CLST", "FKST", "GFT", "HAA", "PMST", "PYST", "SRT", "UYT", "WGT"]),
        (-2.0, &["O", "BRST", "FNT", "PMDT", "UYST", "WGST"]),
        (-1.0, &["N", "AZOT", "CVT", "EGT"]),
        (0.0, &["Z", "EGST", "GMT", "UTC", "WET", "WT"]),
        (1.0, &["A", "CET", "DFT", "WAT", "WEDT", "WEST"]),
        (2.0, &["B", "CAT", "CEDT", "CEST", "EET", "SAST", "WAST"]),
        (3.0, &["C", "EAT", "EEDT", "EEST", "IDT", "MSK"]),
        (4.0, &["D", "AMT", "AZT", "GET", "GST", "KUYT", "MSD", "MUT", "RET", "SAMT", "SCT"]),
        (5.0, &["E", "AMST", "AQTT", "AZST", "HMT", "MAWT", "MVT", "PKT", "TFT", "TJT", "TMT", "UZT", "YEKT"]),
        (6.0, &["F", "ALMT", "BIOT", "BTT", "IOT", "KGT", "NOVT", "OMST", "YEKST"]),
        (7.0, &["G", "CXT", "DAVT", "HOVT", "ICT", "KRAT", "NOVST", "OMSST", "THA", "WIB"]),
        (
            8.0,
            &[
                "H", "ACT", "AWST", "BDT", "BNT", "CAST", "HKT", "IRKT", "KRAST", "MYT", "PHT", "SGT", "ULAT", "WITA",
                "WST",
            ],
        ),
        (9.0, &["I", "AWDT", "IRKST", "JST", "KST", "PWT", "TLT", "WDT", "WIT", "YAKT"]),
        (10.0, &["K", "AEST", "ChST", "PGT", "VLAT", "YAKST", "YAPT"]),
        (11.0, &["L", "AEDT", "LHDT", "MAGT", "NCT", "PONT", "SBT", "VLAST", "VUT"]),
        (12.0, &["M", "ANAST", "ANAT", "FJT", "GILT", "MAGST", "MHT", "NZST", "PETST", "PETT", "TVT", "WFT"]),
        (13.0, &["FJST", "NZDT"]),
        (11.5, &["NFT"]),
        (10.5, &["ACDT", "LHST"]),
        (9.5, &["ACST"]),
        (6.5, &["CCT", "MMT"]),
        (5.75, &["NPT"]),
        (5.5, &["SLT"]),
        (4.5, &["AFT", "IRDT"]),
        (3.5, &["IRST"]),
        (-2.5, &["HAT", "NDT"]),
        (-3.5, &["HNT", "NST", "NT"]),
        (-4.5, &["HLV", "VET"]),
        (-9.5, &["MART", "MIT"]),
    ];
    if abbr.is_empty() {
        return Some(0);
    }
    TABLE.iter().find(|(_, names)| names.contains(&abbr)).map(|(h, _)| (h * 60.0) as i64)
}

/// A zone as written in a log or in `logtimezone`: an abbreviation, an
/// offset (`+02`, `-0430`, `+05:30`), or both (`CET+0100`). Minutes east.
pub fn zone_offset(text: &str) -> Option<i64> {
    if matches!(text, "Z" | "UTC" | "GMT") {
        return Some(0);
    }
    let split = text.find(['+', '-']).unwrap_or(text.len());
    let (abbr, offset) = text.split_at(split);
    let base = zone_abbreviation(abbr)?;
    if offset.is_empty() {
        return Some(base);
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    let minutes = match digits.len() {
        1 | 2 => digits.parse::<i64>().ok()? * 60,
        4 => digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?,
        _ => return None,
    };
    Some(base + sign * minutes)
}

pub(super) fn month_of(name: &str) -> Option<u32> {
    let b = name.as_bytes();
    if !name.is_ascii() {
        let lower = name.to_lowercase();
        return MONTHS.iter().position(|m| *m == lower || m[..3] == *lower).map(|i| i as u32 + 1);
    }
    if b.len() < 3 {
        return None;
    }
    // The first three letters tell the month; the rest must be its name.
    let abbr = [b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase(), b[2].to_ascii_lowercase()];
    let i = MONTHS.iter().position(|m| m.as_bytes()[..3] == abbr)?;
    (b.len() == 3 || MONTHS[i].eq_ignore_ascii_case(name)).then_some(i as u32 + 1)
}

/// Python's `int()` of a date field: surrounding whitespace allowed.
pub(super) fn int_of(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    // Plain ASCII digits (what dates hold) without the general parser.
    if !b.is_empty() && b.len() <= 18 && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')));
    }
    text.trim().parse::<i64>().ok()
}

/// fail2ban's strptime: the time of the named groups of a date match.
pub(super) fn strptime(fields: &Fields<'_>, now: f64, tz: &TzRule, default_offset: Option<i64>) -> Option<f64> {
    let get = |at: usize| fields[at];
    let num = |at: usize| get(at).and_then(int_of);
    let mut year = num(at::Y);
    if let Some(y) = num(at::y) {
        year = Some(if y <= 2000 { y + 2000 } else { y });
    }
    let mut month = num(at::m).map(|m| m as u32);
    if let Some(b) = get(at::B).or(get(at::b)) {
        month = Some(month_of(b)?);
    }
    let mut day = num(at::d).map(|d| d as u32);
    let mut hour = num(at::H).unwrap_or(0);
    if let Some(h) = num(at::I) {
        let pm = get(at::p).map(str::to_lowercase);
        hour = match pm.as_deref() {
            Some("pm") if h != 12 => h + 12,
            Some("pm") => h,
            _ if h == 12 => 0,
            _ => h,
        };
    }
    let minute = num(at::M).unwrap_or(0);
    let second = num(at::S).unwrap_or(0);
    let mut offset: Option<i64> = None;
    for key in [at::z, at::Z] {
        if let Some(z) = get(key) {
            offset = Some(zone_offset(z)?);
        }
    }
    // Local "now" as fail2ban's MyTime.now() sees it.
    let now_secs = now.floor() as i64;
    let now_local = now_secs + tz.offset_at(now_secs);
    let (now_y, now_m, now_d) = civil_from_days(now_local.div_euclid(86400));
    let assume_year = year.is_none();
    let year = year.unwrap_or(now_y);
    if let (None, Some(j)) = (month.or(day.map(|_| 0)), num(at::j)) {
        let (y, m, d) = civil_from_days(days_from_civil(year, 1, 1) + j - 1);
        if y == year {
            month = Some(m);
            day = Some(d);
        }
    }
    let assume_today = month.is_none() && day.is_none();
    let (month, day) = if assume_today { (now_m, now_d) } else { (month?, day?) };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 61
    {
        return None;
    }
    let naive = |y: i64| days_from_civil(y, month, day) * 86400 + hour * 3600 + minute * 60 + second.min(59);
    let mut result = naive(year);
    if offset.is_none() {
        offset = default_offset;
    }
    if let Some(o) = offset {
        result -= o * 60;
    }
    if assume_today && result > now_local {
        result -= 86400;
    }
    if assume_year && result > now_local + 86400 {
        if month == 2 && day == 29 {
            return None;
        }
        result = naive(year - 1) - offset.unwrap_or(0) * 60;
    }
    Some(match offset {
        Some(_) => result as f64,
        None => tz.local_to_utc(result) as f64,
    })
}
