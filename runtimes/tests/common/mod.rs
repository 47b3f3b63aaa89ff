//! Shared by the runtimes integration tests: a per-test directory tree,
//! a runtime using the real shim, task specs running the probe program,
//! and polling helpers (never fixed sleeps).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wren_model::{Task, Value};
use wren_runtimes::host::HostCaps;
use wren_runtimes::{Runtime, RuntimeConfig, TaskSpec};

pub const SHIM: &str = env!("CARGO_BIN_EXE_wren-task-shim");
pub const PROBE: &str = env!("CARGO_BIN_EXE_wren-task-probe");

/// Whether the tests may skip when the machine lacks what they need.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Returns the node's capabilities when it can run isolated tasks; else
/// prints why and returns `None` (or panics under `CI=true`).
pub fn isolation_caps() -> Option<HostCaps> {
    let caps = HostCaps::detect();
    let mut missing = Vec::new();
    if !caps.root {
        missing.push("root");
    }
    if caps.cgroups.version().is_none() {
        missing.push("cgroups");
    }
    if caps.landlock_abi.is_none() {
        missing.push("landlock");
    }
    if !(caps.pid_ns && caps.mount_ns && caps.ipc_ns) {
        missing.push("namespaces");
    }
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        if !caps.cgroups.has(c) {
            missing.push(c);
        }
    }
    if missing.is_empty() {
        return Some(caps);
    }
    let why = format!("this machine lacks {}", missing.join(", "));
    if in_ci() {
        panic!("CI=true and {why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// A directory tree removed on drop, traversable by task users.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wren-rt-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    /// Also kills and removes the cgroup of every task started under this
    /// directory (its runtime's state dir names them), so a test that
    /// panics half way leaves no task running behind it.
    fn drop(&mut self) {
        if let Ok(tasks) = std::fs::read_dir(self.0.join("state/tasks"))
            && let Ok(h) = wren_runtimes::cgroup::Hierarchies::detect()
        {
            for task in tasks.flatten() {
                let key = task.file_name().to_string_lossy().into_owned();
                if let Ok(cg) = h.existing(CGROUP_PARENT, &key) {
                    let _ = cg.destroy(Duration::from_secs(5));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The cgroup parent of every test task.
pub const CGROUP_PARENT: &str = "wren-test";

/// A runtime whose state lives under `root`.
pub fn runtime(root: &Path, caps: HostCaps) -> Arc<Runtime> {
    let config = RuntimeConfig {
        shim: vec![SHIM.into()],
        state_dir: root.join("state"),
        cgroup_parent: CGROUP_PARENT.to_owned(),
        policy: Default::default(),
    };
    Runtime::with_caps(config, caps).unwrap()
}

/// A unique allocation id.
pub fn alloc_id(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}

/// A task spec whose task dir holds the probe at `local/probe`.
pub fn spec(root: &Path, alloc: &str, task: &str, driver: &str, config: Value) -> TaskSpec {
    let alloc_dir = root.join("alloc").join(alloc);
    let task_dir = alloc_dir.join(task);
    std::fs::create_dir_all(task_dir.join("local")).unwrap();
    for d in [root.join("alloc"), alloc_dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::copy(PROBE, task_dir.join("local/probe")).unwrap();
    TaskSpec {
        alloc_id: alloc.to_owned(),
        task: Task {
            name: task.to_owned(),
            driver: driver.to_owned(),
            config,
            resources: wren_model::Resources {
                cpu: 100,
                memory_mb: 64,
                ..Default::default()
            },
            ..Task::default()
        },
        resources: wren_model::AllocatedTaskResources {
            cpu: 100,
            memory_mb: 64,
            ..Default::default()
        },
        alloc_dir,
        task_dir,
        env: BTreeMap::from([("WREN_TEST".to_owned(), "1".to_owned())]),
        ..TaskSpec::default()
    }
}

/// `config { command = "local/probe" args = [...] }` (plus extra keys).
pub fn probe(args: &[&str], extra: &[(&str, Value)]) -> Value {
    let mut m = BTreeMap::new();
    m.insert(
        "command".to_owned(),
        Value::String("local/probe".to_owned()),
    );
    m.insert(
        "args".to_owned(),
        Value::List(args.iter().map(|a| Value::String(a.to_string())).collect()),
    );
    for (k, v) in extra {
        m.insert(k.to_string(), v.clone());
    }
    Value::Map(m)
}

/// The task's stdout log (index 0).
pub fn stdout_log(spec: &TaskSpec) -> PathBuf {
    spec.alloc_dir
        .join("alloc/logs")
        .join(format!("{}.stdout.0", spec.task.name))
}

/// Polls `path` until it contains `needle`; returns the whole text.
pub fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > deadline {
            panic!(
                "{} never contained {needle:?}; it holds:\n{text}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    async_io::block_on(f)
}

/// Starts `spec`, waits for it to exit, destroys it; returns its exit and
/// its stdout.
pub fn run_to_end(
    driver: &dyn wren_runtimes::Driver,
    spec: &TaskSpec,
) -> (wren_runtimes::ExitResult, String) {
    let started = driver
        .start(spec)
        .unwrap_or_else(|e| panic!("start {}: {e}", spec.task.name));
    let exit = block_on(driver.wait(&started.handle)).unwrap();
    let out = std::fs::read_to_string(stdout_log(spec)).unwrap_or_default();
    driver.destroy(&started.handle).unwrap();
    (exit, out)
}
