//! The Raft log, vote, committed index and last purged log id in sled.
//!
//! Entries are stored under `index (8 bytes BE) ++ chunk (4 bytes BE)` in
//! the `log` tree, split into [`CHUNK`]-sized values. An append is inserted
//! as one atomic sled batch (so it is readable at once) and reported to
//! openraft only after the syncer made it durable. Votes, the committed
//! log id, truncations and purges wait for durability before returning.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use minicbor::Decoder;
use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};

use super::disk::{CHUNK, Disk, sled_io};
use crate::raft::codec::{self, CodecError};
use crate::raft::{C, Entry, LogId, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

fn key(index: u64, chunk: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&index.to_be_bytes());
    k[8..].copy_from_slice(&chunk.to_be_bytes());
    k
}

fn index_of(key: &[u8]) -> Option<u64> {
    let head: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// The log store openraft writes through.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    disk: Arc<Disk>,
}

impl LogStore {
    pub(crate) fn new(disk: Arc<Disk>) -> LogStore {
        LogStore { disk }
    }

    fn put_meta(&self, key: &[u8], bytes: Vec<u8>) -> io::Result<()> {
        self.disk.meta.insert(key, bytes).map(drop).map_err(sled_io)
    }

    fn get_meta<T>(
        &self,
        key: &[u8],
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<T, CodecError>,
    ) -> io::Result<Option<T>> {
        match self.disk.meta.get(key).map_err(sled_io)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode(&mut Decoder::new(&bytes))?)),
        }
    }

    fn last_log_id(&self) -> io::Result<Option<LogId>> {
        let Some((k, _)) = self.disk.log.last().map_err(sled_io)? else {
            return Ok(None);
        };
        let Some(index) = index_of(&k) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed log key",
            ));
        };
        let first = self
            .disk
            .log
            .get(key(index, 0))
            .map_err(sled_io)?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("log entry {index} lost its first chunk"),
                )
            })?;
        Ok(Some(codec::entry_log_id(&first)?))
    }

    /// Removes entries with an index in `range` from the log tree.
    fn remove_range(&self, from: u64, to_inclusive: u64) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for k in self
            .disk
            .log
            .range(key(from, 0)..=key(to_inclusive, u32::MAX))
            .keys()
        {
            batch.remove(k.map_err(sled_io)?);
        }
        self.disk.log.apply_batch(batch).map_err(sled_io)
    }
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        read_entries(&self.disk.log, range)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(VOTE, codec::get_vote)
    }
}

/// Reads whole entries in `range`, joining their chunks.
fn read_entries(log: &sled::Tree, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry>> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => match i.checked_add(1) {
            Some(i) => i,
            None => return Ok(Vec::new()),
        },
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => Bound::Included(key(i, u32::MAX)),
        Bound::Excluded(&i) => Bound::Excluded(key(i, 0)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let mut entries = Vec::new();
    let mut current: Option<(u64, Vec<u8>)> = None;
    for item in log.range((Bound::Included(key(start, 0)), end)) {
        let (k, v) = item.map_err(sled_io)?;
        let Some(index) = index_of(&k) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed log key",
            ));
        };
        match &mut current {
            Some((i, buf)) if *i == index => buf.extend_from_slice(&v),
            _ => {
                if let Some((_, buf)) = current.take() {
                    entries.push(codec::entry_from_bytes(&buf)?);
                }
                current = Some((index, v.to_vec()));
            }
        }
    }
    if let Some((_, buf)) = current {
        entries.push(codec::entry_from_bytes(&buf)?);
    }
    Ok(entries)
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged_log_id = self.get_meta(PURGED, codec::get_log_id)?;
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = codec::encode(|e| codec::put_vote(e, vote))?;
        self.put_meta(VOTE, bytes)?;
        self.disk.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        match committed {
            Some(id) => self.put_meta(COMMITTED, codec::encode(|e| codec::put_log_id(e, &id))?)?,
            None => {
                self.disk.meta.remove(COMMITTED).map_err(sled_io)?;
            }
        }
        self.disk.sync().await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.get_meta(COMMITTED, codec::get_log_id)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Entries normally extend the log; one that replaces an entry
        // (openraft truncates first, but be safe) must not leave the old
        // entry's extra chunks behind.
        let last = match self.disk.log.last().map_err(sled_io)? {
            Some((k, _)) => index_of(&k),
            None => None,
        };
        let mut batch = sled::Batch::default();
        let mut appended = 0u64;
        for entry in entries {
            let index = entry.log_id.index;
            let bytes = codec::entry_to_bytes(&entry)?;
            appended = appended.saturating_add(bytes.len() as u64);
            let mut chunks = 0u32;
            for chunk in bytes.chunks(CHUNK) {
                batch.insert(&key(index, chunks), chunk);
                chunks = chunks
                    .checked_add(1)
                    .ok_or_else(|| io::Error::other("log entry too large"))?;
            }
            if last.is_some_and(|last| index <= last) {
                for stale in self
                    .disk
                    .log
                    .range(key(index, chunks)..=key(index, u32::MAX))
                    .keys()
                {
                    batch.remove(stale.map_err(sled_io)?);
                }
            }
        }
        self.disk.log.apply_batch(batch).map_err(sled_io)?;
        self.disk
            .unsnapshotted
            .fetch_add(appended, Ordering::Relaxed);
        super::release_sled_garbage();
        self.disk
            .sync_then(move |result| callback.io_completed(result));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        self.remove_range(from, u64::MAX)?;
        self.disk.sync().await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The purge point first: entries at or below it are never read
        // again, so a crash between the two writes leaves only garbage.
        self.put_meta(PURGED, codec::encode(|e| codec::put_log_id(e, &log_id))?)?;
        self.remove_range(0, log_id.index)?;
        self.disk.sync().await
    }
}
