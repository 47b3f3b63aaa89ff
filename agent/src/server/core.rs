//! The part of a server every endpoint uses: its Raft replica, writes that
//! find the leader, reads that are consistent (read-index, also on
//! followers) or stale on request, and blocking queries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::ResponseType;
use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};
use smol::Executor;
use wren_state::{
    ApplyError, Command, Outcome, Peer, ReadError, State, StateNode, Table, WriteError, Written,
};

use super::peers::Peers;
use crate::wire::{ApiError, ClientError, HandlerResult, Method, Request, Response};

/// Where followers send writes.
pub const WRITE_PATH: &str = "/v1/internal/write";
/// Where followers ask the leader for a read index.
pub const READ_INDEX_PATH: &str = "/v1/internal/read-index";

/// The longest a blocking query waits before answering anyway.
pub const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);

/// What identifies this server in its region.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The agent's name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its datacenter.
    pub datacenter: String,
    /// Where other agents reach it (`host:port`).
    pub addr: String,
}

/// A server's replica and its connections to the others.
#[derive(Clone)]
pub struct Core {
    /// This server.
    pub identity: Identity,
    /// The Raft replica.
    pub node: StateNode,
    /// Connections to other servers.
    pub peers: Peers,
    /// The agent's executor.
    pub ex: Arc<Executor<'static>>,
    /// How long a write or read-index may take before giving up (scaled by
    /// the Raft multiplier: slow links get longer).
    pub deadline: Duration,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A write committed on the leader, as the leader tells a follower.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
struct Forwarded {
    #[n(0)]
    index: u64,
    #[n(1)]
    outcome: Outcome,
}

/// The leader's read index.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
struct ReadIndex {
    #[n(0)]
    index: u64,
}

impl Core {
    /// Commits `command` through the leader, wherever it is: locally when
    /// this server leads, else forwarded to the leader (retrying while an
    /// election runs, up to the deadline).
    pub async fn write(&self, command: Command) -> Result<Written, ApiError> {
        let until = Instant::now() + self.deadline;
        loop {
            let Some(result) = within(until, self.node.write(command.clone())).await else {
                return Err(self.not_committed_in_time());
            };
            let leader = match result {
                Ok(w) => return Ok(w),
                Err(WriteError::NotLeader { leader }) => leader,
                Err(e) => return Err(write_error(e)),
            };
            let tried = leader.as_ref().map(|l| l.id);
            if let Some(leader) = leader.filter(|l| l.id != self.node.id()) {
                match self.forward_write(&leader, &command).await {
                    Ok(w) => return Ok(w),
                    // 5.03: the command was certainly not applied (the leader
                    // moved on, or could not be reached): look again. Anything
                    // else, 5.04 (it may have been applied) included, is the
                    // caller's to see: retrying could apply it twice.
                    Err(e) if e.code == ResponseType::ServiceUnavailable => {}
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() >= until {
                return Err(ApiError::unavailable(
                    "no leader: the region cannot accept writes now (no quorum?)",
                ));
            }
            self.wait_for_another_leader(tried, until).await;
        }
    }

    async fn forward_write(&self, leader: &Peer, command: &Command) -> Result<Written, ApiError> {
        let client = self
            .peers
            .get(&leader.addr)
            .map_err(|e| ApiError::unavailable(format!("leader {}: {e}", leader.addr)))?;
        let body = wren_model::codec::to_cbor(command);
        let resp = client
            .request(Method::Post, WRITE_PATH, &body)
            .await
            .map_err(|e| match e {
                // Sent, and then no answer: the leader may have applied it.
                ClientError::Timeout { .. } | ClientError::ConnectionLost { sent: true, .. } => {
                    outcome_unknown(format!(
                        "forwarded to the leader at {}, which did not answer ({e}): the change may or may not have been applied; check before retrying",
                        leader.addr
                    ))
                }
                e => ApiError::unavailable(format!("leader {}: {e}", leader.addr)),
            })?;
        if let Some(e) = resp.as_error() {
            return Err(e);
        }
        let f: Forwarded = wren_model::codec::from_cbor(&resp.body).map_err(|e| {
            ApiError::internal(format!("leader {} answered a write with {e}", leader.addr))
        })?;
        Ok(Written {
            index: f.index,
            outcome: f.outcome,
        })
    }

    /// The state, consistent with every write acknowledged before the call
    /// (Raft read-index: the leader confirms it still leads; a follower asks
    /// the leader for its commit index and waits to have applied it), or,
    /// when `stale`, whatever this server has applied.
    pub async fn read(&self, stale: bool) -> Result<State, ApiError> {
        if stale {
            return Ok(self.node.snapshot());
        }
        let until = Instant::now() + self.deadline;
        loop {
            let Some(result) = within(until, self.node.read_barrier()).await else {
                return Err(ApiError::unavailable(format!(
                    "no quorum confirmed the leadership within {:?}; retry, or pass ?stale to read this server's state",
                    self.deadline
                )));
            };
            let leader = match result {
                Ok(_) => return Ok(self.node.snapshot()),
                Err(ReadError::NotLeader { leader }) => leader,
                Err(ReadError::NoQuorum(why)) => {
                    return Err(ApiError::unavailable(format!(
                        "no quorum to confirm leadership: {why}"
                    )));
                }
                Err(ReadError::Stopped(why)) => return Err(ApiError::unavailable(why)),
            };
            let tried = leader.as_ref().map(|l| l.id);
            if let Some(leader) = leader.filter(|l| l.id != self.node.id())
                && let Ok(index) = self.leader_read_index(&leader).await
            {
                let remaining = until.saturating_duration_since(Instant::now());
                if let Some(state) = self
                    .node
                    .wait_for(remaining, |s| (s.index() >= index).then(|| s.clone()))
                    .await
                {
                    return Ok(state);
                }
            }
            if Instant::now() >= until {
                return Err(ApiError::unavailable(
                    "no leader to confirm a consistent read; retry, or pass ?stale to read this server's state",
                ));
            }
            self.wait_for_another_leader(tried, until).await;
        }
    }

    async fn leader_read_index(&self, leader: &Peer) -> Result<u64, ApiError> {
        let client = self
            .peers
            .get(&leader.addr)
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let (ri, _): (ReadIndex, _) = client
            .send(Method::Post, READ_INDEX_PATH, &ReadIndex::default())
            .await
            .map_err(|e| ApiError::unavailable(format!("leader {}: {e}", leader.addr)))?;
        Ok(ri.index)
    }

    /// The state for a read request: stale when it says `?stale`, and for a
    /// blocking query (`?index=N` or an observation) once `table` has
    /// changed after N (or the wait runs out).
    pub async fn read_for(&self, req: &Request, table: Table) -> Result<State, ApiError> {
        let stale = req
            .query("stale")
            .is_some_and(|v| v.is_empty() || v == "true");
        if req.min_index > 0 {
            let wait = req
                .query("wait")
                .and_then(|w| wren_model::Duration::parse(w).ok())
                .map_or(MAX_BLOCKING_WAIT, |d| d.to_std().min(MAX_BLOCKING_WAIT));
            self.node.wait_for_index(table, req.min_index, wait).await;
        }
        self.read(stale).await
    }

    /// Waits until this server knows a leader other than `tried` (the one
    /// that just failed; any leader when `None`), for at most 250 ms and
    /// never past `until`: a dead leader stays "known" until an election
    /// ends, and asking it again at once would only spin.
    async fn wait_for_another_leader(&self, tried: Option<u64>, until: Instant) {
        let timeout =
            Duration::from_millis(250).min(until.saturating_duration_since(Instant::now()));
        self.node
            .wait_for_status(timeout, |s| {
                s.leader.as_ref().is_some_and(|l| Some(l.id) != tried)
            })
            .await;
    }

    /// A leader cut off from its quorum keeps a proposal pending: after the
    /// deadline the caller is told, but the proposal may still commit if
    /// this server keeps leading once the quorum is back.
    fn not_committed_in_time(&self) -> ApiError {
        outcome_unknown(format!(
            "the change was not committed within {:?} (the region may have lost its quorum): it may or may not be applied later; check before retrying",
            self.deadline
        ))
    }

    /// Handles a forwarded write on the leader.
    pub async fn receive_write(self, req: Request) -> HandlerResult {
        let command: Command = wren_model::codec::from_cbor(&req.body)
            .map_err(|e| ApiError::bad_request(format!("forwarded command: {e}")))?;
        let until = Instant::now() + self.deadline;
        let Some(result) = within(until, self.node.write(command)).await else {
            return Err(self.not_committed_in_time());
        };
        match result {
            // Internal and CBOR only: the outcome has no JSON form.
            Ok(w) => Ok(Response {
                code: ResponseType::Changed,
                body: wren_model::codec::to_cbor(&Forwarded {
                    index: w.index,
                    outcome: w.outcome,
                }),
                content_format: Some(crate::wire::CBOR),
                index: Some(w.index),
            }),
            // Not the leader any more, nothing proposed: let the follower
            // look again (5.03).
            Err(WriteError::NotLeader { .. }) => Err(ApiError::unavailable("not the leader")),
            // Stopping with the command possibly in the log: not 5.03, which
            // would make the follower send it again.
            Err(WriteError::Stopped(why)) => Err(outcome_unknown(format!(
                "the leader stopped while writing ({why}): the change may or may not have been applied; check before retrying"
            ))),
            Err(e) => Err(write_error(e)),
        }
    }

    /// Answers a follower's read-index request on the leader.
    pub async fn receive_read_index(self, req: Request) -> HandlerResult {
        let until = Instant::now() + self.deadline;
        let Some(result) = within(until, self.node.read_barrier()).await else {
            return Err(ApiError::unavailable(
                "no quorum confirmed the leadership in time",
            ));
        };
        match result {
            Ok(index) => Ok(req.reply(&ReadIndex { index })),
            Err(e) => Err(ApiError::unavailable(e.to_string())),
        }
    }
}

/// `fut`'s output, or `None` when `until` passes first.
async fn within<T>(until: Instant, fut: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::at(until).await;
        None
    })
    .await
}

/// Maps a write failure to the API error a caller sees.
pub fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Rejected { error, .. } => apply_error(error),
        WriteError::NotLeader { .. } => ApiError::unavailable("no leader"),
        WriteError::OutcomeUnknown { .. } => outcome_unknown(
            "leadership changed while writing: the change may or may not have been applied; check before retrying",
        ),
        WriteError::TooLarge { bytes, limit } => ApiError::new(
            ResponseType::RequestEntityTooLarge,
            format!("the change is {bytes} bytes, over the limit of {limit}"),
        ),
        WriteError::Stopped(why) => ApiError::unavailable(format!("the server is stopping: {why}")),
    }
}

/// 5.04: a write whose outcome is unknown (it may or may not have been
/// applied). Never retried by servers; 5.03 means "certainly not applied".
pub fn outcome_unknown(message: impl Into<String>) -> ApiError {
    ApiError::new(ResponseType::GatewayTimeout, message)
}

/// Maps an apply error to an API error.
pub fn apply_error(e: ApplyError) -> ApiError {
    let msg = e.to_string();
    match e {
        ApplyError::UnknownJob(_)
        | ApplyError::UnknownJobVersion { .. }
        | ApplyError::UnknownNode(_)
        | ApplyError::UnknownDeployment(_)
        | ApplyError::UnknownAlloc(_) => ApiError::not_found(msg),
        ApplyError::IndexMismatch { .. }
        | ApplyError::NodeDraining(_)
        | ApplyError::DeploymentNotActive { .. }
        | ApplyError::CanariesUnhealthy { .. }
        | ApplyError::AllocNotInDeployment { .. } => ApiError::conflict(msg),
        ApplyError::NodeSecretMismatch(_) => ApiError::forbidden(msg),
        ApplyError::Invalid(_) | ApplyError::Undecodable(_) => ApiError::bad_request(msg),
    }
}

/// `GET /v1/status/leader`.
pub async fn leader(core: Core, req: Request) -> HandlerResult {
    let leader = core.node.leader();
    Ok(req.reply(&crate::api::LeaderResponse {
        leader: leader.as_ref().map(|p| p.addr.clone()),
        leader_name: None,
    }))
}
