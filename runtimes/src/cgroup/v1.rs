//! cgroup v1: the task gets a directory `<mount>/<parent>/<name>` in every
//! hierarchy it uses (controllers mounted together share one directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::fsio::{self, CgroupError};
use super::{CgroupDir, CgroupStats, Limits, TaskCgroup, Version};

pub(super) fn create(
    mounts: &BTreeMap<String, PathBuf>,
    parent: &str,
    name: &str,
    limits: &Limits,
) -> Result<TaskCgroup, CgroupError> {
    // Group the controllers the task uses by hierarchy (cpu and cpuacct
    // are often mounted together). cpuset is joined only to pin cores:
    // a v1 cpuset cgroup must be given cpus before anything can join it.
    let mut by_mount: BTreeMap<&Path, Vec<String>> = BTreeMap::new();
    for (controller, mount) in mounts {
        if controller == "cpuset" && limits.cpuset.is_none() {
            continue;
        }
        by_mount
            .entry(mount.as_path())
            .or_default()
            .push(controller.clone());
    }
    let mut cgroup = TaskCgroup {
        version: Version::V1,
        dirs: Vec::new(),
    };
    for (mount, controllers) in by_mount {
        let parent_dir = mount.join(parent);
        fsio::create_dir(&parent_dir)?;
        if controllers.iter().any(|c| c == "cpuset") {
            inherit_cpuset(mount, &parent_dir)?;
        }
        let dir = parent_dir.join(name);
        fsio::create_dir(&dir)?;
        cgroup.dirs.push(CgroupDir {
            path: dir.to_string_lossy().into_owned(),
            controllers,
        });
    }
    if let Err(e) = apply(&cgroup, limits) {
        let _ = cgroup.destroy(Duration::from_secs(1));
        return Err(e);
    }
    Ok(cgroup)
}

/// A new v1 cpuset is empty; give it the parent's cpus and memory nodes.
fn inherit_cpuset(from: &Path, dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fsio::read(&dir.join(file))?;
        if mine.trim().is_empty() {
            let theirs = fsio::read(&from.join(file))?;
            fsio::write(&dir.join(file), theirs.trim())?;
        }
    }
    Ok(())
}

fn apply(cg: &TaskCgroup, limits: &Limits) -> Result<(), CgroupError> {
    if let Some(dir) = cg.dir_for("cpu") {
        if let Some(shares) = limits.cpu_shares {
            fsio::write(&dir.join("cpu.shares"), &shares.max(2).to_string())?;
        }
        if let Some((quota, period)) = limits.cpu_quota {
            fsio::write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
            fsio::write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
    }
    if let (Some(dir), Some(cpus)) = (cg.dir_for("cpuset"), &limits.cpuset) {
        let parent = dir.parent().unwrap_or(dir);
        let mems = fsio::read(&parent.join("cpuset.mems"))?;
        fsio::write(&dir.join("cpuset.mems"), mems.trim())?;
        fsio::write(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(dir) = cg.dir_for("memory") {
        if let Some(max) = limits.memory_max {
            fsio::write(&dir.join("memory.limit_in_bytes"), &max.to_string())?;
            // With swap accounting, memory+swap gets the same limit: no swap.
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                fsio::write(&memsw, &max.to_string())?;
            }
        }
        if let Some(low) = limits.memory_low {
            fsio::write(&dir.join("memory.soft_limit_in_bytes"), &low.to_string())?;
        }
    }
    if let (Some(dir), Some(max)) = (cg.dir_for("pids"), limits.pids_max) {
        fsio::write(&dir.join("pids.max"), &max.to_string())?;
    }
    if let (Some(dir), Some(rules)) = (cg.dir_for("devices"), &limits.devices) {
        fsio::write(&dir.join("devices.deny"), "a")?;
        for rule in rules {
            fsio::write(&dir.join("devices.allow"), &rule.v1_line())?;
        }
    }
    Ok(())
}

pub(super) fn kill_all(cg: &TaskCgroup, deadline: Instant) -> Result<(), CgroupError> {
    let freezer = cg.dir_for("freezer");
    loop {
        if let Some(dir) = freezer {
            set_freezer(dir, "FROZEN", deadline)?;
        }
        let pids = cg.pids()?;
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(dir) = freezer {
            set_freezer(dir, "THAWED", deadline)?;
        }
        // Frozen, nothing could fork in between: one round kills all.
        // Without a freezer, a process may have forked while the list was
        // killed; go round again until nothing new appears.
        if freezer.is_some() || pids.is_empty() || Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn set_freezer(dir: &Path, state: &'static str, deadline: Instant) -> Result<(), CgroupError> {
    let file = dir.join("freezer.state");
    let mut pause = Duration::from_millis(1);
    loop {
        fsio::write(&file, state)?;
        if fsio::read(&file)?.trim() == state {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = fsio::write(&file, "THAWED");
            return Err(CgroupError::Freezer {
                path: dir.to_owned(),
                state,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

pub(super) fn oom_kills(dir: &Path) -> u64 {
    fsio::keyed(&dir.join("memory.oom_control"), "oom_kill")
}

pub(super) fn stats(cg: &TaskCgroup) -> Result<CgroupStats, CgroupError> {
    let mut s = CgroupStats::default();
    if let Some(dir) = cg.dir_for("cpuacct") {
        s.cpu_usage_ns = fsio::read_u64(&dir.join("cpuacct.usage")).unwrap_or(0);
        let tick_ns = 1_000_000_000 / clock_ticks();
        let stat = dir.join("cpuacct.stat");
        s.cpu_user_ns = fsio::keyed(&stat, "user").saturating_mul(tick_ns);
        s.cpu_system_ns = fsio::keyed(&stat, "system").saturating_mul(tick_ns);
    }
    if let Some(dir) = cg.dir_for("cpu") {
        let stat = dir.join("cpu.stat");
        s.throttled_periods = fsio::keyed(&stat, "nr_throttled");
        s.throttled_ns = fsio::keyed(&stat, "throttled_time");
    }
    if let Some(dir) = cg.dir_for("memory") {
        let stat = dir.join("memory.stat");
        s.memory_bytes = fsio::read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
        s.memory_rss_bytes = fsio::keyed(&stat, "total_rss");
        s.memory_cache_bytes = fsio::keyed(&stat, "total_cache");
        s.memory_swap_bytes = fsio::keyed(&stat, "total_swap");
        s.memory_peak_bytes = fsio::read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
    }
    if let Some(dir) = cg.dir_for("pids") {
        s.pids = fsio::read_u64(&dir.join("pids.current")).unwrap_or(0);
    }
    Ok(s)
}

/// `USER_HZ`, the unit of `cpuacct.stat`.
fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}
