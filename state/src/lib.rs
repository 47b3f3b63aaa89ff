//! wren's replicated cluster state.
#![forbid(unsafe_code)]

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
pub use store::{Durability, StorageError};
pub use transport::{BoxFuture, Peer, PeerId, Transport, TransportError};
