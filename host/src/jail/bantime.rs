//! How long a ban lasts: `bantime`, and with `bantime.increment` longer
//! for addresses banned before (fail2ban's default formula doubles it per
//! earlier ban; `multipliers` give the factors explicitly), capped by
//! `maxtime`, plus up to `rndtime` of random extra time.

/// The increment settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// `bantime.factor`.
    pub factor: f64,
    /// `bantime.multipliers`: factor per earlier ban count (the last one
    /// repeats); empty means the doubling formula.
    pub multipliers: Vec<f64>,
    /// `bantime.maxtime` in seconds.
    pub maxtime: Option<i64>,
    /// `bantime.rndtime` in seconds.
    pub rndtime: Option<i64>,
    /// `bantime.overalljails`: count bans in every jail, not this one only.
    pub overalljails: bool,
}

impl Default for Increment {
    fn default() -> Self {
        Increment { factor: 1.0, multipliers: Vec::new(), maxtime: None, rndtime: None, overalljails: false }
    }
}

/// A jail's ban time rule.
#[derive(Debug, Clone, PartialEq)]
pub struct BanTime {
    /// `bantime` in seconds; negative means forever.
    pub base: i64,
    /// `bantime.increment`, when on.
    pub increment: Option<Increment>,
}

impl BanTime {
    /// Seconds to ban an address banned `count` times before; `random` is
    /// a number in [0, 1) (injected so that tests are exact). -1: forever.
    pub fn seconds(&self, count: u32, random: f64) -> i64 {
        if self.base < 0 {
            return -1;
        }
        let Some(inc) = &self.increment else { return self.base };
        let base = self.base as f64;
        let mut t = if inc.multipliers.is_empty() {
            let doubling = f64::from(1u32 << count.min(20));
            (base * doubling * inc.factor).max(base)
        } else {
            let index = (count as usize).min(inc.multipliers.len() - 1);
            base * inc.factor * inc.multipliers[index]
        };
        if let Some(max) = inc.maxtime {
            t = t.min(max as f64);
        }
        if let Some(rnd) = inc.rndtime {
            t += random * rnd as f64;
        }
        t as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_permanent() {
        let b = BanTime { base: 600, increment: None };
        assert_eq!(b.seconds(5, 0.5), 600);
        assert_eq!(BanTime { base: -1, increment: Some(Increment::default()) }.seconds(3, 0.0), -1);
    }

    #[test]
    fn the_default_formula_doubles_per_earlier_ban_up_to_maxtime() {
        let b = BanTime { base: 600, increment: Some(Increment { maxtime: Some(86400), ..Increment::default() }) };
        let got: Vec<i64> = (0..10).map(|n| b.seconds(n, 0.0)).collect();
        assert_eq!(got, [600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400]);
        // The shift stops at 2^20 rather than overflowing.
        let b = BanTime { base: 1, increment: Some(Increment::default()) };
        assert_eq!(b.seconds(60, 0.0), 1 << 20);
    }

    #[test]
    fn multipliers_factor_and_random_time() {
        let inc =
            Increment { factor: 2.0, multipliers: vec![1.0, 5.0, 30.0], rndtime: Some(100), ..Increment::default() };
        let b = BanTime { base: 60, increment: Some(inc) };
        assert_eq!(b.seconds(0, 0.0), 120);
        assert_eq!(b.seconds(1, 0.0), 600);
        assert_eq!(b.seconds(9, 0.0), 3600);
        assert_eq!(b.seconds(0, 0.5), 170);
    }
}
