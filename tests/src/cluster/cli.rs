//! Running `wren` CLI commands against a test region, from a namespace on
//! its net, with the region's CA and a CLI certificate in the environment
//! (`WREN_ADDR`, `WREN_CACERT`, `WREN_CLIENT_CERT`, `WREN_CLIENT_KEY`).
//! Every command has a deadline: one that does not answer in time is
//! killed and reported as [`CliError::TimedOut`], which a history records
//! as an operation with an unknown outcome.

use std::ffi::OsStr;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd;
use crate::netns::Netns;

/// Why a CLI command did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// It could not be started.
    #[error("{cmd}: could not start: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It did not finish in time and was killed.
    #[error("{cmd}: no answer within {after:?} (killed); stderr: {stderr}")]
    TimedOut {
        /// The command line.
        cmd: String,
        /// The deadline.
        after: Duration,
        /// What it printed before.
        stderr: String,
    },
    /// It exited with an error.
    #[error("{cmd}: {status}: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// How it ended.
        status: ExitStatus,
        /// Its stdout.
        stdout: String,
        /// Its stderr.
        stderr: String,
    },
    /// It printed something that is not the JSON asked for.
    #[error("{cmd}: output is not JSON ({source}): {stdout}")]
    Json {
        /// The command line.
        cmd: String,
        /// The parse error.
        source: serde_json::Error,
        /// What it printed.
        stdout: String,
    },
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

/// A configured `wren` CLI.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: PathBuf,
    netns: Option<PathBuf>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

impl Cli {
    /// The CLI at `bin`, run inside `ns` (or the test's own namespace).
    /// Commands time out after 30 s unless [`Cli::timeout`] says otherwise.
    pub fn new(bin: &Path, ns: Option<&Netns>) -> Cli {
        Cli {
            bin: bin.to_owned(),
            netns: ns.map(Netns::path),
            env: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Sets an environment variable for every command.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Cli {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// The servers to talk to (`WREN_ADDR`).
    pub fn servers(self, addrs: &[SocketAddr]) -> Cli {
        let list: Vec<String> = addrs.iter().map(|a| format!("coaps+tcp://{a}")).collect();
        self.env("WREN_ADDR", list.join(","))
    }

    /// The CA and the CLI's certificate and key.
    pub fn tls(self, ca: &Path, cert: &Path, key: &Path) -> Cli {
        self.env("WREN_CACERT", ca.to_string_lossy())
            .env("WREN_CLIENT_CERT", cert.to_string_lossy())
            .env("WREN_CLIENT_KEY", key.to_string_lossy())
    }

    /// The deadline for each command.
    pub fn timeout(mut self, timeout: Duration) -> Cli {
        self.timeout = timeout;
        self
    }

    /// The command for `wren args...` (to spawn yourself).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        c.args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WREN_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `wren args...`; any exit status is an answer. Fails only when
    /// it cannot start or does not finish in time.
    pub fn output<I, S>(&self, args: I) -> Result<CliOutput, CliError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command(args);
        let line = cmd::describe(&c);
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CliError::Spawn {
                cmd: line.clone(),
                source,
            })?;
        let collect = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = collect(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = collect(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        // A blocking wait on its own thread, so the answer is seen the
        // moment the command exits (operation times go into histories).
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(self.timeout) {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => {
                return Err(CliError::Spawn { cmd: line, source });
            }
            Err(_) => {
                // Still running as far as we know. (Had it exited and been
                // reaped in the last instant, its pid could in theory be
                // reused before this kill; sequential pid allocation makes
                // that practically impossible.)
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                let _ = waiter.join();
                return Err(CliError::TimedOut {
                    cmd: line,
                    after: self.timeout,
                    stderr: err.join().unwrap_or_default(),
                });
            }
        };
        let _ = waiter.join();
        Ok(CliOutput {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// Runs `wren args...` and returns its stdout; a non-zero exit is an
    /// error.
    pub fn run<I, S>(&self, args: I) -> Result<String, CliError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let line = cmd::describe(&self.command(&args));
        let o = self.output(&args)?;
        if o.status.success() {
            Ok(o.stdout)
        } else {
            Err(CliError::Failed {
                cmd: line,
                status: o.status,
                stdout: o.stdout,
                stderr: o.stderr.trim().to_owned(),
            })
        }
    }

    /// Runs `wren args...` (which should include `--json`) and parses its
    /// stdout.
    pub fn json<I, S>(&self, args: I) -> Result<serde_json::Value, CliError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let line = cmd::describe(&self.command(&args));
        let stdout = self.run(&args)?;
        serde_json::from_str(&stdout).map_err(|source| CliError::Json {
            cmd: line,
            source,
            stdout,
        })
    }
}
