//! Reading and writing cgroup files, with the path in every error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The node has no usable cgroup hierarchy.
    #[error("no usable cgroup hierarchy (neither cgroup v1 controllers nor cgroup2 are mounted)")]
    NoHierarchy,
    /// A cgroup name would escape its parent.
    #[error("invalid cgroup name {0:?}")]
    BadName(String),
    /// Reading a file failed.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("write {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Creating or removing a directory failed.
    #[error("{op} {path}: {source}")]
    Dir {
        /// `create` or `remove`.
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Processes were left after killing.
    #[error("cgroup {path} still has processes {pids:?} after killing them")]
    StillPopulated {
        /// The cgroup directory.
        path: PathBuf,
        /// What is left.
        pids: Vec<i32>,
    },
    /// The freezer did not reach the wanted state.
    #[error("freezer {path} did not become {state} in time")]
    Freezer {
        /// The cgroup directory.
        path: PathBuf,
        /// The wanted state.
        state: &'static str,
    },
}

impl CgroupError {
    /// Whether the error is a missing file or directory.
    pub fn is_not_found(&self) -> bool {
        let kind = match self {
            CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Dir { source, .. } => source.kind(),
            _ => return false,
        };
        kind == std::io::ErrorKind::NotFound
    }
}

/// Reads a whole (small) cgroup file.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file holding one number; `max` reads as `u64::MAX`.
pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read(path)?;
    let text = text.trim();
    if text == "max" {
        return Ok(u64::MAX);
    }
    text.parse().map_err(|_| CgroupError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a number: {text:?}"),
        ),
    })
}

/// Looks `key` up in a flat-keyed file (`key value` lines: `memory.stat`,
/// `cpu.stat`, `memory.events`); missing files and keys read as 0.
pub(crate) fn keyed(path: &Path, key: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `value` in one `write(2)`, as the kernel wants. The file must
/// exist (cgroupfs creates its files; tests pre-create them).
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    file.write_all(value.as_bytes()).map_err(err)
}

/// Creates a directory; an existing one is fine.
pub(crate) fn create_dir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Dir {
            op: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Removes a cgroup directory, retrying while the kernel reports it busy
/// (exiting processes leave it a moment later). A missing one is fine.
pub(crate) fn remove_dir(path: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(CgroupError::Dir {
                    op: "remove",
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}
