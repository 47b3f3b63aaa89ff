//! Node liveness on the leader: heartbeat TTLs ([`wren_sched::heartbeat`],
//! scaled to the number of clients like Nomad's, plus
//! `server.heartbeat_grace`), and what happens when one is missed.
//!
//! A node that misses its TTL is marked `disconnected` when some of its
//! allocations tolerate a disconnect (`disconnect.lost_after`), else
//! `down`; either way with evaluations for every job that has allocations
//! on it. A disconnected node that stays silent for the longest
//! `lost_after` of its allocations is then marked `down`. A new leader
//! gives every live node the failover TTL to check in first.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use event_listener::Event;
use wren_model::{Duration, NodeId, NodeStatus, TriggeredBy};
use wren_sched::heartbeat::{HeartbeatConfig, Heartbeats};
use wren_state::{Command, State, UpdateNodeStatus};

use super::Shared;
use super::evals::jobs_on_node;

/// The leader's heartbeat timers; empty on followers.
#[derive(Debug)]
pub struct Liveness {
    config: HeartbeatConfig,
    inner: Mutex<Option<Timers>>,
    changed: Event,
}

#[derive(Debug)]
struct Timers {
    beats: Heartbeats,
    /// Disconnected nodes and when they are marked down.
    disconnected: BTreeMap<NodeId, i64>,
}

impl Liveness {
    /// Idle until [`Liveness::enable`].
    pub fn new(config: HeartbeatConfig) -> Liveness {
        Liveness {
            config,
            inner: Mutex::new(None),
            changed: Event::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Timers>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new leader: every node not already down gets the failover TTL.
    pub fn enable(&self, state: &State, now: i64) {
        let mut beats = Heartbeats::new(self.config.clone(), crate::ids::random_u64());
        beats.initialize(
            state
                .nodes()
                .filter(|n| n.status != NodeStatus::Down)
                .map(|n| n.id.as_str()),
            now,
        );
        *self.lock() = Some(Timers {
            beats,
            disconnected: BTreeMap::new(),
        });
        self.changed.notify(usize::MAX);
    }

    /// Leadership lost.
    pub fn disable(&self) {
        *self.lock() = None;
        self.changed.notify(usize::MAX);
    }

    /// Whether the timers run (this server leads).
    pub fn is_enabled(&self) -> bool {
        self.lock().is_some()
    }

    /// A heartbeat (or registration) from `node`: the TTL to hand back,
    /// or `None` when this server does not lead.
    pub fn beat(&self, node: &str, now: i64) -> Option<Duration> {
        let mut g = self.lock();
        let t = g.as_mut()?;
        t.disconnected.remove(node);
        let ttl = t.beats.heartbeat(node, now);
        drop(g);
        self.changed.notify(usize::MAX);
        Some(ttl)
    }

    /// Stops watching `node` (it is down).
    fn forget(&self, node: &str) {
        if let Some(t) = self.lock().as_mut() {
            t.beats.remove(node);
            t.disconnected.remove(node);
        }
    }

    /// Marks `node` down at `deadline` unless it beats before.
    fn down_at(&self, node: &str, deadline: i64) {
        if let Some(t) = self.lock().as_mut() {
            t.beats.remove(node);
            t.disconnected.insert(node.to_owned(), deadline);
        }
        self.changed.notify(usize::MAX);
    }

    /// The nodes whose time ran out at `now`, with whether they were
    /// already disconnected.
    fn expired(&self, now: i64) -> Vec<(NodeId, bool)> {
        let mut g = self.lock();
        let Some(t) = g.as_mut() else {
            return Vec::new();
        };
        let mut out: Vec<(NodeId, bool)> = t
            .beats
            .expired(now)
            .into_iter()
            .map(|n| (n, false))
            .collect();
        let due: Vec<NodeId> = t
            .disconnected
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in due {
            t.disconnected.remove(&n);
            out.push((n, true));
        }
        out
    }

    fn next_deadline(&self) -> Option<i64> {
        let g = self.lock();
        let t = g.as_ref()?;
        let d = t.disconnected.values().min().copied();
        match (t.beats.next_deadline(), d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The leader's timer loop: marks nodes that missed their TTL.
pub async fn watch(shared: std::sync::Arc<Shared>) {
    let live = &shared.liveness;
    loop {
        let listener = live.changed.listen();
        let now = crate::ids::now_nanos();
        for (node, was_disconnected) in live.expired(now) {
            if let Err(e) = missed(&shared, &node, was_disconnected, now).await {
                eprintln!("wren server: marking node {node} after a missed heartbeat: {e}");
            }
        }
        let wait = live
            .next_deadline()
            .map_or(std::time::Duration::from_secs(60), |at| {
                std::time::Duration::from_nanos(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
            });
        let timer = async {
            smol::Timer::after(wait).await;
        };
        smol::future::or(listener, timer).await;
    }
}

/// One node missed its heartbeat TTL (or stayed disconnected too long).
async fn missed(
    shared: &Shared,
    node_id: &str,
    was_disconnected: bool,
    now: i64,
) -> Result<(), crate::wire::ApiError> {
    let state = shared.core.node.snapshot();
    let Some(node) = state.node(node_id) else {
        shared.liveness.forget(node_id);
        return Ok(());
    };
    if node.status == NodeStatus::Down {
        shared.liveness.forget(node_id);
        return Ok(());
    }
    let tolerated = if was_disconnected || node.status == NodeStatus::Disconnected {
        0
    } else {
        longest_lost_after(&state, node_id)
    };
    let (status, description) = if tolerated > 0 {
        (
            NodeStatus::Disconnected,
            "missed its heartbeat; allocations tolerate a disconnect".to_owned(),
        )
    } else {
        (NodeStatus::Down, "missed its heartbeat".to_owned())
    };
    let evals = jobs_on_node(&state, node_id, TriggeredBy::NodeUpdate, now);
    // Only as the leader whose timer ran out: a write forwarded to a new
    // leader would override the time it gives every node to check in.
    shared
        .core
        .node
        .write(Command::UpdateNodeStatus(UpdateNodeStatus {
            node_id: node_id.to_owned(),
            status,
            description,
            evals,
        }))
        .await
        .map_err(crate::server::core::write_error)?;
    if status == NodeStatus::Disconnected {
        let tolerated = i64::try_from(tolerated).unwrap_or(i64::MAX);
        shared
            .liveness
            .down_at(node_id, now.saturating_add(tolerated));
    } else {
        shared.liveness.forget(node_id);
    }
    Ok(())
}

/// The longest `disconnect.lost_after` among the groups of the live
/// allocations on a node, in nanoseconds (0: none tolerates it).
fn longest_lost_after(state: &State, node_id: &str) -> u64 {
    state
        .live_allocs_by_node(node_id)
        .filter_map(|a| {
            let job = state.job_version(&a.job_id, a.job_version)?;
            let d = job.group(&a.task_group)?.disconnect.as_ref()?;
            Some(d.lost_after.as_nanos())
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn disconnected_nodes_are_marked_down_later_unless_they_beat() {
        let live = Liveness::new(HeartbeatConfig {
            min_ttl: Duration::from_secs(1),
            grace: Duration::from_secs(1),
            ..HeartbeatConfig::default()
        });
        assert!(live.beat("a", 0).is_none(), "followers hand out no TTL");
        live.enable(&State::new(), 0);
        let ttl = live.beat("a", 0).unwrap();
        assert!(ttl >= Duration::from_secs(1) && ttl < Duration::from_secs(2));
        let deadline = live.next_deadline().unwrap();
        assert!(live.expired(deadline - 1).is_empty());
        assert_eq!(live.expired(deadline), vec![("a".to_owned(), false)]);
        live.down_at("a", 100 * S);
        assert_eq!(live.next_deadline(), Some(100 * S));
        live.beat("a", 50 * S);
        assert!(
            live.next_deadline().is_some_and(|d| d < 100 * S),
            "a heartbeat ends the disconnect: its TTL counts again"
        );
        assert_eq!(live.expired(100 * S), vec![("a".to_owned(), false)]);
        live.down_at("a", 200 * S);
        assert_eq!(live.expired(200 * S), vec![("a".to_owned(), true)]);
        live.disable();
        assert!(live.next_deadline().is_none());
    }
}
