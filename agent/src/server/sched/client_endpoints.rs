//! The servers' side of the client protocol (see `api.rs`):
//!
//! - `POST /v1/client/register`: stores the node, bound to the certificate
//!   it connected with (`secret_id` is that certificate's fingerprint),
//!   with evaluations for system jobs and its jobs when it becomes ready;
//!   answers the heartbeat TTL.
//! - `POST /v1/client/heartbeat`: resets the node's TTL on the leader; a
//!   node that was down or disconnected is ready again, with evaluations.
//! - `GET /v1/client/allocs?node=ID` (observable): the node's allocations
//!   and every job version they run, answered again each time one of them
//!   changes.
//! - `POST /v1/client/allocs`: batched client status updates; a failed
//!   allocation gets its job an evaluation (rescheduling).
//!
//! Registration and heartbeats are decided by the leader, whose timers
//! track liveness: a follower forwards them with the client's certificate
//! fingerprint. A client may touch only its own node.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use wren_model::{Allocation, ClientStatus, DesiredStatus, NodeStatus, TriggeredBy};
use wren_state::{Command, State, Table, UpdateAllocsFromClient, UpdateNodeStatus, UpsertNode};

use super::Shared;
use super::evals::{for_job, node_ready};
use super::rpc::{Forwarded, HEARTBEAT_PATH, REGISTER_PATH, is_leader, not_leader, on_leader};
use crate::api::{
    AllocIndexStub, AllocUpdateRequest, ClientAllocs, HeartbeatRequest, HeartbeatResponse,
    IndexResponse, NodeRegisterRequest,
};
use crate::server::core::MAX_BLOCKING_WAIT;
use crate::wire::{ApiError, Fingerprint, HandlerResult, Request};

/// The longest node id accepted (UUIDs are 36).
const MAX_ID: usize = 128;

/// `POST /v1/client/register`.
pub async fn register(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let body: NodeRegisterRequest = req.decode()?;
    check_id(&body.node.id)?;
    let fwd = Forwarded {
        fingerprint: req.peer.fingerprint.to_string(),
        register: Some(body),
        heartbeat: None,
    };
    let resp: HeartbeatResponse = on_leader(&shared.core, REGISTER_PATH, &fwd, || {
        register_here(&shared, &fwd)
    })
    .await?;
    Ok(req.reply(&resp).with_index(resp.index))
}

/// `POST /v1/client/heartbeat`.
pub async fn heartbeat(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let body: HeartbeatRequest = req.decode()?;
    check_id(&body.node_id)?;
    let fwd = Forwarded {
        fingerprint: req.peer.fingerprint.to_string(),
        register: None,
        heartbeat: Some(body),
    };
    let resp: HeartbeatResponse = on_leader(&shared.core, HEARTBEAT_PATH, &fwd, || {
        heartbeat_here(&shared, &fwd)
    })
    .await?;
    Ok(req.reply(&resp).with_index(resp.index))
}

/// A registration or heartbeat forwarded by a follower (leader only).
pub async fn forwarded(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let fwd: Forwarded = req.decode()?;
    if !is_leader(&shared.core) {
        return Err(not_leader());
    }
    let resp = match (&fwd.register, &fwd.heartbeat) {
        (Some(_), None) => register_here(&shared, &fwd).await?,
        (None, Some(_)) => heartbeat_here(&shared, &fwd).await?,
        _ => {
            return Err(ApiError::bad_request(
                "a forwarded client request carries one registration or one heartbeat",
            ));
        }
    };
    Ok(req.reply(&resp).with_index(resp.index))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "node id {id:?} must be 1 to {MAX_ID} printable ASCII characters"
        )));
    }
    Ok(())
}

async fn register_here(shared: &Shared, fwd: &Forwarded) -> Result<HeartbeatResponse, ApiError> {
    let Some(reg) = &fwd.register else {
        return Err(ApiError::bad_request("no registration"));
    };
    if !shared.liveness.is_enabled() {
        return Err(not_leader());
    }
    let now = crate::ids::now_nanos();
    let state = shared.core.node.snapshot();
    let mut node = reg.node.clone();
    node.secret_id.clone_from(&fwd.fingerprint);
    node.status = match node.status {
        NodeStatus::Initializing => NodeStatus::Initializing,
        _ => NodeStatus::Ready,
    };
    node.status_description = "registered".into();
    let old = state.node(&node.id);
    if old.is_none() {
        // Drain and eligibility are the operator's; a new node starts
        // eligible and not draining whatever it says.
        node.drain = None;
        node.eligibility = wren_model::Eligibility::Eligible;
    }
    if let Some(old) = old
        && !old.secret_id.is_empty()
        && old.secret_id != node.secret_id
    {
        return Err(ApiError::forbidden(format!(
            "node {} is registered with another certificate",
            node.id
        )));
    }
    let changed =
        old.is_none_or(|o| o.status != node.status || o.compute_class() != node.compute_class());
    let evals = if node.status == NodeStatus::Ready && changed {
        let trigger = match old.map(|o| o.status) {
            Some(NodeStatus::Disconnected) => TriggeredBy::Reconnect,
            _ => TriggeredBy::NodeUpdate,
        };
        node_ready(&state, &node.id, trigger, now)
    } else {
        Vec::new()
    };
    let id = node.id.clone();
    let written = shared
        .core
        .write(Command::UpsertNode(UpsertNode { node, evals }))
        .await?;
    answer(shared, &id, written.index, now)
}

async fn heartbeat_here(shared: &Shared, fwd: &Forwarded) -> Result<HeartbeatResponse, ApiError> {
    let Some(hb) = &fwd.heartbeat else {
        return Err(ApiError::bad_request("no heartbeat"));
    };
    if !shared.liveness.is_enabled() {
        return Err(not_leader());
    }
    let now = crate::ids::now_nanos();
    let state = shared.core.node.snapshot();
    let node = state.node(&hb.node_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "node {} is not registered; register it first",
            hb.node_id
        ))
    })?;
    if node.secret_id != fwd.fingerprint {
        return Err(ApiError::forbidden(format!(
            "node {} is registered with another certificate",
            node.id
        )));
    }
    let mut index = node.modify_index;
    if node.status != NodeStatus::Ready {
        let trigger = if node.status == NodeStatus::Disconnected {
            TriggeredBy::Reconnect
        } else {
            TriggeredBy::NodeUpdate
        };
        let evals = node_ready(&state, &node.id, trigger, now);
        let written = shared
            .core
            .write(Command::UpdateNodeStatus(UpdateNodeStatus {
                node_id: node.id.clone(),
                status: NodeStatus::Ready,
                description: "heartbeating".into(),
                evals,
            }))
            .await?;
        index = written.index;
    }
    answer(shared, &hb.node_id, index, now)
}

fn answer(
    shared: &Shared,
    node: &str,
    index: u64,
    now: i64,
) -> Result<HeartbeatResponse, ApiError> {
    let ttl = shared.liveness.beat(node, now).ok_or_else(not_leader)?;
    let status = shared.core.node.status();
    Ok(HeartbeatResponse {
        heartbeat_ttl: ttl,
        index,
        servers: status
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.addr.clone())
            .collect(),
        leader: status.leader.map(|l| l.addr),
    })
}

/// The certificate a node is bound to.
fn node_cert(state: &State, node: &str) -> Option<Fingerprint> {
    let hex = state.node(node)?.secret_id.as_bytes().to_vec();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        *out.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
    }
    Some(Fingerprint(out))
}

/// A state in which `node` can be checked: this server's, or a consistent
/// one when this server does not know the node yet.
async fn state_knowing(shared: &Shared, node: &str, stale: bool) -> Result<State, ApiError> {
    let state = shared.core.node.snapshot();
    if state.node(node).is_some() || stale {
        return Ok(state);
    }
    shared.core.read(false).await
}

/// `GET /v1/client/allocs?node=ID`, a blocking query on the node's
/// allocations. With an index (an observation's previous answer), only
/// the allocations changed since come whole; see [`ClientAllocs`].
pub async fn allocs(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let node = req
        .query("node")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("?node=ID is required"))?
        .to_owned();
    let stale = req
        .query("stale")
        .is_some_and(|v| v.is_empty() || v == "true");
    let wait = req
        .query("wait")
        .and_then(|w| wren_model::Duration::parse(w).ok())
        .map_or(MAX_BLOCKING_WAIT, |d| d.to_std().min(MAX_BLOCKING_WAIT));
    let until = Instant::now() + wait;
    let mut state = if req.min_index == 0 {
        shared.core.read(stale).await?
    } else {
        state_knowing(&shared, &node, stale).await?
    };
    req.check_node_owner(node_cert(&state, &node).as_ref())?;
    loop {
        let index = state.node_allocs_index(&node);
        let remaining = until.saturating_duration_since(Instant::now());
        if req.min_index == 0 || index > req.min_index || remaining.is_zero() {
            let body = client_allocs(&state, &node, index, req.min_index);
            return Ok(req.reply(&body).with_index(index.max(1)));
        }
        state = shared
            .core
            .node
            .wait_for_index(Table::Allocs, state.table_index(Table::Allocs), remaining)
            .await;
    }
}

/// The node's allocations as of `state`: whole when the servers changed
/// them after `since`, as stubs otherwise. A first answer (`since` 0)
/// sends whole what the client may have to act on (allocations it has not
/// finished, and those the servers gave up as lost) and stubs of those it
/// finished and reported itself, so that it stays small however many
/// finished allocations the servers still hold.
fn client_allocs(state: &State, node: &str, index: u64, since: u64) -> ClientAllocs {
    let mut allocs = Vec::new();
    let mut unchanged = Vec::new();
    for a in state.allocs_by_node(node) {
        let whole = if since == 0 {
            !a.client_terminal() || a.client_status == ClientStatus::Lost
        } else {
            a.alloc_modify_index > since
        };
        if whole {
            allocs.push((**a).clone());
        } else {
            unchanged.push(AllocIndexStub::of(a));
        }
    }
    let versions: BTreeSet<(&str, u64)> = allocs
        .iter()
        .map(|a| (a.job_id.as_str(), a.job_version))
        .collect();
    let jobs = versions
        .into_iter()
        .filter_map(|(id, v)| state.job_version(id, v).map(|j| (**j).clone()))
        .collect();
    ClientAllocs {
        index,
        allocs,
        jobs,
        unchanged,
    }
}

/// `POST /v1/client/allocs`.
pub async fn update_allocs(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let body: AllocUpdateRequest = req.decode()?;
    check_id(&body.node_id)?;
    let state = state_knowing(&shared, &body.node_id, false).await?;
    req.check_node_owner(node_cert(&state, &body.node_id).as_ref())?;
    let now = crate::ids::now_nanos();
    let mut failed_jobs = BTreeSet::new();
    let mut allocs = Vec::with_capacity(body.updates.len());
    for u in body.updates {
        if u.client_status == ClientStatus::Failed
            && let Some(old) = state.alloc(&u.alloc_id)
            && old.node_id == body.node_id
            && old.client_status != ClientStatus::Failed
            && old.desired_status == DesiredStatus::Run
        {
            failed_jobs.insert(old.job_id.clone());
        }
        allocs.push(Allocation {
            id: u.alloc_id,
            node_id: body.node_id.clone(),
            client_status: u.client_status,
            client_description: u.client_description,
            task_states: u.task_states,
            deployment_status: u.deployment_status,
            modify_time: u.modify_time,
            ..Allocation::default()
        });
    }
    let evals = failed_jobs
        .iter()
        .filter_map(|id| state.job(id))
        .filter(|j| !j.stop)
        .map(|j| for_job(j, TriggeredBy::AllocFailure, None, now))
        .collect();
    let written = shared
        .core
        .write(Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
            node_id: body.node_id,
            allocs,
            evals,
        }))
        .await?;
    Ok(req
        .reply(&IndexResponse {
            index: written.index,
        })
        .with_index(written.index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_bounded_printable_ascii() {
        assert!(check_id("2f1c-uuid").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(MAX_ID + 1)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_certificates_parse_from_the_secret_id() {
        let fp = Fingerprint([0xab; 32]);
        let mut state = State::new();
        let node = wren_model::Node {
            id: "n1".into(),
            secret_id: fp.to_string(),
            ..Default::default()
        };
        state
            .apply(
                1,
                wren_state::Proposal {
                    issued_at: 1,
                    command: Command::UpsertNode(UpsertNode {
                        node,
                        evals: vec![],
                    }),
                },
            )
            .unwrap();
        assert_eq!(node_cert(&state, "n1"), Some(fp));
        assert_eq!(node_cert(&state, "n2"), None);
    }
}
