//! Client mode: this agent runs the allocations the servers place on its
//! node, and keeps running them when the servers are out of reach.
//!
//! - [`node`]: the node it registers (fingerprint, drivers, reservation).
//! - [`sync`]: registration, heartbeats within the servers' TTL, the watch
//!   on its allocations (CoAP Observe), batched status updates.
//! - [`alloc_runner`] and [`task_runner`]: an allocation's tasks in
//!   lifecycle order, restarts per policy, stops.
//! - [`allocdir`], [`env`]: the directory layout and environment tasks see.
//! - [`localdb`]: its own state in sled, so that after an agent restart the
//!   tasks are found again (no restart), and after a reboot they are started
//!   again from local state without waiting for a server.
//! - [`gc`]: old allocation directories.
//! - [`endpoints`]: its node's own endpoints (logs, signal, restart, exec,
//!   status), for the CLI.
//!
//! Deliberately not here: scheduling (the servers decide what runs where;
//! the client only runs it and reports), service discovery, templates and
//! artifacts, and any thread per task: runners are futures on the agent's
//! executor, waiting on pidfds; blocking driver calls go to smol's blocking
//! pool.

pub mod alloc_runner;
pub mod allocdir;
pub mod endpoints;
pub mod env;
pub mod gc;
pub mod localdb;
pub mod logs;
pub mod node;
pub mod restart;
pub mod sync;
pub mod task_runner;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use smol::Executor;
use wren_fingerprint::Fingerprinter;
use wren_model::{Allocation, DesiredStatus, Job, Node, Task};
use wren_runtimes::{Drivers, Runtime, RuntimeConfig};

use self::alloc_runner::{AllocMsg, AllocRunner, AllocShared};
use self::allocdir::AllocDir;
use self::env::NodeFacts;
use self::localdb::{AllocState, LocalDb};
use self::node::PluginConfig;
use crate::api::{ClientAllocUpdate, ClientAllocs};
use crate::config::AgentConfig;
use crate::wire::{Router, TlsMaterial};

/// Why client mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientStartError {
    /// The local database did not open.
    #[error(transparent)]
    Db(#[from] localdb::LocalDbError),
    /// A directory could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The drivers could not be set up.
    #[error("task drivers: {0}")]
    Drivers(String),
    /// The plugin configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// The servers' addresses do not parse or the TLS material is unusable.
    #[error("connecting to servers: {0}")]
    Servers(String),
}

/// Knobs the product leaves at their defaults and tests change.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The shim command (default: this binary, `shim`).
    pub shim: Option<Vec<OsString>>,
    /// The cgroup tasks go under (default `wren`).
    pub cgroup_parent: Option<String>,
}

/// What task runners share.
pub struct Ctx {
    /// The local database.
    pub db: LocalDb,
    /// The drivers, by name.
    pub drivers: Arc<Drivers>,
    /// What the node looks like now.
    facts: RwLock<Arc<NodeFacts>>,
    /// Where allocation directories go.
    pub alloc_base: PathBuf,
    /// The agent's executor.
    pub ex: Arc<Executor<'static>>,
    /// qemu emulators tasks may ask for (empty: any).
    qemu_emulators: Vec<String>,
    qemu_options: wren_runtimes::qemu::QemuOptions,
    /// Wakes the update sender.
    updated: smol::channel::Sender<()>,
    /// Admits allocation runners to their first start, [`STARTS_AT_ONCE`]
    /// at a time.
    starts: Arc<smol::lock::Semaphore>,
}

/// Allocations starting at once. A runner waits for a place before it
/// builds anything and gives it back once each task it started has
/// reported its first attempt, so a burst of thousands of placements
/// queues as allocations that cost a few hundred bytes each, not as
/// thousands of live runners: the starts themselves run in the agent's
/// blocking pool, which has 16 threads, so more at once would only wait
/// there, holding their memory. Running allocations hold no place.
pub const STARTS_AT_ONCE: usize = 16;

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("alloc_base", &self.alloc_base)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The node as last fingerprinted.
    pub fn facts(&self) -> Arc<NodeFacts> {
        self.facts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_facts(&self, facts: NodeFacts) {
        *self.facts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(facts);
    }

    /// Persists an allocation's state and queues its update for the
    /// servers (in sled's memory; [`LocalDb::durable_async`] makes it
    /// durable).
    pub fn record(&self, alloc_id: &str, state: &AllocState, update: &ClientAllocUpdate) {
        let r = self
            .db
            .put_state(alloc_id, state)
            .and_then(|()| self.db.queue_update(update).map(drop));
        if let Err(e) = r {
            eprintln!("wren client: recording allocation {alloc_id}: {e}");
        }
    }

    /// Wakes the update sender.
    pub fn wake_sender(&self) {
        let _ = self.updated.try_send(());
    }

    /// Refuses a qemu task whose emulator is not allowed here.
    pub fn check_qemu(&self, task: &Task) -> Result<(), String> {
        let config = wren_runtimes::qemu::QemuConfig::parse(task, &self.qemu_options)
            .map_err(|e| e.to_string())?;
        if !self.qemu_emulators.is_empty() && !self.qemu_emulators.contains(&config.emulator) {
            return Err(format!(
                "emulator {} is not allowed on this client (plugin \"qemu\" emulators: {})",
                config.emulator,
                self.qemu_emulators.join(", ")
            ));
        }
        Ok(())
    }
}

/// One allocation the client knows.
struct Entry {
    shared: Arc<AllocShared>,
    alloc_modify_index: u64,
    /// The servers no longer list it.
    forgotten: bool,
    _task: smol::Task<()>,
}

/// Where the client stands with its servers.
#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    /// Registered since the agent started.
    pub registered: bool,
    /// The last heartbeat was answered.
    pub connected: bool,
    /// Unix nanoseconds a server last answered (0: never).
    pub last_contact: i64,
    /// The TTL the servers gave.
    pub heartbeat_ttl: wren_model::Duration,
    /// Every server of the region, as the servers said.
    pub servers: Vec<String>,
    /// The last error talking to them.
    pub last_error: Option<String>,
}

/// Client mode's state, shared by its loops and endpoints.
pub struct Core {
    /// What runners share.
    pub ctx: Arc<Ctx>,
    /// The agent's configuration.
    pub config: AgentConfig,
    /// The agent's certificate (for talking to servers).
    pub tls: TlsMaterial,
    /// This node's id.
    pub node_id: String,
    runners: Mutex<BTreeMap<String, Entry>>,
    status: Mutex<SyncStatus>,
    node: Mutex<Node>,
    fingerprinter: Arc<Mutex<Fingerprinter>>,
    /// Signalled when something should look again: re-register, collect
    /// garbage, rebuild server connections.
    pub(crate) events: sync::Events,
    updated_rx: smol::channel::Receiver<()>,
    loops: Mutex<Vec<smol::Task<()>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data; a poisoned lock still holds a usable value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running client mode.
#[derive(Debug, Clone)]
pub struct ClientMode {
    /// Its state.
    pub core: Arc<Core>,
}

impl ClientMode {
    /// Opens the local state, sets up the drivers, fingerprints the node,
    /// registers the node's endpoints on `router`, and restarts (or finds
    /// again) the allocations kept locally — before any server is asked.
    pub async fn open(
        config: &AgentConfig,
        data_dir: &Path,
        tls: &TlsMaterial,
        ex: Arc<Executor<'static>>,
        router: &mut Router,
        options: ClientOptions,
    ) -> Result<ClientMode, ClientStartError> {
        let plugins = PluginConfig::from_config(config).map_err(ClientStartError::Config)?;
        let client_dir = data_dir.join("client");
        let alloc_base = config
            .client
            .alloc_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("alloc"));
        for dir in [&client_dir, &alloc_base] {
            std::fs::create_dir_all(dir).map_err(|source| ClientStartError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let db = LocalDb::open(
            &client_dir.join("db"),
            config.sled_cache_mb.saturating_mul(1 << 20),
        )?;
        let node_id = db.node_id()?;

        let mut rt_config = RuntimeConfig::new(data_dir.join("runtimes")).map_err(|e| {
            ClientStartError::Drivers(format!("finding this executable for the task shim: {e}"))
        })?;
        if let Some(shim) = options.shim {
            rt_config.shim = shim;
        }
        if let Some(parent) = options.cgroup_parent {
            rt_config.cgroup_parent = parent;
        }
        let runtime = smol::unblock(move || Runtime::new(rt_config))
            .await
            .map_err(|e| ClientStartError::Drivers(e.to_string()))?;
        let drivers = Arc::new(wren_runtimes::drivers(
            &runtime,
            plugins.raw_exec_enabled,
            plugins.qemu.clone(),
        ));

        let fingerprinter = Arc::new(Mutex::new(Fingerprinter::host(&alloc_base)));
        let node = {
            let (f, d, c, id) = (
                fingerprinter.clone(),
                drivers.clone(),
                config.clone(),
                node_id.clone(),
            );
            smol::unblock(move || {
                let fp = lock(&f).fingerprint();
                node::build(&c, &id, "", &fp, &d)
            })
            .await
        };
        let (updated, updated_rx) = smol::channel::bounded(1);
        let ctx = Arc::new(Ctx {
            db: db.clone(),
            drivers,
            facts: RwLock::new(Arc::new(NodeFacts {
                node: node.clone(),
                region: config.region.clone(),
            })),
            alloc_base,
            ex: ex.clone(),
            qemu_emulators: plugins.qemu_emulators.clone(),
            qemu_options: plugins.qemu.clone(),
            updated,
            starts: Arc::new(smol::lock::Semaphore::new(STARTS_AT_ONCE)),
        });
        let status = SyncStatus {
            last_contact: db.last_contact()?,
            ..SyncStatus::default()
        };
        let core = Arc::new(Core {
            ctx,
            config: config.clone(),
            tls: tls.clone(),
            node_id,
            runners: Mutex::new(BTreeMap::new()),
            status: Mutex::new(status),
            node: Mutex::new(node),
            fingerprinter,
            events: sync::Events::default(),
            updated_rx,
            loops: Mutex::new(Vec::new()),
        });
        core.restore()?;
        endpoints::register(&core, router);
        Ok(ClientMode { core })
    }

    /// Starts talking to the servers: `address` is where this node's
    /// endpoints are reached (the agent's advertised address).
    pub fn start(&self, address: String) {
        {
            let mut node = lock(&self.core.node);
            node.address = address.clone();
        }
        let mut facts = (*self.core.ctx.facts()).clone();
        facts.node.address = address;
        self.core.ctx.set_facts(facts);
        let ex = &self.core.ctx.ex;
        let mut loops = lock(&self.core.loops);
        loops.push(ex.spawn(sync::heartbeat_loop(self.core.clone())));
        loops.push(ex.spawn(sync::watch_loop(self.core.clone())));
        loops.push(ex.spawn(sync::push_loop(
            self.core.clone(),
            self.core.updated_rx.clone(),
        )));
        loops.push(ex.spawn(sync::fingerprint_loop(self.core.clone())));
        loops.push(ex.spawn(gc::gc_loop(self.core.clone())));
    }

    /// Stops talking to the servers and makes the local state durable.
    /// Tasks keep running: the next agent finds them again.
    pub fn stop(&self) {
        lock(&self.core.loops).clear();
        if let Err(e) = self.core.ctx.db.durable() {
            eprintln!("wren client: {e}");
        }
    }
}

impl Core {
    /// The node as it would register now.
    pub fn node(&self) -> Node {
        lock(&self.node).clone()
    }

    pub(crate) fn set_node(&self, node: Node) {
        self.ctx.set_facts(NodeFacts {
            node: node.clone(),
            region: self.config.region.clone(),
        });
        *lock(&self.node) = node;
    }

    /// Where the client stands with its servers.
    pub fn status(&self) -> SyncStatus {
        lock(&self.status).clone()
    }

    pub(crate) fn update_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(&mut lock(&self.status));
    }

    pub(crate) fn fingerprinter(&self) -> Arc<Mutex<Fingerprinter>> {
        self.fingerprinter.clone()
    }

    /// The runner state of one allocation.
    pub fn alloc(&self, id: &str) -> Option<Arc<AllocShared>> {
        lock(&self.runners).get(id).map(|e| e.shared.clone())
    }

    /// Every allocation the client knows.
    pub fn allocs(&self) -> Vec<Arc<AllocShared>> {
        lock(&self.runners)
            .values()
            .map(|e| e.shared.clone())
            .collect()
    }

    fn start_runner(
        &self,
        runners: &mut BTreeMap<String, Entry>,
        alloc: Arc<Allocation>,
        job: Arc<Job>,
        state: AllocState,
    ) -> Result<(), allocdir::AllocDirError> {
        let dir = AllocDir::new(&self.ctx.alloc_base, &alloc.id)?;
        let index = alloc.alloc_modify_index;
        let (runner, shared) = AllocRunner::new(self.ctx.clone(), alloc, job, dir, state);
        // Boxed until admitted: a waiting allocation's task holds a pointer,
        // and the runner's future is allocated only when it starts, and freed
        // when it ends (the task's own allocation lives as long as the entry).
        let runner = Box::new(runner);
        let starts = self.ctx.starts.clone();
        let task = self.ctx.ex.spawn(async move {
            let admitted = if runner.finished() {
                None
            } else {
                Some(starts.acquire_arc().await)
            };
            Box::pin(runner.run(admitted)).await;
        });
        runners.insert(
            shared.id.clone(),
            Entry {
                shared,
                alloc_modify_index: index,
                forgotten: false,
                _task: task,
            },
        );
        Ok(())
    }

    /// Starts a runner for every allocation kept locally: running tasks are
    /// found again, lost ones (a reboot) started again.
    fn restore(&self) -> Result<(), ClientStartError> {
        let db = &self.ctx.db;
        let mut runners = lock(&self.runners);
        for alloc in db.allocs()? {
            let Some(job) = db.job(&alloc.job_id, alloc.job_version)? else {
                eprintln!(
                    "wren client: allocation {} runs job {} version {}, which is not kept locally; forgetting it",
                    alloc.id, alloc.job_id, alloc.job_version
                );
                db.remove_alloc(&alloc.id)?;
                continue;
            };
            let state = db.state(&alloc.id)?.unwrap_or_default();
            let id = alloc.id.clone();
            if let Err(e) = self.start_runner(&mut runners, Arc::new(alloc), Arc::new(job), state) {
                eprintln!("wren client: restoring allocation {id}: {e}");
            }
        }
        if !runners.is_empty() {
            eprintln!(
                "wren client: restored {} allocation(s) from local state",
                runners.len()
            );
        }
        Ok(())
    }

    /// Acts on the servers' view of this node's allocations: starts new
    /// ones, passes changes to running ones, stops those the servers no
    /// longer want or know. Never restarts what already runs. A new
    /// allocation is durable in the local database before its tasks start,
    /// so no task ever runs that a restarted agent would not know.
    ///
    /// Returns false when this client could not take an allocation, or one
    /// listed as unchanged is newer on the servers than here (it missed a
    /// change): the caller then observes afresh.
    pub async fn reconcile(&self, ca: ClientAllocs) -> bool {
        let mut in_sync = true;
        let jobs: HashMap<(String, u64), Arc<Job>> = ca
            .jobs
            .into_iter()
            .map(|j| ((j.id.clone(), j.version), Arc::new(j)))
            .collect();
        let db = &self.ctx.db;
        let mut accepted = Vec::new();
        let mut updates = Vec::new();
        {
            let mut runners = lock(&self.runners);
            let mut seen = std::collections::HashSet::new();
            for alloc in ca.allocs {
                if alloc.node_id != self.node_id {
                    continue;
                }
                seen.insert(alloc.id.clone());
                let job = jobs
                    .get(&(alloc.job_id.clone(), alloc.job_version))
                    .cloned();
                if let Some(e) = runners.get_mut(&alloc.id) {
                    e.forgotten = false;
                    // What the servers hold of the client's report differs
                    // (they marked it unknown while the node was away, which
                    // may also have changed the allocation's index, or an
                    // update was lost): report again, unless an update is on
                    // its way anyway.
                    let local = e.shared.with_view(|v| v.state.client_status);
                    if alloc.client_status != local
                        && !db.has_pending_update(&alloc.id).unwrap_or(true)
                    {
                        e.shared.resend(&self.ctx);
                    }
                    if alloc.alloc_modify_index == e.alloc_modify_index {
                        continue;
                    }
                    let job = match job.or_else(|| {
                        db.job(&alloc.job_id, alloc.job_version)
                            .ok()
                            .flatten()
                            .map(Arc::new)
                    }) {
                        Some(j) => j,
                        None => e.shared.with_view(|v| v.job.clone()),
                    };
                    e.alloc_modify_index = alloc.alloc_modify_index;
                    if let Err(err) = db.put_job(&job).and_then(|()| db.put_alloc(&alloc)) {
                        eprintln!("wren client: {err}");
                    }
                    updates.push((e.shared.clone(), Arc::new(alloc), job));
                    continue;
                }
                if alloc.desired_status != DesiredStatus::Run || alloc.client_terminal() {
                    continue;
                }
                let Some(job) = job else {
                    eprintln!(
                        "wren client: allocation {} came without its job {} version {}; asking again",
                        alloc.id, alloc.job_id, alloc.job_version
                    );
                    in_sync = false;
                    continue;
                };
                if let Err(err) = db.put_job(&job).and_then(|()| db.put_alloc(&alloc)) {
                    eprintln!("wren client: accepting allocation {}: {err}", alloc.id);
                    in_sync = false;
                    continue;
                }
                accepted.push((Arc::new(alloc), job));
            }
            for stub in ca.unchanged {
                seen.insert(stub.id.clone());
                // Not run here: finished and collected (the answer may
                // predate the report), or refused when it came whole, which
                // already asked for everything again.
                let Some(e) = runners.get_mut(&stub.id) else {
                    continue;
                };
                e.forgotten = false;
                // The servers changed it after the version this client has,
                // and it is not one the client finished itself.
                if stub.alloc_modify_index > e.alloc_modify_index
                    && !stub.client_status.is_terminal()
                {
                    in_sync = false;
                    continue;
                }
                let local = e.shared.with_view(|v| v.state.client_status);
                if stub.client_status != local && !db.has_pending_update(&stub.id).unwrap_or(true) {
                    e.shared.resend(&self.ctx);
                }
            }
            for (id, e) in runners.iter_mut() {
                if !seen.contains(id) && !e.forgotten {
                    e.forgotten = true;
                    let _ = e.shared.tx.try_send(AllocMsg::Stop {
                        reason: "allocation no longer known to the servers".to_owned(),
                        local: false,
                    });
                }
            }
        }
        if (!accepted.is_empty() || !updates.is_empty())
            && let Err(e) = db.durable_async().await
        {
            eprintln!("wren client: {e}");
        }
        for (shared, alloc, job) in updates {
            let _ = shared.tx.try_send(AllocMsg::Update { alloc, job });
        }
        if !accepted.is_empty() {
            let mut runners = lock(&self.runners);
            for (alloc, job) in accepted {
                if runners.contains_key(&alloc.id) {
                    continue;
                }
                let id = alloc.id.clone();
                if let Err(err) = self.start_runner(&mut runners, alloc, job, AllocState::default())
                {
                    eprintln!("wren client: allocation {id}: {err}");
                }
            }
        }
        self.events.gc.notify(1);
        in_sync
    }

    /// Stops the allocations whose group says to stop after this long
    /// without servers (`disconnect { stop_on_client_after }`).
    pub fn disconnected_for(&self, since: Duration) {
        for shared in self.allocs() {
            if shared.finished() {
                continue;
            }
            let limit = shared.with_view(|v| {
                let limit = v
                    .job
                    .group(&v.alloc.task_group)
                    .and_then(|g| g.disconnect.as_ref())
                    .and_then(|d| d.stop_on_client_after)?;
                v.state.stopped_locally.is_none().then_some(limit)
            });
            if limit.is_some_and(|limit| since >= limit.to_std()) {
                let _ = shared.tx.try_send(AllocMsg::Stop {
                    reason: format!(
                        "no contact with the servers for {}: stopped per disconnect.stop_on_client_after",
                        restart::humanize(since)
                    ),
                    local: true,
                });
            }
        }
    }

    /// Allocations done on this client that may be collected: finished,
    /// no update waiting, and forgotten by the servers or beyond
    /// `gc_max_allocs` (oldest first).
    pub(crate) fn collectable(&self) -> Vec<String> {
        let runners = lock(&self.runners);
        let mut finished: Vec<(i64, String, bool)> = runners
            .iter()
            .filter_map(|(id, e)| {
                let finished_at = e.shared.with_view(|v| v.state.finished_at);
                (finished_at > 0).then(|| (finished_at, id.clone(), e.forgotten))
            })
            .filter(|(_, id, _)| !self.ctx.db.has_pending_update(id).unwrap_or(true))
            .collect();
        finished.sort();
        let max = self.config.client.gc_max_allocs as usize;
        let mut out: Vec<String> = finished
            .iter()
            .filter(|(_, _, forgotten)| *forgotten)
            .map(|(_, id, _)| id.clone())
            .collect();
        let keep: Vec<&(i64, String, bool)> = finished.iter().filter(|(_, _, f)| !f).collect();
        let excess = keep.len().saturating_sub(max);
        out.extend(keep.iter().take(excess).map(|(_, id, _)| id.clone()));
        out
    }

    pub(crate) fn forget(&self, id: &str) -> Option<PathBuf> {
        let e = lock(&self.runners).remove(id)?;
        Some(e.shared.with_view(|v| v.dir.clone()))
    }
}

/// Opens client mode when the config enables it (called by the agent
/// before its listener binds, so the node's endpoints are routed).
pub async fn start_mode(
    config: &AgentConfig,
    data_dir: &Path,
    tls: &TlsMaterial,
    ex: &Arc<Executor<'static>>,
    router: &mut Router,
) -> anyhow::Result<Option<ClientMode>> {
    if !config.client.enabled {
        return Ok(None);
    }
    let mode = ClientMode::open(
        config,
        data_dir,
        tls,
        ex.clone(),
        router,
        ClientOptions::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting client mode: {e}"))?;
    Ok(Some(mode))
}

/// The address the node registers: the advertised one, with the port the
/// listener really got when the config asked for any (`port = 0`).
pub fn advertised(advertise: std::net::SocketAddr, bound: std::net::SocketAddr) -> String {
    let mut a = advertise;
    if a.port() == 0 {
        a.set_port(bound.port());
    }
    a.to_string()
}
