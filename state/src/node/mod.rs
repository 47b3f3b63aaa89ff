//! [`StateNode`]: one server's replica of the cluster state, and the API
//! the agent drives it through.

mod config;
mod error;
mod receive;
mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::errors::{ClientWriteError, ForwardReason, InitializeError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, ChangeMembers, ReadPolicy};
use openraft_rt::WatchReceiver;

pub use config::{NodeConfig, RaftTiming, SnapshotPolicy};
pub use error::{NodeError, OpenError, ReadError, SnapshotIoError, WriteError};
pub use status::{Member, Role, Status};

use crate::fsm::{Command, Outcome, Proposal, Restore, State, StateWatch, Table};
use crate::raft::network::NetworkFactory;
use crate::raft::{Raft, Request};
use crate::runtime::Spawner;
use crate::store::disk::{Disk, DiskConfig};
use crate::store::log::LogStore;
use crate::store::sm::StateMachineStore;
use crate::transport::{Peer, PeerId, Transport};

/// A committed and applied write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The Raft index of its entry: the state at this index and later
    /// reflects it.
    pub index: u64,
    /// What applying it reported.
    pub outcome: Outcome,
}

/// What [`StateNode::initialize`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// This call formed the cluster.
    Initialized,
    /// The cluster was already formed (by this server or another); nothing
    /// changed.
    AlreadyInitialized,
}

/// A snapshot written by [`StateNode::save_snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// The Raft index the state was read at.
    pub index: u64,
    /// Bytes written.
    pub bytes: usize,
}

/// One server's replica of the cluster state: a Raft node with its log and
/// snapshots on disk and the tables in memory.
///
/// Cheap to clone (a handle). Every method may be called from any task on
/// any executor: the node runs its own background work on the
/// [`Spawner`] it was opened with.
#[derive(Clone)]
pub struct StateNode {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    raft: Raft,
    spawner: Spawner,
    watch: StateWatch,
    disk: Weak<Disk>,
    incoming: Mutex<Option<receive::Incoming>>,
}

impl fmt::Debug for StateNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateNode")
            .field("id", &self.inner.config.id)
            .field("addr", &self.inner.config.addr)
            .finish_non_exhaustive()
    }
}

fn now_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// How often [`snapshot_by_size`] looks at the log's growth.
const SIZE_CHECK: Duration = Duration::from_secs(2);

/// Asks openraft for a snapshot whenever the log has grown by `every_bytes`
/// since the last request: its own policy counts entries only. Ends when
/// the node's storage closes.
async fn snapshot_by_size(raft: Raft, disk: Weak<Disk>, every_bytes: u64) {
    loop {
        async_io::Timer::after(SIZE_CHECK).await;
        let Some(disk) = disk.upgrade() else { return };
        let grown = disk.unsnapshotted.load(Ordering::Relaxed) >= every_bytes;
        if grown {
            disk.unsnapshotted.store(0, Ordering::Relaxed);
        }
        drop(disk);
        if grown && raft.trigger().snapshot().await.is_err() {
            return;
        }
    }
}

impl StateNode {
    /// Opens (or creates) the node's storage under `config.data_dir` and
    /// starts its Raft node, sending messages through `transport` and
    /// running background tasks on `spawner`. A new node waits to be
    /// [initialized](Self::initialize) or added by a leader.
    pub async fn open(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
        spawner: Spawner,
    ) -> Result<StateNode, OpenError> {
        let raft_config = Arc::new(config.raft_config().map_err(OpenError::Config)?);
        let disk = Arc::new(Disk::open(&DiskConfig {
            dir: config.data_dir.clone(),
            cache_bytes: config.cache_bytes,
            durability: config.durability,
        })?);
        let watch = StateWatch::default();
        let sm = StateMachineStore::open(disk.clone(), watch.clone())?;
        let mut log = LogStore::new(disk.clone());
        let committed = log.read_committed().await.map_err(|e| OpenError::Raft {
            dir: config.data_dir.clone(),
            reason: format!("cannot read the committed index: {e}"),
        })?;
        let network = NetworkFactory {
            id: config.id,
            transport,
            snapshot_chunk_bytes: config.snapshot_chunk_bytes,
            max_message_bytes: config.max_message_bytes,
        };
        let raft = spawner
            .enter(Raft::new(config.id, raft_config, network, log, sm))
            .await
            .map_err(|e| OpenError::Raft {
                dir: config.data_dir.clone(),
                reason: e.to_string(),
            })?;
        // openraft re-applies the log up to the stored committed index in
        // the background; wait for it, so that even a stale read right
        // after a restart sees everything this server knew committed.
        if let Some(committed) = committed {
            let recovered = |s: &State| (s.index() >= committed.index).then_some(());
            let _ = watch.wait_for(Duration::from_secs(600), recovered).await;
        }
        let weak = Arc::downgrade(&disk);
        drop(disk);
        if config.snapshot.every_bytes > 0 {
            spawner.spawn(snapshot_by_size(
                raft.clone(),
                weak.clone(),
                config.snapshot.every_bytes,
            ));
        }
        Ok(StateNode {
            inner: Arc::new(Inner {
                config,
                raft,
                spawner,
                watch,
                disk: weak,
                incoming: Mutex::new(None),
            }),
        })
    }

    /// This server's Raft id.
    pub fn id(&self) -> PeerId {
        self.inner.config.id
    }

    /// The address other servers reach this one at.
    pub fn addr(&self) -> &str {
        &self.inner.config.addr
    }

    /// Forms a new cluster of `members` (this server among them). Do it
    /// once, on one server (`bootstrap_expect`): if the cluster already
    /// exists this changes nothing and says so.
    pub async fn initialize(
        &self,
        members: impl IntoIterator<Item = Peer>,
    ) -> Result<Bootstrap, NodeError> {
        let nodes: BTreeMap<PeerId, BasicNode> = members
            .into_iter()
            .map(|p| (p.id, BasicNode { addr: p.addr }))
            .collect();
        match self
            .inner
            .spawner
            .enter(self.inner.raft.initialize(nodes))
            .await
        {
            Ok(()) => Ok(Bootstrap::Initialized),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Ok(Bootstrap::AlreadyInitialized)
            }
            Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
                Err(NodeError::Membership(e.to_string()))
            }
            Err(RaftError::Fatal(f)) => Err(NodeError::Stopped(f.to_string())),
        }
    }

    /// Adds a server as a voter: it first catches up as a learner, then the
    /// membership change commits. Leader only.
    pub async fn add_voter(&self, id: PeerId, addr: impl Into<String>) -> Result<(), NodeError> {
        let node = BasicNode { addr: addr.into() };
        let raft = &self.inner.raft;
        let already = self
            .status()
            .members
            .iter()
            .any(|m| m.id == id && m.voter && m.addr == node.addr);
        if already {
            return Ok(());
        }
        self.inner
            .spawner
            .enter(raft.add_learner(id, node, true))
            .await?;
        let voters = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.inner
            .spawner
            .enter(raft.change_membership(voters, false))
            .await?;
        Ok(())
    }

    /// Removes a server from the cluster (`wren operator raft
    /// remove-peer`). Leader only; removing an unknown server does nothing.
    pub async fn remove_peer(&self, id: PeerId) -> Result<(), NodeError> {
        let Some(member) = self.status().members.into_iter().find(|m| m.id == id) else {
            return Ok(());
        };
        let change = if member.voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.inner
            .spawner
            .enter(self.inner.raft.change_membership(change, false))
            .await?;
        Ok(())
    }

    /// Proposes `command`, stamped with this server's clock, and waits
    /// until it is committed and applied here. Leader only: a follower
    /// answers [`WriteError::NotLeader`] naming the leader to forward to.
    ///
    /// A leader cut off from its quorum keeps the proposal pending until it
    /// learns of a new leader ([`WriteError::OutcomeUnknown`]), which may
    /// be long: callers apply their own deadline.
    pub async fn write(&self, command: Command) -> Result<Written, WriteError> {
        let proposal = Proposal {
            issued_at: now_nanos(),
            command,
        };
        let bytes = wren_model::codec::to_cbor(&proposal);
        let limit = self.inner.config.max_command_bytes;
        if bytes.len() > limit {
            return Err(WriteError::TooLarge {
                bytes: bytes.len(),
                limit,
            });
        }
        let request = Request(bytes.into());
        let raft = &self.inner.raft;
        // A new leader takes writes once a quorum has acknowledged it (its
        // lease); until then openraft refuses them before appending, so
        // waiting briefly and retrying is safe.
        let deadline = Instant::now() + self.lease_wait();
        let response = loop {
            match self
                .inner
                .spawner
                .enter(raft.client_write(request.clone()))
                .await
            {
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                    if f.reason == ForwardReason::LeaseExpired && Instant::now() < deadline =>
                {
                    self.wait_for_raft_progress(deadline).await;
                }
                other => break other?,
            }
        };
        let index = response.log_id.index;
        match response.data {
            Ok(outcome) => Ok(Written { index, outcome }),
            Err(error) => Err(WriteError::Rejected { index, error }),
        }
    }

    /// How long a leader without a valid lease waits for one.
    fn lease_wait(&self) -> Duration {
        let t = &self.inner.config.timing;
        t.election_max.saturating_mul(t.multiplier.max(1))
    }

    /// Waits until Raft's metrics change, for at most 20 ms or until
    /// `deadline`.
    async fn wait_for_raft_progress(&self, deadline: Instant) {
        let mut metrics = self.inner.raft.metrics();
        let changed = async {
            let _ = metrics.changed().await;
        };
        let at = deadline.min(Instant::now() + Duration::from_millis(20));
        let timer = async {
            async_io::Timer::at(at).await;
        };
        smol::future::or(changed, timer).await;
    }

    /// Confirms this server still leads (a read-index round with a quorum)
    /// and waits until everything committed before the call is applied
    /// here. Returns that index: a snapshot taken now is at least as new
    /// as any write acknowledged before the call.
    pub async fn read_barrier(&self) -> Result<u64, ReadError> {
        let raft = &self.inner.raft;
        let read = self
            .inner
            .spawner
            .enter(raft.ensure_linearizable(ReadPolicy::ReadIndex))
            .await?;
        Ok(read.index())
    }

    /// The state as applied on this server, possibly behind the leader
    /// (`--stale` reads). O(1).
    pub fn snapshot(&self) -> State {
        self.inner.watch.current()
    }

    /// A linearizable read: [`read_barrier`](Self::read_barrier), then the
    /// state. Leader only.
    pub async fn consistent_snapshot(&self) -> Result<State, ReadError> {
        let index = self.read_barrier().await?;
        let state = self.snapshot();
        debug_assert!(state.index() >= index);
        Ok(state)
    }

    /// Waits until `table` changed after `after` here, or `timeout`
    /// passes, and returns the state then (a blocking query).
    pub async fn wait_for_index(&self, table: Table, after: u64, timeout: Duration) -> State {
        self.inner.watch.wait_for_index(table, after, timeout).await
    }

    /// Waits until `check` finds what it looks for in the applied state,
    /// or `timeout` passes (`None`).
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        self.inner.watch.wait_for(timeout, check).await
    }

    /// Who leads, this server's role and progress, and the members.
    pub fn status(&self) -> Status {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        status::from_metrics(&metrics)
    }

    /// The leader as this server knows it.
    pub fn leader(&self) -> Option<Peer> {
        self.status().leader
    }

    /// Waits until this server knows a leader, or `timeout` passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<Peer> {
        self.wait_for_status(timeout, |s| s.leader.is_some())
            .await
            .and_then(|s| s.leader)
    }

    /// Waits until `check` accepts this server's [`Status`] (it is checked
    /// whenever Raft's progress changes), or `timeout` passes (`None`).
    pub async fn wait_for_status(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Status) -> bool,
    ) -> Option<Status> {
        let deadline = Instant::now() + timeout;
        let mut metrics = self.inner.raft.metrics();
        loop {
            let status = status::from_metrics(&metrics.borrow_watched());
            if check(&status) {
                return Some(status);
            }
            let changed = async { metrics.changed().await.is_ok() };
            let timer = async {
                async_io::Timer::at(deadline).await;
                false
            };
            if !smol::future::or(changed, timer).await {
                let status = status::from_metrics(&metrics.borrow_watched());
                return check(&status).then_some(status);
            }
        }
    }

    /// Takes a snapshot now and compacts the log behind it (normally the
    /// [snapshot policy](SnapshotPolicy) decides).
    pub async fn trigger_snapshot(&self) -> Result<(), NodeError> {
        let trigger = self.inner.raft.trigger();
        self.inner
            .spawner
            .enter(trigger.snapshot())
            .await
            .map_err(|f| NodeError::Stopped(f.to_string()))
    }

    /// Writes a consistent snapshot of the state to `out` (`wren operator
    /// snapshot save`). Leader only.
    pub async fn save_snapshot(
        &self,
        out: &mut (impl Write + Send),
    ) -> Result<SavedSnapshot, SnapshotIoError> {
        let state = self.consistent_snapshot().await?;
        let bytes = state.save()?;
        out.write_all(&bytes)?;
        out.flush()?;
        Ok(SavedSnapshot {
            index: state.index(),
            bytes: bytes.len(),
        })
    }

    /// Replaces the whole state with a snapshot read from `input` (`wren
    /// operator snapshot restore`), through the log like any write. The
    /// snapshot is checked before it is proposed. Leader only.
    pub async fn restore_snapshot(
        &self,
        input: &mut (impl Read + Send),
    ) -> Result<Written, SnapshotIoError> {
        let limit = self.inner.config.max_command_bytes;
        let mut bytes = Vec::new();
        input.take(limit as u64 + 1).read_to_end(&mut bytes)?;
        if bytes.len() > limit {
            return Err(SnapshotIoError::TooLarge { limit });
        }
        State::load(&bytes)?;
        Ok(self
            .write(Command::Restore(Restore { snapshot: bytes }))
            .await?)
    }

    /// Stops the Raft node and waits (up to ten seconds) until its storage
    /// is closed, so the data directory can be opened again.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        let raft = &self.inner.raft;
        let stopped = self.inner.spawner.enter(raft.shutdown()).await;
        self.inner.watch.close();
        stopped.map_err(|e| NodeError::Stopped(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.inner.disk.strong_count() > 0 {
            if Instant::now() > deadline {
                return Err(NodeError::Stopped(format!(
                    "storage in {} is still open after shutdown",
                    self.inner.config.data_dir.display()
                )));
            }
            async_io::Timer::after(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}
