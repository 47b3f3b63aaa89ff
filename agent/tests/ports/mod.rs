//! Loopback ports for in-process servers that must know their address
//! before they listen (it is part of their identity in the region).
//!
//! Asking the OS for port 0 and reusing the number later races with every
//! other socket on the machine: the kernel hands the same ephemeral ports
//! to outgoing connections, and a test's own clients grab them between the
//! probe and the bind. These ports come from below the kernel's ephemeral
//! range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 and up by
//! default), which the kernel never hands out by itself, starting at an
//! offset from the process id so concurrent test binaries spread out, and
//! each one is checked free before it is returned.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A loopback port nothing listens on, outside the ephemeral range.
pub fn free_port() -> u16 {
    // The first caller seeds the sequence from the pid; racing first
    // callers both seed, which only moves the start.
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let _ = NEXT.compare_exchange(
            u32::MAX,
            (std::process::id().wrapping_mul(97)) % COUNT,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    for _ in 0..COUNT {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(port).expect("FIRST + COUNT fits a port number");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port between {FIRST} and {}",
        FIRST + COUNT
    )
}
