//! The evaluation: a request to reconcile a job with the cluster, and the
//! metrics of how placements were chosen.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::job::{JobId, JobType};
use crate::vecmap::VecMap;

/// An evaluation's id (a UUID).
pub type EvalId = String;

string_enum! {
    /// Where an evaluation is in its life.
    pub enum EvalStatus ("evaluation status") {
        /// Waiting for a worker.
        Pending = 0, "pending";
        /// Could not place everything; retried when capacity changes.
        Blocked = 1, "blocked";
        /// Done.
        Complete = 2, "complete";
        /// Gave up after its delivery limit.
        Failed = 3, "failed";
        /// Superseded by a newer evaluation of the same job.
        Canceled = 4, "canceled";
    }
}

impl EvalStatus {
    /// Whether the evaluation will never be worked on again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EvalStatus::Complete | EvalStatus::Failed | EvalStatus::Canceled
        )
    }
}

string_enum! {
    /// What caused an evaluation (Nomad's trigger names).
    pub enum TriggeredBy ("trigger") {
        /// The job was registered or updated.
        JobRegister = 0, "job-register";
        /// The job was stopped or purged.
        JobDeregister = 1, "job-deregister";
        /// A node's status or eligibility changed.
        NodeUpdate = 2, "node-update";
        /// A node started draining.
        NodeDrain = 3, "node-drain";
        /// An allocation was stopped through the API.
        AllocStop = 4, "alloc-stop";
        /// An allocation failed.
        AllocFailure = 5, "alloc-failure";
        /// A blocked evaluation was retried.
        QueuedAllocs = 6, "queued-allocs";
        /// A plan kept being rejected.
        MaxPlanAttempts = 7, "max-plan-attempts";
        /// A periodic job launched.
        PeriodicJob = 8, "periodic-job";
        /// A deployment changed.
        DeploymentWatcher = 9, "deployment-watcher";
        /// A delayed reschedule came due.
        RetryFailedAlloc = 10, "alloc-failure-retry";
        /// A disconnected node came back.
        Reconnect = 11, "reconnect";
        /// A disconnected allocation's `lost_after` expired.
        MaxDisconnectTimeout = 12, "max-disconnect-timeout";
        /// The operator forced an evaluation.
        JobScaling = 13, "job-scaling";
        /// The operator asked (`job eval`).
        Manual = 14, "manual";
        /// A failed-eval follow-up.
        FailedFollowUp = 15, "failed-eval-follow-up";
        /// The next batch of a system job's rolling update is due.
        RollingUpdate = 16, "rolling-update";
    }
}

/// A unit of scheduling work.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Evaluation {
    /// Unique id.
    #[n(0)]
    pub id: EvalId,
    /// The job's priority at the time.
    #[n(1)]
    pub priority: u8,
    /// The job's type, picks the scheduler.
    #[n(2)]
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// What caused it.
    #[n(3)]
    pub triggered_by: TriggeredBy,
    /// The job to reconcile.
    #[n(4)]
    pub job_id: JobId,
    /// The job's `job_modify_index` when it was created.
    #[n(5)]
    pub job_modify_index: u64,
    /// The node, for node-triggered evaluations.
    #[n(6)]
    pub node_id: Option<String>,
    /// The deployment, for deployment-triggered evaluations.
    #[n(7)]
    pub deployment_id: Option<String>,
    /// Where it is.
    #[n(8)]
    pub status: EvalStatus,
    /// Why.
    #[n(9)]
    pub status_description: String,
    /// Unix nanoseconds before which it must not run (delayed reschedules).
    #[n(10)]
    pub wait_until: i64,
    /// A follow-up created by this one.
    #[n(11)]
    pub next_eval: Option<EvalId>,
    /// The one this follows up.
    #[n(12)]
    pub previous_eval: Option<EvalId>,
    /// The blocked evaluation created for what could not be placed.
    #[n(13)]
    pub blocked_eval: Option<EvalId>,
    /// Per group: why placements failed.
    #[n(14)]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// Computed node classes already found infeasible (for blocked evals:
    /// capacity changes in other classes unblock it).
    #[n(15)]
    pub class_eligibility: BTreeMap<String, bool>,
    /// Whether feasibility depended on something the class does not
    /// capture (unique attributes): then any change unblocks it.
    #[n(16)]
    pub escaped_computed_class: bool,
    /// Per group: allocations still waiting for capacity.
    #[n(17)]
    pub queued_allocations: BTreeMap<String, u32>,
    /// The state index the scheduler used.
    #[n(18)]
    pub snapshot_index: u64,
    /// Raft index that created it.
    #[n(19)]
    pub create_index: u64,
    /// Raft index of its last change.
    #[n(20)]
    pub modify_index: u64,
    /// Unix nanoseconds of creation.
    #[n(21)]
    pub create_time: i64,
    /// Unix nanoseconds of the last change.
    #[n(22)]
    pub modify_time: i64,
    /// Deliveries so far (for the broker's limit).
    #[n(23)]
    pub delivery_count: u32,
}

/// How the scheduler went about placing one allocation (or failing to):
/// what filtered nodes out and what exhausted them.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct AllocMetric {
    /// Nodes looked at.
    #[n(0)]
    pub nodes_evaluated: u32,
    /// Nodes removed by a filter.
    #[n(1)]
    pub nodes_filtered: u32,
    /// Nodes in the job's pool.
    #[n(2)]
    pub nodes_in_pool: u32,
    /// Ready nodes per datacenter.
    #[n(3)]
    pub nodes_available: VecMap<String, u32>,
    /// Nodes filtered, per computed class.
    #[n(4)]
    pub class_filtered: VecMap<String, u32>,
    /// Nodes filtered, per constraint (as written, e.g.
    /// `${attr.cpu.arch} = arm64`) or reason (`missing drivers`).
    #[n(5)]
    pub constraint_filtered: VecMap<String, u32>,
    /// Nodes that fit the constraints but had no room.
    #[n(6)]
    pub nodes_exhausted: u32,
    /// Exhausted nodes, per computed class.
    #[n(7)]
    pub class_exhausted: VecMap<String, u32>,
    /// Exhausted nodes, per dimension (`memory`, `cpu`, `cores`,
    /// `devices: nvidia/gpu`, `ports`, `disk`).
    #[n(8)]
    pub dimension_exhausted: VecMap<String, u32>,
    /// The best-scoring nodes and their score components.
    #[n(9)]
    pub scores: Vec<NodeScore>,
    /// Nanoseconds spent choosing.
    #[n(10)]
    pub allocation_time_ns: u64,
    /// Further failed placements folded into this metric.
    #[n(11)]
    pub coalesced_failures: u32,
}

impl AllocMetric {
    /// A one-line explanation of why nothing fitted, e.g.
    /// `memory exhausted on 12 nodes, constraint ${attr.cpu.arch} = arm64 filtered 30 nodes`.
    pub fn explain(&self) -> String {
        let mut parts = Vec::new();
        if self.nodes_evaluated == 0 && self.nodes_in_pool == 0 {
            parts.push("no nodes in the job's node pool and datacenters".to_owned());
        }
        for (dim, n) in &self.dimension_exhausted {
            parts.push(format!("{dim} exhausted on {n} node{}", plural(*n)));
        }
        for (why, n) in &self.constraint_filtered {
            parts.push(format!("{why} filtered {n} node{}", plural(*n)));
        }
        if parts.is_empty() {
            parts.push(format!(
                "{} node{} evaluated, none feasible",
                self.nodes_evaluated,
                plural(self.nodes_evaluated)
            ));
        }
        parts.join(", ")
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A node's score for one placement.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NodeScore {
    /// The node.
    #[n(0)]
    pub node_id: String,
    /// Components by scorer (`binpack`, `job-anti-affinity`,
    /// `node-affinity`, `allocation-spread`, ...).
    #[n(1)]
    #[cfg_attr(test, arbitrary(with = crate::testing::finite_map))]
    pub scores: VecMap<String, f64>,
    /// The combined, normalised score.
    #[n(2)]
    #[cfg_attr(test, arbitrary(with = crate::testing::finite))]
    pub norm_score: f64,
}
