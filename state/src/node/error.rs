//! What can go wrong talking to a [`StateNode`](crate::StateNode), in wren's
//! terms: none of these names an openraft type.

use std::io;

use openraft::errors::{
    ClientWriteError, Fatal, ForwardToLeader, LinearizableReadError, RaftError,
};

use crate::fsm::{ApplyError, SnapshotError};
use crate::raft::C;
use crate::store::StorageError;
use crate::transport::Peer;

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The configuration is not usable (e.g. election timeouts not above
    /// the heartbeat).
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The data directory could not be opened or read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Raft could not start from what is stored.
    #[error("raft did not start from {dir}: {reason}")]
    Raft {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

/// Why a write was not (known to be) applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This server is not the leader: forward the write to `leader`, if
    /// one is known, else retry shortly.
    #[error("not the leader{}", leader_hint(.leader))]
    NotLeader {
        /// The leader this server knows of.
        leader: Option<Peer>,
    },
    /// The command was committed at `index` but could not be applied; the
    /// state did not change.
    #[error("command at index {index} was not applied: {error}")]
    Rejected {
        /// The entry's Raft index.
        index: u64,
        /// Why.
        error: ApplyError,
    },
    /// Leadership changed after the command was proposed: it may or may
    /// not commit. Retry only what is safe to apply twice.
    #[error("leadership changed; the command may or may not be applied{}", leader_hint(.leader))]
    OutcomeUnknown {
        /// The new leader, if known.
        leader: Option<Peer>,
    },
    /// The encoded command exceeds the configured limit.
    #[error("command is {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The node has stopped (shut down, or a storage failure stopped it).
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why a consistent read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Only the leader serves consistent reads; ask `leader`, or read
    /// stale.
    #[error("not the leader{}", leader_hint(.leader))]
    NotLeader {
        /// The leader this server knows of.
        leader: Option<Peer>,
    },
    /// The leader could not confirm it still leads (no quorum answered).
    #[error("no quorum to confirm leadership: {0}")]
    NoQuorum(String),
    /// The node has stopped.
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why a membership change or bootstrap failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// Only the leader changes membership.
    #[error("not the leader{}", leader_hint(.leader))]
    NotLeader {
        /// The leader this server knows of.
        leader: Option<Peer>,
    },
    /// The change is not possible now (another change in progress, this
    /// server not among the members, removing the last voter).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The node has stopped.
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why `wren operator snapshot save|restore` failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotIoError {
    /// Reading or writing the snapshot file.
    #[error("snapshot i/o: {0}")]
    Io(#[from] io::Error),
    /// The state could not be read consistently.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The bytes are not a valid snapshot.
    #[error(transparent)]
    Invalid(#[from] SnapshotError),
    /// The snapshot exceeds the configured command limit.
    #[error("snapshot is over {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The restore could not be committed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

fn leader_hint(leader: &Option<Peer>) -> String {
    match leader {
        Some(p) => format!("; the leader is {} at {}", p.id, p.addr),
        None => "; no leader is known".to_owned(),
    }
}

pub(crate) fn leader_of(f: &ForwardToLeader<C>) -> Option<Peer> {
    let id = f.leader_id?;
    let addr = f
        .leader_node
        .as_ref()
        .map(|n| n.addr.clone())
        .unwrap_or_default();
    Some(Peer { id, addr })
}

pub(crate) fn fatal(f: &Fatal<C>) -> String {
    f.to_string()
}

impl From<RaftError<C, ClientWriteError<C>>> for WriteError {
    fn from(e: RaftError<C, ClientWriteError<C>>) -> WriteError {
        match e {
            RaftError::Fatal(f) => WriteError::Stopped(fatal(&f)),
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::NotLeader {
                leader: leader_of(&f),
            },
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                WriteError::OutcomeUnknown {
                    leader: leader_of(&f),
                }
            }
            RaftError::APIError(other) => WriteError::Stopped(other.to_string()),
        }
    }
}

impl From<RaftError<C, ClientWriteError<C>>> for NodeError {
    fn from(e: RaftError<C, ClientWriteError<C>>) -> NodeError {
        match e {
            RaftError::Fatal(f) => NodeError::Stopped(fatal(&f)),
            RaftError::APIError(ClientWriteError::ForwardToLeader(f))
            | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => NodeError::NotLeader {
                leader: leader_of(&f),
            },
            RaftError::APIError(other) => NodeError::Membership(other.to_string()),
        }
    }
}

impl From<RaftError<C, LinearizableReadError<C>>> for ReadError {
    fn from(e: RaftError<C, LinearizableReadError<C>>) -> ReadError {
        match e {
            RaftError::Fatal(f) => ReadError::Stopped(fatal(&f)),
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => {
                ReadError::NotLeader {
                    leader: leader_of(&f),
                }
            }
            RaftError::APIError(LinearizableReadError::QuorumNotEnough(q)) => {
                ReadError::NoQuorum(q.to_string())
            }
        }
    }
}
