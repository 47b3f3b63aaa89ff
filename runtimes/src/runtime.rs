//! What every driver shares: the node's isolation capabilities, the shim
//! command, the state directory, the cgroup parent, the policy; and the
//! one launch path all drivers end in (state dir, cgroup, shim, handle).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wren_model::TaskEvent;

use crate::cgroup::{Limits, TaskCgroup};
use crate::driver::{DriverError, Started, TaskHandle, TaskSpec};
use crate::host::HostCaps;
use crate::logs::Rotation;
use crate::policy::IsolationPolicy;
use crate::shim::spec::{Launch, LogSpec, ShimSpec};

/// How a client runs its drivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The shim: a program and leading arguments (`["/usr/bin/wren",
    /// "shim"]` in production).
    pub shim: Vec<OsString>,
    /// Where task state directories and uid leases live (the agent's
    /// `<data_dir>/runtimes`); created `0700`.
    pub state_dir: PathBuf,
    /// The cgroup every task cgroup is created under.
    pub cgroup_parent: String,
    /// The isolation policy.
    pub policy: IsolationPolicy,
}

impl RuntimeConfig {
    /// A config that re-executes the running binary as `<exe> shim`.
    pub fn new(state_dir: PathBuf) -> std::io::Result<RuntimeConfig> {
        let exe = std::env::current_exe()?;
        Ok(RuntimeConfig {
            shim: vec![exe.into_os_string(), OsString::from("shim")],
            state_dir,
            cgroup_parent: "wren".to_owned(),
            policy: IsolationPolicy::default(),
        })
    }
}

/// The shared driver context.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration.
    pub config: RuntimeConfig,
    /// What the node can isolate with.
    pub caps: HostCaps,
}

impl Runtime {
    /// Probes the node and prepares the state directory.
    pub fn new(config: RuntimeConfig) -> Result<Arc<Runtime>, DriverError> {
        Runtime::with_caps(config, HostCaps::detect())
    }

    /// Uses the given capabilities instead of probing (tests use this to
    /// take layers away).
    pub fn with_caps(config: RuntimeConfig, caps: HostCaps) -> Result<Arc<Runtime>, DriverError> {
        let dir = &config.state_dir;
        std::fs::create_dir_all(dir.join("tasks")).map_err(|source| DriverError::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
        set_mode(dir, 0o700)?;
        Ok(Arc::new(Runtime { config, caps }))
    }

    pub(crate) fn uid_dir(&self) -> PathBuf {
        self.config.state_dir.join("uids")
    }

    /// `<alloc>.<task>`, safe as a file and cgroup name and distinct for
    /// distinct tasks: bytes other than `[A-Za-z0-9_-]` are escaped as
    /// `%HH` (so `.` only ever separates), and an over-long key keeps its
    /// start and a hash of the whole.
    pub(crate) fn task_key(spec: &TaskSpec) -> String {
        let escape = |s: &str| -> String {
            let mut out = String::with_capacity(s.len());
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        };
        let key = format!("{}.{}", escape(&spec.alloc_id), escape(&spec.task.name));
        if key.len() <= 180 {
            return key;
        }
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{}~{hash:016x}", key.get(..150).unwrap_or(&key))
    }

    /// Creates the state directory and cgroup, starts the shim and builds
    /// the handle. Anything created is removed again on failure.
    pub(crate) fn launch(
        &self,
        driver: &'static str,
        spec: &TaskSpec,
        plan: LaunchPlan,
    ) -> Result<Started, DriverError> {
        let name = &spec.task.name;
        if name.is_empty()
            || name.contains('/')
            || name.contains('\0')
            || name == "."
            || name == ".."
        {
            return Err(DriverError::Setup {
                task: name.clone(),
                message: "a task name must not be empty, . or .., nor contain / or nul".to_owned(),
            });
        }
        let key = Runtime::task_key(spec);
        let state_dir = self.config.state_dir.join("tasks").join(&key);
        let mut cleanup = Cleanup {
            state_dir: None,
            cgroup: None,
            lease: plan.uid_lease.clone(),
        };
        let mut events = plan.events;
        // The agent starts a task only when it holds no handle for it, so an
        // earlier instance still running (the agent died before persisting
        // its handle) is an orphan: kill it, never run the task twice, and
        // never let the new one join the old one's cgroup.
        let old = self
            .caps
            .cgroups
            .existing(&self.config.cgroup_parent, &key)?;
        let leftover = old.dirs.iter().any(|d| Path::new(&d.path).exists());
        let shim_running = shim_still_running(&state_dir);
        if shim_running || (leftover && old.is_populated()?) {
            events.push(crate::driver::event(
                "Orphan Killed",
                "an earlier instance of this task that the agent had lost track of was killed",
            ));
        }
        if leftover {
            old.destroy(Duration::from_secs(10))?;
        }
        // Its shim records the kill and exits; only then is the state
        // directory free for the new instance.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while shim_still_running(&state_dir) {
            if std::time::Instant::now() > deadline {
                return Err(DriverError::Setup {
                    task: spec.task.name.clone(),
                    message: format!("an orphaned shim still holds {}", state_dir.display()),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if state_dir.exists() {
            let _ = std::fs::remove_dir_all(&state_dir);
        }
        std::fs::create_dir_all(&state_dir).map_err(|source| DriverError::Io {
            op: "create",
            path: state_dir.clone(),
            source,
        })?;
        set_mode(&state_dir, 0o700)?;
        cleanup.state_dir = Some(state_dir.clone());

        let cgroup = self
            .caps
            .cgroups
            .create(&self.config.cgroup_parent, &key, &plan.limits)?;
        cleanup.cgroup = Some(cgroup.clone());

        let mut sandbox = plan.sandbox;
        sandbox.join = cgroup
            .procs_files()
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let logs_dir = spec.alloc_dir.join("alloc").join("logs");
        std::fs::create_dir_all(&logs_dir).map_err(|source| DriverError::Io {
            op: "create",
            path: logs_dir.clone(),
            source,
        })?;
        let rotation = Rotation::from_config(&spec.logs);
        let monitor = plan.monitor.then(|| {
            state_dir
                .join(MONITOR_SOCKET)
                .to_string_lossy()
                .into_owned()
        });
        let shim_spec = ShimSpec {
            state_dir: state_dir.to_string_lossy().into_owned(),
            logs: LogSpec {
                dir: logs_dir.to_string_lossy().into_owned(),
                task: spec.task.name.clone(),
                max_files: rotation.max_files,
                max_file_bytes: rotation.max_file_bytes,
                disabled: spec.logs.disabled,
            },
            pid_ns: plan.pid_ns,
            launch: Launch {
                program: plan.program,
                args: plan.args,
                env: plan.env,
                sandbox,
                listen: monitor.clone(),
            },
            cgroup: cgroup.clone(),
        };
        let launched = crate::supervise::launch(&self.config.shim, &shim_spec, &spec.task.name)?;
        cleanup.disarm();
        Ok(Started {
            handle: TaskHandle {
                driver: driver.to_owned(),
                alloc_id: spec.alloc_id.clone(),
                task: spec.task.name.clone(),
                state_dir: state_dir.to_string_lossy().into_owned(),
                shim_pid: launched.shim_pid,
                shim_start_ticks: launched.shim_start_ticks,
                task_pid: launched.task_pid,
                started_at: launched.started_at,
                cgroup,
                uid_lease: plan.uid_lease.map(|p| p.to_string_lossy().into_owned()),
                qmp_socket: monitor,
            },
            events,
        })
    }
}

/// Whether a previous shim for this state directory still holds its
/// control fifo open (a reader exists).
fn shim_still_running(state_dir: &Path) -> bool {
    use nix::fcntl::OFlag;
    let fifo = state_dir.join(crate::shim::CONTROL_FIFO);
    nix::fcntl::open(
        &fifo,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .is_ok()
}

/// What a driver decided; [`Runtime::launch`] does the rest.
#[derive(Debug)]
pub(crate) struct LaunchPlan {
    pub program: String,
    pub args: Vec<String>,
    pub env: std::collections::BTreeMap<String, String>,
    pub sandbox: crate::shim::spec::Sandbox,
    pub limits: Limits,
    pub pid_ns: bool,
    pub uid_lease: Option<PathBuf>,
    /// Hand the task a listening monitor socket as fd 3 (qemu's QMP).
    pub monitor: bool,
    pub events: Vec<TaskEvent>,
}

/// The monitor socket's name in the task's state directory.
pub(crate) const MONITOR_SOCKET: &str = "qmp.sock";

/// Undoes a half-done launch unless disarmed.
struct Cleanup {
    state_dir: Option<PathBuf>,
    cgroup: Option<TaskCgroup>,
    lease: Option<PathBuf>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.state_dir = None;
        self.cgroup = None;
        self.lease = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy(Duration::from_secs(5));
        }
        if let Some(dir) = self.state_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(lease) = self.lease.take() {
            crate::users::release(&lease);
        }
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        DriverError::Io {
            op: "chmod",
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alloc: &str, task: &str) -> String {
        let mut spec = TaskSpec {
            alloc_id: alloc.to_owned(),
            ..TaskSpec::default()
        };
        spec.task.name = task.to_owned();
        Runtime::task_key(&spec)
    }

    #[test]
    fn task_keys_are_safe_and_distinct() {
        assert_eq!(key("5f0c-1", "web"), "5f0c-1.web");
        assert_ne!(key("x", "a.b"), key("x", "a_b"));
        assert_ne!(key("x.y", "z"), key("x", "y.z"));
        assert_eq!(key("a", "../../etc"), "a.%2E%2E%2F%2E%2E%2Fetc");
        let long = key(&"a".repeat(300), "t");
        assert!(long.len() < 200 && !long.contains('/'), "{long}");
        assert_ne!(long, key(&"a".repeat(301), "t"));
    }
}
