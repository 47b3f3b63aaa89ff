//! `/proc/self/mounts`, read once per fingerprint: the data dir's volume
//! and the cgroup hierarchies both come from it.

use std::path::{Path, PathBuf};

use crate::read::Ctx;

/// One mounted file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The source, e.g. `/dev/mmcblk0p2` or `cgroup2`.
    pub source: String,
    /// Where it is mounted, as the machine names it.
    pub point: PathBuf,
    /// `ext4`, `cgroup`, `cgroup2`, ...
    pub fstype: String,
    /// Mount options (`rw`, `relatime`, and for cgroup v1 the controllers).
    pub options: Vec<String>,
}

/// Undoes the kernel's octal escapes (`\040` is a space).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let octal = tail
            .get(..3)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        match octal {
            Some(v) => {
                out.push(v);
                rest = tail.get(3..).unwrap_or_default();
            }
            None => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the mount table; malformed lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (source, point, fstype, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let point = PathBuf::from(unescape(point));
            if !point.is_absolute() {
                return None;
            }
            Some(Mount {
                source: unescape(source),
                point,
                fstype: fstype.to_owned(),
                options: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Reads the mount table (warning when it is missing).
pub(crate) fn read(ctx: &mut Ctx<'_>) -> Vec<Mount> {
    let path = ctx.roots.proc("self/mounts");
    ctx.read_required("mounts", &path, crate::read::LARGE)
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// The mount holding `path` (the longest mount point above it; the last
/// one mounted wins a tie, as in the kernel).
pub(crate) fn containing<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.components().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_find() {
        let m = parse(
            "/dev/vda / ext4 rw,relatime 0 0\n\
             tmpfs /run tmpfs rw 0 0\n\
             /dev/sdb1 /var/lib/wren\\040data ext4 rw 0 0\n\
             garbage\n\
             cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n",
        );
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].point, Path::new("/var/lib/wren data"));
        assert_eq!(
            containing(&m, Path::new("/var/lib/wren")).map(|m| m.source.as_str()),
            Some("/dev/vda")
        );
        assert_eq!(
            containing(&m, Path::new("/var/lib/wren data/x")).map(|m| m.source.as_str()),
            Some("/dev/sdb1")
        );
        assert_eq!(m[3].options, ["rw", "relatime", "cpu"]);
    }
}
