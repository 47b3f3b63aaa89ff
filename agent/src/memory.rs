//! Giving the heap a burst freed back to the kernel.
//!
//! glibc's allocator keeps freed memory in its arenas (one per thread that
//! ever allocated, up to eight per core) for reuse, and only returns the
//! free top of an arena. After a burst of work (a thousand jobs submitted,
//! snapshots built, allocation updates decoded) most of the agent's heap is
//! free but still resident: measured on the dev agent after 10,000
//! allocations, 352 MB of arenas held 131 MB in use. `malloc_trim(0)`
//! walks every arena and gives the free pages back (`MADV_DONTNEED`), which
//! took that agent from 312 to 185 MB RSS. The agent does it on a timer.
//!
//! Each arena also keeps its own fragments: after the same run, a dozen
//! arenas of threads that allocate little each held 2 to 3 MB resident
//! for under 1 MB in use. The agent uses a single arena, [`HEAP_ARENAS`]
//! (unless `MALLOC_ARENA_MAX` is set): with the trim, the dev agent after
//! 10,000 allocations went from 150 to 131 MiB with two arenas, and ran
//! the burst no slower. Once the burst's peak had come down, the second
//! arena's free fragments were what was left: 6 to 8 MB of the 20 MB it
//! held, and the agent used 62.0 MiB with two arenas against 57.0 MiB with
//! one (same binary, same burst). Threads keep their own small caches
//! (glibc's tcache), so they seldom wait for the arena's lock.
//!
//! glibc also raises the size from which it maps large allocations apart
//! each time such an allocation is freed; the agent keeps it at 128 KiB
//! (unless `MALLOC_MMAP_THRESHOLD_` is set), so a snapshot's buffer read
//! once does not send every later large buffer into the heap.
//!
//! musl's allocator returns freed memory by itself and has no
//! `malloc_trim`; on such targets the agent runs no trimmer. The call
//! itself is in `wren-runtimes`, the crate that holds the agent's few
//! `unsafe` calls.

use std::time::Duration;

/// The allocator arenas the agent allows: every thread shares one.
pub const HEAP_ARENAS: u8 = 1;

/// The size from which every allocation is a mapping of its own (glibc's
/// default start), kept there: see [`wren_runtimes::fix_heap_mmap_threshold`].
pub const MMAP_THRESHOLD: u32 = 128 << 10;

/// Sets the allocator's arena cap ([`HEAP_ARENAS`]) and mmap threshold
/// ([`MMAP_THRESHOLD`]), each unless glibc's own variable for it
/// (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`) is set. Call before
/// spawning threads.
pub fn tune_heap() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        wren_runtimes::limit_heap_arenas(HEAP_ARENAS);
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        wren_runtimes::fix_heap_mmap_threshold(MMAP_THRESHOLD);
    }
}

/// How often the agent gives free heap back. Trimming takes a few
/// milliseconds on a heap of hundreds of MB (arena locks are taken one at
/// a time), so this costs nothing measurable and bounds how long a burst's
/// garbage stays resident.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Trims the heap every [`TRIM_EVERY`], on the blocking pool so that no
/// executor thread waits on an arena lock, until the returned task is
/// dropped. sled's deferred frees that came due run first
/// ([`wren_state::release_sled_garbage`]), so that what they free is
/// trimmed too. `None` where the allocator has nothing to trim (musl): the
/// agent then wakes for nothing.
pub fn spawn_trimmer(ex: &smol::Executor<'static>) -> Option<smol::Task<()>> {
    if !wren_runtimes::RELEASES_FREE_HEAP {
        return None;
    }
    Some(ex.spawn(async {
        loop {
            smol::Timer::after(TRIM_EVERY).await;
            smol::unblock(|| {
                wren_state::release_sled_garbage();
                wren_runtimes::release_free_heap();
            })
            .await;
        }
    }))
}
