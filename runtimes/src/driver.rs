//! The driver interface, in the spirit of Nomad's task driver plugins, and
//! the values that cross it.
//!
//! A driver turns a [`TaskSpec`] into a running task and a [`TaskHandle`].
//! Everything after `start` works from the handle alone — which the
//! client persists (CBOR) in its local database — so an agent that
//! restarted can `recover`, `wait`, `signal`, `stop`, read `stats` and
//! `destroy` tasks it did not start.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use minicbor::{Decode, Encode};
use wren_model::{
    AllocatedPort, AllocatedTaskResources, DriverInfo, LogConfig, Task, TaskEvent, Text,
};

use crate::cgroup::{CgroupError, CgroupStats, TaskCgroup};
use crate::supervise;

/// A boxed future, so that [`Driver`] stays usable as `dyn Driver`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Everything a driver needs to start one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSpec {
    /// The allocation the task belongs to.
    pub alloc_id: String,
    /// The task as the job declares it (`config` is the driver's).
    pub task: Task,
    /// What the scheduler gave it.
    pub resources: AllocatedTaskResources,
    /// Host ports of the allocation (for the qemu `port_map`).
    pub ports: Vec<AllocatedPort>,
    /// The allocation directory (`<data>/alloc/<id>`); its `alloc/`
    /// subdirectory is shared by the group's tasks, `alloc/logs` holds logs.
    pub alloc_dir: PathBuf,
    /// The task's own directory (`<alloc dir>/<task>`).
    pub task_dir: PathBuf,
    /// The complete environment the task should see.
    pub env: BTreeMap<String, String>,
    /// Device nodes granted to the task (`/dev/ttyUSB0`, ...).
    pub devices: Vec<PathBuf>,
    /// Log rotation.
    pub logs: LogConfig,
    /// The user to run as; empty for `task.user`, and when that is empty
    /// too, the driver's default.
    pub user: String,
}

impl TaskSpec {
    /// The user asked for: `user`, else the task's `user`, else empty.
    pub fn user(&self) -> &str {
        if self.user.is_empty() {
            &self.task.user
        } else {
            &self.user
        }
    }
}

/// A running (or finished) task, enough to find it again after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct TaskHandle {
    /// The driver's name.
    #[n(0)]
    pub driver: String,
    /// The allocation.
    #[n(1)]
    pub alloc_id: String,
    /// The task's name.
    #[n(2)]
    pub task: String,
    /// The task's state directory (exit file, control fifo, shim log).
    #[n(3)]
    pub state_dir: String,
    /// The shim's pid.
    #[n(4)]
    pub shim_pid: i32,
    /// The shim's start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22): a pid alone could have been reused.
    #[n(5)]
    pub shim_start_ticks: u64,
    /// The task's pid as the shim sees it (2 inside a PID namespace).
    #[n(6)]
    pub task_pid: i32,
    /// Unix nanoseconds when the task was executed.
    #[n(7)]
    pub started_at: i64,
    /// The task's cgroup.
    #[n(8)]
    pub cgroup: TaskCgroup,
    /// The dynamic uid lease file to release on destroy.
    #[n(9)]
    pub uid_lease: Option<String>,
    /// The qemu monitor socket, for graceful shutdown.
    #[n(10)]
    pub qmp_socket: Option<String>,
}

impl TaskHandle {
    /// Encodes the handle for the client's local database.
    pub fn to_cbor(&self) -> Vec<u8> {
        wren_model::codec::to_cbor(self)
    }

    /// Decodes a persisted handle.
    pub fn from_cbor(bytes: &[u8]) -> Result<TaskHandle, wren_model::codec::CodecError> {
        wren_model::codec::from_cbor(bytes)
    }
}

/// A started task: its handle and what the agent should tell the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The handle to persist.
    pub handle: TaskHandle,
    /// Events to surface, such as `Isolation Degraded`; never dropped.
    pub events: Vec<TaskEvent>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ExitResult {
    /// The exit code; `128 + signal` when a signal killed it (as Nomad
    /// and shells report it).
    #[n(0)]
    pub exit_code: i32,
    /// The signal that killed it.
    #[n(1)]
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the task in its cgroup.
    #[n(2)]
    pub oom_killed: bool,
    /// Unix nanoseconds.
    #[n(3)]
    pub finished_at: i64,
    /// A note from the driver, when there is one.
    #[n(4)]
    pub message: Option<String>,
}

impl ExitResult {
    /// Exited on its own with code 0.
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal.is_none() && !self.oom_killed
    }

    /// The `Terminated` task event.
    pub fn event(&self) -> TaskEvent {
        let mut message = match self.signal {
            Some(s) => format!("exit code {}, killed by signal {s}", self.exit_code),
            None => format!("exit code {}", self.exit_code),
        };
        if self.oom_killed {
            message.push_str(", oom killed");
        }
        if let Some(m) = &self.message {
            message.push_str(": ");
            message.push_str(m);
        }
        TaskEvent {
            kind: Text::from_static("Terminated"),
            time: self.finished_at,
            message: message.into(),
            exit_code: Some(self.exit_code),
            signal: self.signal,
            oom_killed: self.oom_killed,
            details: BTreeMap::new(),
        }
    }
}

/// Resource usage of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStats {
    /// Unix nanoseconds of the sample.
    pub at: i64,
    /// What its cgroup says.
    pub usage: CgroupStats,
}

impl TaskStats {
    /// CPU use between two samples, in percent of one core.
    pub fn cpu_percent(&self, earlier: &TaskStats) -> f64 {
        let wall = self.at.saturating_sub(earlier.at);
        if wall <= 0 {
            return 0.0;
        }
        let cpu = self
            .usage
            .cpu_usage_ns
            .saturating_sub(earlier.usage.cpu_usage_ns);
        cpu as f64 * 100.0 / wall as f64
    }
}

/// What [`Driver::recover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The task is still running under its shim.
    Running,
    /// The task exited while nobody watched; here is how.
    Exited(ExitResult),
    /// The shim is gone and recorded nothing (it was killed): the task's
    /// fate is unknown. Destroy it and treat it as failed.
    Lost {
        /// Why.
        reason: String,
    },
}

/// A driver config value that is wrong, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{driver} config: {key}: {message}")]
pub struct ConfigError {
    /// The driver.
    pub driver: &'static str,
    /// The key (dotted for nested keys).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The task's config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The driver is not enabled on this client.
    #[error("driver {0} is disabled on this client")]
    Disabled(&'static str),
    /// The isolation policy refuses to run the task here.
    #[error("isolation policy refuses task {task}: {missing}")]
    Refused {
        /// The task.
        task: String,
        /// What the node lacks.
        missing: String,
    },
    /// The task cannot be set up as asked.
    #[error("task {task}: {message}")]
    Setup {
        /// The task.
        task: String,
        /// What is wrong.
        message: String,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The shim could not start the task.
    #[error("start task {task}: {message}")]
    Start {
        /// The task.
        task: String,
        /// What the shim said.
        message: String,
    },
    /// The task is not running (for `signal`).
    #[error("task {0} is not running")]
    NotRunning(String),
    /// A signal name that is not one.
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    /// The shim is gone without recording how the task ended.
    #[error("task {task}: {reason}")]
    Lost {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// Talking to the qemu monitor failed.
    #[error("qemu monitor {socket}: {message}")]
    Qmp {
        /// The socket.
        socket: String,
        /// What went wrong.
        message: String,
    },
}

/// A task driver.
///
/// `fingerprint`, `validate_config` and `start` are the driver's own; the
/// rest work from the handle and default to the shared shim-based
/// implementation (a driver overrides what it does differently, as qemu
/// does for `stop`). The blocking methods return within milliseconds;
/// `wait` and `stop` are futures that need an `async-io` reactor (the
/// agent's smol executor), and hold no thread while they wait.
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// `exec`, `raw_exec`, `qemu`.
    fn name(&self) -> &'static str;

    /// Whether the driver works here, and its attributes.
    fn fingerprint(&self) -> DriverInfo;

    /// Checks the task's `config` (and what the driver needs of the task)
    /// without touching the node; the CLI's `job validate` calls this too.
    fn validate_config(&self, task: &Task) -> Result<(), ConfigError>;

    /// Starts the task. Returns once it was executed (or failed to be).
    fn start(&self, spec: &TaskSpec) -> Result<Started, DriverError>;

    /// Resolves when the task has exited and its shim has finished.
    fn wait(&self, handle: &TaskHandle) -> BoxFuture<Result<ExitResult, DriverError>> {
        Box::pin(supervise::wait(handle.clone()))
    }

    /// Sends `signal` (`SIGHUP`, `HUP`, `1`) to the task's main process.
    fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), DriverError> {
        supervise::signal(handle, supervise::parse_signal(signal)?)
    }

    /// Stops the task: `kill_signal`, then after `kill_timeout` every
    /// process in its cgroup is killed.
    fn stop(
        &self,
        handle: &TaskHandle,
        kill_signal: &str,
        kill_timeout: std::time::Duration,
    ) -> BoxFuture<Result<ExitResult, DriverError>> {
        let handle = handle.clone();
        let signal = supervise::parse_signal(kill_signal);
        Box::pin(async move { supervise::stop(handle, signal?, kill_timeout).await })
    }

    /// Current resource usage.
    fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, DriverError> {
        Ok(TaskStats {
            at: crate::shim::now_ns(),
            usage: handle.cgroup.stats()?,
        })
    }

    /// Finds the task again after an agent restart.
    fn recover(&self, handle: &TaskHandle) -> Result<Recovered, DriverError> {
        supervise::recover(handle)
    }

    /// Kills anything left and removes the cgroup, the state directory and
    /// the uid lease. Idempotent.
    fn destroy(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        supervise::destroy(handle)
    }
}

/// A task event with the current time.
pub fn event(kind: &str, message: impl Into<Text>) -> TaskEvent {
    TaskEvent {
        kind: kind.into(),
        time: crate::shim::now_ns(),
        message: message.into(),
        ..TaskEvent::default()
    }
}
