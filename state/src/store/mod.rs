//! Durable storage: the Raft log and its metadata on sled, and the state
//! machine's snapshot in a file beside it.

pub(crate) mod disk;
pub(crate) mod log;
pub(crate) mod sm;
pub(crate) mod snapfile;

#[cfg(test)]
mod tests;

pub use disk::{Durability, StorageError};

/// Runs the frees sled deferred on this thread, and any other thread's that
/// are due.
///
/// sled frees superseded pages and its 512 KiB write buffers through
/// crossbeam-epoch: a thread that replaces one queues the free in a
/// thread-local bag of up to 64, which is handed over only when the thread
/// next uses sled enough times. A thread that goes quiet after a burst
/// (the syncer, a blocking-pool thread that flushed) keeps its bag, and
/// the bag keeps buffers alive: 39 of them, 19.5 MB, in a dev agent after
/// 10,000 allocations. Call this after writing or flushing through sled;
/// it costs a few atomic operations when there is nothing to free. The
/// repeats let the global epoch advance past what was just handed over,
/// as it must before that can be freed.
pub fn release_sled_garbage() {
    for _ in 0..3 {
        crossbeam_epoch::pin().flush();
    }
}
