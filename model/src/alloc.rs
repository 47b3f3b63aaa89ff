//! The allocation: one placement of a task group on a node, and what the
//! client reports about it.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::eval::AllocMetric;
use crate::job::JobId;
use crate::node::NodeId;
use crate::text::Text;
use crate::vecmap::VecMap;

/// An allocation's id (a UUID).
pub type AllocId = String;

string_enum! {
    /// What the servers want of an allocation.
    pub enum DesiredStatus ("desired status") {
        /// Keep it running.
        Run = 0, "run";
        /// Stop it.
        Stop = 1, "stop";
        /// Stop it to make room (preemption, migration).
        Evict = 2, "evict";
    }
}

string_enum! {
    /// What the client reports of an allocation.
    pub enum ClientStatus ("client status") {
        /// Not started yet.
        Pending = 0, "pending";
        /// Tasks running.
        Running = 1, "running";
        /// Every task finished successfully.
        Complete = 2, "complete";
        /// A task failed for good.
        Failed = 3, "failed";
        /// The node was lost; the servers gave up on it.
        Lost = 4, "lost";
        /// The node is disconnected; state not known.
        Unknown = 5, "unknown";
    }
}

impl ClientStatus {
    /// Whether the allocation has finished for good on its client.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
        )
    }
}

/// One placement of a group.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Allocation {
    /// Unique id.
    #[n(0)]
    pub id: AllocId,
    /// The evaluation that placed it.
    #[n(1)]
    pub eval_id: String,
    /// `<job>.<group>[<index>]`.
    #[n(2)]
    pub name: String,
    /// Where it runs.
    #[n(3)]
    pub node_id: NodeId,
    /// That node's name, for people.
    #[n(4)]
    pub node_name: String,
    /// Its job.
    #[n(5)]
    pub job_id: JobId,
    /// The job version it runs.
    #[n(6)]
    pub job_version: u64,
    /// Its group.
    #[n(7)]
    pub task_group: String,
    /// What it was given.
    #[n(8)]
    pub resources: AllocatedResources,
    /// What the servers want.
    #[n(9)]
    pub desired_status: DesiredStatus,
    /// Why.
    #[n(10)]
    pub desired_description: String,
    /// Requests from the servers to migrate or reschedule.
    #[n(11)]
    pub desired_transition: DesiredTransition,
    /// What the client reports.
    #[n(12)]
    pub client_status: ClientStatus,
    /// The client's explanation.
    #[n(13)]
    pub client_description: String,
    /// Per task state.
    #[n(14)]
    pub task_states: VecMap<String, TaskState>,
    /// The allocation this one replaces.
    #[n(15)]
    pub previous_allocation: Option<AllocId>,
    /// The allocation that replaced this one.
    #[n(16)]
    pub next_allocation: Option<AllocId>,
    /// The deployment it belongs to.
    #[n(17)]
    pub deployment_id: Option<String>,
    /// Health as the deployment sees it.
    #[n(18)]
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// Reschedules that led to this allocation.
    #[n(19)]
    pub reschedule_tracker: Vec<RescheduleEvent>,
    /// Evaluation that will reschedule it after a delay.
    #[n(20)]
    pub followup_eval_id: Option<String>,
    /// How the scheduler chose the node.
    #[n(21)]
    pub metrics: Option<AllocMetric>,
    /// Raft index that created it.
    #[n(22)]
    pub create_index: u64,
    /// Raft index of its last change.
    #[n(23)]
    pub modify_index: u64,
    /// Raft index of the last change by the servers (not the client).
    #[n(24)]
    pub alloc_modify_index: u64,
    /// Unix nanoseconds of creation.
    #[n(25)]
    pub create_time: i64,
    /// Unix nanoseconds of the last change.
    #[n(26)]
    pub modify_time: i64,
    /// Unix nanoseconds when the servers marked it `unknown` because its
    /// node disconnected (set and cleared by the scheduler; drives
    /// `disconnect.lost_after`).
    #[n(27)]
    pub disconnected_at: Option<i64>,
}

/// The job version an encoded [`Allocation`] runs, under the allocation's
/// own keys: decoding an allocation's CBOR as this reads those two fields
/// and skips the rest (a client prunes the job versions it keeps this way).
#[derive(Debug, Clone, PartialEq, Eq, Decode)]
#[cbor(map)]
pub struct AllocJobRef {
    /// [`Allocation::job_id`].
    #[n(5)]
    pub job_id: JobId,
    /// [`Allocation::job_version`].
    #[n(6)]
    pub job_version: u64,
}

impl Allocation {
    /// Gives back the spare capacity of its vectors. The servers hold every
    /// allocation for as long as its job lives, and a decoded `Vec` keeps
    /// the capacity it grew to (five task events occupy eight slots).
    pub fn shrink_to_fit(&mut self) {
        for state in self.task_states.values_mut() {
            state.events.shrink_to_fit();
        }
        self.resources.ports.shrink_to_fit();
        self.reschedule_tracker.shrink_to_fit();
        if let Some(m) = &mut self.metrics {
            m.scores.shrink_to_fit();
        }
    }

    /// The index in the name (`web.api[3]` is 3).
    pub fn index(&self) -> Option<u32> {
        let open = self.name.rfind('[')?;
        let close = self.name.rfind(']')?;
        self.name.get(open + 1..close)?.parse().ok()
    }

    /// The name for the group's `index`th allocation.
    pub fn name_for(job: &str, group: &str, index: u32) -> String {
        format!("{job}.{group}[{index}]")
    }

    /// Whether the servers want it stopped or it has stopped.
    pub fn is_terminal(&self) -> bool {
        self.desired_status != DesiredStatus::Run || self.client_status.is_terminal()
    }

    /// Whether it finished on the client (whatever the servers want).
    pub fn client_terminal(&self) -> bool {
        self.client_status.is_terminal()
    }
}

/// Requests the servers make of an allocation's future.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DesiredTransition {
    /// Move it off its node (drain).
    #[n(0)]
    pub migrate: bool,
    /// Replace it on another node.
    #[n(1)]
    pub reschedule: bool,
    /// Replace it even if the policy says no.
    #[n(2)]
    pub force_reschedule: bool,
}

/// What the scheduler handed the allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct AllocatedResources {
    /// Per task.
    #[n(0)]
    pub tasks: VecMap<String, AllocatedTaskResources>,
    /// Disk in MB for the allocation directory.
    #[n(1)]
    pub disk_mb: u64,
    /// Host ports assigned to the group's port labels.
    #[n(2)]
    pub ports: Vec<AllocatedPort>,
}

impl AllocatedResources {
    /// The sum over tasks, for capacity accounting.
    pub fn total(&self) -> (u32, u64, u32) {
        self.tasks.values().fold((0, 0, 0), |(c, m, k), t| {
            (
                c.saturating_add(t.cpu),
                m.saturating_add(t.memory_mb),
                k.saturating_add(t.cores.len() as u32),
            )
        })
    }
}

/// What one task was given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct AllocatedTaskResources {
    /// CPU shares in MHz (for `cores`, the cores' worth of MHz).
    #[n(0)]
    pub cpu: u32,
    /// Core ids reserved exclusively.
    #[n(1)]
    pub cores: Vec<u32>,
    /// Memory in MB.
    #[n(2)]
    pub memory_mb: u64,
    /// Hard memory limit in MB (0: same as `memory_mb`).
    #[n(3)]
    pub memory_max_mb: u64,
    /// Device instances handed to the task.
    #[n(4)]
    pub devices: Vec<AllocatedDevice>,
}

/// Device instances of one `vendor/type/name` given to a task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct AllocatedDevice {
    /// Vendor.
    #[n(0)]
    pub vendor: String,
    /// Type.
    #[n(1)]
    pub device_type: String,
    /// Name.
    #[n(2)]
    pub name: String,
    /// Instance ids.
    #[n(3)]
    pub device_ids: Vec<String>,
}

/// A port label bound to a host port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct AllocatedPort {
    /// The label.
    #[n(0)]
    pub label: String,
    /// The host port.
    #[n(1)]
    pub value: u16,
    /// The port inside the task, when mapped.
    #[n(2)]
    pub to: u16,
    /// The host address.
    #[n(3)]
    pub host_ip: String,
}

/// Health reported for a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct AllocDeploymentStatus {
    /// `None` until decided.
    #[n(0)]
    pub healthy: Option<bool>,
    /// Unix nanoseconds when health was decided.
    #[n(1)]
    pub timestamp: i64,
    /// Whether it is a canary.
    #[n(2)]
    pub canary: bool,
}

/// One earlier reschedule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct RescheduleEvent {
    /// Unix nanoseconds.
    #[n(0)]
    pub time: i64,
    /// The allocation that was replaced.
    #[n(1)]
    pub prev_alloc_id: String,
    /// Its node.
    #[n(2)]
    pub prev_node_id: String,
    /// The delay applied.
    #[n(3)]
    pub delay: Duration,
}

string_enum! {
    /// A task's coarse state.
    pub enum TaskStatus ("task state") {
        /// Not started.
        Pending = 0, "pending";
        /// Running.
        Running = 1, "running";
        /// Exited for good.
        Dead = 2, "dead";
    }
}

/// What the client reports of one task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct TaskState {
    /// Coarse state.
    #[n(0)]
    pub state: TaskStatus,
    /// Whether it ended in failure.
    #[n(1)]
    pub failed: bool,
    /// Restarts so far.
    #[n(2)]
    pub restarts: u32,
    /// Unix nanoseconds of the last restart.
    #[n(3)]
    pub last_restart: i64,
    /// Unix nanoseconds it first started.
    #[n(4)]
    pub started_at: i64,
    /// Unix nanoseconds it finished.
    #[n(5)]
    pub finished_at: i64,
    /// The most recent events, oldest first (bounded by the client).
    #[n(6)]
    pub events: Vec<TaskEvent>,
}

/// Something that happened to a task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct TaskEvent {
    /// `Received`, `Task Setup`, `Started`, `Terminated`, `Restarting`,
    /// `Not Restarting`, `Killing`, `Killed`, `Driver Failure`,
    /// `Isolation Degraded`, ... (Nomad's names where Nomad has one).
    #[n(0)]
    #[serde(rename = "type")]
    pub kind: Text,
    /// Unix nanoseconds.
    #[n(1)]
    pub time: i64,
    /// For people.
    #[n(2)]
    pub message: Text,
    /// Exit code, for `Terminated`.
    #[n(3)]
    pub exit_code: Option<i32>,
    /// Signal number, when killed by one.
    #[n(4)]
    pub signal: Option<i32>,
    /// Killed by the kernel's OOM killer inside its cgroup.
    #[n(5)]
    pub oom_killed: bool,
    /// Extra details.
    #[n(6)]
    pub details: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_allocation_reads_as_its_job_reference() {
        let alloc = Allocation {
            id: "a1".into(),
            name: "web.g[0]".into(),
            job_id: "web".into(),
            job_version: 3,
            task_group: "g".into(),
            ..Allocation::default()
        };
        let r: AllocJobRef = crate::codec::from_cbor(&crate::codec::to_cbor(&alloc)).unwrap();
        assert_eq!(
            r,
            AllocJobRef {
                job_id: "web".into(),
                job_version: 3
            }
        );
    }
}
