//! Constraint and affinity evaluation: resolving `${...}` targets against a
//! node or a device group, and every operator of
//! [`wren_model::Operator`] except the `distinct_*` ones (those constrain
//! allocations relative to each other; see `feasible::distinct`).
//!
//! Both sides are resolved, as in Nomad; a side that is not an
//! interpolation is a literal. Comparisons are numeric when both sides
//! parse as numbers with compatible units (`8 GiB` vs `8192 MiB`,
//! `1.5 GHz` vs `1400 MHz`), lexical otherwise.

use std::borrow::Cow;
use std::cmp::Ordering;

use regex_lite::Regex;
use wren_model::constraint::compile_regexp;
use wren_model::version::{Flavor, VersionConstraint};
use wren_model::{Affinity, Constraint, Node, NodeDeviceResource, Operator};

/// One side of a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Not an interpolation: the text itself.
    Literal(String),
    /// `${node.unique.id}`.
    NodeId,
    /// `${node.unique.name}`.
    NodeName,
    /// `${node.datacenter}`.
    Datacenter,
    /// `${node.class}`.
    Class,
    /// `${node.pool}`.
    Pool,
    /// `${attr.<key>}` (key stored without the prefix, as on the node).
    Attr(String),
    /// `${meta.<key>}`.
    Meta(String),
    /// `${device.attr.<key>}`.
    DeviceAttr(String),
    /// `${device.vendor}`.
    DeviceVendor,
    /// `${device.type}`.
    DeviceType,
    /// `${device.model}`.
    DeviceModel,
    /// Any other interpolation: never resolves.
    Unknown,
}

impl Target {
    /// Parses one side as written.
    pub(crate) fn parse(text: &str) -> Target {
        let t = text.trim();
        let Some(inner) = t.strip_prefix("${").and_then(|s| s.strip_suffix('}')) else {
            return Target::Literal(text.to_owned());
        };
        match inner {
            "node.unique.id" => Target::NodeId,
            "node.unique.name" => Target::NodeName,
            "node.datacenter" => Target::Datacenter,
            "node.class" => Target::Class,
            "node.pool" => Target::Pool,
            "device.vendor" => Target::DeviceVendor,
            "device.type" => Target::DeviceType,
            "device.model" => Target::DeviceModel,
            _ => {
                if let Some(k) = inner.strip_prefix("attr.") {
                    Target::Attr(k.to_owned())
                } else if let Some(k) = inner.strip_prefix("meta.") {
                    Target::Meta(k.to_owned())
                } else if let Some(k) = inner.strip_prefix("device.attr.") {
                    Target::DeviceAttr(k.to_owned())
                } else {
                    Target::Unknown
                }
            }
        }
    }

    /// Whether the value differs between nodes of the same computed class
    /// (so results cannot be cached per class).
    pub(crate) fn is_unique(&self) -> bool {
        match self {
            Target::NodeId | Target::NodeName => true,
            Target::Attr(k) | Target::Meta(k) => k.starts_with("unique."),
            _ => false,
        }
    }

    /// The value on a node, if it has one.
    pub(crate) fn node_value<'a>(&'a self, node: &'a Node) -> Option<Cow<'a, str>> {
        let v: &str = match self {
            Target::Literal(s) => s,
            Target::NodeId => &node.id,
            Target::NodeName => &node.name,
            Target::Datacenter => &node.datacenter,
            Target::Class => &node.node_class,
            Target::Pool => &node.node_pool,
            Target::Attr(k) => return attr_value(node, k),
            Target::Meta(k) => node.meta.get(k)?,
            _ => return None,
        };
        Some(Cow::Borrowed(v))
    }

    /// The value on a device group, if it has one.
    pub(crate) fn device_value<'a>(&'a self, dev: &'a NodeDeviceResource) -> Option<&'a str> {
        match self {
            Target::Literal(s) => Some(s),
            Target::DeviceVendor => Some(&dev.vendor),
            Target::DeviceType => Some(&dev.device_type),
            Target::DeviceModel => Some(&dev.name),
            Target::DeviceAttr(k) => dev.attributes.get(k).map(String::as_str),
            _ => None,
        }
    }
}

/// `attr.*` lookup, with the drivers map standing in for Nomad's
/// `driver.<name>` and `driver.<name>.<attr>` attributes.
fn attr_value<'a>(node: &'a Node, key: &str) -> Option<Cow<'a, str>> {
    if let Some(v) = node.attributes.get(key) {
        return Some(Cow::Borrowed(v));
    }
    let rest = key.strip_prefix("driver.")?;
    match rest.split_once('.') {
        Some((name, attr)) => node
            .drivers
            .get(name)?
            .attributes
            .get(attr)
            .map(|v| Cow::Borrowed(v.as_str())),
        None => {
            let d = node.drivers.get(rest)?;
            (d.detected && d.healthy).then_some(Cow::Borrowed("1"))
        }
    }
}

/// How the right side is matched, prepared once.
#[derive(Debug)]
enum Matcher {
    Plain,
    Regex(Regex),
    Version(VersionConstraint),
    Set(Vec<String>),
    /// The right side does not compile: nothing matches.
    Invalid,
}

/// A constraint or affinity ready to be checked many times.
#[derive(Debug)]
pub(crate) struct Check {
    /// As written: `${attr.cpu.arch} = arm64`, used in explanations.
    pub(crate) label: String,
    pub(crate) left: Target,
    pub(crate) right: Target,
    pub(crate) op: Operator,
    matcher: Matcher,
    /// Affinity weight (0 for constraints).
    pub(crate) weight: i8,
}

impl Check {
    /// Prepares a constraint.
    pub(crate) fn constraint(c: &Constraint) -> Check {
        Check::new(&c.attribute, c.operator, &c.value, 0)
    }

    /// Prepares an affinity.
    pub(crate) fn affinity(a: &Affinity) -> Check {
        Check::new(&a.attribute, a.operator, &a.value, a.weight)
    }

    fn new(attribute: &str, op: Operator, value: &str, weight: i8) -> Check {
        let right = Target::parse(value);
        let literal = match &right {
            Target::Literal(s) => Some(s.as_str()),
            _ => None,
        };
        let matcher = match (op, literal) {
            (Operator::Regexp, Some(p)) => {
                compile_regexp(p).map_or(Matcher::Invalid, Matcher::Regex)
            }
            (Operator::Version, Some(v)) => VersionConstraint::parse(v, Flavor::Lenient)
                .map_or(Matcher::Invalid, Matcher::Version),
            (Operator::Semver, Some(v)) => VersionConstraint::parse(v, Flavor::Semver)
                .map_or(Matcher::Invalid, Matcher::Version),
            (Operator::SetContains | Operator::SetContainsAny, Some(v)) => {
                Matcher::Set(split_set(v))
            }
            _ => Matcher::Plain,
        };
        let label = if value.is_empty() {
            format!("{attribute} {op}")
        } else {
            format!("{attribute} {op} {value}")
        };
        Check {
            label,
            left: Target::parse(attribute),
            right,
            op,
            matcher,
            weight,
        }
    }

    /// Whether the result may differ between nodes of one computed class.
    pub(crate) fn is_escaped(&self) -> bool {
        self.left.is_unique() || self.right.is_unique()
    }

    /// Checks against a node.
    pub(crate) fn node_matches(&self, node: &Node) -> bool {
        let l = self.left.node_value(node);
        let r = self.right.node_value(node);
        self.matches(l.as_deref(), r.as_deref())
    }

    /// Checks against a device group.
    pub(crate) fn device_matches(&self, dev: &NodeDeviceResource) -> bool {
        self.matches(self.left.device_value(dev), self.right.device_value(dev))
    }

    /// The operator applied to resolved sides (`None`: not set).
    pub(crate) fn matches(&self, l: Option<&str>, r: Option<&str>) -> bool {
        match self.op {
            Operator::IsSet => return l.is_some(),
            Operator::IsNotSet => return l.is_none(),
            Operator::Ne => {
                return match (l, r) {
                    (Some(l), Some(r)) => !values_equal(l, r),
                    (None, None) => false,
                    _ => true,
                };
            }
            // Relative constraints are decided elsewhere; as node checks
            // they hold.
            Operator::DistinctHosts | Operator::DistinctProperty => return true,
            _ => {}
        }
        let (Some(l), Some(r)) = (l, r) else {
            return false;
        };
        match self.op {
            Operator::Eq => values_equal(l, r),
            Operator::Gt => compare(l, r) == Ordering::Greater,
            Operator::Ge => compare(l, r) != Ordering::Less,
            Operator::Lt => compare(l, r) == Ordering::Less,
            Operator::Le => compare(l, r) != Ordering::Greater,
            Operator::Regexp => match &self.matcher {
                Matcher::Regex(re) => re.is_match(l),
                Matcher::Plain => compile_regexp(r).is_ok_and(|re| re.is_match(l)),
                _ => false,
            },
            Operator::Version | Operator::Semver => match &self.matcher {
                Matcher::Version(vc) => vc.matches_str(l),
                Matcher::Plain => {
                    let flavor = if self.op == Operator::Semver {
                        Flavor::Semver
                    } else {
                        Flavor::Lenient
                    };
                    VersionConstraint::parse(r, flavor).is_ok_and(|vc| vc.matches_str(l))
                }
                _ => false,
            },
            Operator::SetContains | Operator::SetContainsAny => {
                let have = split_set(l);
                let owned;
                let want: &[String] = match &self.matcher {
                    Matcher::Set(w) => w,
                    _ => {
                        owned = split_set(r);
                        &owned
                    }
                };
                if self.op == Operator::SetContains {
                    want.iter().all(|w| have.contains(w))
                } else {
                    want.iter().any(|w| have.contains(w))
                }
            }
            _ => false,
        }
    }
}

fn split_set(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Equal as text, or as quantities when both carry a unit of the same kind.
fn values_equal(l: &str, r: &str) -> bool {
    if l == r {
        return true;
    }
    match (Quantity::parse(l), Quantity::parse(r)) {
        (Some(a), Some(b)) if a.kind != Kind::None && a.kind == b.kind => a.value == b.value,
        _ => false,
    }
}

/// Numeric when both parse with compatible units, lexical otherwise.
fn compare(l: &str, r: &str) -> Ordering {
    match (Quantity::parse(l), Quantity::parse(r)) {
        (Some(a), Some(b)) if a.kind == b.kind => {
            a.value.partial_cmp(&b.value).unwrap_or(Ordering::Equal)
        }
        _ => l.cmp(r),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    None,
    Bytes,
    Hertz,
    Watts,
}

/// A number with an optional unit, in the unit's base (bytes, Hz, W).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Quantity {
    value: f64,
    kind: Kind,
}

const UNITS: &[(&str, Kind, f64)] = &[
    ("B", Kind::Bytes, 1.0),
    ("KB", Kind::Bytes, 1e3),
    ("kB", Kind::Bytes, 1e3),
    ("MB", Kind::Bytes, 1e6),
    ("GB", Kind::Bytes, 1e9),
    ("TB", Kind::Bytes, 1e12),
    ("KiB", Kind::Bytes, 1024.0),
    ("MiB", Kind::Bytes, 1_048_576.0),
    ("GiB", Kind::Bytes, 1_073_741_824.0),
    ("TiB", Kind::Bytes, 1_099_511_627_776.0),
    ("Hz", Kind::Hertz, 1.0),
    ("kHz", Kind::Hertz, 1e3),
    ("KHz", Kind::Hertz, 1e3),
    ("MHz", Kind::Hertz, 1e6),
    ("GHz", Kind::Hertz, 1e9),
    ("mW", Kind::Watts, 1e-3),
    ("W", Kind::Watts, 1.0),
    ("kW", Kind::Watts, 1e3),
];

impl Quantity {
    fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(s.len());
        // An `e` that starts a unit-less word ("5e") is not an exponent;
        // f64 parsing below rejects it.
        let (num, unit) = s.split_at(end);
        let value: f64 = num.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        let unit = unit.trim();
        if unit.is_empty() {
            return Some(Quantity {
                value,
                kind: Kind::None,
            });
        }
        let (_, kind, scale) = UNITS.iter().find(|(name, _, _)| *name == unit)?;
        Some(Quantity {
            value: value * scale,
            kind: *kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use wren_model::DriverInfo;

    fn node() -> Node {
        let mut n = Node {
            id: "n1".into(),
            name: "pi-1".into(),
            datacenter: "dc1".into(),
            node_pool: "edge".into(),
            node_class: "pi".into(),
            ..Node::default()
        };
        n.attributes.insert("cpu.arch".into(), "arm64".into());
        n.attributes.insert("kernel.version".into(), "6.1.0".into());
        n.attributes.insert("unique.hostname".into(), "pi-1".into());
        n.attributes.insert("cpu.numcores".into(), "4".into());
        n.attributes.insert("features".into(), "a, b,c".into());
        n.meta.insert("rack".into(), "r1".into());
        n.drivers.insert(
            "qemu".into(),
            DriverInfo {
                detected: true,
                healthy: true,
                attributes: BTreeMap::from([("version".into(), "10.0.2".into())]),
                ..DriverInfo::default()
            },
        );
        n
    }

    fn holds(attr: &str, op: Operator, value: &str) -> bool {
        Check::constraint(&Constraint::new(attr, op, value)).node_matches(&node())
    }

    #[test]
    fn targets_resolve() {
        assert!(holds("${node.unique.id}", Operator::Eq, "n1"));
        assert!(holds("${node.unique.name}", Operator::Eq, "pi-1"));
        assert!(holds("${node.datacenter}", Operator::Eq, "dc1"));
        assert!(holds("${node.class}", Operator::Eq, "pi"));
        assert!(holds("${node.pool}", Operator::Eq, "edge"));
        assert!(holds("${meta.rack}", Operator::Eq, "r1"));
        assert!(holds("${attr.driver.qemu}", Operator::Eq, "1"));
        assert!(holds(
            "${attr.driver.qemu.version}",
            Operator::Version,
            ">= 10"
        ));
        assert!(holds(
            "${attr.unique.hostname}",
            Operator::Eq,
            "${node.unique.name}"
        ));
        assert!(!holds("${attr.nope}", Operator::Eq, "x"));
        assert!(!holds("${bogus.thing}", Operator::Eq, "x"));
    }

    #[test]
    fn every_operator() {
        assert!(holds("${attr.cpu.arch}", Operator::Ne, "amd64"));
        assert!(holds("${attr.nope}", Operator::Ne, "amd64"));
        assert!(holds("${attr.cpu.numcores}", Operator::Gt, "2"));
        assert!(
            !holds("${attr.cpu.numcores}", Operator::Gt, "10"),
            "numeric, not lexical"
        );
        assert!(holds("${attr.cpu.numcores}", Operator::Ge, "4"));
        assert!(holds("${attr.cpu.numcores}", Operator::Lt, "16"));
        assert!(holds("${attr.cpu.numcores}", Operator::Le, "4"));
        assert!(holds("${attr.cpu.arch}", Operator::Lt, "b"), "lexical");
        assert!(holds("${attr.cpu.arch}", Operator::Regexp, "^arm"));
        assert!(!holds("${attr.cpu.arch}", Operator::Regexp, "(unclosed"));
        assert!(holds(
            "${attr.kernel.version}",
            Operator::Version,
            ">= 5.10, < 7"
        ));
        assert!(holds(
            "${attr.kernel.version}",
            Operator::Semver,
            "~> 6.1.0"
        ));
        assert!(holds("${attr.features}", Operator::SetContains, "a,c"));
        assert!(!holds("${attr.features}", Operator::SetContains, "a,d"));
        assert!(holds("${attr.features}", Operator::SetContainsAny, "d,b"));
        assert!(holds("${attr.cpu.arch}", Operator::IsSet, ""));
        assert!(holds("${attr.gpu}", Operator::IsNotSet, ""));
        assert!(!holds("${attr.gpu}", Operator::Gt, "1"));
    }

    #[test]
    fn units_compare_numerically() {
        let dev = NodeDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "T4".into(),
            attributes: BTreeMap::from([("memory".into(), "16 GiB".into())]),
            ..NodeDeviceResource::default()
        };
        let c = |op, v: &str| {
            Check::constraint(&Constraint::new("${device.attr.memory}", op, v)).device_matches(&dev)
        };
        assert!(c(Operator::Ge, "8 GiB"));
        assert!(c(Operator::Gt, "9000 MiB"));
        assert!(c(Operator::Eq, "16384 MiB"));
        assert!(!c(Operator::Lt, "2 GB"));
        let m = |t: &str, v: &str| {
            Check::constraint(&Constraint::new(t, Operator::Eq, v)).device_matches(&dev)
        };
        assert!(m("${device.vendor}", "nvidia"));
        assert!(m("${device.type}", "gpu"));
        assert!(m("${device.model}", "T4"));
        assert_eq!(compare("1.5 GHz", "1400 MHz"), Ordering::Greater);
    }

    #[test]
    fn escaped_targets() {
        let c = |a: &str| Check::constraint(&Constraint::new(a, Operator::Eq, "x")).is_escaped();
        assert!(c("${node.unique.id}"));
        assert!(c("${attr.unique.hostname}"));
        assert!(c("${meta.unique.serial}"));
        assert!(!c("${attr.cpu.arch}"));
        assert!(!c("${node.datacenter}"));
    }
}
