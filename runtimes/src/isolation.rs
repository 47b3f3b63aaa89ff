//! From a task spec to its confinement: the policy decision for what the
//! node lacks, the user, the directories, the device nodes, the Landlock
//! rules and the cgroup limits. Used by `exec` and `qemu`; `raw_exec` only
//! gets a cgroup (see [`accounting_only`]).
//!
//! The defaults applied here all come from [`crate::policy`].

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wren_model::TaskEvent;

use crate::cgroup::{DeviceRule, Limits};
use crate::driver::{DriverError, TaskSpec, event};
use crate::landlock;
use crate::policy::Access;
use crate::policy::{Layer, OnMissing};
use crate::runtime::{Runtime, set_mode};
use crate::shim::spec::{
    DevNode, DevNodeNumbers, Ids, LandlockRule, LandlockSpec, PrivateDev, Rlimit, RlimitKind,
    Sandbox,
};
use crate::users;

/// `PATH` for tasks whose environment sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a sandboxed driver asks for.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub spec: &'a TaskSpec,
    /// The program, as written (resolved against the task dir and PATH).
    pub command: String,
    /// The working directory, when not the task dir.
    pub work_dir: Option<String>,
    /// `pids.max`.
    pub pids_limit: u32,
    /// Hard memory limit in bytes instead of the task's (qemu: guest + overhead).
    pub memory_max: Option<u64>,
    /// Files outside the task dir the task may read (qemu images).
    pub read_only_files: Vec<PathBuf>,
    /// Devices the driver itself needs (qemu: `/dev/kvm`).
    pub extra_devices: Vec<PathBuf>,
}

/// A confined task, ready for [`Runtime::launch`](crate::runtime::Runtime).
#[derive(Debug)]
pub(crate) struct Isolated {
    pub program: String,
    pub env: BTreeMap<String, String>,
    pub sandbox: Sandbox,
    pub limits: Limits,
    pub pid_ns: bool,
    pub uid_lease: Option<PathBuf>,
    pub events: Vec<TaskEvent>,
}

fn setup(spec: &TaskSpec, message: impl Into<String>) -> DriverError {
    DriverError::Setup {
        task: spec.task.name.clone(),
        message: message.into(),
    }
}

/// Confines an exec or qemu task as the policy says.
pub(crate) fn isolate(rt: &Runtime, req: Request<'_>) -> Result<Isolated, DriverError> {
    let spec = req.spec;
    let caps = &rt.caps;
    let policy = &rt.config.policy;
    if !caps.root {
        return Err(setup(spec, "the agent must run as root to isolate tasks"));
    }
    let cores = !spec.resources.cores.is_empty() || spec.task.resources.cores > 0;
    let missing = caps.missing_layers(cores);
    if missing.contains(&Layer::Cgroups) {
        return Err(DriverError::Refused {
            task: spec.task.name.clone(),
            missing: Layer::Cgroups.describe().to_owned(),
        });
    }
    if policy.on_missing == OnMissing::Refuse {
        let essential: Vec<&str> = missing
            .iter()
            .filter(|l| l.is_essential())
            .map(|l| l.describe())
            .collect();
        if !essential.is_empty() {
            return Err(DriverError::Refused {
                task: spec.task.name.clone(),
                missing: essential.join("; "),
            });
        }
    }
    let mut events: Vec<TaskEvent> = missing.iter().map(|l| degraded(*l, caps)).collect();

    let user = if spec.user().is_empty() {
        let owner = Runtime::task_key(spec);
        users::lease(&rt.uid_dir(), policy.dynamic_uids, &owner)
            .map_err(|e| setup(spec, e.to_string()))?
    } else {
        let user = users::resolve(spec.user()).map_err(|e| setup(spec, e.to_string()))?;
        if user.uid == 0 {
            return Err(setup(
                spec,
                users::UserError::Root(spec.user().to_owned()).to_string(),
            ));
        }
        user
    };
    let release = |e: DriverError| {
        if let Some(lease) = &user.lease {
            users::release(lease);
        }
        e
    };
    let built = build(rt, &req, &user, &mut events).map_err(release)?;
    Ok(Isolated {
        uid_lease: user.lease.clone(),
        events,
        ..built
    })
}

fn degraded(layer: Layer, caps: &crate::host::HostCaps) -> TaskEvent {
    let mut e = event("Isolation Degraded", layer.describe());
    let detail = match layer {
        Layer::Landlock => caps.landlock_error.clone(),
        Layer::LandlockPartial => caps.landlock_abi.map(|abi| {
            format!(
                "abi {abi} cannot restrict: {}",
                landlock::missing_rights(abi).join(", ")
            )
        }),
        Layer::Cgroups => caps.cgroups_error.clone(),
        _ => None,
    };
    if let Some(d) = detail {
        e.details.insert("detail".to_owned(), d);
    }
    e.details.insert("layer".to_owned(), format!("{layer:?}"));
    e
}

fn build(
    rt: &Runtime,
    req: &Request<'_>,
    user: &users::TaskUser,
    events: &mut Vec<TaskEvent>,
) -> Result<Isolated, DriverError> {
    let spec = req.spec;
    let caps = &rt.caps;
    let policy = &rt.config.policy;
    prepare_dirs(spec, user)?;
    let task_dir = spec.task_dir.clone();
    let mount_ns = caps.mount_ns;
    let tmp = task_dir.join("tmp");
    // The task's tmp is bound over /tmp, unless that would hide the task's
    // own directories (a data dir under /tmp, as in tests).
    let bind_tmp =
        mount_ns && !spec.alloc_dir.starts_with("/tmp") && !spec.task_dir.starts_with("/tmp");

    let mut env = spec.env.clone();
    env.entry("PATH".to_owned())
        .or_insert_with(|| DEFAULT_PATH.to_owned());
    let tmpdir = if bind_tmp {
        PathBuf::from("/tmp")
    } else {
        tmp.clone()
    };
    env.entry("TMPDIR".to_owned())
        .or_insert_with(|| tmpdir.to_string_lossy().into_owned());

    let program = resolve_program(
        &req.command,
        &task_dir,
        env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH),
    )
    .map_err(|m| setup(spec, m))?;
    let work_dir = match &req.work_dir {
        Some(w) if Path::new(w).is_absolute() => PathBuf::from(w),
        Some(w) => task_dir.join(w),
        None => task_dir.clone(),
    };

    // Devices: the policy's defaults, the task's, the driver's.
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    let all = policy
        .default_devices
        .iter()
        .chain(&spec.devices)
        .chain(&req.extra_devices);
    for path in all {
        let numbers = device_numbers(path).map_err(|m| setup(spec, m))?;
        let path_s = path.to_string_lossy().into_owned();
        if !nodes.iter().any(|n: &DevNode| n.path == path_s) {
            nodes.push(DevNode {
                path: path_s,
                numbers,
            });
            rules.push(DeviceRule {
                block: numbers.block,
                major: numbers.major,
                minor: numbers.minor,
                mknod: true,
            });
        }
    }

    let landlock = caps.landlock_abi.map(|abi| {
        let mut ll = LandlockSpec {
            abi,
            rules: Vec::new(),
        };
        let mut allow = |path: &Path, access: Access| {
            let is_dir = path.is_dir();
            let rights = landlock::rule_rights(landlock::rights(access), abi, is_dir);
            if rights != 0 && path.exists() {
                ll.rules.push(LandlockRule {
                    path: path.to_string_lossy().into_owned(),
                    rights,
                });
            }
        };
        for p in &policy.read_only_paths {
            allow(p, Access::ReadExec);
        }
        allow(Path::new(crate::policy::PROC.0), crate::policy::PROC.1);
        allow(&task_dir, Access::ReadWrite);
        for (dir, access, _) in crate::policy::ALLOC_SHARED {
            allow(&spec.alloc_dir.join(dir), *access);
        }
        for f in &req.read_only_files {
            allow(f, Access::Read);
        }
        ll
    });
    let mut landlock = landlock;
    if let Some(ll) = landlock.as_mut() {
        // Paths that exist only inside the task's mount namespace (or that
        // are the host's when there is none): not checked here.
        for n in &nodes {
            ll.rules.push(LandlockRule {
                path: n.path.clone(),
                rights: landlock::rule_rights(landlock::rights(Access::Device), ll.abi, false),
            });
        }
        if mount_ns {
            ll.rules.push(LandlockRule {
                path: "/dev/shm".into(),
                rights: landlock::rule_rights(landlock::rights(Access::ReadWrite), ll.abi, true),
            });
        }
        if bind_tmp {
            ll.rules.push(LandlockRule {
                path: "/tmp".into(),
                rights: landlock::rule_rights(landlock::rights(Access::ReadWrite), ll.abi, true),
            });
        }
        check_executable(&program, &policy.read_only_paths, &task_dir)
            .map_err(|m| setup(spec, m))?;
    }
    if !work_dir.is_dir() {
        return Err(setup(
            spec,
            format!("work_dir {} is not a directory", work_dir.display()),
        ));
    }

    let sandbox = Sandbox {
        join: Vec::new(),
        mount_ns,
        ipc_ns: caps.ipc_ns,
        dev: mount_ns.then_some(PrivateDev {
            nodes,
            shm_bytes: policy.dev_shm_bytes,
            dev_bytes: crate::policy::DEV_TMPFS_BYTES,
        }),
        proc: mount_ns && caps.pid_ns,
        tmp: bind_tmp.then(|| tmp.to_string_lossy().into_owned()),
        ids: Some(Ids {
            uid: user.uid,
            gid: user.gid,
            groups: vec![user.gid],
        }),
        no_new_privs: true,
        landlock,
        rlimits: vec![
            Rlimit {
                resource: RlimitKind::NoFile,
                soft: policy.nofile,
                hard: policy.nofile,
            },
            Rlimit {
                resource: RlimitKind::Core,
                soft: crate::policy::CORE_LIMIT,
                hard: crate::policy::CORE_LIMIT,
            },
        ],
        work_dir: work_dir.to_string_lossy().into_owned(),
    };
    let limits = limits(spec, req.pids_limit, req.memory_max, Some(rules));
    if limits.memory_max.is_none() {
        events.push(event("Isolation Degraded", "the task sets no memory limit"));
    }
    Ok(Isolated {
        program: program.to_string_lossy().into_owned(),
        env,
        sandbox,
        limits,
        pid_ns: caps.pid_ns,
        uid_lease: None,
        events: Vec::new(),
    })
}

/// Cgroup limits from the task's resources.
pub(crate) fn limits(
    spec: &TaskSpec,
    pids: u32,
    memory_max: Option<u64>,
    devices: Option<Vec<DeviceRule>>,
) -> Limits {
    let r = &spec.resources;
    let asked = &spec.task.resources;
    let cpu = if r.cpu > 0 { r.cpu } else { asked.cpu };
    let cores: Vec<u32> = r.cores.clone();
    let core_count = if cores.is_empty() {
        asked.cores
    } else {
        cores.len() as u32
    };
    let memory = if r.memory_mb > 0 {
        r.memory_mb
    } else {
        asked.memory_mb
    };
    let memory_hard = [r.memory_max_mb, asked.memory_max_mb, memory]
        .into_iter()
        .find(|m| *m > 0)
        .unwrap_or(0);
    const MIB: u64 = 1024 * 1024;
    let period = 100_000;
    Limits {
        cpu_shares: (cpu > 0).then_some(u64::from(cpu)),
        cpu_quota: (core_count > 0).then_some((u64::from(core_count) * period, period)),
        cpuset: (!cores.is_empty()).then(|| {
            cores
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }),
        memory_max: memory_max.or((memory_hard > 0).then_some(memory_hard.saturating_mul(MIB))),
        memory_low: (memory_hard > memory && memory > 0).then_some(memory.saturating_mul(MIB)),
        pids_max: Some(u64::from(pids)),
        devices,
    }
}

/// Limits for raw_exec: a cgroup for accounting and killing, nothing else.
pub(crate) fn accounting_only() -> Limits {
    Limits::default()
}

/// Creates the task's directories and hands the task dir to its user:
/// `<task>` (0700, owned by the task), `<task>/tmp`, and the shared
/// `alloc/data`, `alloc/tmp` (1777) and `alloc/logs` (0755, root's).
fn prepare_dirs(spec: &TaskSpec, user: &users::TaskUser) -> Result<(), DriverError> {
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| DriverError::Io {
            op: "create",
            path: p.to_owned(),
            source,
        })
    };
    let task_dir = &spec.task_dir;
    mkdir(&task_dir.join("tmp"))?;
    for (dir, _, mode) in crate::policy::ALLOC_SHARED {
        let p = spec.alloc_dir.join(dir);
        mkdir(&p)?;
        set_mode(&p, *mode)?;
    }
    chown_tree(task_dir, user.uid, user.gid)?;
    set_mode(task_dir, 0o700)?;
    // Every directory above the task dir must let the task's user pass.
    let mut p = task_dir.parent();
    while let Some(dir) = p {
        let meta = std::fs::metadata(dir).map_err(|source| DriverError::Io {
            op: "stat",
            path: dir.to_owned(),
            source,
        })?;
        if meta.permissions().mode() & 0o001 == 0 && meta.uid() != user.uid {
            return Err(setup(
                spec,
                format!(
                    "task dir {} is not reachable by uid {}: {} has mode {:o}",
                    task_dir.display(),
                    user.uid,
                    dir.display(),
                    meta.permissions().mode() & 0o7777
                ),
            ));
        }
        p = dir.parent();
    }
    Ok(())
}

/// `lchown -R`: symbolic links are changed, never followed.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), DriverError> {
    let io = |op: &'static str| {
        move |source| DriverError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io("chown"))?;
    let meta = std::fs::symlink_metadata(path).map_err(io("stat"))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io("read"))? {
            chown_tree(&entry.map_err(io("read"))?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The numbers of a device node under `/dev`.
fn device_numbers(path: &Path) -> Result<DevNodeNumbers, String> {
    if !path.starts_with("/dev/")
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("device {} is not under /dev", path.display()));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("device {}: {e}", path.display()))?;
    let ft = meta.file_type();
    if !ft.is_char_device() && !ft.is_block_device() {
        return Err(format!("{} is not a device node", path.display()));
    }
    let rdev = meta.rdev();
    Ok(DevNodeNumbers {
        block: ft.is_block_device(),
        major: nix::sys::stat::major(rdev) as u32,
        minor: nix::sys::stat::minor(rdev) as u32,
    })
}

/// Resolves `command`: absolute as is, with a slash relative to the task
/// dir, else searched in `path`.
pub(crate) fn resolve_program(
    command: &str,
    task_dir: &Path,
    path: &str,
) -> Result<PathBuf, String> {
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let candidate = if Path::new(command).is_absolute() {
        PathBuf::from(command)
    } else if command.contains('/') {
        task_dir.join(command)
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(command))
            .find(|p| is_exec(p))
            .ok_or_else(|| format!("command {command:?} not found in PATH {path}"))?
    };
    if is_exec(&candidate) {
        Ok(candidate)
    } else {
        Err(format!(
            "command {} is not an executable file",
            candidate.display()
        ))
    }
}

/// Landlock lets the task execute only under the system paths and its task
/// dir: say so now rather than with EACCES from exec.
fn check_executable(program: &Path, system: &[PathBuf], task_dir: &Path) -> Result<(), String> {
    let real = program
        .canonicalize()
        .map_err(|e| format!("command {}: {e}", program.display()))?;
    let allowed = system
        .iter()
        .chain(std::iter::once(&task_dir.to_path_buf()))
        .filter_map(|p| p.canonicalize().ok())
        .any(|p| real.starts_with(p));
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "command {} is outside the paths the sandbox may execute from (the task dir and {})",
            program.display(),
            system
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}
