//! Durations as Nomad writes them (`"30s"`, `"1h30m"`, `"500ms"`), stored as
//! nanoseconds like Nomad's API so that meaning carries over unchanged.

use std::fmt;
use std::str::FromStr;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time with nanosecond resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
#[cbor(transparent)]
pub struct Duration(#[n(0)] pub u64);

/// Why a duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    /// The text as written.
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(SEC))
    }

    /// From whole milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms.saturating_mul(MS))
    }

    /// From whole minutes.
    pub const fn from_mins(m: u64) -> Duration {
        Duration(m.saturating_mul(MIN))
    }

    /// From whole hours.
    pub const fn from_hours(h: u64) -> Duration {
        Duration(h.saturating_mul(HOUR))
    }

    /// The span in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The span in whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0 / MS
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// As a standard library duration.
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }

    /// Parses Go's duration syntax, which Nomad uses: a sequence of decimal
    /// numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`,
    /// `ms`, `s`, `m`, `h`), such as `"300ms"` or `"1h45m"`. A bare `"0"`
    /// is zero. Negative durations are rejected: nothing in a jobspec may
    /// wait a negative time.
    pub fn parse(input: &str) -> Result<Duration, DurationError> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.starts_with('-') {
            return Err(err("must not be negative"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut rest = s;
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("missing unit"))?;
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let (number, tail) = rest.split_at(digits);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let scale = match unit {
                "ns" => NS,
                "us" | "µs" | "μs" => US,
                "ms" => MS,
                "s" => SEC,
                "m" => MIN,
                "h" => HOUR,
                _ => return Err(err("unknown unit (use ns, us, ms, s, m or h)")),
            };
            let (whole, frac) = match number.split_once('.') {
                Some((w, f)) => (w, f),
                None => (number, ""),
            };
            if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
                return Err(err("malformed number"));
            }
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| err("number too large"))?
            };
            let mut nanos = whole
                .checked_mul(scale as u128)
                .ok_or_else(|| err("too large"))?;
            // Fractions beyond nanosecond precision are truncated, as in Go.
            let mut place = scale as u128;
            for c in frac.chars() {
                place /= 10;
                if place == 0 {
                    break;
                }
                nanos += (c as u128 - '0' as u128) * place;
            }
            total = total.checked_add(nanos).ok_or_else(|| err("too large"))?;
            rest = tail;
        }
        u64::try_from(total)
            .map(Duration)
            .map_err(|_| err("too large"))
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Duration {
        Duration(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Duration, DurationError> {
        Duration::parse(s)
    }
}

impl fmt::Display for Duration {
    /// Formats compactly: `5s`, `30m`, `1h30m`, `1.5s`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < SEC {
            return if n % MS == 0 {
                write!(f, "{}ms", n / MS)
            } else if n % US == 0 {
                write!(f, "{}us", n / US)
            } else {
                write!(f, "{n}ns")
            };
        }
        let hours = n / HOUR;
        let mins = (n % HOUR) / MIN;
        let nanos = n % MIN;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if mins > 0 {
            write!(f, "{mins}m")?;
        }
        if nanos > 0 {
            let secs = nanos / SEC;
            let frac = nanos % SEC;
            if frac == 0 {
                write!(f, "{secs}s")?;
            } else {
                let digits = format!("{frac:09}");
                write!(f, "{secs}.{}s", digits.trim_end_matches('0'))?;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\", or nanoseconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration)
                    .map_err(|_| E::custom("duration must not be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("0", 0),
            ("5s", 5 * SEC),
            ("1h30m", HOUR + 30 * MIN),
            ("1h45m0s", HOUR + 45 * MIN),
            ("300ms", 300 * MS),
            ("1.5h", HOUR + 30 * MIN),
            (".5s", SEC / 2),
            ("2us", 2 * US),
            ("2µs", 2 * US),
            ("10ns", 10),
            ("24h", 24 * HOUR),
        ];
        for (text, nanos) in cases {
            assert_eq!(Duration::parse(text), Ok(Duration(nanos)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for text in ["", "5", "s", "-5s", "5x", "1..5s", "5 s", "99999999999999999999h"] {
            assert!(Duration::parse(text).is_err(), "{text:?} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        for nanos in [0, 1, 999, 1_500, 5 * MS, SEC, SEC + MS, 90 * MIN, 25 * HOUR + 1] {
            let d = Duration(nanos);
            assert_eq!(Duration::parse(&d.to_string()), Ok(d), "{d}");
        }
        assert_eq!(Duration::from_mins(30).to_string(), "30m");
        assert_eq!(Duration::from_millis(1500).to_string(), "1.5s");
    }
}
