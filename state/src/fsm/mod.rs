//! The state machine: commands applied to in-memory tables.
//!
//! Pure and synchronous: no Raft, no disk, no clock. [`State`] holds the
//! tables; [`State::apply`] applies one [`Proposal`]; the query methods are
//! the read side; [`State::save`] and [`State::load`] are the snapshot
//! encoding; [`StateWatch`] publishes applied states to blocking readers.

pub mod apply;
pub mod codec;
pub mod command;
pub mod query;
pub mod tables;
pub mod watch;

pub use apply::GcPolicy;
pub use codec::SnapshotError;
pub use command::*;
pub use query::Counts;
pub use tables::{State, Table};
pub use watch::StateWatch;
