//! A node's configuration, and how it maps onto openraft's.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::Durability;
use crate::transport::PeerId;

/// Raft timings before scaling. Edge links are slow and lossy: a region
/// raises `multiplier` (Nomad's `raft_multiplier`) rather than each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// How often a leader sends heartbeats.
    pub heartbeat: Duration,
    /// A follower waits at least this long without hearing from a leader
    /// before it campaigns; each campaign draws a fresh timeout between
    /// the minimum and the maximum.
    pub election_min: Duration,
    /// The longest such wait.
    pub election_max: Duration,
    /// Scales all three; 1 for a LAN.
    pub multiplier: u32,
}

impl Default for RaftTiming {
    /// A leader that dies is replaced within 1.5 s on a LAN.
    ///
    /// Followers refuse to vote until `election_max` has passed since they
    /// last heard from the leader (openraft's leader lease), so the first
    /// campaign after a leader dies usually fails and the second succeeds:
    /// failover takes between one and two times `election_max`. Keeping
    /// `election_min` at half of `election_max` makes the second campaign
    /// always late enough.
    fn default() -> RaftTiming {
        RaftTiming {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(300),
            election_max: Duration::from_millis(600),
            multiplier: 1,
        }
    }
}

impl RaftTiming {
    fn scaled(&self, d: Duration) -> u64 {
        let ms = d.saturating_mul(self.multiplier.max(1)).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).max(1)
    }
}

/// When to snapshot the state and compact the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Take a snapshot after this many entries since the last one.
    pub every_entries: u64,
    /// Or once the log since the last snapshot holds this many bytes (0:
    /// entries only). One entry can carry a whole plan, so a count alone
    /// lets the log, and the log pages sled caches, grow to tens of MB.
    pub every_bytes: u64,
    /// Entries already in a snapshot kept in the log, so that briefly
    /// lagging followers catch up from the log rather than a snapshot.
    /// Entries carrying plans are large (21 KB on average in a burst of
    /// 1,000 jobs), so 256 keep about as much log as a snapshot of that
    /// state is big (5 MB); 1,024 kept 21 MB, and sled kept 5 MB more of
    /// those pages in memory (scripts/bench-footprint).
    pub keep_entries: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> SnapshotPolicy {
        SnapshotPolicy {
            every_entries: 8192,
            every_bytes: 8 << 20,
            keep_entries: 256,
        }
    }
}

/// Everything a [`StateNode`](crate::StateNode) needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This server's Raft id: unique in the region and stable across
    /// restarts (keep it in the data directory).
    pub id: PeerId,
    /// The address other servers reach this one at.
    pub addr: String,
    /// The region, as openraft's cluster name (in its logs). What keeps
    /// regions apart on the wire is the agent's TLS: Raft messages are
    /// accepted only from `server.<region>.wren` certificates.
    pub region: String,
    /// Where the log and snapshots live.
    pub data_dir: PathBuf,
    /// Raft timings.
    pub timing: RaftTiming,
    /// Snapshot and compaction policy.
    pub snapshot: SnapshotPolicy,
    /// sled's page cache in bytes (sled's own default of 1 GiB is wrong
    /// for a small board).
    pub cache_bytes: u64,
    /// What "written" means; [`Durability::PowerLoss`] unless measuring.
    pub durability: Durability,
    /// Largest piece of a snapshot in one message to a lagging follower.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot accepted from a leader (it is held in memory while
    /// it arrives, as the state itself is).
    pub max_snapshot_bytes: usize,
    /// Largest encoded command accepted by [`StateNode::write`](crate::StateNode::write).
    pub max_command_bytes: usize,
    /// Most log entries in one append message to a follower.
    pub max_entries_per_append: u64,
    /// Largest Raft message handed to the [`Transport`](crate::Transport)
    /// (the wire's frame limit): appends are split to fit. A single entry
    /// larger than this (a restore, a huge plan) still travels alone.
    pub max_message_bytes: usize,
}

impl NodeConfig {
    /// A configuration with wren's defaults.
    pub fn new(id: PeerId, addr: impl Into<String>, data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            id,
            addr: addr.into(),
            region: "global".to_owned(),
            data_dir: data_dir.into(),
            timing: RaftTiming::default(),
            snapshot: SnapshotPolicy::default(),
            cache_bytes: 4 << 20,
            durability: Durability::PowerLoss,
            snapshot_chunk_bytes: 512 << 10,
            max_snapshot_bytes: 256 << 20,
            max_command_bytes: 16 << 20,
            max_entries_per_append: 256,
            max_message_bytes: 1 << 20,
        }
    }

    /// openraft's configuration for this node.
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, String> {
        let t = &self.timing;
        let config = openraft::Config {
            cluster_name: self.region.clone(),
            heartbeat_interval: t.scaled(t.heartbeat),
            election_timeout_min: t.scaled(t.election_min),
            election_timeout_max: t.scaled(t.election_max),
            install_snapshot_timeout: t.scaled(t.election_max).max(10_000),
            max_payload_entries: self.max_entries_per_append.max(1),
            replication_lag_threshold: self.snapshot.every_entries.saturating_mul(2).max(1000),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.snapshot.every_entries.max(1),
            ),
            max_in_snapshot_log_to_keep: self.snapshot.keep_entries,
            // async-channel allocates bounded buffers up front: keep the
            // queues between openraft's tasks small.
            api_channel_size: Some(1024),
            notification_channel_size: Some(1024),
            state_machine_channel_size: Some(256),
            enable_pre_vote: Some(true),
            ..openraft::Config::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}
