//! Entering the sandbox: the steps a forked child takes before `exec`.
//!
//! [`ChildPlan::prepare`] turns a [`Sandbox`] into a list of [`Step`]s
//! with every C string built and every file opened *before* the fork.
//! [`ChildPlan::enter`] then runs in the child and only issues system
//! calls on that data — no allocation, no locks — so it is
//! async-signal-safe. When a step fails, the child writes the step's index
//! into a pipe, so the shim can say *which* step failed and not just the
//! errno.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use crate::shim::spec::{RlimitKind, Sandbox};
use crate::sys::{self, LandlockRulesetAttr};

/// Why a sandbox could not be prepared (before the fork).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A path holds a NUL byte.
    #[error("path {0:?} contains a nul byte")]
    Nul(String),
    /// A cgroup file could not be opened.
    #[error("open {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        source: Errno,
    },
}

/// One thing the child does before `exec`.
#[derive(Debug)]
pub(crate) enum Step {
    /// Unblock every signal and restore SIGPIPE's default: the shim blocks
    /// signals for its signalfd and, as a Rust program, ignores SIGPIPE;
    /// a task must inherit neither.
    ResetSignals,
    /// Make `fd` the task's fd `to`, kept open across exec.
    PassFd { fd: OwnedFd, to: RawFd },
    /// Write `0` into an open `cgroup.procs`: join that cgroup.
    Join { fd: OwnedFd, path: String },
    /// Leave namespaces.
    Unshare(CloneFlags),
    /// Set the file mode creation mask.
    Umask(Mode),
    /// mount(2).
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: MsFlags,
        data: Option<CString>,
    },
    /// mkdir(2).
    Mkdir { path: CString, mode: Mode },
    /// mknod(2).
    Mknod {
        path: CString,
        kind: SFlag,
        mode: Mode,
        dev: nix::libc::dev_t,
    },
    /// symlink(2).
    Symlink { target: CString, link: CString },
    /// setrlimit(2).
    Rlimit {
        resource: Resource,
        soft: u64,
        hard: u64,
    },
    /// setgroups(2).
    Groups(Vec<Gid>),
    /// setresgid(2).
    Gid(Gid),
    /// setresuid(2).
    Uid(Uid),
    /// prctl(PR_SET_NO_NEW_PRIVS).
    NoNewPrivs,
    /// landlock_create_ruleset(2).
    LandlockCreate(LandlockRulesetAttr),
    /// landlock_add_rule(2) for a path.
    LandlockRule { path: CString, rights: u64 },
    /// landlock_restrict_self(2).
    LandlockRestrict,
    /// chdir(2).
    Chdir(CString),
}

impl Step {
    /// What the step does, for the error message when it fails.
    pub(crate) fn describe(&self) -> String {
        match self {
            Step::ResetSignals => "reset signal mask and dispositions".to_owned(),
            Step::PassFd { to, .. } => format!("pass fd {to}"),
            Step::Join { path, .. } => format!("join cgroup {path}"),
            Step::Unshare(flags) => format!("unshare {flags:?}"),
            Step::Umask(m) => format!("umask {:o}", m.bits()),
            Step::Mount { target, fstype, .. } => {
                format!(
                    "mount {} on {}",
                    fstype
                        .as_deref()
                        .map(|f| f.to_string_lossy())
                        .unwrap_or_default(),
                    target.to_string_lossy()
                )
            }
            Step::Mkdir { path, .. } => format!("mkdir {}", path.to_string_lossy()),
            Step::Mknod { path, .. } => format!("mknod {}", path.to_string_lossy()),
            Step::Symlink { link, .. } => format!("symlink {}", link.to_string_lossy()),
            Step::Rlimit { resource, .. } => format!("setrlimit {resource:?}"),
            Step::Groups(_) => "setgroups".to_owned(),
            Step::Gid(g) => format!("setgid {g}"),
            Step::Uid(u) => format!("setuid {u}"),
            Step::NoNewPrivs => "set no_new_privs".to_owned(),
            Step::LandlockCreate(_) => "create landlock ruleset".to_owned(),
            Step::LandlockRule { path, .. } => {
                format!("landlock rule for {}", path.to_string_lossy())
            }
            Step::LandlockRestrict => "enforce landlock".to_owned(),
            Step::Chdir(p) => format!("chdir {}", p.to_string_lossy()),
        }
    }
}

/// The prepared steps and the pipe that reports a failing one.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    steps: Vec<Step>,
    ruleset: RawFd,
    report: OwnedFd,
}

fn cstr(s: &str) -> Result<CString, PrepareError> {
    CString::new(s).map_err(|_| PrepareError::Nul(s.to_owned()))
}

impl ChildPlan {
    /// Builds the steps for `sandbox`; `report` is the write end of the
    /// pipe the child names a failed step in.
    pub(crate) fn prepare(
        sandbox: &Sandbox,
        pass: Option<(OwnedFd, RawFd)>,
        report: OwnedFd,
    ) -> Result<ChildPlan, PrepareError> {
        let mut steps = vec![Step::ResetSignals];
        if let Some((fd, to)) = pass {
            steps.push(Step::PassFd { fd, to });
        }
        for path in &sandbox.join {
            let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
            let fd = nix::fcntl::open(Path::new(path), flags, Mode::empty()).map_err(|source| {
                PrepareError::Open {
                    path: path.clone(),
                    source,
                }
            })?;
            steps.push(Step::Join {
                fd,
                path: path.clone(),
            });
        }
        let mut unshare = CloneFlags::empty();
        if sandbox.mount_ns {
            unshare |= CloneFlags::CLONE_NEWNS;
        }
        if sandbox.ipc_ns {
            unshare |= CloneFlags::CLONE_NEWIPC;
        }
        if !unshare.is_empty() {
            steps.push(Step::Unshare(unshare));
        }
        if sandbox.mount_ns {
            mounts(sandbox, &mut steps)?;
        }
        for r in &sandbox.rlimits {
            let resource = match r.resource {
                RlimitKind::NoFile => Resource::RLIMIT_NOFILE,
                RlimitKind::Core => Resource::RLIMIT_CORE,
            };
            steps.push(Step::Rlimit {
                resource,
                soft: r.soft,
                hard: r.hard,
            });
        }
        if let Some(ids) = &sandbox.ids {
            steps.push(Step::Groups(
                ids.groups.iter().map(|g| Gid::from_raw(*g)).collect(),
            ));
            steps.push(Step::Gid(Gid::from_raw(ids.gid)));
            steps.push(Step::Uid(Uid::from_raw(ids.uid)));
        }
        if sandbox.no_new_privs {
            steps.push(Step::NoNewPrivs);
        }
        if let Some(ll) = &sandbox.landlock {
            steps.push(Step::LandlockCreate(LandlockRulesetAttr {
                handled_access_fs: crate::landlock::handled_fs(ll.abi),
                handled_access_net: 0,
                scoped: crate::landlock::scopes(ll.abi),
            }));
            for rule in &ll.rules {
                steps.push(Step::LandlockRule {
                    path: cstr(&rule.path)?,
                    rights: rule.rights,
                });
            }
            steps.push(Step::LandlockRestrict);
        }
        steps.push(Step::Chdir(cstr(&sandbox.work_dir)?));
        Ok(ChildPlan {
            steps,
            ruleset: -1,
            report,
        })
    }

    /// The steps, for messages.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Runs every step, in the child. Async-signal-safe: see the module doc.
    pub(crate) fn enter(&mut self) -> std::io::Result<()> {
        let ChildPlan {
            steps,
            ruleset,
            report,
        } = self;
        for (i, step) in steps.iter().enumerate() {
            if let Err(errno) = run(step, ruleset) {
                let index = (i as u32).to_ne_bytes();
                let _ = nix::unistd::write(report.as_fd(), &index);
                return Err(std::io::Error::from_raw_os_error(errno as i32));
            }
        }
        Ok(())
    }
}

/// The mount namespace's steps: stop propagation to the host, a private
/// `/proc`, a private `/dev` with only the allowed nodes, the task's tmp
/// over `/tmp`.
fn mounts(sandbox: &Sandbox, steps: &mut Vec<Step>) -> Result<(), PrepareError> {
    let none = None::<CString>;
    steps.push(Step::Mount {
        source: None,
        target: cstr("/")?,
        fstype: None,
        flags: MsFlags::MS_REC | MsFlags::MS_SLAVE,
        data: None,
    });
    if sandbox.proc {
        steps.push(Step::Mount {
            source: Some(cstr("proc")?),
            target: cstr("/proc")?,
            fstype: Some(cstr("proc")?),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            // hidepid=2 ("invisible" since 5.8, still accepted as 2):
            // the task sees only its own uid's processes, not the shim.
            data: Some(cstr("hidepid=2")?),
        });
    }
    if let Some(dev) = &sandbox.dev {
        steps.push(Step::Umask(Mode::empty()));
        steps.push(Step::Mount {
            source: Some(cstr("tmpfs")?),
            target: cstr("/dev")?,
            fstype: Some(cstr("tmpfs")?),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            data: Some(cstr(&format!("mode=755,size={}", dev.dev_bytes))?),
        });
        let mut made = std::collections::BTreeSet::new();
        for node in &dev.nodes {
            // Parents such as /dev/net for /dev/net/tun.
            let mut parent = Path::new(&node.path).parent();
            let mut parents = Vec::new();
            while let Some(p) = parent {
                if p == Path::new("/dev") || p == Path::new("/") {
                    break;
                }
                parents.push(p.to_string_lossy().into_owned());
                parent = p.parent();
            }
            for p in parents.into_iter().rev() {
                if made.insert(p.clone()) {
                    steps.push(Step::Mkdir {
                        path: cstr(&p)?,
                        mode: Mode::from_bits_truncate(0o755),
                    });
                }
            }
            let kind = if node.numbers.block {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFCHR
            };
            steps.push(Step::Mknod {
                path: cstr(&node.path)?,
                kind,
                // Only this task sees this /dev; what it holds is its to use.
                mode: Mode::from_bits_truncate(0o666),
                dev: nix::sys::stat::makedev(
                    u64::from(node.numbers.major),
                    u64::from(node.numbers.minor),
                ),
            });
        }
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            steps.push(Step::Symlink {
                target: cstr(target)?,
                link: cstr(link)?,
            });
        }
        steps.push(Step::Mkdir {
            path: cstr("/dev/shm")?,
            mode: Mode::from_bits_truncate(0o1777),
        });
        steps.push(Step::Mount {
            source: Some(cstr("shm")?),
            target: cstr("/dev/shm")?,
            fstype: Some(cstr("tmpfs")?),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            data: Some(cstr(&format!("mode=1777,size={}", dev.shm_bytes))?),
        });
        steps.push(Step::Mount {
            source: None,
            target: cstr("/dev")?,
            fstype: None,
            flags: MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NOEXEC,
            data: none.clone(),
        });
        steps.push(Step::Umask(Mode::from_bits_truncate(0o022)));
    }
    if let Some(tmp) = &sandbox.tmp {
        steps.push(Step::Mount {
            source: Some(cstr(tmp)?),
            target: cstr("/tmp")?,
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: none.clone(),
        });
        steps.push(Step::Mount {
            source: None,
            target: cstr("/tmp")?,
            fstype: None,
            flags: MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: none,
        });
    }
    Ok(())
}

/// One step, in the child. Async-signal-safe.
fn run(step: &Step, ruleset: &mut RawFd) -> Result<(), Errno> {
    match step {
        Step::ResetSignals => {
            let empty = nix::sys::signal::SigSet::empty();
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&empty),
                None,
            )?;
            // Handlers reset at exec by themselves; ignored signals do not.
            // SIGKILL and SIGSTOP cannot be changed, and the C library
            // refuses its own reserved real-time signals: both fine.
            for signal in 1..=64 {
                let _ = sys::set_default(signal);
            }
            Ok(())
        }
        Step::PassFd { fd, to } => {
            if fd.as_raw_fd() == *to {
                // Already there: only clear close-on-exec.
                let flags = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty());
                nix::fcntl::fcntl(fd, flags).map(drop)
            } else {
                // dup2 leaves the new descriptor without close-on-exec.
                sys::dup2_raw(fd.as_raw_fd(), *to)
            }
        }
        Step::Join { fd, .. } => nix::unistd::write(fd.as_fd(), b"0").map(drop),
        Step::Unshare(flags) => nix::sched::unshare(*flags),
        Step::Umask(mode) => {
            nix::sys::stat::umask(*mode);
            Ok(())
        }
        Step::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => nix::mount::mount(
            source.as_deref(),
            target.as_c_str(),
            fstype.as_deref(),
            *flags,
            data.as_deref(),
        ),
        Step::Mkdir { path, mode } => nix::unistd::mkdir(path.as_c_str(), *mode),
        Step::Mknod {
            path,
            kind,
            mode,
            dev,
        } => nix::sys::stat::mknod(path.as_c_str(), *kind, *mode, *dev),
        Step::Symlink { target, link } => {
            nix::unistd::symlinkat(target.as_c_str(), nix::fcntl::AT_FDCWD, link.as_c_str())
        }
        Step::Rlimit {
            resource,
            soft,
            hard,
        } => nix::sys::resource::setrlimit(*resource, rlim(*soft), rlim(*hard)),
        Step::Groups(groups) => nix::unistd::setgroups(groups),
        Step::Gid(gid) => nix::unistd::setresgid(*gid, *gid, *gid),
        Step::Uid(uid) => nix::unistd::setresuid(*uid, *uid, *uid),
        Step::NoNewPrivs => nix::sys::prctl::set_no_new_privs(),
        Step::LandlockCreate(attr) => {
            *ruleset = sys::landlock_create_ruleset(attr)?;
            Ok(())
        }
        Step::LandlockRule { path, rights } => {
            let fd = sys::open_path_raw(path)?;
            let r = sys::landlock_add_path_rule(*ruleset, fd, *rights);
            sys::close_raw(fd);
            r
        }
        Step::LandlockRestrict => {
            let r = sys::landlock_restrict_self(*ruleset);
            sys::close_raw(*ruleset);
            *ruleset = -1;
            r
        }
        Step::Chdir(path) => nix::unistd::chdir(path.as_c_str()),
    }
}

/// Reads the index of the failed step from the report pipe's read end
/// (non-blocking: the child wrote it before exiting, or wrote nothing).
pub(crate) fn failed_step(read: &OwnedFd) -> Option<usize> {
    let mut buf = [0u8; 4];
    match nix::unistd::read(read, &mut buf) {
        Ok(4) => Some(u32::from_ne_bytes(buf) as usize),
        _ => None,
    }
}

/// A limit as the C library's `rlim_t`: 64 bits on 64-bit targets, 32 on
/// armv7 glibc, where a limit that does not fit means unlimited.
// On 64-bit targets the conversion cannot fail; on armv7 it can.
#[allow(clippy::unnecessary_fallible_conversions)]
fn rlim(limit: u64) -> nix::libc::rlim_t {
    nix::libc::rlim_t::try_from(limit).unwrap_or(nix::libc::RLIM_INFINITY)
}
