//! Reattach: a supervising process starts tasks and is killed with
//! SIGKILL; this process then recovers the tasks from their persisted
//! handles. The tasks were never restarted, their logs kept flowing, and a
//! task that exited while nobody supervised reports its real exit code.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use wren_runtimes::exec::ExecDriver;
use wren_runtimes::host::HostCaps;
use wren_runtimes::{Driver, Recovered, TaskHandle};

const ROOT_ENV: &str = "WREN_REATTACH_ROOT";
const ALLOC: &str = "alloc-reattach";

/// The supervising process: started by the test below with `ROOT_ENV` set
/// (and a no-op otherwise). Starts two tasks, persists their handles,
/// then waits to be killed.
#[test]
#[ignore = "the supervisor process of reattach_after_the_supervisor_is_killed"]
fn supervisor() {
    let Ok(root) = std::env::var(ROOT_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let driver = ExecDriver::new(runtime(&root, HostCaps::detect()));
    let counter = spec(
        &root,
        ALLOC,
        "counter",
        "exec",
        probe(&["count", "30"], &[]),
    );
    let go = counter.alloc_dir.join("quitter/local/go");
    let go = go.to_string_lossy().into_owned();
    let quitter = spec(
        &root,
        ALLOC,
        "quitter",
        "exec",
        probe(&["exit-when", &go, "42"], &[]),
    );
    let handles = root.join("handles");
    std::fs::create_dir_all(&handles).unwrap();
    for spec in [&counter, &quitter] {
        let started = driver.start(spec).unwrap();
        let tmp = handles.join(format!("{}.tmp", spec.task.name));
        std::fs::write(&tmp, started.handle.to_cbor()).unwrap();
        std::fs::rename(&tmp, handles.join(format!("{}.cbor", spec.task.name))).unwrap();
    }
    std::fs::write(root.join("ready"), b"").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn log_of(root: &Path, task: &str) -> PathBuf {
    root.join("alloc")
        .join(ALLOC)
        .join("alloc/logs")
        .join(format!("{task}.stdout.0"))
}

/// The counts in the counter's log, checked to be 0, 1, 2, ... with no
/// gap and no second start.
fn counts(root: &Path) -> u64 {
    let text = std::fs::read_to_string(log_of(root, "counter")).unwrap();
    // A line being written right now is not complete yet.
    let complete = &text[..text.rfind('\n').map(|i| i + 1).unwrap_or(0)];
    let mut n = 0;
    for line in complete.lines() {
        assert_eq!(
            line,
            format!("count {n}"),
            "the counter restarted or lost lines:\n{text}"
        );
        n += 1;
    }
    n
}

fn load(root: &Path, task: &str) -> TaskHandle {
    TaskHandle::from_cbor(
        &std::fs::read(root.join("handles").join(format!("{task}.cbor"))).unwrap(),
    )
    .unwrap()
}

#[test]
fn reattach_after_the_supervisor_is_killed() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("reattach");
    let root = tmp.0.clone();
    let mut supervisor = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "supervisor",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT_ENV, &root)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the supervisor to start its tasks",
        Duration::from_secs(60),
        || {
            if let Ok(Some(status)) = supervisor.try_wait() {
                panic!("the supervisor exited early: {status}");
            }
            root.join("ready").exists()
        },
    );
    let counter = load(&root, "counter");
    let quitter = load(&root, "quitter");
    wait_for_text(
        &log_of(&root, "counter"),
        "count 3\n",
        Duration::from_secs(30),
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    supervisor.wait().unwrap();
    let at_kill = counts(&root);

    // While nobody supervises: the quitter exits with 42, the counter counts on.
    std::fs::write(root.join("alloc").join(ALLOC).join("quitter/local/go"), b"").unwrap();
    wait_until(
        "the counter to keep logging",
        Duration::from_secs(30),
        || counts(&root) >= at_kill + 5,
    );

    // A new "agent" recovers both from the persisted handles.
    let driver = ExecDriver::new(runtime(&root, caps));
    assert_eq!(driver.recover(&counter).unwrap(), Recovered::Running);
    wait_until(
        "the quitter to be recorded",
        Duration::from_secs(30),
        || matches!(driver.recover(&quitter), Ok(Recovered::Exited(_))),
    );
    let Recovered::Exited(exit) = driver.recover(&quitter).unwrap() else {
        unreachable!()
    };
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (42, None, false),
        "{exit:?}"
    );
    assert_eq!(block_on(driver.wait(&quitter)).unwrap(), exit);

    // The recovered handle works like a fresh one.
    let stats = driver.stats(&counter).unwrap();
    assert!(stats.usage.pids >= 1, "{stats:?}");
    let before_stop = counts(&root);
    let exit = block_on(driver.stop(&counter, "SIGTERM", Duration::from_secs(10))).unwrap();
    assert_eq!(exit.signal, Some(15), "{exit:?}");
    assert!(
        counts(&root) >= before_stop,
        "one continuous run from start to stop"
    );
    driver.destroy(&counter).unwrap();
    driver.destroy(&quitter).unwrap();
    assert!(!Path::new(&counter.state_dir).exists());
}
