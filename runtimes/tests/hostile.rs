//! Hostile tasks are contained: each test runs the probe program doing what
//! a compromised task would try, and checks that the sandbox said no.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wren_model::Value;
use wren_runtimes::exec::ExecDriver;
use wren_runtimes::{Driver, Recovered};

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

#[test]
fn writes_outside_the_task_dir_and_reads_of_other_tasks_dirs_fail_with_eacces() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("fs");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let alloc_x = alloc_id("x");
    let alloc_y = alloc_id("y");
    // Two victims: a sibling in the same allocation and a task of another.
    let sibling = spec(&tmp.0, &alloc_x, "sibling", "exec", probe(&["sleep"], &[]));
    let other = spec(&tmp.0, &alloc_y, "other", "exec", probe(&["sleep"], &[]));
    let sibling_run = driver.start(&sibling).unwrap();
    let other_run = driver.start(&other).unwrap();

    let me = spec(&tmp.0, &alloc_x, "attacker", "exec", Value::Null);
    let unique = format!("wren-probe-{}", std::process::id());
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let attempts: Vec<(String, &str)> = vec![
        // World-writable on the host: only Landlock stands in the way.
        (format!("write /var/tmp/{unique}"), "EACCES"),
        (format!("write /tmp/{unique}"), "EACCES"),
        (format!("write /dev/shm/{unique}"), "ok"), // the task's private /dev/shm
        ("write /etc/wren-probe".to_owned(), "EACCES"),
        (
            format!("write {}", s(&me.alloc_dir.join("intruder"))),
            "EACCES",
        ),
        (
            format!("write {}", s(&me.alloc_dir.join("alloc/logs/forged"))),
            "EACCES",
        ),
        (format!("read {}", s(&sibling.task_dir)), "EACCES"),
        (
            format!("read {}", s(&sibling.task_dir.join("local/probe"))),
            "EACCES",
        ),
        (
            format!("write {}", s(&sibling.task_dir.join("local/x"))),
            "EACCES",
        ),
        (format!("read {}", s(&other.task_dir)), "EACCES"),
        (
            format!("write {}", s(&other.task_dir.join("local/x"))),
            "EACCES",
        ),
        // What the task may do.
        (
            format!("write {}", s(&me.task_dir.join("local/mine"))),
            "ok",
        ),
        (
            format!("write {}", s(&me.alloc_dir.join("alloc/data/shared"))),
            "ok",
        ),
        (
            format!("read {}", s(&me.alloc_dir.join("alloc/logs"))),
            "ok",
        ),
        ("read /etc/hostname".to_owned(), "ok"),
    ];
    let mut args: Vec<String> = Vec::new();
    for (cmd, _) in &attempts {
        if !args.is_empty() {
            args.push("--".to_owned());
        }
        args.extend(cmd.split(' ').map(str::to_owned));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut me = me;
    me.task.config = probe(&args, &[]);
    let (_, out) = run_to_end(&driver, &me);
    let got = lines(&out);
    assert_eq!(got.len(), attempts.len(), "{out}");
    for ((cmd, want), line) in attempts.iter().zip(got) {
        assert_eq!(line, format!("{cmd}: {want}"), "full output:\n{out}");
    }
    assert!(!std::path::Path::new(&format!("/var/tmp/{unique}")).exists());
    assert!(!std::path::Path::new(&format!("/tmp/{unique}")).exists());
    for run in [sibling_run, other_run] {
        block_on(driver.stop(&run.handle, "SIGKILL", Duration::ZERO)).unwrap();
        driver.destroy(&run.handle).unwrap();
    }
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("forkbomb");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let spec = spec(
        &tmp.0,
        &alloc_id("bomb"),
        "bomb",
        "exec",
        probe(&["forkbomb"], &[("pids_limit", Value::Int(24))]),
    );
    let run = driver.start(&spec).unwrap();
    let log = wait_for_text(&stdout_log(&spec), "spawn failed", Duration::from_secs(60));
    assert!(log.contains("forkbomb: spawn failed: EAGAIN"), "{log}");
    let stats = driver.stats(&run.handle).unwrap();
    assert!(stats.usage.pids <= 24, "{stats:?}");
    assert!(
        stats.usage.pids >= 20,
        "the bomb should have filled its limit: {stats:?}"
    );
    let exit = block_on(driver.stop(&run.handle, "SIGTERM", Duration::from_millis(200))).unwrap();
    assert!(exit.signal.is_some(), "{exit:?}");
    assert!(
        !run.handle.cgroup.is_populated().unwrap(),
        "the whole bomb is gone"
    );
    driver.destroy(&run.handle).unwrap();
}

#[test]
fn a_memory_hog_is_oom_killed_in_its_cgroup_and_others_are_untouched() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("oom");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let neighbor = spec(
        &tmp.0,
        &alloc_id("oom"),
        "neighbor",
        "exec",
        probe(&["alloc", "16"], &[]),
    );
    let neighbor_run = driver.start(&neighbor).unwrap();
    wait_for_text(
        &stdout_log(&neighbor),
        "allocated all 16 MB",
        Duration::from_secs(30),
    );

    let mut hog = spec(
        &tmp.0,
        &alloc_id("oom"),
        "hog",
        "exec",
        probe(&["alloc", "512"], &[]),
    );
    hog.resources.memory_mb = 48;
    let (exit, out) = run_to_end(&driver, &hog);
    assert!(exit.oom_killed, "{exit:?}\n{out}");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert_eq!(exit.exit_code, 128 + 9);
    assert!(!out.contains("allocated all"), "{out}");
    assert_eq!(exit.event().kind, "Terminated");
    assert!(exit.event().oom_killed);

    // The neighbor still runs, its memory intact.
    assert_eq!(
        driver.recover(&neighbor_run.handle).unwrap(),
        Recovered::Running
    );
    let stats = driver.stats(&neighbor_run.handle).unwrap();
    assert!(stats.usage.memory_rss_bytes >= 16 << 20, "{stats:?}");
    assert_eq!(neighbor_run.handle.cgroup.oom_kills(), 0);
    block_on(driver.stop(&neighbor_run.handle, "SIGTERM", Duration::from_secs(5))).unwrap();
    driver.destroy(&neighbor_run.handle).unwrap();
}

#[test]
fn a_cpu_hog_with_one_core_stays_within_its_quota() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("cpu");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let mut spec = spec(
        &tmp.0,
        &alloc_id("cpu"),
        "hog",
        "exec",
        probe(&["spin", "3"], &[]),
    );
    // `cores = 1`: a quota of one core (no core ids: not pinned, so the
    // quota alone is what holds three spinning threads back).
    spec.task.resources.cores = 1;
    let run = driver.start(&spec).unwrap();
    wait_until("the hog to run", Duration::from_secs(30), || {
        driver
            .stats(&run.handle)
            .map(|s| s.usage.cpu_usage_ns > 200_000_000)
            .unwrap_or(false)
    });
    // Measure over two seconds of wall time.
    let first = driver.stats(&run.handle).unwrap();
    let t0 = Instant::now();
    let mut last = first;
    while t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        last = driver.stats(&run.handle).unwrap();
    }
    let used = last.cpu_percent(&first);
    eprintln!("cpu hog used {used:.1}% of one core (quota 100%)");
    assert!(used <= 110.0, "{used}% is more than 10% above the quota");
    assert!(used > 0.0);
    block_on(driver.stop(&run.handle, "SIGTERM", Duration::from_secs(5))).unwrap();
    driver.destroy(&run.handle).unwrap();
}

#[test]
fn a_task_cannot_see_other_tasks_processes() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("pids");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let victim = spec(
        &tmp.0,
        &alloc_id("pids"),
        "victim",
        "exec",
        probe(&["ignore-term", "2"], &[]),
    );
    let victim_run = driver.start(&victim).unwrap();
    wait_for_text(
        &stdout_log(&victim),
        "ignoring SIGTERM, children",
        Duration::from_secs(30),
    );
    let looker = spec(
        &tmp.0,
        &alloc_id("pids"),
        "looker",
        "exec",
        probe(&["pids"], &[]),
    );
    let (exit, out) = run_to_end(&driver, &looker);
    assert_eq!(exit.exit_code, 0);
    // Only itself: PID 2 of its own namespace (PID 1, the shim, is root's
    // and hidden by hidepid).
    assert_eq!(out.trim(), "pids: 2", "{out}");
    block_on(driver.stop(&victim_run.handle, "SIGKILL", Duration::ZERO)).unwrap();
    driver.destroy(&victim_run.handle).unwrap();
}

#[test]
fn a_task_opens_the_device_it_was_given_and_no_other() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("dev");
    let driver = ExecDriver::new(runtime(&tmp.0, caps.clone()));
    let actions = [
        "open",
        "/dev/full",
        "--",
        "open",
        "/dev/null",
        "--",
        "open",
        "/dev/kmsg",
        "--",
        "open",
        "/dev/ptmx",
        "--",
        "mknod",
        "local/kmsg",
        "1",
        "11",
    ];
    let mut task = spec(
        &tmp.0,
        &alloc_id("dev"),
        "dev",
        "exec",
        probe(&actions, &[]),
    );
    task.devices = vec!["/dev/full".into()];
    let started = driver.start(&task).unwrap();
    // v1: the cgroup allows exactly the default devices and /dev/full.
    if let Some(dir) = started
        .handle
        .cgroup
        .dirs
        .iter()
        .find(|d| d.controllers.iter().any(|c| c == "devices"))
    {
        let list =
            std::fs::read_to_string(std::path::Path::new(&dir.path).join("devices.list")).unwrap();
        assert!(list.lines().any(|l| l == "c 1:7 rwm"), "{list}");
        assert!(!list.contains("a *:*"), "{list}");
        assert!(!list.lines().any(|l| l.starts_with("c 1:11")), "{list}");
    }
    block_on(driver.wait(&started.handle)).unwrap();
    let out = std::fs::read_to_string(stdout_log(&task)).unwrap();
    driver.destroy(&started.handle).unwrap();
    let got = lines(&out);
    assert_eq!(
        got[..4],
        [
            "open /dev/full: ok",
            "open /dev/null: ok",
            // Not in the task's private /dev at all.
            "open /dev/kmsg: ENOENT",
            "open /dev/ptmx: ENOENT",
        ],
        "{out}"
    );
    // And it cannot make one: Landlock (EACCES) or the missing CAP_MKNOD (EPERM).
    assert!(
        got[4] == "mknod local/kmsg: EACCES" || got[4] == "mknod local/kmsg: EPERM",
        "{out}"
    );
    assert!(!task.task_dir.join("local/kmsg").exists());

    // Without a mount namespace the node's /dev is visible: the cgroup's
    // device rules and Landlock still allow only the given devices.
    let mut bare = caps;
    bare.mount_ns = false;
    let tmp2 = TempDir::new("dev-bare");
    let driver = ExecDriver::new(runtime(&tmp2.0, bare));
    let mut task = spec(
        &tmp2.0,
        &alloc_id("dev"),
        "dev",
        "exec",
        probe(&actions[..12], &[]),
    );
    task.devices = vec!["/dev/full".into()];
    let started = driver.start(&task).unwrap();
    assert!(
        started
            .events
            .iter()
            .any(|e| e.kind == "Isolation Degraded" && e.message.contains("mount namespace")),
        "{:?}",
        started.events
    );
    block_on(driver.wait(&started.handle)).unwrap();
    let out = std::fs::read_to_string(stdout_log(&task)).unwrap();
    driver.destroy(&started.handle).unwrap();
    let got = lines(&out);
    assert_eq!(
        got[..2],
        ["open /dev/full: ok", "open /dev/null: ok"],
        "{out}"
    );
    for (line, dev) in got[2..].iter().zip(["/dev/kmsg", "/dev/ptmx"]) {
        assert!(
            *line == format!("open {dev}: EPERM") || *line == format!("open {dev}: EACCES"),
            "{dev} must be refused: {out}"
        );
    }
}
