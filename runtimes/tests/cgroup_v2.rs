//! cgroup v2 for real: this build machine is a v1 hybrid, so the test
//! mounts a cgroup2 file system of its own and runs a task in it. The
//! unified hierarchy here owns no resource controller (they are bound to
//! v1), which also exercises the policy: the task runs, and the missing
//! controllers are reported. The v2 limit files are unit-tested against a
//! temporary directory in `src/cgroup/v2.rs`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use nix::mount::{MntFlags, MsFlags};
use wren_runtimes::Driver;
use wren_runtimes::cgroup::{Hierarchies, Version};
use wren_runtimes::exec::ExecDriver;

struct Cgroup2Mount(PathBuf);

impl Drop for Cgroup2Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_task_runs_and_is_killed_in_a_real_cgroup2_hierarchy() {
    let Some(mut caps) = isolation_caps() else {
        return;
    };
    let tmp = TempDir::new("cg2");
    let mnt = tmp.0.join("cgroup2");
    std::fs::create_dir_all(&mnt).unwrap();
    if let Err(e) = nix::mount::mount(
        Some("cgroup2"),
        &mnt,
        Some("cgroup2"),
        MsFlags::empty(),
        None::<&str>,
    ) {
        if in_ci() {
            panic!("CI=true and mounting cgroup2 failed: {e}");
        }
        eprintln!("skipping: cannot mount cgroup2: {e}");
        return;
    }
    let mount = Cgroup2Mount(mnt.clone());
    let controllers = std::fs::read_to_string(mnt.join("cgroup.controllers")).unwrap();
    caps.cgroups = Hierarchies {
        v1: Default::default(),
        v2: Some(mnt.clone()),
        v2_controllers: controllers.split_whitespace().map(str::to_owned).collect(),
        v2_device_bpf: wren_runtimes::cgroup::device_bpf_supported(),
    };
    assert_eq!(caps.cgroups.version(), Some(Version::V2));
    let driver = ExecDriver::new(runtime(&tmp.0, caps.clone()));
    let spec = spec(
        &tmp.0,
        &alloc_id("v2"),
        "v2",
        "exec",
        probe(&["ignore-term", "2"], &[]),
    );
    let run = driver.start(&spec).unwrap();
    if !caps.cgroups.has("memory") {
        assert!(
            run.events
                .iter()
                .any(|e| e.kind == "Isolation Degraded" && e.message.contains("memory")),
            "{:?}",
            run.events
        );
    }
    wait_for_text(
        &stdout_log(&spec),
        "ignoring SIGTERM, children",
        Duration::from_secs(30),
    );

    let dir = PathBuf::from(&run.handle.cgroup.dirs[0].path);
    assert!(dir.starts_with(&mnt), "{}", dir.display());
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(
        procs.lines().count(),
        3,
        "the task and its two children: {procs}"
    );
    assert!(
        std::fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("populated 1")
    );
    wait_until("cpu accounting", Duration::from_secs(10), || {
        driver
            .stats(&run.handle)
            .map(|s| s.usage.cpu_usage_ns > 0)
            .unwrap_or(false)
    });

    let exit = block_on(driver.stop(&run.handle, "SIGTERM", Duration::from_millis(300))).unwrap();
    assert_eq!(
        exit.signal,
        Some(9),
        "cgroup.kill after the timeout: {exit:?}"
    );
    assert!(
        std::fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("populated 0")
    );
    driver.destroy(&run.handle).unwrap();
    assert!(!dir.exists());

    // Devices: with neither a mount namespace (the node's /dev is visible)
    // nor Landlock, the BPF device program alone allows /dev/full and
    // refuses /dev/ptmx.
    if !caps.cgroups.v2_device_bpf {
        if in_ci() {
            panic!("CI=true and this kernel does not load cgroup device bpf programs");
        }
        eprintln!("skipping the device part: no cgroup device bpf programs here");
    } else {
        let mut bare = caps.clone();
        bare.mount_ns = false;
        bare.landlock_abi = None;
        let driver = ExecDriver::new(runtime(&tmp.0, bare));
        let actions = [
            "open",
            "/dev/full",
            "--",
            "open",
            "/dev/ptmx",
            "--",
            "open",
            "/dev/null",
        ];
        let mut dev_spec = common::spec(
            &tmp.0,
            &alloc_id("v2dev"),
            "v2dev",
            "exec",
            probe(&actions, &[]),
        );
        dev_spec.devices = vec!["/dev/full".into()];
        let (exit, out) = run_to_end(&driver, &dev_spec);
        assert_eq!(exit.exit_code, 0, "{out}");
        assert_eq!(
            out,
            "open /dev/full: ok\nopen /dev/ptmx: EPERM\nopen /dev/null: ok\n"
        );
    }
    let _ = std::fs::remove_dir(mnt.join("wren-test"));
    drop(mount);
}
