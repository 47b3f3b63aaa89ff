//! wren's replicated cluster state.
#![forbid(unsafe_code)]

pub mod fsm;
mod runtime;

pub use fsm::*;
pub use runtime::{JoinError, JoinHandle, Spawner};
