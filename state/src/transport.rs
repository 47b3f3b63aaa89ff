//! How Raft messages leave this crate: a transport the agent implements.
//!
//! `state` owns the Raft node but not its network. It encodes every Raft
//! message itself and hands the agent opaque bytes to deliver to another
//! server; the other server's agent passes them to
//! [`StateNode::handle_rpc`](crate::StateNode::handle_rpc) and sends back
//! what that returns. Messages are bounded, so a transport can treat each
//! as one request and one response: appends are split to fit
//! [`NodeConfig::max_message_bytes`](crate::NodeConfig) and snapshots are
//! sent in chunks of `snapshot_chunk_bytes`; only a single log entry larger
//! than that (up to `max_command_bytes`, e.g. a restored snapshot) travels
//! alone in a bigger message.

use std::future::Future;
use std::pin::Pin;

/// A server's Raft id, unique and stable within a region.
pub type PeerId = u64;

/// A boxed future, as [`Transport::send`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A server: its Raft id and the address its agent listens on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// Raft id.
    pub id: PeerId,
    /// Where its agent listens (e.g. `10.0.0.2:4648`).
    pub addr: String,
}

/// Why a message got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (connection refused, no route, the
    /// process is gone). Raft backs off before trying again.
    #[error("peer {peer} at {addr} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The request was sent but no reply came in time.
    #[error("peer {peer} at {addr} did not reply in time")]
    Timeout {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: String,
    },
    /// Anything else (TLS failure, a malformed frame, a reply too large).
    #[error("sending to peer {peer} at {addr} failed: {reason}")]
    Failed {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Carries Raft messages between servers.
pub trait Transport: Send + Sync + 'static {
    /// Sends `message` to server `to` (listening at `addr`) and returns the
    /// bytes it replied with. The caller applies its own deadline; a
    /// transport may give up earlier.
    fn send<'a>(
        &'a self,
        to: PeerId,
        addr: &'a str,
        message: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>>;
}
