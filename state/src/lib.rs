//! wren's replicated cluster state.
#![forbid(unsafe_code)]

mod runtime;

pub use runtime::{JoinError, JoinHandle, Spawner};
