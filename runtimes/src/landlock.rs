//! Landlock, spoken directly: the ABI probe, the access rights of each ABI
//! version, and the masks a rule may carry. The ruleset itself is built
//! and enforced in the forked child (see the `sandbox` module), with the
//! raw system calls in the `sys` module, because its rules name paths that
//! only exist inside the task's mount namespace (its private `/dev`).
//!
//! Enforcement is best effort *and reported*: rights the running kernel
//! does not know are left out of the handled set (the kernel would reject
//! them), and [`missing_rights`] names what an older ABI cannot restrict.

use nix::errno::Errno;

/// The newest ABI whose rights this crate uses (7 adds only audit flags).
pub const LATEST_ABI: u32 = 6;

/// Filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
pub mod fs {
    /// Execute a file.
    pub const EXECUTE: u64 = 1 << 0;
    /// Open a file for writing.
    pub const WRITE_FILE: u64 = 1 << 1;
    /// Open a file for reading.
    pub const READ_FILE: u64 = 1 << 2;
    /// List a directory.
    pub const READ_DIR: u64 = 1 << 3;
    /// Remove a directory.
    pub const REMOVE_DIR: u64 = 1 << 4;
    /// Remove a file.
    pub const REMOVE_FILE: u64 = 1 << 5;
    /// Create a character device.
    pub const MAKE_CHAR: u64 = 1 << 6;
    /// Create a directory.
    pub const MAKE_DIR: u64 = 1 << 7;
    /// Create a regular file.
    pub const MAKE_REG: u64 = 1 << 8;
    /// Create a unix socket.
    pub const MAKE_SOCK: u64 = 1 << 9;
    /// Create a named pipe.
    pub const MAKE_FIFO: u64 = 1 << 10;
    /// Create a block device.
    pub const MAKE_BLOCK: u64 = 1 << 11;
    /// Create a symbolic link.
    pub const MAKE_SYM: u64 = 1 << 12;
    /// Link or rename a file from or to a different directory (ABI 2).
    pub const REFER: u64 = 1 << 13;
    /// Truncate a file (ABI 3).
    pub const TRUNCATE: u64 = 1 << 14;
    /// ioctl on a device (ABI 5).
    pub const IOCTL_DEV: u64 = 1 << 15;

    /// Rights that apply to files (not only directories).
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
}

/// Scopes (`LANDLOCK_SCOPE_*`, ABI 6).
pub mod scope {
    /// Connecting to abstract unix sockets created outside the domain.
    pub const ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    /// Signalling processes outside the domain.
    pub const SIGNAL: u64 = 1 << 1;
}

/// The Landlock ABI of the running kernel, or why there is none (`ENOSYS`:
/// not built in, or qemu-user; `EOPNOTSUPP`: disabled at boot).
pub fn abi() -> Result<u32, Errno> {
    crate::sys::landlock_abi_version()
}

/// Every filesystem right `abi` knows.
pub fn handled_fs(abi: u32) -> u64 {
    let mut rights = (fs::MAKE_SYM << 1) - 1; // ABI 1: bits 0..=12
    if abi >= 2 {
        rights |= fs::REFER;
    }
    if abi >= 3 {
        rights |= fs::TRUNCATE;
    }
    if abi >= 5 {
        rights |= fs::IOCTL_DEV;
    }
    if abi == 0 { 0 } else { rights }
}

/// Every scope `abi` knows.
pub fn scopes(abi: u32) -> u64 {
    if abi >= 6 {
        scope::ABSTRACT_UNIX_SOCKET | scope::SIGNAL
    } else {
        0
    }
}

/// What `abi` cannot restrict compared with [`LATEST_ABI`], for the
/// task's events. Empty when nothing is missing.
pub fn missing_rights(abi: u32) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if abi < 2 {
        missing.push("linking and renaming across directories (abi 2)");
    }
    if abi < 3 {
        missing.push("truncate (abi 3)");
    }
    if abi < 5 {
        missing.push("ioctl on devices (abi 5)");
    }
    if abi < 6 {
        missing.push("signal and abstract unix socket scoping (abi 6)");
    }
    missing
}

/// Rights for a system path: read and execute, nothing else.
pub const READ_EXEC: u64 = fs::EXECUTE | fs::READ_FILE | fs::READ_DIR;

/// Rights for a path that may be read but not executed (`/proc`, logs).
pub const READ_ONLY: u64 = fs::READ_FILE | fs::READ_DIR;

/// Rights for a writable directory: everything except creating devices.
pub const READ_WRITE: u64 = !(fs::MAKE_CHAR | fs::MAKE_BLOCK) & ((fs::IOCTL_DEV << 1) - 1);

/// Rights for a device node: open for reading and writing, ioctl.
pub const DEVICE: u64 = fs::READ_FILE | fs::WRITE_FILE | fs::IOCTL_DEV;

/// The rights of a policy [`Access`](crate::policy::Access).
pub fn rights(access: crate::policy::Access) -> u64 {
    use crate::policy::Access;
    match access {
        Access::ReadExec => READ_EXEC,
        Access::Read => READ_ONLY,
        Access::ReadWrite => READ_WRITE,
        Access::Device => DEVICE,
    }
}

/// Clamps `rights` to what `abi` handles and to what a rule on a file (as
/// opposed to a directory) may carry; the kernel rejects anything else.
pub fn rule_rights(rights: u64, abi: u32, is_dir: bool) -> u64 {
    let rights = rights & handled_fs(abi);
    if is_dir { rights } else { rights & fs::FILE }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi() {
        assert_eq!(handled_fs(0), 0);
        assert_eq!(handled_fs(1), 0x1fff);
        assert_eq!(handled_fs(2), 0x3fff);
        assert_eq!(handled_fs(3), 0x7fff);
        assert_eq!(handled_fs(4), 0x7fff);
        assert_eq!(handled_fs(5), 0xffff);
        assert_eq!(handled_fs(7), 0xffff);
        assert_eq!(scopes(5), 0);
        assert_eq!(scopes(6), 3);
    }

    #[test]
    fn writable_dirs_cannot_make_devices() {
        assert_eq!(READ_WRITE & fs::MAKE_CHAR, 0);
        assert_eq!(READ_WRITE & fs::MAKE_BLOCK, 0);
        assert_ne!(READ_WRITE & fs::MAKE_REG, 0);
        assert_ne!(READ_WRITE & fs::REFER, 0);
    }

    #[test]
    fn file_rules_drop_directory_rights() {
        assert_eq!(
            rule_rights(READ_EXEC, 6, false),
            fs::EXECUTE | fs::READ_FILE
        );
        assert_eq!(
            rule_rights(DEVICE, 4, false),
            fs::READ_FILE | fs::WRITE_FILE
        );
        assert_eq!(
            rule_rights(READ_WRITE, 1, true),
            0x1fff & !(fs::MAKE_CHAR | fs::MAKE_BLOCK)
        );
    }

    #[test]
    fn older_abis_are_reported() {
        assert!(missing_rights(LATEST_ABI).is_empty());
        assert_eq!(missing_rights(3).len(), 2);
        assert_eq!(missing_rights(1).len(), 4);
    }
}
