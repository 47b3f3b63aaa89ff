//! A packet relay that delays and drops frames on a host's link, for
//! kernels without `sch_netem` (this build machine's kernel has no netem:
//! only htb, tbf and fifo qdiscs).
//!
//! While a host is impaired, its switch-side veth leaves the bridge and the
//! relay carries its frames instead, between that veth and a spare veth
//! pair whose other end is on the bridge:
//!
//! ```text
//! host eth0 ── h3 ═relay═ h3r ── h3q ── br0
//! ```
//!
//! Frames from the host (its egress) are dropped with the loss probability
//! and delivered after the delay (plus up to the jitter) in their original
//! order; frames to the host pass straight through. That is what `tc
//! netem` on the host's `eth0` does, so both backends mean the same.
//! Frames keep their virtio-net header across the relay, so TCP
//! segmentation offload and partial checksums survive it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::impair::Impairment;
use crate::netns::{Netns, NetnsError};
use crate::rng::Rng;
use crate::sys::{self, SysError};

/// How often blocked relay threads look up to see whether to stop.
const POLL: Duration = Duration::from_millis(20);

/// Room for the largest offloaded frame plus its virtio-net header.
const FRAME_BUF: usize = 128 << 10;

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Entering the switch namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The packet sockets could not be made.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// A thread could not be started.
    #[error("starting a relay thread: {0}")]
    Thread(std::io::Error),
}

/// Frames the relay has seen leave the host.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Passed on (after the delay).
    pub forwarded: u64,
    /// Dropped on purpose.
    pub dropped: u64,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    params: Mutex<Impairment>,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// A running relay; stops (and drops frames still delayed) on drop.
#[derive(Debug)]
pub struct Relay {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Delayed {
    at: Instant,
    frame: Vec<u8>,
}

impl Relay {
    /// Starts relaying between `host_if` (towards the host) and `switch_if`
    /// (towards the bridge), both interfaces of `switch`.
    pub(crate) fn start(
        switch: &Netns,
        host_if: &str,
        switch_if: &str,
        params: Impairment,
        seed: u64,
    ) -> Result<Relay, RelayError> {
        let (host, bridge) = switch.run_in(|| -> Result<(File, File), SysError> {
            Ok((
                sys::packet_socket(host_if, POLL)?,
                sys::packet_socket(switch_if, POLL)?,
            ))
        })??;
        let clone = |f: &File| f.try_clone().map_err(RelayError::Thread);
        let (host_rx, host_tx) = (clone(&host)?, host);
        let (bridge_rx, bridge_tx) = (clone(&bridge)?, bridge);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            params: Mutex::new(params),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let (queue_tx, queue_rx) = mpsc::channel::<Delayed>();
        let mut relay = Relay {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(RelayError::Thread)
        };
        let s = Arc::clone(&shared);
        relay.threads.push(spawn(
            format!("relay-{host_if}-out"),
            Box::new(move || egress(&s, host_rx, &queue_tx, Rng::new(seed))),
        )?);
        let s = Arc::clone(&shared);
        relay.threads.push(spawn(
            format!("relay-{host_if}-delay"),
            Box::new(move || deliver(&s, &queue_rx, bridge_tx)),
        )?);
        let s = Arc::clone(&shared);
        relay.threads.push(spawn(
            format!("relay-{host_if}-in"),
            Box::new(move || ingress(&s, bridge_rx, host_tx)),
        )?);
        Ok(relay)
    }

    /// Changes the impairment; frames already delayed keep their times.
    pub fn set(&self, params: Impairment) {
        *self
            .shared
            .params
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = params;
    }

    /// What the relay has done to the host's frames so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads one frame; `None` when the read timed out or failed (a cut link
/// or a vanished interface), after which the caller checks whether to stop.
fn read_frame<'b>(from: &mut File, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    match from.read(buf) {
        Ok(n) if n > 0 => buf.get(..n),
        Ok(_) => None,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            None
        }
        Err(_) => {
            // E.g. ENETDOWN while the link is cut: do not spin on it.
            std::thread::sleep(POLL);
            None
        }
    }
}

/// Host to bridge: decide each frame's fate and when it leaves.
fn egress(shared: &Shared, mut from: File, queue: &mpsc::Sender<Delayed>, mut rng: Rng) {
    let mut buf = vec![0u8; FRAME_BUF];
    let mut last = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(frame) = read_frame(&mut from, &mut buf) else {
            continue;
        };
        let p = *shared.params.lock().unwrap_or_else(PoisonError::into_inner);
        if rng.chance(p.loss) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let jitter = if p.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.below(p.jitter.as_nanos() as u64 + 1))
        };
        // Never before the frame ahead of it: the link does not reorder.
        let at = (Instant::now() + p.delay + jitter).max(last);
        last = at;
        if queue
            .send(Delayed {
                at,
                frame: frame.to_vec(),
            })
            .is_err()
        {
            return;
        }
    }
}

/// Sends delayed frames towards the bridge when their time comes.
fn deliver(shared: &Shared, queue: &mpsc::Receiver<Delayed>, mut to: File) {
    let mut waiting: VecDeque<Delayed> = VecDeque::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some(d) = waiting.front().filter(|d| d.at <= now) {
            // A failed send is a lost frame, as on a real link.
            if to.write(&d.frame).is_ok() {
                shared.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            waiting.pop_front();
        }
        let wait = waiting
            .front()
            .map_or(POLL, |d| d.at.saturating_duration_since(now))
            .min(POLL);
        match queue.recv_timeout(wait) {
            Ok(d) => waiting.push_back(d),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Bridge to host: straight through.
fn ingress(shared: &Shared, mut from: File, mut to: File) {
    let mut buf = vec![0u8; FRAME_BUF];
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(frame) = read_frame(&mut from, &mut buf) {
            let _ = to.write(frame);
        }
    }
}
