//! Version constraints for the `version` and `semver` constraint operators.
//!
//! Nomad evaluates `version` with HashiCorp's go-version (lenient: any number
//! of numeric segments, an optional `v`, pre-release and metadata suffixes)
//! and `semver` with strict Semantic Versioning 2.0 ordering. Both accept a
//! comma-separated list of `op version` terms that must all hold, with the
//! operators `=`, `!=`, `>`, `>=`, `<`, `<=` and `~>` (pessimistic).

use std::cmp::Ordering;
use std::fmt;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Numeric segments, at least one.
    pub segments: Vec<u64>,
    /// Dot-separated pre-release identifiers (after `-`), empty for a release.
    pub pre: Vec<String>,
    /// How many segments were written (for `~>`).
    written: usize,
}

/// Why a version or a constraint did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: {reason}")]
pub struct VersionError {
    /// The text as written.
    pub input: String,
    /// What was wrong.
    pub reason: &'static str,
}

/// Which ordering rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// go-version: lenient syntax.
    Lenient,
    /// Semantic Versioning 2.0: exactly `major.minor.patch`, numbered segments
    /// padded if fewer are written in a constraint.
    Semver,
}

impl Version {
    /// Parses a version in the given flavour.
    pub fn parse(input: &str, flavor: Flavor) -> Result<Version, VersionError> {
        let err = |reason| VersionError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        // Build metadata never affects precedence.
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        if core.is_empty() {
            return Err(err("empty"));
        }
        let mut segments = Vec::new();
        for part in core.split('.') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("segments must be numbers"));
            }
            if flavor == Flavor::Semver && part.len() > 1 && part.starts_with('0') {
                return Err(err("leading zero in a semver segment"));
            }
            segments.push(part.parse().map_err(|_| err("segment too large"))?);
        }
        if segments.len() > 16 {
            return Err(err("too many segments"));
        }
        let written = segments.len();
        let pre = match pre {
            None => Vec::new(),
            Some(p) => {
                let ids: Vec<String> = p.split('.').map(str::to_owned).collect();
                if ids.iter().any(|id| {
                    id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }) {
                    return Err(err("malformed pre-release"));
                }
                ids
            }
        };
        if flavor == Flavor::Semver && written > 3 {
            return Err(err("semver has at most three segments"));
        }
        while segments.len() < 3 {
            segments.push(0);
        }
        Ok(Version {
            segments,
            pre,
            written,
        })
    }

    fn cmp_core(&self, other: &Version) -> Ordering {
        let n = self.segments.len().max(other.segments.len());
        for i in 0..n {
            let a = self.segments.get(i).copied().unwrap_or(0);
            let b = other.segments.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        // A pre-release sorts before its release.
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => cmp_pre(&self.pre, &other.pre),
        }
    }
}

fn cmp_pre(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.cmp_core(other)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segs: Vec<String> = self.segments[..self.written.max(1)]
            .iter()
            .map(u64::to_string)
            .collect();
        f.write_str(&segs.join("."))?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre.join("."))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Pessimistic,
}

/// A conjunction of version terms, like `">= 1.2, < 2"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    terms: Vec<(Op, Version)>,
    flavor: Flavor,
}

impl VersionConstraint {
    /// Parses a constraint; every term must parse.
    pub fn parse(input: &str, flavor: Flavor) -> Result<VersionConstraint, VersionError> {
        let mut terms = Vec::new();
        for term in input.split(',') {
            let term = term.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                ("~>", Op::Pessimistic),
                ("==", Op::Eq),
                ("=", Op::Eq),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(p, op)| term.strip_prefix(p).map(|r| (*op, r)))
            .unwrap_or((Op::Eq, term));
            let version = Version::parse(rest.trim(), flavor).map_err(|e| VersionError {
                input: input.to_owned(),
                reason: e.reason,
            })?;
            terms.push((op, version));
        }
        if terms.is_empty() {
            return Err(VersionError {
                input: input.to_owned(),
                reason: "empty constraint",
            });
        }
        Ok(VersionConstraint { terms, flavor })
    }

    /// Whether `version` (as text) satisfies every term. A version that does
    /// not parse satisfies nothing.
    pub fn matches_str(&self, version: &str) -> bool {
        match Version::parse(version, Flavor::Lenient) {
            Ok(v) => self.matches(&v),
            Err(_) => false,
        }
    }

    /// Whether `v` satisfies every term.
    pub fn matches(&self, v: &Version) -> bool {
        self.terms.iter().all(|(op, want)| {
            // go-version: a pre-release only matches constraints that name a
            // pre-release of the same core version. Semver: same rule.
            if !v.pre.is_empty() && *op != Op::Ne {
                let same_core = want.segments == v.segments;
                if want.pre.is_empty() || !same_core {
                    return false;
                }
            }
            let _ = self.flavor;
            match op {
                Op::Eq => v.cmp(want) == Ordering::Equal,
                Op::Ne => v.cmp(want) != Ordering::Equal,
                Op::Gt => v > want,
                Op::Ge => v >= want,
                Op::Lt => v < want,
                Op::Le => v <= want,
                Op::Pessimistic => {
                    if v < want {
                        return false;
                    }
                    // ~> 1.2.3 means >= 1.2.3, < 1.3; ~> 1.2 means >= 1.2, < 2.
                    let keep = want.written.saturating_sub(1).max(1);
                    v.segments[..keep - 1] == want.segments[..keep - 1]
                        && v.segments.get(keep - 1) == want.segments.get(keep - 1)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str, flavor: Flavor) -> bool {
        VersionConstraint::parse(c, flavor).unwrap().matches_str(v)
    }

    #[test]
    fn lenient_ranges() {
        assert!(ok(">= 1.2, < 2.0", "1.5.3", Flavor::Lenient));
        assert!(!ok(">= 1.2, < 2.0", "2.0", Flavor::Lenient));
        assert!(!ok("> 4.19", "6.1.0-28-amd64", Flavor::Lenient));
        assert!(ok("> 4.19", "6.1.0", Flavor::Lenient));
        assert!(ok("= 1.0", "v1.0.0", Flavor::Lenient));
        assert!(ok("!= 1.0", "1.0.1", Flavor::Lenient));
        assert!(ok("1.2.3", "1.2.3", Flavor::Lenient));
    }

    #[test]
    fn pessimistic() {
        assert!(ok("~> 1.2.3", "1.2.9", Flavor::Lenient));
        assert!(!ok("~> 1.2.3", "1.3.0", Flavor::Lenient));
        assert!(ok("~> 1.2", "1.9", Flavor::Lenient));
        assert!(!ok("~> 1.2", "2.0", Flavor::Lenient));
    }

    #[test]
    fn prereleases() {
        assert!(ok(">= 1.0.0-beta.2", "1.0.0-beta.10", Flavor::Semver));
        assert!(!ok(">= 1.0.0", "1.1.0-rc1", Flavor::Semver));
        assert!(ok("< 1.0.0", "0.9.9", Flavor::Semver));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", ">= ", ">= x.y", "1..2", ">= 1.2,", "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17"] {
            assert!(VersionConstraint::parse(bad, Flavor::Lenient).is_err(), "{bad:?}");
        }
        assert!(VersionConstraint::parse("1.2.3.4", Flavor::Semver).is_err());
        assert!(VersionConstraint::parse("01.2.3", Flavor::Semver).is_err());
    }
}
