//! Where the fingerprinter looks: the procfs, sysfs, `/dev` and `/etc`
//! roots, so that tests and `wren node fingerprint --root` can point it at
//! a fixture tree instead of the running machine.

use std::path::{Path, PathBuf};

/// The directory trees the fingerprinter reads. The product uses
/// [`Roots::default`] (the real `/`, `/proc`, `/sys`, `/dev` and `/etc`);
/// tests use [`Roots::under`] a fixture tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The machine's `/`, used for absolute paths found in its own files
    /// (mount points in `/proc/self/mounts`).
    pub rootfs: PathBuf,
    /// procfs, normally `/proc`.
    pub proc: PathBuf,
    /// sysfs, normally `/sys`.
    pub sys: PathBuf,
    /// Device nodes, normally `/dev`.
    pub dev: PathBuf,
    /// Configuration, normally `/etc` (`os-release`, `nv_tegra_release`).
    pub etc: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        Roots::under("/")
    }
}

impl Roots {
    /// Roots of a whole machine's tree at `dir`: `dir/proc`, `dir/sys`,
    /// `dir/dev`, `dir/etc`.
    pub fn under(dir: impl AsRef<Path>) -> Roots {
        let dir = dir.as_ref();
        Roots {
            rootfs: dir.to_path_buf(),
            proc: dir.join("proc"),
            sys: dir.join("sys"),
            dev: dir.join("dev"),
            etc: dir.join("etc"),
        }
    }

    /// Whether these are the running machine's own roots.
    pub fn is_host(&self) -> bool {
        *self == Roots::default()
    }

    /// `rel` under procfs.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.proc.join(rel)
    }

    /// `rel` under sysfs.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sys.join(rel)
    }

    /// `rel` under `/dev`.
    pub fn dev(&self, rel: &str) -> PathBuf {
        self.dev.join(rel)
    }

    /// `rel` under `/etc`.
    pub fn etc(&self, rel: &str) -> PathBuf {
        self.etc.join(rel)
    }

    /// Maps an absolute path as the machine names it (a mount point, a
    /// device node) to where it is read here: `/sys/...` under the sysfs
    /// root, `/proc/...`, `/dev/...` and `/etc/...` likewise, anything else
    /// under `rootfs`.
    pub fn map(&self, machine_path: &Path) -> PathBuf {
        let rel = machine_path.strip_prefix("/").unwrap_or(machine_path);
        let mut parts = rel.components();
        let first = parts.next().map(|c| c.as_os_str().to_owned());
        let rest = parts.as_path();
        let base = match first.as_ref().and_then(|f| f.to_str()) {
            Some("sys") => &self.sys,
            Some("proc") => &self.proc,
            Some("dev") => &self.dev,
            Some("etc") => &self.etc,
            _ => return self.rootfs.join(rel),
        };
        base.join(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_sends_each_tree_to_its_root() {
        let r = Roots {
            rootfs: "/fx".into(),
            proc: "/p".into(),
            sys: "/s".into(),
            dev: "/d".into(),
            etc: "/e".into(),
        };
        assert_eq!(
            r.map(Path::new("/sys/fs/cgroup")),
            Path::new("/s/fs/cgroup")
        );
        assert_eq!(r.map(Path::new("/proc/self")), Path::new("/p/self"));
        assert_eq!(r.map(Path::new("/dev/ttyUSB0")), Path::new("/d/ttyUSB0"));
        assert_eq!(
            r.map(Path::new("/var/lib/wren")),
            Path::new("/fx/var/lib/wren")
        );
        assert_eq!(r.map(Path::new("/sys")), Path::new("/s"));
    }

    #[test]
    fn default_is_the_real_machine() {
        let r = Roots::default();
        assert_eq!(r.proc, Path::new("/proc"));
        assert_eq!(r.sys, Path::new("/sys"));
        assert!(r.is_host());
        assert!(!Roots::under("/tmp/x").is_host());
    }
}
