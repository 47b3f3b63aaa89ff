//! The state machine as openraft sees it: applying committed entries to
//! the in-memory [`State`], and building, storing and installing
//! snapshots.
//!
//! The tables live in memory only; what is durable is the latest snapshot
//! (one file, see [`snapfile`]) plus the log after it, which openraft
//! re-applies on start.

use std::io;
use std::sync::Arc;
use std::thread;

use futures_channel::oneshot;
use minicbor::Decoder;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use smol::stream::{Stream, StreamExt};

use super::disk::{Disk, StorageError, sled_io};
use super::snapfile;
use crate::fsm::{ApplyError, Proposal, State, StateWatch};
use crate::raft::codec::{self, CodecError};
use crate::raft::{C, LogId, Response, Snapshot, SnapshotData, SnapshotMeta, StoredMembership};

const META: &[u8] = b"meta";

fn data_key(n: u32) -> [u8; 5] {
    let mut k = [b'd', 0, 0, 0, 0];
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Runs `f` on a thread of its own: snapshot encoding and decoding are CPU
/// work that must not stall the executor, and happen rarely.
async fn off_executor<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (tx, rx) = oneshot::channel();
    thread::Builder::new()
        .name("wren-state-snapshot".to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    rx.await
        .map_err(|_| io::Error::other("snapshot thread ended without a result"))
}

/// Writes a snapshot durably, replacing the previous one atomically (see
/// [`snapfile`]). A snapshot an older wren kept in the `snapshot` tree is
/// superseded and removed.
pub(crate) async fn store_snapshot(
    disk: &Disk,
    meta: &SnapshotMeta,
    data: SnapshotData,
) -> io::Result<()> {
    let meta_bytes = codec::encode(|e| codec::put_snapshot_meta(e, meta))?;
    let dir = disk.dir.clone();
    let durability = disk.durability;
    off_executor(move || snapfile::write(&dir, durability, &meta_bytes, &data)).await??;
    if !disk.snapshot.is_empty() {
        disk.snapshot.clear().map_err(sled_io)?;
        disk.sync().await?;
    }
    Ok(())
}

fn read_meta(bytes: &[u8]) -> Result<(SnapshotMeta, u32, u64), CodecError> {
    let mut d = Decoder::new(bytes);
    if d.array()? != Some(3) {
        return Err(CodecError(
            "snapshot record: expected an array of 3".to_owned(),
        ));
    }
    let meta = codec::get_snapshot_meta(&mut d)?;
    Ok((meta, d.u32()?, d.u64()?))
}

/// The stored snapshot, if any: the snapshot file, or else one an older
/// wren kept in the `snapshot` tree.
pub(crate) fn load_snapshot(disk: &Disk) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let Some((meta, data)) = snapfile::read(&disk.dir)? else {
        return load_tree_snapshot(disk);
    };
    let meta = codec::get_snapshot_meta(&mut Decoder::new(&meta)).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: metadata: {}", snapfile::path(&disk.dir).display(), e.0),
        )
    })?;
    Ok(Some((meta, data)))
}

/// A snapshot in the `snapshot` tree, where wren kept them before they
/// were files: [`CHUNK`](super::disk::CHUNK)-sized values under `d` and a
/// big-endian number, and a `meta` record naming how many.
fn load_tree_snapshot(disk: &Disk) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let Some(bytes) = disk.snapshot.get(META).map_err(sled_io)? else {
        return Ok(None);
    };
    let (meta, chunks, len) = read_meta(&bytes)?;
    let mut data = Vec::new();
    for n in 0..chunks {
        let chunk = disk
            .snapshot
            .get(data_key(n))
            .map_err(sled_io)?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot chunk {n} is missing"),
                )
            })?;
        data.extend_from_slice(&chunk);
    }
    if data.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot is {} bytes, expected {len}", data.len()),
        ));
    }
    Ok(Some((meta, data)))
}

/// Decodes a command from the log, or says why it cannot be.
fn decode_proposal(bytes: &[u8]) -> Result<Proposal, ApplyError> {
    wren_model::codec::from_cbor(bytes).map_err(|e| ApplyError::Undecodable(e.to_string()))
}

/// openraft's state machine: the tables plus what Raft tracks about them.
#[derive(Debug)]
pub(crate) struct StateMachineStore {
    state: State,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    watch: StateWatch,
    disk: Arc<Disk>,
}

impl StateMachineStore {
    /// Opens the state machine from the stored snapshot, if any, and
    /// publishes it to `watch`.
    pub(crate) fn open(
        disk: Arc<Disk>,
        watch: StateWatch,
    ) -> Result<StateMachineStore, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt {
            what: "snapshot",
            path: disk.dir.clone(),
            reason,
        };
        let (state, last_applied, membership) =
            match load_snapshot(&disk).map_err(|e| corrupt(e.to_string()))? {
                None => (State::new(), None, StoredMembership::default()),
                Some((meta, data)) => {
                    let mut state = State::load(&data).map_err(|e| corrupt(e.to_string()))?;
                    if let Some(id) = &meta.last_log_id {
                        state.advance(id.index);
                    }
                    (state, meta.last_log_id, meta.last_membership)
                }
            };
        watch.publish(state.clone());
        Ok(StateMachineStore {
            state,
            last_applied,
            membership,
            watch,
            disk,
        })
    }
}

impl RaftStateMachine<C> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut replies = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            let response: Response = match entry.payload {
                EntryPayload::Blank => {
                    self.state.advance(index);
                    Ok(crate::Outcome::Applied)
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    self.state.advance(index);
                    Ok(crate::Outcome::Applied)
                }
                EntryPayload::Normal(request) => match decode_proposal(&request.0) {
                    Ok(proposal) => self.state.apply(index, proposal),
                    Err(e) => {
                        self.state.advance(index);
                        Err(e)
                    }
                },
            };
            self.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                replies.push((responder, response));
            }
        }
        // Readers see the new state before any proposer hears back.
        self.watch.publish(self.state.clone());
        for (responder, response) in replies {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            disk: self.disk.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.clone();
        let mut state = off_executor(move || State::load(&data))
            .await?
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        store_snapshot(&self.disk, meta, snapshot).await?;
        if let Some(id) = &meta.last_log_id {
            state.advance(id.index);
        }
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.watch.publish(self.state.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(load_snapshot(&self.disk)?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: data.into(),
        }))
    }
}

/// Builds a snapshot of the state as it was when the builder was made.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    state: State,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    disk: Arc<Disk>,
}

impl RaftSnapshotBuilder<C> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let state = self.state.clone();
        let data = off_executor(move || state.save())
            .await?
            .map_err(|e| io::Error::other(e.to_string()))?;
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
        };
        let data: SnapshotData = data.into();
        store_snapshot(&self.disk, &meta, data.clone()).await?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}
