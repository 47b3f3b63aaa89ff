//! The commands the state machine applies, what applying one tells the
//! proposer, and why one could not be applied.
//!
//! Commands are the only way the cluster state changes. Each is one Raft
//! log entry, encoded as CBOR with stable field indices (never reused, new
//! fields `Option` or defaulted), so a log written by one wren version is
//! read by the next. A command carries everything apply needs, including
//! the time it was issued (a [`Proposal`] sets it on the leader before
//! proposing), so that every server computes exactly the same state.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use wren_model::{
    AllocId, Allocation, DeploymentStatusUpdate, DesiredTransition, DrainStrategy, Eligibility,
    EvalId, Evaluation, Job, JobId, Node, NodeId, NodeStatus, PlanResult,
};

/// A command with the time the leader issued it.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[cbor(map)]
pub struct Proposal {
    /// Unix nanoseconds on the leader when it was proposed; apply uses this
    /// and never a clock of its own.
    #[n(0)]
    pub issued_at: i64,
    /// What to change.
    #[n(1)]
    pub command: Command,
}

/// A change to the cluster state.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Command {
    /// Registers a job or a new version of it (only when its specification
    /// changed, see [`Job::spec_changed`]), with the evaluation that asks
    /// the scheduler to act on it.
    #[n(0)]
    RegisterJob(#[n(0)] RegisterJob),
    /// Stops a job (a new version with `stop = true`) or purges it with all
    /// its versions.
    #[n(1)]
    DeregisterJob(#[n(0)] DeregisterJob),
    /// Registers a node or updates what it reports about itself.
    #[n(2)]
    UpsertNode(#[n(0)] UpsertNode),
    /// Changes a node's liveness (heartbeats, missed TTLs).
    #[n(3)]
    UpdateNodeStatus(#[n(0)] UpdateNodeStatus),
    /// Starts, changes or ends a node's drain.
    #[n(4)]
    UpdateNodeDrain(#[n(0)] UpdateNodeDrain),
    /// Marks a node eligible or ineligible for new work.
    #[n(5)]
    UpdateNodeEligibility(#[n(0)] UpdateNodeEligibility),
    /// Creates or updates evaluations (the broker's acks, blocked evals,
    /// follow-ups).
    #[n(6)]
    UpsertEvals(#[n(0)] UpsertEvals),
    /// Commits what the plan applier accepted of a plan, with the
    /// evaluation's new state, in one entry.
    #[n(7)]
    ApplyPlan(#[n(0)] ApplyPlan),
    /// Records what clients report of their allocations; only
    /// client-owned fields change.
    #[n(8)]
    UpdateAllocsFromClient(#[n(0)] UpdateAllocsFromClient),
    /// Asks for allocations to be migrated or rescheduled (drain, `alloc
    /// stop`).
    #[n(9)]
    UpdateAllocDesiredTransitions(#[n(0)] UpdateAllocDesiredTransitions),
    /// Changes a deployment's status (pause, resume, fail), optionally
    /// reverting its job.
    #[n(10)]
    UpdateDeploymentStatus(#[n(0)] UpdateDeploymentStatus),
    /// Records allocation health as a deployment sees it.
    #[n(11)]
    SetAllocHealth(#[n(0)] SetAllocHealth),
    /// Promotes a deployment's canaries.
    #[n(12)]
    PromoteDeployment(#[n(0)] PromoteDeployment),
    /// Deletes what garbage collection chose, each still checked to be
    /// eligible when applied.
    #[n(13)]
    GarbageCollect(#[n(0)] GarbageCollect),
    /// Replaces the whole state with a saved snapshot (`wren operator
    /// snapshot restore`).
    #[n(14)]
    Restore(#[n(0)] Restore),
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RegisterJob(_) => "register-job",
            Command::DeregisterJob(_) => "deregister-job",
            Command::UpsertNode(_) => "upsert-node",
            Command::UpdateNodeStatus(_) => "update-node-status",
            Command::UpdateNodeDrain(_) => "update-node-drain",
            Command::UpdateNodeEligibility(_) => "update-node-eligibility",
            Command::UpsertEvals(_) => "upsert-evals",
            Command::ApplyPlan(_) => "apply-plan",
            Command::UpdateAllocsFromClient(_) => "update-allocs-from-client",
            Command::UpdateAllocDesiredTransitions(_) => "update-alloc-desired-transitions",
            Command::UpdateDeploymentStatus(_) => "update-deployment-status",
            Command::SetAllocHealth(_) => "set-alloc-health",
            Command::PromoteDeployment(_) => "promote-deployment",
            Command::GarbageCollect(_) => "garbage-collect",
            Command::Restore(_) => "restore",
        }
    }
}

/// See [`Command::RegisterJob`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct RegisterJob {
    /// The job as submitted; the servers' bookkeeping fields are ignored.
    #[n(0)]
    pub job: Job,
    /// The evaluation to create (none for periodic and parameterized
    /// templates).
    #[n(1)]
    pub eval: Option<Evaluation>,
    /// `job run -check-index`: apply only if the job's current
    /// `job_modify_index` is this (0: the job must not exist yet).
    #[n(2)]
    pub enforce_index: Option<u64>,
}

/// See [`Command::DeregisterJob`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct DeregisterJob {
    /// The job.
    #[n(0)]
    pub job_id: JobId,
    /// Remove the job and its versions instead of stopping it.
    #[n(1)]
    pub purge: bool,
    /// The evaluation that stops its allocations.
    #[n(2)]
    pub eval: Option<Evaluation>,
}

/// See [`Command::UpsertNode`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpsertNode {
    /// The node as the client reports it. Drain and eligibility of a known
    /// node are kept: they change only through their own commands.
    #[n(0)]
    pub node: Node,
    /// Evaluations the change calls for (system jobs, blocked evals).
    #[n(1)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpdateNodeStatus`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpdateNodeStatus {
    /// The node.
    #[n(0)]
    pub node_id: NodeId,
    /// Its new status.
    #[n(1)]
    pub status: NodeStatus,
    /// Why, for people.
    #[n(2)]
    pub description: String,
    /// Evaluations for the jobs with allocations on it.
    #[n(3)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpdateNodeDrain`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpdateNodeDrain {
    /// The node.
    #[n(0)]
    pub node_id: NodeId,
    /// The drain to start or change; `None` ends it.
    #[n(1)]
    pub drain: Option<DrainStrategy>,
    /// When ending a drain, make the node eligible again.
    #[n(2)]
    pub mark_eligible: bool,
    /// Evaluations the drain calls for.
    #[n(3)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpdateNodeEligibility`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpdateNodeEligibility {
    /// The node.
    #[n(0)]
    pub node_id: NodeId,
    /// Its new eligibility.
    #[n(1)]
    pub eligibility: Eligibility,
    /// Evaluations the change calls for (blocked evals may now fit).
    #[n(2)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpsertEvals`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpsertEvals {
    /// Evaluations to create or replace.
    #[n(0)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::ApplyPlan`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct ApplyPlan {
    /// What the plan applier accepted: placements and in-place updates
    /// (`node_allocation`), stops (`node_update`), preemptions, the
    /// deployment and deployment status changes.
    #[n(0)]
    pub result: PlanResult,
    /// The planned evaluation's new state and any evaluations the plan
    /// created (blocked, follow-up, preemption).
    #[n(1)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpdateAllocsFromClient`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpdateAllocsFromClient {
    /// The reporting node; updates for allocations placed elsewhere are
    /// skipped.
    #[n(0)]
    pub node_id: NodeId,
    /// The allocations as the client sees them. Only `client_status`,
    /// `client_description`, `task_states` and `deployment_status` are
    /// taken (`disconnected_at` is the scheduler's).
    #[n(1)]
    pub allocs: Vec<Allocation>,
    /// Evaluations for jobs whose allocations failed (rescheduling).
    #[n(2)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpdateAllocDesiredTransitions`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpdateAllocDesiredTransitions {
    /// New transitions by allocation.
    #[n(0)]
    pub transitions: BTreeMap<AllocId, DesiredTransition>,
    /// Evaluations that act on them.
    #[n(1)]
    pub evals: Vec<Evaluation>,
}

/// See [`Command::UpdateDeploymentStatus`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct UpdateDeploymentStatus {
    /// The change.
    #[n(0)]
    pub update: DeploymentStatusUpdate,
    /// A job version to register (auto-revert after a failure).
    #[n(1)]
    pub job: Option<Job>,
    /// The evaluation that acts on it.
    #[n(2)]
    pub eval: Option<Evaluation>,
}

/// See [`Command::SetAllocHealth`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct SetAllocHealth {
    /// The deployment.
    #[n(0)]
    pub deployment_id: String,
    /// Allocations found healthy.
    #[n(1)]
    pub healthy: Vec<AllocId>,
    /// Allocations found unhealthy.
    #[n(2)]
    pub unhealthy: Vec<AllocId>,
    /// A status change decided at the same time (failed on unhealthy).
    #[n(3)]
    pub update: Option<DeploymentStatusUpdate>,
    /// A job version to register (auto-revert).
    #[n(4)]
    pub job: Option<Job>,
    /// The evaluation that acts on it.
    #[n(5)]
    pub eval: Option<Evaluation>,
}

/// See [`Command::PromoteDeployment`].
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct PromoteDeployment {
    /// The deployment.
    #[n(0)]
    pub deployment_id: String,
    /// Groups to promote; empty means all.
    #[n(1)]
    pub groups: Vec<String>,
    /// The evaluation that places the rest.
    #[n(2)]
    pub eval: Option<Evaluation>,
}

/// See [`Command::GarbageCollect`]; usually built by
/// [`State::gc_candidates`](crate::State::gc_candidates).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
#[cbor(map)]
pub struct GarbageCollect {
    /// Terminal evaluations.
    #[n(0)]
    pub evals: Vec<EvalId>,
    /// Allocations finished on their clients.
    #[n(1)]
    pub allocs: Vec<AllocId>,
    /// Old job versions no allocation runs.
    #[n(2)]
    pub job_versions: Vec<(JobId, u64)>,
    /// Stopped or finished jobs with nothing left running or pending.
    #[n(3)]
    pub jobs: Vec<JobId>,
    /// Down nodes with nothing left running.
    #[n(4)]
    pub nodes: Vec<NodeId>,
    /// Finished deployments.
    #[n(5)]
    pub deployments: Vec<String>,
}

impl GarbageCollect {
    /// Whether there is nothing to collect.
    pub fn is_empty(&self) -> bool {
        self.evals.is_empty()
            && self.allocs.is_empty()
            && self.job_versions.is_empty()
            && self.jobs.is_empty()
            && self.nodes.is_empty()
            && self.deployments.is_empty()
    }
}

/// See [`Command::Restore`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
#[cbor(map)]
pub struct Restore {
    /// A snapshot as written by [`State::save`](crate::State::save).
    #[n(0)]
    #[cbor(with = "minicbor::bytes")]
    pub snapshot: Vec<u8>,
}

/// What applying a command tells its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Outcome {
    /// The command was applied; there is nothing more to report.
    #[n(0)]
    Applied,
    /// A job's version after register, stop or revert.
    #[n(1)]
    Job {
        /// The job.
        #[n(0)]
        job_id: JobId,
        /// Its current version.
        #[n(1)]
        version: u64,
        /// Raft index of its last specification change.
        #[n(2)]
        job_modify_index: u64,
        /// Whether this command created that version.
        #[n(3)]
        new_version: bool,
    },
    /// How much of a batch changed something and how much was skipped
    /// (unknown ids, objects no longer eligible, updates from the wrong
    /// node).
    #[n(2)]
    Batch {
        /// Objects changed.
        #[n(0)]
        changed: u32,
        /// Objects skipped.
        #[n(1)]
        skipped: u32,
    },
}

/// Why a command was not applied. The state is left exactly as before,
/// on every server alike.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, thiserror::Error)]
pub enum ApplyError {
    /// No job of this id.
    #[error("unknown job {0:?}")]
    #[n(0)]
    UnknownJob(#[n(0)] JobId),
    /// No such version of the job.
    #[error("job {job:?} has no version {version}")]
    #[n(1)]
    UnknownJobVersion {
        /// The job.
        #[n(0)]
        job: JobId,
        /// The version asked for.
        #[n(1)]
        version: u64,
    },
    /// No node of this id.
    #[error("unknown node {0:?}")]
    #[n(2)]
    UnknownNode(#[n(0)] NodeId),
    /// No deployment of this id.
    #[error("unknown deployment {0:?}")]
    #[n(3)]
    UnknownDeployment(#[n(0)] String),
    /// No allocation of this id.
    #[error("unknown allocation {0:?}")]
    #[n(4)]
    UnknownAlloc(#[n(0)] AllocId),
    /// `enforce_index` did not match.
    #[error("job {job:?} is at job modify index {actual}, not {expected}")]
    #[n(5)]
    IndexMismatch {
        /// The job.
        #[n(0)]
        job: JobId,
        /// The index the caller expected.
        #[n(1)]
        expected: u64,
        /// The job's index (0 when it does not exist).
        #[n(2)]
        actual: u64,
    },
    /// A node re-registered with a different secret.
    #[error("node {0:?} registered with a different secret id")]
    #[n(6)]
    NodeSecretMismatch(#[n(0)] NodeId),
    /// A draining node cannot be made eligible.
    #[error("node {0:?} is draining and cannot be marked eligible")]
    #[n(7)]
    NodeDraining(#[n(0)] NodeId),
    /// The deployment has finished.
    #[error("deployment {id:?} is {status}, not active")]
    #[n(8)]
    DeploymentNotActive {
        /// The deployment.
        #[n(0)]
        id: String,
        /// Its status.
        #[n(1)]
        status: String,
    },
    /// Canaries must be healthy before promotion.
    #[error(
        "deployment {deployment:?} group {group:?} has {healthy} of {desired} canaries healthy"
    )]
    #[n(9)]
    CanariesUnhealthy {
        /// The deployment.
        #[n(0)]
        deployment: String,
        /// The group.
        #[n(1)]
        group: String,
        /// Healthy canaries.
        #[n(2)]
        healthy: u32,
        /// Canaries wanted.
        #[n(3)]
        desired: u32,
    },
    /// The allocation is not part of the deployment.
    #[error("allocation {alloc:?} is not part of deployment {deployment:?}")]
    #[n(10)]
    AllocNotInDeployment {
        /// The allocation.
        #[n(0)]
        alloc: AllocId,
        /// The deployment.
        #[n(1)]
        deployment: String,
    },
    /// The command contradicts itself or the state (e.g. an evaluation
    /// for another job than the one registered).
    #[error("invalid command: {0}")]
    #[n(11)]
    Invalid(#[n(0)] String),
    /// The log entry does not decode: written by a newer wren, or corrupt.
    #[error("undecodable command: {0}")]
    #[n(12)]
    Undecodable(#[n(0)] String),
}
