//! The Raft log's storage engine alone: durable appends per second with
//! sled made power-loss durable the way `wren-state` does it (insert,
//! `flush`, then `fdatasync` of sled's data file), with sled's flush alone
//! (`sync_file_range`: crash-safe, not power-loss-safe), and with the
//! `raft-log` crate, a WAL built for Raft that fsyncs itself.
//!
//! `cargo bench -p wren-state --features bench-raft-log --bench wal`

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::api::types::Types;
use raft_log::{Config, RaftLog};

const CHUNK: usize = 4096;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("wren-wal-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

trait Wal {
    /// Appends `entries` (index, bytes) and returns once they are durable.
    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> io::Result<()>;
}

struct Sled {
    db: sled::Db,
    log: sled::Tree,
    data: Option<File>,
}

impl Sled {
    fn open(dir: &Path, fdatasync: bool) -> Sled {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(4 << 20)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let log = db.open_tree("log").unwrap();
        let data = fdatasync.then(|| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join("db"))
                .unwrap()
        });
        Sled { db, log, data }
    }
}

impl Wal for Sled {
    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for (index, bytes) in entries {
            for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
                let mut key = [0u8; 12];
                key[..8].copy_from_slice(&index.to_be_bytes());
                key[8..].copy_from_slice(&(n as u32).to_be_bytes());
                batch.insert(&key, chunk);
            }
        }
        self.log.apply_batch(batch).map_err(io::Error::other)?;
        self.db.flush().map_err(io::Error::other)?;
        if let Some(f) = &self.data {
            f.sync_data()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct T;

impl Types for T {
    type LogId = (u64, u64);
    type LogPayload = String;
    type Vote = (u64, u64);
    type UserData = String;
    type Callback = SyncSender<io::Result<()>>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.len() as u64
    }
}

struct RaftLogWal(RaftLog<T>);

impl Wal for RaftLogWal {
    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let entries = entries.iter().map(|(i, b)| {
            // raft-log stores payloads through its own codec; a string of
            // the same length costs the same.
            ((1, *i), "x".repeat(b.len()))
        });
        self.0.append(entries)?;
        let (tx, rx) = sync_channel(1);
        self.0.flush(true, Some(tx))?;
        rx.recv()
            .map_err(|_| io::Error::other("flush callback dropped"))?
    }
}

fn run(wal: &mut dyn Wal, batches: usize, per_batch: usize, size: usize) -> f64 {
    let payload = vec![7u8; size];
    let mut index = 1u64;
    let start = Instant::now();
    for _ in 0..batches {
        let entries: Vec<(u64, Vec<u8>)> = (0..per_batch)
            .map(|_| {
                index += 1;
                (index, payload.clone())
            })
            .collect();
        wal.append(&entries).unwrap();
    }
    (batches * per_batch) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let workloads = [
        ("1 entry of 170 B per sync", 1000usize, 1usize, 170usize),
        ("64 entries of 170 B per sync", 100, 64, 170),
        ("1 entry of 15 KB per sync", 400, 1, 15_000),
    ];
    println!("| workload | engine | entries/s (median of 3) |");
    println!("| --- | --- | ---: |");
    for (name, batches, per, size) in workloads {
        for engine in ["sled + fdatasync", "sled flush only", "raft-log (fsync)"] {
            let rates = (0..3)
                .map(|r| {
                    let dir = Dir::new(&format!("{}-{r}", engine.replace(' ', "")));
                    let mut wal: Box<dyn Wal> = match engine {
                        "sled + fdatasync" => Box::new(Sled::open(&dir.0, true)),
                        "sled flush only" => Box::new(Sled::open(&dir.0, false)),
                        _ => Box::new(RaftLogWal(
                            RaftLog::open(Arc::new(Config::new(dir.0.display()))).unwrap(),
                        )),
                    };
                    run(wal.as_mut(), batches, per, size)
                })
                .collect();
            println!("| {name} | {engine} | {:.0} |", median(rates));
        }
    }
}
