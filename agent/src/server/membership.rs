//! Who the servers of this region are, beyond what Raft's membership says:
//! their names, datacenters and versions, learnt by a small hello exchange
//! between servers, and the leader-only membership changes (a server
//! joining as a voter, `wren operator raft remove-peer`) that any server
//! accepts and forwards to the leader.
//!
//! - `POST /v1/internal/hello` (servers only): "here I am" with a
//!   [`ServerInfo`]; the answer is the receiver's own info, every server
//!   it knows, and whether it already belongs to a formed region. Hellos
//!   travel transitively: a server learns of the ones its peers know, so
//!   `retry_join` may name a single server.
//! - `POST /v1/internal/membership` (servers only): a [`Change`] applied by
//!   the leader; a follower forwards it there.
//!
//! Deliberately not here: failure detection by gossip (Nomad's Serf). A
//! server is "alive" when it answers a hello now; the Raft leader's own
//! heartbeats are what decide leadership.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coap_lite::ResponseType;
use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};
use smol::future::FutureExt;
use wren_state::{NodeError, Peer, PeerId};

use super::core::Core;
use crate::wire::{ApiError, HandlerResult, Method, Request, Roles, Router};

/// Where servers say hello.
pub const HELLO_PATH: &str = "/v1/internal/hello";
/// Where membership changes go.
pub const MEMBERSHIP_PATH: &str = "/v1/internal/membership";

/// What a server says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct ServerInfo {
    /// Raft id.
    #[n(0)]
    pub id: PeerId,
    /// Agent name.
    #[n(1)]
    pub name: String,
    /// Where it listens (`host:port`).
    #[n(2)]
    pub addr: String,
    /// Region.
    #[n(3)]
    pub region: String,
    /// Datacenter.
    #[n(4)]
    pub datacenter: String,
    /// wren version.
    #[n(5)]
    pub version: String,
    /// Its `bootstrap_expect`.
    #[n(6)]
    pub bootstrap_expect: u32,
}

/// `POST /v1/internal/hello`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct Hello {
    /// The sender.
    #[n(0)]
    pub from: ServerInfo,
}

/// The answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct HelloReply {
    /// The receiver.
    #[n(0)]
    pub me: ServerInfo,
    /// Every server the receiver knows (itself included).
    #[n(1)]
    pub known: Vec<ServerInfo>,
    /// Whether the receiver belongs to a formed region (it has a Raft
    /// membership).
    #[n(2)]
    pub initialized: bool,
    /// The leader's address, when the receiver knows one.
    #[n(3)]
    pub leader: Option<String>,
}

/// A change of the Raft membership, made by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub enum Change {
    /// Add a server as a voter (it catches up as a learner first).
    #[n(0)]
    AddVoter(#[n(0)] ServerInfo),
    /// Remove a server.
    #[n(1)]
    Remove(#[n(0)] PeerId),
}

/// The servers this one knows of, by Raft id (itself included).
#[derive(Debug, Clone)]
pub struct Membership {
    me: ServerInfo,
    probe_timeout: Duration,
    known: Arc<Mutex<BTreeMap<PeerId, ServerInfo>>>,
}

impl Membership {
    /// A table holding only `me`; hellos to other servers wait at most
    /// `probe_timeout` for an answer.
    pub fn new(me: ServerInfo, probe_timeout: Duration) -> Membership {
        let known = BTreeMap::from([(me.id, me.clone())]);
        Membership {
            me,
            probe_timeout,
            known: Arc::new(Mutex::new(known)),
        }
    }

    /// This server.
    pub fn me(&self) -> &ServerInfo {
        &self.me
    }

    /// How long a server may take to answer a hello before it counts as
    /// unreachable.
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<PeerId, ServerInfo>> {
        // Plain data; a panic elsewhere cannot leave it half-changed.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what a server said about itself (or what another said about
    /// it). Servers of other regions are ignored; a server that moved
    /// (same id, new address) replaces its old record.
    pub fn learn(&self, info: &ServerInfo) {
        if info.id == 0 || info.region != self.me.region || info.id == self.me.id {
            return;
        }
        let mut t = self.table();
        // One record per address: a server whose data was wiped comes back
        // with a new id at the old address.
        t.retain(|id, s| *id == info.id || s.addr != info.addr || *id == self.me.id);
        t.insert(info.id, info.clone());
    }

    /// Every server known, by id.
    pub fn known(&self) -> Vec<ServerInfo> {
        self.table().values().cloned().collect()
    }

    /// What is known of one server.
    pub fn get(&self, id: PeerId) -> Option<ServerInfo> {
        self.table().get(&id).cloned()
    }

    /// Forgets a server (after it was removed from the region).
    pub fn forget(&self, id: PeerId) {
        if id != self.me.id {
            self.table().remove(&id);
        }
    }
}

/// Registers the hello and membership-change routes (servers only).
pub fn register(core: &Core, members: &Membership, router: &mut Router) {
    let (c, m) = (core.clone(), members.clone());
    router.route(Method::Post, HELLO_PATH, Roles::SERVER, move |req| {
        receive_hello(c.clone(), m.clone(), req)
    });
    let (c, m) = (core.clone(), members.clone());
    router.route(Method::Post, MEMBERSHIP_PATH, Roles::SERVER, move |req| {
        receive_change(c.clone(), m.clone(), req)
    });
}

/// Says hello to the server at `addr`, waiting at most the probe timeout.
pub async fn hello(core: &Core, members: &Membership, addr: &str) -> Result<HelloReply, String> {
    let timeout = members.probe_timeout();
    let client = core.peers.get(addr).map_err(|e| e.to_string())?;
    let body = Hello {
        from: members.me().clone(),
    };
    let call = async {
        client
            .send::<_, HelloReply>(Method::Post, HELLO_PATH, &body)
            .await
            .map(|(r, _)| r)
            .map_err(|e| e.to_string())
    };
    let reply = call
        .or(async {
            smol::Timer::after(timeout).await;
            Err(format!("no answer within {timeout:?}"))
        })
        .await?;
    members.learn(&reply.me);
    for s in &reply.known {
        members.learn(s);
    }
    Ok(reply)
}

/// Says hello to every server of the Raft membership this table knows
/// nothing about (after a restart, the table starts with this server
/// only), concurrently; those that do not answer stay unknown.
pub async fn learn_missing(core: &Core, members: &Membership) {
    let missing: Vec<String> = core
        .node
        .status()
        .members
        .into_iter()
        .filter(|m| m.id != members.me().id && members.get(m.id).is_none())
        .map(|m| m.addr)
        .collect();
    let calls: Vec<_> = missing
        .into_iter()
        .map(|addr| {
            let (core, members) = (core.clone(), members.clone());
            core.ex
                .clone()
                .spawn(async move { hello(&core, &members, &addr).await })
        })
        .collect();
    for c in calls {
        let _ = c.await;
    }
}

/// Handles a hello from another server.
pub async fn receive_hello(core: Core, members: Membership, req: Request) -> HandlerResult {
    let hello: Hello = req.decode()?;
    if hello.from.region != core.identity.region {
        return Err(ApiError::bad_request(format!(
            "server {} is in region {:?}, this one in {:?}",
            hello.from.name, hello.from.region, core.identity.region
        )));
    }
    members.learn(&hello.from);
    let status = core.node.status();
    Ok(req.reply(&HelloReply {
        me: members.me().clone(),
        known: members.known(),
        initialized: !status.members.is_empty(),
        leader: status.leader.map(|l| l.addr),
    }))
}

/// Applies `change` on the leader, wherever it is: locally when this
/// server leads, else forwarded (retrying while an election runs, up to
/// the core's deadline).
pub async fn change(core: &Core, members: &Membership, change: Change) -> Result<(), ApiError> {
    let until = Instant::now() + core.deadline;
    let mut last = "no leader is known".to_owned();
    loop {
        let leader = match apply_locally(core, members, &change).await {
            Ok(()) => return Ok(()),
            Err(NodeError::NotLeader { leader }) => leader,
            Err(NodeError::Membership(why)) => return Err(ApiError::conflict(why)),
            Err(NodeError::Stopped(why)) => return Err(ApiError::unavailable(why)),
        };
        if let Some(leader) = leader.filter(|l| l.id != core.node.id()) {
            match forward(core, &leader, &change).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code == ResponseType::ServiceUnavailable => {
                    last = format!("leader {}: {}", leader.addr, e.message);
                }
                Err(e) => return Err(e),
            }
        }
        if Instant::now() >= until {
            return Err(ApiError::unavailable(format!(
                "the region's membership could not be changed within {:?}: {last}",
                core.deadline
            )));
        }
        core.node
            .wait_for_leader(
                Duration::from_millis(250).min(until.saturating_duration_since(Instant::now())),
            )
            .await;
    }
}

async fn apply_locally(
    core: &Core,
    members: &Membership,
    change: &Change,
) -> Result<(), NodeError> {
    if core.node.leader().is_none_or(|l| l.id != core.node.id()) {
        return Err(NodeError::NotLeader {
            leader: core.node.leader(),
        });
    }
    match change {
        Change::AddVoter(info) => {
            members.learn(info);
            core.node.add_voter(info.id, info.addr.clone()).await
        }
        Change::Remove(id) => {
            core.node.remove_peer(*id).await?;
            members.forget(*id);
            Ok(())
        }
    }
}

async fn forward(core: &Core, leader: &Peer, change: &Change) -> Result<(), ApiError> {
    send_change(core, &leader.addr, change).await
}

/// Sends `change` to the server at `addr`, which applies it if it leads
/// (5.03 if it does not: ask its leader instead).
pub async fn send_change(core: &Core, addr: &str, change: &Change) -> Result<(), ApiError> {
    let leader = Peer {
        id: 0,
        addr: addr.to_owned(),
    };
    let client = core
        .peers
        .get(&leader.addr)
        .map_err(|e| ApiError::unavailable(format!("leader {}: {e}", leader.addr)))?;
    let resp = client
        .request(
            Method::Post,
            MEMBERSHIP_PATH,
            &wren_model::codec::to_cbor(change),
        )
        .await
        .map_err(|e| ApiError::unavailable(format!("leader {}: {e}", leader.addr)))?;
    match resp.as_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Handles a membership change forwarded by another server.
pub async fn receive_change(core: Core, members: Membership, req: Request) -> HandlerResult {
    let c: Change = req.decode()?;
    match apply_locally(&core, &members, &c).await {
        Ok(()) => Ok(crate::wire::Response::empty(ResponseType::Changed)),
        // Not (or no longer) the leader: let the sender look again.
        Err(NodeError::NotLeader { .. }) => Err(ApiError::unavailable("not the leader")),
        Err(NodeError::Membership(why)) => Err(ApiError::conflict(why)),
        Err(NodeError::Stopped(why)) => Err(ApiError::unavailable(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, addr: &str) -> ServerInfo {
        ServerInfo {
            id,
            name: format!("s{id}"),
            addr: addr.into(),
            region: "global".into(),
            ..ServerInfo::default()
        }
    }

    #[test]
    fn the_table_keeps_one_record_per_server_and_address() {
        let m = Membership::new(info(1, "10.0.0.1:5684"), Duration::from_secs(1));
        m.learn(&info(2, "10.0.0.2:5684"));
        m.learn(&info(3, "10.0.0.3:5684"));
        // Another region's server is not ours.
        m.learn(&ServerInfo {
            region: "eu".into(),
            ..info(9, "10.9.0.1:5684")
        });
        // A wiped server back at its address with a new id replaces the old.
        m.learn(&info(7, "10.0.0.3:5684"));
        // Nobody can overwrite this server's own record.
        m.learn(&info(1, "10.0.0.99:5684"));
        let ids: Vec<u64> = m.known().iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 7]);
        assert_eq!(m.get(1).unwrap().addr, "10.0.0.1:5684");
        m.forget(2);
        m.forget(1);
        let ids: Vec<u64> = m.known().iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 7]);
    }

    #[test]
    fn changes_and_hellos_round_trip_through_cbor() {
        let c = Change::AddVoter(info(4, "a:1"));
        let back: Change = wren_model::codec::from_cbor(&wren_model::codec::to_cbor(&c)).unwrap();
        assert_eq!(back, c);
        let r = HelloReply {
            me: info(1, "a:1"),
            known: vec![info(1, "a:1"), info(2, "b:1")],
            initialized: true,
            leader: Some("b:1".into()),
        };
        let back: HelloReply =
            wren_model::codec::from_cbor(&wren_model::codec::to_cbor(&r)).unwrap();
        assert_eq!(back, r);
    }
}
