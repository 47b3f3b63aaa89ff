//! The isolation policy: what an `exec` (and `qemu`) task may touch, in one
//! reviewed place. Change defaults here and nowhere else.
//!
//! # Threat model
//!
//! **Protected:** the node (its files, devices, processes, the agent and
//! the per-task shims), and every task from every other task.
//!
//! **Adversary:** the code a task runs, assumed hostile: it may be a
//! compromised service or a job written to probe the node. It runs with
//! whatever the jobspec gives it and nothing more. The jobspec's author is
//! *not* fully trusted either (a client runs jobs that any holder of a
//! submit token wrote), which is why drivers validate `config` and the
//! qemu driver allow-lists extra arguments and image paths.
//!
//! **Out of scope:** kernel exploits (Landlock, namespaces and cgroups are
//! kernel features; a kernel bug defeats them all), side channels, the
//! network (tasks share the host network, as with Nomad's `exec` in host
//! mode; firewalling is the operator's), and `raw_exec`, which is
//! unisolated by definition and therefore off unless enabled.
//!
//! **Containment, layer by layer** (each layer covers a gap of the others):
//!
//! | threat | layers |
//! | --- | --- |
//! | write or read host files | Landlock (system paths read-only, task and shared alloc dirs writable, nothing else), an unprivileged uid (DAC), no_new_privs (no setuid escalation) |
//! | read another task's files | Landlock (other task dirs are not in the ruleset), task dirs are `0700` and owned by the task's own uid |
//! | see or signal other processes | a private PID namespace with its own `/proc` (`hidepid=invisible`), a distinct uid per task, Landlock signal scoping (ABI 6) |
//! | open host devices | a private `/dev` holding only the allowed nodes, cgroup device rules (v1 `devices.allow`, v2 a BPF device program), Landlock rules on exactly those nodes, no `CAP_MKNOD` |
//! | exhaust memory, pids, cpu | cgroup limits: `memory.max` / `limit_in_bytes` (the kernel OOM-kills inside the cgroup), `pids.max`, cpu shares/weight and a quota for `cores` |
//! | talk to host IPC | a private IPC namespace, Landlock abstract-unix-socket scoping (ABI 6) |
//! | outlive `stop` | every process of the task is in its cgroup; stop kills the whole cgroup after `kill_timeout` |
//!
//! **When the node cannot provide a layer** (a Raspberry Pi boots with the
//! memory controller off; kernels before 5.13 have no Landlock; qemu-user
//! returns `ENOSYS`; some containers forbid namespaces), the
//! [`OnMissing`] policy decides: `Refuse` the task, or `Degrade` — run with
//! what is there and say exactly what is missing in a task event. Nothing
//! is ever dropped silently.

use std::path::PathBuf;

/// What to do when the node cannot provide an isolation layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissing {
    /// Refuse to start the task, naming what is missing.
    Refuse,
    /// Start it with the layers that exist and report the missing ones as
    /// an `Isolation Degraded` task event. The default: small boards often
    /// lack a controller, and the node's attributes tell schedulers (and
    /// constraints) which nodes are fully isolated.
    #[default]
    Degrade,
}

impl std::str::FromStr for OnMissing {
    type Err = String;
    fn from_str(s: &str) -> Result<OnMissing, String> {
        match s {
            "refuse" => Ok(OnMissing::Refuse),
            "degrade" => Ok(OnMissing::Degrade),
            other => Err(format!(
                "unknown isolation policy {other:?} (expected refuse or degrade)"
            )),
        }
    }
}

/// System paths a task may read and execute (when they exist). Like
/// Nomad's default `chroot_env`, plus `/proc` (a private one). Not `/sys`
/// (hardware details, writable knobs), not `/var`, `/home`, `/root`,
/// `/srv`, `/opt`, `/mnt`, `/media` or `/run` (sockets of host daemons).
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/run/resolvconf",
    "/run/systemd/resolve",
];

/// How a task may use a path; [`crate::landlock::rights`] turns it into
/// Landlock access rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and execute (system paths).
    ReadExec,
    /// Read, nothing else.
    Read,
    /// Everything but creating device nodes (its own directories).
    ReadWrite,
    /// Open a device node for reading and writing, and ioctl it.
    Device,
}

/// `/proc` (the task's private one): readable, not writable or executable.
pub const PROC: (&str, Access) = ("/proc", Access::Read);

/// The allocation's shared directories (relative to the allocation
/// directory) every task of it may use, with their mode on disk. A task's
/// own directory is [`Access::ReadWrite`], mode `0700` and owned by its
/// user; nothing else under the allocation directory — in particular not
/// the other tasks' directories — is in its ruleset. `alloc/logs` is
/// read-only: only the shims write logs, so a task cannot forge or
/// truncate a sibling's.
pub const ALLOC_SHARED: &[(&str, Access, u32)] = &[
    ("alloc/data", Access::ReadWrite, 0o1777),
    ("alloc/tmp", Access::ReadWrite, 0o1777),
    ("alloc/logs", Access::Read, 0o755),
];

/// `RLIMIT_CORE`: no core dumps, which would fill a small board's disk
/// (and can hold secrets).
pub const CORE_LIMIT: u64 = 0;

/// Device nodes every task gets, with the usual modes: harmless sinks and
/// sources. Anything else must be granted (`devices` in the task).
pub const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// `pids.max` when the task's config sets no `pids_limit`. Small enough
/// that a fork bomb on a 1 GiB board stops long before the node does, large
/// enough for a service with a few hundred threads.
pub const DEFAULT_PIDS_LIMIT: u32 = 512;

/// Dynamic uids (and gids, the same number) for tasks without a `user`.
/// Above 65535 to stay clear of distribution and systemd `DynamicUser`
/// ranges (61184-65519), below the `/etc/subuid` ranges rootless container
/// tools usually hand out from 100000.
pub const DYNAMIC_UIDS: (u32, u32) = (70_000, 79_999);

/// Open files per task process (soft = hard).
pub const NOFILE_LIMIT: u64 = 4096;

/// Size of the private `/dev` tmpfs (device nodes and symlinks only).
pub const DEV_TMPFS_BYTES: u64 = 64 * 1024;

/// Size of the private `/dev/shm` tmpfs. Its pages are charged to the
/// task's memory cgroup like any other memory.
pub const DEV_SHM_BYTES: u64 = 64 * 1024 * 1024;

/// Memory a qemu process needs beyond the guest's RAM (device emulation,
/// the tcg translation cache capped by the driver, libraries). The cgroup
/// limit of a qemu task is the guest memory plus this, unless the task
/// sets `memory_max`.
pub const QEMU_OVERHEAD_BYTES: u64 = 192 * 1024 * 1024;

/// The isolation policy as configured on a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationPolicy {
    /// What to do when a layer is missing.
    pub on_missing: OnMissing,
    /// Read-only (and executable) system paths; default [`SYSTEM_READ_ONLY`].
    pub read_only_paths: Vec<PathBuf>,
    /// Device nodes every task gets; default [`DEFAULT_DEVICES`].
    pub default_devices: Vec<PathBuf>,
    /// `pids.max` when a task sets none.
    pub pids_limit: u32,
    /// Inclusive range of dynamic uids.
    pub dynamic_uids: (u32, u32),
    /// `RLIMIT_NOFILE`.
    pub nofile: u64,
    /// `/dev/shm` size.
    pub dev_shm_bytes: u64,
}

impl Default for IsolationPolicy {
    fn default() -> IsolationPolicy {
        IsolationPolicy {
            on_missing: OnMissing::default(),
            read_only_paths: SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect(),
            default_devices: DEFAULT_DEVICES.iter().map(PathBuf::from).collect(),
            pids_limit: DEFAULT_PIDS_LIMIT,
            dynamic_uids: DYNAMIC_UIDS,
            nofile: NOFILE_LIMIT,
            dev_shm_bytes: DEV_SHM_BYTES,
        }
    }
}

/// An isolation layer the node may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// Any usable cgroup hierarchy (without one there is no limit and no
    /// reliable kill of the whole tree: always refused for exec).
    Cgroups,
    /// The memory controller.
    Memory,
    /// The cpu controller.
    Cpu,
    /// The pids controller.
    Pids,
    /// The cpuset controller, needed only when cores are reserved.
    Cpuset,
    /// Device rules in the cgroup (v1 devices controller).
    DeviceCgroup,
    /// Landlock at all.
    Landlock,
    /// Landlock, but an older ABI than the newest this crate knows.
    LandlockPartial,
    /// A private PID namespace.
    PidNamespace,
    /// A private mount namespace (and with it the private `/dev`, `/proc`).
    MountNamespace,
    /// A private IPC namespace.
    IpcNamespace,
}

impl Layer {
    /// What a person reads in the task event.
    pub fn describe(self) -> &'static str {
        match self {
            Layer::Cgroups => "no usable cgroup hierarchy: no limits and no whole-tree kill",
            Layer::Memory => "no memory controller: memory is not limited",
            Layer::Cpu => "no cpu controller: cpu is neither weighted nor capped",
            Layer::Pids => {
                "no pids controller: no process count limit (fork bombs are not contained)"
            }
            Layer::Cpuset => "no cpuset controller: reserved cores are not pinned",
            Layer::DeviceCgroup => {
                "no device cgroup rules (v1 devices controller or v2 bpf program): devices are limited by the private /dev and landlock only"
            }
            Layer::Landlock => "no landlock: file access is limited by unix permissions only",
            Layer::LandlockPartial => {
                "landlock is older than abi 6: some access rights are not restricted"
            }
            Layer::PidNamespace => "no pid namespace: the task can see the node's processes",
            Layer::MountNamespace => "no mount namespace: the task sees the node's /dev and /proc",
            Layer::IpcNamespace => "no ipc namespace: the task shares the node's system v ipc",
        }
    }

    /// Whether lacking this layer is worth refusing a task under
    /// [`OnMissing::Refuse`]. Partial Landlock, a v2 node without a device
    /// program and cpuset are notes, not refusals: the other layers hold.
    pub fn is_essential(self) -> bool {
        !matches!(
            self,
            Layer::LandlockPartial | Layer::DeviceCgroup | Layer::Cpuset
        )
    }
}
