//! The client's own state, in a sled database under `<data_dir>/client`:
//! what it needs to carry on after an agent restart or a reboot without
//! asking a server.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `meta` | `node_id`, `servers`, `last_contact` | the node's id, servers learned from heartbeats, when a server last answered |
//! | `allocs` | alloc id | the [`Allocation`] as the servers last sent it |
//! | `states` | alloc id | [`AllocState`]: the client's view (task states, restart trackers) |
//! | `jobs` | job id, NUL, version (big endian) | the [`Job`] version allocations run |
//! | `handles` | alloc id, NUL, task | the driver's [`TaskHandle`] of a running task |
//! | `updates` | alloc id | [`PendingUpdate`]: the newest status not yet acknowledged by a server |
//!
//! sled's page cache is capped (`sled_cache_mb`). Writes that must survive
//! a power cut (a task handle, an accepted allocation, a queued update) are
//! followed by [`LocalDb::durable`]: sled's flush, whose `sync_file_range`
//! survives a crash but not a power cut, then `fdatasync` of sled's files.
//! A record that does not decode (a torn write, a newer format) is skipped
//! with a message, never a panic: the rest of the state still loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minicbor::{Decode, Encode};
use wren_model::{Allocation, ClientStatus, Job, TaskState, VecMap};
use wren_runtimes::TaskHandle;

use crate::api::ClientAllocUpdate;

/// Why the local database failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalDbError {
    /// sled could not open the directory (in use by another agent, corrupt,
    /// not writable).
    #[error("cannot open the client database in {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A read or write failed.
    #[error("client database {path}: {source}")]
    Sled {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Making writes durable failed.
    #[error("syncing {path}: {source}")]
    Sync {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// How often a task was restarted in the current window of its restart
/// policy's `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode)]
#[cbor(map)]
pub struct RestartTracker {
    /// Unix nanoseconds the window started.
    #[n(0)]
    pub window_start: i64,
    /// Restarts in the window.
    #[n(1)]
    pub count: u32,
}

/// The client's view of one allocation.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
#[cbor(map)]
pub struct AllocState {
    /// Its status as the client reports it.
    #[n(0)]
    pub client_status: ClientStatus,
    /// Why.
    #[n(1)]
    pub description: String,
    /// Per task.
    #[n(2)]
    pub tasks: VecMap<String, TaskState>,
    /// Per task restart windows.
    #[n(3)]
    pub trackers: BTreeMap<String, RestartTracker>,
    /// Unix nanoseconds its runner finished (every task dead); 0 before.
    #[n(4)]
    pub finished_at: i64,
    /// Unix nanoseconds of the last change.
    #[n(5)]
    pub modify_time: i64,
    /// Set when the client stopped it on its own (`stop_on_client_after`).
    #[n(6)]
    pub stopped_locally: Option<String>,
}

/// A status update waiting for a server to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct PendingUpdate {
    /// Increases with every update queued; an acknowledgement removes the
    /// record only if no newer update replaced it meanwhile.
    #[n(0)]
    pub seq: u64,
    /// The update.
    #[n(1)]
    pub update: ClientAllocUpdate,
}

/// The open database.
#[derive(Debug, Clone)]
pub struct LocalDb {
    dir: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    allocs: sled::Tree,
    states: sled::Tree,
    jobs: sled::Tree,
    handles: sled::Tree,
    updates: sled::Tree,
}

fn handle_key(alloc: &str, task: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(alloc.len() + task.len() + 1);
    k.extend_from_slice(alloc.as_bytes());
    k.push(0);
    k.extend_from_slice(task.as_bytes());
    k
}

fn job_key(id: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 9);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl LocalDb {
    /// Opens (creating) the database in `dir` with a page cache of
    /// `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<LocalDb, LocalDbError> {
        let open_err = |source| LocalDbError::Open {
            path: dir.to_owned(),
            source,
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(open_err)?;
        let tree = |name: &str| db.open_tree(name).map_err(open_err);
        Ok(LocalDb {
            dir: dir.to_owned(),
            meta: tree("meta")?,
            allocs: tree("allocs")?,
            states: tree("states")?,
            jobs: tree("jobs")?,
            handles: tree("handles")?,
            updates: tree("updates")?,
            db,
        })
    }

    fn err(&self, source: sled::Error) -> LocalDbError {
        LocalDbError::Sled {
            path: self.dir.clone(),
            source,
        }
    }

    fn get<T: for<'b> Decode<'b, ()>>(
        &self,
        tree: &sled::Tree,
        what: &str,
        key: &[u8],
    ) -> Result<Option<T>, LocalDbError> {
        let Some(bytes) = tree.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        match wren_model::codec::from_cbor(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                eprintln!(
                    "wren client: skipping unreadable {what} {:?} in {}: {e}",
                    String::from_utf8_lossy(key),
                    self.dir.display()
                );
                Ok(None)
            }
        }
    }

    fn put<T: Encode<()>>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        value: &T,
    ) -> Result<(), LocalDbError> {
        tree.insert(key, wren_model::codec::to_cbor(value))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn all<T: for<'b> Decode<'b, ()>>(
        &self,
        tree: &sled::Tree,
        what: &str,
    ) -> Result<Vec<(Vec<u8>, T)>, LocalDbError> {
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            match wren_model::codec::from_cbor(&v) {
                Ok(t) => out.push((k.to_vec(), t)),
                Err(e) => eprintln!(
                    "wren client: skipping unreadable {what} {:?} in {}: {e}",
                    String::from_utf8_lossy(&k),
                    self.dir.display()
                ),
            }
        }
        Ok(out)
    }

    /// This node's id: made once, then kept.
    pub fn node_id(&self) -> Result<String, LocalDbError> {
        if let Some(id) = self.get::<String>(&self.meta, "node id", b"node_id")? {
            return Ok(id);
        }
        let id = crate::ids::uuid();
        self.put(&self.meta, b"node_id", &id)?;
        self.durable()?;
        Ok(id)
    }

    /// Servers learned from heartbeats.
    pub fn servers(&self) -> Result<Vec<String>, LocalDbError> {
        Ok(self
            .get(&self.meta, "server list", b"servers")?
            .unwrap_or_default())
    }

    /// Keeps the servers learned from a heartbeat.
    pub fn set_servers(&self, servers: &[String]) -> Result<(), LocalDbError> {
        self.put(&self.meta, b"servers", &servers.to_vec())
    }

    /// Unix nanoseconds a server last answered (0: never).
    pub fn last_contact(&self) -> Result<i64, LocalDbError> {
        Ok(self
            .get(&self.meta, "last contact", b"last_contact")?
            .unwrap_or(0))
    }

    /// Records a server's answer.
    pub fn set_last_contact(&self, at: i64) -> Result<(), LocalDbError> {
        self.put(&self.meta, b"last_contact", &at)
    }

    /// Keeps an allocation as the servers sent it.
    pub fn put_alloc(&self, alloc: &Allocation) -> Result<(), LocalDbError> {
        self.put(&self.allocs, alloc.id.as_bytes(), alloc)
    }

    /// Every kept allocation.
    pub fn allocs(&self) -> Result<Vec<Allocation>, LocalDbError> {
        Ok(self
            .all(&self.allocs, "allocation")?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// Keeps the client's view of an allocation.
    pub fn put_state(&self, alloc_id: &str, state: &AllocState) -> Result<(), LocalDbError> {
        self.put(&self.states, alloc_id.as_bytes(), state)
    }

    /// The client's view of an allocation.
    pub fn state(&self, alloc_id: &str) -> Result<Option<AllocState>, LocalDbError> {
        self.get(&self.states, "allocation state", alloc_id.as_bytes())
    }

    /// Keeps a job version.
    pub fn put_job(&self, job: &Job) -> Result<(), LocalDbError> {
        self.put(&self.jobs, &job_key(&job.id, job.version), job)
    }

    /// A kept job version.
    pub fn job(&self, id: &str, version: u64) -> Result<Option<Job>, LocalDbError> {
        self.get(&self.jobs, "job", &job_key(id, version))
    }

    /// Drops job versions no kept allocation runs. Reads only the job
    /// reference of each kept allocation: the collector runs this after
    /// every collection, with thousands of allocations kept during a burst.
    pub fn prune_jobs(&self) -> Result<usize, LocalDbError> {
        let wanted: std::collections::HashSet<Vec<u8>> = self
            .all::<wren_model::AllocJobRef>(&self.allocs, "allocation")?
            .iter()
            .map(|(_, r)| job_key(&r.job_id, r.job_version))
            .collect();
        let mut removed = 0;
        for item in self.jobs.iter().keys() {
            let k = item.map_err(|e| self.err(e))?;
            if !wanted.contains(k.as_ref()) {
                self.jobs.remove(&k).map_err(|e| self.err(e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Keeps the handle of a running task.
    pub fn put_handle(&self, handle: &TaskHandle) -> Result<(), LocalDbError> {
        self.handles
            .insert(handle_key(&handle.alloc_id, &handle.task), handle.to_cbor())
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The handle of a task, when it has one.
    pub fn handle(&self, alloc: &str, task: &str) -> Result<Option<TaskHandle>, LocalDbError> {
        self.get(&self.handles, "task handle", &handle_key(alloc, task))
    }

    /// Forgets a task's handle (it was destroyed).
    pub fn remove_handle(&self, alloc: &str, task: &str) -> Result<(), LocalDbError> {
        self.handles
            .remove(handle_key(alloc, task))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Queues `update`, replacing any older one for the same allocation.
    pub fn queue_update(&self, update: &ClientAllocUpdate) -> Result<u64, LocalDbError> {
        let seq = self.db.generate_id().map_err(|e| self.err(e))?;
        self.put(
            &self.updates,
            update.alloc_id.as_bytes(),
            &PendingUpdate {
                seq,
                update: update.clone(),
            },
        )?;
        Ok(seq)
    }

    /// Every update not yet acknowledged, oldest first.
    pub fn pending_updates(&self) -> Result<Vec<PendingUpdate>, LocalDbError> {
        let mut v: Vec<PendingUpdate> = self
            .all(&self.updates, "pending update")?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        v.sort_by_key(|u| u.seq);
        Ok(v)
    }

    /// Whether an update for `alloc_id` waits for acknowledgement.
    pub fn has_pending_update(&self, alloc_id: &str) -> Result<bool, LocalDbError> {
        self.updates
            .contains_key(alloc_id.as_bytes())
            .map_err(|e| self.err(e))
    }

    /// Drops the update of `alloc_id` if it is still the one numbered `seq`.
    pub fn ack_update(&self, alloc_id: &str, seq: u64) -> Result<(), LocalDbError> {
        let Some(current) =
            self.get::<PendingUpdate>(&self.updates, "pending update", alloc_id.as_bytes())?
        else {
            return Ok(());
        };
        if current.seq == seq {
            self.updates
                .remove(alloc_id.as_bytes())
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Forgets an allocation entirely: its record, state and handles (its
    /// pending update stays until acknowledged).
    pub fn remove_alloc(&self, alloc_id: &str) -> Result<(), LocalDbError> {
        self.allocs
            .remove(alloc_id.as_bytes())
            .map_err(|e| self.err(e))?;
        self.states
            .remove(alloc_id.as_bytes())
            .map_err(|e| self.err(e))?;
        let mut prefix = alloc_id.as_bytes().to_vec();
        prefix.push(0);
        for item in self.handles.scan_prefix(&prefix).keys() {
            let k = item.map_err(|e| self.err(e))?;
            self.handles.remove(k).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Makes every write so far survive a power cut: sled's flush, then
    /// `fdatasync` of its data file and any blob files.
    pub fn durable(&self) -> Result<(), LocalDbError> {
        self.db.flush().map_err(|e| self.err(e))?;
        wren_state::release_sled_garbage();
        let sync = |path: &Path| -> Result<(), LocalDbError> {
            std::fs::File::open(path)
                .and_then(|f| f.sync_data())
                .map_err(|source| LocalDbError::Sync {
                    path: path.to_owned(),
                    source,
                })
        };
        sync(&self.dir.join("db"))?;
        let blobs = self.dir.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            for e in entries.flatten() {
                sync(&e.path())?;
            }
            sync(&blobs)?;
        }
        Ok(())
    }

    /// [`LocalDb::durable`] on smol's blocking pool, so that an fsync on a
    /// slow SD card never stalls the agent's executor.
    pub async fn durable_async(&self) -> Result<(), LocalDbError> {
        let db = self.clone();
        smol::unblock(move || db.durable()).await
    }

    /// Makes every write so far survive a crash of the agent (sled's
    /// flush), not necessarily a power cut.
    pub fn durable_soft(&self) -> Result<(), LocalDbError> {
        self.db.flush().map_err(|e| self.err(e))?;
        wren_state::release_sled_garbage();
        Ok(())
    }

    /// [`LocalDb::durable_soft`] on smol's blocking pool.
    pub async fn durable_soft_async(&self) -> Result<(), LocalDbError> {
        let db = self.clone();
        smol::unblock(move || db.durable_soft()).await
    }

    /// Bytes sled keeps on disk (for `node status --self`).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("wren-localdb-{tag}-{}-{n}", std::process::id()))
    }

    #[test]
    fn state_survives_reopening() {
        let dir = temp("reopen");
        let id;
        {
            let db = LocalDb::open(&dir, 1 << 20).unwrap();
            id = db.node_id().unwrap();
            assert_eq!(db.node_id().unwrap(), id, "the id is made once");
            let alloc = Allocation {
                id: "a1".into(),
                job_id: "web".into(),
                job_version: 3,
                ..Allocation::default()
            };
            db.put_alloc(&alloc).unwrap();
            db.put_job(&Job {
                id: "web".into(),
                version: 3,
                ..Job::default()
            })
            .unwrap();
            db.put_job(&Job {
                id: "web".into(),
                version: 2,
                ..Job::default()
            })
            .unwrap();
            let mut state = AllocState {
                client_status: ClientStatus::Running,
                ..AllocState::default()
            };
            state.trackers.insert(
                "t".into(),
                RestartTracker {
                    window_start: 5,
                    count: 2,
                },
            );
            db.put_state("a1", &state).unwrap();
            db.set_servers(&["10.0.0.1:5684".to_owned()]).unwrap();
            db.set_last_contact(42).unwrap();
            db.durable().unwrap();
        }
        let db = LocalDb::open(&dir, 1 << 20).unwrap();
        assert_eq!(db.node_id().unwrap(), id);
        assert_eq!(db.allocs().unwrap().len(), 1);
        assert_eq!(db.state("a1").unwrap().unwrap().trackers["t"].count, 2);
        assert_eq!(db.servers().unwrap(), ["10.0.0.1:5684"]);
        assert_eq!(db.last_contact().unwrap(), 42);
        assert!(db.job("web", 3).unwrap().is_some());
        assert_eq!(db.prune_jobs().unwrap(), 1);
        assert!(db.job("web", 2).unwrap().is_none());
        db.remove_alloc("a1").unwrap();
        assert!(db.allocs().unwrap().is_empty());
        assert!(db.state("a1").unwrap().is_none());
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn updates_coalesce_and_acks_keep_newer_ones() {
        let dir = temp("updates");
        let db = LocalDb::open(&dir, 1 << 20).unwrap();
        let up = |status| ClientAllocUpdate {
            alloc_id: "a1".into(),
            client_status: status,
            ..ClientAllocUpdate::default()
        };
        let s1 = db.queue_update(&up(ClientStatus::Pending)).unwrap();
        let s2 = db.queue_update(&up(ClientStatus::Running)).unwrap();
        assert!(s2 > s1);
        let pending = db.pending_updates().unwrap();
        assert_eq!(pending.len(), 1, "one per allocation");
        assert_eq!(pending[0].update.client_status, ClientStatus::Running);
        // An acknowledgement of the older one does not drop the newer.
        db.ack_update("a1", s1).unwrap();
        assert!(db.has_pending_update("a1").unwrap());
        db.ack_update("a1", s2).unwrap();
        assert!(!db.has_pending_update("a1").unwrap());
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unreadable_records_are_skipped() {
        let dir = temp("garbage");
        let db = LocalDb::open(&dir, 1 << 20).unwrap();
        db.allocs.insert(b"bad", &b"\xff\x00junk"[..]).unwrap();
        db.put_alloc(&Allocation {
            id: "good".into(),
            ..Allocation::default()
        })
        .unwrap();
        let allocs = db.allocs().unwrap();
        assert_eq!(allocs.len(), 1);
        assert_eq!(allocs[0].id, "good");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
