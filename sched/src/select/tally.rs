//! Counting what a placement looked at, and turning the counts into the
//! allocation's [`AllocMetric`]: nodes evaluated, filtered per constraint
//! (or driver, device, distinct constraint), exhausted per dimension, and
//! the best scores. Counters are plain integers during the scan; strings
//! are only made when the metric is built.

use wren_model::{AllocMetric, NodeScore};

use super::cluster::Cluster;
use super::{Filter, GroupPlacer};
use crate::distinct::DistinctReason;
use crate::feasible::Reason;
use crate::rank::Score;
use crate::state::StateView;
use crate::usage::Exhausted;

/// Counts behind an [`AllocMetric`].
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) evaluated: u32,
    pub(super) filtered: u32,
    pub(super) exhausted: u32,
    feasibility: Vec<u32>,
    distinct: Vec<(bool, DistinctReason, u32)>,
    dims: Vec<(Exhausted, u32)>,
    class_filtered: Vec<(u32, u32)>,
    class_exhausted: Vec<(u32, u32)>,
}

impl Tally {
    /// Zeroed, with one counter per feasibility reason.
    pub(super) fn sized(reasons: usize) -> Tally {
        let mut t = Tally::default();
        t.reset(reasons);
        t
    }

    /// Zeroes the counters, keeping the buffers.
    pub(super) fn reset(&mut self, reasons: usize) {
        self.evaluated = 0;
        self.filtered = 0;
        self.exhausted = 0;
        self.feasibility.clear();
        self.feasibility.resize(reasons, 0);
        self.distinct.clear();
        self.dims.clear();
        self.class_filtered.clear();
        self.class_exhausted.clear();
    }
}

fn bump<K: PartialEq>(v: &mut Vec<(K, u32)>, k: K) {
    match v.iter_mut().find(|(x, _)| *x == k) {
        Some((_, n)) => *n += 1,
        None => v.push((k, 1)),
    }
}

impl<'a> GroupPlacer<'a> {
    /// Adds one node's outcome to the tally.
    pub(super) fn count(&self, tally: &mut Tally, class: u32, outcome: Result<Filter, Exhausted>) {
        match outcome {
            Ok(f) => {
                tally.filtered += 1;
                bump(&mut tally.class_filtered, class);
                match f {
                    Filter::Feasibility(r) => {
                        if let Some(n) = tally.feasibility.get_mut(r as usize) {
                            *n += 1;
                        }
                    }
                    Filter::JobDistinct(r) => bump3(&mut tally.distinct, true, r),
                    Filter::GroupDistinct(r) => bump3(&mut tally.distinct, false, r),
                }
            }
            Err(dim) => {
                tally.exhausted += 1;
                bump(&mut tally.class_exhausted, class);
                bump(&mut tally.dims, dim);
            }
        }
    }

    pub(super) fn metric<S: StateView + ?Sized>(
        &self,
        cluster: &Cluster<'a, S>,
        tally: &Tally,
        ranked: &[(usize, Score)],
    ) -> AllocMetric {
        let mut m = cluster.base_metric();
        m.nodes_evaluated = tally.evaluated;
        m.nodes_filtered = tally.filtered;
        m.nodes_exhausted = tally.exhausted;
        for (r, &n) in tally.feasibility.iter().enumerate() {
            if n > 0 {
                *m.constraint_filtered
                    .entry(self.feas.reason(r as Reason).to_owned())
                    .or_insert(0) += n;
            }
        }
        for &(job_scope, r, n) in &tally.distinct {
            let label = if job_scope {
                cluster.job_distinct.label(r)
            } else {
                self.distinct.label(r)
            };
            *m.constraint_filtered.entry(label.to_owned()).or_insert(0) += n;
        }
        for &(dim, n) in &tally.dims {
            *m.dimension_exhausted
                .entry(dim.label(&self.ask))
                .or_insert(0) += n;
        }
        if ranked.is_empty() {
            // Per-class detail only where it explains a failure: a
            // successful placement would pay for a string per class.
            let class = |c: u32| {
                cluster
                    .class_names
                    .get(c as usize)
                    .map_or_else(String::new, |s| s.to_string())
            };
            for &(c, n) in &tally.class_filtered {
                *m.class_filtered.entry(class(c)).or_insert(0) += n;
            }
            for &(c, n) in &tally.class_exhausted {
                *m.class_exhausted.entry(class(c)).or_insert(0) += n;
            }
            m.nodes_available.clone_from(&cluster.available);
            if cluster.nodes.is_empty() {
                if cluster.other_dc > 0 {
                    m.constraint_filtered
                        .insert("datacenter".into(), cluster.other_dc);
                }
                if cluster.unschedulable > 0 {
                    m.constraint_filtered.insert(
                        "node status, eligibility or drain".into(),
                        cluster.unschedulable,
                    );
                }
            }
        }
        m.scores = ranked
            .iter()
            .take(cluster.config.retained_scores)
            .map(|(i, s)| NodeScore {
                node_id: cluster.nodes[*i].id.clone(),
                scores: s.named().map(|(k, v)| (k.to_owned(), v)).collect(),
                norm_score: s.norm,
            })
            .collect();
        m
    }
}

fn bump3(v: &mut Vec<(bool, DistinctReason, u32)>, job: bool, r: DistinctReason) {
    match v.iter_mut().find(|(j, x, _)| *j == job && *x == r) {
        Some((_, _, n)) => *n += 1,
        None => v.push((job, r, 1)),
    }
}
