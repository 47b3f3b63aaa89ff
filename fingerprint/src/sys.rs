//! The three syscalls std and nix do not wrap: Landlock's version query,
//! KVM's API version ioctl, and a `clone` that only checks that new
//! namespaces can be created. Each `unsafe` block is one call inside a
//! function that returns a typed error.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;

/// `LANDLOCK_CREATE_RULESET_VERSION` from `<linux/landlock.h>`.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
/// `KVM_GET_API_VERSION`: `_IO(KVMIO, 0x00)` with `KVMIO` = 0xAE.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
/// Stack for the probe child, which only returns.
const CLONE_STACK: usize = 64 * 1024;

/// Landlock's ABI version; `ENOSYS` when the kernel lacks Landlock,
/// `EOPNOTSUPP` when it was disabled at boot.
pub(crate) fn landlock_abi() -> Result<u32, Errno> {
    let (nr, null) = (
        libc::SYS_landlock_create_ruleset,
        std::ptr::null::<libc::c_void>(),
    );
    let flags = LANDLOCK_CREATE_RULESET_VERSION;
    // SAFETY: with a NULL attr, size 0 and only the VERSION flag the kernel reads and writes no memory and returns an integer.
    let ret = unsafe { libc::syscall(nr, null, 0usize, flags) };
    if ret < 0 {
        return Err(Errno::last());
    }
    u32::try_from(ret).map_err(|_| Errno::EOVERFLOW)
}

/// `KVM_GET_API_VERSION` on an open `/dev/kvm`.
pub(crate) fn kvm_api_version(kvm: &File) -> Result<i32, Errno> {
    // SAFETY: KVM_GET_API_VERSION takes no argument and returns an int; the descriptor stays open for the call because `kvm` is borrowed.
    let ret = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    Errno::result(ret)
}

/// Creates a child in new namespaces of the given kinds, which exits at
/// once, and reaps it: success means such namespaces can be created.
pub(crate) fn can_clone(flags: CloneFlags) -> Result<(), Errno> {
    let mut stack = vec![0u8; CLONE_STACK];
    let child = Box::new(|| 0);
    // SAFETY: the child only returns 0: it allocates nothing and takes no lock, so state copied from a multi-threaded parent cannot hurt it; without CLONE_VM it runs on its own copy of `stack`, which outlives the call.
    let pid = unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }?;
    loop {
        match waitpid(pid, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            // Someone else (a SIGCHLD reaper) collected it: it existed.
            Err(Errno::ECHILD) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
