//! Helpers shared by the integration tests: fixture paths, private copies
//! of fixture trees (symlinks kept), and the CI rule for skipped tests.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use wren_fingerprint::{Fingerprint, Fingerprinter};

/// A fixture tree under `testdata/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Fingerprints a fixture with the default data dir.
pub fn fingerprint_fixture(name: &str) -> Fingerprint {
    Fingerprinter::fixture(&fixture(name), "/var/lib/wren")
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
        .fingerprint()
}

/// A directory of its own for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("wren-fp-{tag}-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Make anything a test locked readable again so it can be removed.
        restore_permissions(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn restore_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.file_type().is_symlink() {
            continue;
        }
        let _ = fs::set_permissions(
            &p,
            fs::Permissions::from_mode(if m.is_dir() { 0o755 } else { 0o644 }),
        );
        if m.is_dir() {
            restore_permissions(&p);
        }
    }
}

/// Copies a tree, recreating symlinks as symlinks (with the same target).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every regular file and symlink under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Skips a test whose capability is missing, unless CI=true, where a
/// missing capability is a failure.
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("required on CI: {why}");
    }
    eprintln!("skipped: {why}");
}

/// The attributes as `key=value` lines, for readable assertion failures.
pub fn dump(fp: &Fingerprint) -> String {
    let mut s = String::new();
    for (k, v) in &fp.attributes {
        s.push_str(&format!("{k}={v}\n"));
    }
    for w in &fp.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}
