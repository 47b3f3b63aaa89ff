//! Rotated log files in Nomad's layout: `<alloc>/alloc/logs/<task>.stdout.N`
//! and `.stderr.N`. The shim writes the newest index; when it reaches
//! `max_file_size` the next index starts, and indices older than the newest
//! `max_files` are deleted. A restarted task continues after the highest
//! existing index, as Nomad's rotator does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Rotation settings in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Files kept (at least 1).
    pub max_files: u32,
    /// Bytes per file before rotating (at least 1).
    pub max_file_bytes: u64,
}

impl Rotation {
    /// From a task's `logs` block (megabytes), with Nomad's defaults (10
    /// files of 10 MB) for zeros.
    pub fn from_config(logs: &wren_model::LogConfig) -> Rotation {
        let files = if logs.max_files == 0 {
            10
        } else {
            logs.max_files
        };
        let mb = if logs.max_file_size_mb == 0 {
            10
        } else {
            logs.max_file_size_mb
        };
        Rotation {
            max_files: files,
            max_file_bytes: u64::from(mb) * 1024 * 1024,
        }
    }
}

/// Why a log file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("log file {path}: {source}")]
pub struct LogError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// Writes one stream (`<task>.stdout` or `<task>.stderr`) into rotated files.
#[derive(Debug)]
pub struct Rotator {
    dir: PathBuf,
    prefix: String,
    rotation: Rotation,
    index: u32,
    file: Option<File>,
    size: u64,
}

impl Rotator {
    /// Continues the stream `prefix` in `dir`: appends to its highest
    /// existing index, or starts at 0.
    pub fn open(dir: &Path, prefix: &str, rotation: Rotation) -> Result<Rotator, LogError> {
        let rotation = Rotation {
            max_files: rotation.max_files.max(1),
            max_file_bytes: rotation.max_file_bytes.max(1),
        };
        let index = highest_index(dir, prefix).unwrap_or(0);
        let mut r = Rotator {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            rotation,
            index,
            file: None,
            size: 0,
        };
        r.open_current()?;
        Ok(r)
    }

    /// The file being written now.
    pub fn current_path(&self) -> PathBuf {
        self.path_of(self.index)
    }

    fn path_of(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}.{index}", self.prefix))
    }

    fn open_current(&mut self) -> Result<(), LogError> {
        let path = self.current_path();
        let err = |source| LogError {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        self.size = file.metadata().map_err(err)?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Appends `data`, splitting it across files at the size limit.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), LogError> {
        while !data.is_empty() {
            if self.size >= self.rotation.max_file_bytes {
                self.rotate()?;
            }
            let room = self.rotation.max_file_bytes - self.size;
            let n = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let (now, rest) = data.split_at(n);
            let path = self.current_path();
            let file = match self.file.as_mut() {
                Some(f) => f,
                None => {
                    self.open_current()?;
                    // open_current sets file on success.
                    self.file.as_mut().ok_or_else(|| LogError {
                        path: path.clone(),
                        source: std::io::Error::other("log file not open"),
                    })?
                }
            };
            file.write_all(now)
                .map_err(|source| LogError { path, source })?;
            self.size += n as u64;
            data = rest;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        self.file = None;
        self.index = self.index.saturating_add(1);
        self.open_current()?;
        // Keep the newest max_files indices.
        let keep_from = self.index.saturating_sub(self.rotation.max_files - 1);
        let mut old = keep_from;
        while old > 0 {
            old -= 1;
            match std::fs::remove_file(self.path_of(old)) {
                Ok(()) => {}
                // Older ones were purged by an earlier rotation.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(source) => {
                    return Err(LogError {
                        path: self.path_of(old),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The highest `N` among `<prefix>.N` files in `dir`.
fn highest_index(dir: &Path, prefix: &str) -> Option<u32> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_prefix(prefix)?
                .strip_prefix('.')?
                .parse::<u32>()
                .ok()
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("wren-logs-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn splits_at_the_limit_and_keeps_the_newest_files() {
        let tmp = TempDir::new("rotate");
        let mut r = Rotator::open(
            &tmp.0,
            "web.stdout",
            Rotation {
                max_files: 3,
                max_file_bytes: 4,
            },
        )
        .unwrap();
        r.write(b"abcdefghij").unwrap();
        assert_eq!(
            files(&tmp.0),
            vec![
                ("web.stdout.0".into(), "abcd".into()),
                ("web.stdout.1".into(), "efgh".into()),
                ("web.stdout.2".into(), "ij".into()),
            ]
        );
        r.write(b"klmnop").unwrap();
        assert_eq!(
            files(&tmp.0),
            vec![
                ("web.stdout.1".into(), "efgh".into()),
                ("web.stdout.2".into(), "ijkl".into()),
                ("web.stdout.3".into(), "mnop".into()),
            ]
        );
        r.write(b"q").unwrap();
        assert_eq!(r.current_path(), tmp.0.join("web.stdout.4"));
        let names: Vec<String> = files(&tmp.0).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["web.stdout.2", "web.stdout.3", "web.stdout.4"]);
    }

    #[test]
    fn a_restarted_task_continues_after_the_highest_index() {
        let tmp = TempDir::new("continue");
        std::fs::write(tmp.0.join("web.stdout.7"), "old").unwrap();
        std::fs::write(tmp.0.join("web.stderr.9"), "other stream").unwrap();
        let mut r = Rotator::open(
            &tmp.0,
            "web.stdout",
            Rotation {
                max_files: 2,
                max_file_bytes: 5,
            },
        )
        .unwrap();
        r.write(b"new").unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.0.join("web.stdout.7")).unwrap(),
            "oldne"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.0.join("web.stdout.8")).unwrap(),
            "w"
        );
    }

    #[test]
    fn defaults_follow_nomad() {
        let r = Rotation::from_config(&wren_model::LogConfig::default());
        assert_eq!(
            r,
            Rotation {
                max_files: 10,
                max_file_bytes: 10 << 20
            }
        );
    }
}
