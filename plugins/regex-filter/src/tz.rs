//! POSIX TZ rules (`CET-1CEST,M3.5.0,M10.5.0/3`): the host hands its local
//! zone to the plugin as one, since plugins have no zone database. Enough
//! to do what C's `mktime` does for log timestamps without a zone.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// Mm.w.d: day d (0 = Sunday) of week w (5 = last) of month m.
    MonthWeekDay(u32, u32, u32),
    /// Jn: day n of the year, 1..=365, February 29 never counted.
    Julian1(u32),
    /// n: day n of the year, 0..=365, February 29 counted.
    Julian0(u32),
}

#[derive(Debug, Clone, PartialEq)]
struct Transition {
    rule: Rule,
    /// Seconds after local midnight.
    time: i64,
}

/// A parsed rule. Offsets are seconds east of UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct TzRule {
    std_offset: i64,
    dst: Option<(i64, Transition, Transition)>,
}

impl TzRule {
    pub fn utc() -> TzRule {
        TzRule { std_offset: 0, dst: None }
    }

    /// Parse a POSIX TZ string; `None` when it is not one.
    pub fn parse(s: &str) -> Option<TzRule> {
        let mut p = Parser { s: s.as_bytes(), i: 0 };
        p.name()?;
        let std_offset = -p.offset()?;
        if p.done() {
            return Some(TzRule { std_offset, dst: None });
        }
        p.name()?;
        let dst_offset = if p.peek().is_some_and(|c| c != b',') { -p.offset()? } else { std_offset + 3600 };
        // Without rules POSIX leaves the dates to the implementation; glibc
        // uses the US rules.
        let (start, end) = if p.done() {
            (
                Transition { rule: Rule::MonthWeekDay(3, 2, 0), time: 7200 },
                Transition { rule: Rule::MonthWeekDay(11, 1, 0), time: 7200 },
            )
        } else {
            p.expect(b',')?;
            let start = p.transition()?;
            p.expect(b',')?;
            let end = p.transition()?;
            (start, end)
        };
        p.done().then_some(TzRule { std_offset, dst: Some((dst_offset, start, end)) })
    }

    fn transition_local(year: i64, t: &Transition) -> i64 {
        let day = match t.rule {
            Rule::MonthWeekDay(m, w, d) => {
                let first = days_from_civil(year, m, 1);
                let first_wday = (first + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
                let mut mday = 1 + (d + 7 - first_wday) % 7 + (w.saturating_sub(1)) * 7;
                while mday > days_in_month(year, m) {
                    mday -= 7;
                }
                days_from_civil(year, m, mday)
            }
            Rule::Julian1(n) => {
                let mut day = days_from_civil(year, 1, 1) + n as i64 - 1;
                if is_leap(year) && n >= 60 {
                    day += 1;
                }
                day
            }
            Rule::Julian0(n) => days_from_civil(year, 1, 1) + n as i64,
        };
        day * 86400 + t.time
    }

    /// Whether DST is in force at unix time `utc`.
    fn is_dst(&self, utc: i64) -> bool {
        let Some((dst_offset, start, end)) = &self.dst else { return false };
        let (year, _, _) = civil_from_days((utc + self.std_offset).div_euclid(86400));
        let begins = Self::transition_local(year, start) - self.std_offset;
        let ends = Self::transition_local(year, end) - dst_offset;
        if begins < ends { utc >= begins && utc < ends } else { utc >= begins || utc < ends }
    }

    /// The offset (seconds east of UTC) in force at `utc`.
    pub fn offset_at(&self, utc: i64) -> i64 {
        match &self.dst {
            Some((dst, _, _)) if self.is_dst(utc) => *dst,
            _ => self.std_offset,
        }
    }

    /// Unix time of a local wall-clock time, as `mktime` with `tm_isdst = -1`:
    /// a time that exists in DST is taken as DST, otherwise as standard.
    pub fn local_to_utc(&self, local_seconds: i64) -> i64 {
        if let Some((dst, _, _)) = &self.dst {
            let as_dst = local_seconds - dst;
            if self.is_dst(as_dst) {
                return as_dst;
            }
        }
        local_seconds - self.std_offset
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }
    fn name(&mut self) -> Option<()> {
        if self.peek() == Some(b'<') {
            let end = self.s[self.i..].iter().position(|&c| c == b'>')?;
            self.i += end + 1;
            return Some(());
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        (self.i - start >= 3).then_some(())
    }
    fn number(&mut self) -> Option<i64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()?.parse().ok()
    }
    /// `[+-]hh[:mm[:ss]]` in seconds (west positive, as written).
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                -1
            }
            Some(b'+') => {
                self.i += 1;
                1
            }
            _ => 1,
        };
        let mut secs = self.number()? * 3600;
        if self.expect(b':').is_some() {
            secs += self.number()? * 60;
            if self.expect(b':').is_some() {
                secs += self.number()?;
            }
        }
        Some(sign * secs)
    }
    fn transition(&mut self) -> Option<Transition> {
        let rule = match self.peek()? {
            b'M' => {
                self.i += 1;
                let m = self.number()? as u32;
                self.expect(b'.')?;
                let w = self.number()? as u32;
                self.expect(b'.')?;
                let d = self.number()? as u32;
                if !(1..=12).contains(&m) || !(1..=5).contains(&w) || d > 6 {
                    return None;
                }
                Rule::MonthWeekDay(m, w, d)
            }
            b'J' => {
                self.i += 1;
                Rule::Julian1(self.number()? as u32)
            }
            _ => Rule::Julian0(self.number()? as u32),
        };
        let time = if self.expect(b'/').is_some() { self.offset()? } else { 7200 };
        Some(Transition { rule, time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1000, 0, 11000, 13000, 20000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2005, 8, 14), 13009);
    }

    #[test]
    fn zurich_rules() {
        let tz = TzRule::parse("CET-01CEST-02,M3.5.0,M10.5.0").unwrap();
        let local = |y: i64, m: u32, d: u32, h: i64| days_from_civil(y, m, d) * 86400 + h * 3600;
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(tz.local_to_utc(local(2005, 1, 23, 21)), local(2005, 1, 23, 20));
        assert_eq!(tz.local_to_utc(local(2005, 8, 14, 12)), local(2005, 8, 14, 10));
        assert_eq!(tz.offset_at(local(2005, 8, 14, 10)), 7200);
        let same = TzRule::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(same.local_to_utc(local(2005, 8, 14, 12)), local(2005, 8, 14, 10));
    }

    #[test]
    fn plain_offsets_and_garbage() {
        assert_eq!(TzRule::parse("UTC0").unwrap().local_to_utc(100), 100);
        assert_eq!(TzRule::parse("EST5").unwrap().local_to_utc(0), 5 * 3600);
        assert_eq!(TzRule::parse("<+0530>-5:30").unwrap().local_to_utc(0), -(5 * 3600 + 1800));
        assert!(TzRule::parse("Europe/Zurich").is_none());
    }
}
