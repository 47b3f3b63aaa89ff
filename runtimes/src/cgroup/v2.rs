//! cgroup v2: one directory per task under `<root>/<parent>`, controllers
//! enabled through `cgroup.subtree_control` on the way down.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::fsio::{self, CgroupError};
use super::{CgroupDir, CgroupStats, Limits, TaskCgroup, Version, shares_to_weight};

/// Controllers wren enables for task cgroups, when the node has them.
const WANTED: &[&str] = &["cpu", "cpuset", "memory", "pids"];

/// Controllers listed in `<dir>/cgroup.controllers`.
pub(super) fn controllers(dir: &Path) -> Result<BTreeSet<String>, CgroupError> {
    let text = fsio::read(&dir.join("cgroup.controllers"))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

pub(super) fn create(
    root: &Path,
    available: &BTreeSet<String>,
    device_bpf: bool,
    parent: &str,
    name: &str,
    limits: &Limits,
) -> Result<TaskCgroup, CgroupError> {
    let enable: Vec<&str> = WANTED
        .iter()
        .copied()
        .filter(|c| available.contains(*c))
        .collect();
    let parent_dir = root.join(parent);
    fsio::create_dir(&parent_dir)?;
    if !enable.is_empty() {
        let line = enable
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        fsio::write(&root.join("cgroup.subtree_control"), &line)?;
        fsio::write(&parent_dir.join("cgroup.subtree_control"), &line)?;
    }
    let dir = parent_dir.join(name);
    fsio::create_dir(&dir)?;
    let cgroup = TaskCgroup {
        version: Version::V2,
        dirs: vec![CgroupDir {
            path: dir.to_string_lossy().into_owned(),
            controllers: enable.iter().map(|c| c.to_string()).collect(),
        }],
    };
    let devices = match (&limits.devices, device_bpf) {
        (Some(rules), true) => super::bpf::attach(&dir, rules),
        _ => Ok(()),
    };
    if let Err(e) = devices.and_then(|()| apply(&dir, &enable, limits)) {
        let _ = fsio::remove_dir(&dir, Instant::now());
        return Err(e);
    }
    Ok(cgroup)
}

fn apply(dir: &Path, enabled: &[&str], limits: &Limits) -> Result<(), CgroupError> {
    let has = |c: &str| enabled.contains(&c);
    if has("cpu") {
        if let Some(shares) = limits.cpu_shares {
            fsio::write(
                &dir.join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        }
        if let Some((quota, period)) = limits.cpu_quota {
            fsio::write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
        }
    }
    if has("cpuset")
        && let Some(cpus) = &limits.cpuset
    {
        fsio::write(&dir.join("cpuset.cpus"), cpus)?;
    }
    if has("memory") {
        if let Some(max) = limits.memory_max {
            fsio::write(&dir.join("memory.max"), &max.to_string())?;
            // No swap: a task that exceeds its memory is OOM-killed, not
            // slowed to a crawl on an SD card.
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                fsio::write(&swap, "0")?;
            }
            // An OOM kill takes the whole task, not one random process
            // of it: the task then reports OOM as one unit.
            let group = dir.join("memory.oom.group");
            if group.exists() {
                fsio::write(&group, "1")?;
            }
        }
        if let Some(low) = limits.memory_low {
            fsio::write(&dir.join("memory.low"), &low.to_string())?;
        }
    }
    if has("pids")
        && let Some(max) = limits.pids_max
    {
        fsio::write(&dir.join("pids.max"), &max.to_string())?;
    }
    Ok(())
}

pub(super) fn populated(dir: &Path) -> Result<bool, CgroupError> {
    let path = dir.join("cgroup.events");
    match fsio::read(&path) {
        Ok(text) => Ok(text.lines().any(|l| l.trim() == "populated 1")),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn kill_all(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        return fsio::write(&kill_file, "1");
    }
    // Before Linux 5.14: freeze, kill every listed process, thaw.
    let freeze = dir.join("cgroup.freeze");
    fsio::write(&freeze, "1")?;
    let mut pause = Duration::from_millis(1);
    while !fsio::read(&dir.join("cgroup.events"))?
        .lines()
        .any(|l| l.trim() == "frozen 1")
    {
        if Instant::now() >= deadline {
            let _ = fsio::write(&freeze, "0");
            return Err(CgroupError::Freezer {
                path: dir.to_owned(),
                state: "frozen",
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    for pid in fsio::read(&dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    fsio::write(&freeze, "0")
}

pub(super) fn oom_kills(dir: &Path) -> u64 {
    fsio::keyed(&dir.join("memory.events"), "oom_kill")
}

pub(super) fn stats(dir: &Path) -> Result<CgroupStats, CgroupError> {
    let cpu = dir.join("cpu.stat");
    let mem = dir.join("memory.stat");
    let read_or_zero = |file: &str| fsio::read_u64(&dir.join(file)).unwrap_or(0);
    Ok(CgroupStats {
        cpu_usage_ns: fsio::keyed(&cpu, "usage_usec").saturating_mul(1000),
        cpu_user_ns: fsio::keyed(&cpu, "user_usec").saturating_mul(1000),
        cpu_system_ns: fsio::keyed(&cpu, "system_usec").saturating_mul(1000),
        throttled_periods: fsio::keyed(&cpu, "nr_throttled"),
        throttled_ns: fsio::keyed(&cpu, "throttled_usec").saturating_mul(1000),
        memory_bytes: read_or_zero("memory.current"),
        memory_rss_bytes: fsio::keyed(&mem, "anon"),
        memory_cache_bytes: fsio::keyed(&mem, "file"),
        memory_swap_bytes: read_or_zero("memory.swap.current"),
        memory_peak_bytes: read_or_zero("memory.peak"),
        pids: read_or_zero("pids.current"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{DeviceRule, Hierarchies};
    use super::*;
    use std::path::PathBuf;

    /// A directory under the system temp dir that is removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("wren-cg-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Lays out what cgroupfs would show: the root's files and the files
    /// the kernel creates in `<parent>/<name>` when the controllers are on.
    fn fake_root(root: &Path, controllers: &str, parent: &str, name: &str) {
        std::fs::write(root.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        let dir = root.join(parent).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(root.join(parent).join("cgroup.subtree_control"), "").unwrap();
        for f in [
            "cgroup.procs",
            "cgroup.events",
            "cgroup.kill",
            "cpu.weight",
            "cpu.max",
            "cpu.stat",
            "cpuset.cpus",
            "memory.max",
            "memory.low",
            "memory.swap.max",
            "memory.oom.group",
            "memory.events",
            "memory.stat",
            "memory.current",
            "pids.max",
            "pids.current",
        ] {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn hierarchies(root: &Path) -> Hierarchies {
        Hierarchies {
            v1: Default::default(),
            v2: Some(root.to_owned()),
            v2_controllers: controllers(root).unwrap(),
            v2_device_bpf: false,
        }
    }

    #[test]
    fn writes_every_limit_into_the_unified_hierarchy() {
        let tmp = TempDir::new("v2");
        fake_root(
            &tmp.0,
            "cpuset cpu io memory hugetlb pids rdma misc\n",
            "wren",
            "a1.web",
        );
        let h = hierarchies(&tmp.0);
        assert_eq!(h.version(), Some(Version::V2));
        let limits = Limits {
            cpu_shares: Some(500),
            cpu_quota: Some((100_000, 100_000)),
            cpuset: Some("0".into()),
            memory_max: Some(256 << 20),
            memory_low: Some(128 << 20),
            pids_max: Some(64),
            devices: Some(vec![DeviceRule {
                block: false,
                major: 1,
                minor: 7,
                mknod: false,
            }]),
        };
        let cg = h.create("wren", "a1.web", &limits).unwrap();
        let dir = tmp.0.join("wren/a1.web");
        assert_eq!(cg.version, Version::V2);
        assert_eq!(cg.dirs.len(), 1);
        assert_eq!(cg.dirs[0].path, dir.to_string_lossy());
        assert_eq!(
            read(tmp.0.join("cgroup.subtree_control")),
            "+cpu +cpuset +memory +pids"
        );
        assert_eq!(
            read(tmp.0.join("wren/cgroup.subtree_control")),
            "+cpu +cpuset +memory +pids"
        );
        assert_eq!(
            read(dir.join("cpu.weight")),
            shares_to_weight(500).to_string()
        );
        assert_eq!(read(dir.join("cpu.max")), "100000 100000");
        assert_eq!(read(dir.join("cpuset.cpus")), "0");
        assert_eq!(read(dir.join("memory.max")), (256u64 << 20).to_string());
        assert_eq!(read(dir.join("memory.low")), (128u64 << 20).to_string());
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("memory.oom.group")), "1");
        assert_eq!(read(dir.join("pids.max")), "64");
        assert_eq!(cg.procs_files(), vec![dir.join("cgroup.procs")]);
    }

    #[test]
    fn missing_controllers_are_skipped_not_written() {
        let tmp = TempDir::new("v2-bare");
        fake_root(&tmp.0, "memory\n", "wren", "t");
        let h = hierarchies(&tmp.0);
        let limits = Limits {
            cpu_shares: Some(100),
            pids_max: Some(10),
            memory_max: Some(1 << 20),
            ..Limits::default()
        };
        let cg = h.create("wren", "t", &limits).unwrap();
        let dir = tmp.0.join("wren/t");
        assert_eq!(read(tmp.0.join("cgroup.subtree_control")), "+memory");
        assert_eq!(read(dir.join("cpu.weight")), "");
        assert_eq!(read(dir.join("pids.max")), "");
        assert_eq!(read(dir.join("memory.max")), (1u64 << 20).to_string());
        assert_eq!(cg.dirs[0].controllers, vec!["memory".to_string()]);
    }

    #[test]
    fn kill_uses_cgroup_kill_and_stats_parse() {
        let tmp = TempDir::new("v2-kill");
        fake_root(&tmp.0, "cpu memory pids\n", "wren", "k");
        let h = hierarchies(&tmp.0);
        let cg = h.create("wren", "k", &Limits::default()).unwrap();
        let dir = tmp.0.join("wren/k");
        std::fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        cg.kill_all(Duration::from_secs(1)).unwrap();
        assert_eq!(read(dir.join("cgroup.kill")), "1");
        std::fs::write(dir.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 9\nnr_throttled 3\nthrottled_usec 42\n").unwrap();
        std::fs::write(dir.join("memory.current"), "4096\n").unwrap();
        std::fs::write(dir.join("memory.stat"), "anon 1024\nfile 2048\n").unwrap();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(dir.join("pids.current"), "3\n").unwrap();
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu_usage_ns, 1_500_000);
        assert_eq!(s.cpu_user_ns, 1_000_000);
        assert_eq!(s.cpu_system_ns, 500_000);
        assert_eq!((s.throttled_periods, s.throttled_ns), (3, 42_000));
        assert_eq!(
            (s.memory_bytes, s.memory_rss_bytes, s.memory_cache_bytes),
            (4096, 1024, 2048)
        );
        assert_eq!(s.pids, 3);
        assert_eq!(cg.oom_kills(), 1);
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(cg.is_populated().unwrap());
    }
}
