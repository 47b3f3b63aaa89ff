//! An in-memory network of [`StateNode`]s in one process, for tests and
//! benchmarks (raft-rs does the same in `harness/src/network.rs`).
//!
//! Messages are the real encoded Raft messages, delivered by calling the
//! receiving node's [`StateNode::handle_rpc`]. Links can be cut one way or
//! both, whole servers isolated, and delays added, to break a cluster on
//! purpose. The agent never uses this: it carries the same bytes over CoAP.
//!
//! The network holds the nodes attached to it and each node holds its
//! transport, which holds the network: [`MemNet::detach`] a node to let it
//! go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::node::StateNode;
use crate::transport::{BoxFuture, PeerId, Transport, TransportError};

#[derive(Debug, Default)]
struct Net {
    nodes: BTreeMap<PeerId, StateNode>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(PeerId, PeerId)>,
    /// Directed links that delay every message (and its reply).
    delay: BTreeMap<(PeerId, PeerId), Duration>,
    /// Largest request delivered, like a wire's frame limit.
    max_message_bytes: Option<usize>,
}

/// The network: which nodes exist and which links work.
#[derive(Debug, Clone, Default)]
pub struct MemNet {
    net: Arc<Mutex<Net>>,
}

impl MemNet {
    /// An empty network.
    pub fn new() -> MemNet {
        MemNet::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Net) -> T) -> T {
        f(&mut self.net.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The transport a node with id `from` sends through.
    pub fn transport(&self, from: PeerId) -> Arc<dyn Transport> {
        Arc::new(MemTransport {
            from,
            net: self.clone(),
        })
    }

    /// Makes `node` reachable.
    pub fn attach(&self, node: StateNode) {
        self.with(|n| n.nodes.insert(node.id(), node));
    }

    /// Makes node `id` unreachable, as if its process were gone.
    pub fn detach(&self, id: PeerId) -> Option<StateNode> {
        self.with(|n| n.nodes.remove(&id))
    }

    /// Drops everything `from` sends to `to` (and the replies).
    pub fn cut(&self, from: PeerId, to: PeerId) {
        self.with(|n| n.cut.insert((from, to)));
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[PeerId], b: &[PeerId]) {
        self.with(|n| {
            for &x in a {
                for &y in b {
                    n.cut.insert((x, y));
                    n.cut.insert((y, x));
                }
            }
        });
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&self, id: PeerId) {
        let others: Vec<PeerId> =
            self.with(|n| n.nodes.keys().copied().filter(|&x| x != id).collect());
        self.partition(&[id], &others);
    }

    /// Delays every message from `from` to `to` by `by`.
    pub fn delay(&self, from: PeerId, to: PeerId, by: Duration) {
        self.with(|n| n.delay.insert((from, to), by));
    }

    /// Refuses requests larger than `bytes`, as a wire with a frame limit
    /// would.
    pub fn limit_message_bytes(&self, bytes: usize) {
        self.with(|n| n.max_message_bytes = Some(bytes));
    }

    /// Restores every link and removes every delay.
    pub fn heal(&self) {
        self.with(|n| {
            n.cut.clear();
            n.delay.clear();
        });
    }

    fn route(
        &self,
        from: PeerId,
        to: PeerId,
        len: usize,
    ) -> Result<(StateNode, Option<Duration>), TransportError> {
        self.with(|n| {
            if let Some(limit) = n.max_message_bytes.filter(|&limit| len > limit) {
                return Err(TransportError::Failed {
                    peer: to,
                    addr: String::new(),
                    reason: format!("message of {len} bytes is over the limit of {limit}"),
                });
            }
            let unreachable = |reason: &str| TransportError::Unreachable {
                peer: to,
                addr: String::new(),
                reason: reason.to_owned(),
            };
            if n.cut.contains(&(from, to)) {
                return Err(unreachable("link is cut"));
            }
            let node = n
                .nodes
                .get(&to)
                .cloned()
                .ok_or_else(|| unreachable("no such node"))?;
            Ok((node, n.delay.get(&(from, to)).copied()))
        })
    }

    fn link_up(&self, from: PeerId, to: PeerId) -> bool {
        self.with(|n| !n.cut.contains(&(from, to)) && !n.cut.contains(&(to, from)))
    }
}

#[derive(Debug)]
struct MemTransport {
    from: PeerId,
    net: MemNet,
}

impl Transport for MemTransport {
    fn send<'a>(
        &'a self,
        to: PeerId,
        addr: &'a str,
        message: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let (node, delay) = self.net.route(self.from, to, message.len())?;
            if let Some(delay) = delay {
                async_io::Timer::after(delay).await;
            }
            let reply = node.handle_rpc(&message).await;
            if let Some(delay) = delay {
                async_io::Timer::after(delay).await;
            }
            // A link cut while the message was in flight loses the reply.
            if !self.net.link_up(self.from, to) {
                return Err(TransportError::Unreachable {
                    peer: to,
                    addr: addr.to_owned(),
                    reason: "link cut in flight".to_owned(),
                });
            }
            Ok(reply)
        })
    }
}
