//! Stop, signal, logs, start failures, raw_exec and the isolation policy.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wren_model::{LogConfig, Value};
use wren_runtimes::exec::ExecDriver;
use wren_runtimes::policy::OnMissing;
use wren_runtimes::raw_exec::RawExecDriver;
use wren_runtimes::{Driver, DriverError};

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[test]
fn stop_kills_a_task_that_ignores_sigterm_after_the_timeout_with_all_its_children() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("stop");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let spec = spec(
        &tmp.0,
        &alloc_id("stop"),
        "stubborn",
        "exec",
        probe(&["ignore-term", "3"], &[]),
    );
    let run = driver.start(&spec).unwrap();
    wait_for_text(
        &stdout_log(&spec),
        "ignoring SIGTERM, children",
        Duration::from_secs(30),
    );
    let pids = run.handle.cgroup.pids().unwrap();
    assert_eq!(pids.len(), 4, "the task and its three children: {pids:?}");

    let timeout = Duration::from_millis(1500);
    let t0 = Instant::now();
    let exit = block_on(driver.stop(&run.handle, "SIGTERM", timeout)).unwrap();
    let took = t0.elapsed();
    assert!(
        took >= timeout,
        "SIGTERM is ignored, so only the timeout can end it ({took:?})"
    );
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(!run.handle.cgroup.is_populated().unwrap());
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the stop");
    }
    driver.destroy(&run.handle).unwrap();
}

#[test]
fn a_kill_signal_reaches_a_task_without_a_handler() {
    // The task is PID 2 of its namespace (the shim is PID 1), so a signal
    // it has no handler for has its default effect.
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("sigterm");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let spec = spec(
        &tmp.0,
        &alloc_id("term"),
        "plain",
        "exec",
        probe(&["count", "20"], &[]),
    );
    let run = driver.start(&spec).unwrap();
    wait_for_text(&stdout_log(&spec), "count 1", Duration::from_secs(30));
    let exit = block_on(driver.stop(&run.handle, "SIGTERM", Duration::from_secs(60))).unwrap();
    assert_eq!(exit.signal, Some(15), "{exit:?}");
    assert_eq!(exit.exit_code, 128 + 15);

    let spec2 = spec_again(&tmp.0, "usr1");
    let run2 = driver.start(&spec2).unwrap();
    wait_for_text(&stdout_log(&spec2), "count 1", Duration::from_secs(30));
    driver.signal(&run2.handle, "USR1").unwrap();
    let exit2 = block_on(driver.wait(&run2.handle)).unwrap();
    assert_eq!(exit2.signal, Some(10), "{exit2:?}");
    assert!(matches!(
        driver.signal(&run2.handle, "SIGHUP"),
        Err(DriverError::NotRunning(_))
    ));
    assert!(matches!(
        driver.signal(&run2.handle, "SIGNOPE"),
        Err(DriverError::BadSignal(_))
    ));
    driver.destroy(&run.handle).unwrap();
    driver.destroy(&run2.handle).unwrap();
}

fn spec_again(root: &std::path::Path, name: &str) -> wren_runtimes::TaskSpec {
    spec(
        root,
        &alloc_id(name),
        name,
        "exec",
        probe(&["count", "20"], &[]),
    )
}

#[test]
fn logs_rotate_at_max_file_size_and_keep_max_files() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("rotate");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let mut spec = spec(
        &tmp.0,
        &alloc_id("rot"),
        "chatty",
        "exec",
        probe(&["spew", "3"], &[]),
    );
    spec.logs = LogConfig {
        max_files: 2,
        max_file_size_mb: 1,
        disabled: false,
    };
    let (exit, _) = run_to_end(&driver, &spec);
    assert_eq!(exit.exit_code, 0);
    let logs = spec.alloc_dir.join("alloc/logs");
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("chatty.stdout."))
        .collect();
    names.sort();
    // 3 MiB in 1 MiB files: .0, .1, .2 written; the newest two kept.
    assert_eq!(names, ["chatty.stdout.1", "chatty.stdout.2"]);
    assert_eq!(
        std::fs::metadata(logs.join("chatty.stdout.2"))
            .unwrap()
            .len(),
        1 << 20
    );
    assert!(logs.join("chatty.stderr.0").exists());
}

#[test]
fn a_failed_start_says_why_and_leaves_nothing_behind() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("fail");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let missing = spec(
        &tmp.0,
        &alloc_id("fail"),
        "missing",
        "exec",
        probe(&[], &[("command", Value::String("local/nope".into()))]),
    );
    let err = driver.start(&missing).unwrap_err().to_string();
    assert!(
        err.contains("local/nope") && err.contains("not an executable"),
        "{err}"
    );

    // Outside what Landlock lets the task execute: refused before exec.
    let outside = spec(
        &tmp.0,
        &alloc_id("fail"),
        "outside",
        "exec",
        probe(&[], &[("command", Value::String(PROBE.into()))]),
    );
    let err = driver.start(&outside).unwrap_err().to_string();
    assert!(
        err.contains("outside the paths the sandbox may execute from"),
        "{err}"
    );

    let bad = spec(
        &tmp.0,
        &alloc_id("fail"),
        "bad",
        "exec",
        probe(&["x"], &[("pids_limit", Value::String("many".into()))]),
    );
    assert!(matches!(driver.validate_config(&bad.task), Err(e) if e.key == "pids_limit"));
    assert!(matches!(driver.start(&bad), Err(DriverError::Config(_))));

    let state = tmp.0.join("state/tasks");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "no state dir left"
    );
    let uids = tmp.0.join("state/uids");
    assert_eq!(
        std::fs::read_dir(&uids).map(|d| d.count()).unwrap_or(0),
        0,
        "no uid lease left"
    );
}

#[test]
fn raw_exec_is_off_unless_enabled_and_still_kills_the_whole_tree() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("raw");
    let rt = runtime(&tmp.0, caps);
    let off = RawExecDriver::new(rt.clone(), false);
    let spec = spec(
        &tmp.0,
        &alloc_id("raw"),
        "raw",
        "raw_exec",
        probe(&["id", "--", "ignore-term", "2"], &[]),
    );
    assert!(!off.fingerprint().detected);
    assert!(matches!(
        off.start(&spec),
        Err(DriverError::Disabled("raw_exec"))
    ));

    let on = RawExecDriver::new(rt, true);
    assert!(on.fingerprint().healthy);
    let run = on.start(&spec).unwrap();
    let log = wait_for_text(
        &stdout_log(&spec),
        "ignoring SIGTERM, children",
        Duration::from_secs(30),
    );
    assert!(
        log.starts_with("uid=0 gid=0"),
        "raw_exec runs as the agent's user: {log}"
    );
    let pids = run.handle.cgroup.pids().unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    let exit = block_on(on.stop(&run.handle, "SIGTERM", Duration::from_millis(300))).unwrap();
    assert_eq!(exit.signal, Some(9));
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived");
    }
    on.destroy(&run.handle).unwrap();
}

#[test]
fn the_refuse_policy_refuses_what_the_node_lacks() {
    let Some(mut caps) = isolation_caps() else {
        return;
    };
    caps.landlock_abi = None;
    caps.landlock_error = Some("landlock unavailable: ENOSYS (as under qemu-user)".into());
    let tmp = TempDir::new("refuse");
    let mut config = wren_runtimes::RuntimeConfig {
        shim: vec![SHIM.into()],
        state_dir: tmp.0.join("state"),
        cgroup_parent: "wren-test".into(),
        policy: Default::default(),
    };
    config.policy.on_missing = OnMissing::Refuse;
    let driver = ExecDriver::new(wren_runtimes::Runtime::with_caps(config, caps.clone()).unwrap());
    let spec = spec(
        &tmp.0,
        &alloc_id("refuse"),
        "t",
        "exec",
        probe(&["id"], &[]),
    );
    let err = driver.start(&spec).unwrap_err();
    assert!(
        matches!(&err, DriverError::Refused { missing, .. } if missing.contains("no landlock")),
        "{err}"
    );
    assert!(!driver.fingerprint().healthy);

    // Degrade (the default) runs it and says so.
    let degrade = ExecDriver::new(runtime(&tmp.0, caps));
    let started = degrade.start(&spec).unwrap();
    let ev = started
        .events
        .iter()
        .find(|e| e.kind == "Isolation Degraded")
        .expect("an event");
    assert!(ev.message.contains("no landlock"), "{ev:?}");
    assert!(ev.details["detail"].contains("ENOSYS"), "{ev:?}");
    let exit = block_on(degrade.wait(&started.handle)).unwrap();
    assert_eq!(exit.exit_code, 0);
    degrade.destroy(&started.handle).unwrap();
    let info = degrade.fingerprint();
    assert!(info.healthy);
    assert_eq!(info.attributes["isolation"], "degraded");
}

#[test]
fn handles_round_trip_through_cbor() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("cbor");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let spec = spec(
        &tmp.0,
        &alloc_id("cbor"),
        "t",
        "exec",
        probe(&["sleep"], &[]),
    );
    let run = driver.start(&spec).unwrap();
    let bytes = run.handle.to_cbor();
    let back = wren_runtimes::TaskHandle::from_cbor(&bytes).unwrap();
    assert_eq!(back, run.handle);
    assert!(wren_runtimes::TaskHandle::from_cbor(&bytes[..bytes.len() / 2]).is_err());
    block_on(driver.stop(&back, "SIGKILL", Duration::ZERO)).unwrap();
    driver.destroy(&back).unwrap();
    // destroy is idempotent.
    driver.destroy(&back).unwrap();
}

#[test]
fn a_task_inherits_no_blocked_or_ignored_signals_from_its_shim() {
    // Regression: the shim blocks signals for its signalfd and ignores
    // SIGPIPE; a task inheriting the mask could not be stopped by SIGTERM.
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("sigmask");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let config = Value::Map(
        [
            ("command".to_owned(), Value::String("/bin/sh".into())),
            (
                "args".to_owned(),
                Value::List(vec![
                    Value::String("-c".into()),
                    Value::String("exec grep -E '^Sig(Blk|Ign)' /proc/self/status".into()),
                ]),
            ),
        ]
        .into(),
    );
    let spec = spec(&tmp.0, &alloc_id("mask"), "mask", "exec", config);
    let (exit, out) = run_to_end(&driver, &spec);
    assert_eq!(exit.exit_code, 0, "{out}");
    let mask = |name: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{out}"));
        u64::from_str_radix(line.split('\t').nth(1).unwrap_or_default(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{out}");
    // Signals 32 and 33 are the C library's own (glibc refuses to reset
    // them and re-installs its handlers when it needs them): whatever the
    // test harness inherited there may show. Every other one is default.
    assert_eq!(mask("SigIgn:") & !(0b11 << 31), 0, "{out}");
}

#[test]
fn fingerprints_report_what_the_node_can_isolate_with() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("fingerprint");
    let rt = runtime(&tmp.0, caps.clone());
    let drivers = wren_runtimes::drivers(&rt, false, Default::default());
    let exec = drivers["exec"].fingerprint();
    assert!(exec.detected && exec.healthy, "{exec:?}");
    let version = match caps.cgroups.version() {
        Some(wren_runtimes::cgroup::Version::V1) => "1",
        _ => "2",
    };
    assert_eq!(exec.attributes["cgroup.version"], version);
    assert_eq!(
        exec.attributes["landlock.abi"],
        caps.landlock_abi.unwrap().to_string()
    );
    assert_eq!(exec.attributes["namespaces.pid"], "true");
    assert!(exec.attributes["cgroup.controllers"].contains("memory"));
    assert!(!drivers["raw_exec"].fingerprint().detected);
    assert_eq!(drivers["qemu"].name(), "qemu");
}

#[test]
fn a_configured_user_is_used_and_root_is_refused() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("user");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let mut spec = spec(
        &tmp.0,
        &alloc_id("user"),
        "nobody",
        "exec",
        probe(&["id"], &[]),
    );
    spec.task.user = "nobody".into();
    let (exit, out) = run_to_end(&driver, &spec);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(out.trim(), format!("uid={} gid={}", nobody.uid, nobody.gid));

    let mut root = spec.clone();
    root.alloc_id = alloc_id("user");
    root.user = "root".into();
    let err = driver.start(&root).unwrap_err().to_string();
    assert!(err.contains("never run as root"), "{err}");
}

#[test]
fn starting_a_task_the_agent_lost_track_of_kills_the_orphan_first() {
    // The agent died between start and persisting the handle: the task
    // runs, nobody knows. Starting it again must not run it twice.
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("orphan");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let spec = spec(
        &tmp.0,
        &alloc_id("orphan"),
        "twice",
        "exec",
        probe(&["ignore-term", "1"], &[]),
    );
    let lost = driver.start(&spec).unwrap();
    wait_for_text(
        &stdout_log(&spec),
        "ignoring SIGTERM, children",
        Duration::from_secs(30),
    );
    let old_pids = lost.handle.cgroup.pids().unwrap();
    let again = driver.start(&spec).unwrap();
    assert!(
        again.events.iter().any(|e| e.kind == "Orphan Killed"),
        "{:?}",
        again.events
    );
    for pid in old_pids {
        assert!(!alive(pid), "the orphan's process {pid} survived");
    }
    assert_ne!(again.handle.shim_pid, lost.handle.shim_pid);
    assert_eq!(
        driver.recover(&again.handle).unwrap(),
        wren_runtimes::Recovered::Running
    );
    block_on(driver.stop(&again.handle, "SIGKILL", Duration::ZERO)).unwrap();
    driver.destroy(&again.handle).unwrap();
}

#[test]
fn a_killed_shim_takes_its_task_along_and_the_task_is_reported_lost() {
    // The shim is PID 1 of the task's namespace: if it is killed, the
    // kernel kills the task too, and nothing pretends to know its exit.
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("lost");
    let driver = ExecDriver::new(runtime(&tmp.0, caps));
    let spec = spec(
        &tmp.0,
        &alloc_id("lost"),
        "lost",
        "exec",
        probe(&["sleep"], &[]),
    );
    let run = driver.start(&spec).unwrap();
    let pids = run.handle.cgroup.pids().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.handle.shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until(
        "the task to die with its shim",
        Duration::from_secs(10),
        || pids.iter().all(|p| !alive(*p)),
    );
    assert!(matches!(
        driver.recover(&run.handle).unwrap(),
        wren_runtimes::Recovered::Lost { .. }
    ));
    assert!(matches!(
        block_on(driver.wait(&run.handle)),
        Err(DriverError::Lost { .. })
    ));
    driver.destroy(&run.handle).unwrap();
}
