//! `wren operator ...`: the Raft peers as this server sees them, removing a
//! peer (on the leader, wherever it is), and saving and restoring the
//! state.
//!
//! A snapshot is the state as [`State::save`] writes it (magic, format,
//! CBOR tables, CRC-32), read consistently, carried in a
//! [`StateSnapshot`]; it travels as one message, so it must fit the wire's
//! Max-Message-Size (4 MiB by default). A restore is
//! checked, then committed through the log like any write, so every
//! server replaces its state at the same index.

use wren_state::{Command, Restore, State};

use super::{changed, operators, route};
use crate::api::{IndexResponse, RaftConfiguration, RaftPeer, StateSnapshot};
use crate::server::core::Core;
use crate::server::membership::{self, Change, Membership};
use crate::wire::{ApiError, HandlerResult, Method, Request, Router};

/// Registers the operator routes.
pub fn register(core: &Core, members: &Membership, router: &mut Router) {
    let roles = operators();
    let (c, m) = (core.clone(), members.clone());
    router.route(Method::Get, "/v1/operator/raft/peers", roles, move |req| {
        peers(c.clone(), m.clone(), req)
    });
    let (c, m) = (core.clone(), members.clone());
    router.route(
        Method::Delete,
        "/v1/operator/raft/peer/:id",
        roles,
        move |req| remove_peer(c.clone(), m.clone(), req),
    );
    route(
        router,
        Method::Get,
        "/v1/operator/snapshot",
        roles,
        core,
        save,
    );
    route(
        router,
        Method::Post,
        "/v1/operator/snapshot",
        roles,
        core,
        restore,
    );
}

/// The Raft configuration as this server knows it, named from what the
/// membership table knows.
pub fn configuration(core: &Core, members: &Membership) -> RaftConfiguration {
    let status = core.node.status();
    let leader = status.leader.as_ref().map(|l| l.id);
    RaftConfiguration {
        peers: status
            .members
            .iter()
            .map(|m| RaftPeer {
                id: m.id,
                name: members.get(m.id).map(|s| s.name).unwrap_or_default(),
                address: m.addr.clone(),
                leader: leader == Some(m.id),
                voter: m.voter,
            })
            .collect(),
        term: status.term,
        committed: status.committed,
    }
}

async fn peers(core: Core, members: Membership, req: Request) -> HandlerResult {
    // A consistent read first, so that a follower's view of the membership
    // is at least as new as every change acknowledged before the call.
    let stale = super::flag(&req, "stale");
    let state = core.read(stale).await?;
    membership::learn_missing(&core, &members).await;
    Ok(super::reply_at(
        &req,
        &configuration(&core, &members),
        state.index(),
    ))
}

async fn remove_peer(core: Core, members: Membership, req: Request) -> HandlerResult {
    let raw = super::id(&req)?;
    let id: u64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("peer id {raw:?} is not a number")))?;
    let status = core.node.status();
    if !status.members.iter().any(|m| m.id == id) {
        return Err(super::not_found("raft peer", &raw));
    }
    membership::change(&core, &members, Change::Remove(id)).await?;
    let index = core.node.status().committed;
    Ok(changed(&req, &IndexResponse { index }, index))
}

async fn save(core: Core, req: Request) -> HandlerResult {
    let stale = super::flag(&req, "stale");
    let state = core.read(stale).await?;
    let data = state
        .save()
        .map_err(|e| ApiError::internal(format!("encoding the state: {e}")))?;
    let index = state.index();
    Ok(super::reply_at(&req, &StateSnapshot { index, data }, index))
}

async fn restore(core: Core, req: Request) -> HandlerResult {
    let body: StateSnapshot = req.decode()?;
    if body.data.is_empty() {
        return Err(ApiError::bad_request("the snapshot is empty"));
    }
    let loaded = State::load(&body.data)
        .map_err(|e| ApiError::bad_request(format!("not a usable snapshot: {e}")))?;
    let written = core
        .write(Command::Restore(Restore {
            snapshot: body.data,
        }))
        .await?;
    eprintln!(
        "wren agent: state restored from a snapshot taken at index {} (now index {})",
        loaded.index(),
        written.index
    );
    Ok(changed(
        &req,
        &IndexResponse {
            index: written.index,
        },
        written.index,
    ))
}
