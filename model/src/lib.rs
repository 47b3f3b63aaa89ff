//! wren's nouns and their encodings.
//!
//! This crate holds what every other part of wren agrees on: the job a user
//! submits ([`Job`], [`TaskGroup`], [`Task`] and their policies), the node a
//! client registers ([`Node`]), the allocation placing a group on a node
//! ([`Allocation`]), the evaluation asking for a job to be reconciled
//! ([`Evaluation`]), the rolling update ([`Deployment`]), and the scheduler's
//! proposal and its outcome ([`Plan`], [`PlanResult`]). It also turns
//! Nomad-style HCL job files into a [`Job`] ([`jobspec`]), with Nomad's
//! defaults and validation and errors that name `file:line:col`.
//!
//! Every type encodes to CBOR with stable field indices (`#[n(k)]`, never
//! reused; new fields are `Option` or defaulted) for the wire and for
//! storage, and to JSON for people. Untrusted CBOR is decoded only through
//! [`codec::from_cbor`], which bounds nesting and collection sizes first.
//!
//! Deliberately absent: I/O, async, clocks and randomness. Times and ids
//! are passed in by the caller, so everything here is deterministic and
//! testable from data.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
pub mod macros;

pub mod alloc;
pub mod codec;
pub mod constraint;
pub mod cron;
pub mod defaults;
pub mod deployment;
pub mod duration;
pub mod eval;
pub mod group;
pub mod hcl;
pub mod job;
pub mod jobspec;
pub mod node;
pub mod plan;
pub mod task;
#[cfg(test)]
mod testing;
pub mod text;
pub mod validate;
pub mod value;
pub mod vecmap;
pub mod version;

pub use alloc::{
    AllocDeploymentStatus, AllocId, AllocJobRef, AllocatedDevice, AllocatedPort,
    AllocatedResources, AllocatedTaskResources, Allocation, ClientStatus, DesiredStatus,
    DesiredTransition, RescheduleEvent, TaskEvent, TaskState, TaskStatus,
};
pub use constraint::{Affinity, Constraint, ConstraintError, Operator, Spread, SpreadTarget};
pub use deployment::{Deployment, DeploymentState, DeploymentStatus, DeploymentStatusUpdate};
pub use duration::Duration;
pub use eval::{AllocMetric, EvalId, EvalStatus, Evaluation, NodeScore, TriggeredBy};
pub use group::{
    DelayFunction, DisconnectStrategy, EphemeralDisk, HealthCheck, MigrateStrategy, NetworkMode,
    NetworkResource, Port, ReconcileStrategy, ReschedulePolicy, RestartMode, RestartPolicy,
    TaskGroup, UpdateStrategy,
};
pub use job::{Job, JobId, JobStatus, JobType, Parameterized, PayloadPolicy, Periodic};
pub use node::{
    Capacity, DrainStrategy, DriverInfo, Eligibility, Node, NodeDevice, NodeDeviceResource, NodeId,
    NodeNetwork, NodeReserved, NodeResources, NodeStatus,
};
pub use plan::{DesiredUpdates, Plan, PlanAnnotations, PlanResult};
pub use task::{Lifecycle, LifecycleHook, LogConfig, RequestedDevice, Resources, Task};
pub use text::Text;
pub use value::Value;
pub use vecmap::VecMap;

/// The wren version, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
