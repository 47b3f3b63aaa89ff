//! Shared by the client tests: a region's servers as a small fixture on
//! the real wire (router, TLS, observation) speaking the client protocol of
//! `agent/src/api.rs` with allocations the test places; client mode run
//! in-process or as a real `wren agent` process; jobs made of raw_exec
//! tasks; waiting with deadlines; cleanup of task cgroups.
//!
//! The fixture stands in for the servers' side of the protocol until that
//! lands; it is test code, never part of the agent.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_listener::Event;
use smol::Executor;
use smol::future::FutureExt as _;
use wren_agent::api::{
    AllocDetail, AllocStub, AllocUpdateRequest, ClientAllocUpdate, ClientAllocs, HeartbeatRequest,
    HeartbeatResponse, IndexResponse, NodeRegisterRequest,
};
use wren_agent::wire::pki::{CertPem, CertRequest, create_ca, create_cert};
use wren_agent::wire::{
    ApiError, HandlerResult, Method, Request, Role, Roles, Router, Server, Settings, TlsMaterial,
};
use wren_model::{
    AllocatedTaskResources, Allocation, ClientStatus, DesiredStatus, Job, JobType, Node,
    RestartMode, RestartPolicy, Task, TaskGroup, Value,
};

/// The `wren` binary cargo built for these tests.
pub const WREN: &str = env!("CARGO_BIN_EXE_wren");

/// Whether the test can run (root, a cgroup hierarchy); prints why not and
/// returns false, or panics under `CI=true`.
pub fn require_root(test: &str) -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    let cgroups = Path::new("/sys/fs/cgroup")
        .join("cgroup.controllers")
        .exists()
        || Path::new("/sys/fs/cgroup/pids").is_dir()
        || Path::new("/sys/fs/cgroup/memory").is_dir();
    let why = if !root {
        "needs root (tasks run in cgroups)"
    } else if !cgroups {
        "needs a cgroup hierarchy"
    } else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// Polls `probe` until it returns `Some` or `limit` passes (then panics with
/// `what`).
pub fn eventually<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A directory for one test, removed unless the test panicked.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Not under /tmp's usual tmpfs limits; still per process and test.
        let p = std::env::temp_dir().join(format!(
            "wren-client-tests/{test}.{}.{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TestDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// An executor driven by worker threads, stopped on drop.
pub struct Runtime {
    pub ex: Arc<Executor<'static>>,
    stop: smol::channel::Sender<()>,
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

/// A region CA and the certificates the tests use, as files.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: CertPem,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = create_ca(30).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.cert).unwrap();
        let pki = Pki { dir, ca };
        for role in [Role::Server, Role::Client, Role::Cli] {
            let pair = create_cert(&pki.ca, &CertRequest::new(role, "global")).unwrap();
            std::fs::write(pki.cert(role), &pair.cert).unwrap();
            std::fs::write(pki.key(role), &pair.key).unwrap();
        }
        pki
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn cert(&self, role: Role) -> PathBuf {
        self.dir.join(format!("{role}.pem"))
    }
    pub fn key(&self, role: Role) -> PathBuf {
        self.dir.join(format!("{role}-key.pem"))
    }
    pub fn material(&self, role: Role) -> TlsMaterial {
        TlsMaterial::load(&self.ca_file(), &self.cert(role), &self.key(role)).unwrap()
    }
}

/// What the fixture servers hold.
#[derive(Debug, Default)]
pub struct FixState {
    pub index: u64,
    pub nodes: BTreeMap<String, Node>,
    pub allocs: BTreeMap<String, Allocation>,
    pub jobs: Vec<Job>,
    /// Every status update received, in order.
    pub updates: Vec<ClientAllocUpdate>,
    pub registrations: u32,
    pub heartbeats: u32,
    pub ttl: wren_model::Duration,
}

struct FixInner {
    state: Mutex<FixState>,
    changed: Event,
    addr: Mutex<SocketAddr>,
}

/// The servers' side of the client protocol, on the real wire.
pub struct Fixture {
    inner: Arc<FixInner>,
    ex: Arc<Executor<'static>>,
    tls: TlsMaterial,
    pub addr: SocketAddr,
    server: Mutex<Option<(Arc<Server>, smol::Task<()>)>>,
}

impl Fixture {
    /// Starts serving on a port of the OS's choosing.
    pub fn start(rt: &Runtime, pki: &Pki) -> Fixture {
        let inner = Arc::new(FixInner {
            state: Mutex::new(FixState {
                index: 1,
                ttl: wren_model::Duration::from_secs(2),
                ..FixState::default()
            }),
            changed: Event::new(),
            addr: Mutex::new("127.0.0.1:0".parse().unwrap()),
        });
        let mut fx = Fixture {
            inner,
            ex: rt.ex.clone(),
            tls: pki.material(Role::Server),
            addr: "127.0.0.1:0".parse().unwrap(),
            server: Mutex::new(None),
        };
        fx.up();
        fx
    }

    fn router(&self) -> Router {
        let mut r = Router::new();
        let i = self.inner.clone();
        r.route(
            Method::Post,
            "/v1/client/register",
            Roles::CLIENT | Roles::SERVER,
            move |req| register(i.clone(), req),
        );
        let i = self.inner.clone();
        r.route(
            Method::Post,
            "/v1/client/heartbeat",
            Roles::CLIENT | Roles::SERVER,
            move |req| heartbeat(i.clone(), req),
        );
        let i = self.inner.clone();
        r.observable(
            "/v1/client/allocs",
            Roles::CLIENT | Roles::SERVER,
            move |req| client_allocs(i.clone(), req),
        );
        let i = self.inner.clone();
        r.route(
            Method::Post,
            "/v1/client/allocs",
            Roles::CLIENT | Roles::SERVER,
            move |req| updates(i.clone(), req),
        );
        let i = self.inner.clone();
        r.route(Method::Get, "/v1/alloc/:id", Roles::ANY, move |req| {
            alloc_detail(i.clone(), req)
        });
        let i = self.inner.clone();
        r.route(Method::Get, "/v1/allocs", Roles::ANY, move |req| {
            list_allocs(i.clone(), req)
        });
        r
    }

    /// (Re)starts serving on the same address.
    pub fn up(&mut self) {
        let server = Arc::new(
            Server::bind(
                self.addr,
                &self.tls,
                self.router(),
                Settings::default(),
                self.ex.clone(),
            )
            .expect("fixture bind"),
        );
        self.addr = server.local_addr().unwrap();
        *self.inner.addr.lock().unwrap() = self.addr;
        let s = server.clone();
        let task = self.ex.spawn(async move { s.run().await });
        *self.server.lock().unwrap() = Some((server, task));
    }

    /// Stops serving: every connection is closed and new ones are refused,
    /// as when every server is unreachable.
    pub fn down(&self) {
        if let Some((server, task)) = self.server.lock().unwrap().take() {
            server.shutdown();
            smol::block_on(task);
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FixState) -> T) -> T {
        f(&mut self.inner.state.lock().unwrap())
    }

    fn bump(&self, f: impl FnOnce(&mut FixState, u64)) {
        {
            let mut s = self.inner.state.lock().unwrap();
            s.index += 1;
            let index = s.index;
            f(&mut s, index);
        }
        self.inner.changed.notify(usize::MAX);
    }

    /// The node that registered (the first one).
    pub fn node_id(&self, limit: Duration) -> String {
        eventually("a node to register", limit, || {
            self.with(|s| s.nodes.keys().next().cloned())
        })
    }

    /// Places an allocation of `job` on `node`; returns its id.
    pub fn place(&self, job: &Job, node: &str, index: u32) -> String {
        let id = uuid();
        let group = &job.task_groups[0];
        let mut alloc = Allocation {
            id: id.clone(),
            eval_id: uuid(),
            name: Allocation::name_for(&job.id, &group.name, index),
            node_id: node.to_owned(),
            node_name: "c1".into(),
            job_id: job.id.clone(),
            job_version: job.version,
            task_group: group.name.clone(),
            desired_status: DesiredStatus::Run,
            client_status: ClientStatus::Pending,
            create_time: 1,
            ..Allocation::default()
        };
        for t in &group.tasks {
            alloc.resources.tasks.insert(
                t.name.clone(),
                AllocatedTaskResources {
                    cpu: 100,
                    memory_mb: 64,
                    ..AllocatedTaskResources::default()
                },
            );
        }
        let job = job.clone();
        self.bump(move |s, index| {
            alloc.create_index = index;
            alloc.modify_index = index;
            alloc.alloc_modify_index = index;
            if !s
                .jobs
                .iter()
                .any(|j| j.id == job.id && j.version == job.version)
            {
                s.jobs.push(job);
            }
            s.allocs.insert(alloc.id.clone(), alloc);
        });
        id
    }

    /// The servers want the allocation stopped.
    pub fn stop(&self, id: &str) {
        let id = id.to_owned();
        self.bump(move |s, index| {
            if let Some(a) = s.allocs.get_mut(&id) {
                a.desired_status = DesiredStatus::Stop;
                a.desired_description = "alloc is being stopped by the test".into();
                a.alloc_modify_index = index;
                a.modify_index = index;
            }
        });
    }

    /// The servers mark the allocation `unknown`, as they do while its node
    /// is disconnected (a client-visible field the client overrides).
    pub fn mark_unknown(&self, id: &str) {
        let id = id.to_owned();
        self.bump(move |s, index| {
            if let Some(a) = s.allocs.get_mut(&id) {
                a.client_status = ClientStatus::Unknown;
                a.modify_index = index;
            }
        });
    }

    /// The servers forget the allocation (garbage collection).
    pub fn forget(&self, id: &str) {
        let id = id.to_owned();
        self.bump(move |s, _| {
            s.allocs.remove(&id);
        });
    }

    /// The allocation as the servers see it.
    pub fn alloc(&self, id: &str) -> Allocation {
        self.with(|s| s.allocs.get(id).cloned().expect("a placed allocation"))
    }

    /// Waits until the servers see the allocation in `status`.
    pub fn wait_status(&self, id: &str, status: ClientStatus, limit: Duration) -> Allocation {
        eventually(&format!("allocation {id} to be {status}"), limit, || {
            let a = self.alloc(id);
            (a.client_status == status).then_some(a)
        })
    }

    /// Every update received for one allocation.
    pub fn updates_for(&self, id: &str) -> Vec<ClientAllocUpdate> {
        self.with(|s| {
            s.updates
                .iter()
                .filter(|u| u.alloc_id == id)
                .cloned()
                .collect()
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.down();
    }
}

fn hb(s: &FixState, addr: SocketAddr) -> HeartbeatResponse {
    HeartbeatResponse {
        heartbeat_ttl: s.ttl,
        index: s.index,
        servers: vec![addr.to_string()],
        leader: Some(addr.to_string()),
    }
}

async fn register(i: Arc<FixInner>, req: Request) -> HandlerResult {
    let addr = *i.addr.lock().unwrap();
    let body: NodeRegisterRequest = req.decode()?;
    let mut node = body.node;
    node.secret_id = req.peer.fingerprint.to_string();
    let resp = {
        let mut s = i.state.lock().unwrap();
        if let Some(old) = s.nodes.get(&node.id)
            && old.secret_id != node.secret_id
        {
            return Err(ApiError::forbidden("another certificate owns this node"));
        }
        s.registrations += 1;
        s.index += 1;
        s.nodes.insert(node.id.clone(), node);
        hb(&s, addr)
    };
    Ok(req.reply(&resp))
}

async fn heartbeat(i: Arc<FixInner>, req: Request) -> HandlerResult {
    let addr = *i.addr.lock().unwrap();
    let body: HeartbeatRequest = req.decode()?;
    let mut s = i.state.lock().unwrap();
    if !s.nodes.contains_key(&body.node_id) {
        return Err(ApiError::not_found(format!(
            "node {} is not registered",
            body.node_id
        )));
    }
    s.heartbeats += 1;
    Ok(req.reply(&hb(&s, addr)))
}

async fn client_allocs(i: Arc<FixInner>, req: Request) -> HandlerResult {
    let node = req.query("node").unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listener = i.changed.listen();
        {
            let s = i.state.lock().unwrap();
            if !s.nodes.contains_key(&node) {
                return Err(ApiError::not_found(format!(
                    "node {node} is not registered"
                )));
            }
            if s.index > req.min_index || Instant::now() >= deadline {
                let allocs: Vec<Allocation> = s
                    .allocs
                    .values()
                    .filter(|a| a.node_id == node)
                    .cloned()
                    .collect();
                let jobs: Vec<Job> = s
                    .jobs
                    .iter()
                    .filter(|j| {
                        allocs
                            .iter()
                            .any(|a| a.job_id == j.id && a.job_version == j.version)
                    })
                    .cloned()
                    .collect();
                let body = ClientAllocs {
                    index: s.index,
                    allocs,
                    jobs,
                    unchanged: Vec::new(),
                };
                return Ok(req.reply(&body).with_index(s.index));
            }
        }
        async {
            listener.await;
        }
        .or(async {
            smol::Timer::at(deadline).await;
        })
        .await;
    }
}

async fn updates(i: Arc<FixInner>, req: Request) -> HandlerResult {
    let body: AllocUpdateRequest = req.decode()?;
    let index = {
        let mut s = i.state.lock().unwrap();
        s.index += 1;
        let index = s.index;
        for u in body.updates {
            if let Some(a) = s.allocs.get_mut(&u.alloc_id)
                && a.node_id == body.node_id
            {
                a.client_status = u.client_status;
                a.client_description = u.client_description.clone();
                a.task_states = u.task_states.clone();
                a.modify_index = index;
            }
            s.updates.push(u);
        }
        index
    };
    i.changed.notify(usize::MAX);
    Ok(req.reply(&IndexResponse { index }))
}

async fn alloc_detail(i: Arc<FixInner>, req: Request) -> HandlerResult {
    let id = req.param("id").unwrap_or_default();
    let s = i.state.lock().unwrap();
    let alloc = s
        .allocs
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("allocation {id} not found")))?;
    let job = s
        .jobs
        .iter()
        .find(|j| j.id == alloc.job_id && j.version == alloc.job_version)
        .cloned();
    let node_address = s
        .nodes
        .get(&alloc.node_id)
        .map(|n| n.address.clone())
        .unwrap_or_default();
    Ok(req.reply(&AllocDetail {
        alloc,
        job,
        node_address,
    }))
}

async fn list_allocs(i: Arc<FixInner>, req: Request) -> HandlerResult {
    let s = i.state.lock().unwrap();
    let stubs: Vec<AllocStub> = s.allocs.values().map(AllocStub::from).collect();
    Ok(req.reply(&stubs))
}

/// A random id.
pub fn uuid() -> String {
    wren_agent::ids::uuid()
}

/// A raw_exec task running `script` under `/bin/sh -c`.
pub fn sh_task(name: &str, script: &str) -> Task {
    let mut config = BTreeMap::new();
    config.insert("command".to_owned(), Value::String("/bin/sh".into()));
    config.insert(
        "args".to_owned(),
        Value::List(vec![
            Value::String("-c".into()),
            Value::String(script.into()),
        ]),
    );
    Task {
        name: name.to_owned(),
        driver: "raw_exec".into(),
        config: Value::Map(config),
        kill_signal: "SIGTERM".into(),
        kill_timeout: wren_model::Duration::from_secs(3),
        logs: wren_model::LogConfig {
            max_files: 2,
            max_file_size_mb: 1,
            disabled: false,
        },
        ..Task::default()
    }
}

/// A restart policy with short delays.
pub fn restart(attempts: u32, delay_ms: u64, mode: RestartMode) -> RestartPolicy {
    RestartPolicy {
        attempts,
        interval: wren_model::Duration::from_mins(10),
        delay: wren_model::Duration::from_millis(delay_ms),
        mode,
    }
}

/// A job of one group.
pub fn job(id: &str, job_type: JobType, tasks: Vec<Task>, restart: RestartPolicy) -> Job {
    Job {
        id: id.to_owned(),
        name: id.to_owned(),
        region: "global".into(),
        datacenters: vec!["*".into()],
        node_pool: "default".into(),
        job_type,
        priority: 50,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count: 1,
            tasks,
            restart,
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

/// Kills whatever is left of the allocations' tasks (their cgroups), so a
/// failed test leaves no processes behind. Shims exit once their task is
/// gone.
pub struct TaskReaper {
    pub keys: Mutex<Vec<String>>,
}

impl TaskReaper {
    pub fn new() -> TaskReaper {
        TaskReaper {
            keys: Mutex::new(Vec::new()),
        }
    }

    pub fn track(&self, alloc: &str, tasks: &[&str]) {
        let mut k = self.keys.lock().unwrap();
        for t in tasks {
            k.push(format!("{alloc}.{t}"));
        }
    }
}

impl Drop for TaskReaper {
    fn drop(&mut self) {
        let Ok(h) = wren_runtimes::cgroup::Hierarchies::detect() else {
            return;
        };
        for key in self.keys.lock().unwrap().iter() {
            if let Ok(cg) = h.existing("wren", key) {
                let _ = cg.destroy(Duration::from_secs(5));
            }
        }
    }
}

/// The pids in a task's cgroup.
pub fn task_pids(alloc: &str, task: &str) -> Vec<i32> {
    wren_runtimes::cgroup::Hierarchies::detect()
        .ok()
        .and_then(|h| h.existing("wren", &format!("{alloc}.{task}")).ok())
        .and_then(|cg| cg.pids().ok())
        .unwrap_or_default()
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// The text of a task's log stream so far.
pub fn log_text(alloc_dir: &Path, alloc: &str, task: &str, kind: &str) -> String {
    let dir = alloc_dir.join(alloc).join("alloc/logs");
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name
                .strip_prefix(&format!("{task}.{kind}."))?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|(_, p)| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// A real `wren agent` in client mode, its output in files.
pub struct AgentProc {
    pub config: PathBuf,
    pub log: PathBuf,
    pub data_dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl AgentProc {
    /// Writes the config of a client of `servers` and starts the agent.
    pub fn start(dir: &Path, pki: &Pki, servers: &[SocketAddr], extra: &str) -> AgentProc {
        let data_dir = dir.join("data");
        let config = dir.join("agent.hcl");
        let servers: Vec<String> = servers
            .iter()
            .map(|s| format!("{:?}", s.to_string()))
            .collect();
        let text = format!(
            r#"data_dir  = {data:?}
name      = "c1"
bind_addr = "127.0.0.1"
client {{
  enabled = true
  servers = [{servers}]
}}
plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
tls {{
  ca_file   = {ca:?}
  cert_file = {cert:?}
  key_file  = {key:?}
}}
{extra}
"#,
            data = data_dir.display().to_string(),
            servers = servers.join(", "),
            ca = pki.ca_file().display().to_string(),
            cert = pki.cert(Role::Client).display().to_string(),
            key = pki.key(Role::Client).display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        let mut a = AgentProc {
            config,
            log: dir.join("agent.log"),
            data_dir,
            child: None,
            starts: 0,
        };
        a.restart();
        a
    }

    /// Starts the agent (again).
    pub fn restart(&mut self) {
        self.kill();
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        use std::io::Write as _;
        let _ = writeln!(log, "==== start #{} ====", self.starts);
        let child = Command::new(WREN)
            .args(["agent", "--config"])
            .arg(&self.config)
            .args(["--port", "0"])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting wren agent");
        self.child = Some(child);
    }

    /// SIGKILLs the agent (its tasks and shims live on).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the agent and waits for it.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address the agent's latest start listens on.
    pub fn addr(&self, limit: Duration) -> String {
        let marker = format!("==== start #{} ====", self.starts);
        eventually("the agent to listen", limit, || {
            let out = self.output();
            let (_, this_run) = out.rsplit_once(&marker)?;
            let line = this_run
                .lines()
                .find(|l| l.contains("listening on coaps+tcp://"))?;
            let rest = line.split("coaps+tcp://").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
    }

    pub fn alloc_dir(&self) -> PathBuf {
        self.data_dir.join("alloc")
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}", self.output());
        }
        self.kill();
    }
}

/// Runs the CLI with the test's certificates.
pub fn cli(pki: &Pki, addr: &str, args: &[&str]) -> std::process::Output {
    Command::new(WREN)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("WREN_ADDR", addr)
        .env("WREN_CACERT", pki.ca_file())
        .env("WREN_CLIENT_CERT", pki.cert(Role::Cli))
        .env("WREN_CLIENT_KEY", pki.key(Role::Cli))
        .stdin(Stdio::null())
        .output()
        .expect("running the wren CLI")
}
