//! Durable storage on sled: the Raft log and its metadata, and state
//! machine snapshots.

pub(crate) mod disk;
pub(crate) mod log;
pub(crate) mod sm;

#[cfg(test)]
mod tests;

pub use disk::{Durability, StorageError};
