//! `distinct_hosts` and `distinct_property`: constraints on how a job's (or
//! a group's) allocations share nodes and attribute values. Counts start
//! from the allocations that stay after the plan and grow with each
//! placement, so a check is a lookup.

use std::collections::HashMap;

use wren_model::{Constraint, Node, Operator};

use crate::constraint::Target;

/// One `distinct_property`.
#[derive(Debug)]
struct Prop {
    target: Target,
    limit: u32,
    label: String,
    counts: HashMap<String, u32>,
}

/// The distinct constraints of one scope (the job, or one group).
#[derive(Debug, Default)]
pub(crate) struct Distinct {
    hosts: bool,
    props: Vec<Prop>,
}

/// Which distinct constraint filtered a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DistinctReason {
    Hosts,
    /// The n-th `distinct_property`.
    Property(usize),
}

impl Distinct {
    /// Collects the distinct constraints among `constraints`.
    pub(crate) fn new<'a>(constraints: impl IntoIterator<Item = &'a Constraint>) -> Distinct {
        let mut d = Distinct::default();
        for c in constraints {
            match c.operator {
                Operator::DistinctHosts => d.hosts |= c.value != "false",
                Operator::DistinctProperty => d.props.push(Prop {
                    target: Target::parse(&c.attribute),
                    limit: c.value.trim().parse().ok().filter(|&n| n > 0).unwrap_or(1),
                    label: format!("distinct_property {}", c.attribute),
                    counts: HashMap::new(),
                }),
                _ => {}
            }
        }
        d
    }

    /// Whether there is anything to check.
    pub(crate) fn is_empty(&self) -> bool {
        !self.hosts && self.props.is_empty()
    }

    /// Whether any property is a unique attribute (checked per node, which
    /// is always the case here, but blocked evals must know).
    pub(crate) fn is_escaped(&self) -> bool {
        self.props.iter().any(|p| p.target.is_unique())
    }

    /// Counts an allocation of the scope that stays on `node`.
    pub(crate) fn record(&mut self, node: &Node) {
        for p in &mut self.props {
            if let Some(v) = p.target.node_value(node) {
                match p.counts.get_mut(v.as_ref()) {
                    Some(n) => *n += 1,
                    None => {
                        p.counts.insert(v.into_owned(), 1);
                    }
                }
            }
        }
    }

    /// Forgets an allocation of the scope on `node` (it is being replaced).
    pub(crate) fn unrecord(&mut self, node: &Node) {
        for p in &mut self.props {
            if let Some(v) = p.target.node_value(node)
                && let Some(n) = p.counts.get_mut(v.as_ref())
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Whether one more allocation of the scope may go to `node`, which
    /// already runs `on_node` of them.
    pub(crate) fn check(&self, node: &Node, on_node: u32) -> Result<(), DistinctReason> {
        if self.is_empty() {
            return Ok(());
        }
        if self.hosts && on_node > 0 {
            return Err(DistinctReason::Hosts);
        }
        for (i, p) in self.props.iter().enumerate() {
            let Some(v) = p.target.node_value(node) else {
                return Err(DistinctReason::Property(i));
            };
            if p.counts.get(v.as_ref()).copied().unwrap_or(0) >= p.limit {
                return Err(DistinctReason::Property(i));
            }
        }
        Ok(())
    }

    /// The label of a reason, for explanations.
    pub(crate) fn label(&self, r: DistinctReason) -> &str {
        match r {
            DistinctReason::Hosts => "distinct_hosts",
            DistinctReason::Property(i) => {
                self.props.get(i).map_or("distinct_property", |p| &p.label)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, rack: &str) -> Node {
        let mut n = Node {
            id: id.into(),
            ..Node::default()
        };
        n.meta.insert("rack".into(), rack.into());
        n
    }

    #[test]
    fn hosts_and_properties() {
        let cs = [
            Constraint::new("", Operator::DistinctHosts, "true"),
            Constraint::new("${meta.rack}", Operator::DistinctProperty, "2"),
            Constraint::new("${attr.cpu.arch}", Operator::Eq, "arm64"),
        ];
        let mut d = Distinct::new(cs.iter());
        assert!(!d.is_empty());
        let (a, b) = (node("a", "r1"), node("b", "r1"));
        assert_eq!(d.check(&a, 1), Err(DistinctReason::Hosts));
        assert_eq!(d.check(&a, 0), Ok(()));
        d.record(&a);
        d.record(&b);
        let c = node("c", "r1");
        assert_eq!(d.check(&c, 0), Err(DistinctReason::Property(0)));
        assert_eq!(
            d.label(DistinctReason::Property(0)),
            "distinct_property ${meta.rack}"
        );
        assert_eq!(d.check(&node("d", "r2"), 0), Ok(()));
        assert_eq!(
            d.check(&Node::default(), 0),
            Err(DistinctReason::Property(0)),
            "no rack"
        );
        let off = Distinct::new([Constraint::new("", Operator::DistinctHosts, "false")].iter());
        assert!(off.is_empty());
    }
}
