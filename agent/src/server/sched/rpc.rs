//! The internal, server-only calls of the scheduling machinery, and how a
//! server reaches the leader for them.
//!
//! | path | body | answer |
//! | --- | --- | --- |
//! | `/v1/internal/sched/dequeue` | [`DequeueRequest`] | [`DequeueResponse`] (a long poll) |
//! | `/v1/internal/sched/ack` | [`AckRequest`] | [`Settled`] |
//! | `/v1/internal/sched/plan` | [`PlanRequest`] | `PlanResult` |
//! | `/v1/internal/client/register` | [`Forwarded`] | `HeartbeatResponse` |
//! | `/v1/internal/client/heartbeat` | [`Forwarded`] | `HeartbeatResponse` |
//!
//! Every one is answered by the leader only; anyone else answers 5.03 and
//! the caller looks for the leader again.

use std::future::Future;
use std::time::Instant;

use coap_lite::ResponseType;
use minicbor::{Decode, Encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wren_model::{Evaluation, JobType, Plan};
use wren_state::Peer;

use crate::api::{HeartbeatRequest, NodeRegisterRequest};
use crate::server::core::Core;
use crate::wire::{ApiError, Method};

/// A worker on a follower asks the leader's broker for work.
pub const DEQUEUE_PATH: &str = "/v1/internal/sched/dequeue";
/// A worker acks or nacks an evaluation.
pub const ACK_PATH: &str = "/v1/internal/sched/ack";
/// A worker submits a plan to the leader's plan applier.
pub const PLAN_PATH: &str = "/v1/internal/sched/plan";
/// A follower forwards a client's registration.
pub const REGISTER_PATH: &str = "/v1/internal/client/register";
/// A follower forwards a client's heartbeat.
pub const HEARTBEAT_PATH: &str = "/v1/internal/client/heartbeat";

/// Asks for an evaluation.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct DequeueRequest {
    /// The scheduler types the worker runs.
    #[n(0)]
    pub types: Vec<JobType>,
    /// How long the leader may hold the request waiting for work, in
    /// milliseconds (capped by the leader).
    #[n(1)]
    pub wait_ms: u64,
}

/// An evaluation to work on, or none within the wait.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct DequeueResponse {
    /// The evaluation.
    #[n(0)]
    pub eval: Option<Evaluation>,
    /// The token that acks, nacks and submits plans for it.
    #[n(1)]
    pub token: String,
    /// Schedule on a snapshot at least this new (the leader's applied
    /// index when it handed the evaluation out).
    #[n(2)]
    pub wait_index: u64,
}

/// Settles an evaluation.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct AckRequest {
    /// The evaluation.
    #[n(0)]
    pub eval_id: String,
    /// Its token.
    #[n(1)]
    pub token: String,
    /// Nack instead of ack: redeliver later.
    #[n(2)]
    pub nack: bool,
    /// The evaluation as written when it is blocked again.
    #[n(3)]
    pub reblock: Option<Evaluation>,
}

/// The answer to an ack.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct Settled {}

/// A plan and the evaluations to write with it when it commits in full.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct PlanRequest {
    /// The plan, `eval_token` filled in.
    #[n(0)]
    pub plan: Plan,
    /// The evaluation's new state, a blocked evaluation and follow-ups:
    /// written in the plan's entry only if all of the plan commits.
    #[n(1)]
    pub evals: Vec<Evaluation>,
}

/// A client's request forwarded by a follower, with the fingerprint of
/// the certificate the client connected with.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct Forwarded {
    /// Hex SHA-256 of the client's certificate.
    #[n(0)]
    pub fingerprint: String,
    /// A registration.
    #[n(1)]
    pub register: Option<NodeRegisterRequest>,
    /// A heartbeat.
    #[n(2)]
    pub heartbeat: Option<HeartbeatRequest>,
}

/// The leader as this server knows it, when it is another server.
pub fn remote_leader(core: &Core) -> Option<Peer> {
    core.node.leader().filter(|l| l.id != core.node.id())
}

/// Whether this server leads.
pub fn is_leader(core: &Core) -> bool {
    core.node.leader().is_some_and(|l| l.id == core.node.id())
}

/// Sends `body` to the leader's `path` and decodes the answer.
pub async fn to_leader<B, T>(
    core: &Core,
    leader: &Peer,
    path: &str,
    body: &B,
) -> Result<T, ApiError>
where
    B: Encode<()>,
    T: for<'b> Decode<'b, ()> + DeserializeOwned,
{
    let client = core
        .peers
        .get(&leader.addr)
        .map_err(|e| ApiError::unavailable(format!("leader {}: {e}", leader.addr)))?;
    match client.send(Method::Post, path, body).await {
        Ok((v, _)) => Ok(v),
        Err(crate::wire::ClientError::Api(e)) => Err(e),
        Err(e) => Err(ApiError::unavailable(format!(
            "leader {}: {e}",
            leader.addr
        ))),
    }
}

/// Runs `local` when this server leads, else sends `body` to the
/// leader's `path`; while there is no leader, or the one asked is not
/// (any more), looks again until the core's deadline.
pub async fn on_leader<B, T, F, Fut>(
    core: &Core,
    path: &str,
    body: &B,
    local: F,
) -> Result<T, ApiError>
where
    B: Encode<()>,
    T: for<'b> Decode<'b, ()> + DeserializeOwned,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let until = Instant::now() + core.deadline;
    loop {
        let attempt = if is_leader(core) {
            Some(local().await)
        } else if let Some(leader) = remote_leader(core) {
            Some(to_leader(core, &leader, path, body).await)
        } else {
            None
        };
        match attempt {
            Some(Err(e))
                if e.code == ResponseType::ServiceUnavailable && Instant::now() >= until =>
            {
                return Err(e);
            }
            Some(Err(e)) if e.code == ResponseType::ServiceUnavailable => {}
            Some(done) => return done,
            None if Instant::now() >= until => {
                return Err(ApiError::unavailable(
                    "no leader: the region has no quorum now",
                ));
            }
            None => {}
        }
        let wait = std::time::Duration::from_millis(100)
            .min(until.saturating_duration_since(Instant::now()));
        smol::Timer::after(wait).await;
        core.node.wait_for_leader(wait).await;
    }
}

/// The error a non-leader answers internal calls with.
pub fn not_leader() -> ApiError {
    ApiError::unavailable("not the leader")
}
