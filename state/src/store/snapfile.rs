//! The latest state machine snapshot, kept as one file beside the sled
//! database: `<data dir>/state.snap`.
//!
//! A snapshot is written whole and read whole, never updated in place, so
//! it gains nothing from a B-tree and costs a great deal in one: written
//! into sled as thousands of small values, a 15 MB snapshot went through
//! sled's 512 KiB write buffers and left its pages in sled's page cache,
//! which keeps at least one page in each of its 256 shards whatever the
//! configured capacity. That was 12 to 14 MB of a dev agent's memory, and
//! as much again in buffers after a burst. hashicorp/raft, which Nomad
//! uses, keeps its snapshots as files for the same reason.
//!
//! The file is replaced atomically: written to `state.snap.tmp`, synced,
//! renamed over `state.snap`, and the directory synced (the syncs only when
//! [`Durability::PowerLoss`] asks for them). A crash leaves either the old
//! file or the new one, and at worst a stale temporary file that the next
//! write replaces.
//!
//! Layout: the magic `wrensnap`, a format byte, the metadata's length (u32,
//! little endian), the metadata (CBOR), the state's encoding, and a CRC-32
//! of everything before it (little endian).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::disk::Durability;

/// The snapshot's file name in the data directory.
pub(crate) const FILE: &str = "state.snap";
const TEMP: &str = "state.snap.tmp";
const MAGIC: &[u8; 8] = b"wrensnap";
const FORMAT: u8 = 1;
const HEADER: usize = MAGIC.len() + 1 + 4;
const TRAILER: usize = 4;

/// The snapshot file in `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Replaces the snapshot in `dir` with `meta` and `data`, as durably as
/// `durability` says.
pub(crate) fn write(
    dir: &Path,
    durability: Durability,
    meta: &[u8],
    data: &[u8],
) -> io::Result<()> {
    let meta_len =
        u32::try_from(meta.len()).map_err(|_| io::Error::other("snapshot metadata over 4 GiB"))?;
    let mut header = [0u8; HEADER];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[MAGIC.len()] = FORMAT;
    header[MAGIC.len() + 1..].copy_from_slice(&meta_len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    for part in [&header[..], meta, data] {
        crc.update(part);
    }

    let temp = dir.join(TEMP);
    let mut file = File::create(&temp)?;
    file.write_all(&header)?;
    file.write_all(meta)?;
    file.write_all(data)?;
    file.write_all(&crc.finalize().to_le_bytes())?;
    let sync = durability == Durability::PowerLoss;
    if sync {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&temp, path(dir))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The snapshot in `dir` as (metadata, state), or `None` if there is none.
/// A file that is short, foreign, of another format or damaged is an
/// `InvalidData` error saying which.
pub(crate) fn read(dir: &Path) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let path = path(dir);
    let mut bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let invalid = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    if bytes.len() < HEADER + TRAILER {
        return Err(invalid(format!(
            "{} bytes, too short for a snapshot",
            bytes.len()
        )));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(invalid("not a wren snapshot".to_owned()));
    }
    if bytes[MAGIC.len()] != FORMAT {
        return Err(invalid(format!(
            "snapshot format {} is not supported",
            bytes[MAGIC.len()]
        )));
    }
    let body_len = bytes.len() - TRAILER;
    let mut stored = [0u8; TRAILER];
    stored.copy_from_slice(&bytes[body_len..]);
    if crc32fast::hash(&bytes[..body_len]) != u32::from_le_bytes(stored) {
        return Err(invalid(
            "checksum mismatch (the file is damaged)".to_owned(),
        ));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[MAGIC.len() + 1..HEADER]);
    let meta_end = usize::try_from(u32::from_le_bytes(len))
        .ok()
        .and_then(|n| HEADER.checked_add(n))
        .filter(|&end| end <= body_len)
        .ok_or_else(|| invalid("metadata length runs past the end".to_owned()))?;
    let meta = bytes[HEADER..meta_end].to_vec();
    bytes.truncate(body_len);
    bytes.drain(..meta_end);
    Ok(Some((meta, bytes)))
}

/// Removes a temporary file a crash mid-write left behind.
pub(crate) fn remove_stale_temp(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(TEMP)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn round_trips_and_replaces() {
        let dir = TempDir::new("snapfile");
        assert!(read(dir.path()).unwrap().is_none());
        write(dir.path(), Durability::PowerLoss, b"meta", b"first state").unwrap();
        write(dir.path(), Durability::None, b"m2", b"second").unwrap();
        let (meta, data) = read(dir.path()).unwrap().unwrap();
        assert_eq!(
            (meta.as_slice(), data.as_slice()),
            (&b"m2"[..], &b"second"[..])
        );
        assert!(!dir.path().join(TEMP).exists());
    }

    #[test]
    fn empty_parts_round_trip() {
        let dir = TempDir::new("snapfile-empty");
        write(dir.path(), Durability::ProcessCrash, b"", b"").unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap(), (Vec::new(), Vec::new()));
    }

    #[test]
    fn damage_is_an_error_naming_the_file_never_a_panic() {
        let dir = TempDir::new("snapfile-damage");
        write(dir.path(), Durability::None, b"meta", b"some state bytes").unwrap();
        let good = fs::read(path(dir.path())).unwrap();
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "too short"),
            (good[..good.len() - 1].to_vec(), "checksum"),
            (b"notasnapshot-at-all".to_vec(), "not a wren snapshot"),
        ];
        let mut flipped = good.clone();
        flipped[HEADER + 6] ^= 0x40;
        cases.push((flipped, "checksum"));
        let mut format = good.clone();
        format[MAGIC.len()] = 9;
        cases.push((format, "format 9"));
        // A consistent checksum over a metadata length that lies.
        let mut long = good.clone();
        long[MAGIC.len() + 1..HEADER].copy_from_slice(&u32::MAX.to_le_bytes());
        let body = long.len() - TRAILER;
        let crc = crc32fast::hash(&long[..body]).to_le_bytes();
        long[body..].copy_from_slice(&crc);
        cases.push((long, "runs past the end"));
        for (bytes, why) in cases {
            fs::write(path(dir.path()), &bytes).unwrap();
            let err = read(dir.path()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let text = err.to_string();
            assert!(text.contains(why) && text.contains(FILE), "{text}");
        }
        // Every truncation of a good file is refused cleanly.
        for n in 0..good.len() {
            fs::write(path(dir.path()), &good[..n]).unwrap();
            assert!(read(dir.path()).is_err(), "{n} bytes accepted");
        }
    }

    #[test]
    fn a_stale_temporary_file_is_removed_and_does_not_count() {
        let dir = TempDir::new("snapfile-temp");
        fs::write(dir.path().join(TEMP), b"half written").unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        remove_stale_temp(dir.path()).unwrap();
        remove_stale_temp(dir.path()).unwrap();
        assert!(!dir.path().join(TEMP).exists());
    }
}
