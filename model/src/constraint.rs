//! Constraints, affinities and spreads: how a job says where it may run and
//! where it would rather run.

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::version::{Flavor, VersionConstraint, VersionError};

string_enum! {
    /// A constraint or affinity operator, spelled as in Nomad.
    pub enum Operator ("operator") {
        /// Attribute equals the value (`=`, `==`, `is`).
        Eq = 0, "=" | "==" | "is";
        /// Attribute differs from the value (`!=`, `not`).
        Ne = 1, "!=" | "not";
        /// Lexical or numeric greater than.
        Gt = 2, ">";
        /// Lexical or numeric greater than or equal.
        Ge = 3, ">=";
        /// Lexical or numeric less than.
        Lt = 4, "<";
        /// Lexical or numeric less than or equal.
        Le = 5, "<=";
        /// The attribute matches a regular expression.
        Regexp = 6, "regexp";
        /// The attribute satisfies a lenient version constraint.
        Version = 7, "version";
        /// The attribute satisfies a Semantic Versioning constraint.
        Semver = 8, "semver";
        /// The comma-separated attribute contains every listed value.
        SetContains = 9, "set_contains" | "set_contains_all";
        /// The comma-separated attribute contains at least one listed value.
        SetContainsAny = 10, "set_contains_any";
        /// No two allocations of the job (or group) share a node.
        DistinctHosts = 11, "distinct_hosts";
        /// At most `value` (default 1) allocations share a value of the attribute.
        DistinctProperty = 12, "distinct_property";
        /// The attribute is present.
        IsSet = 13, "is_set";
        /// The attribute is absent.
        IsNotSet = 14, "is_not_set";
    }
}

impl Operator {
    /// Operators that constrain the job's allocations relative to each
    /// other rather than a node's attributes. They are not allowed on tasks.
    pub fn is_distinct(self) -> bool {
        matches!(self, Operator::DistinctHosts | Operator::DistinctProperty)
    }

    /// Operators an affinity may use (Nomad allows the comparisons,
    /// `regexp`, the set operators and the version operators).
    pub fn allowed_in_affinity(self) -> bool {
        !matches!(
            self,
            Operator::DistinctHosts
                | Operator::DistinctProperty
                | Operator::IsSet
                | Operator::IsNotSet
        )
    }
}

/// A hard requirement on the node (or on the spread of the job's
/// allocations, for the `distinct_*` operators).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
#[serde(default)]
pub struct Constraint {
    /// The left side: usually an interpolation such as `${attr.cpu.arch}`.
    #[n(0)]
    pub attribute: String,
    /// How the two sides compare.
    #[n(1)]
    pub operator: Operator,
    /// The right side.
    #[n(2)]
    pub value: String,
}

/// Why a constraint, affinity or spread is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The operator needs an attribute and none was given.
    #[error("operator {0:?} needs an attribute")]
    MissingAttribute(Operator),
    /// The operator needs a value and none was given.
    #[error("operator {0:?} needs a value")]
    MissingValue(Operator),
    /// The regular expression does not compile.
    #[error("regexp {pattern:?} does not compile: {reason}")]
    BadRegexp {
        /// The pattern as written.
        pattern: String,
        /// The compiler's complaint.
        reason: String,
    },
    /// The version constraint does not parse.
    #[error(transparent)]
    BadVersion(#[from] VersionError),
    /// `distinct_property`'s value must be a positive count.
    #[error("distinct_property value {0:?} must be a positive integer")]
    BadDistinctCount(String),
    /// `distinct_hosts` takes "true" or "false".
    #[error("distinct_hosts value {0:?} must be true or false")]
    BadDistinctHosts(String),
    /// The operator is not allowed here.
    #[error("operator {operator:?} is not allowed in {place}")]
    NotAllowed {
        /// The operator.
        operator: Operator,
        /// Where it was used.
        place: &'static str,
    },
    /// An affinity's weight is outside -100..=100 or zero.
    #[error("affinity weight {0} must be between -100 and 100 and not 0")]
    BadAffinityWeight(i32),
    /// A spread's weight is outside 1..=100.
    #[error("spread weight {0} must be between 1 and 100")]
    BadSpreadWeight(i32),
    /// A spread's target percentages add up to more than 100.
    #[error("spread target percentages add up to {0}, more than 100")]
    SpreadOverCommitted(u32),
    /// A spread names the same target twice.
    #[error("spread target {0:?} is listed twice")]
    DuplicateSpreadTarget(String),
}

impl Constraint {
    /// Builds a constraint.
    pub fn new(attribute: impl Into<String>, operator: Operator, value: impl Into<String>) -> Self {
        Constraint {
            attribute: attribute.into(),
            operator,
            value: value.into(),
        }
    }

    /// Checks that the constraint is well formed: required sides present,
    /// regexps compile, version constraints parse.
    pub fn validate(&self) -> Result<(), ConstraintError> {
        check_operands(self.operator, &self.attribute, &self.value)
    }
}

fn check_operands(op: Operator, attribute: &str, value: &str) -> Result<(), ConstraintError> {
    match op {
        Operator::DistinctHosts => {
            if !(value.is_empty() || value == "true" || value == "false") {
                return Err(ConstraintError::BadDistinctHosts(value.to_owned()));
            }
            return Ok(());
        }
        Operator::DistinctProperty => {
            if attribute.is_empty() {
                return Err(ConstraintError::MissingAttribute(op));
            }
            if !value.is_empty() && !matches!(value.parse::<u64>(), Ok(n) if n > 0) {
                return Err(ConstraintError::BadDistinctCount(value.to_owned()));
            }
            return Ok(());
        }
        Operator::IsSet | Operator::IsNotSet => {
            if attribute.is_empty() {
                return Err(ConstraintError::MissingAttribute(op));
            }
            return Ok(());
        }
        _ => {}
    }
    if attribute.is_empty() {
        return Err(ConstraintError::MissingAttribute(op));
    }
    match op {
        Operator::Regexp => {
            compile_regexp(value)?;
        }
        Operator::Version => {
            VersionConstraint::parse(value, Flavor::Lenient)?;
        }
        Operator::Semver => {
            VersionConstraint::parse(value, Flavor::Semver)?;
        }
        Operator::SetContains | Operator::SetContainsAny if value.trim().is_empty() => {
            return Err(ConstraintError::MissingValue(op));
        }
        _ => {}
    }
    Ok(())
}

/// Compiles a constraint's regular expression with the bounds the scheduler
/// uses, so that validation and evaluation agree.
pub fn compile_regexp(pattern: &str) -> Result<regex_lite::Regex, ConstraintError> {
    regex_lite::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| ConstraintError::BadRegexp {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}

/// A soft preference for nodes: matching nodes score `weight` higher (or
/// lower, when negative).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
#[serde(default)]
pub struct Affinity {
    /// The left side, usually an interpolation.
    #[n(0)]
    pub attribute: String,
    /// How the two sides compare.
    #[n(1)]
    pub operator: Operator,
    /// The right side.
    #[n(2)]
    pub value: String,
    /// -100 to 100, not zero; Nomad's default is 50.
    #[n(3)]
    pub weight: i8,
}

impl Affinity {
    /// Checks the operator, operands and weight.
    pub fn validate(&self) -> Result<(), ConstraintError> {
        if !self.operator.allowed_in_affinity() {
            return Err(ConstraintError::NotAllowed {
                operator: self.operator,
                place: "an affinity",
            });
        }
        if self.weight == 0 || !(-100..=100).contains(&self.weight) {
            return Err(ConstraintError::BadAffinityWeight(self.weight.into()));
        }
        check_operands(self.operator, &self.attribute, &self.value)
    }
}

/// Spread the group's allocations over the values of an attribute, evenly
/// or by the targets' percentages.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
#[serde(default)]
pub struct Spread {
    /// The attribute whose values are spread over, e.g. `${node.datacenter}`.
    #[n(0)]
    pub attribute: String,
    /// 1 to 100: how much spreading counts against other scores.
    #[n(1)]
    pub weight: u8,
    /// Desired shares per value; values not listed share what is left.
    #[n(2)]
    pub targets: Vec<SpreadTarget>,
}

/// One value's share of a spread.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
#[serde(default)]
pub struct SpreadTarget {
    /// The attribute value.
    #[n(0)]
    pub value: String,
    /// Percent of the group's allocations that should land on it.
    #[n(1)]
    pub percent: u8,
}

impl Spread {
    /// Checks the weight and that targets add up to at most 100%.
    pub fn validate(&self) -> Result<(), ConstraintError> {
        if self.attribute.is_empty() {
            return Err(ConstraintError::MissingAttribute(Operator::Eq));
        }
        if self.weight == 0 || self.weight > 100 {
            return Err(ConstraintError::BadSpreadWeight(self.weight.into()));
        }
        let mut sum = 0u32;
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !seen.insert(t.value.as_str()) {
                return Err(ConstraintError::DuplicateSpreadTarget(t.value.clone()));
            }
            sum += u32::from(t.percent);
        }
        if sum > 100 {
            return Err(ConstraintError::SpreadOverCommitted(sum));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_parse_with_aliases() {
        assert_eq!("==".parse::<Operator>(), Ok(Operator::Eq));
        assert_eq!("set_contains_all".parse::<Operator>(), Ok(Operator::SetContains));
        assert!("~=".parse::<Operator>().is_err());
        for op in Operator::ALL {
            assert_eq!(op.as_str().parse::<Operator>(), Ok(*op));
        }
    }

    #[test]
    fn validation_catches_bad_operands() {
        let bad = [
            Constraint::new("${attr.x}", Operator::Regexp, "(unclosed"),
            Constraint::new("${attr.x}", Operator::Version, ">= banana"),
            Constraint::new("", Operator::Eq, "x"),
            Constraint::new("${meta.rack}", Operator::DistinctProperty, "0"),
            Constraint::new("", Operator::DistinctHosts, "maybe"),
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        Constraint::new("", Operator::DistinctHosts, "true").validate().unwrap();
        Constraint::new("${attr.kernel.version}", Operator::Version, ">= 5.10, < 7")
            .validate()
            .unwrap();
    }

    #[test]
    fn spread_targets_bounded() {
        let s = Spread {
            attribute: "${node.datacenter}".into(),
            weight: 50,
            targets: vec![
                SpreadTarget { value: "a".into(), percent: 70 },
                SpreadTarget { value: "b".into(), percent: 40 },
            ],
        };
        assert_eq!(s.validate(), Err(ConstraintError::SpreadOverCommitted(110)));
    }
}
