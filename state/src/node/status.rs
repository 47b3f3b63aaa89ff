//! What a server reports about its Raft node.

use openraft::{RaftMetrics, ServerState};

use crate::raft::C;
use crate::transport::{Peer, PeerId};

/// A server's role in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts writes and replicates them.
    Leader,
    /// Votes and replicates from the leader.
    Follower,
    /// Campaigning to lead.
    Candidate,
    /// Replicates but does not vote (joining, or not yet in a cluster).
    Learner,
    /// Stopped.
    Stopped,
}

impl Role {
    /// A lowercase name for people.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Stopped => "stopped",
        }
    }
}

/// A server in the cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Raft id.
    pub id: PeerId,
    /// Address.
    pub addr: String,
    /// Whether it votes (else a learner).
    pub voter: bool,
}

/// A server's view of its cluster (`wren operator raft list-peers`,
/// `wren server members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This server.
    pub id: PeerId,
    /// Its role.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<Peer>,
    /// The last entry in its log.
    pub last_log_index: u64,
    /// The last entry it knows to be committed.
    pub committed: u64,
    /// The last entry applied to its state.
    pub last_applied: u64,
    /// The last entry in its latest snapshot.
    pub snapshot_index: u64,
    /// Entries up to here have been removed from its log.
    pub purged_index: u64,
    /// The membership, voters and learners, by id.
    pub members: Vec<Member>,
}

pub(crate) fn from_metrics(m: &RaftMetrics<C>) -> Status {
    let membership = m.membership_config.membership();
    let voters: Vec<PeerId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| Member {
            id: *id,
            addr: node.addr.clone(),
            voter: voters.contains(id),
        })
        .collect();
    let leader = m.current_leader.map(|id| Peer {
        id,
        addr: membership
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
    });
    let role = match m.state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Stopped,
    };
    let index = |id: Option<&crate::raft::LogId>| id.map_or(0, |id| id.index);
    Status {
        id: m.id,
        role: if m.running_state.is_err() {
            Role::Stopped
        } else {
            role
        },
        term: m.current_term,
        leader,
        last_log_index: m.last_log_index.unwrap_or(0),
        committed: index(m.local_committed.as_ref()),
        last_applied: index(m.last_applied.as_ref()),
        snapshot_index: index(m.snapshot.as_ref()),
        purged_index: index(m.purged.as_ref()),
        members,
    }
}
