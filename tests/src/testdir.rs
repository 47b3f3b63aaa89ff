//! A directory per test under `$TMPDIR/wren-tests/`: removed when the test
//! passes, kept (and its path printed) when the test panics, so the logs
//! and data dirs of a failure can be read afterwards. Directories of test
//! processes that are gone are removed the first time a new one is made,
//! so killed runs do not fill the disk.

use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::owner;

/// A test's own directory.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
    keep: bool,
}

/// The parent of every test directory.
pub fn root() -> PathBuf {
    std::env::temp_dir().join("wren-tests")
}

impl TestDir {
    /// Creates `$TMPDIR/wren-tests/<test>.<owner>.<n>`.
    pub fn new(test: &str) -> std::io::Result<TestDir> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| {
            for stale in stale_dirs() {
                let _ = std::fs::remove_dir_all(stale);
            }
        });
        let name: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let path = root().join(format!("{name}.{}.{}", owner::tag(), owner::next_seq()));
        std::fs::create_dir_all(&path)?;
        Ok(TestDir { path, keep: false })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Creates (if needed) and returns a subdirectory.
    pub fn subdir(&self, rel: impl AsRef<Path>) -> std::io::Result<PathBuf> {
        let p = self.path.join(rel);
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }

    /// Keeps the directory even when the test passes.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || self.keep {
            eprintln!("wren-tests: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Test directories whose owner process is gone.
fn stale_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let mut parts = name.rsplitn(3, '.');
            let _seq = parts.next()?;
            let tag = parts.next()?;
            (!owner::is_alive(tag)).then(|| e.path())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_success_and_stale_ones_are_found() {
        let dir = TestDir::new("testdir/self test").unwrap();
        let p = dir.path().to_owned();
        assert!(p.is_dir());
        assert!(!p.file_name().unwrap().to_string_lossy().contains('/'));
        drop(dir);
        assert!(!p.exists());

        let stale = root().join(format!("stale.4294967295x1.{}", owner::next_seq()));
        std::fs::create_dir_all(&stale).unwrap();
        assert!(stale_dirs().contains(&stale));
        std::fs::remove_dir_all(&stale).unwrap();
    }
}
