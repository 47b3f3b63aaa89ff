//! Who a task runs as: a configured user, or a dynamic uid leased from a
//! range so that no two running tasks share one.
//!
//! A lease is a file `<state>/uids/<uid>` created with `O_EXCL`; it lives
//! as long as the task (across agent restarts) and is removed by destroy.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a user could not be found or leased.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No such user.
    #[error("unknown user {0:?}")]
    Unknown(String),
    /// Looking the user up failed.
    #[error("look up user {name:?}: {source}")]
    Lookup {
        /// The name.
        name: String,
        /// The cause.
        source: nix::errno::Errno,
    },
    /// The task asked for root, which sandboxed drivers never use.
    #[error("user {0:?} is root; exec and qemu tasks never run as root (use raw_exec)")]
    Root(String),
    /// Every dynamic uid is taken.
    #[error("no free dynamic uid in {first}-{last}")]
    Exhausted {
        /// Range start.
        first: u32,
        /// Range end.
        last: u32,
    },
    /// The lease directory is unusable.
    #[error("uid lease {path}: {source}")]
    Lease {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A task's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskUser {
    /// User id.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// The lease file, for a dynamic uid.
    pub lease: Option<PathBuf>,
}

/// Looks a user name (or a numeric uid) up in the node's user database.
pub fn resolve(name: &str) -> Result<TaskUser, UserError> {
    let user = if let Ok(uid) = name.parse::<u32>() {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
    } else {
        nix::unistd::User::from_name(name)
    }
    .map_err(|source| UserError::Lookup {
        name: name.to_owned(),
        source,
    })?
    .ok_or_else(|| UserError::Unknown(name.to_owned()))?;
    Ok(TaskUser {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        lease: None,
    })
}

/// Leases a free uid in `range` (inclusive) for `owner`, skipping uids the
/// user database knows. The search starts at a point derived from
/// `owner`, so concurrent starts rarely race for the same uid (and the
/// `O_EXCL` create settles it when they do).
pub fn lease(dir: &Path, range: (u32, u32), owner: &str) -> Result<TaskUser, UserError> {
    let (first, last) = (range.0.min(range.1), range.0.max(range.1));
    std::fs::create_dir_all(dir).map_err(|source| UserError::Lease {
        path: dir.to_owned(),
        source,
    })?;
    let span = u64::from(last - first) + 1;
    let start = fnv(owner) % span;
    for i in 0..span {
        let uid = first + ((start + i) % span) as u32;
        if matches!(
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
            Ok(Some(_))
        ) {
            continue;
        }
        let path = dir.join(uid.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = f.write_all(owner.as_bytes());
                return Ok(TaskUser {
                    uid,
                    gid: uid,
                    lease: Some(path),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(UserError::Lease { path, source }),
        }
    }
    Err(UserError::Exhausted { first, last })
}

/// Gives a leased uid back.
pub fn release(lease: &Path) {
    let _ = std::fs::remove_file(lease);
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_released() {
        let dir = std::env::temp_dir().join(format!("wren-uids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = lease(&dir, (70_000, 70_001), "a").unwrap();
        let b = lease(&dir, (70_000, 70_001), "a").unwrap();
        assert_ne!(a.uid, b.uid);
        assert_eq!(a.gid, a.uid);
        assert!(matches!(
            lease(&dir, (70_000, 70_001), "c"),
            Err(UserError::Exhausted { .. })
        ));
        release(a.lease.as_deref().unwrap());
        let c = lease(&dir, (70_000, 70_001), "c").unwrap();
        assert_eq!(c.uid, a.uid);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn root_resolves_by_name_and_number() {
        assert_eq!(resolve("root").unwrap().uid, 0);
        assert_eq!(resolve("0").unwrap().uid, 0);
        assert!(matches!(
            resolve("no-such-user-wren"),
            Err(UserError::Unknown(_))
        ));
    }
}
