//! wren's replicated cluster state: the state machine, its Raft log and
//! snapshots on disk, and the Raft node that keeps the servers of a region
//! in agreement.
//!
//! - [`fsm`]: the state machine. [`Command`]s applied to in-memory tables
//!   ([`State`]) held as persistent maps with secondary indexes; O(1)
//!   snapshots for readers; blocking queries ([`StateWatch`]); the CBOR
//!   snapshot encoding. Pure and deterministic: apply takes the Raft index
//!   and the leader's timestamp and never fails by panicking.
//! - [`StateNode`]: one server's replica. openraft (0.10 alpha) runs on
//!   smol through this crate's runtime, on the executor the caller hands
//!   in as a [`Spawner`]; the log, vote, committed index and snapshots live
//!   in sled under the data directory and are made power-loss durable
//!   (`fdatasync`) before Raft is told they are written.
//! - [`Transport`]: how Raft messages leave. `state` encodes every Raft
//!   message as CBOR and asks the agent to carry opaque bytes to another
//!   server, whose agent calls [`StateNode::handle_rpc`].
//! - [`memnet`]: an in-memory network of nodes for tests and benchmarks.
//!
//! Deliberately not here: sockets, TLS and the wire (the agent owns them
//! and implements [`Transport`]); threads and the executor (the agent owns
//! one `smol::Executor`); clocks in the state machine (the leader stamps
//! each command); scheduling decisions (`sched` reads a [`State`] and
//! proposes plans); server discovery and `bootstrap_expect` (the agent
//! decides when to call [`StateNode::initialize`]). No openraft type
//! appears in this crate's API, so moving to another openraft version
//! stays local to this crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fsm;
pub mod memnet;
mod node;
mod raft;
mod runtime;
mod store;
#[cfg(test)]
mod testutil;
mod transport;

pub use fsm::*;
pub use node::{
    Bootstrap, Member, NodeConfig, NodeError, OpenError, RaftTiming, ReadError, Role,
    SavedSnapshot, SnapshotIoError, SnapshotPolicy, StateNode, Status, WriteError, Written,
};
pub use runtime::{JoinError, JoinHandle, Spawner};
pub use store::{Durability, StorageError, release_sled_garbage};
pub use transport::{BoxFuture, Peer, PeerId, Transport, TransportError};
