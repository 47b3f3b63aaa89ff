//! Reading procfs, sysfs and `/etc` without trusting them: every read is
//! bounded, only regular files are opened (a FIFO or a device node where a
//! file should be is reported, never blocked on), and each failure becomes
//! a [`Warning`] instead of a panic or an abort of the whole fingerprint.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Roots, Warning};

/// Largest file read by default; sysfs attributes are one page.
pub(crate) const SMALL: u64 = 1 << 20;
/// Largest file read where the kernel writes a lot (`cpuinfo` on many
/// cores, `mounts` on a busy host).
pub(crate) const LARGE: u64 = 8 << 20;
/// Most entries taken from one directory.
const MAX_DIR_ENTRIES: usize = 10_000;
/// Longest attribute value kept.
const MAX_VALUE: usize = 4096;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file system said no (permission, symlink loop, I/O error).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A directory, FIFO, socket or device sits where a file should be.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than anything the kernel writes there.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

/// Reads a whole file of at most `limit` bytes; `Ok(None)` when it does
/// not exist (a missing sysfs attribute is usually an answer, not an error).
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Option<String>, ReadError> {
    let io_err = |source: io::Error| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err)?;
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf).map_err(io_err)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Makes a value fit for an attribute: trims whitespace and NULs (device
/// tree strings end in one), turns control characters into spaces and
/// caps the length.
pub(crate) fn clean(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = spaced.trim().to_owned();
    if out.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// What one fingerprint pass reads through: the roots, and the warnings
/// collected on the way.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub roots: &'a Roots,
    warnings: Vec<Warning>,
}

impl<'a> Ctx<'a> {
    pub fn new(roots: &'a Roots) -> Ctx<'a> {
        Ctx {
            roots,
            warnings: Vec::new(),
        }
    }

    pub fn into_warnings(self) -> Vec<Warning> {
        self.warnings
    }

    /// Records that a fact could not be established.
    pub fn warn(&mut self, area: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            area: area.to_owned(),
            message: message.into(),
        });
    }

    /// An optional file: `None` when absent (silently) or unreadable (with
    /// a warning).
    pub fn read(&mut self, area: &str, path: &Path) -> Option<String> {
        self.read_limited(area, path, SMALL)
    }

    fn read_limited(&mut self, area: &str, path: &Path, limit: u64) -> Option<String> {
        match read_bounded(path, limit) {
            Ok(v) => v,
            Err(e) => {
                self.warn(area, e.to_string());
                None
            }
        }
    }

    /// A file every Linux machine has: absence is worth a warning too.
    pub fn read_required(&mut self, area: &str, path: &Path, limit: u64) -> Option<String> {
        match read_bounded(path, limit) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                self.warn(area, format!("{} is missing", path.display()));
                None
            }
            Err(e) => {
                self.warn(area, e.to_string());
                None
            }
        }
    }

    /// A one-line attribute every Linux machine has: warns when it is
    /// missing, unreadable or empty.
    pub fn required_attr(&mut self, area: &str, path: &Path) -> Option<String> {
        let v = self.read_required(area, path, SMALL)?;
        let v = clean(&v);
        if v.is_empty() {
            self.warn(area, format!("{} is empty", path.display()));
            return None;
        }
        Some(v)
    }

    /// An optional one-line attribute, [`clean`]ed; `None` when absent,
    /// unreadable or empty.
    pub fn attr(&mut self, area: &str, path: &Path) -> Option<String> {
        self.read(area, path)
            .map(|s| clean(&s))
            .filter(|s| !s.is_empty())
    }

    /// A hexadecimal sysfs attribute such as `0x10de`, as a number.
    pub fn hex(&mut self, area: &str, path: &Path) -> Option<u32> {
        let s = self.attr(area, path)?;
        let digits = s.strip_prefix("0x").unwrap_or(&s);
        match u32::from_str_radix(digits, 16) {
            Ok(n) => Some(n),
            Err(_) => {
                self.warn(
                    area,
                    format!("{}: {s:?} is not a hexadecimal number", path.display()),
                );
                None
            }
        }
    }

    /// The sorted entry names of a directory; empty when it is absent,
    /// with a warning when it is unreadable.
    pub fn list(&mut self, area: &str, dir: &Path) -> Vec<String> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                self.warn(area, format!("cannot list {}: {e}", dir.display()));
                return Vec::new();
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => {
                    if names.len() == MAX_DIR_ENTRIES {
                        self.warn(
                            area,
                            format!(
                                "{} has more than {MAX_DIR_ENTRIES} entries; the rest are ignored",
                                dir.display()
                            ),
                        );
                        break;
                    }
                    names.push(e.file_name().to_string_lossy().into_owned());
                }
                Err(e) => {
                    self.warn(area, format!("cannot list {}: {e}", dir.display()));
                    break;
                }
            }
        }
        names.sort();
        names
    }

    /// The entries of a sysfs class or bus directory that are
    /// directories (following their symlinks), with their paths; anything
    /// else there (a file, a dangling link, a loop) gets a warning.
    pub fn device_dirs(&mut self, area: &str, dir: &Path) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for name in self.list(area, dir) {
            let path = dir.join(&name);
            match fs::metadata(&path) {
                Ok(m) if m.is_dir() => out.push((name, path)),
                Ok(_) => self.warn(area, format!("{} is not a directory", path.display())),
                Err(e) => self.warn(area, format!("cannot follow {}: {e}", path.display())),
            }
        }
        out
    }

    /// The final name of a symlink's target (`.../drivers/ftdi_sio` gives
    /// `ftdi_sio`); `None` when it is not a symlink, with a warning when it
    /// does not lead anywhere (dangling, a loop).
    pub fn link_name(&mut self, area: &str, link: &Path) -> Option<String> {
        let target = match fs::read_link(link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return None,
            Err(e) => {
                self.warn(area, format!("cannot read link {}: {e}", link.display()));
                return None;
            }
        };
        if let Err(e) = fs::metadata(link) {
            self.warn(area, format!("cannot follow {}: {e}", link.display()));
            return None;
        }
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// Resolves a path with its symlinks (sysfs class entries point into
    /// `/sys/devices`); a loop or a dangling link gives a warning.
    pub fn canonical(&mut self, area: &str, path: &Path) -> Option<PathBuf> {
        match fs::canonicalize(path) {
            Ok(p) => Some(p),
            Err(e) => {
                self.warn(area, format!("cannot resolve {}: {e}", path.display()));
                None
            }
        }
    }

    /// Whether a machine path such as `/dev/ttyUSB0` exists under the
    /// roots (a dangling symlink does not).
    pub fn dev_exists(&self, machine_path: &str) -> bool {
        self.roots.map(Path::new(machine_path)).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_nuls_and_controls() {
        assert_eq!(
            clean("Raspberry Pi 4 Model B Rev 1.4\0"),
            "Raspberry Pi 4 Model B Rev 1.4"
        );
        assert_eq!(clean("  a\tb\x07c \n"), "a b c");
        assert_eq!(clean("\x01\x02\x03"), "");
        assert_eq!(clean(&"é".repeat(5000)).len(), MAX_VALUE);
    }

    #[test]
    fn missing_is_none_and_dirs_are_errors() {
        let dir = std::env::temp_dir();
        assert!(
            read_bounded(&dir.join("wren-fingerprint-surely-missing-file"), SMALL)
                .is_ok_and(|v| v.is_none())
        );
        assert!(matches!(
            read_bounded(&dir, SMALL),
            Err(ReadError::NotAFile { .. })
        ));
    }
}
