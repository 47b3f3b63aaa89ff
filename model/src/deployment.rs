//! The deployment: a rolling update of a service job from one version to
//! the next, with its health accounting per group.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::job::JobId;

string_enum! {
    /// Where a deployment is.
    pub enum DeploymentStatus ("deployment status") {
        /// Placing and waiting for health.
        Running = 0, "running";
        /// Paused by the operator.
        Paused = 1, "paused";
        /// Health deadline or progress deadline missed.
        Failed = 2, "failed";
        /// Every group healthy.
        Successful = 3, "successful";
        /// Superseded by a newer version.
        Cancelled = 4, "cancelled";
        /// Waiting to start.
        Pending = 5, "pending";
        /// Waiting for canaries to be promoted.
        Blocked = 6, "blocked";
    }
}

impl DeploymentStatus {
    /// Whether the deployment still changes.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Running
                | DeploymentStatus::Paused
                | DeploymentStatus::Pending
                | DeploymentStatus::Blocked
        )
    }
}

/// A rolling update.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Deployment {
    /// Unique id.
    #[n(0)]
    pub id: String,
    /// The job.
    #[n(1)]
    pub job_id: JobId,
    /// The version being rolled out.
    #[n(2)]
    pub job_version: u64,
    /// The job's `job_modify_index` for that version.
    #[n(3)]
    pub job_modify_index: u64,
    /// Per group.
    #[n(4)]
    pub task_groups: BTreeMap<String, DeploymentState>,
    /// Where it is.
    #[n(5)]
    pub status: DeploymentStatus,
    /// Why.
    #[n(6)]
    pub status_description: String,
    /// Raft index that created it.
    #[n(7)]
    pub create_index: u64,
    /// Raft index of its last change.
    #[n(8)]
    pub modify_index: u64,
}

/// One group's progress in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DeploymentState {
    /// Roll back on failure.
    #[n(0)]
    pub auto_revert: bool,
    /// Promote canaries once healthy.
    #[n(1)]
    pub auto_promote: bool,
    /// Canaries were promoted.
    #[n(2)]
    pub promoted: bool,
    /// Canary allocation ids placed.
    #[n(3)]
    pub placed_canaries: Vec<String>,
    /// Canaries wanted.
    #[n(4)]
    pub desired_canaries: u32,
    /// Allocations wanted in the new version.
    #[n(5)]
    pub desired_total: u32,
    /// Allocations placed so far.
    #[n(6)]
    pub placed_allocs: u32,
    /// Of those, healthy.
    #[n(7)]
    pub healthy_allocs: u32,
    /// Of those, unhealthy.
    #[n(8)]
    pub unhealthy_allocs: u32,
    /// Unix nanoseconds by which progress must be made (0: none).
    #[n(9)]
    pub require_progress_by: i64,
}

/// A status change for a deployment, carried in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DeploymentStatusUpdate {
    /// The deployment.
    #[n(0)]
    pub deployment_id: String,
    /// Its new status.
    #[n(1)]
    pub status: DeploymentStatus,
    /// Why.
    #[n(2)]
    pub status_description: String,
}
