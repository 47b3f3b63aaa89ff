//! Cron expressions for periodic jobs, in the dialect Nomad accepts:
//! five fields (minute hour day-of-month month day-of-week), optionally a
//! leading seconds field and a trailing year field, with `*`, lists,
//! ranges, steps, month and weekday names, and the `@hourly`-style macros.
//! Times are UTC; the caller converts a job's `time_zone`.

/// A parsed cron schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    years: Option<(u32, u32)>,
    any_day: bool,
    any_weekday: bool,
}

/// Why a cron expression did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {input:?}: {reason}")]
pub struct CronError {
    /// The expression as written.
    pub input: String,
    /// What was wrong.
    pub reason: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    /// Parses an expression.
    pub fn parse(input: &str) -> Result<Schedule, CronError> {
        let err = |reason: String| CronError {
            input: input.to_owned(),
            reason,
        };
        let expanded = match input.trim() {
            "@yearly" | "@annually" => "0 0 0 1 1 * *",
            "@monthly" => "0 0 0 1 * * *",
            "@weekly" => "0 0 0 * * 0 *",
            "@daily" | "@midnight" => "0 0 0 * * * *",
            "@hourly" => "0 0 * * * * *",
            other if other.starts_with('@') => return Err(err(format!("unknown macro {other}"))),
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest, year) = match fields.len() {
            5 => ("0", &fields[..], None),
            6 => (fields[0], &fields[1..], None),
            7 => (fields[0], &fields[1..6], Some(fields[6])),
            n => return Err(err(format!("expected 5 to 7 fields, found {n}"))),
        };
        let field = |text: &str, min: u32, max: u32, names: &[&str], what: &str| {
            parse_field(text, min, max, names).map_err(|r| err(format!("{what}: {r}")))
        };
        let seconds = field(sec, 0, 59, &[], "seconds")?;
        let minutes = field(rest[0], 0, 59, &[], "minutes")?;
        let hours = field(rest[1], 0, 23, &[], "hours")?;
        let days = field(rest[2], 1, 31, &[], "day of month")?;
        let months = field(rest[3], 1, 12, &MONTHS, "month")?;
        let mut weekdays = field(rest[4], 0, 7, &WEEKDAYS, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        let years = match year {
            None | Some("*") => None,
            Some(y) => {
                let (a, b) = match y.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (y, y),
                };
                let a: u32 = a
                    .parse()
                    .map_err(|_| err(format!("year {y:?} is not a year or range")))?;
                let b: u32 = b
                    .parse()
                    .map_err(|_| err(format!("year {y:?} is not a year or range")))?;
                if !(1970..=2199).contains(&a) || b < a || b > 2199 {
                    return Err(err(format!("year {y:?} out of range 1970-2199")));
                }
                Some((a, b))
            }
        };
        Ok(Schedule {
            seconds,
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            years,
            any_day: rest[2] == "*" || rest[2] == "?",
            any_weekday: rest[4] == "*" || rest[4] == "?",
        })
    }

    /// The first time strictly after `after` (unix seconds, UTC) that
    /// matches, or `None` if there is none before 2200.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = after.checked_add(1)?;
        let limit = 7_258_118_400; // 2200-01-01
        while t < limit {
            let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            if let Some((a, b)) = self.years {
                if (y as u32) < a {
                    t = days_from_civil(i64::from(a), 1, 1) * 86_400;
                    continue;
                }
                if y as u32 > b {
                    return None;
                }
            }
            if self.months & (1 << m) == 0 {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                t = days_from_civil(ny, nm, 1) * 86_400;
                continue;
            }
            if !self.day_matches(d, days) {
                t = (days + 1) * 86_400;
                continue;
            }
            let (hh, mm, ss) = (secs / 3600, (secs % 3600) / 60, secs % 60);
            if self.hours & (1 << hh) == 0 {
                t = days * 86_400 + (hh + 1) * 3600;
                continue;
            }
            if self.minutes & (1 << mm) == 0 {
                t = days * 86_400 + hh * 3600 + (mm + 1) * 60;
                continue;
            }
            if self.seconds & (1 << ss) == 0 {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }

    fn day_matches(&self, day_of_month: u32, days_since_epoch: i64) -> bool {
        // 1970-01-01 was a Thursday.
        let weekday = (days_since_epoch + 4).rem_euclid(7) as u32;
        let dom = self.days & (1 << day_of_month) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        // Classic cron: when both are restricted, either may match.
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }
}

fn parse_field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("step {s:?} is not a number"))?;
                if step == 0 {
                    return Err("step must not be 0".to_owned());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, min, max, names)?, value(b, min, max, names)?)
        } else {
            let v = value(range, min, max, names)?;
            // "5/15" means from 5 to the end in steps of 15.
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("range {range:?} runs backwards"));
        }
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

fn value(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        // Month names count from 1 (the field's minimum), weekdays from 0.
        return Ok(i as u32 + min);
    }
    let v: u32 = text.parse().map_err(|_| {
        format!(
            "{text:?} is not a number{}",
            if names.is_empty() { "" } else { " or name" }
        )
    })?;
    if v < min || v > max {
        return Err(format!("{v} is outside {min}-{max}"));
    }
    Ok(v)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const T2026_01_01: i64 = 1_767_225_600; // Thursday 2026-01-01 00:00:00 UTC

    #[test]
    fn parses_common_forms() {
        for ok in [
            "*/15 * * * *",
            "0 3 * * 1-5",
            "30 2 1 JAN,jul *",
            "0 0 * * SUN",
            "@daily",
            "0 */5 * * * *",
            "0 0 12 * * ? 2026",
            "5/10 * * * *",
        ] {
            Schedule::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * 13 *",
            "*/0 * * * *",
            "5-1 * * * *",
            "@often",
            "a b c d e",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_occurrences() {
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(s.next_after(T2026_01_01), Some(T2026_01_01 + 900));
        let s = Schedule::parse("0 3 * * MON").unwrap();
        // First Monday of 2026 is Jan 5.
        assert_eq!(
            s.next_after(T2026_01_01),
            Some(T2026_01_01 + 4 * 86_400 + 3 * 3600)
        );
        let s = Schedule::parse("0 0 1 MAR *").unwrap();
        assert_eq!(s.next_after(T2026_01_01), Some(T2026_01_01 + 59 * 86_400));
        let s = Schedule::parse("@hourly").unwrap();
        assert_eq!(s.next_after(T2026_01_01 + 10), Some(T2026_01_01 + 3600));
    }

    #[test]
    fn civil_round_trip() {
        for d in [-1000, 0, 59, 365, 20_454, 100_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
