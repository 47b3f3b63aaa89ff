//! The sled database under a node's data directory, and making its writes
//! durable.
//!
//! sled 0.34's `flush` writes its log with `sync_file_range`, which
//! survives a process crash but neither flushes the drive's cache nor the
//! file's size, so a power cut can lose it. After each flush we therefore
//! `fdatasync` sled's data file (`<dir>/db`). sled writes values too large
//! for its log segments to separate blob files that it never syncs; we keep
//! every value small (see [`CHUNK`]) so that does not happen, and should a
//! blob appear anyway the syncer syncs it and its directory too.
//!
//! Syncs run on one thread of their own with group commit: every request
//! that arrives while a sync is running is served by the next one, so many
//! concurrent writers share one `fdatasync`.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::thread;

use futures_channel::oneshot;

/// Most bytes stored under one sled key. sled writes a tree node as one log
/// record and moves records over a quarter segment (128 KiB by default) to
/// unsynced blob files; a leaf holds up to 17 keys, so 4 KiB values keep
/// every node inline.
pub(crate) const CHUNK: usize = 4096;

/// What "written" means for this node's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives a power cut: sled's flush, then `fdatasync` of its files.
    #[default]
    PowerLoss,
    /// Survives a process crash only: sled's flush (`sync_file_range`).
    ProcessCrash,
    /// Nothing is forced to disk. For benchmarks that show the cost of
    /// durability, and for tests; never for a real cluster.
    None,
}

/// Where and how to keep a node's data.
#[derive(Debug, Clone)]
pub(crate) struct DiskConfig {
    pub(crate) dir: PathBuf,
    pub(crate) cache_bytes: u64,
    pub(crate) durability: Durability,
}

/// Why storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// sled refused to open the directory (in use by another process,
    /// corrupt, not writable).
    #[error("cannot open the database in {path}: {source}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Stored data does not decode.
    #[error("stored {what} in {path} is unreadable: {reason}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The data directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

pub(crate) fn sled_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The open database: trees for the log and Raft metadata, and the
/// syncer. The `snapshot` tree is where older versions kept snapshots
/// (now a file, see [`super::snapfile`]); it is read if no file exists and
/// emptied by the next snapshot.
#[derive(Debug)]
pub(crate) struct Disk {
    pub(crate) dir: PathBuf,
    pub(crate) durability: Durability,
    /// Bytes of log entries appended since a snapshot was last asked for
    /// (see [`SnapshotPolicy::every_bytes`](crate::SnapshotPolicy)).
    pub(crate) unsnapshotted: AtomicU64,
    pub(crate) log: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) snapshot: sled::Tree,
    syncer: Option<mpsc::Sender<Done>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Disk {
    pub(crate) fn open(config: &DiskConfig) -> Result<Disk, StorageError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
            what: "cannot create data directory",
            path: dir.clone(),
            source,
        })?;
        let db = sled::Config::new()
            .path(dir.join("raft"))
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(|source| StorageError::Open {
                path: dir.clone(),
                source,
            })?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|source| StorageError::Open {
                path: dir.clone(),
                source,
            })
        };
        let (log, meta, snapshot) = (tree("log")?, tree("meta")?, tree("snapshot")?);
        let sled_dir = dir.join("raft");
        let data_file = match config.durability {
            Durability::PowerLoss => {
                // The files sled just created must survive too.
                sync_dir(&sled_dir)?;
                sync_dir(&dir)?;
                let path = sled_dir.join("db");
                Some(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .map_err(|source| StorageError::Io {
                            what: "cannot open sled's data file",
                            path,
                            source,
                        })?,
                )
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel::<Done>();
        let syncer = Syncer {
            db: db.clone(),
            durability: config.durability,
            data_file,
            blobs: sled_dir.join("blobs"),
            synced_blobs: BTreeSet::new(),
        };
        let thread = thread::Builder::new()
            .name("wren-state-sync".to_owned())
            .spawn(move || syncer.run(rx))
            .map_err(|source| StorageError::Io {
                what: "cannot start the sync thread for",
                path: dir.clone(),
                source,
            })?;
        super::snapfile::remove_stale_temp(&dir).map_err(|source| StorageError::Io {
            what: "cannot remove a half-written snapshot in",
            path: dir.clone(),
            source,
        })?;
        Ok(Disk {
            dir,
            durability: config.durability,
            unsnapshotted: AtomicU64::new(0),
            log,
            meta,
            snapshot,
            syncer: Some(tx),
            thread: Some(thread),
        })
    }

    /// Calls `done` once everything written so far is durable.
    pub(crate) fn sync_then(&self, done: impl FnOnce(io::Result<()>) + Send + 'static) {
        let Some(tx) = &self.syncer else {
            done(Err(io::Error::other("storage is closed")));
            return;
        };
        if let Err(mpsc::SendError(done)) = tx.send(Box::new(done)) {
            done(Err(io::Error::other("the sync thread has stopped")));
        }
    }

    /// Waits until everything written so far is durable.
    pub(crate) async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.sync_then(move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("the sync thread dropped a request")))
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.syncer.take();
        if let Some(thread) = self.thread.take() {
            // The thread ends once its queue is drained; it holds a handle
            // to the database, which must be closed before the directory
            // can be opened again.
            let _ = thread.join();
        }
    }
}

fn sync_dir(path: &Path) -> Result<(), StorageError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|source| StorageError::Io {
            what: "cannot sync directory",
            path: path.to_owned(),
            source,
        })
}

struct Syncer {
    db: sled::Db,
    durability: Durability,
    data_file: Option<File>,
    blobs: PathBuf,
    synced_blobs: BTreeSet<std::ffi::OsString>,
}

impl Syncer {
    fn run(mut self, rx: mpsc::Receiver<Done>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let result = self.sync();
            super::release_sled_garbage();
            for done in batch {
                done(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self.durability {
            Durability::None => Ok(()),
            Durability::ProcessCrash => self.db.flush().map(drop).map_err(sled_io),
            Durability::PowerLoss => {
                self.db.flush().map_err(sled_io)?;
                if let Some(file) = &self.data_file {
                    file.sync_data()?;
                }
                self.sync_blobs()
            }
        }
    }

    /// Syncs blob files sled wrote since the last call, and their directory.
    fn sync_blobs(&mut self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = BTreeSet::new();
        let mut new = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                File::open(entry.path())?.sync_data()?;
                new = true;
            }
            present.insert(name);
        }
        if new {
            File::open(&self.blobs)?.sync_all()?;
        }
        self.synced_blobs = present;
        Ok(())
    }
}
