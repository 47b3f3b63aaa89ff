//! openraft's storage conformance suite against the sled store, and what
//! the suite does not cover: reopening, large entries, durability modes.

use std::io;
use std::sync::Arc;

use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb};
use openraft_rt::{AsyncRuntime, Oneshot};

use super::disk::{Disk, DiskConfig, Durability};
use super::log::LogStore;
use super::sm::StateMachineStore;
use crate::fsm::StateWatch;
use crate::raft::{C, Entry, LeaderId, LogId, Request, Vote};
use crate::runtime::SmolRuntime;
use crate::testutil::TempDir;

fn open(dir: &TempDir, durability: Durability) -> io::Result<Arc<Disk>> {
    Disk::open(&DiskConfig {
        dir: dir.path().to_owned(),
        cache_bytes: 1 << 20,
        durability,
    })
    .map(Arc::new)
    .map_err(|e| io::Error::other(e.to_string()))
}

struct Builder(Durability);

impl StoreBuilder<C, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), openraft::StorageError<C>> {
        let dir = TempDir::new("suite");
        let err = |e: io::Error| {
            openraft::StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
        };
        let disk = open(&dir, self.0).map_err(err)?;
        let sm = StateMachineStore::open(disk.clone(), StateWatch::default())
            .map_err(|e| err(io::Error::other(e.to_string())))?;
        Ok((dir, LogStore::new(disk), sm))
    }
}

#[test]
fn openraft_storage_suite_power_loss_durable() {
    SmolRuntime::new(1)
        .block_on(Suite::test_all(Builder(Durability::PowerLoss)))
        .unwrap();
}

#[test]
fn openraft_storage_suite_not_durable() {
    SmolRuntime::new(1)
        .block_on(Suite::test_all(Builder(Durability::None)))
        .unwrap();
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(LeaderId::new_committed(term, 1), index)
}

fn normal(term: u64, index: u64, len: usize) -> Entry {
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request(bytes.into())),
    }
}

async fn append(store: &mut LogStore, entries: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = <SmolRuntime as AsyncRuntime>::Oneshot::channel();
    store.append(entries, IOFlushed::signal(tx)).await?;
    rx.await.map_err(|_| io::Error::other("callback dropped"))?
}

#[test]
fn log_vote_and_committed_survive_reopening() {
    let dir = TempDir::new("reopen");
    SmolRuntime::new(1).block_on(async {
        {
            let disk = open(&dir, Durability::PowerLoss).unwrap();
            let mut store = LogStore::new(disk);
            append(
                &mut store,
                vec![normal(1, 1, 10), normal(1, 2, 100_000), normal(2, 3, 5)],
            )
            .await
            .unwrap();
            store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
            store.save_committed(Some(log_id(1, 2))).await.unwrap();
            store.purge(log_id(1, 1)).await.unwrap();
        }
        let disk = open(&dir, Durability::PowerLoss).unwrap();
        let mut store = LogStore::new(disk.clone());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(2, 3)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 2)));
        assert_eq!(
            store.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 1))
        );
        let entries = store.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(entries, vec![normal(1, 2, 100_000), normal(2, 3, 5)]);
        assert!(
            !dir.path().join("raft/blobs").exists()
                || std::fs::read_dir(dir.path().join("raft/blobs"))
                    .unwrap()
                    .next()
                    .is_none(),
            "a 100 KB entry stays inside sled's synced log"
        );
    });
}

#[test]
fn replacing_a_large_entry_leaves_no_stale_chunks() {
    let dir = TempDir::new("replace");
    SmolRuntime::new(1).block_on(async {
        let mut store = LogStore::new(open(&dir, Durability::None).unwrap());
        append(&mut store, vec![normal(1, 1, 20_000), normal(1, 2, 20_000)])
            .await
            .unwrap();
        // No truncation first: the store must cope on its own.
        append(&mut store, vec![normal(2, 2, 10)]).await.unwrap();
        let entries = store.try_get_log_entries(1..=2).await.unwrap();
        assert_eq!(entries, vec![normal(1, 1, 20_000), normal(2, 2, 10)]);
        store.truncate_after(Some(log_id(1, 1))).await.unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 1))
        );
    });
}

#[test]
fn snapshots_survive_reopening() {
    use openraft::storage::RaftSnapshotBuilder;
    let dir = TempDir::new("snapshot");
    SmolRuntime::new(1).block_on(async {
        let built = {
            let disk = open(&dir, Durability::PowerLoss).unwrap();
            let mut sm = StateMachineStore::open(disk, StateWatch::default()).unwrap();
            let mut builder = sm.get_snapshot_builder().await;
            builder.build_snapshot().await.unwrap()
        };
        let disk = open(&dir, Durability::PowerLoss).unwrap();
        let mut sm = StateMachineStore::open(disk, StateWatch::default()).unwrap();
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot, built.snapshot);
    });
}

#[test]
fn snapshots_are_a_file_not_part_of_sled() {
    use openraft::storage::RaftSnapshotBuilder;
    let dir = TempDir::new("snapshot-file");
    SmolRuntime::new(1).block_on(async {
        let disk = open(&dir, Durability::PowerLoss).unwrap();
        let mut sm = StateMachineStore::open(disk.clone(), StateWatch::default()).unwrap();
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let file = std::fs::read(dir.path().join(super::snapfile::FILE)).unwrap();
        assert!(file.len() > built.snapshot.len());
        assert!(disk.snapshot.is_empty());
    });
}

/// A data directory from before snapshots were files: its snapshot is
/// still read, and the next one replaces it with a file.
#[test]
fn a_snapshot_kept_in_the_old_tree_is_read_and_then_superseded() {
    use crate::fsm::State;
    use crate::raft::codec;
    use openraft::storage::RaftSnapshotBuilder;
    use openraft::{Membership, StoredMembership};

    let dir = TempDir::new("snapshot-tree");
    let mut state = State::new();
    state.advance(7);
    let data = state.save().unwrap();
    let meta = crate::raft::SnapshotMeta {
        last_log_id: Some(log_id(1, 7)),
        last_membership: StoredMembership::new(
            Some(log_id(1, 1)),
            Membership::new_with_defaults(vec![std::collections::BTreeSet::from([1])], []),
        ),
    };
    {
        let disk = open(&dir, Durability::PowerLoss).unwrap();
        let mut batch = sled::Batch::default();
        let mut chunks = 0u32;
        for chunk in data.chunks(super::disk::CHUNK) {
            let mut key = vec![b'd'];
            key.extend_from_slice(&chunks.to_be_bytes());
            batch.insert(key, chunk);
            chunks += 1;
        }
        let record = codec::encode(|e| {
            e.array(3)?;
            codec::put_snapshot_meta(e, &meta)?;
            e.u32(chunks)?.u64(data.len() as u64)?;
            Ok(())
        })
        .unwrap();
        batch.insert(&b"meta"[..], record);
        disk.snapshot.apply_batch(batch).unwrap();
        assert!(chunks > 0);
    }
    SmolRuntime::new(1).block_on(async {
        let disk = open(&dir, Durability::PowerLoss).unwrap();
        let mut sm = StateMachineStore::open(disk.clone(), StateWatch::default()).unwrap();
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, meta);
        assert_eq!(&current.snapshot[..], &data[..]);
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 7)));

        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert!(disk.snapshot.is_empty(), "the old tree is emptied");
        assert!(dir.path().join(super::snapfile::FILE).exists());
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(1, 7)));
    });
}

#[test]
fn a_damaged_snapshot_file_stops_the_open_with_a_clear_error() {
    let dir = TempDir::new("snapshot-damaged");
    super::snapfile::write(dir.path(), Durability::None, b"\x83", b"junk").unwrap();
    let disk = open(&dir, Durability::PowerLoss).unwrap();
    let err = StateMachineStore::open(disk, StateWatch::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("snapshot") && text.contains("state.snap"),
        "{text}"
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_and_a_reopen_after_close_works() {
    let dir = TempDir::new("lock");
    let first = open(&dir, Durability::PowerLoss).unwrap();
    assert!(open(&dir, Durability::PowerLoss).is_err());
    drop(first);
    open(&dir, Durability::PowerLoss).unwrap();
}
