//! Server mode: this agent holds a replica of the region's state (Raft on
//! sled), answers the `/v1` API, and — on the leader — runs the region's
//! scheduling machinery.
//!
//! - [`core`]: writes that find the leader, consistent and stale reads,
//!   blocking queries; what every endpoint stands on.
//! - [`transport`]: Raft messages over the wire between servers.
//! - [`peers`]: connections to the other servers.
//! - [`bootstrap`]: forming the region (`bootstrap_expect`, `retry_join`).
//! - [`membership`]: who the servers are (hello), joining, removing peers.
//! - [`endpoints`]: the `/v1` reads and writes the CLI uses.

pub mod bootstrap;
pub mod core;
pub mod endpoints;
pub mod membership;
pub mod peers;
pub mod sched;
pub mod transport;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smol::Executor;
use wren_state::{NodeConfig, RaftTiming, Spawner, StateNode};

use self::core::{Core, Identity, READ_INDEX_PATH, WRITE_PATH};
use self::peers::Peers;
use self::transport::{RAFT_PATH, WireTransport};
use crate::config::AgentConfig;
use crate::wire::{Method, Roles, Router, TlsMaterial};

/// Why the server part could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerStartError {
    /// The data directory is unusable.
    #[error("server data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The Raft node did not open.
    #[error(transparent)]
    Open(#[from] wren_state::OpenError),
}

/// A running server's handle.
#[derive(Debug, Clone)]
pub struct Server {
    /// What every endpoint uses.
    pub core: Core,
    /// The servers of the region this one knows.
    pub members: membership::Membership,
    /// Workers, and the broker, plan applier and heartbeats while leading.
    pub sched: sched::Scheduling,
}

impl Server {
    /// Opens this server's replica under `<data_dir>/server` and registers
    /// its endpoints on `router`. `addr` is the address other agents reach
    /// this one at.
    pub async fn open(
        config: &AgentConfig,
        data_dir: &Path,
        addr: String,
        tls: &TlsMaterial,
        ex: Arc<Executor<'static>>,
        router: &mut Router,
    ) -> Result<Server, ServerStartError> {
        Server::open_tuned(config, data_dir, addr, tls, ex, router, |_| {}).await
    }

    /// [`Server::open`] with a last say over the Raft node's configuration.
    /// For benchmarks only (e.g. storage that is not durable, to show what
    /// durability costs); agents use [`Server::open`].
    #[doc(hidden)]
    pub async fn open_tuned(
        config: &AgentConfig,
        data_dir: &Path,
        addr: String,
        tls: &TlsMaterial,
        ex: Arc<Executor<'static>>,
        router: &mut Router,
        tune: impl FnOnce(&mut NodeConfig),
    ) -> Result<Server, ServerStartError> {
        let dir = data_dir.join("server");
        let io = |source| ServerStartError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let id = raft_id(&dir).map_err(io)?;
        let mut node_config = NodeConfig::new(id, addr.clone(), dir.join("raft"));
        node_config.region = config.region.clone();
        node_config.cache_bytes = config.sled_cache_mb.saturating_mul(1 << 20);
        node_config.timing = RaftTiming {
            multiplier: config.server.raft_multiplier.max(1),
            ..RaftTiming::default()
        };
        tune(&mut node_config);
        let peers = Peers::new(tls.clone(), ex.clone());
        let transport = Arc::new(WireTransport::new(peers.clone()));
        let node = StateNode::open(node_config, transport, Spawner::new(ex.clone())).await?;
        let core = Core {
            identity: Identity {
                name: config.name.clone().unwrap_or_else(crate::agent::hostname),
                region: config.region.clone(),
                datacenter: config.datacenter.clone(),
                addr,
            },
            node,
            peers,
            ex,
            deadline: Duration::from_secs(10).saturating_mul(config.server.raft_multiplier.max(1)),
        };
        let members = membership::Membership::new(
            membership::ServerInfo {
                id,
                name: core.identity.name.clone(),
                addr: core.identity.addr.clone(),
                region: core.identity.region.clone(),
                datacenter: core.identity.datacenter.clone(),
                version: wren_model::VERSION.to_owned(),
                bootstrap_expect: config.server.bootstrap_expect,
            },
            Duration::from_secs(2).saturating_mul(config.server.raft_multiplier.max(1)),
        );
        register(&core, router);
        membership::register(&core, &members, router);
        endpoints::register(&core, &members, router);
        let sched =
            sched::Scheduling::start(&core, sched::Settings::from_config(&config.server), router);
        Ok(Server {
            core,
            members,
            sched,
        })
    }
}

fn register(core: &Core, router: &mut Router) {
    let node = Arc::new(core.node.clone());
    router.route(Method::Post, RAFT_PATH, Roles::SERVER, move |req| {
        transport::receive(node.clone(), req)
    });
    let c = core.clone();
    router.route(Method::Post, WRITE_PATH, Roles::SERVER, move |req| {
        c.clone().receive_write(req)
    });
    let c = core.clone();
    router.route(Method::Post, READ_INDEX_PATH, Roles::SERVER, move |req| {
        c.clone().receive_read_index(req)
    });
    let c = core.clone();
    router.route(Method::Get, "/v1/status/leader", Roles::ANY, move |req| {
        core::leader(c.clone(), req)
    });
}

/// This server's Raft id: random once, then kept in the data directory.
fn raft_id(dir: &Path) -> std::io::Result<u64> {
    let path = dir.join("raft-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 8];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
            // Zero is not a valid openraft node id in some tools; avoid it.
            let id = u64::from_le_bytes(bytes).max(1) >> 1;
            crate::agent::write_atomic(&path, id.to_string().as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}
