//! Task drivers: how a wren client runs, watches, signals, stops and
//! re-attaches to tasks.
//!
//! - [`exec::ExecDriver`] runs a program confined by a cgroup (cpu, memory,
//!   pids, devices; v1 and v2), Landlock, private PID/IPC/mount namespaces
//!   with a private `/dev` and `/proc`, an unprivileged user, no_new_privs
//!   and rlimits. What the node cannot provide is decided by the
//!   [`policy`] — refuse, or run and report — never dropped silently.
//! - [`raw_exec::RawExecDriver`] runs a program unconfined (off unless
//!   enabled), still in a cgroup for accounting and whole-tree kill.
//! - [`qemu::QemuDriver`] runs a virtual machine, its serial console in the
//!   task log, with graceful shutdown over QMP.
//!
//! Every task gets one small [`shim`] process (the `wren` binary
//! re-executed as `wren shim`) that holds its output pipes, writes the
//! rotated logs, and records its exit status; tasks, logs and exit
//! statuses therefore survive an agent restart, and a new agent finds them
//! again from the serializable [`TaskHandle`].
//!
//! Shims are detached from the agent (their own session, re-parented to
//! init), but they inherit the agent's cgroups: under systemd the agent's
//! unit needs `KillMode=process` (as Nomad's does), or a restart of the
//! agent kills every shim and task with it.
//!
//! Deliberately not here: restart policies, the alloc directory layout
//! beyond what a task needs, artifact downloads, networking (tasks share
//! the host network) and any executor — `wait` and `stop` are futures for
//! the agent's one executor, everything else returns promptly.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cgroup;
mod config;
pub mod driver;
pub mod exec;
pub mod host;
mod isolation;
pub mod landlock;
pub mod logs;
pub mod policy;
pub mod qemu;
pub mod raw_exec;
pub mod runtime;
mod sandbox;
pub mod shim;
mod supervise;
mod sys;
pub mod users;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use driver::{
    BoxFuture, ConfigError, Driver, DriverError, ExitResult, Recovered, Started, TaskHandle,
    TaskSpec, TaskStats,
};
pub use runtime::{Runtime, RuntimeConfig};

/// Whether [`release_free_heap`] does anything here: glibc's allocator
/// needs telling; musl's returns freed memory by itself.
pub const RELEASES_FREE_HEAP: bool = cfg!(target_env = "gnu");

/// Returns the heap that freed allocations left resident to the kernel:
/// glibc keeps freed memory in its per-thread arenas and only gives back
/// an arena's free top. A no-op where the allocator has nothing to trim
/// (musl, see [`RELEASES_FREE_HEAP`]). The agent calls it on a timer; see
/// `wren-agent`'s `memory`.
pub fn release_free_heap() {
    sys::malloc_trim();
}

/// Caps the allocator's arenas at `arenas`. glibc makes one per thread
/// that allocates under contention, up to eight per core, and each keeps
/// its own free memory; a long-running agent with a few dozen threads ends
/// up holding free pages in every one of them. Call before spawning
/// threads. A no-op on musl.
pub fn limit_heap_arenas(arenas: u8) {
    sys::mallopt(sys::MallocParam::ArenaMax, i32::from(arenas));
}

/// Makes every allocation of at least `bytes` a mapping of its own, given
/// back to the kernel when freed. glibc starts at 128 KiB but raises the
/// size to that of any such allocation freed (up to 32 MiB), so that after
/// one large buffer comes and goes, the next ones are carved from the heap,
/// and once freed, small objects settle in their space and keep it
/// resident. A restarted dev agent, which reads a 5 MB snapshot once, held
/// 9 MB more for it. Call before spawning threads. A no-op on musl.
pub fn fix_heap_mmap_threshold(bytes: u32) {
    sys::mallopt(
        sys::MallocParam::MmapThreshold,
        i32::try_from(bytes).unwrap_or(i32::MAX),
    );
}

/// Checks a task's driver `config` the way its driver will, without a
/// runtime: for `wren job validate` and for servers accepting a job. What
/// only a node knows (which image directories and extra qemu flags its
/// operator allows) is not judged here; the node checks it again before
/// anything starts. Unknown drivers are the jobspec validator's concern.
pub fn validate_task_config(task: &wren_model::Task) -> Result<(), ConfigError> {
    match task.driver.as_str() {
        "exec" | "raw_exec" => {
            let name = if task.driver == "exec" {
                "exec"
            } else {
                "raw_exec"
            };
            exec::ExecConfig::parse(name, task).map(drop)
        }
        "qemu" => {
            // Allow, for this check, exactly the flags and any absolute path
            // the task names: their syntax is checked, their permission is
            // each node's call.
            let flags = task
                .config
                .get("args")
                .and_then(wren_model::Value::as_list)
                .map(|args| {
                    args.iter()
                        .filter_map(wren_model::Value::as_str)
                        .filter(|a| a.starts_with('-'))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let opts = qemu::QemuOptions {
                image_paths: vec![std::path::PathBuf::from("/")],
                args_allowlist: flags,
            };
            qemu::QemuConfig::parse(task, &opts).map(drop)
        }
        _ => Ok(()),
    }
}

/// The drivers of a client, by name.
pub type Drivers = BTreeMap<&'static str, Box<dyn Driver>>;

/// Builds the three drivers on one runtime: `exec`, `raw_exec` (enabled or
/// not) and `qemu`.
pub fn drivers(rt: &Arc<Runtime>, raw_exec_enabled: bool, qemu: qemu::QemuOptions) -> Drivers {
    let mut d: Drivers = BTreeMap::new();
    d.insert("exec", Box::new(exec::ExecDriver::new(rt.clone())));
    d.insert(
        "raw_exec",
        Box::new(raw_exec::RawExecDriver::new(rt.clone(), raw_exec_enabled)),
    );
    d.insert("qemu", Box::new(qemu::QemuDriver::new(rt.clone(), qemu)));
    d
}
