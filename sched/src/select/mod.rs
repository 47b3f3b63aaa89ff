//! Choosing a node for one placement (Nomad's "stack").
//!
//! [`Cluster`] is built once per evaluation: the candidate nodes (ready,
//! eligible, not draining, in the job's pool and datacenters) in a seeded
//! random order, their computed classes interned to small integers, and
//! per-node usage built lazily the first time a node is looked at and then
//! updated incrementally. [`GroupPlacer`] holds one group's prepared
//! checks and scorers. A placement walks the candidates from where the
//! previous one stopped, skipping infeasible nodes by a cached per-class
//! verdict, and scores only the first few feasible nodes that fit (see
//! [`crate::SchedConfig::candidate_limit`]), so its cost does not grow with the
//! cluster.

mod cluster;
mod tally;

pub(crate) use cluster::Cluster;

use wren_model::{AllocMetric, AllocatedResources, Allocation, Job, Node, TaskGroup};

use crate::distinct::{Distinct, DistinctReason};
use crate::feasible::{Feasibility, Reason, datacenter_matches, pool_matches};
use crate::rank::{Affinities, Score, Spreads, anti_affinity, fit_score};
use crate::state::StateView;
use crate::usage::{Ask, Exhausted};
use tally::Tally;

/// Options for one placement.
#[derive(Debug, Default)]
pub(crate) struct SelectOptions<'p> {
    /// Nodes scored down (where a rescheduled allocation failed).
    pub(crate) penalty_nodes: Vec<&'p str>,
    /// A node tried first (sticky ephemeral disk).
    pub(crate) preferred_node: Option<&'p str>,
}

/// A chosen node and what it grants.
#[derive(Debug)]
pub(crate) struct Picked<'a> {
    pub(crate) node: &'a Node,
    pub(crate) resources: AllocatedResources,
    pub(crate) metric: AllocMetric,
    cand: usize,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Filter {
    Feasibility(Reason),
    JobDistinct(DistinctReason),
    GroupDistinct(DistinctReason),
}

/// One task group's prepared checks and scorers.
#[derive(Debug)]
pub(crate) struct GroupPlacer<'a> {
    job: &'a Job,
    pub(crate) tg: &'a TaskGroup,
    pub(crate) ask: Ask,
    feas: Feasibility,
    distinct: Distinct,
    affinities: Affinities,
    spreads: Spreads,
    tg_counts: Vec<u32>,
    limit: usize,
    /// Scratch for one placement's scored candidates, reused.
    found: Vec<(usize, Score)>,
    skipped: Vec<(usize, Score)>,
    tally: Tally,
}

impl<'a> GroupPlacer<'a> {
    /// Prepares `tg` against the cluster, counting the group's allocations
    /// that stay.
    pub(crate) fn new<S: StateView + ?Sized>(
        cluster: &Cluster<'a, S>,
        tg: &'a TaskGroup,
    ) -> GroupPlacer<'a> {
        let job = cluster.job;
        let ask = Ask::new(tg);
        let feas = Feasibility::new(job, tg, &ask);
        let mut distinct = Distinct::new(tg.constraints.iter());
        let affinities = Affinities::new(job, tg);
        let mut spreads = Spreads::new(job, tg, &cluster.nodes);
        let mut tg_counts = vec![0; cluster.nodes.len()];
        let need_nodes = !distinct.is_empty() || !spreads.is_empty();
        for a in cluster.state.allocs_by_job(&job.id) {
            if a.task_group != tg.name || a.is_terminal() || cluster.is_stopping(&a.id) {
                continue;
            }
            let cand = cluster.candidate(&a.node_id);
            if let Some(i) = cand {
                tg_counts[i] += 1;
            }
            if !need_nodes {
                continue;
            }
            let node = match cand {
                Some(i) => Some(cluster.nodes[i]),
                None => cluster.state.node(&a.node_id),
            };
            if let Some(node) = node {
                distinct.record(node);
                spreads.record_node(node);
            }
        }
        let widened = !spreads.is_empty() || !affinities.is_empty();
        let limit = cluster
            .config
            .candidate_limit(job.job_type, cluster.nodes.len(), widened);
        GroupPlacer {
            job,
            tg,
            ask,
            feas,
            distinct,
            affinities,
            spreads,
            tg_counts,
            limit,
            found: Vec::new(),
            skipped: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// Frees a running allocation of this group that a placement replaces
    /// (see [`GroupPlacer::reclaim`]).
    pub(crate) fn release<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        a: &Allocation,
    ) -> bool {
        if !cluster.release(a) {
            return false;
        }
        if let Some(i) = cluster.candidate(&a.node_id) {
            self.tg_counts[i] = self.tg_counts[i].saturating_sub(1);
        }
        if let Some(node) = cluster.state.node(&a.node_id) {
            self.distinct.unrecord(node);
            self.spreads.unrecord_node(node);
        }
        true
    }

    /// Takes back an allocation [`GroupPlacer::release`] freed, when its
    /// replacement could not be placed.
    pub(crate) fn reclaim<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        a: &Allocation,
    ) {
        cluster.reclaim(a);
        if let Some(i) = cluster.candidate(&a.node_id) {
            self.tg_counts[i] += 1;
        }
        if let Some(node) = cluster.state.node(&a.node_id) {
            self.distinct.record(node);
            self.spreads.record_node(node);
        }
    }

    /// Whether feasibility depends on more than the computed class.
    pub(crate) fn escaped<S: StateView + ?Sized>(&self, cluster: &Cluster<'a, S>) -> bool {
        self.feas.escaped || self.distinct.is_escaped() || cluster.job_distinct.is_escaped()
    }

    /// This group's verdict for a class seen during placement.
    pub(crate) fn class_verdict(&self, class: u32) -> Option<bool> {
        self.feas.class_verdict_of(class)
    }

    /// Whether `node` (any node, candidate or not) still satisfies the
    /// group's node requirements, for in-place updates.
    pub(crate) fn feasible_on(&self, node: &Node) -> bool {
        pool_matches(&self.job.node_pool, &node.node_pool)
            && datacenter_matches(&self.job.datacenters, &node.datacenter)
            && self.feas.check_uncached(node, &self.ask).is_ok()
    }

    fn evaluate<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        i: usize,
        opts: &SelectOptions<'_>,
    ) -> Result<Score, Result<Filter, Exhausted>> {
        let node = cluster.nodes[i];
        let class = cluster.class_of[i];
        self.feas
            .check(node, class, &self.ask)
            .map_err(|r| Ok(Filter::Feasibility(r)))?;
        cluster
            .job_distinct
            .check(node, cluster.job_counts[i])
            .map_err(|r| Ok(Filter::JobDistinct(r)))?;
        self.distinct
            .check(node, self.tg_counts[i])
            .map_err(|r| Ok(Filter::GroupDistinct(r)))?;
        let algorithm = cluster.config.algorithm;
        let cap = cluster.caps[i];
        let slot = cluster.slot(i);
        slot.usage
            .check(node, &cap, &self.ask, &slot.reserved_ports)
            .map_err(Err)?;
        let mut score = Score::default();
        score.push(
            0,
            fit_score(
                algorithm,
                cap.cpu,
                cap.memory_mb,
                slot.usage.cpu + cap.cpu_of(&self.ask),
                slot.usage.memory_mb + self.ask.memory_mb,
            ),
        );
        if let Some(p) = anti_affinity(self.tg_counts[i], self.tg.count) {
            score.push(1, p);
        }
        // Touch the node record (a likely cache miss) only when needed.
        if !opts.penalty_nodes.is_empty() && opts.penalty_nodes.contains(&node.id.as_str()) {
            score.push(2, -1.0);
        }
        let a = self.affinities.score(node, class);
        if a != 0.0 {
            score.push(3, a);
        }
        if !self.spreads.is_empty() {
            let s = self.spreads.score(i);
            if s != 0.0 {
                score.push(4, s);
            }
        }
        score.finish();
        Ok(score)
    }

    /// Picks a node for one allocation of the group, or explains why none
    /// fits.
    pub(crate) fn select<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        opts: &SelectOptions<'_>,
    ) -> Result<Picked<'a>, Box<AllocMetric>> {
        let mut tally = std::mem::take(&mut self.tally);
        let mut found = std::mem::take(&mut self.found);
        let mut skipped = std::mem::take(&mut self.skipped);
        tally.reset(self.feas.reason_count());
        found.clear();
        skipped.clear();
        let result = self.scan(cluster, opts, &mut tally, &mut found, &mut skipped);
        self.tally = tally;
        self.found = found;
        self.skipped = skipped;
        result
    }

    fn scan<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        opts: &SelectOptions<'_>,
        tally: &mut Tally,
        found: &mut Vec<(usize, Score)>,
        skipped: &mut Vec<(usize, Score)>,
    ) -> Result<Picked<'a>, Box<AllocMetric>> {
        if let Some(i) = opts.preferred_node.and_then(|id| cluster.candidate(id)) {
            tally.evaluated += 1;
            match self.evaluate(cluster, i, opts) {
                Ok(score) => return self.grant(cluster, i, tally, &[(i, score)]),
                Err(outcome) => self.count(tally, cluster.class_of[i], outcome),
            }
        }
        let n = cluster.nodes.len();
        let mut visited = 0;
        while visited < n && found.len() < self.limit {
            let i = cluster.offset;
            cluster.offset = (i + 1) % n;
            visited += 1;
            tally.evaluated += 1;
            match self.evaluate(cluster, i, opts) {
                Ok(score) => {
                    if score.norm <= 0.0 && skipped.len() < cluster.config.max_skip {
                        skipped.push((i, score));
                    } else {
                        found.push((i, score));
                    }
                }
                Err(outcome) => self.count(tally, cluster.class_of[i], outcome),
            }
        }
        if found.len() < self.limit {
            let room = self.limit - found.len();
            found.extend(skipped.drain(..).take(room));
        }
        if found.is_empty() {
            return Err(Box::new(self.metric(cluster, tally, &[])));
        }
        // The best first (ties: the first seen); the rest ordered only as
        // far as the metrics keep them.
        let keep = cluster.config.retained_scores.max(1).min(found.len());
        if keep == 1 {
            let best = (0..found.len())
                .reduce(|b, j| {
                    if found[j].1.norm > found[b].1.norm {
                        j
                    } else {
                        b
                    }
                })
                .unwrap_or(0);
            found.swap(0, best);
        } else {
            found.sort_by(|a, b| b.1.norm.total_cmp(&a.1.norm));
        }
        let best = found[0].0;
        self.grant(cluster, best, tally, &found[..keep])
    }

    /// Places on one given candidate (system jobs), or explains why not.
    pub(crate) fn select_node<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        i: usize,
    ) -> Result<Picked<'a>, Box<AllocMetric>> {
        let mut tally = Tally::sized(self.feas.reason_count());
        tally.evaluated = 1;
        match self.evaluate(cluster, i, &SelectOptions::default()) {
            Ok(score) => self.grant(cluster, i, &tally, &[(i, score)]),
            Err(outcome) => {
                self.count(&mut tally, cluster.class_of[i], outcome);
                Err(Box::new(self.metric(cluster, &tally, &[])))
            }
        }
    }

    /// Whether a candidate was filtered by its node's requirements (as
    /// opposed to being full): system jobs only count the latter as
    /// failures.
    pub(crate) fn is_filtered(metric: &AllocMetric) -> bool {
        metric.nodes_filtered > 0 && metric.nodes_exhausted == 0
    }

    fn grant<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        i: usize,
        tally: &Tally,
        ranked: &[(usize, Score)],
    ) -> Result<Picked<'a>, Box<AllocMetric>> {
        let node = cluster.nodes[i];
        cluster.slot(i);
        let fitted = match cluster.slots[i].as_ref() {
            Some(slot) => slot
                .usage
                .fit(node, &self.ask, &slot.reserved_ports, &mut cluster.rng),
            None => Err(Exhausted::Cpu),
        };
        let resources = match fitted {
            Ok(r) => r,
            Err(dim) => {
                let evaluated = tally.evaluated;
                let mut tally = Tally::sized(self.feas.reason_count());
                tally.evaluated = evaluated;
                self.count(&mut tally, cluster.class_of[i], Err(dim));
                return Err(Box::new(self.metric(cluster, &tally, &[])));
            }
        };
        let metric = self.metric(cluster, tally, ranked);
        Ok(Picked {
            node,
            resources,
            metric,
            cand: i,
        })
    }

    /// Records a placement so later ones see it.
    pub(crate) fn commit<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        picked: &Picked<'a>,
    ) {
        let i = picked.cand;
        let node = picked.node;
        let _ = cluster.slot(i).usage.add(node, &picked.resources);
        cluster.job_counts[i] += 1;
        cluster.job_distinct.record(node);
        self.tg_counts[i] += 1;
        self.distinct.record(node);
        self.spreads.record_candidate(i);
    }
}
