//! wren-tests: the end-to-end harness. It starts real `wren` processes
//! (servers and clients, each in a network namespace of the test's making)
//! and breaks things on purpose: kills and restarts processes, cuts links,
//! partitions groups of hosts, delays and loses packets. It also records
//! what concurrent clients saw and checks that history for
//! linearizability. And it holds the test that enforces DESIGN.md's
//! dependency rule.
//!
//! What it deliberately does not do: it never links `wren-agent` (it
//! drives the `wren` binary as separate processes, the way an operator
//! would), never touches the root namespace's networking (every link,
//! bridge and filter lives in namespaces it created and deletes), and
//! never asserts timings (speed is for benchmarks).
//!
//! The pieces, from the bottom up:
//!
//! - [`capability`]: skip with a printed reason when not root or without
//!   `ip netns`, but fail when `CI=true`.
//! - [`netns`]: network namespaces owned by one test, deleted on drop
//!   (panics included), stale ones of dead test processes removed.
//! - [`net`]: hosts on a shared L2 (a bridge in its own namespace), with
//!   link cuts, partitions, and delay and loss ([`impair`]: `tc netem` when
//!   the kernel has it, else a packet relay in the harness).
//! - [`process`]: commands inside a namespace with their output in files,
//!   SIGKILL, SIGTERM, restart with the same arguments.
//! - [`wait`]: poll a condition until a deadline.
//! - [`probe`]: a TCP echo server and round trips, to see what a fault did.
//! - [`bin`]: the `wren` binary under test.
//! - [`cluster`]: certificates from the real CLI, agent config files,
//!   servers and clients in namespaces, CLI commands against them.
//! - [`history`] and [`linearizable`]: record concurrent operations and
//!   decide whether they are linearizable.
//!
//! `unsafe` is denied everywhere but in the private `sys` module: two
//! one-line calls (a `SOL_PACKET` socket option and binding a packet socket
//! to an interface) that nix has no safe wrapper for.

mod owner;
mod sys;

pub mod bin;
pub mod capability;
pub mod cluster;
pub mod cmd;
pub mod history;
pub mod impair;
pub mod linearizable;
pub mod net;
pub mod netns;
pub mod probe;
pub mod process;
pub mod relay;
pub mod rng;
pub mod testdir;
pub mod wait;

pub use capability::{require, require_netns};
pub use net::{HostId, Net};
pub use process::{Proc, ProcSpec};
pub use testdir::TestDir;
pub use wait::eventually;
