//! The data dir's file system: Nomad's `unique.storage.volume`,
//! `unique.storage.bytestotal` and `unique.storage.bytesfree`, and the
//! node's disk capacity (the free space, in MB, as Nomad counts it).

use std::collections::BTreeMap;
use std::path::Path;

use crate::mounts::{self, Mount};
use crate::probe::Probes;
use crate::read::{Ctx, clean};

const AREA: &str = "storage";
const MIB: u64 = 1024 * 1024;

/// Adds the storage attributes and returns the disk capacity in MB.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    probes: &mut dyn Probes,
    mounts: &[Mount],
    data_dir: &Path,
    attrs: &mut BTreeMap<String, String>,
) -> u64 {
    if let Some(m) = mounts::containing(mounts, data_dir) {
        attrs.insert("unique.storage.volume".into(), clean(&m.source));
    }
    match probes.storage(data_dir) {
        Ok(s) => {
            attrs.insert(
                "unique.storage.bytestotal".into(),
                s.total_bytes.to_string(),
            );
            attrs.insert("unique.storage.bytesfree".into(), s.free_bytes.to_string());
            s.free_bytes / MIB
        }
        Err(e) => {
            ctx.warn(AREA, format!("data dir {}: {e}", data_dir.display()));
            0
        }
    }
}
