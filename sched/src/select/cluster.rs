//! The candidate nodes of one evaluation and what the plan has done to
//! them so far.
//!
//! Built in one pass over the state's nodes: the candidates (ready,
//! eligible, not draining, in the job's pool and datacenters) in a seeded
//! random order, their computed classes interned to small integers and
//! their capacity flattened into a dense array, so that the scan over
//! candidates rarely touches a node record. A node's usage is built the
//! first time it is looked at and updated as the plan places on it.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use wren_model::{AllocMetric, Allocation, Job, Node, VecMap};

use crate::config::SchedConfig;
use crate::distinct::Distinct;
use crate::feasible::{datacenter_matches, pool_matches};
use crate::rng::Rng;
use crate::state::StateView;
use crate::usage::{Cap, NodeUsage, parse_port_ranges};

/// A node's usage and parsed reserved ports.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) usage: NodeUsage,
    pub(super) reserved_ports: Vec<(u16, u16)>,
}

/// Hashes already-random 64-bit keys (computed class hashes) with a
/// per-evaluation seed: cheap, and not steerable by whoever registers
/// nodes.
#[derive(Debug, Clone, Copy)]
struct Seeded(u64);

struct SeededHasher(u64);

impl BuildHasher for Seeded {
    type Hasher = SeededHasher;
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher(self.0)
    }
}

impl Hasher for SeededHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The 64-bit hash inside a computed class name (`v1:<16 hex digits>`).
fn class_key(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("v1:")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Interns computed class names to small integers.
struct Classes<'a> {
    by_key: HashMap<u64, u32, Seeded>,
    by_name: HashMap<Cow<'a, str>, u32>,
    names: Vec<Cow<'a, str>>,
}

impl<'a> Classes<'a> {
    fn id(&mut self, node: &'a Node) -> u32 {
        let name: Cow<'a, str> = if node.computed_class.is_empty() {
            Cow::Owned(node.compute_class())
        } else {
            Cow::Borrowed(node.computed_class.as_str())
        };
        let next = self.names.len() as u32;
        let id = match class_key(&name) {
            Some(k) => *self.by_key.entry(k).or_insert(next),
            None => match self.by_name.get(&name) {
                Some(&id) => id,
                None => {
                    self.by_name.insert(name.clone(), next);
                    next
                }
            },
        };
        if id == next {
            self.names.push(name);
        }
        id
    }
}

/// The candidates of one evaluation.
pub(crate) struct Cluster<'a, S: StateView + ?Sized> {
    pub(crate) state: &'a S,
    pub(crate) job: &'a Job,
    pub(crate) config: &'a SchedConfig,
    pub(crate) nodes: Vec<&'a Node>,
    pub(super) caps: Vec<Cap>,
    pub(super) class_of: Vec<u32>,
    pub(crate) class_names: Vec<Cow<'a, str>>,
    index_of: OnceCell<HashMap<&'a str, usize>>,
    pub(super) slots: Vec<Option<Slot>>,
    stopping: HashSet<String>,
    pub(super) job_counts: Vec<u32>,
    pub(super) job_distinct: Distinct,
    pub(super) offset: usize,
    pub(crate) rng: Rng,
    nodes_in_pool: u32,
    /// Nodes of the pool outside the job's datacenters.
    pub(super) other_dc: u32,
    /// Nodes of the pool not ready, ineligible or draining.
    pub(super) unschedulable: u32,
    pub(super) available: VecMap<String, u32>,
}

impl<S: StateView + ?Sized> std::fmt::Debug for Cluster<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("job", &self.job.id)
            .field("candidates", &self.nodes.len())
            .field("classes", &self.class_names.len())
            .finish_non_exhaustive()
    }
}

impl<'a, S: StateView + ?Sized> Cluster<'a, S> {
    /// Collects the candidates for `job`. `stopping` holds the ids of
    /// allocations the plan stops or replaces: they no longer use capacity.
    pub(crate) fn new(
        state: &'a S,
        job: &'a Job,
        config: &'a SchedConfig,
        mut rng: Rng,
        stopping: HashSet<String>,
    ) -> Cluster<'a, S> {
        let mut classes = Classes {
            by_key: HashMap::with_hasher(Seeded(rng.next_u64())),
            by_name: HashMap::new(),
            names: Vec::new(),
        };
        let mut found: Vec<(&'a Node, u32, Cap)> = Vec::new();
        let mut nodes_in_pool = 0;
        let (mut other_dc, mut unschedulable) = (0, 0);
        let mut available: VecMap<String, u32> = VecMap::new();
        let any_dc = job.datacenters.is_empty() || job.datacenters.iter().any(|d| d == "*");
        for node in state.nodes() {
            if !pool_matches(&job.node_pool, &node.node_pool) {
                continue;
            }
            nodes_in_pool += 1;
            if !any_dc && !datacenter_matches(&job.datacenters, &node.datacenter) {
                other_dc += 1;
                continue;
            }
            if !node.is_schedulable() {
                unschedulable += 1;
                continue;
            }
            match available.get_mut(&node.datacenter) {
                Some(n) => *n += 1,
                None => {
                    available.insert(node.datacenter.clone(), 1);
                }
            }
            found.push((node, classes.id(node), Cap::of(node)));
        }
        rng.shuffle(&mut found);
        let n = found.len();
        let mut cluster = Cluster {
            state,
            job,
            config,
            caps: found.iter().map(|f| f.2).collect(),
            class_of: found.iter().map(|f| f.1).collect(),
            nodes: found.into_iter().map(|f| f.0).collect(),
            class_names: classes.names,
            index_of: OnceCell::new(),
            slots: (0..n).map(|_| None).collect(),
            stopping,
            job_counts: vec![0; n],
            job_distinct: Distinct::new(job.constraints.iter()),
            offset: 0,
            rng,
            nodes_in_pool,
            other_dc,
            unschedulable,
            available,
        };
        for a in state.allocs_by_job(&job.id) {
            if a.is_terminal() || cluster.stopping.contains(&a.id) {
                continue;
            }
            if let Some(i) = cluster.candidate(&a.node_id) {
                cluster.job_counts[i] += 1;
            }
            if !cluster.job_distinct.is_empty()
                && let Some(node) = state.node(&a.node_id)
            {
                cluster.job_distinct.record(node);
            }
        }
        cluster
    }

    /// Frees what a running allocation holds because the plan replaces it.
    /// Returns whether anything was freed (terminal allocations hold
    /// nothing).
    pub(super) fn release(&mut self, a: &Allocation) -> bool {
        if a.is_terminal() || !self.stopping.insert(a.id.clone()) {
            return false;
        }
        if let Some(i) = self.candidate(&a.node_id) {
            if let Some(slot) = self.slots[i].as_mut() {
                slot.usage.remove(self.nodes[i], &a.resources);
            }
            self.job_counts[i] = self.job_counts[i].saturating_sub(1);
        }
        if let Some(node) = self.state.node(&a.node_id) {
            self.job_distinct.unrecord(node);
        }
        true
    }

    /// Undoes [`Cluster::release`] when the replacement could not be
    /// placed.
    pub(super) fn reclaim(&mut self, a: &Allocation) {
        if !self.stopping.remove(&a.id) {
            return;
        }
        if let Some(i) = self.candidate(&a.node_id) {
            if let Some(slot) = self.slots[i].as_mut() {
                let _ = slot.usage.add(self.nodes[i], &a.resources);
            }
            self.job_counts[i] += 1;
        }
        if let Some(node) = self.state.node(&a.node_id) {
            self.job_distinct.record(node);
        }
    }

    /// Whether an allocation is being stopped or replaced by the plan.
    pub(crate) fn is_stopping(&self, id: &str) -> bool {
        self.stopping.contains(id)
    }

    /// The candidate index of a node, if it is a candidate. The index is
    /// built on first use: a new job never needs it.
    pub(crate) fn candidate(&self, node_id: &str) -> Option<usize> {
        self.index_of
            .get_or_init(|| {
                self.nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.id.as_str(), i))
                    .collect()
            })
            .get(node_id)
            .copied()
    }

    /// The usage of candidate `i`, built from its allocations on first use.
    pub(super) fn slot(&mut self, i: usize) -> &mut Slot {
        let node = self.nodes[i];
        let stopping = &self.stopping;
        let state = self.state;
        self.slots[i].get_or_insert_with(|| {
            // The same count the plan verifier makes of the node.
            let usage = NodeUsage::of_allocs(
                node,
                state
                    .allocs_by_node(&node.id)
                    .filter(|a| !stopping.contains(&a.id)),
            );
            Slot {
                usage,
                reserved_ports: parse_port_ranges(&node.reserved.ports),
            }
        })
    }

    pub(super) fn base_metric(&self) -> AllocMetric {
        AllocMetric {
            nodes_in_pool: self.nodes_in_pool,
            ..AllocMetric::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_keys() {
        assert_eq!(class_key("v1:00000000000000ff"), Some(255));
        assert_eq!(class_key("v1:ff"), None);
        assert_eq!(class_key("custom"), None);
        let mut n = Node::default();
        n.computed_class = n.compute_class();
        assert!(class_key(&n.computed_class).is_some(), "the model's format");
    }

    #[test]
    fn interning_mixes_formats() {
        let mut c = Classes {
            by_key: HashMap::with_hasher(Seeded(7)),
            by_name: HashMap::new(),
            names: Vec::new(),
        };
        let a = Node {
            computed_class: "v1:0000000000000001".into(),
            ..Node::default()
        };
        let b = Node {
            computed_class: "odd".into(),
            ..Node::default()
        };
        let a2 = a.clone();
        let b2 = b.clone();
        assert_eq!(c.id(&a), 0);
        assert_eq!(c.id(&b), 1);
        assert_eq!(c.id(&a2), 0);
        assert_eq!(c.id(&b2), 1);
        assert_eq!(c.names, vec!["v1:0000000000000001", "odd"]);
    }
}
