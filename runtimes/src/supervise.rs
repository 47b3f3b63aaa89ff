//! The agent's side of a shim: launch it, and later — possibly from a
//! restarted agent — wait for it, signal through its control fifo, stop,
//! recover and destroy, all from the [`TaskHandle`].
//!
//! A shim is identified by its pid *and* start time, so a reused pid is
//! never mistaken for it. Waiting uses a pidfd registered with the
//! `async-io` reactor: no thread per task.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;

use crate::driver::{DriverError, ExitResult, Recovered, TaskHandle};
use crate::shim::spec::{Report, ShimSpec};
use crate::shim::{CONTROL_FIFO, read_exit};

/// How long a shim may take to report that the task was executed.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a successful launch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Launched {
    pub shim_pid: i32,
    pub shim_start_ticks: u64,
    pub task_pid: i32,
    pub started_at: i64,
}

/// Starts a shim with `spec` and waits for its report.
pub(crate) fn launch(
    shim: &[OsString],
    spec: &ShimSpec,
    task: &str,
) -> Result<Launched, DriverError> {
    let start_err = |message: String| DriverError::Start {
        task: task.to_owned(),
        message,
    };
    let Some((program, leading)) = shim.split_first() else {
        return Err(start_err("no shim command configured".to_owned()));
    };
    let state_dir = Path::new(&spec.state_dir);
    let log_path = state_dir.join("shim.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| DriverError::Io {
            op: "open",
            path: log_path.clone(),
            source,
        })?;
    let mut child = Command::new(program)
        .args(leading)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| start_err(format!("spawn shim {}: {e}", Path::new(program).display())))?;
    let bytes = wren_model::codec::to_cbor(spec);
    if let Some(mut stdin) = child.stdin.take() {
        // A shim that died early closes the pipe; its report says why.
        let _ = stdin.write_all(&bytes);
    }
    let output = match child.stdout.take() {
        Some(out) => read_until_eof(out.into(), Instant::now() + START_TIMEOUT),
        None => Err("no stdout pipe".to_owned()),
    };
    // The first stage exits right after forking; reap it.
    let _ = child.kill();
    let _ = child.wait();
    let output = output.map_err(|e| {
        start_err(format!(
            "read shim report: {e} (see {})",
            log_path.display()
        ))
    })?;

    let mut d = minicbor::Decoder::new(&output);
    let (mut forked, mut started, mut failed) = (None, None, None);
    while d.position() < output.len() {
        match d.decode::<Report>() {
            Ok(Report::Forked {
                shim_pid,
                start_ticks,
            }) => forked = Some((shim_pid, start_ticks)),
            Ok(Report::Started {
                task_pid,
                started_at,
            }) => started = Some((task_pid, started_at)),
            Ok(Report::Failed { message, .. }) => failed = Some(message),
            Err(e) => return Err(start_err(format!("garbled shim report: {e}"))),
        }
    }
    if let Some(message) = failed {
        return Err(start_err(message));
    }
    match (forked, started) {
        (Some((shim_pid, shim_start_ticks)), Some((task_pid, started_at))) => Ok(Launched {
            shim_pid,
            shim_start_ticks,
            task_pid,
            started_at,
        }),
        _ => Err(start_err(format!(
            "the shim exited without reporting a start (see {})",
            log_path.display()
        ))),
    }
}

/// Reads a pipe to EOF, giving up at `deadline`.
fn read_until_eof(fd: OwnedFd, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no report within {}s", START_TIMEOUT.as_secs()));
        }
        let timeout =
            PollTimeout::try_from(left.as_millis().min(10_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll: {}", e.desc())),
        }
        match nix::unistd::read(&fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(e.desc().to_owned()),
        }
    }
}

/// The start time of `pid` in clock ticks since boot (`/proc/<pid>/stat`
/// field 22), or `None` if there is no such process — or only its zombie
/// (a shim re-parented to an init that does not reap is still gone).
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the handle's shim is still alive (same pid, same start time).
pub(crate) fn shim_alive(handle: &TaskHandle) -> bool {
    handle.shim_pid > 0 && start_ticks(handle.shim_pid) == Some(handle.shim_start_ticks)
}

/// A pidfd of the handle's shim, if it is still that process.
fn shim_pidfd(handle: &TaskHandle) -> Result<Option<OwnedFd>, Errno> {
    match crate::sys::pidfd_open(handle.shim_pid) {
        // Checked after opening: if the pid was reused in between, the
        // start time differs and our shim is gone either way.
        Ok(fd) if shim_alive(handle) => Ok(Some(fd)),
        Ok(_) | Err(Errno::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The recorded exit, or `Lost` when the shim is gone without one.
fn finished(handle: &TaskHandle) -> Result<ExitResult, DriverError> {
    let state_dir = Path::new(&handle.state_dir);
    match read_exit(state_dir) {
        Ok(Some(exit)) => Ok(exit),
        Ok(None) => Err(DriverError::Lost {
            task: handle.task.clone(),
            reason: "its shim exited without recording an exit status".to_owned(),
        }),
        Err(e) => Err(DriverError::Lost {
            task: handle.task.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Resolves when the shim has exited.
async fn shim_gone(handle: &TaskHandle) {
    match shim_pidfd(handle) {
        Ok(Some(fd)) => {
            if let Ok(fd) = Async::new(fd) {
                let _ = fd.readable().await;
                return;
            }
        }
        Ok(None) => return,
        // No pidfd (Linux before 5.3): poll the process table below.
        Err(_) => {}
    }
    while shim_alive(handle) {
        Timer::after(Duration::from_millis(100)).await;
    }
}

/// Waits for the task to exit (see [`crate::Driver::wait`]).
pub(crate) async fn wait(handle: TaskHandle) -> Result<ExitResult, DriverError> {
    shim_gone(&handle).await;
    finished(&handle)
}

/// Parses `SIGTERM`, `TERM` or `15`.
pub(crate) fn parse_signal(name: &str) -> Result<Signal, DriverError> {
    let bad = || DriverError::BadSignal(name.to_owned());
    let upper = name.trim().to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>().map_err(|_| bad())
}

/// Asks the shim to send `signal` to the task.
pub(crate) fn signal(handle: &TaskHandle, signal: Signal) -> Result<(), DriverError> {
    let not_running = || DriverError::NotRunning(handle.task.clone());
    if !shim_alive(handle) || matches!(read_exit(Path::new(&handle.state_dir)), Ok(Some(_))) {
        return Err(not_running());
    }
    let fifo = Path::new(&handle.state_dir).join(CONTROL_FIFO);
    // Non-blocking: ENXIO means nobody reads it, so no shim holds it.
    let fd = match nix::fcntl::open(
        &fifo,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENXIO | Errno::ENOENT) => return Err(not_running()),
        Err(e) => {
            return Err(DriverError::Io {
                op: "open",
                path: fifo,
                source: e.into(),
            });
        }
    };
    let byte = [signal as i32 as u8];
    nix::unistd::write(&fd, &byte)
        .map(drop)
        .map_err(|e| DriverError::Io {
            op: "write",
            path: fifo,
            source: e.into(),
        })
}

/// Stops the task (see [`crate::Driver::stop`]).
pub(crate) async fn stop(
    handle: TaskHandle,
    kill_signal: Signal,
    kill_timeout: Duration,
) -> Result<ExitResult, DriverError> {
    match signal(&handle, kill_signal) {
        Ok(()) | Err(DriverError::NotRunning(_)) => {}
        Err(e) => return Err(e),
    }
    stop_after(handle, kill_timeout).await
}

/// Waits up to `kill_timeout` for the task to exit, then kills every
/// process in its cgroup and waits for the shim to record it.
pub(crate) async fn stop_after(
    handle: TaskHandle,
    kill_timeout: Duration,
) -> Result<ExitResult, DriverError> {
    if wait_for(&handle, kill_timeout).await {
        return finished(&handle);
    }
    handle.cgroup.kill_processes(Duration::from_secs(5))?;
    if wait_for(&handle, Duration::from_secs(30)).await {
        return finished(&handle);
    }
    Err(DriverError::Lost {
        task: handle.task.clone(),
        reason: "its shim did not exit after the whole cgroup was killed".to_owned(),
    })
}

/// Whether the shim exited within `timeout`.
async fn wait_for(handle: &TaskHandle, timeout: Duration) -> bool {
    futures_lite::future::or(
        async {
            shim_gone(handle).await;
            true
        },
        async {
            Timer::after(timeout).await;
            false
        },
    )
    .await
}

/// What happened to the task while no agent watched.
pub(crate) fn recover(handle: &TaskHandle) -> Result<Recovered, DriverError> {
    match read_exit(Path::new(&handle.state_dir)) {
        Ok(Some(exit)) => return Ok(Recovered::Exited(exit)),
        Ok(None) => {}
        Err(e) => {
            return Ok(Recovered::Lost {
                reason: e.to_string(),
            });
        }
    }
    if shim_alive(handle) {
        Ok(Recovered::Running)
    } else {
        Ok(Recovered::Lost {
            reason: "its shim is gone and recorded no exit status".to_owned(),
        })
    }
}

/// Kills what is left, removes the cgroup, the state directory and the
/// uid lease.
pub(crate) fn destroy(handle: &TaskHandle) -> Result<(), DriverError> {
    handle.cgroup.destroy(Duration::from_secs(10))?;
    // With its task gone the shim drains and exits within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Ok(Some(fd)) = shim_pidfd(handle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(left.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        if matches!(nix::poll::poll(&mut fds, timeout), Ok(0)) && shim_alive(handle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(handle.shim_pid),
                Signal::SIGKILL,
            );
        }
    }
    let state_dir = Path::new(&handle.state_dir);
    match std::fs::remove_dir_all(state_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DriverError::Io {
                op: "remove",
                path: state_dir.to_owned(),
                source,
            });
        }
    }
    if let Some(lease) = &handle.uid_lease {
        crate::users::release(Path::new(lease));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_of_this_process_and_of_none() {
        let me = std::process::id() as i32;
        let ticks = start_ticks(me).expect("our own stat");
        assert!(ticks > 0);
        assert_eq!(start_ticks(me), Some(ticks));
        assert_eq!(start_ticks(i32::MAX), None);
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("SIGWHAT").is_err());
        assert!(parse_signal("99").is_err());
    }
}
