//! Heartbeat TTLs and missed-heartbeat bookkeeping, with time passed in.
//!
//! Nomad's formula: the TTL handed to a client grows with the number of
//! clients so the leader sees at most `max_per_second` heartbeats a second
//! (`nodes / max_per_second` seconds, never below `min_ttl`), plus a random
//! stagger of up to the TTL itself so clients do not beat in lockstep. The
//! leader marks a node down when `ttl + grace` passes without a heartbeat.
//! A new leader gives every known node `failover_ttl` to check in first.

use std::collections::{BTreeSet, HashMap};

use wren_model::{Duration, NodeId};

use crate::rng::Rng;

/// Heartbeat tunables (Nomad's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// The most heartbeats a second the leader should process.
    pub max_per_second: f64,
    /// The shortest TTL handed out.
    pub min_ttl: Duration,
    /// Extra time the leader waits beyond the TTL.
    pub grace: Duration,
    /// What every node gets when a new leader takes over.
    pub failover_ttl: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> HeartbeatConfig {
        HeartbeatConfig {
            max_per_second: 50.0,
            min_ttl: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            failover_ttl: Duration::from_mins(5),
        }
    }
}

/// The TTL before stagger for a cluster of `nodes` clients.
pub fn rate_scaled_ttl(config: &HeartbeatConfig, nodes: usize) -> Duration {
    if config.max_per_second <= 0.0 || !config.max_per_second.is_finite() {
        return config.min_ttl;
    }
    let secs = nodes as f64 / config.max_per_second;
    let scaled = Duration((secs * 1e9).min(u64::MAX as f64) as u64);
    scaled.max(config.min_ttl)
}

/// Per-node heartbeat deadlines.
#[derive(Debug)]
pub struct Heartbeats {
    config: HeartbeatConfig,
    rng: Rng,
    deadlines: HashMap<NodeId, i64>,
    order: BTreeSet<(i64, NodeId)>,
}

impl Heartbeats {
    /// No nodes tracked yet; `seed` drives the stagger.
    pub fn new(config: HeartbeatConfig, seed: u64) -> Heartbeats {
        Heartbeats {
            config,
            rng: Rng::new(seed),
            deadlines: HashMap::new(),
            order: BTreeSet::new(),
        }
    }

    fn set(&mut self, node: &str, deadline: i64) {
        if let Some(old) = self.deadlines.insert(node.to_owned(), deadline) {
            self.order.remove(&(old, node.to_owned()));
        }
        self.order.insert((deadline, node.to_owned()));
    }

    /// A heartbeat from `node` at `now`: returns the TTL to hand back (the
    /// client beats again within it) and resets the node's deadline to
    /// `now + ttl + grace`.
    pub fn heartbeat(&mut self, node: &str, now: i64) -> Duration {
        let n = self.deadlines.len() + usize::from(!self.deadlines.contains_key(node));
        let base = rate_scaled_ttl(&self.config, n);
        let stagger = Duration(self.rng.below(base.as_nanos()));
        let ttl = Duration(base.as_nanos().saturating_add(stagger.as_nanos()));
        let deadline = now
            .saturating_add(ttl.as_nanos() as i64)
            .saturating_add(self.config.grace.as_nanos() as i64);
        self.set(node, deadline);
        ttl
    }

    /// A new leader: every node it knows as alive gets the failover TTL.
    pub fn initialize<'a>(&mut self, nodes: impl IntoIterator<Item = &'a str>, now: i64) {
        self.deadlines.clear();
        self.order.clear();
        let deadline = now.saturating_add(self.config.failover_ttl.as_nanos() as i64);
        for n in nodes {
            self.set(n, deadline);
        }
    }

    /// Stops tracking a node (deregistered, or already marked down).
    pub fn remove(&mut self, node: &str) {
        if let Some(d) = self.deadlines.remove(node) {
            self.order.remove(&(d, node.to_owned()));
        }
    }

    /// The nodes whose deadline passed at `now`, in deadline order; they
    /// are no longer tracked (the leader marks them down or disconnected).
    pub fn expired(&mut self, now: i64) -> Vec<NodeId> {
        let mut out = Vec::new();
        while let Some((d, _)) = self.order.first() {
            if *d > now {
                break;
            }
            if let Some((_, node)) = self.order.pop_first() {
                self.deadlines.remove(&node);
                out.push(node);
            }
        }
        out
    }

    /// The next deadline, to arm a timer.
    pub fn next_deadline(&self) -> Option<i64> {
        self.order.first().map(|(d, _)| *d)
    }

    /// The deadline of one node.
    pub fn deadline(&self, node: &str) -> Option<i64> {
        self.deadlines.get(node).copied()
    }

    /// How many nodes are tracked.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn ttl_scales_with_the_cluster() {
        let c = HeartbeatConfig::default();
        assert_eq!(rate_scaled_ttl(&c, 1), Duration::from_secs(10));
        assert_eq!(rate_scaled_ttl(&c, 500), Duration::from_secs(10));
        assert_eq!(rate_scaled_ttl(&c, 5_000), Duration::from_secs(100));
        let off = HeartbeatConfig {
            max_per_second: 0.0,
            ..HeartbeatConfig::default()
        };
        assert_eq!(rate_scaled_ttl(&off, 1_000_000), Duration::from_secs(10));
    }

    #[test]
    fn stagger_stays_within_one_ttl() {
        let mut h = Heartbeats::new(HeartbeatConfig::default(), 42);
        let mut seen = BTreeSet::new();
        for i in 0..50 {
            let ttl = h.heartbeat(&format!("n{i}"), 0);
            assert!(
                ttl >= Duration::from_secs(10) && ttl < Duration::from_secs(20),
                "{ttl}"
            );
            seen.insert(ttl);
        }
        assert!(seen.len() > 40, "staggered");
    }

    #[test]
    fn missed_ttls_expire_in_order() {
        let mut h = Heartbeats::new(HeartbeatConfig::default(), 1);
        let t1 = h.heartbeat("a", 0);
        h.heartbeat("b", 100 * S);
        let a_deadline = t1.as_nanos() as i64 + 10 * S;
        assert_eq!(h.deadline("a"), Some(a_deadline));
        assert_eq!(h.next_deadline(), Some(a_deadline));
        assert!(h.expired(a_deadline - 1).is_empty());
        assert_eq!(h.expired(a_deadline), vec!["a".to_owned()]);
        // A fresh heartbeat moves the deadline.
        h.heartbeat("b", 200 * S);
        assert!(h.expired(130 * S).is_empty());
        assert_eq!(h.expired(1_000 * S), vec!["b".to_owned()]);
        assert!(h.is_empty());
    }

    #[test]
    fn failover_gives_everyone_time() {
        let mut h = Heartbeats::new(HeartbeatConfig::default(), 1);
        h.initialize(["a", "b"], 0);
        assert_eq!(h.len(), 2);
        assert!(h.expired(299 * S).is_empty());
        h.remove("a");
        assert_eq!(h.expired(300 * S), vec!["b".to_owned()]);
    }
}
