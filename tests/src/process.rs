//! Processes under test: a command (optionally inside a network namespace)
//! whose stdout and stderr go to files in the test's directory, which can
//! be SIGKILLed, SIGTERMed, signalled and restarted with the same
//! arguments. The log files survive restarts (each start is marked in
//! them); when a test panics, dropping a [`Proc`] prints the tails of its
//! logs, then kills it.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd;
use crate::netns::Netns;
use crate::wait::{self, Timeout};

/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 40;

/// Why a process operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A log file could not be opened.
    #[error("{name}: opening log {path}: {source}")]
    Log {
        /// The process.
        name: String,
        /// The log file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("{name}: starting {cmd}: {source}")]
    Spawn {
        /// The process.
        name: String,
        /// The command line.
        cmd: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A signal could not be sent.
    #[error("{name}: sending {signal} to pid {pid}: {source}")]
    Signal {
        /// The process.
        name: String,
        /// The signal.
        signal: Signal,
        /// Its pid.
        pid: u32,
        /// The cause.
        source: nix::Error,
    },
    /// Waiting for the process failed.
    #[error("{name}: waiting: {source}")]
    Wait {
        /// The process.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It did not exit (or print what was expected) in time.
    #[error("{name}: {source}")]
    Timeout {
        /// The process.
        name: String,
        /// What was awaited.
        source: Timeout,
    },
    /// The operation needs a running process.
    #[error("{name} is not running")]
    NotRunning {
        /// The process.
        name: String,
    },
}

/// What to run, kept to run it again.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    netns: Option<PathBuf>,
}

impl ProcSpec {
    /// `program`, known in logs and messages as `name` (unique per test:
    /// it names the log files).
    pub fn new(name: &str, program: impl AsRef<OsStr>) -> ProcSpec {
        ProcSpec {
            name: name.to_owned(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            netns: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ProcSpec {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> ProcSpec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable. `WREN_*` variables of the test's own
    /// environment are never passed on; only these are.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ProcSpec {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs in this directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> ProcSpec {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Runs inside this network namespace.
    pub fn netns(mut self, ns: &Netns) -> ProcSpec {
        self.netns = Some(ns.path());
        self
    }

    /// Runs another program with the same arguments (e.g. a wren binary
    /// built for another architecture).
    pub fn program(mut self, program: impl AsRef<OsStr>) -> ProcSpec {
        self.program = program.as_ref().to_owned();
        self
    }

    /// Runs the command under a wrapper: `wrapper wrapper_args... program
    /// args...` (e.g. `qemu-aarch64-static -L /`, or `strace -f`).
    pub fn wrapped<I, S>(mut self, wrapper: impl AsRef<OsStr>, wrapper_args: I) -> ProcSpec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args: Vec<OsString> = wrapper_args
            .into_iter()
            .map(|a| a.as_ref().to_owned())
            .collect();
        args.push(std::mem::replace(
            &mut self.program,
            wrapper.as_ref().to_owned(),
        ));
        args.append(&mut self.args);
        self.args = args;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command, ready to spawn (stdio not set).
    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        c.args(&self.args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WREN_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }
}

/// A process under test.
#[derive(Debug)]
pub struct Proc {
    spec: ProcSpec,
    stdout: PathBuf,
    stderr: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Proc {
    /// Starts `spec`, logging to `<log_dir>/<name>.stdout` and `.stderr`.
    pub fn start(spec: ProcSpec, log_dir: &Path) -> Result<Proc, ProcError> {
        let mut p = Proc {
            stdout: log_dir.join(format!("{}.stdout", spec.name)),
            stderr: log_dir.join(format!("{}.stderr", spec.name)),
            spec,
            child: None,
            starts: 0,
        };
        p.spawn()?;
        Ok(p)
    }

    fn log(&self, path: &Path) -> Result<File, ProcError> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ProcError::Log {
                name: self.spec.name.clone(),
                path: path.to_owned(),
                source,
            })?;
        if self.starts > 0 {
            let _ = writeln!(f, "==== wren-tests: start #{} ====", self.starts + 1);
        }
        Ok(f)
    }

    fn spawn(&mut self) -> Result<(), ProcError> {
        let mut c = self.spec.command();
        c.stdin(Stdio::null())
            .stdout(self.log(&self.stdout)?)
            .stderr(self.log(&self.stderr)?);
        let child = c.spawn().map_err(|source| ProcError::Spawn {
            name: self.spec.name.clone(),
            cmd: cmd::describe(&c),
            source,
        })?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What it runs.
    pub fn spec(&self) -> &ProcSpec {
        &self.spec
    }

    /// Changes what later restarts run.
    pub fn set_spec(&mut self, spec: ProcSpec) {
        self.spec = spec;
    }

    /// Its pid while it runs (or has exited but not been waited for).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether it is still running; reaps it if it exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcError> {
        let pid = self.pid().ok_or_else(|| ProcError::NotRunning {
            name: self.spec.name.clone(),
        })?;
        kill(Pid::from_raw(pid as i32), signal).map_err(|source| ProcError::Signal {
            name: self.spec.name.clone(),
            signal,
            pid,
            source,
        })
    }

    /// Waits until it exits; reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, ProcError> {
        let name = self.spec.name.clone();
        let Some(child) = self.child.as_mut() else {
            return Err(ProcError::NotRunning { name });
        };
        let status = wait::eventually(&format!("{name} to exit"), timeout, || {
            match child.try_wait() {
                Ok(Some(status)) => Ok(Ok(status)),
                Ok(None) => Err("still running"),
                Err(source) => Ok(Err(source)),
            }
        })
        .map_err(|source| ProcError::Timeout {
            name: name.clone(),
            source,
        })?
        .map_err(|source| ProcError::Wait {
            name: name.clone(),
            source,
        })?;
        self.child = None;
        Ok(status)
    }

    /// SIGKILL, and waits for it to die.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcError> {
        self.signal(Signal::SIGKILL)?;
        // SIGKILL cannot be caught; a minute covers a swapping machine.
        self.wait_exit(Duration::from_secs(60))
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, ProcError> {
        self.signal(Signal::SIGTERM)?;
        match self.wait_exit(grace) {
            Err(ProcError::Timeout { .. }) => self.kill(),
            other => other,
        }
    }

    /// Starts it again with the same command, arguments, environment,
    /// directory and namespace (SIGKILLs it first if it still runs).
    pub fn restart(&mut self) -> Result<(), ProcError> {
        if self.is_running() {
            self.kill()?;
        }
        self.spawn()
    }

    /// Everything it wrote to stdout so far (over all starts).
    pub fn stdout(&self) -> String {
        std::fs::read(&self.stdout)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The stdout log file.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// The stderr log file.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// Waits until its stdout or stderr contains `needle`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> Result<(), ProcError> {
        wait::until(
            &format!("{} to print {needle:?}", self.spec.name),
            timeout,
            || self.stdout().contains(needle) || self.stderr().contains(needle),
        )
        .map_err(|source| ProcError::Timeout {
            name: self.spec.name.clone(),
            source,
        })
    }

    /// The last lines of both logs, for failure reports.
    pub fn tails(&self) -> String {
        format!(
            "---- {name} stdout ({out}) ----\n{}\n---- {name} stderr ({err}) ----\n{}",
            tail(&self.stdout(), TAIL_LINES),
            tail(&self.stderr(), TAIL_LINES),
            name = self.spec.name,
            out = self.stdout.display(),
            err = self.stderr.display(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.tails());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> &str {
    let body = text.trim_end_matches('\n');
    let mut cut = body.len();
    for _ in 0..n {
        match body.get(..cut).and_then(|b| b.rfind('\n')) {
            Some(i) => cut = i,
            None => return text,
        }
    }
    text.get(cut + 1..).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_spec_runs_the_wrapper_first() {
        let spec = ProcSpec::new("agent", "/bin/wren")
            .args(["agent", "--config", "a.hcl"])
            .program("/cross/wren-aarch64")
            .wrapped("qemu-aarch64-static", ["-L", "/"]);
        let c = spec.command();
        assert_eq!(c.get_program(), "qemu-aarch64-static");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [
                "-L",
                "/",
                "/cross/wren-aarch64",
                "agent",
                "--config",
                "a.hcl"
            ]
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 1), "c");
        assert_eq!(tail("a\nb", 5), "a\nb");
        assert_eq!(tail("", 3), "");
    }
}
