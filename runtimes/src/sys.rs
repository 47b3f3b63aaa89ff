//! The crate's unsafe fence: every system call that `nix` does not wrap
//! safely is one line here, inside a small function that returns a typed
//! error. Nothing else in the crate writes `unsafe` except where a closure
//! must be handed to `pre_exec` or a signal handler installed (see
//! [`crate::sandbox`] and [`crate::shim`]).
//!
//! Functions marked *async-signal-safe* are called in a forked child before
//! `exec`: they only issue the system call with arguments prepared before
//! the fork, and never allocate.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `landlock_ruleset_attr` as of Landlock ABI 6 (the kernel accepts a
/// longer struct from older callers and zero trailing fields from newer
/// ones, so this one layout serves every ABI).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LandlockRulesetAttr {
    pub handled_access_fs: u64,
    pub handled_access_net: u64,
    pub scoped: u64,
}

/// `landlock_path_beneath_attr`: packed in the kernel's uapi.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LandlockPathBeneathAttr {
    pub allowed_access: u64,
    pub parent_fd: i32,
}

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;

/// Returns the Landlock ABI version the kernel supports. `ENOSYS` (no
/// Landlock in the kernel, or qemu-user) and `EOPNOTSUPP` (built in but
/// disabled at boot) are errors, never assumed away.
pub(crate) fn landlock_abi_version() -> Result<u32, Errno> {
    let (nr, null, flags) = (
        CREATE_RULESET,
        std::ptr::null::<u8>(),
        LANDLOCK_CREATE_RULESET_VERSION,
    );
    // SAFETY: with a null attr, size 0 and the VERSION flag the kernel reads no memory.
    let r = unsafe { nix::libc::syscall(nr, null, 0usize, flags) };
    Errno::result(r).map(|v| v as u32)
}

const CREATE_RULESET: nix::libc::c_long = nix::libc::SYS_landlock_create_ruleset;

/// Creates a ruleset; the raw fd is returned so that a forked child can use
/// it without an owning wrapper. Async-signal-safe.
pub(crate) fn landlock_create_ruleset(attr: &LandlockRulesetAttr) -> Result<RawFd, Errno> {
    let (ptr, size) = (
        attr as *const LandlockRulesetAttr,
        size_of::<LandlockRulesetAttr>(),
    );
    // SAFETY: attr is a valid, initialized struct of the size passed.
    let r = unsafe { nix::libc::syscall(CREATE_RULESET, ptr, size, 0u32) };
    Errno::result(r).map(|fd| fd as RawFd)
}

/// Allows `access` beneath the file or directory `parent`. Async-signal-safe.
pub(crate) fn landlock_add_path_rule(
    ruleset: RawFd,
    parent: RawFd,
    access: u64,
) -> Result<(), Errno> {
    let attr = LandlockPathBeneathAttr {
        allowed_access: access,
        parent_fd: parent,
    };
    let (nr, ptr) = (
        nix::libc::SYS_landlock_add_rule,
        &attr as *const LandlockPathBeneathAttr,
    );
    // SAFETY: attr lives on this stack frame for the duration of the call.
    let r = unsafe { nix::libc::syscall(nr, ruleset, LANDLOCK_RULE_PATH_BENEATH, ptr, 0u32) };
    Errno::result(r).map(drop)
}

/// Enforces the ruleset on the calling thread (and what it executes).
/// Async-signal-safe.
pub(crate) fn landlock_restrict_self(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: passes only integers; the kernel validates the fd.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    Errno::result(r).map(drop)
}

/// Opens `path` with `O_PATH | O_CLOEXEC` and returns the raw fd, for a
/// Landlock rule. Async-signal-safe.
pub(crate) fn open_path_raw(path: &CStr) -> Result<RawFd, Errno> {
    // SAFETY: path is a valid NUL-terminated string.
    let r = unsafe { nix::libc::open(path.as_ptr(), nix::libc::O_PATH | nix::libc::O_CLOEXEC) };
    Errno::result(r)
}

/// Closes a raw fd obtained from the functions above. Async-signal-safe.
pub(crate) fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns fd and does not use it afterwards.
    let _ = unsafe { nix::libc::close(fd) };
}

/// Gives the allocator's free pages back to the kernel (glibc's
/// `malloc_trim(0)`). musl returns freed memory by itself and has no such
/// call: there this does nothing.
pub(crate) fn malloc_trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: takes only the allocator's own locks and releases pages of
    // free chunks; passes an integer.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// A parameter of glibc's allocator that [`mallopt`] sets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MallocParam {
    /// `M_ARENA_MAX`: how many arenas it makes.
    ArenaMax,
    /// `M_MMAP_THRESHOLD`: the size from which allocations are mappings of
    /// their own. Setting it also stops glibc raising it whenever such an
    /// allocation is freed.
    MmapThreshold,
}

/// Sets one of glibc's allocator parameters (`mallopt`). Nothing on musl,
/// whose allocator has neither.
pub(crate) fn mallopt(param: MallocParam, value: i32) {
    #[cfg(target_env = "gnu")]
    {
        let param = match param {
            MallocParam::ArenaMax => nix::libc::M_ARENA_MAX,
            MallocParam::MmapThreshold => nix::libc::M_MMAP_THRESHOLD,
        };
        // SAFETY: sets one allocator parameter; passes integers.
        unsafe {
            nix::libc::mallopt(param, value);
        }
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = (param, value);
}

/// A pidfd for any process (not only children), Linux 5.3 and later.
pub(crate) fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: passes only integers.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0u32) };
    let fd = Errno::result(r)? as RawFd;
    // SAFETY: the kernel just returned this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// bpf(2) for a command that returns nothing; `attr` is the command's
/// `union bpf_attr` member, a `repr(C)` struct of this crate.
pub(crate) fn bpf<T>(cmd: nix::libc::c_int, attr: &T) -> Result<(), Errno> {
    let (ptr, size) = (attr as *const T, size_of::<T>());
    // SAFETY: attr points to a live, initialized struct of the size passed.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_bpf, cmd, ptr, size) };
    Errno::result(r).map(drop)
}

/// bpf(2) for a command that returns a new file descriptor.
pub(crate) fn bpf_fd<T>(cmd: nix::libc::c_int, attr: &T) -> Result<OwnedFd, Errno> {
    let (ptr, size) = (attr as *const T, size_of::<T>());
    // SAFETY: attr points to a live, initialized struct of the size passed.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_bpf, cmd, ptr, size) };
    let fd = Errno::result(r)? as RawFd;
    // SAFETY: the kernel just returned this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// dup2(2) onto a fixed number, for a child about to exec.
/// Async-signal-safe.
pub(crate) fn dup2_raw(from: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: only integers; the caller owns `from`, and `to` is replaced by design.
    let r = unsafe { nix::libc::dup2(from, to) };
    Errno::result(r).map(drop)
}

/// Forks the calling process. Only for the single-threaded shim.
pub(crate) fn fork() -> Result<nix::unistd::ForkResult, Errno> {
    // SAFETY: called only by the shim's first stage, which is single-threaded,
    // so the child inherits no lock held by another thread.
    unsafe { nix::unistd::fork() }
}

/// Installs `handler` for `signal` (used by the shim, which must have a
/// handler for every signal it wants through its signalfd because it may be
/// PID 1 of a namespace, where unhandled signals are discarded).
pub(crate) fn set_handler(
    signal: nix::sys::signal::Signal,
    handler: extern "C" fn(nix::libc::c_int),
) -> Result<(), Errno> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handlers installed here are empty functions, trivially async-signal-safe.
    unsafe { nix::sys::signal::sigaction(signal, &action) }.map(drop)
}

/// Restores the default disposition of signal number `signal` (real-time
/// ones included, which `nix::sys::signal::Signal` cannot name).
/// Async-signal-safe.
pub(crate) fn set_default(signal: nix::libc::c_int) -> Result<(), Errno> {
    // SAFETY: SIG_DFL installs no handler code at all.
    let previous = unsafe { nix::libc::signal(signal, nix::libc::SIG_DFL) };
    if previous == nix::libc::SIG_ERR {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Registers `hook` to run in the forked child before `exec`.
pub(crate) fn pre_exec<F>(command: &mut std::process::Command, hook: F)
where
    F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: every hook passed here only makes async-signal-safe system calls on
    // data prepared before the fork (see sandbox::ChildPlan::enter).
    unsafe { command.pre_exec(hook) };
}
