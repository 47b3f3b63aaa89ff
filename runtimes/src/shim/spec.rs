//! What the driver tells a shim (CBOR on the shim's stdin) and what the
//! shim reports back (CBOR items on its stdout). Both ends are this crate,
//! but the encoding is still versioned by field index so that an agent
//! upgraded while shims of the old version run can read their files.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};

use crate::cgroup::TaskCgroup;

/// Everything a shim needs to start and supervise one task.
#[derive(Debug, Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct ShimSpec {
    /// The task's private state directory (exit file, control fifo).
    #[n(0)]
    pub state_dir: String,
    /// Where and how to write stdout and stderr.
    #[n(1)]
    pub logs: LogSpec,
    /// Create a PID namespace with the shim as its init.
    #[n(2)]
    pub pid_ns: bool,
    /// The program and its sandbox.
    #[n(3)]
    pub launch: Launch,
    /// The task's cgroup (the shim kills leftovers and reads OOM kills).
    #[n(4)]
    pub cgroup: TaskCgroup,
}

/// Log files of a task.
#[derive(Debug, Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct LogSpec {
    /// `<alloc>/alloc/logs`.
    #[n(0)]
    pub dir: String,
    /// The task's name: files are `<task>.stdout.N` and `<task>.stderr.N`.
    #[n(1)]
    pub task: String,
    /// Files kept per stream.
    #[n(2)]
    pub max_files: u32,
    /// Bytes per file.
    #[n(3)]
    pub max_file_bytes: u64,
    /// Discard output.
    #[n(4)]
    pub disabled: bool,
}

/// The program to execute.
#[derive(Debug, Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct Launch {
    /// Absolute path of the executable.
    #[n(0)]
    pub program: String,
    /// Arguments after argv\[0\].
    #[n(1)]
    pub args: Vec<String>,
    /// The complete environment.
    #[n(2)]
    pub env: BTreeMap<String, String>,
    /// How to confine it.
    #[n(3)]
    pub sandbox: Sandbox,
    /// A unix socket the shim creates (root's, in the state directory)
    /// and hands to the task listening, as fd 3: qemu's monitor, which the
    /// task can then neither move nor replace.
    #[n(4)]
    pub listen: Option<String>,
}

/// The fd a [`Launch::listen`] socket has in the task.
pub(crate) const LISTEN_FD: i32 = 3;

/// The confinement applied in the child between fork and exec, in this
/// order: join cgroups, unshare, mounts, rlimits, user, no_new_privs,
/// Landlock, chdir.
#[derive(Debug, Clone, Default, Encode, Decode)]
#[cbor(map)]
pub(crate) struct Sandbox {
    /// `cgroup.procs` files to write `0` into.
    #[n(0)]
    pub join: Vec<String>,
    /// Unshare the mount namespace (needed for `dev`, `proc`, `tmp`).
    #[n(1)]
    pub mount_ns: bool,
    /// Unshare the IPC namespace.
    #[n(2)]
    pub ipc_ns: bool,
    /// A private `/dev`.
    #[n(3)]
    pub dev: Option<PrivateDev>,
    /// Mount a fresh `/proc` (for the task's PID namespace).
    #[n(4)]
    pub proc: bool,
    /// A directory to bind-mount over `/tmp`.
    #[n(5)]
    pub tmp: Option<String>,
    /// Switch to this user.
    #[n(6)]
    pub ids: Option<Ids>,
    /// Set no_new_privs.
    #[n(7)]
    pub no_new_privs: bool,
    /// Enforce a Landlock ruleset.
    #[n(8)]
    pub landlock: Option<LandlockSpec>,
    /// Resource limits.
    #[n(9)]
    pub rlimits: Vec<Rlimit>,
    /// The working directory.
    #[n(10)]
    pub work_dir: String,
}

/// A private `/dev` tmpfs.
#[derive(Debug, Clone, Default, Encode, Decode)]
#[cbor(map)]
pub(crate) struct PrivateDev {
    /// Device nodes to create.
    #[n(0)]
    pub nodes: Vec<DevNode>,
    /// Size of `/dev/shm`.
    #[n(1)]
    pub shm_bytes: u64,
    /// Size of `/dev` itself.
    #[n(2)]
    pub dev_bytes: u64,
}

/// One device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct DevNodeNumbers {
    /// Block (true) or character device.
    #[n(0)]
    pub block: bool,
    /// Major number.
    #[n(1)]
    pub major: u32,
    /// Minor number.
    #[n(2)]
    pub minor: u32,
}

/// A device node at a path under `/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct DevNode {
    /// Absolute path under `/dev`.
    #[n(0)]
    pub path: String,
    /// Its numbers.
    #[n(1)]
    pub numbers: DevNodeNumbers,
}

/// The user to run as.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct Ids {
    /// User id.
    #[n(0)]
    pub uid: u32,
    /// Primary group id.
    #[n(1)]
    pub gid: u32,
    /// Supplementary groups.
    #[n(2)]
    pub groups: Vec<u32>,
}

/// A Landlock ruleset.
#[derive(Debug, Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct LandlockSpec {
    /// The kernel's ABI, which decides the handled rights.
    #[n(0)]
    pub abi: u32,
    /// Path rules; rights already clamped to the ABI and path type.
    #[n(1)]
    pub rules: Vec<LandlockRule>,
}

/// Rights beneath one path.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct LandlockRule {
    /// The path, as the task's mount namespace sees it.
    #[n(0)]
    pub path: String,
    /// `LANDLOCK_ACCESS_FS_*` bits.
    #[n(1)]
    pub rights: u64,
}

/// An rlimit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct Rlimit {
    /// Which limit.
    #[n(0)]
    pub resource: RlimitKind,
    /// Soft limit.
    #[n(1)]
    pub soft: u64,
    /// Hard limit.
    #[n(2)]
    pub hard: u64,
}

/// The rlimits wren sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub(crate) enum RlimitKind {
    /// Open files.
    #[n(0)]
    NoFile,
    /// Core dump size.
    #[n(1)]
    Core,
}

/// A message from the shim's first stage or from the shim itself.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) enum Report {
    /// The first stage forked the shim; its pid as the agent sees it.
    #[n(0)]
    Forked {
        /// The shim.
        #[n(0)]
        shim_pid: i32,
        /// Its start time (`/proc/<pid>/stat` field 22), 0 if unknown.
        #[n(1)]
        start_ticks: u64,
    },
    /// The task was executed.
    #[n(1)]
    Started {
        /// The task's pid as the shim sees it (2 inside a PID namespace).
        #[n(0)]
        task_pid: i32,
        /// Unix nanoseconds when exec succeeded.
        #[n(1)]
        started_at: i64,
    },
    /// Nothing was started.
    #[n(2)]
    Failed {
        /// Why, for people.
        #[n(0)]
        message: String,
        /// The errno, when a system call failed.
        #[n(1)]
        errno: Option<i32>,
    },
}
