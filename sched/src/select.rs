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
//! [`SchedConfig::candidate_limit`]), so its cost does not grow with the
//! cluster.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use wren_model::{AllocMetric, AllocatedResources, Allocation, Job, Node, NodeScore, TaskGroup};

use crate::config::SchedConfig;
use crate::distinct::{Distinct, DistinctReason};
use crate::feasible::{Feasibility, Reason, datacenter_matches, pool_matches};
use crate::rank::{Affinities, Score, Spreads, anti_affinity, fit_score};
use crate::rng::Rng;
use crate::state::StateView;
use crate::usage::{Ask, Exhausted, NodeUsage, parse_port_ranges};

/// A node's usage and parsed reserved ports.
#[derive(Debug)]
struct Slot {
    usage: NodeUsage,
    reserved_ports: Vec<(u16, u16)>,
}

/// The candidate nodes of one evaluation and what the plan has done to
/// them so far.
pub(crate) struct Cluster<'a, S: StateView + ?Sized> {
    pub(crate) state: &'a S,
    pub(crate) job: &'a Job,
    pub(crate) config: &'a SchedConfig,
    pub(crate) nodes: Vec<&'a Node>,
    class_of: Vec<u32>,
    pub(crate) class_names: Vec<Cow<'a, str>>,
    index_of: HashMap<&'a str, usize>,
    slots: Vec<Option<Slot>>,
    stopping: HashSet<String>,
    job_counts: Vec<u32>,
    job_distinct: Distinct,
    offset: usize,
    pub(crate) rng: Rng,
    nodes_in_pool: u32,
    /// Nodes of the pool outside the job's datacenters.
    other_dc: u32,
    /// Nodes of the pool not ready, ineligible or draining.
    unschedulable: u32,
    available: BTreeMap<String, u32>,
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
        let mut nodes = Vec::new();
        let mut classes: Vec<Cow<'a, str>> = Vec::new();
        let mut nodes_in_pool = 0;
        let (mut other_dc, mut unschedulable) = (0, 0);
        let mut available = BTreeMap::new();
        for node in state.nodes() {
            if !pool_matches(&job.node_pool, &node.node_pool) {
                continue;
            }
            nodes_in_pool += 1;
            if !datacenter_matches(&job.datacenters, &node.datacenter) {
                other_dc += 1;
                continue;
            }
            if !node.is_schedulable() {
                unschedulable += 1;
                continue;
            }
            *available.entry(node.datacenter.clone()).or_insert(0) += 1;
            nodes.push(node);
            classes.push(if node.computed_class.is_empty() {
                Cow::Owned(node.compute_class())
            } else {
                Cow::Borrowed(node.computed_class.as_str())
            });
        }
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        rng.shuffle(&mut order);
        let mut interned: HashMap<Cow<'a, str>, u32> = HashMap::new();
        let mut class_names = Vec::new();
        let mut class_of = Vec::with_capacity(nodes.len());
        let mut shuffled = Vec::with_capacity(nodes.len());
        let mut index_of = HashMap::with_capacity(nodes.len());
        for (pos, &i) in order.iter().enumerate() {
            let node: &'a Node = nodes[i];
            let name = std::mem::take(&mut classes[i]);
            let id = match interned.get(&name) {
                Some(&id) => id,
                None => {
                    let id = class_names.len() as u32;
                    class_names.push(name.clone());
                    interned.insert(name, id);
                    id
                }
            };
            class_of.push(id);
            shuffled.push(node);
            index_of.insert(node.id.as_str(), pos);
        }
        let n = shuffled.len();
        let mut cluster = Cluster {
            state,
            job,
            config,
            nodes: shuffled,
            class_of,
            class_names,
            index_of,
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
            if let Some(&i) = cluster.index_of.get(a.node_id.as_str()) {
                cluster.job_counts[i] += 1;
            }
            if let Some(node) = state.node(&a.node_id) {
                cluster.job_distinct.record(node);
            }
        }
        cluster
    }

    /// Frees what a running allocation holds because the plan replaces it.
    /// Returns whether anything was freed (terminal allocations hold
    /// nothing).
    fn release(&mut self, a: &Allocation) -> bool {
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
    fn reclaim(&mut self, a: &Allocation) {
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

    /// The candidate index of a node, if it is a candidate.
    pub(crate) fn candidate(&self, node_id: &str) -> Option<usize> {
        self.index_of.get(node_id).copied()
    }

    fn slot(&mut self, i: usize) -> &mut Slot {
        let node = self.nodes[i];
        let stopping = &self.stopping;
        let state = self.state;
        self.slots[i].get_or_insert_with(|| {
            let mut usage = NodeUsage::new(node);
            for a in state.allocs_by_node(&node.id) {
                if !a.is_terminal() && !stopping.contains(&a.id) {
                    // Existing overlaps are the plan verifier's concern;
                    // they are counted either way.
                    let _ = usage.add(node, &a.resources);
                }
            }
            Slot {
                usage,
                reserved_ports: parse_port_ranges(&node.reserved.ports),
            }
        })
    }

    fn base_metric(&self) -> AllocMetric {
        AllocMetric {
            nodes_in_pool: self.nodes_in_pool,
            ..AllocMetric::default()
        }
    }
}

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
enum Filter {
    Feasibility(Reason),
    JobDistinct(DistinctReason),
    GroupDistinct(DistinctReason),
}

/// Counts behind an [`AllocMetric`].
#[derive(Debug, Default)]
struct Tally {
    evaluated: u32,
    filtered: u32,
    exhausted: u32,
    feasibility: Vec<u32>,
    distinct: Vec<(bool, DistinctReason, u32)>,
    dims: Vec<(Exhausted, u32)>,
    class_filtered: Vec<(u32, u32)>,
    class_exhausted: Vec<(u32, u32)>,
}

fn bump<K: PartialEq>(v: &mut Vec<(K, u32)>, k: K) {
    match v.iter_mut().find(|(x, _)| *x == k) {
        Some((_, n)) => *n += 1,
        None => v.push((k, 1)),
    }
}

/// One task group's prepared checks and scorers.
#[derive(Debug)]
pub(crate) struct GroupPlacer<'a> {
    pub(crate) tg: &'a TaskGroup,
    pub(crate) ask: Ask,
    feas: Feasibility,
    distinct: Distinct,
    affinities: Affinities,
    spreads: Spreads,
    tg_counts: Vec<u32>,
    limit: usize,
}

impl<'a> GroupPlacer<'a> {
    /// Prepares `tg` against the cluster, counting the group's allocations
    /// that stay.
    pub(crate) fn new<S: StateView + ?Sized>(cluster: &Cluster<'a, S>, tg: &'a TaskGroup) -> GroupPlacer<'a> {
        let job = cluster.job;
        let ask = Ask::new(tg);
        let feas = Feasibility::new(job, tg, &ask);
        let mut distinct = Distinct::new(tg.constraints.iter());
        let affinities = Affinities::new(job, tg);
        let mut spreads = Spreads::new(job, tg, &cluster.nodes);
        let mut tg_counts = vec![0; cluster.nodes.len()];
        for a in cluster.state.allocs_by_job(&job.id) {
            if a.task_group != tg.name || a.is_terminal() || cluster.is_stopping(&a.id) {
                continue;
            }
            if let Some(i) = cluster.candidate(&a.node_id) {
                tg_counts[i] += 1;
            }
            if let Some(node) = cluster.state.node(&a.node_id) {
                distinct.record(node);
                spreads.record_node(node);
            }
        }
        let widened = !spreads.is_empty() || !affinities.is_empty();
        let limit = cluster
            .config
            .candidate_limit(job.job_type, cluster.nodes.len(), widened);
        GroupPlacer {
            tg,
            ask,
            feas,
            distinct,
            affinities,
            spreads,
            tg_counts,
            limit,
        }
    }

    /// Frees a running allocation of this group that a placement replaces
    /// (see [`GroupPlacer::reclaim`]).
    pub(crate) fn release<S: StateView + ?Sized>(&mut self, cluster: &mut Cluster<'a, S>, a: &Allocation) -> bool {
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
    pub(crate) fn reclaim<S: StateView + ?Sized>(&mut self, cluster: &mut Cluster<'a, S>, a: &Allocation) {
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
        self.feas.check_uncached(node, &self.ask).is_ok()
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
        let slot = cluster.slot(i);
        slot.usage.check(node, &self.ask, &slot.reserved_ports).map_err(Err)?;
        let cap = node.allocatable();
        let mut score = Score::default();
        score.push(
            0,
            fit_score(
                algorithm,
                u64::from(cap.cpu),
                cap.memory_mb,
                slot.usage.cpu + NodeUsage::ask_cpu(node, &self.ask),
                slot.usage.memory_mb + self.ask.memory_mb,
            ),
        );
        if let Some(p) = anti_affinity(self.tg_counts[i], self.tg.count) {
            score.push(1, p);
        }
        if opts.penalty_nodes.contains(&node.id.as_str()) {
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

    fn count(&self, tally: &mut Tally, class: u32, outcome: Result<Filter, Exhausted>) {
        match outcome {
            Ok(f) => {
                tally.filtered += 1;
                bump(&mut tally.class_filtered, class);
                match f {
                    Filter::Feasibility(r) => {
                        if tally.feasibility.is_empty() {
                            tally.feasibility = vec![0; self.feas.reason_count()];
                        }
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

    /// Picks a node for one allocation of the group, or explains why none
    /// fits.
    pub(crate) fn select<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        opts: &SelectOptions<'_>,
    ) -> Result<Picked<'a>, Box<AllocMetric>> {
        let mut tally = Tally::default();
        if let Some(i) = opts.preferred_node.and_then(|id| cluster.candidate(id)) {
            tally.evaluated += 1;
            match self.evaluate(cluster, i, opts) {
                Ok(score) => return self.grant(cluster, i, &tally, &[(i, score)]),
                Err(outcome) => self.count(&mut tally, cluster.class_of[i], outcome),
            }
        }
        let n = cluster.nodes.len();
        let mut found: Vec<(usize, Score)> = Vec::with_capacity(self.limit.min(64));
        let mut skipped: Vec<(usize, Score)> = Vec::new();
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
                Err(outcome) => self.count(&mut tally, cluster.class_of[i], outcome),
            }
        }
        if found.len() < self.limit {
            let room = self.limit - found.len();
            found.extend(skipped.into_iter().take(room));
        }
        if found.is_empty() {
            return Err(Box::new(self.metric(cluster, &tally, &[])));
        }
        found.sort_by(|a, b| b.1.norm.total_cmp(&a.1.norm));
        let best = found[0].0;
        self.grant(cluster, best, &tally, &found)
    }

    /// Places on one given candidate (system jobs), or explains why not.
    pub(crate) fn select_node<S: StateView + ?Sized>(
        &mut self,
        cluster: &mut Cluster<'a, S>,
        i: usize,
    ) -> Result<Picked<'a>, Box<AllocMetric>> {
        let mut tally = Tally {
            evaluated: 1,
            ..Tally::default()
        };
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
                let mut tally = Tally {
                    evaluated: tally.evaluated,
                    ..Tally::default()
                };
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
    pub(crate) fn commit<S: StateView + ?Sized>(&mut self, cluster: &mut Cluster<'a, S>, picked: &Picked<'a>) {
        let i = picked.cand;
        let node = picked.node;
        let _ = cluster.slot(i).usage.add(node, &picked.resources);
        cluster.job_counts[i] += 1;
        cluster.job_distinct.record(node);
        self.tg_counts[i] += 1;
        self.distinct.record(node);
        self.spreads.record_candidate(i);
    }

    fn metric<S: StateView + ?Sized>(&self, cluster: &Cluster<'a, S>, tally: &Tally, ranked: &[(usize, Score)]) -> AllocMetric {
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
            *m.dimension_exhausted.entry(dim.label(&self.ask)).or_insert(0) += n;
        }
        let class = |c: u32| cluster.class_names.get(c as usize).map_or_else(String::new, |s| s.to_string());
        for &(c, n) in &tally.class_filtered {
            *m.class_filtered.entry(class(c)).or_insert(0) += n;
        }
        for &(c, n) in &tally.class_exhausted {
            *m.class_exhausted.entry(class(c)).or_insert(0) += n;
        }
        if ranked.is_empty() {
            m.nodes_available.clone_from(&cluster.available);
            if cluster.nodes.is_empty() {
                if cluster.other_dc > 0 {
                    m.constraint_filtered
                        .insert("datacenter".into(), cluster.other_dc);
                }
                if cluster.unschedulable > 0 {
                    m.constraint_filtered
                        .insert("node status, eligibility or drain".into(), cluster.unschedulable);
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
