//! wren's replicated cluster state.
#![forbid(unsafe_code)]

pub mod fsm;
mod raft;
mod runtime;
mod store;
#[cfg(test)]
mod testutil;

pub use fsm::*;
pub use runtime::{JoinError, JoinHandle, Spawner};
pub use store::{Durability, StorageError};
