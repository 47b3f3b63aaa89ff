//! The state as bytes: Raft snapshots and `wren operator snapshot` files.
//!
//! Layout: the 8-byte magic `wrenstat`, a format version byte, a CBOR map
//! of the tables, and a CRC-32 of everything before it (little endian).
//! Objects are encoded with the model's own CBOR encodings; secondary
//! indexes are rebuilt on load rather than stored.

use std::sync::Arc;

use minicbor::{Decoder, Encoder};
use wren_model::codec::{Limits, check_limits};
use wren_model::{Allocation, Deployment, Evaluation, Job, Node};

use super::tables::State;

const MAGIC: &[u8; 8] = b"wrenstat";
const FORMAT: u8 = 1;

/// Keys of the top-level map; never reused.
mod key {
    pub const INDEX: u8 = 0;
    pub const TABLE_INDEX: u8 = 1;
    pub const JOB_VERSIONS: u8 = 2;
    pub const CURRENT_JOBS: u8 = 3;
    pub const NODES: u8 = 4;
    pub const EVALS: u8 = 5;
    pub const ALLOCS: u8 = 6;
    pub const DEPLOYMENTS: u8 = 7;
}

/// Why bytes are not a state snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Too short to hold even the header and checksum.
    #[error("snapshot is truncated ({0} bytes)")]
    Truncated(usize),
    /// Not a wren state snapshot.
    #[error("not a wren state snapshot (bad magic)")]
    BadMagic,
    /// Written by a newer wren.
    #[error("snapshot format {0} is newer than this wren understands ({FORMAT})")]
    UnsupportedFormat(u8),
    /// The checksum does not match: the bytes were damaged.
    #[error("snapshot checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The CBOR is malformed or too large.
    #[error("snapshot cbor: {0}")]
    Cbor(String),
    /// The tables contradict each other.
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

impl From<minicbor::decode::Error> for SnapshotError {
    fn from(e: minicbor::decode::Error) -> SnapshotError {
        SnapshotError::Cbor(e.to_string())
    }
}

impl<E: std::fmt::Display> From<minicbor::encode::Error<E>> for SnapshotError {
    fn from(e: minicbor::encode::Error<E>) -> SnapshotError {
        SnapshotError::Cbor(e.to_string())
    }
}

/// Limits for snapshots: they come from our own disk or our own leader,
/// and may be far larger than any request.
const SNAPSHOT_LIMITS: Limits = Limits {
    max_depth: 48,
    max_collection: 1 << 26,
    max_items: 1 << 34,
};

fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl State {
    /// Encodes the whole state.
    pub fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        let mut e = Encoder::new(out);
        e.map(8)?;
        e.u8(key::INDEX)?.u64(self.index)?;
        e.u8(key::TABLE_INDEX)?.array(len(self.table_index.len()))?;
        for i in self.table_index {
            e.u64(i)?;
        }
        e.u8(key::JOB_VERSIONS)?
            .array(len(self.job_versions.len()))?;
        for job in self.job_versions.values() {
            e.encode(&**job)?;
        }
        e.u8(key::CURRENT_JOBS)?.array(len(self.jobs.len()))?;
        for job in self.jobs.values() {
            e.array(2)?.str(&job.id)?.u64(job.version)?;
        }
        e.u8(key::NODES)?.array(len(self.nodes.len()))?;
        for node in self.nodes.values() {
            e.encode(&**node)?;
        }
        e.u8(key::EVALS)?.array(len(self.evals.len()))?;
        for eval in self.evals.values() {
            e.encode(&**eval)?;
        }
        e.u8(key::ALLOCS)?.array(len(self.allocs.len()))?;
        for alloc in self.allocs.values() {
            e.encode(&**alloc)?;
        }
        e.u8(key::DEPLOYMENTS)?.array(len(self.deployments.len()))?;
        for deployment in self.deployments.values() {
            e.encode(&**deployment)?;
        }
        let mut out = e.into_writer();
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes a state written by [`State::save`].
    pub fn load(bytes: &[u8]) -> Result<State, SnapshotError> {
        let header = MAGIC.len() + 1;
        if bytes.len() < header + 4 {
            return Err(SnapshotError::Truncated(bytes.len()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if body.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(SnapshotError::BadMagic);
        }
        let format = body.get(MAGIC.len()).copied().unwrap_or(0);
        if format != FORMAT {
            return Err(SnapshotError::UnsupportedFormat(format));
        }
        let stored = <[u8; 4]>::try_from(crc)
            .map(u32::from_le_bytes)
            .map_err(|_| SnapshotError::Truncated(bytes.len()))?;
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        let cbor = body.get(header..).unwrap_or_default();
        check_limits(cbor, SNAPSHOT_LIMITS).map_err(|e| SnapshotError::Cbor(e.to_string()))?;
        let mut d = Decoder::new(cbor);
        let mut state = State::new();
        let mut table_index = [0u64; 5];
        let mut current: Vec<(String, u64)> = Vec::new();
        let entries = definite(d.map()?)?;
        for _ in 0..entries {
            let k = d.u8()?;
            match k {
                key::INDEX => state.index = d.u64()?,
                key::TABLE_INDEX => {
                    let n = definite(d.array()?)?;
                    for i in 0..n {
                        let v = d.u64()?;
                        if let Some(slot) =
                            usize::try_from(i).ok().and_then(|i| table_index.get_mut(i))
                        {
                            *slot = v;
                        }
                    }
                }
                key::JOB_VERSIONS => {
                    for job in array::<Job>(&mut d)? {
                        state
                            .job_versions
                            .insert((job.id.clone(), job.version), Arc::new(job));
                    }
                }
                key::CURRENT_JOBS => {
                    let n = definite(d.array()?)?;
                    for _ in 0..n {
                        d.array()?;
                        let id = d.str()?.to_owned();
                        let version = d.u64()?;
                        current.push((id, version));
                    }
                }
                key::NODES => array::<Node>(&mut d)?
                    .into_iter()
                    .for_each(|n| state.put_node(n)),
                key::EVALS => array::<Evaluation>(&mut d)?
                    .into_iter()
                    .for_each(|e| state.put_eval(e)),
                key::ALLOCS => array::<Allocation>(&mut d)?
                    .into_iter()
                    .for_each(|a| state.put_alloc(a)),
                key::DEPLOYMENTS => array::<Deployment>(&mut d)?
                    .into_iter()
                    .for_each(|x| state.put_deployment(x)),
                _ => d.skip()?,
            }
        }
        for (id, version) in current {
            let job = state
                .job_versions
                .get(&(id.clone(), version))
                .cloned()
                .ok_or_else(|| {
                    SnapshotError::Inconsistent(format!(
                        "current job {id:?} version {version} is missing"
                    ))
                })?;
            state.jobs.insert(id, job);
        }
        state.table_index = table_index;
        Ok(state)
    }
}

/// Our encoder writes definite lengths only.
fn definite(len: Option<u64>) -> Result<u64, SnapshotError> {
    len.ok_or_else(|| {
        SnapshotError::Cbor("indefinite length where a definite one was written".to_owned())
    })
}

fn array<T: for<'b> minicbor::Decode<'b, ()>>(
    d: &mut Decoder<'_>,
) -> Result<Vec<T>, SnapshotError> {
    let n = definite(d.array()?)?;
    // The length was bounded by `check_limits`; allocate as items arrive.
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(d.decode()?);
    }
    Ok(out)
}
