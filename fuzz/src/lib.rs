//! Shared by the fuzz targets: an allocator that turns any single
//! allocation above [`CAP`] into a crash, so libFuzzer reports the input
//! that caused it (libFuzzer's own `-malloc_limit_mb` needs a sanitizer,
//! and these targets run without one on stable Rust).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// Largest single allocation a decoder may make: 16x the 4 MiB frame limit.
pub const CAP: usize = 64 << 20;

/// [`System`], but aborting on allocations above [`CAP`].
pub struct Capped;

fn too_big(size: usize) -> ! {
    let _ = writeln!(
        std::io::stderr(),
        "wren-fuzz: allocation of {size} bytes exceeds the cap of {CAP}"
    );
    std::process::abort()
}

// SAFETY: every method forwards to `System` with the caller's layout and
// pointer unchanged; the only addition is aborting before large requests.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            too_big(layout.size());
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            too_big(layout.size());
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            too_big(new_size);
        }
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;
