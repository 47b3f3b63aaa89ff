//! The per-task shim: the `wren` binary re-executed as `wren shim` (or
//! the `wren-task-shim` test program), one small process per task that
//! outlives the agent.
//!
//! It starts in two stages. The first stage reads a task spec (CBOR)
//! from stdin, leaves the agent's session, creates the task's PID
//! namespace (when asked) and forks; it reports the fork and exits, so the
//! shim is nobody's child but init's (or a subreaper's) and the agent never
//! has to reap it. The second stage — the shim proper, PID 1 of the task's
//! namespace — forks the task through the sandbox (the `sandbox` module),
//! reports that it was executed, and then, until the task is gone:
//!
//! - copies the task's stdout and stderr pipes into rotated log files,
//! - forwards signals the driver writes into its control fifo (one byte,
//!   the signal number) — the task is PID 2, so a signal without a handler
//!   still has its default effect, unlike for a namespace's PID 1,
//! - reaps every orphan re-parented to it,
//! - when the task exits: records its exit code, signal and OOM kill
//!   atomically in the state directory, kills what is left in its cgroup,
//!   drains the pipes and exits.
//!
//! It holds no agent connection: the agent finds it again from the task
//! handle (pid, start time, state directory) after a restart.

pub(crate) mod spec;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::driver::ExitResult;
use crate::logs::{Rotation, Rotator};
use crate::sandbox::ChildPlan;
use spec::{Report, ShimSpec};

/// Largest spec the shim accepts on stdin.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// How long the shim keeps draining the task's pipes after it exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The exit status file in the task's state directory.
pub(crate) const EXIT_FILE: &str = "exit";

/// The control fifo in the task's state directory.
pub(crate) const CONTROL_FIFO: &str = "control";

/// Signals the shim takes through its signalfd. It needs a handler for
/// each (see [`noop`]): as PID 1 of a namespace, signals without one are
/// discarded before they could be queued.
const SIGNALS: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

extern "C" fn noop(_: nix::libc::c_int) {}

/// The shim's entry point: `wren shim` dispatches here before parsing
/// its own arguments. Takes the arguments after `shim` (there are none).
pub fn main(args: &[OsString]) -> ExitCode {
    if !args.is_empty() {
        eprintln!("usage: wren shim  (started by the wren agent, reads its task on stdin)");
        return ExitCode::from(2);
    }
    stage0()
}

fn report(r: &Report) {
    let bytes = wren_model::codec::to_cbor(r);
    let mut out = std::io::stdout().lock();
    // A report is a few hundred bytes: one write, atomic on a pipe.
    let _ = out.write_all(&bytes);
    let _ = out.flush();
}

fn fail(message: String, errno: Option<Errno>) -> ExitCode {
    report(&Report::Failed {
        message,
        errno: errno.map(|e| e as i32),
    });
    ExitCode::FAILURE
}

fn stage0() -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(MAX_SPEC_BYTES)
        .read_to_end(&mut bytes)
    {
        return fail(format!("read task spec from stdin: {e}"), None);
    }
    let spec: ShimSpec = match wren_model::codec::from_cbor(&bytes) {
        Ok(s) => s,
        Err(e) => return fail(format!("decode task spec: {e}"), None),
    };
    drop(bytes);
    if let Err(e) = nix::unistd::setsid() {
        return fail(format!("setsid: {}", e.desc()), Some(e));
    }
    if spec.pid_ns
        && let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
    {
        return fail(format!("unshare pid namespace: {}", e.desc()), Some(e));
    }
    match crate::sys::fork() {
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            let start_ticks = crate::supervise::start_ticks(child.as_raw()).unwrap_or(0);
            report(&Report::Forked {
                shim_pid: child.as_raw(),
                start_ticks,
            });
            ExitCode::SUCCESS
        }
        Ok(nix::unistd::ForkResult::Child) => std::process::exit(shim(spec)),
        Err(e) => fail(format!("fork the shim: {}", e.desc()), Some(e)),
    }
}

/// The shim proper; returns its exit code.
fn shim(spec: ShimSpec) -> i32 {
    let mut shim = match Shim::start(spec) {
        Ok(s) => s,
        Err((message, errno)) => {
            fail(message, errno);
            return 1;
        }
    };
    report(&Report::Started {
        task_pid: shim.task.as_raw(),
        started_at: now_ns(),
    });
    detach_stdio();
    shim.run();
    0
}

/// Points stdin and stdout at /dev/null: the agent reads reports until
/// EOF, and no agent is there to read anything later. stderr stays the
/// state directory's `shim.log`.
fn detach_stdio() {
    if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

/// Unix time in nanoseconds.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

struct Stream {
    pipe: OwnedFd,
    log: Option<Rotator>,
}

struct Shim {
    state_dir: PathBuf,
    cgroup: crate::cgroup::TaskCgroup,
    task: Pid,
    exited: bool,
    signals: SignalFd,
    control: OwnedFd,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    log_error_seen: bool,
}

type StartError = (String, Option<Errno>);

impl Shim {
    fn start(spec: ShimSpec) -> Result<Shim, StartError> {
        let errno = |what: &str, e: Errno| (format!("{what}: {}", e.desc()), Some(e));
        let mut mask = SigSet::empty();
        for &s in SIGNALS {
            crate::sys::set_handler(s, noop).map_err(|e| errno("install signal handler", e))?;
            mask.add(s);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
            .map_err(|e| errno("block signals", e))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| errno("signalfd", e))?;
        // Outside a PID namespace, orphans of the task come to us, not init.
        let _ = nix::sys::prctl::set_child_subreaper(true);

        let state_dir = PathBuf::from(&spec.state_dir);
        let fifo = state_dir.join(CONTROL_FIFO);
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))
            .map_err(|e| errno(&format!("mkfifo {}", fifo.display()), e))?;
        // Read-write, so the fifo never reports EOF when a writer leaves.
        let control = nix::fcntl::open(
            &fifo,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(&format!("open {}", fifo.display()), e))?;

        let logs = &spec.logs;
        let rotation = Rotation {
            max_files: logs.max_files,
            max_file_bytes: logs.max_file_bytes,
        };
        let open_log = |stream: &str| -> Result<Option<Rotator>, StartError> {
            if logs.disabled {
                return Ok(None);
            }
            Rotator::open(
                Path::new(&logs.dir),
                &format!("{}.{stream}", logs.task),
                rotation,
            )
            .map(Some)
            .map_err(|e| (e.to_string(), None))
        };
        let out_log = open_log("stdout")?;
        let err_log = open_log("stderr")?;

        let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| errno("pipe", e))?;
        let pass = match &spec.launch.listen {
            Some(path) => Some((listen(&state_dir, path)?, spec::LISTEN_FD)),
            None => None,
        };
        let mut plan = ChildPlan::prepare(&spec.launch.sandbox, pass, report_w)
            .map_err(|e| (e.to_string(), None))?;
        let steps: Vec<String> = plan.steps().iter().map(|s| s.describe()).collect();
        let launch = &spec.launch;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .env_clear()
            .envs(&launch.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::sys::pre_exec(&mut command, move || plan.enter());
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                let errno = e.raw_os_error().map(Errno::from_raw);
                let what = match crate::sandbox::failed_step(&report_r).and_then(|i| steps.get(i)) {
                    Some(step) => format!(
                        "sandbox: {step}: {}",
                        errno.map(|e| e.desc()).unwrap_or("error")
                    ),
                    None => format!("exec {}: {e}", launch.program),
                };
                return Err((what, errno));
            }
        };
        drop(command);
        let task = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let stdout = child.stdout.take().map(|p| Stream {
            pipe: p.into(),
            log: out_log,
        });
        let stderr = child.stderr.take().map(|p| Stream {
            pipe: p.into(),
            log: err_log,
        });
        Ok(Shim {
            state_dir,
            cgroup: spec.cgroup,
            task,
            exited: false,
            signals,
            control,
            stdout,
            stderr,
            log_error_seen: false,
        })
    }

    fn run(&mut self) {
        let mut buf = [0u8; 8192];
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if self.exited && self.stdout.is_none() && self.stderr.is_none() {
                return;
            }
            let timeout = match drain_deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let (sig_ready, ctl_ready, out_ready, err_ready) = {
                let mut fds = vec![
                    PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.control.as_fd(), PollFlags::POLLIN),
                ];
                let out_at = self.stdout.as_ref().map(|s| {
                    fds.push(PollFd::new(s.pipe.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                let err_at = self.stderr.as_ref().map(|s| {
                    fds.push(PollFd::new(s.pipe.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => {
                        eprintln!("wren shim: poll: {}", e.desc());
                        return;
                    }
                }
                let ready = |i: Option<usize>| {
                    i.and_then(|i| fds.get(i))
                        .and_then(|f| f.any())
                        .unwrap_or(false)
                };
                (ready(Some(0)), ready(Some(1)), ready(out_at), ready(err_at))
            };
            if sig_ready {
                self.on_signals();
            }
            if ctl_ready {
                self.on_control();
            }
            if out_ready {
                self.stdout = self.stdout.take().and_then(|s| self.copy(s, &mut buf));
            }
            if err_ready {
                self.stderr = self.stderr.take().and_then(|s| self.copy(s, &mut buf));
            }
            if self.exited && drain_deadline.is_none() {
                drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            }
        }
    }

    /// Copies what the pipe holds into the log; `None` at EOF.
    fn copy(&mut self, mut stream: Stream, buf: &mut [u8]) -> Option<Stream> {
        match nix::unistd::read(&stream.pipe, buf) {
            Ok(0) => None,
            Ok(n) => {
                if let Some(log) = stream.log.as_mut()
                    && let Err(e) = log.write(buf.get(..n).unwrap_or_default())
                    && !self.log_error_seen
                {
                    // Keep reading (and dropping) so the task never blocks on
                    // a full pipe; say it once.
                    eprintln!("wren shim: {e}");
                    self.log_error_seen = true;
                }
                Some(stream)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Some(stream),
            Err(e) => {
                eprintln!("wren shim: read task output: {}", e.desc());
                None
            }
        }
    }

    fn on_signals(&mut self) {
        let mut child_exited = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo == Signal::SIGCHLD as u32 {
                child_exited = true;
            }
            // Anything else sent to the shim itself is ignored: the shim
            // must outlive its task to record how it ended.
        }
        if child_exited {
            self.reap();
        }
    }

    fn reap(&mut self) {
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.task => {
                    self.task_exited(code, None);
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == self.task => {
                    self.task_exited(128 + signal as i32, Some(signal as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("wren shim: waitpid: {}", e.desc());
                    return;
                }
            }
        }
    }

    fn task_exited(&mut self, exit_code: i32, signal: Option<i32>) {
        self.exited = true;
        let result = ExitResult {
            exit_code,
            signal,
            oom_killed: self.cgroup.oom_kills() > 0,
            finished_at: now_ns(),
            message: None,
        };
        if let Err(e) = write_exit(&self.state_dir, &result) {
            eprintln!("wren shim: {e}");
        }
        // The task is its whole process tree: what the main process left
        // behind dies with it (as when PID 1 of a namespace exits).
        if let Err(e) = self.cgroup.kill_processes(Duration::from_secs(5)) {
            eprintln!("wren shim: kill leftovers: {e}");
        }
    }

    fn on_control(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.control, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    for &number in buf.get(..n).unwrap_or_default() {
                        if self.exited {
                            continue;
                        }
                        if let Ok(signal) = Signal::try_from(i32::from(number)) {
                            let _ = nix::sys::signal::kill(self.task, signal);
                        }
                    }
                }
            }
        }
    }
}

/// Binds the unix socket `path` (in `state_dir`) for the task, owner-only.
/// Binds by a relative name from inside the directory: a unix socket path
/// is limited to 107 bytes, a state directory path is not.
fn listen(state_dir: &Path, path: &str) -> Result<OwnedFd, StartError> {
    let path = Path::new(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err((format!("bad socket path {}", path.display()), None));
    };
    let io = |what: String, e: std::io::Error| {
        (
            format!("{what}: {e}"),
            e.raw_os_error().map(Errno::from_raw),
        )
    };
    if dir != state_dir {
        return Err((
            format!("socket {} is outside the state directory", path.display()),
            None,
        ));
    }
    let _ = std::fs::remove_file(path);
    std::env::set_current_dir(dir).map_err(|e| io(format!("chdir {}", dir.display()), e))?;
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
    let bound = std::os::unix::net::UnixListener::bind(name);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| io(format!("bind {}", path.display()), e))?;
    Ok(listener.into())
}

/// Why an exit status could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("exit status file {path}: {message}")]
pub struct ExitFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Writes the exit status atomically: a temporary file, fsync, rename,
/// fsync of the directory. A reader sees the whole status or none.
pub(crate) fn write_exit(state_dir: &Path, result: &ExitResult) -> Result<(), ExitFileError> {
    let path = state_dir.join(EXIT_FILE);
    let tmp = state_dir.join(format!("{EXIT_FILE}.tmp"));
    let err = |e: std::io::Error| ExitFileError {
        path: path.clone(),
        message: e.to_string(),
    };
    let bytes = wren_model::codec::to_cbor(result);
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads the exit status, if the task has exited.
pub(crate) fn read_exit(state_dir: &Path) -> Result<Option<ExitResult>, ExitFileError> {
    let path = state_dir.join(EXIT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => wren_model::codec::from_cbor(&bytes)
            .map(Some)
            .map_err(|e| ExitFileError {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExitFileError {
            path,
            message: e.to_string(),
        }),
    }
}
