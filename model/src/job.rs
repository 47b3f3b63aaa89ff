//! The job: what a user submits. A job holds task groups (scheduled
//! together on one node), each holding tasks (run by a driver).

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::constraint::{Affinity, Constraint, Spread};
use crate::group::{TaskGroup, UpdateStrategy};

/// A job's id: unique within a region.
pub type JobId = String;

string_enum! {
    /// What kind of scheduling a job gets.
    pub enum JobType ("job type") {
        /// Long-running: kept at `count`, restarted and rescheduled.
        Service = 0, "service";
        /// Runs to completion; completed allocations are not replaced.
        Batch = 1, "batch";
        /// One allocation per eligible node, kept running.
        System = 2, "system";
        /// One allocation per eligible node, run to completion.
        Sysbatch = 3, "sysbatch";
    }
}

impl JobType {
    /// Whether allocations are placed per node rather than by count.
    pub fn is_system(self) -> bool {
        matches!(self, JobType::System | JobType::Sysbatch)
    }

    /// Whether allocations are expected to finish.
    pub fn is_batch(self) -> bool {
        matches!(self, JobType::Batch | JobType::Sysbatch)
    }
}

string_enum! {
    /// The job's lifecycle, derived from its allocations and evaluations.
    pub enum JobStatus ("job status") {
        /// Submitted, nothing running yet.
        Pending = 0, "pending";
        /// At least one allocation is running or being placed.
        Running = 1, "running";
        /// Stopped, or every allocation has finished.
        Dead = 2, "dead";
    }
}

/// A job as submitted, plus the bookkeeping the servers add.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Job {
    /// Unique id within the region (the `job "<id>"` label).
    #[n(0)]
    pub id: JobId,
    /// Display name; defaults to the id.
    #[n(1)]
    pub name: String,
    /// The region that runs the job; default `global`.
    #[n(2)]
    pub region: String,
    /// Datacenters it may run in; `*` globs are allowed. Default `["*"]`.
    #[n(3)]
    pub datacenters: Vec<String>,
    /// The node pool it runs in; default `default`.
    #[n(4)]
    pub node_pool: String,
    /// Scheduler type.
    #[n(5)]
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// 1 to 100; higher is scheduled first. Default 50.
    #[n(6)]
    pub priority: u8,
    /// Place every allocation or none (in one plan).
    #[n(7)]
    pub all_at_once: bool,
    /// Hard requirements for every group.
    #[n(8)]
    pub constraints: Vec<Constraint>,
    /// Soft preferences for every group.
    #[n(9)]
    pub affinities: Vec<Affinity>,
    /// Spreads for every group.
    #[n(10)]
    pub spreads: Vec<Spread>,
    /// The task groups, in file order.
    #[n(11)]
    pub task_groups: Vec<TaskGroup>,
    /// The job-level update block (merged into each group's).
    #[n(12)]
    pub update: Option<UpdateStrategy>,
    /// Makes the job a template launched on a schedule.
    #[n(13)]
    pub periodic: Option<Periodic>,
    /// Makes the job a template launched by `job dispatch`.
    #[n(14)]
    pub parameterized: Option<Parameterized>,
    /// Free-form metadata, visible as `${NOMAD_META_*}` and in constraints.
    #[n(15)]
    pub meta: BTreeMap<String, String>,
    /// Set by `job stop`: the job is kept but nothing should run.
    #[n(16)]
    pub stop: bool,
    /// For periodic and dispatched children: the template's id.
    #[n(17)]
    pub parent_id: Option<JobId>,
    /// Payload handed to a dispatched job.
    #[n(18)]
    pub payload: Option<Vec<u8>>,
    /// Status, maintained by the servers.
    #[n(19)]
    pub status: JobStatus,
    /// Why the status is what it is.
    #[n(20)]
    pub status_description: String,
    /// Incremented on every change to the job's specification.
    #[n(21)]
    pub version: u64,
    /// Whether this version may be scheduled (false during a failed
    /// deployment's revert).
    #[n(22)]
    pub stable: bool,
    /// Unix nanoseconds when this version was submitted.
    #[n(23)]
    pub submit_time: i64,
    /// Raft index that created the job.
    #[n(24)]
    pub create_index: u64,
    /// Raft index of the last change of any kind.
    #[n(25)]
    pub modify_index: u64,
    /// Raft index of the last change to the specification.
    #[n(26)]
    pub job_modify_index: u64,
    /// Whether this is a dispatched child of a parameterized job.
    #[n(27)]
    pub dispatched: bool,
}

impl Job {
    /// The group of this name.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|g| g.name == name)
    }

    /// Whether the job is a periodic or parameterized template whose own
    /// allocations are never placed.
    pub fn is_template(&self) -> bool {
        self.periodic.as_ref().is_some_and(|p| p.enabled) || self.parameterized.is_some()
    }

    /// Whether `other` differs from this job in anything a user wrote (as
    /// opposed to the servers' bookkeeping). Registering an identical job
    /// does not create a new version.
    pub fn spec_changed(&self, other: &Job) -> bool {
        let strip = |j: &Job| Job {
            status: JobStatus::Pending,
            status_description: String::new(),
            version: 0,
            stable: false,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
            ..j.clone()
        };
        strip(self) != strip(other)
    }
}

/// A cron-like schedule on which a batch job launches children.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Periodic {
    /// Cron expressions (5 or 6 fields, or `@daily` style).
    #[n(0)]
    pub crons: Vec<String>,
    /// Skip a launch while the previous child is still running.
    #[n(1)]
    pub prohibit_overlap: bool,
    /// IANA time zone the crons are read in; default `UTC`.
    #[n(2)]
    pub time_zone: String,
    /// Whether launches happen at all; default true.
    #[n(3)]
    pub enabled: bool,
}

string_enum! {
    /// Whether a dispatched job takes a payload.
    pub enum PayloadPolicy ("payload policy") {
        /// May carry a payload.
        Optional = 0, "optional";
        /// Must carry a payload.
        Required = 1, "required";
        /// Must not carry a payload.
        Forbidden = 2, "forbidden";
    }
}

/// Makes a batch job a template run with `job dispatch`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Parameterized {
    /// Whether a payload is expected.
    #[n(0)]
    pub payload: PayloadPolicy,
    /// Meta keys every dispatch must set.
    #[n(1)]
    pub meta_required: Vec<String>,
    /// Meta keys a dispatch may set.
    #[n(2)]
    pub meta_optional: Vec<String>,
}
