//! The task group: the unit of placement. Its policies say how it is
//! restarted, rescheduled, updated, migrated and what happens while its node
//! is disconnected.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::constraint::{Affinity, Constraint, Spread};
use crate::duration::Duration;
use crate::task::Task;

/// A set of tasks placed together on one node, `count` times.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct TaskGroup {
    /// Unique within the job.
    #[n(0)]
    pub name: String,
    /// How many allocations to run (ignored by system jobs).
    #[n(1)]
    pub count: u32,
    /// Hard requirements.
    #[n(2)]
    pub constraints: Vec<Constraint>,
    /// Soft preferences.
    #[n(3)]
    pub affinities: Vec<Affinity>,
    /// Spreads over attribute values.
    #[n(4)]
    pub spreads: Vec<Spread>,
    /// The tasks, in file order.
    #[n(5)]
    pub tasks: Vec<Task>,
    /// Restarts of failed tasks on the same node.
    #[n(6)]
    pub restart: RestartPolicy,
    /// Replacement of failed allocations on other nodes; `None` for
    /// system jobs, which are never rescheduled.
    #[n(7)]
    pub reschedule: Option<ReschedulePolicy>,
    /// Rolling updates; `None` for batch jobs.
    #[n(8)]
    pub update: Option<UpdateStrategy>,
    /// Migration off draining nodes.
    #[n(9)]
    pub migrate: Option<MigrateStrategy>,
    /// What happens while the node is disconnected.
    #[n(10)]
    pub disconnect: Option<DisconnectStrategy>,
    /// Ports the group reserves on its node.
    #[n(11)]
    pub networks: Vec<NetworkResource>,
    /// Scratch disk shared by the tasks.
    #[n(12)]
    pub ephemeral_disk: EphemeralDisk,
    /// Free-form metadata.
    #[n(13)]
    pub meta: BTreeMap<String, String>,
    /// Delay between deregistering and killing the group's tasks.
    #[n(14)]
    pub shutdown_delay: Option<Duration>,
}

impl TaskGroup {
    /// The task of this name.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

string_enum! {
    /// What a task does once its restart attempts in an interval are spent.
    pub enum RestartMode ("restart mode") {
        /// Mark the task failed (the allocation may be rescheduled).
        Fail = 0, "fail";
        /// Wait until the interval ends and start counting again.
        Delay = 1, "delay";
    }
}

/// Local restarts of failed tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct RestartPolicy {
    /// Restarts allowed within `interval`.
    #[n(0)]
    pub attempts: u32,
    /// The window over which attempts are counted.
    #[n(1)]
    pub interval: Duration,
    /// Wait before each restart.
    #[n(2)]
    pub delay: Duration,
    /// What to do when attempts are spent.
    #[n(3)]
    pub mode: RestartMode,
}

string_enum! {
    /// How the delay between reschedules grows.
    pub enum DelayFunction ("delay function") {
        /// The same delay every time.
        Constant = 0, "constant";
        /// Doubling, up to `max_delay`.
        Exponential = 1, "exponential";
        /// Fibonacci growth, up to `max_delay`.
        Fibonacci = 2, "fibonacci";
    }
}

/// Replacement of failed allocations on other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct ReschedulePolicy {
    /// Reschedules allowed within `interval` (ignored when `unlimited`).
    #[n(0)]
    pub attempts: u32,
    /// The window over which attempts are counted.
    #[n(1)]
    pub interval: Duration,
    /// The first delay.
    #[n(2)]
    pub delay: Duration,
    /// How the delay grows.
    #[n(3)]
    pub delay_function: DelayFunction,
    /// The largest delay.
    #[n(4)]
    pub max_delay: Duration,
    /// Reschedule forever.
    #[n(5)]
    pub unlimited: bool,
}

string_enum! {
    /// How an update or migration decides an allocation is healthy.
    pub enum HealthCheck ("health check") {
        /// Tasks running (and service checks passing, where there are any).
        Checks = 0, "checks";
        /// Tasks running for `min_healthy_time`.
        TaskStates = 1, "task_states";
        /// Set through the API.
        Manual = 2, "manual";
    }
}

/// Rolling updates and canaries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct UpdateStrategy {
    /// Delay between migrations of groups of allocations (system jobs).
    #[n(0)]
    pub stagger: Duration,
    /// Allocations updated at once; 0 disables rolling updates.
    #[n(1)]
    pub max_parallel: u32,
    /// How health is decided.
    #[n(2)]
    pub health_check: HealthCheck,
    /// How long an allocation must be healthy to count.
    #[n(3)]
    pub min_healthy_time: Duration,
    /// How long an allocation has to become healthy.
    #[n(4)]
    pub healthy_deadline: Duration,
    /// How long the deployment may go without progress.
    #[n(5)]
    pub progress_deadline: Duration,
    /// Roll back to the last stable version on failure.
    #[n(6)]
    pub auto_revert: bool,
    /// Promote canaries once healthy.
    #[n(7)]
    pub auto_promote: bool,
    /// Canaries placed before the rolling update.
    #[n(8)]
    pub canary: u32,
}

impl UpdateStrategy {
    /// Whether updates are rolled at all.
    pub fn is_rolling(&self) -> bool {
        self.max_parallel > 0
    }
}

/// Migration off draining nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct MigrateStrategy {
    /// Allocations migrated at once.
    #[n(0)]
    pub max_parallel: u32,
    /// How health of the replacement is decided.
    #[n(1)]
    pub health_check: HealthCheck,
    /// How long a replacement must be healthy.
    #[n(2)]
    pub min_healthy_time: Duration,
    /// How long a replacement has to become healthy.
    #[n(3)]
    pub healthy_deadline: Duration,
}

string_enum! {
    /// Which allocation survives when a disconnected node comes back while
    /// a replacement is running.
    pub enum ReconcileStrategy ("reconcile strategy") {
        /// The one on the better-scoring node.
        BestScore = 0, "best_score";
        /// The original.
        KeepOriginal = 1, "keep_original";
        /// The replacement.
        KeepReplacement = 2, "keep_replacement";
        /// The one that has run longer.
        LongestRunning = 3, "longest_running";
    }
}

/// What happens to a group's allocations while their node is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DisconnectStrategy {
    /// How long an allocation stays `unknown` before it is `lost`; zero
    /// means lost as soon as the node is down.
    #[n(0)]
    pub lost_after: Duration,
    /// Whether to place a replacement while the original is unknown.
    #[n(1)]
    pub replace: bool,
    /// Which allocation to keep on reconnect.
    #[n(2)]
    pub reconcile: ReconcileStrategy,
    /// The client stops the allocation itself after this long without its
    /// servers (useful when two copies must never run).
    #[n(3)]
    pub stop_on_client_after: Option<Duration>,
}

string_enum! {
    /// The group's network mode.
    pub enum NetworkMode ("network mode") {
        /// The host's network namespace.
        Host = 0, "host";
        /// No network at all (a private empty namespace).
        None = 1, "none";
        /// A private namespace bridged to the host.
        Bridge = 2, "bridge";
    }
}

/// The group's network: mode and port labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NetworkResource {
    /// How the group is networked.
    #[n(0)]
    pub mode: NetworkMode,
    /// Ports with a fixed host port.
    #[n(1)]
    pub reserved_ports: Vec<Port>,
    /// Ports the scheduler picks.
    #[n(2)]
    pub dynamic_ports: Vec<Port>,
    /// Bandwidth in Mbit/s (informational).
    #[n(3)]
    pub mbits: u32,
}

/// A labelled port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Port {
    /// The label, as in `port "http" {}`.
    #[n(0)]
    pub label: String,
    /// The host port: fixed for reserved ports, assigned for dynamic ones.
    #[n(1)]
    pub value: u16,
    /// The port inside the task's namespace, when it differs.
    #[n(2)]
    pub to: u16,
    /// The named host network the port is bound on.
    #[n(3)]
    pub host_network: String,
}

/// Scratch disk for the allocation directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct EphemeralDisk {
    /// Megabytes the allocation may use; default 300.
    #[n(0)]
    pub size_mb: u64,
    /// Keep the directory for the replacement on the same node.
    #[n(1)]
    pub sticky: bool,
    /// Copy the directory to the replacement on another node.
    #[n(2)]
    pub migrate: bool,
}
