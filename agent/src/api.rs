//! The `/v1` API: every request and response body that crosses the wire
//! between the CLI, clients and servers, in CBOR (field indices never
//! reused) and JSON.
//!
//! Resources (CoAP paths; methods GET = read, POST = create/act, PUT =
//! update, DELETE = stop):
//!
//! | path | method | body | answer | who |
//! | --- | --- | --- | --- | --- |
//! | `/v1/jobs` | GET | | `Vec<JobListStub>` | cli |
//! | `/v1/jobs` | POST | [`JobRegisterRequest`] | [`JobRegisterResponse`] | cli |
//! | `/v1/job/<id>` | GET | | `Job` | cli |
//! | `/v1/job/<id>` | DELETE | `?purge=true` | [`JobStopResponse`] | cli |
//! | `/v1/job/<id>/plan` | POST | [`JobPlanRequest`] | [`JobPlanResponse`] | cli |
//! | `/v1/job/<id>/summary` | GET | | [`JobSummary`] | cli |
//! | `/v1/job/<id>/allocations` | GET | | `Vec<AllocStub>` | cli |
//! | `/v1/job/<id>/evaluations` | GET | | `Vec<Evaluation>` | cli |
//! | `/v1/job/<id>/deployment` | GET | | `Option<Deployment>` | cli |
//! | `/v1/evals` | GET | | `Vec<Evaluation>` | cli |
//! | `/v1/eval/<id>` | GET (observable) | | `Evaluation` | cli |
//! | `/v1/eval/<id>/allocations` | GET | | `Vec<AllocStub>` | cli |
//! | `/v1/allocs` | GET | | `Vec<AllocStub>` | cli |
//! | `/v1/alloc/<id>` | GET | | [`AllocDetail`] | cli |
//! | `/v1/alloc/<id>/stop` | POST | | [`EvalResponse`] | cli |
//! | `/v1/nodes` | GET | | `Vec<NodeStub>` | cli |
//! | `/v1/node/<id>` | GET | | `Node` | cli |
//! | `/v1/node/<id>/allocations` | GET | | `Vec<AllocStub>` | cli |
//! | `/v1/node/<id>/drain` | POST | [`NodeDrainRequest`] | [`EvalsResponse`] | cli |
//! | `/v1/node/<id>/eligibility` | POST | [`NodeEligibilityRequest`] | [`EvalsResponse`] | cli |
//! | `/v1/client/register` | POST | [`NodeRegisterRequest`] | [`HeartbeatResponse`] | client |
//! | `/v1/client/heartbeat` | POST | [`HeartbeatRequest`] | [`HeartbeatResponse`] | client |
//! | `/v1/client/allocs` | GET (observable) | `?node=ID` | [`ClientAllocs`] | client |
//! | `/v1/client/allocs` | POST | [`AllocUpdateRequest`] | [`IndexResponse`] | client |
//! | `/v1/status/leader` | GET | | [`LeaderResponse`] | any |
//! | `/v1/agent/members` | GET | | `Vec<ServerMember>` | cli |
//! | `/v1/operator/raft/peers` | GET | | [`RaftConfiguration`] | cli |
//! | `/v1/operator/raft/peer/<id>` | DELETE | | [`IndexResponse`] | cli |
//! | `/v1/job/<id>/versions` | GET | | `Vec<Job>` (newest first) | cli |
//! | `/v1/job/<id>/deployments` | GET | | `Vec<Deployment>` | cli |
//! | `/v1/deployment/<id>` | GET | | `Deployment` | cli |
//! | `/v1/evals` | GET | `?job=ID&prefix=P` | `Vec<Evaluation>` | cli |
//! | `/v1/operator/snapshot` | GET / POST | [`StateSnapshot`] | [`StateSnapshot`] / [`IndexResponse`] | cli |
//!
//! Listings take `?prefix=P` (ids starting with P).
//!
//! A client agent serves its own node's endpoints on the same port, for the
//! CLI, which reaches it at the node's advertised address:
//!
//! | path | method | body | answer |
//! | --- | --- | --- | --- |
//! | `/v1/client/fs/logs/<alloc>/<task>` | GET (observable) | `?type=stdout\|stderr&offset=N` | [`LogChunk`] |
//! | `/v1/client/alloc/<id>/signal` | POST | [`SignalRequest`] | empty (2.04) |
//! | `/v1/client/alloc/<id>/restart` | POST | [`RestartRequest`] | empty (2.04) |
//! | `/v1/client/alloc/<id>/exec` | POST | [`ExecRequest`] | [`ExecResponse`] |
//! | `/v1/client/node` | GET | | [`ClientNodeStatus`] |
//!
//! Reads take `?stale=true` to be answered by any server without a
//! read-index round trip, and `?index=N` to block until the answer's index
//! passes N (or observe them, to get a notification each time it does).

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};
use wren_model::{
    AllocDeploymentStatus, AllocMetric, Allocation, ClientStatus, DesiredStatus, DrainStrategy,
    Duration, Eligibility, Job, JobStatus, JobType, Node, NodeStatus, PlanAnnotations, TaskState,
    VecMap,
};

/// `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobRegisterRequest {
    /// The job, as parsed and defaulted by the CLI.
    #[n(0)]
    pub job: Job,
    /// Register only if the job's current `job_modify_index` is this (0:
    /// only if the job does not exist), for check-and-set updates.
    #[n(1)]
    pub enforce_index: Option<u64>,
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobRegisterResponse {
    /// The evaluation created (none for periodic or parameterized templates).
    #[n(0)]
    pub eval_id: Option<String>,
    /// The job's new `job_modify_index`.
    #[n(1)]
    pub job_modify_index: u64,
    /// The Raft index of the write.
    #[n(2)]
    pub index: u64,
    /// The job version now current.
    #[n(3)]
    pub version: u64,
    /// Things worth saying that are not errors.
    #[n(4)]
    pub warnings: Vec<String>,
}

/// Answer to `DELETE /v1/job/<id>`.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobStopResponse {
    /// The evaluation that stops the allocations.
    #[n(0)]
    pub eval_id: Option<String>,
    /// The Raft index of the write.
    #[n(1)]
    pub index: u64,
}

/// `POST /v1/job/<id>/plan`: a dry run.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobPlanRequest {
    /// The job as it would be registered.
    #[n(0)]
    pub job: Job,
}

/// What registering the job would do.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobPlanResponse {
    /// Per group: how many of each kind of change.
    #[n(0)]
    pub annotations: Option<PlanAnnotations>,
    /// Per group: why placements would fail.
    #[n(1)]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// The current job's `job_modify_index` (0 if new): pass it as
    /// `enforce_index` to register exactly this plan.
    #[n(2)]
    pub job_modify_index: u64,
    /// A readable diff against the current version, one change per line
    /// (`+`, `-`, `~`).
    #[n(3)]
    pub diff: Vec<String>,
    /// Placements per node name the plan would make.
    #[n(4)]
    pub placements: BTreeMap<String, u32>,
}

/// Per group allocation counts, like Nomad's job summary.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct GroupSummary {
    /// Waiting for capacity.
    #[n(0)]
    pub queued: u32,
    /// Placed, not yet running.
    #[n(1)]
    pub starting: u32,
    /// Running.
    #[n(2)]
    pub running: u32,
    /// Failed.
    #[n(3)]
    pub failed: u32,
    /// Completed.
    #[n(4)]
    pub complete: u32,
    /// Lost with their node.
    #[n(5)]
    pub lost: u32,
    /// On a disconnected node.
    #[n(6)]
    pub unknown: u32,
}

/// `GET /v1/job/<id>/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobSummary {
    /// The job.
    #[n(0)]
    pub job_id: String,
    /// Per group.
    #[n(1)]
    pub groups: BTreeMap<String, GroupSummary>,
}

/// One line of `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct JobListStub {
    /// Id.
    #[n(0)]
    pub id: String,
    /// Name.
    #[n(1)]
    pub name: String,
    /// Type.
    #[n(2)]
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Priority.
    #[n(3)]
    pub priority: u8,
    /// Status.
    #[n(4)]
    pub status: JobStatus,
    /// Stopped by the operator.
    #[n(5)]
    pub stop: bool,
    /// Current version.
    #[n(6)]
    pub version: u64,
    /// Unix nanoseconds of the current version.
    #[n(7)]
    pub submit_time: i64,
    /// Allocation counts.
    #[n(8)]
    pub summary: JobSummary,
}

/// An allocation in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct AllocStub {
    /// Id.
    #[n(0)]
    pub id: String,
    /// `<job>.<group>[<index>]`.
    #[n(1)]
    pub name: String,
    /// Node.
    #[n(2)]
    pub node_id: String,
    /// Node name.
    #[n(3)]
    pub node_name: String,
    /// Job.
    #[n(4)]
    pub job_id: String,
    /// Job version.
    #[n(5)]
    pub job_version: u64,
    /// Group.
    #[n(6)]
    pub task_group: String,
    /// Desired status.
    #[n(7)]
    pub desired_status: DesiredStatus,
    /// Client status.
    #[n(8)]
    pub client_status: ClientStatus,
    /// The evaluation that placed it.
    #[n(9)]
    pub eval_id: String,
    /// Unix nanoseconds.
    #[n(10)]
    pub create_time: i64,
    /// Unix nanoseconds.
    #[n(11)]
    pub modify_time: i64,
}

impl From<&Allocation> for AllocStub {
    fn from(a: &Allocation) -> AllocStub {
        AllocStub {
            id: a.id.clone(),
            name: a.name.clone(),
            node_id: a.node_id.clone(),
            node_name: a.node_name.clone(),
            job_id: a.job_id.clone(),
            job_version: a.job_version,
            task_group: a.task_group.clone(),
            desired_status: a.desired_status,
            client_status: a.client_status,
            eval_id: a.eval_id.clone(),
            create_time: a.create_time,
            modify_time: a.modify_time,
        }
    }
}

/// `GET /v1/alloc/<id>`: the allocation with the job version it runs and
/// where its node listens (for logs).
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct AllocDetail {
    /// The allocation.
    #[n(0)]
    pub alloc: Allocation,
    /// Its job version, when still known.
    #[n(1)]
    pub job: Option<Job>,
    /// The node's advertised address.
    #[n(2)]
    pub node_address: String,
}

/// A node in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct NodeStub {
    /// Id.
    #[n(0)]
    pub id: String,
    /// Name.
    #[n(1)]
    pub name: String,
    /// Advertised address.
    #[n(2)]
    pub address: String,
    /// Datacenter.
    #[n(3)]
    pub datacenter: String,
    /// Node pool.
    #[n(4)]
    pub node_pool: String,
    /// Class.
    #[n(5)]
    pub node_class: String,
    /// Status.
    #[n(6)]
    pub status: NodeStatus,
    /// Eligibility.
    #[n(7)]
    pub eligibility: Eligibility,
    /// Draining.
    #[n(8)]
    pub drain: bool,
    /// wren version.
    #[n(9)]
    pub version: String,
    /// `cpu.arch`.
    #[n(10)]
    pub arch: String,
}

impl From<&Node> for NodeStub {
    fn from(n: &Node) -> NodeStub {
        NodeStub {
            id: n.id.clone(),
            name: n.name.clone(),
            address: n.address.clone(),
            datacenter: n.datacenter.clone(),
            node_pool: n.node_pool.clone(),
            node_class: n.node_class.clone(),
            status: n.status,
            eligibility: n.eligibility,
            drain: n.drain.is_some(),
            version: n.agent_version.clone(),
            arch: n.attributes.get("cpu.arch").cloned().unwrap_or_default(),
        }
    }
}

/// `POST /v1/node/<id>/drain`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct NodeDrainRequest {
    /// The drain to start; `None` stops draining.
    #[n(0)]
    pub drain: Option<DrainStrategy>,
    /// When stopping a drain, make the node eligible again.
    #[n(1)]
    pub mark_eligible: bool,
}

/// `POST /v1/node/<id>/eligibility`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct NodeEligibilityRequest {
    /// The new eligibility.
    #[n(0)]
    pub eligibility: Eligibility,
}

/// Answer to a write that created one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct EvalResponse {
    /// The evaluation.
    #[n(0)]
    pub eval_id: Option<String>,
    /// The Raft index of the write.
    #[n(1)]
    pub index: u64,
}

/// Answer to a write that created evaluations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct EvalsResponse {
    /// The evaluations.
    #[n(0)]
    pub eval_ids: Vec<String>,
    /// The Raft index of the write.
    #[n(1)]
    pub index: u64,
}

/// Answer to a write.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct IndexResponse {
    /// The Raft index of the write.
    #[n(0)]
    pub index: u64,
}

/// `POST /v1/client/register`: a client's node as fingerprinted.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct NodeRegisterRequest {
    /// The node, with its `id` (`secret_id` is ignored: the server sets it
    /// from the connection's certificate).
    #[n(0)]
    pub node: Node,
}

/// `POST /v1/client/heartbeat`. The node is authenticated by the
/// certificate of the connection it arrives on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct HeartbeatRequest {
    /// The node.
    #[n(0)]
    pub node_id: String,
}

/// Answer to a registration or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct HeartbeatResponse {
    /// Heartbeat again within this long.
    #[n(0)]
    pub heartbeat_ttl: Duration,
    /// The Raft index the node's record is at.
    #[n(1)]
    pub index: u64,
    /// Every server of the region (`host:port`), for fail-over.
    #[n(2)]
    pub servers: Vec<String>,
    /// The leader's address, when known.
    #[n(3)]
    pub leader: Option<String>,
}

/// `GET /v1/client/allocs`: a node's allocations and the job versions they
/// run.
///
/// Every allocation the servers hold for the node is listed once: whole
/// in `allocs` when the servers changed it after the index the request
/// named (its `alloc_modify_index` is newer; every allocation when the
/// request named none), or as an [`AllocIndexStub`] in `unchanged`. An
/// observation names the index of its previous answer, so a node with
/// thousands of finished allocations gets what changed, not all of them,
/// on every notification (as Nomad's clients get an index per allocation
/// and pull only what changed).
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ClientAllocs {
    /// The index the answer reflects.
    #[n(0)]
    pub index: u64,
    /// The node's allocations the servers changed since the request's
    /// index (terminal ones the servers still hold, too).
    #[n(1)]
    pub allocs: Vec<Allocation>,
    /// Every job version the allocations in `allocs` reference.
    #[n(2)]
    pub jobs: Vec<Job>,
    /// The node's other allocations: unchanged by the servers since the
    /// request's index.
    #[n(3)]
    #[serde(default)]
    pub unchanged: Vec<AllocIndexStub>,
}

/// An allocation a node already has, in [`ClientAllocs::unchanged`]: what
/// the node checks its own copy against.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct AllocIndexStub {
    /// The allocation.
    #[n(0)]
    pub id: String,
    /// The index of the servers' last change to it.
    #[n(1)]
    pub alloc_modify_index: u64,
    /// The client status the servers hold.
    #[n(2)]
    pub client_status: ClientStatus,
    /// What the servers want.
    #[n(3)]
    pub desired_status: DesiredStatus,
}

impl AllocIndexStub {
    /// The stub of `a`.
    pub fn of(a: &Allocation) -> AllocIndexStub {
        AllocIndexStub {
            id: a.id.clone(),
            alloc_modify_index: a.alloc_modify_index,
            client_status: a.client_status,
            desired_status: a.desired_status,
        }
    }
}

/// A client's report about one allocation: only client-owned fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ClientAllocUpdate {
    /// The allocation.
    #[n(0)]
    pub alloc_id: String,
    /// Its status on the client.
    #[n(1)]
    pub client_status: ClientStatus,
    /// Why.
    #[n(2)]
    pub client_description: String,
    /// Per task.
    #[n(3)]
    pub task_states: VecMap<String, TaskState>,
    /// Health for a deployment, once decided.
    #[n(4)]
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// Unix nanoseconds of the change on the client.
    #[n(5)]
    pub modify_time: i64,
}

/// `POST /v1/client/allocs`: batched status updates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct AllocUpdateRequest {
    /// The node reporting (authenticated by the connection's certificate).
    #[n(0)]
    pub node_id: String,
    /// The updates, oldest first.
    #[n(2)]
    pub updates: Vec<ClientAllocUpdate>,
}

/// `GET /v1/status/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct LeaderResponse {
    /// The leader's address.
    #[n(0)]
    pub leader: Option<String>,
    /// The leader's name.
    #[n(1)]
    pub leader_name: Option<String>,
}

/// One server in `GET /v1/agent/members`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ServerMember {
    /// Name.
    #[n(0)]
    pub name: String,
    /// Address.
    #[n(1)]
    pub address: String,
    /// Region.
    #[n(2)]
    pub region: String,
    /// Datacenter.
    #[n(3)]
    pub datacenter: String,
    /// `alive` or `failed` (unreachable from the answering server).
    #[n(4)]
    pub status: String,
    /// Whether it leads the region.
    #[n(5)]
    pub leader: bool,
    /// Raft id.
    #[n(6)]
    pub raft_id: u64,
    /// wren version.
    #[n(7)]
    pub version: String,
}

/// One Raft peer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct RaftPeer {
    /// Raft id.
    #[n(0)]
    pub id: u64,
    /// Name.
    #[n(1)]
    pub name: String,
    /// Address.
    #[n(2)]
    pub address: String,
    /// Whether it leads.
    #[n(3)]
    pub leader: bool,
    /// Whether it votes.
    #[n(4)]
    pub voter: bool,
}

/// `GET /v1/operator/raft/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct RaftConfiguration {
    /// The peers.
    #[n(0)]
    pub peers: Vec<RaftPeer>,
    /// The current term.
    #[n(1)]
    pub term: u64,
    /// The last committed index.
    #[n(2)]
    pub committed: u64,
}

/// A saved state (`wren operator snapshot save|restore`): the bytes
/// `wren_state::State::save` writes (magic, format, CBOR tables, CRC-32),
/// as the snapshot file holds them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct StateSnapshot {
    /// The Raft index the state was read at (0 in a restore request).
    #[n(0)]
    pub index: u64,
    /// The snapshot.
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub data: Vec<u8>,
}

/// `GET /v1/client/node`: a client agent's own view of its node, which it
/// can give when no server answers.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ClientNodeStatus {
    /// The node as it registers.
    #[n(0)]
    pub node: Node,
    /// Whether the last heartbeat was answered.
    #[n(1)]
    pub connected: bool,
    /// Unix nanoseconds a server last answered (0: never).
    #[n(2)]
    pub last_contact: i64,
    /// The TTL the servers gave.
    #[n(3)]
    pub heartbeat_ttl: Duration,
    /// The servers it knows.
    #[n(4)]
    pub servers: Vec<String>,
    /// The last error talking to them.
    #[n(5)]
    pub last_error: Option<String>,
    /// Its allocations, with the status the client reports.
    #[n(6)]
    pub allocs: Vec<AllocStub>,
    /// Status updates not yet acknowledged by a server.
    #[n(7)]
    pub pending_updates: u32,
}

/// A piece of a task's log, from a client agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct LogChunk {
    /// Offset of `data` in the task's whole stream.
    #[n(0)]
    pub offset: u64,
    /// The bytes.
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub data: Vec<u8>,
    /// The task has exited and nothing more will come.
    #[n(2)]
    pub eof: bool,
}

/// `POST /v1/client/alloc/<id>/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct SignalRequest {
    /// One task, or every task when `None`.
    #[n(0)]
    pub task: Option<String>,
    /// A signal name such as `SIGHUP`.
    #[n(1)]
    pub signal: String,
}

/// `POST /v1/client/alloc/<id>/restart`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct RestartRequest {
    /// One task, or every running task when `None`.
    #[n(0)]
    pub task: Option<String>,
}

/// `POST /v1/client/alloc/<id>/exec`: run a command in a task's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ExecRequest {
    /// The task.
    #[n(0)]
    pub task: String,
    /// The command and its arguments.
    #[n(1)]
    pub command: Vec<String>,
}

/// What an exec'd command did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ExecResponse {
    /// Exit code (128 + signal when killed).
    #[n(0)]
    pub exit_code: i32,
    /// Its standard output.
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub stdout: Vec<u8>,
    /// Its standard error.
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    pub stderr: Vec<u8>,
}
