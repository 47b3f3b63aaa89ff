//! Allocation directories in Nomad's layout:
//!
//! ```text
//! <alloc_dir>/<alloc id>/
//!     alloc/            shared by the group's tasks
//!         data/         kept for the allocation's life (mode 1777)
//!         logs/         <task>.stdout.N, <task>.stderr.N (written by the shims)
//!         tmp/          scratch (mode 1777)
//!     <task>/
//!         local/        the task's own files
//!         secrets/      not readable by other tasks (mode 0700)
//!         tmp/          the task's scratch
//! ```
//!
//! Ids and task names come from the servers: a name that is not a single
//! safe path component is refused, so nothing is ever created outside the
//! allocation's directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why an allocation directory could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum AllocDirError {
    /// An id or task name that is not a safe directory name.
    #[error("{what} {name:?} is not a valid directory name")]
    BadName {
        /// What it names.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Whether `name` can be one path component: not empty, not `.` or `..`,
/// no `/` or NUL, at most 200 bytes.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

fn checked<'a>(what: &'static str, name: &'a str) -> Result<&'a str, AllocDirError> {
    if safe_name(name) {
        Ok(name)
    } else {
        Err(AllocDirError::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<(), AllocDirError> {
    std::fs::create_dir_all(path).map_err(|source| AllocDirError::Io {
        op: "create",
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        AllocDirError::Io {
            op: "chmod",
            path: path.to_owned(),
            source,
        }
    })
}

/// One allocation's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocDir {
    /// `<alloc_dir>/<alloc id>`.
    pub root: PathBuf,
}

impl AllocDir {
    /// The directory of `alloc_id` under `base` (nothing is created).
    pub fn new(base: &Path, alloc_id: &str) -> Result<AllocDir, AllocDirError> {
        Ok(AllocDir {
            root: base.join(checked("allocation id", alloc_id)?),
        })
    }

    /// `<root>/alloc`, shared by the tasks.
    pub fn shared(&self) -> PathBuf {
        self.root.join("alloc")
    }

    /// `<root>/alloc/logs`.
    pub fn logs(&self) -> PathBuf {
        self.shared().join("logs")
    }

    /// `<root>/<task>`.
    pub fn task_dir(&self, task: &str) -> Result<PathBuf, AllocDirError> {
        Ok(self.root.join(checked("task name", task)?))
    }

    /// Creates the shared part (idempotent). Every directory on the way is
    /// passable by others (0711/0755), so an exec task's unprivileged user
    /// reaches its own directory.
    pub fn build(&self) -> Result<(), AllocDirError> {
        if let Some(base) = self.root.parent() {
            mkdir(base, 0o711)?;
        }
        mkdir(&self.root, 0o711)?;
        let shared = self.shared();
        mkdir(&shared, 0o755)?;
        mkdir(&shared.join("data"), 0o1777)?;
        mkdir(&shared.join("tmp"), 0o1777)?;
        mkdir(&shared.join("logs"), 0o755)?;
        Ok(())
    }

    /// Creates a task's directories (idempotent) and returns the task dir.
    /// The exec driver hands the task dir to the task's user afterwards.
    pub fn build_task(&self, task: &str) -> Result<PathBuf, AllocDirError> {
        let dir = self.task_dir(task)?;
        if !dir.exists() {
            mkdir(&dir, 0o755)?;
        }
        for (sub, mode) in [("local", 0o755), ("tmp", 0o1777), ("secrets", 0o700)] {
            let p = dir.join(sub);
            if !p.exists() {
                mkdir(&p, mode)?;
            }
        }
        Ok(dir)
    }

    /// Removes the whole directory (idempotent).
    pub fn destroy(&self) -> Result<(), AllocDirError> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AllocDirError::Io {
                op: "remove",
                path: self.root.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("wren-allocdir-{tag}-{}-{n}", std::process::id()))
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn layout_is_nomads() {
        let base = temp("layout");
        let d = AllocDir::new(&base, "a1").unwrap();
        d.build().unwrap();
        let t = d.build_task("web").unwrap();
        assert_eq!(t, base.join("a1/web"));
        for p in ["a1/alloc/data", "a1/alloc/logs", "a1/alloc/tmp"] {
            assert!(base.join(p).is_dir(), "{p}");
        }
        for p in ["local", "secrets", "tmp"] {
            assert!(t.join(p).is_dir(), "{p}");
        }
        assert_eq!(mode(&base.join("a1/alloc/data")), 0o1777);
        assert_eq!(mode(&t.join("secrets")), 0o700);
        assert_eq!(mode(&base.join("a1")), 0o711);
        // Idempotent, and destroy removes everything.
        d.build().unwrap();
        d.build_task("web").unwrap();
        d.destroy().unwrap();
        d.destroy().unwrap();
        assert!(!base.join("a1").exists());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn names_from_the_wire_cannot_escape() {
        let base = temp("names");
        for bad in ["", ".", "..", "../x", "a/b", "x\0y"] {
            assert!(AllocDir::new(&base, bad).is_err(), "{bad:?}");
        }
        let d = AllocDir::new(&base, "ok").unwrap();
        for bad in ["..", "a/../../etc", ""] {
            assert!(d.task_dir(bad).is_err(), "{bad:?}");
        }
        assert!(!base.exists());
    }
}
