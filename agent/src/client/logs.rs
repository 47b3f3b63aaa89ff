//! Reading a task's rotated log files as one stream. The shim writes
//! `<task>.<stream>.N` and starts file `N + 1` exactly when file `N` holds
//! `max_file_size` bytes, so offset `o` of the stream is in file
//! `o / max_file_size` at `o % max_file_size`. Files older than the newest
//! `max_files` are deleted by rotation; reading from an offset they held
//! continues at the oldest file left.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest piece returned by one read.
pub const MAX_CHUNK: usize = 64 * 1024;

/// A piece of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Piece {
    /// Where `data` starts in the stream.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// Where the stream currently ends.
    pub end: u64,
}

/// One stream (`<task>.stdout` or `<task>.stderr`) in a logs directory.
#[derive(Debug, Clone)]
pub struct Stream {
    dir: PathBuf,
    prefix: String,
    file_bytes: u64,
}

impl Stream {
    /// The stream `<task>.<kind>` in `dir`, rotated every `file_bytes`.
    pub fn new(dir: &Path, task: &str, kind: &str, file_bytes: u64) -> Stream {
        Stream {
            dir: dir.to_owned(),
            prefix: format!("{task}.{kind}"),
            file_bytes: file_bytes.max(1),
        }
    }

    fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{}.{index}", self.prefix))
    }

    /// The indices present, lowest and highest.
    fn indices(&self) -> Option<(u64, u64)> {
        let entries = std::fs::read_dir(&self.dir).ok()?;
        let mut range: Option<(u64, u64)> = None;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&self.prefix))
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            range = Some(match range {
                None => (n, n),
                Some((lo, hi)) => (lo.min(n), hi.max(n)),
            });
        }
        range
    }

    /// Up to `max` bytes from `offset` (or from the oldest byte still kept,
    /// when rotation deleted `offset`).
    pub fn read(&self, offset: u64, max: usize) -> std::io::Result<Piece> {
        let Some((lo, hi)) = self.indices() else {
            return Ok(Piece {
                offset,
                data: Vec::new(),
                end: offset,
            });
        };
        let last_len = std::fs::metadata(self.path(hi)).map_or(0, |m| m.len());
        let end = hi.saturating_mul(self.file_bytes).saturating_add(last_len);
        let first = lo.saturating_mul(self.file_bytes);
        let mut at = offset.clamp(first, end);
        let mut data = Vec::new();
        while data.len() < max && at < end {
            let index = at / self.file_bytes;
            let within = at % self.file_bytes;
            let mut f = match std::fs::File::open(self.path(index)) {
                Ok(f) => f,
                // Rotated away between listing and opening: skip to the next.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !data.is_empty() {
                        break;
                    }
                    at = (index + 1).saturating_mul(self.file_bytes);
                    continue;
                }
                Err(e) => return Err(e),
            };
            f.seek(SeekFrom::Start(within))?;
            let want = (max - data.len()) as u64;
            let before = data.len();
            f.take(want).read_to_end(&mut data)?;
            let got = (data.len() - before) as u64;
            if got == 0 {
                // A short file that is not the last: continue in the next.
                if index >= hi || !data.is_empty() {
                    break;
                }
                at = (index + 1).saturating_mul(self.file_bytes);
                continue;
            }
            at += got;
        }
        let start = at - data.len() as u64;
        Ok(Piece {
            offset: start,
            data,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_runtimes::logs::{Rotation, Rotator};

    fn temp(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wren-logread-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn offsets_run_across_rotated_files() {
        let dir = temp("rotated");
        let rotation = Rotation {
            max_files: 3,
            max_file_bytes: 10,
        };
        let mut w = Rotator::open(&dir, "web.stdout", rotation).unwrap();
        let text: Vec<u8> = (0..25u8).map(|i| b'a' + i).collect();
        w.write(&text).unwrap();
        let s = Stream::new(&dir, "web", "stdout", 10);
        let all = s.read(0, 1000).unwrap();
        assert_eq!(all.data, text);
        assert_eq!((all.offset, all.end), (0, 25));
        let mid = s.read(7, 6).unwrap();
        assert_eq!(mid.data, b"hijklm");
        assert_eq!(mid.offset, 7);
        let tail = s.read(25, 10).unwrap();
        assert!(tail.data.is_empty());
        assert_eq!(tail.offset, 25);
        // Rotation drops the oldest file: reading from 0 starts at 10.
        w.write(&[b'!'; 10]).unwrap();
        let after = s.read(0, 1000).unwrap();
        assert_eq!(after.offset, 10);
        assert_eq!(after.data.len(), 25);
        assert_eq!(after.end, 35);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_stream_is_empty() {
        let dir = temp("missing");
        let s = Stream::new(&dir, "web", "stderr", 10);
        let p = s.read(5, 10).unwrap();
        assert!(p.data.is_empty());
        assert_eq!(p.offset, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
