//! A region of servers in this process, each with its own executor (two
//! threads, as a server agent has at least), its own data directory and its
//! own wire listener on a loopback port, forming the region through
//! `bootstrap_expect` and `retry_join` like real agents. For the in-process
//! API tests and the `region_commit` benchmark (which includes this file).

#![allow(dead_code)]

#[path = "../ports/mod.rs"]
mod ports;
use ports::free_port;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::Executor;
use wren_agent::config::AgentConfig;
use wren_agent::server::{self, Server};
use wren_agent::wire::pki::{CertPem, CertRequest, create_ca, create_cert};
use wren_agent::wire::{self, Client, ClientConfig, ClientSettings, Role, Router, TlsMaterial};
use wren_state::{Durability, NodeConfig};

/// One server of the region.
pub struct InProcServer {
    /// Its handle (core, membership).
    pub server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
    listener: Arc<wire::Server>,
    ex: Arc<Executor<'static>>,
    stop: smol::channel::Sender<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A region of in-process servers.
pub struct InProcRegion {
    /// The servers.
    pub servers: Vec<InProcServer>,
    ca: CertPem,
    dir: PathBuf,
    client_ex: Arc<Executor<'static>>,
    client_stop: smol::channel::Sender<()>,
}

fn executor(
    threads: usize,
) -> (
    Arc<Executor<'static>>,
    smol::channel::Sender<()>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    let (stop, rx) = smol::channel::bounded::<()>(1);
    let handles = (0..threads)
        .map(|_| {
            let (ex, rx) = (ex.clone(), rx.clone());
            std::thread::spawn(move || {
                smol::block_on(ex.run(async {
                    let _ = rx.recv().await;
                }));
            })
        })
        .collect();
    (ex, stop, handles)
}

fn material(ca: &CertPem, role: Role) -> TlsMaterial {
    let pair = create_cert(ca, &CertRequest::new(role, "global")).expect("a certificate");
    TlsMaterial::from_pem(
        ca.cert.as_bytes(),
        pair.cert.as_bytes(),
        pair.key.as_bytes(),
    )
    .expect("loadable TLS material")
}

impl InProcRegion {
    /// Starts `n` servers with storage of the given durability and waits
    /// until they agree on a leader.
    pub fn start(test: &str, n: usize, durability: Durability) -> InProcRegion {
        let dir = std::env::temp_dir().join(format!(
            "wren-inproc-{test}-{}-{}",
            std::process::id(),
            wren_agent::ids::random_u64()
        ));
        let ca = create_ca(30).expect("a CA");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let addrs: Vec<SocketAddr> = ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let mut servers = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let (ex, stop, threads) = executor(2);
            let mut config = AgentConfig {
                name: Some(format!("s{}", i + 1)),
                port: addr.port(),
                ..AgentConfig::default()
            };
            config.server.enabled = true;
            config.server.bootstrap_expect = n as u32;
            config.server.retry_join = addrs.iter().map(ToString::to_string).collect();
            let data = dir.join(format!("s{}", i + 1));
            let tls = material(&ca, Role::Server);
            let mut router = Router::new();
            let server = smol::block_on(Server::open_tuned(
                &config,
                &data,
                addr.to_string(),
                &tls,
                ex.clone(),
                &mut router,
                |c: &mut NodeConfig| c.durability = durability,
            ))
            .expect("the server opens");
            let listener = Arc::new(
                wire::Server::bind(*addr, &tls, router, wire::Settings::default(), ex.clone())
                    .expect("the port is free"),
            );
            let l = listener.clone();
            ex.spawn(async move { l.run().await }).detach();
            server::bootstrap::spawn(&server, &config);
            servers.push(InProcServer {
                server,
                addr: *addr,
                listener,
                ex,
                stop,
                threads,
            });
        }
        let (client_ex, client_stop, _) = executor(2);
        let region = InProcRegion {
            servers,
            ca,
            dir,
            client_ex,
            client_stop,
        };
        region.wait_for_leader(Duration::from_secs(60));
        region
    }

    /// The index of the server every server names as leader.
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        let until = Instant::now() + timeout;
        loop {
            let leaders: Vec<Option<u64>> = self
                .servers
                .iter()
                .map(|s| s.server.core.node.leader().map(|l| l.id))
                .collect();
            if let Some(Some(id)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*id))
                && let Some(i) = self
                    .servers
                    .iter()
                    .position(|s| s.server.core.node.id() == *id)
            {
                return i;
            }
            assert!(
                Instant::now() < until,
                "no leader within {timeout:?}: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client with a certificate of `role`, talking to these servers.
    pub fn client(&self, role: Role, servers: &[usize]) -> Client {
        let addresses = servers
            .iter()
            .map(|&i| {
                self.servers[i]
                    .addr
                    .to_string()
                    .parse()
                    .expect("an address")
            })
            .collect();
        Client::new(
            ClientConfig {
                addresses,
                tls: material(&self.ca, role),
                settings: ClientSettings::default(),
            },
            self.client_ex.clone(),
        )
        .expect("a client")
    }

    /// The executor clients run on.
    pub fn client_executor(&self) -> Arc<Executor<'static>> {
        self.client_ex.clone()
    }

    /// Stops every server and removes the data.
    pub fn stop(self) {
        for s in &self.servers {
            s.listener.shutdown();
            let _ = smol::block_on(s.server.core.node.shutdown());
        }
        for s in self.servers {
            s.stop.close();
            for t in s.threads {
                let _ = t.join();
            }
            drop(s.ex);
        }
        self.client_stop.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
