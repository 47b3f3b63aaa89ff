//! openraft, configured for wren and kept inside this crate.
//!
//! Everything that names an openraft type lives under this module or in
//! `store`/`node`; the public API speaks only in wren's own types, so a
//! move to another openraft version stays local.

pub(crate) mod codec;
pub(crate) mod network;
pub(crate) mod rpc;

use std::fmt;
use std::sync::Arc;

use openraft::BasicNode;
use openraft::impls::leader_id_adv;

use crate::fsm::{ApplyError, Outcome};
use crate::runtime::SmolRuntime;

/// A proposal as the log carries it: the CBOR of a
/// [`Proposal`](crate::Proposal), encoded once by the proposer and decoded
/// once per server when applied.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Request(pub(crate) Arc<[u8]>);

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.0.len())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

/// What applying a request returns to the proposer.
pub(crate) type Response = Result<Outcome, ApplyError>;

openraft::declare_raft_types!(
    /// wren's choice of openraft types.
    pub(crate) TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        AsyncRuntime = SmolRuntime,
);

pub(crate) type C = TypeConfig;
pub(crate) type LeaderId = leader_id_adv::LeaderId<u64, u64>;
pub(crate) type LogId = openraft::LogId<LeaderId>;
pub(crate) type Vote = openraft::impls::Vote<LeaderId>;
pub(crate) type Entry = openraft::Entry<LeaderId, openraft::EntryPayload<Request, u64, BasicNode>>;
pub(crate) type Membership = openraft::Membership<u64, BasicNode>;
pub(crate) type StoredMembership = openraft::StoredMembership<LeaderId, u64, BasicNode>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<LeaderId, u64, BasicNode>;
/// A snapshot's bytes: [`State::save`](crate::State::save) output.
pub(crate) type SnapshotData = Arc<[u8]>;
pub(crate) type Snapshot = openraft::Snapshot<LeaderId, u64, BasicNode, SnapshotData>;
pub(crate) type Raft = openraft::Raft<C, crate::store::sm::StateMachineStore>;
