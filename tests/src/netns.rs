//! Network namespaces that belong to one test. Each is named
//! `wrt-<owner>-<n>-<label>` (see `owner`), made with `ip netns add`, and
//! deleted on drop, also when the test panics: the processes still inside
//! are SIGKILLed first. Namespaces whose owner process is gone (a killed
//! test run) are swept the first time a new one is made.
//!
//! Commands enter a namespace with `nsenter --net=...`, not `ip netns
//! exec`: the latter remounts `/sys`, which hides `/sys/fs/cgroup` from
//! the process, and wren clients need cgroups. Sockets the harness itself
//! needs inside a namespace are made by [`Netns::run_in`], which runs a
//! closure on a thread that has entered the namespace (a socket stays in
//! the namespace it was made in, whichever thread uses it later).

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd::{self, CmdError};
use crate::owner;

/// Every namespace the harness makes starts with this.
pub const PREFIX: &str = "wrt-";

/// Where `ip netns` keeps its namespaces.
const RUN_NETNS: &str = "/run/netns";

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip`, `tc` or `bridge` failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The namespace file could not be opened.
    #[error("opening network namespace {path}: {source}")]
    Open {
        /// The file under /run/netns.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// setns(2) refused.
    #[error("entering network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// The cause.
        source: nix::Error,
    },
    /// The closure run inside the namespace panicked.
    #[error("a thread inside network namespace {name} panicked")]
    Panicked {
        /// The namespace.
        name: String,
    },
    /// Writing a sysctl inside the namespace failed.
    #[error("setting {key} in network namespace {name}: {source}")]
    Sysctl {
        /// The namespace.
        name: String,
        /// The sysctl, dotted.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A network namespace owned by the test; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with loopback up. `label` (short, `[a-z0-9]`)
    /// ends its name, to tell namespaces apart in `ip netns list`.
    pub fn create(label: &str) -> Result<Netns, NetnsError> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| {
            for name in sweep_stale() {
                eprintln!("wren-tests: removed stale network namespace {name}");
            }
        });
        let name = format!("{PREFIX}{}-{}-{label}", owner::tag(), owner::next_seq());
        cmd::run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The name under /run/netns.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, for `nsenter --net=` and setns(2).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(RUN_NETNS).join(&self.name)
    }

    /// Runs `ip -n <ns> args...`; returns its stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String, CmdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs several `ip` commands (one per line, without the leading `ip`)
    /// in one process: `ip -n <ns> -batch -`.
    pub fn ip_batch(&self, lines: &str) -> Result<(), CmdError> {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name, "-batch", "-"]);
        cmd::run_with_input(&mut c, Some(lines)).map(drop)
    }

    /// Runs `tc -n <ns> args...`.
    pub fn tc<I, S>(&self, args: I) -> Result<String, CmdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::run(Command::new("tc").args(["-n", &self.name]).args(args))
    }

    /// Runs `bridge -n <ns> args...`.
    pub fn bridge<I, S>(&self, args: I) -> Result<String, CmdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::run(Command::new("bridge").args(["-n", &self.name]).args(args))
    }

    /// A command that runs `program` inside the namespace (through
    /// `nsenter`, which execs it: the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// The processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        pids_in(&self.name)
    }

    /// Runs `f` on a thread that has entered the namespace and returns its
    /// result. Sockets made in `f` belong to the namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        let path = self.path();
        let file = File::open(&path).map_err(|source| NetnsError::Open { path, source })?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                    name: self.name.clone(),
                    source,
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetnsError::Panicked {
                    name: self.name.clone(),
                })
            })
        })
    }

    /// Sets a sysctl of this namespace (`net.ipv6.conf.all.disable_ipv6`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run_in(|| std::fs::write(&file, value))?
            .map_err(|source| NetnsError::Sysctl {
                name: self.name.clone(),
                key: key.to_owned(),
                source,
            })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = destroy(&self.name) {
            eprintln!("wren-tests: deleting network namespace {}: {e}", self.name);
        }
    }
}

/// SIGKILLs what runs inside a namespace, then deletes it.
fn destroy(name: &str) -> Result<(), CmdError> {
    let me = std::process::id() as i32;
    for pid in pids_in(name) {
        if pid != me {
            // Gone already is fine.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    cmd::run(Command::new("ip").args(["netns", "del", name])).map(drop)
}

fn pids_in(name: &str) -> Vec<i32> {
    cmd::run(Command::new("ip").args(["netns", "pids", name]))
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Deletes the harness's namespaces whose owner process is gone (and kills
/// what still runs in them); returns their names.
pub fn sweep_stale() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(RUN_NETNS) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let tag = rest.split('-').next().unwrap_or_default();
        if !owner::is_alive(tag) && destroy(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}
