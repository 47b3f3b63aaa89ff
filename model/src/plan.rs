//! The plan: what a scheduler worker wants to change, and what the leader's
//! plan applier accepted.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::alloc::Allocation;
use crate::deployment::{Deployment, DeploymentStatusUpdate};
use crate::eval::{AllocMetric, EvalId};
use crate::job::JobId;
use crate::node::NodeId;

/// A worker's proposal, verified and applied by the leader.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Plan {
    /// The evaluation being worked on.
    #[n(0)]
    pub eval_id: EvalId,
    /// Token proving the worker still holds the evaluation.
    #[n(1)]
    pub eval_token: String,
    /// The job's priority.
    #[n(2)]
    pub priority: u8,
    /// Apply all of it or nothing.
    #[n(3)]
    pub all_at_once: bool,
    /// The job and the version the plan is for.
    #[n(4)]
    pub job_id: JobId,
    /// The job version placements run.
    #[n(5)]
    pub job_version: u64,
    /// Allocations to stop or evict, by node.
    #[n(6)]
    pub node_update: BTreeMap<NodeId, Vec<Allocation>>,
    /// Allocations to create or update in place, by node.
    #[n(7)]
    pub node_allocation: BTreeMap<NodeId, Vec<Allocation>>,
    /// Allocations preempted to make room, by node.
    #[n(8)]
    pub node_preemptions: BTreeMap<NodeId, Vec<Allocation>>,
    /// A deployment to create or update.
    #[n(9)]
    pub deployment: Option<Deployment>,
    /// Status changes of existing deployments.
    #[n(10)]
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    /// For `job plan`: what would happen per group.
    #[n(11)]
    pub annotations: Option<PlanAnnotations>,
    /// The state index the plan was computed against.
    #[n(12)]
    pub snapshot_index: u64,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_no_op(&self) -> bool {
        self.node_update.values().all(Vec::is_empty)
            && self.node_allocation.values().all(Vec::is_empty)
            && self.node_preemptions.values().all(Vec::is_empty)
            && self.deployment.is_none()
            && self.deployment_updates.is_empty()
    }

    /// Every node the plan touches.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        let mut all: Vec<&NodeId> = self
            .node_update
            .keys()
            .chain(self.node_allocation.keys())
            .chain(self.node_preemptions.keys())
            .collect();
        all.sort();
        all.dedup();
        all.into_iter()
    }
}

/// What the plan applier did with a plan.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct PlanResult {
    /// Stops that were committed, by node.
    #[n(0)]
    pub node_update: BTreeMap<NodeId, Vec<Allocation>>,
    /// Placements that were committed, by node.
    #[n(1)]
    pub node_allocation: BTreeMap<NodeId, Vec<Allocation>>,
    /// Preemptions that were committed, by node.
    #[n(2)]
    pub node_preemptions: BTreeMap<NodeId, Vec<Allocation>>,
    /// The deployment committed.
    #[n(3)]
    pub deployment: Option<Deployment>,
    /// Deployment status changes committed.
    #[n(4)]
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    /// Nodes whose part of the plan was rejected (no longer fits, not ready).
    #[n(5)]
    pub rejected_nodes: Vec<NodeId>,
    /// When non-zero, the worker must refresh its snapshot to at least this
    /// index before re-planning.
    #[n(6)]
    pub refresh_index: u64,
    /// The Raft index at which the result was committed.
    #[n(7)]
    pub alloc_index: u64,
}

impl PlanResult {
    /// Whether everything in the plan was committed.
    pub fn is_full_commit(&self, plan: &Plan) -> bool {
        let count = |m: &BTreeMap<NodeId, Vec<Allocation>>| m.values().map(Vec::len).sum::<usize>();
        self.rejected_nodes.is_empty()
            && count(&self.node_update) == count(&plan.node_update)
            && count(&self.node_allocation) == count(&plan.node_allocation)
    }
}

/// `job plan`'s per-group summary.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct PlanAnnotations {
    /// Per group: counts of each kind of change.
    #[n(0)]
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
    /// Per group: why placements failed.
    #[n(1)]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
}

/// Counts of changes to one group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DesiredUpdates {
    /// Unchanged.
    #[n(0)]
    pub ignore: u32,
    /// New placements.
    #[n(1)]
    pub place: u32,
    /// Moved off draining nodes.
    #[n(2)]
    pub migrate: u32,
    /// Stopped.
    #[n(3)]
    pub stop: u32,
    /// Updated without a restart.
    #[n(4)]
    pub in_place_update: u32,
    /// Replaced by a new version.
    #[n(5)]
    pub destructive_update: u32,
    /// Canaries placed.
    #[n(6)]
    pub canary: u32,
    /// Preempted.
    #[n(7)]
    pub preemptions: u32,
    /// Replacements for failed allocations.
    #[n(8)]
    pub reschedule_now: u32,
    /// Replacements scheduled for later.
    #[n(9)]
    pub reschedule_later: u32,
    /// Disconnected allocations reconnecting.
    #[n(10)]
    pub reconnect: u32,
}
