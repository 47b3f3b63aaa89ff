//! Task cgroups on v1 and v2: find the hierarchies, create a task's cgroup
//! with its limits, list and kill its processes, read its usage, remove it.
//!
//! Paths come from a parsed `/proc/self/mountinfo` (or are handed in), so
//! tests point everything at a temporary directory. The processes join the
//! cgroup themselves, in the forked child before `exec` (see
//! the `sandbox` module); this module never moves a process.

mod bpf;
mod fsio;
mod v1;
mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minicbor::{Decode, Encode};

pub use fsio::CgroupError;

/// Controllers a task cgroup uses, by their v1 names.
pub const CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer",
];

/// The cgroup hierarchies of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1 mount point of each controller (`cpu` -> `/sys/fs/cgroup/cpu`).
    pub v1: BTreeMap<String, PathBuf>,
    /// The cgroup2 mount point, if any.
    pub v2: Option<PathBuf>,
    /// Controllers available at the cgroup2 root (`cgroup.controllers`).
    pub v2_controllers: BTreeSet<String>,
    /// Device rules can be enforced in v2 by a BPF device program.
    pub v2_device_bpf: bool,
}

/// Whether the kernel loads cgroup device BPF programs for us (v2 device
/// rules).
pub fn device_bpf_supported() -> bool {
    bpf::supported()
}

/// Which hierarchy task cgroups live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum Version {
    /// One hierarchy per controller (or per group of controllers).
    #[n(1)]
    V1,
    /// The unified hierarchy.
    #[n(2)]
    V2,
}

impl Hierarchies {
    /// Reads the hierarchies of the calling process's mount namespace.
    pub fn detect() -> Result<Hierarchies, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fsio::read(path)?;
        let mut h = Hierarchies::from_mountinfo(&text);
        if let Some(root) = &h.v2 {
            h.v2_controllers = v2::controllers(root)?;
            h.v2_device_bpf = bpf::supported();
        }
        Ok(h)
    }

    /// Parses mountinfo text (see proc(5)): `cgroup` lines give v1
    /// controllers from their super options, a `cgroup2` line the unified
    /// root. Named v1 hierarchies (`name=systemd`) carry no controller and
    /// are ignored. Malformed lines are skipped.
    pub fn from_mountinfo(text: &str) -> Hierarchies {
        let mut h = Hierarchies::default();
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount_point) = left.split(' ').nth(4) else {
                continue;
            };
            let mut right = right.split(' ');
            let (Some(fstype), Some(_source), Some(options)) =
                (right.next(), right.next(), right.next())
            else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
            match fstype {
                "cgroup2" if h.v2.is_none() => h.v2 = Some(mount_point),
                "cgroup" => {
                    for opt in options.split(',') {
                        if CONTROLLERS.contains(&opt) {
                            h.v1.entry(opt.to_owned())
                                .or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// The hierarchy task cgroups should use: v2 when the unified
    /// hierarchy owns a resource controller (a v2 or unified-mode node),
    /// else v1 when any v1 controller is mounted (v1 and hybrid nodes),
    /// else a bare cgroup2 (accounting and kill only), else none.
    pub fn version(&self) -> Option<Version> {
        let v2_owns = ["cpu", "memory", "pids"]
            .iter()
            .any(|c| self.v2_controllers.contains(*c));
        if self.v2.is_some() && v2_owns {
            Some(Version::V2)
        } else if !self.v1.is_empty() {
            Some(Version::V1)
        } else if self.v2.is_some() {
            Some(Version::V2)
        } else {
            None
        }
    }

    /// Whether `controller` (v1 name; `cpuacct` and `freezer` map to the v2
    /// core) is usable in the chosen version.
    pub fn has(&self, controller: &str) -> bool {
        match self.version() {
            Some(Version::V1) => self.v1.contains_key(controller),
            Some(Version::V2) => match controller {
                // v2 has cpu accounting and freezing in its core files.
                "cpuacct" | "freezer" => true,
                // Devices are a BPF program in v2, not a controller.
                "devices" => self.v2_device_bpf,
                other => self.v2_controllers.contains(other),
            },
            None => false,
        }
    }

    /// The cgroup `<parent>/<name>` in every hierarchy it could have been
    /// created in, whether it exists or not (to clean up after a task the
    /// agent lost track of).
    pub fn existing(&self, parent: &str, name: &str) -> Result<TaskCgroup, CgroupError> {
        check_name(parent)?;
        check_name(name)?;
        let dirs = match self.version() {
            Some(Version::V2) => {
                let root = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
                vec![root.join(parent).join(name)]
            }
            Some(Version::V1) => {
                let mounts: BTreeSet<&PathBuf> = self.v1.values().collect();
                mounts
                    .into_iter()
                    .map(|m| m.join(parent).join(name))
                    .collect()
            }
            None => return Err(CgroupError::NoHierarchy),
        };
        let version = self.version().ok_or(CgroupError::NoHierarchy)?;
        let dirs = dirs
            .into_iter()
            .map(|d| {
                let controllers = match version {
                    Version::V2 => Vec::new(),
                    Version::V1 => self
                        .v1
                        .iter()
                        .filter(|(_, m)| d.starts_with(m))
                        .map(|(c, _)| c.clone())
                        .collect(),
                };
                CgroupDir {
                    path: d.to_string_lossy().into_owned(),
                    controllers,
                }
            })
            .collect();
        Ok(TaskCgroup { version, dirs })
    }

    /// Creates the cgroup `<parent>/<name>` with `limits` in every
    /// hierarchy the task uses. A limit whose controller is missing is
    /// skipped (the caller's policy decided that is acceptable). On error,
    /// whatever was created is removed again.
    pub fn create(
        &self,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<TaskCgroup, CgroupError> {
        check_name(parent)?;
        check_name(name)?;
        match self.version() {
            Some(Version::V2) => {
                let root = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
                v2::create(
                    root,
                    &self.v2_controllers,
                    self.v2_device_bpf,
                    parent,
                    name,
                    limits,
                )
            }
            Some(Version::V1) => v1::create(&self.v1, parent, name, limits),
            None => Err(CgroupError::NoHierarchy),
        }
    }
}

/// Mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let code = bytes
                .get(i + 1..i + 4)
                .and_then(|oct| std::str::from_utf8(oct).ok())
                .and_then(|oct| u8::from_str_radix(oct, 8).ok());
            if let Some(code) = code {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A cgroup name component: no separators, no dot-dot, not empty, short.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && !name.contains('\n');
    if ok {
        Ok(())
    } else {
        Err(CgroupError::BadName(name.to_owned()))
    }
}

/// Limits for a task cgroup; `None` leaves the kernel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Relative cpu weight as v1 shares (Nomad's MHz); v2 converts to a weight.
    pub cpu_shares: Option<u64>,
    /// A hard cap: `(quota, period)` in microseconds.
    pub cpu_quota: Option<(u64, u64)>,
    /// Cores to pin to, as a cpuset list (`0,2-3`).
    pub cpuset: Option<String>,
    /// Hard memory limit in bytes (the OOM killer acts above it).
    pub memory_max: Option<u64>,
    /// A soft reservation below the hard limit.
    pub memory_low: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids_max: Option<u64>,
    /// When set, the devices allowed; every other device is denied.
    pub devices: Option<Vec<DeviceRule>>,
}

/// A device cgroup rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// `true` for a block device, `false` for a character device.
    pub block: bool,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Allow mknod as well as read and write.
    pub mknod: bool,
}

impl DeviceRule {
    /// The v1 `devices.allow` line: `c 1:3 rw`.
    pub fn v1_line(&self) -> String {
        let kind = if self.block { 'b' } else { 'c' };
        let access = if self.mknod { "rwm" } else { "rw" };
        format!("{kind} {}:{} {access}", self.major, self.minor)
    }
}

/// One directory of a task cgroup and the controllers it carries.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct CgroupDir {
    /// Absolute path of the directory.
    #[n(0)]
    pub path: String,
    /// Controllers in this hierarchy (v1), or those enabled (v2).
    #[n(1)]
    pub controllers: Vec<String>,
}

/// A task's cgroup: one directory in v2, one per mounted hierarchy in v1.
/// Serializable so a recovered agent can find (and kill) the task again.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct TaskCgroup {
    /// Which hierarchy.
    #[n(0)]
    pub version: Version,
    /// Its directories.
    #[n(1)]
    pub dirs: Vec<CgroupDir>,
}

/// Usage of a task cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Total cpu time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// User cpu time, nanoseconds.
    pub cpu_user_ns: u64,
    /// System cpu time, nanoseconds.
    pub cpu_system_ns: u64,
    /// Periods in which the quota throttled the task.
    pub throttled_periods: u64,
    /// Time throttled, nanoseconds.
    pub throttled_ns: u64,
    /// Memory in use (anonymous, page cache, kernel), bytes.
    pub memory_bytes: u64,
    /// Anonymous memory (RSS), bytes.
    pub memory_rss_bytes: u64,
    /// Page cache, bytes.
    pub memory_cache_bytes: u64,
    /// Swap in use, bytes.
    pub memory_swap_bytes: u64,
    /// Highest memory use seen, bytes (0 where the kernel does not say).
    pub memory_peak_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
}

impl TaskCgroup {
    /// The `cgroup.procs` files a process writes itself into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| Path::new(&d.path).join("cgroup.procs"))
            .collect()
    }

    fn dir_with(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| Path::new(&d.path))
    }

    /// The directory whose `cgroup.procs` lists every task process.
    fn any_dir(&self) -> Result<&Path, CgroupError> {
        let preferred = ["freezer", "pids", "memory", "cpuacct"];
        preferred
            .iter()
            .find_map(|c| self.dir_with(c))
            .or_else(|| self.dirs.first().map(|d| Path::new(&d.path)))
            .ok_or(CgroupError::NoHierarchy)
    }

    /// Process ids in the cgroup, as the caller's PID namespace sees them.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self.any_dir()?;
        let path = dir.join("cgroup.procs");
        match fsio::read(&path) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether any process is left.
    pub fn is_populated(&self) -> Result<bool, CgroupError> {
        match self.version {
            Version::V2 => v2::populated(self.any_dir()?),
            Version::V1 => Ok(!self.pids()?.is_empty()),
        }
    }

    /// Kills every process in the cgroup with SIGKILL and waits until it is
    /// empty or `timeout` passes.
    pub fn kill_all(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        self.kill_processes(timeout)?;
        self.wait_empty(deadline)
    }

    /// Sends SIGKILL to every process in the cgroup without waiting for
    /// them to go (for a caller that reaps them itself). v2 writes
    /// `cgroup.kill` (Linux 5.14) or freezes first; v1 freezes with the
    /// freezer controller when mounted, so that nothing forks while the
    /// list is being killed.
    pub fn kill_processes(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        match self.version {
            Version::V2 => v2::kill_all(self.any_dir()?, deadline),
            Version::V1 => v1::kill_all(self, deadline),
        }
    }

    /// Polls until the cgroup is empty or the deadline passes.
    pub fn wait_empty(&self, deadline: Instant) -> Result<(), CgroupError> {
        let mut pause = Duration::from_millis(1);
        loop {
            if !self.is_populated()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let left = self.pids().unwrap_or_default();
                return Err(CgroupError::StillPopulated {
                    path: self.any_dir()?.to_path_buf(),
                    pids: left,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// How many processes the kernel's OOM killer has killed in this
    /// cgroup so far (0 when the memory controller is absent).
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = self.dir_with("memory") else {
            return 0;
        };
        match self.version {
            Version::V2 => v2::oom_kills(dir),
            Version::V1 => v1::oom_kills(dir),
        }
    }

    /// Current usage. Values whose controller is missing are zero.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match self.version {
            Version::V2 => v2::stats(self.any_dir()?),
            Version::V1 => v1::stats(self),
        }
    }

    /// Kills what is left and removes the directories (v1: every
    /// hierarchy). Missing directories are fine: destroy is idempotent.
    pub fn destroy(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        if self.dirs.iter().any(|d| Path::new(&d.path).exists()) && self.is_populated()? {
            self.kill_all(deadline.saturating_duration_since(Instant::now()))?;
        }
        for dir in &self.dirs {
            fsio::remove_dir(Path::new(&dir.path), deadline)?;
        }
        Ok(())
    }

    pub(crate) fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.dir_with(controller)
    }
}

/// Converts v1 shares (2..=262144) to a v2 weight (1..=10000), the mapping
/// runc and crun use, so a task weighs the same on either version.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid shared:17 - cgroup cgroup rw,pids
garbage line
";

    #[test]
    fn mountinfo_of_a_hybrid_node() {
        let h = Hierarchies::from_mountinfo(HYBRID);
        assert_eq!(h.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            h.v1.get("cpu"),
            Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            h.v1.get("cpuacct"),
            Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            h.v1.get("memory"),
            Some(&PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert!(!h.v1.contains_key("devices"));
        // The unified hierarchy owns no resource controller: v1 it is.
        assert_eq!(h.version(), Some(Version::V1));
        assert!(h.has("memory"));
        assert!(!h.has("freezer"));
    }

    #[test]
    fn unified_node_uses_v2() {
        let text = "31 30 0:27 / /sys/fs/cgroup rw,nosuid shared:10 - cgroup2 cgroup2 rw\n";
        let mut h = Hierarchies::from_mountinfo(text);
        h.v2_controllers = ["cpu", "memory", "pids"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(h.version(), Some(Version::V2));
        assert!(h.has("freezer") && h.has("cpuacct") && h.has("memory"));
        assert!(!h.has("devices") && !h.has("cpuset"));
        h.v2_device_bpf = true;
        assert!(h.has("devices"));
    }

    #[test]
    fn no_cgroups_at_all() {
        assert_eq!(Hierarchies::from_mountinfo("").version(), None);
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/trailing\\"), "/trailing\\");
    }

    #[test]
    fn names_cannot_escape_the_parent() {
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("alloc-1.web").is_ok());
    }

    #[test]
    fn weights_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }

    #[test]
    fn device_lines() {
        let r = DeviceRule {
            block: false,
            major: 1,
            minor: 7,
            mknod: false,
        };
        assert_eq!(r.v1_line(), "c 1:7 rw");
    }
}
