//! A region of real servers in one test process, for the scheduling
//! tests: each server is the agent's own `Server` (Raft on sled in a
//! temporary directory, the wire with mutual TLS on a loopback port, the
//! scheduling machinery), and clients are the test itself speaking the
//! client protocol over the wire with client certificates — registering
//! nodes, heartbeating, and reporting allocation status as a client agent
//! would.

#![allow(dead_code)]

#[path = "../ports/mod.rs"]
mod ports;
use ports::free_port;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smol::channel::Sender;
use smol::{Executor, Task};
use wren_agent::api::{
    AllocUpdateRequest, ClientAllocUpdate, HeartbeatRequest, HeartbeatResponse, IndexResponse,
    NodeRegisterRequest,
};
use wren_agent::config::AgentConfig;
use wren_agent::server::Server;
use wren_agent::server::core::Core;
use wren_agent::wire::pki::{CertPem, CertRequest, create_ca, create_cert};
use wren_agent::wire::{
    self, Client, ClientConfig, ClientSettings, Method, Role, Router, Settings, TlsMaterial,
};
use wren_model::{
    Allocation, ClientStatus, DriverInfo, EvalStatus, Evaluation, Job, Node, NodeStatus,
    TriggeredBy,
};
use wren_state::{Command, Peer, RegisterJob, Role as RaftRole, State};

/// An executor driven by worker threads, stopped on drop.
pub struct Runtime {
    pub ex: Arc<Executor<'static>>,
    stop: Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Runtime {
    pub fn new(threads: usize) -> Runtime {
        let ex = Arc::new(Executor::new());
        let (stop, rx) = smol::channel::bounded::<()>(1);
        let threads = (0..threads)
            .map(|_| {
                let ex = ex.clone();
                let rx = rx.clone();
                std::thread::spawn(move || {
                    smol::block_on(ex.run(async {
                        let _ = rx.recv().await;
                    }))
                })
            })
            .collect();
        Runtime { ex, stop, threads }
    }

    pub fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        smol::block_on(self.ex.run(f))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Polls `probe` on the calling thread until it returns `Some`, or panics
/// after `limit` naming `what`.
pub fn eventually<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("wren-sched-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One running server.
pub struct Srv {
    pub server: Server,
    pub listener: Arc<wire::Server>,
    pub addr: SocketAddr,
}

/// A region of servers in this process.
pub struct Region {
    pub rt: Runtime,
    pub ca: CertPem,
    pub region: String,
    pub servers: Vec<Option<Srv>>,
    _dir: TempDir,
}

fn material(ca: &CertPem, pair: &CertPem) -> TlsMaterial {
    TlsMaterial::from_pem(
        ca.cert.as_bytes(),
        pair.cert.as_bytes(),
        pair.key.as_bytes(),
    )
    .expect("tls material")
}

impl Region {
    /// Starts `n` servers, each tuned by `tune`, and forms the region.
    pub fn start(name: &str, n: usize, tune: impl Fn(&mut AgentConfig)) -> Region {
        let dir = TempDir::new(name);
        let rt = Runtime::new(4);
        let region = "global".to_owned();
        let ca = create_ca(30).expect("ca");
        let mut servers = Vec::new();
        for i in 0..n {
            let pair = create_cert(&ca, &CertRequest::new(Role::Server, region.clone()))
                .expect("server cert");
            let tls = material(&ca, &pair);
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut config = AgentConfig {
                name: Some(format!("s{}", i + 1)),
                ..AgentConfig::default()
            };
            config.server.enabled = true;
            config.server.raft_multiplier = 2;
            tune(&mut config);
            let data = dir.0.join(format!("s{}", i + 1));
            let mut router = Router::new();
            let server = rt
                .block_on(Server::open(
                    &config,
                    &data,
                    addr.to_string(),
                    &tls,
                    rt.ex.clone(),
                    &mut router,
                ))
                .expect("server opens");
            let listener = Arc::new(
                wire::Server::bind(addr, &tls, router, Settings::default(), rt.ex.clone())
                    .expect("listen"),
            );
            let l = listener.clone();
            rt.ex.spawn(async move { l.run().await }).detach();
            servers.push(Some(Srv {
                server,
                listener,
                addr,
            }));
        }
        let peers: Vec<Peer> = servers
            .iter()
            .flatten()
            .map(|s| Peer {
                id: s.server.core.node.id(),
                addr: s.addr.to_string(),
            })
            .collect();
        let first = servers[0].as_ref().expect("first server");
        rt.block_on(first.server.core.node.initialize(peers))
            .expect("initialize");
        let r = Region {
            rt,
            ca,
            region,
            servers,
            _dir: dir,
        };
        r.leader();
        r
    }

    /// The running servers' indexes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|&i| self.servers[i].is_some())
            .collect()
    }

    pub fn srv(&self, i: usize) -> &Srv {
        self.servers[i].as_ref().expect("server is running")
    }

    pub fn core(&self, i: usize) -> &Core {
        &self.srv(i).server.core
    }

    /// The server that leads and runs the broker, once there is one.
    pub fn leader(&self) -> usize {
        eventually(
            "a leader running the broker",
            Duration::from_secs(30),
            || {
                self.running().into_iter().find(|&i| {
                    let s = self.srv(i);
                    s.server.core.node.status().role == RaftRole::Leader
                        && s.server.sched.is_leading()
                })
            },
        )
    }

    /// A server that does not lead.
    pub fn follower(&self) -> usize {
        let leader = self.leader();
        self.running()
            .into_iter()
            .find(|&i| i != leader)
            .expect("a follower")
    }

    /// The leader's applied state.
    pub fn state(&self) -> State {
        self.core(self.leader()).node.snapshot()
    }

    /// Polls the leader's state until `probe` finds what it wants.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut(&State) -> Option<T>,
    ) -> T {
        eventually(what, limit, || probe(&self.state()))
    }

    /// A wire client of every running server, with a new certificate of
    /// `role`.
    pub fn client(&self, role: Role) -> Client {
        let pair =
            create_cert(&self.ca, &CertRequest::new(role, self.region.clone())).expect("cert");
        let addresses = self
            .running()
            .into_iter()
            .map(|i| self.srv(i).addr.to_string().parse().expect("address"))
            .collect();
        Client::new(
            ClientConfig {
                addresses,
                tls: material(&self.ca, &pair),
                settings: ClientSettings {
                    request_timeout: Duration::from_secs(30),
                    backoff_min: Duration::from_millis(20),
                    backoff_max: Duration::from_millis(500),
                    ..ClientSettings::default()
                },
            },
            self.rt.ex.clone(),
        )
        .expect("client")
    }

    /// Registers `job` through server `via` with its evaluation, as the
    /// job endpoint does; returns the evaluation's id.
    pub fn register_job(&self, via: usize, job: Job) -> String {
        let eval = Evaluation {
            id: wren_agent::ids::uuid(),
            priority: job.priority,
            job_type: job.job_type,
            triggered_by: TriggeredBy::JobRegister,
            job_id: job.id.clone(),
            status: EvalStatus::Pending,
            create_time: wren_agent::ids::now_nanos(),
            modify_time: wren_agent::ids::now_nanos(),
            ..Evaluation::default()
        };
        let id = eval.id.clone();
        self.rt
            .block_on(self.core(via).write(Command::RegisterJob(RegisterJob {
                job,
                eval: Some(eval),
                enforce_index: None,
            })))
            .expect("job registers");
        id
    }

    /// Stops server `i` as the agent does on SIGTERM.
    pub fn stop(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.server.sched.stop();
            s.listener.shutdown();
            let _ = self.rt.block_on(s.server.core.node.shutdown());
        }
    }

    /// Registers a node over the client protocol with its own client
    /// certificate and keeps it heartbeating.
    pub fn add_node(&self, node: Node) -> FakeNode {
        let client = self.client(Role::Client);
        let resp: HeartbeatResponse = self
            .rt
            .block_on(client.send(
                Method::Post,
                "/v1/client/register",
                &NodeRegisterRequest { node: node.clone() },
            ))
            .expect("node registers")
            .0;
        let beating = Some(self.rt.ex.spawn(heartbeat(
            client.clone(),
            node.id.clone(),
            resp.heartbeat_ttl.to_std(),
        )));
        FakeNode {
            id: node.id,
            client,
            beating,
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.stop(i);
        }
    }
}

async fn heartbeat(client: Client, node_id: String, mut ttl: Duration) {
    loop {
        smol::Timer::after((ttl / 3).max(Duration::from_millis(50))).await;
        let req = HeartbeatRequest {
            node_id: node_id.clone(),
        };
        match client
            .send::<_, HeartbeatResponse>(Method::Post, "/v1/client/heartbeat", &req)
            .await
        {
            Ok((r, _)) => ttl = r.heartbeat_ttl.to_std(),
            Err(e) => {
                eprintln!("test client {node_id}: heartbeat: {e}");
                ttl = Duration::from_millis(300);
            }
        }
    }
}

/// A node the test plays the client agent of.
pub struct FakeNode {
    pub id: String,
    pub client: Client,
    beating: Option<Task<()>>,
}

impl FakeNode {
    /// The node goes silent (its agent died).
    pub fn stop_heartbeats(&mut self) {
        self.beating.take();
    }

    /// The node speaks again (its agent is back).
    pub fn resume_heartbeats(&mut self, rt: &Runtime) {
        if self.beating.is_none() {
            self.beating = Some(rt.ex.spawn(heartbeat(
                self.client.clone(),
                self.id.clone(),
                Duration::ZERO,
            )));
        }
    }

    /// Reports every given allocation with `status`.
    pub fn report(
        &self,
        rt: &Runtime,
        allocs: &[Allocation],
        status: ClientStatus,
    ) -> Result<u64, wire::ClientError> {
        let updates = allocs
            .iter()
            .map(|a| ClientAllocUpdate {
                alloc_id: a.id.clone(),
                client_status: status,
                client_description: format!("tasks are {status}"),
                modify_time: wren_agent::ids::now_nanos(),
                ..ClientAllocUpdate::default()
            })
            .collect();
        let req = AllocUpdateRequest {
            node_id: self.id.clone(),
            updates,
        };
        let (resp, _): (IndexResponse, _) =
            rt.block_on(self.client.send(Method::Post, "/v1/client/allocs", &req))?;
        Ok(resp.index)
    }
}

/// A ready node of `cpu` MHz and `memory` MB with raw_exec.
pub fn node(id: &str, cpu: u32, memory_mb: u64) -> Node {
    let mut n = Node {
        id: id.to_owned(),
        name: id.to_owned(),
        datacenter: "dc1".into(),
        node_pool: "default".into(),
        status: NodeStatus::Ready,
        ..Node::default()
    };
    n.resources.cpu = cpu;
    n.resources.memory_mb = memory_mb;
    n.resources.disk_mb = 100_000;
    n.attributes.insert("cpu.arch".into(), "x86_64".into());
    n.drivers.insert(
        "raw_exec".into(),
        DriverInfo {
            detected: true,
            healthy: true,
            ..DriverInfo::default()
        },
    );
    n
}

/// A service job of one group of `count` allocations of one raw_exec
/// task using `cpu` MHz and `memory` MB, parsed from HCL as the CLI does.
pub fn service(id: &str, count: u32, cpu: u32, memory_mb: u64) -> Job {
    job_from(&format!(
        r#"
job "{id}" {{
  datacenters = ["dc1"]
  group "g" {{
    count = {count}
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = {cpu}
        memory = {memory_mb}
      }}
    }}
  }}
}}
"#
    ))
}

/// Parses a jobspec.
pub fn job_from(hcl: &str) -> Job {
    wren_model::jobspec::parse("test.hcl", hcl).unwrap_or_else(|e| panic!("jobspec: {e}"))
}

/// Live allocations in `state`, by node: (cpu, memory) used.
pub fn usage(state: &State) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for a in state.allocs().filter(|a| !a.is_terminal()) {
        let e = out.entry(a.node_id.clone()).or_insert((0u64, 0u64));
        for t in a.resources.tasks.values() {
            e.0 += u64::from(t.cpu);
            e.1 += t.memory_mb;
        }
    }
    out
}
