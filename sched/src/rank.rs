//! Ranking a feasible node for one placement. Each scorer yields a
//! component, and the node's score is the mean of the components present
//! (Nomad's normalisation):
//!
//! - `binpack`, always: Nomad's fit score. With `free_cpu` and `free_mem`
//!   the fractions of the node's allocatable cpu and memory left *after*
//!   the placement, `total = 10^free_cpu + 10^free_mem`; bin packing scores
//!   `20 - total`, the spread algorithm `total - 2`, both clamped to
//!   `0..=18` and divided by 18. Exponentials make a node that is nearly
//!   full in either dimension much more attractive to pack (or to avoid).
//! - `job-anti-affinity`, when the node already runs `c > 0` allocations of
//!   the same group: `-(c + 1) / count`.
//! - `node-reschedule-penalty`, `-1` on nodes a rescheduled allocation
//!   failed on.
//! - `node-affinity`, when non-zero: the summed weights of matching
//!   affinities over the summed absolute weights, in `-1..=1`.
//! - `allocation-spread`, when non-zero: per spread, how far the node's
//!   value is below its desired count, `(desired - (used + 1)) / desired`,
//!   times the spread's share of the total spread weight; `-1` for a node
//!   without the attribute or a value with no share. Two deliberate
//!   departures from Nomad: each term is clamped to `-1..=1` so a badly
//!   over-used value cannot drown every other component, and an even spread
//!   (no targets) gives each value present among the candidate nodes an
//!   equal share, and values not listed in targets share the remainder
//!   together rather than each claiming all of it.

use std::collections::HashMap;

use wren_model::{Job, Node, Spread, TaskGroup};

use crate::constraint::{Check, Target};

/// How free capacity is valued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Fill nodes up before using empty ones (Nomad's default).
    #[default]
    Binpack,
    /// Prefer the emptiest nodes.
    Spread,
}

/// Names of the score components, as in Nomad's metrics.
pub(crate) const COMPONENTS: [&str; 5] = [
    "binpack",
    "job-anti-affinity",
    "node-reschedule-penalty",
    "node-affinity",
    "allocation-spread",
];

/// A node's components and their mean.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Score {
    pub(crate) parts: [f64; 5],
    pub(crate) present: u8,
    pub(crate) norm: f64,
}

impl Score {
    pub(crate) fn push(&mut self, component: usize, value: f64) {
        if let Some(p) = self.parts.get_mut(component) {
            *p = value;
            self.present |= 1 << component;
        }
    }

    pub(crate) fn finish(&mut self) {
        let n = self.present.count_ones();
        let sum: f64 = (0..COMPONENTS.len())
            .filter(|i| self.present & (1 << i) != 0)
            .map(|i| self.parts[i])
            .sum();
        self.norm = if n == 0 { 0.0 } else { sum / f64::from(n) };
    }

    /// The components present, by name.
    pub(crate) fn named(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        COMPONENTS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.present & (1 << i) != 0)
            .map(|(i, name)| (*name, self.parts[i]))
    }
}

/// The fit component, in `0..=1`.
pub(crate) fn fit_score(
    algorithm: Algorithm,
    cap_cpu: u64,
    cap_mem: u64,
    cpu: u64,
    mem: u64,
) -> f64 {
    let free = |used: u64, cap: u64| {
        if cap == 0 {
            0.0
        } else {
            (1.0 - used as f64 / cap as f64).clamp(0.0, 1.0)
        }
    };
    // 10^x as e^(x ln 10): exp is cheaper than powf.
    let total = (free(cpu, cap_cpu) * std::f64::consts::LN_10).exp()
        + (free(mem, cap_mem) * std::f64::consts::LN_10).exp();
    let raw = match algorithm {
        Algorithm::Binpack => 20.0 - total,
        Algorithm::Spread => total - 2.0,
    };
    raw.clamp(0.0, 18.0) / 18.0
}

/// The job anti-affinity component for a node already running
/// `collisions` allocations of a group of `count`.
pub(crate) fn anti_affinity(collisions: u32, count: u32) -> Option<f64> {
    (collisions > 0).then(|| -f64::from(collisions + 1) / f64::from(count.max(1)))
}

/// Node affinities of a group (job, group and task affinities together),
/// cached per computed class unless one targets a unique attribute.
#[derive(Debug)]
pub(crate) struct Affinities {
    checks: Vec<Check>,
    sum_abs: f64,
    escaped: bool,
    cache: Vec<f64>,
}

impl Affinities {
    pub(crate) fn new(job: &Job, tg: &TaskGroup) -> Affinities {
        let checks: Vec<Check> = job
            .affinities
            .iter()
            .chain(tg.affinities.iter())
            .chain(tg.tasks.iter().flat_map(|t| t.affinities.iter()))
            .map(Check::affinity)
            .collect();
        Affinities {
            sum_abs: checks.iter().map(|c| f64::from(c.weight).abs()).sum(),
            escaped: checks.iter().any(Check::is_escaped),
            checks,
            cache: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.checks.is_empty() || self.sum_abs == 0.0
    }

    /// The component for a node of class `class`.
    pub(crate) fn score(&mut self, node: &Node, class: u32) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        if !self.escaped
            && let Some(v) = self.cache.get(class as usize).filter(|v| !v.is_nan())
        {
            return *v;
        }
        let got: f64 = self
            .checks
            .iter()
            .filter(|c| c.node_matches(node))
            .map(|c| f64::from(c.weight))
            .sum();
        let v = got / self.sum_abs;
        if !self.escaped {
            let c = class as usize;
            if self.cache.len() <= c {
                self.cache.resize(c + 1, f64::NAN);
            }
            self.cache[c] = v;
        }
        v
    }
}

const MISSING: u32 = u32::MAX;

/// One spread block's bookkeeping.
#[derive(Debug)]
struct SpreadState {
    target: Target,
    share: f64,
    ids: Values,
    /// Per candidate node: its value's id or [`MISSING`].
    node_value: Vec<u32>,
    used: Vec<u32>,
    /// Per value id: desired count; NaN when the value is not a target.
    desired: Vec<f64>,
    /// Desired count shared by the values not listed (None: no share).
    rest: Option<f64>,
    rest_used: u32,
    targeted: bool,
}

/// A spread's values, interned to small integers.
#[derive(Debug, Default)]
struct Values {
    names: Vec<String>,
    /// Used once there are too many values to scan.
    ids: HashMap<String, u32>,
}

/// Below this many values a linear scan beats hashing.
const SCAN: usize = 16;

impl Values {
    fn get(&self, value: &str) -> Option<u32> {
        if self.names.len() <= SCAN {
            self.names.iter().position(|n| n == value).map(|i| i as u32)
        } else {
            self.ids.get(value).copied()
        }
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// The id of a spread value, added (unused, no share) when new.
fn intern(values: &mut Values, used: &mut Vec<u32>, desired: &mut Vec<f64>, value: &str) -> u32 {
    if let Some(id) = values.get(value) {
        return id;
    }
    let id = values.names.len() as u32;
    values.names.push(value.to_owned());
    if values.names.len() > SCAN {
        if values.ids.is_empty() {
            for (i, n) in values.names.iter().enumerate() {
                values.ids.insert(n.clone(), i as u32);
            }
        } else {
            values.ids.insert(value.to_owned(), id);
        }
    }
    used.push(0);
    desired.push(f64::NAN);
    id
}

impl SpreadState {
    fn id(&mut self, value: &str) -> u32 {
        intern(&mut self.ids, &mut self.used, &mut self.desired, value)
    }

    fn score(&self, cand: usize) -> f64 {
        let v = self.node_value.get(cand).copied().unwrap_or(MISSING);
        if v == MISSING {
            return -1.0;
        }
        let used = self.used.get(v as usize).copied().unwrap_or(0);
        let desired = self.desired.get(v as usize).copied().unwrap_or(f64::NAN);
        let (desired, used) = if desired.is_nan() {
            match self.rest {
                Some(d) if self.targeted => (d, self.rest_used),
                _ => return -1.0,
            }
        } else {
            (desired, used)
        };
        if desired <= 0.0 {
            return -1.0;
        }
        let boost = ((desired - f64::from(used + 1)) / desired).clamp(-1.0, 1.0);
        boost * self.share
    }

    fn unrecord(&mut self, value: u32) {
        if let Some(u) = self.used.get_mut(value as usize) {
            *u = u.saturating_sub(1);
        }
        if self.targeted && self.desired.get(value as usize).is_some_and(|d| d.is_nan()) {
            self.rest_used = self.rest_used.saturating_sub(1);
        }
    }

    fn record(&mut self, value: u32) {
        if let Some(u) = self.used.get_mut(value as usize) {
            *u += 1;
        }
        if self.targeted && self.desired.get(value as usize).is_some_and(|d| d.is_nan()) {
            self.rest_used += 1;
        }
    }
}

/// The spreads of a group (its own and the job's).
#[derive(Debug, Default)]
pub(crate) struct Spreads {
    states: Vec<SpreadState>,
}

impl Spreads {
    /// Prepares the spreads of `tg` for `candidates`, the nodes that may be
    /// scored. Group spreads override job spreads on the same attribute.
    pub(crate) fn new(job: &Job, tg: &TaskGroup, candidates: &[&Node]) -> Spreads {
        let mut all: Vec<&Spread> = tg.spreads.iter().collect();
        for s in &job.spreads {
            if !all.iter().any(|x| x.attribute == s.attribute) {
                all.push(s);
            }
        }
        let weights: f64 = all.iter().map(|s| f64::from(s.weight)).sum();
        let count = f64::from(tg.count);
        let states = all
            .into_iter()
            .map(|s| {
                let mut st = SpreadState {
                    target: Target::parse(&s.attribute),
                    share: if weights > 0.0 {
                        f64::from(s.weight) / weights
                    } else {
                        0.0
                    },
                    ids: Values::default(),
                    node_value: Vec::with_capacity(candidates.len()),
                    used: Vec::new(),
                    desired: Vec::new(),
                    rest: None,
                    rest_used: 0,
                    targeted: !s.targets.is_empty(),
                };
                for node in candidates {
                    let v = match st.target.node_value(node) {
                        Some(v) => intern(&mut st.ids, &mut st.used, &mut st.desired, &v),
                        None => MISSING,
                    };
                    st.node_value.push(v);
                }
                if st.targeted {
                    let mut listed = 0u32;
                    for t in &s.targets {
                        let id = st.id(&t.value);
                        if let Some(d) = st.desired.get_mut(id as usize) {
                            *d = f64::from(t.percent) / 100.0 * count;
                        }
                        listed += u32::from(t.percent);
                    }
                    if listed < 100 {
                        st.rest = Some(f64::from(100 - listed) / 100.0 * count);
                    }
                } else {
                    let values = st.ids.len();
                    if values > 0 {
                        let each = count / values as f64;
                        st.desired.iter_mut().for_each(|d| *d = each);
                    }
                }
                st
            })
            .collect();
        Spreads { states }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Counts an allocation of the group that stays on `node` (which may
    /// not be a candidate).
    pub(crate) fn record_node(&mut self, node: &Node) {
        for st in &mut self.states {
            if let Some(v) = st.target.node_value(node) {
                let id = intern(&mut st.ids, &mut st.used, &mut st.desired, &v);
                if !st.targeted && st.desired.get(id as usize).is_some_and(|d| d.is_nan()) {
                    // A value seen only on a non-candidate node: no share.
                    if let Some(d) = st.desired.get_mut(id as usize) {
                        *d = 0.0;
                    }
                }
                st.record(id);
            }
        }
    }

    /// Forgets an allocation of the group on `node` (it is being replaced).
    pub(crate) fn unrecord_node(&mut self, node: &Node) {
        for st in &mut self.states {
            if let Some(v) = st.target.node_value(node)
                && let Some(id) = st.ids.get(v.as_ref())
            {
                st.unrecord(id);
            }
        }
    }

    /// Counts a placement on candidate `cand`.
    pub(crate) fn record_candidate(&mut self, cand: usize) {
        for st in &mut self.states {
            let v = st.node_value.get(cand).copied().unwrap_or(MISSING);
            if v != MISSING {
                st.record(v);
            }
        }
    }

    /// The component for candidate `cand`.
    pub(crate) fn score(&self, cand: usize) -> f64 {
        self.states.iter().map(|s| s.score(cand)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{Affinity, Operator, SpreadTarget};

    #[test]
    fn binpack_prefers_fuller_nodes_and_spread_the_reverse() {
        let empty = fit_score(Algorithm::Binpack, 1000, 1000, 100, 100);
        let full = fit_score(Algorithm::Binpack, 1000, 1000, 900, 900);
        assert!(full > empty, "{full} > {empty}");
        assert!((fit_score(Algorithm::Binpack, 1000, 1000, 1000, 1000) - 1.0).abs() < 1e-9);
        let s_empty = fit_score(Algorithm::Spread, 1000, 1000, 100, 100);
        let s_full = fit_score(Algorithm::Spread, 1000, 1000, 900, 900);
        assert!(s_empty > s_full);
        assert_eq!(fit_score(Algorithm::Binpack, 0, 0, 0, 0), 1.0);
    }

    #[test]
    fn anti_affinity_grows_with_collisions() {
        assert_eq!(anti_affinity(0, 3), None);
        assert_eq!(anti_affinity(1, 4), Some(-0.5));
        assert_eq!(anti_affinity(3, 4), Some(-1.0));
    }

    #[test]
    fn normalisation_is_the_mean_of_present_parts() {
        let mut s = Score::default();
        s.push(0, 0.5);
        s.push(3, -1.0);
        s.finish();
        assert!((s.norm - -0.25).abs() < 1e-12);
        assert_eq!(s.named().count(), 2);
    }

    fn dc_node(dc: &str) -> Node {
        let mut n = Node {
            datacenter: dc.into(),
            ..Node::default()
        };
        n.meta.insert("zone".into(), dc.into());
        n
    }

    #[test]
    fn spread_targets_pull_toward_their_share() {
        let tg = TaskGroup {
            count: 10,
            spreads: vec![Spread {
                attribute: "${meta.zone}".into(),
                weight: 100,
                targets: vec![
                    SpreadTarget {
                        value: "a".into(),
                        percent: 70,
                    },
                    SpreadTarget {
                        value: "b".into(),
                        percent: 20,
                    },
                ],
            }],
            ..TaskGroup::default()
        };
        let nodes = [
            dc_node("a"),
            dc_node("b"),
            dc_node("c"),
            dc_node("d"),
            Node::default(),
        ];
        let refs: Vec<&Node> = nodes.iter().collect();
        let mut s = Spreads::new(&Job::default(), &tg, &refs);
        assert!((s.score(0) - 6.0 / 7.0).abs() < 1e-9);
        assert!((s.score(1) - 0.5).abs() < 1e-9);
        assert!(
            (s.score(2) - 0.0).abs() < 1e-9,
            "c shares the remaining 10% (1 alloc)"
        );
        assert_eq!(s.score(4), -1.0, "no datacenter");
        s.record_candidate(2);
        assert!(s.score(3) < 0.0, "d and c share the rest, now used up");
        for _ in 0..7 {
            s.record_candidate(0);
        }
        assert!(s.score(0) < s.score(1));
    }

    #[test]
    fn even_spread_balances_values() {
        let tg = TaskGroup {
            count: 4,
            spreads: vec![Spread {
                attribute: "${node.datacenter}".into(),
                weight: 50,
                targets: vec![],
            }],
            ..TaskGroup::default()
        };
        let nodes = [dc_node("a"), dc_node("b")];
        let refs: Vec<&Node> = nodes.iter().collect();
        let mut s = Spreads::new(&Job::default(), &tg, &refs);
        assert_eq!(s.score(0), s.score(1));
        s.record_candidate(0);
        assert!(s.score(1) > s.score(0));
        s.record_node(&dc_node("b"));
        assert_eq!(s.score(0), s.score(1));
    }

    #[test]
    fn many_values_switch_to_hashing() {
        let tg = TaskGroup {
            count: 40,
            spreads: vec![Spread {
                attribute: "${meta.zone}".into(),
                weight: 10,
                targets: vec![],
            }],
            ..TaskGroup::default()
        };
        let nodes: Vec<Node> = (0..40).map(|i| dc_node(&format!("z{i}"))).collect();
        let refs: Vec<&Node> = nodes.iter().collect();
        let mut s = Spreads::new(&Job::default(), &tg, &refs);
        for i in 0..40 {
            assert_eq!(s.score(i), 0.0, "each value's share is one allocation");
        }
        s.record_node(&dc_node("z33"));
        assert!(s.score(33) < 0.0);
        assert_eq!(s.score(32), 0.0);
        s.unrecord_node(&dc_node("z33"));
        assert_eq!(s.score(33), 0.0);
    }

    #[test]
    fn affinities_weigh_matches() {
        let job = Job {
            affinities: vec![
                Affinity {
                    attribute: "${node.datacenter}".into(),
                    operator: Operator::Eq,
                    value: "a".into(),
                    weight: 60,
                },
                Affinity {
                    attribute: "${meta.slow}".into(),
                    operator: Operator::Eq,
                    value: "yes".into(),
                    weight: -40,
                },
            ],
            ..Job::default()
        };
        let mut a = Affinities::new(&job, &TaskGroup::default());
        let mut slow_a = dc_node("a");
        slow_a.meta.insert("slow".into(), "yes".into());
        assert!((a.score(&dc_node("a"), 0) - 0.6).abs() < 1e-9);
        assert!((a.score(&slow_a, 1) - 0.2).abs() < 1e-9);
        assert!((a.score(&dc_node("b"), 2)).abs() < 1e-9);
        assert!(
            (a.score(&dc_node("b"), 0) - 0.6).abs() < 1e-9,
            "cached per class"
        );
    }
}
