//! An in-process cluster of state nodes on the in-memory network, each
//! with its own executor and thread, its own data directory, and durable
//! storage: servers can be killed (their executor dropped mid-flight),
//! restarted from disk, isolated and partitioned.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use smol::Executor;
use wren_model::{Evaluation, Job, TaskGroup};
use wren_state::memnet::MemNet;
use wren_state::{
    Command, Durability, NodeConfig, Peer, PeerId, RegisterJob, Role, Spawner, State, StateNode,
    Status,
};

/// Generous: the machine is small and shared.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    smol::block_on(f)
}

/// A directory unique to this process and call, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wren-state-it-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An executor run by one thread of its own until dropped.
pub struct Runner {
    executor: Arc<Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Runner {
    pub fn new(name: &str) -> Runner {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let ex = executor.clone();
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                smol::block_on(ex.run(async move {
                    let _ = stopped.recv().await;
                }))
            })
            .unwrap();
        Runner {
            executor,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn spawner(&self) -> Spawner {
        Spawner::new(self.executor.clone())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

pub struct Server {
    pub node: StateNode,
    runner: Runner,
}

pub struct Cluster {
    name: String,
    pub net: MemNet,
    pub ids: Vec<PeerId>,
    dirs: BTreeMap<PeerId, TempDir>,
    servers: BTreeMap<PeerId, Server>,
    configure: fn(&mut NodeConfig),
}

fn addr(id: PeerId) -> String {
    format!("10.0.0.{id}:4648")
}

impl Cluster {
    /// `n` servers, formed into one cluster by server 1.
    pub fn new(name: &str, n: u64) -> Cluster {
        Cluster::with(name, n, |_| {})
    }

    pub fn with(name: &str, n: u64, configure: fn(&mut NodeConfig)) -> Cluster {
        let mut c = Cluster {
            name: name.to_owned(),
            net: MemNet::new(),
            ids: (1..=n).collect(),
            dirs: BTreeMap::new(),
            servers: BTreeMap::new(),
            configure,
        };
        for id in 1..=n {
            c.start(id);
        }
        let members: Vec<Peer> = c
            .ids
            .iter()
            .map(|&id| Peer { id, addr: addr(id) })
            .collect();
        block_on(c.node(1).initialize(members)).unwrap();
        c
    }

    pub fn config(&mut self, id: PeerId) -> NodeConfig {
        let name = format!("{}-{id}", self.name);
        let dir = self.dirs.entry(id).or_insert_with(|| TempDir::new(&name));
        let mut config = NodeConfig::new(id, addr(id), dir.path());
        config.durability = Durability::PowerLoss;
        // A loaded two-core CI machine can starve a server of CPU for a
        // few hundred milliseconds; doubled timeouts keep leadership from
        // flapping mid-test (the failover benchmark uses the defaults).
        config.timing.multiplier = 2;
        (self.configure)(&mut config);
        config
    }

    /// Starts (or restarts, from its data directory) server `id`.
    pub fn start(&mut self, id: PeerId) {
        let runner = Runner::new(&format!("server-{id}"));
        let node = block_on(StateNode::open(
            self.config(id),
            self.net.transport(id),
            runner.spawner(),
        ))
        .unwrap();
        self.net.attach(node.clone());
        self.servers.insert(id, Server { node, runner });
    }

    /// Kills server `id`: it drops off the network and its executor is
    /// dropped with every task in flight, like a SIGKILL.
    pub fn kill(&mut self, id: PeerId) {
        self.net.detach(id);
        let server = self.servers.remove(&id).expect("server is running");
        drop(server);
        // Its storage closes once the last task holding it is dropped.
        let deadline = Instant::now() + PATIENCE;
        let config = self.config(id);
        loop {
            match sled::Config::new()
                .path(config.data_dir.join("raft"))
                .open()
            {
                Ok(db) => {
                    drop(db);
                    break;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "storage of server {id} stays locked: {e}"
                    );
                    thread::yield_now();
                }
            }
        }
    }

    /// Stops server `id` gracefully.
    pub fn stop(&mut self, id: PeerId) {
        self.net.detach(id);
        let server = self.servers.remove(&id).expect("server is running");
        block_on(server.node.shutdown()).unwrap();
    }

    pub fn node(&self, id: PeerId) -> &StateNode {
        &self.servers[&id].node
    }

    pub fn running(&self) -> Vec<PeerId> {
        self.servers.keys().copied().collect()
    }

    /// Waits until every server in `among` names the same leader, itself
    /// in `among` and leading.
    pub fn wait_leader(&self, among: &[PeerId]) -> PeerId {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leaders: Vec<Option<PeerId>> = among
                .iter()
                .map(|id| self.node(*id).status().leader.map(|p| p.id))
                .collect();
            if let Some(Some(leader)) = leaders.first().copied()
                && leaders.iter().all(|l| *l == Some(leader))
                && among.contains(&leader)
                && self.node(leader).status().role == Role::Leader
            {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {among:?}: {leaders:?}"
            );
            // Any progress may settle it; check again then (or soon).
            block_on(
                self.node(among[0])
                    .wait_for_status(Duration::from_millis(50), |_| false),
            );
        }
    }

    /// Waits until server `id`'s status passes `check`.
    pub fn wait_status(
        &self,
        id: PeerId,
        what: &str,
        check: impl FnMut(&Status) -> bool,
    ) -> Status {
        block_on(self.node(id).wait_for_status(PATIENCE, check))
            .unwrap_or_else(|| panic!("server {id} never got {what}: {:?}", self.node(id).status()))
    }

    /// Waits until every server in `among` has applied `index`.
    pub fn wait_applied(&self, among: &[PeerId], index: u64) -> Vec<State> {
        among
            .iter()
            .map(|id| {
                block_on(
                    self.node(*id)
                        .wait_for(PATIENCE, |s| (s.index() >= index).then(|| s.clone())),
                )
                .unwrap_or_else(|| {
                    panic!(
                        "server {id} did not apply index {index}: {:?}",
                        self.node(*id).status()
                    )
                })
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.running() {
            self.net.detach(id);
        }
        self.servers.clear();
    }
}

pub fn job(id: &str) -> Job {
    Job {
        id: id.to_owned(),
        name: id.to_owned(),
        datacenters: vec!["dc1".to_owned()],
        priority: 50,
        task_groups: vec![TaskGroup {
            name: "web".to_owned(),
            count: 1,
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

pub fn register(id: &str) -> Command {
    Command::RegisterJob(RegisterJob {
        job: job(id),
        eval: Some(Evaluation {
            id: format!("eval-{id}"),
            job_id: id.to_owned(),
            ..Evaluation::default()
        }),
        enforce_index: None,
    })
}
