//! Stable CBOR encodings of the Raft types we store and send: log ids,
//! votes, memberships, entries and snapshot metadata.
//!
//! Written by hand (arrays of fixed fields) rather than derived from
//! openraft's types, so that neither the log on disk nor the wire depends
//! on openraft's serde layout. Changing a layout here is a format change.
//!
//! - log id: `[term, node, index]`
//! - vote: `[term, node, committed]`
//! - membership: `[[[voter ids]...], {id: addr}]`
//! - entry: `[term, node, index, kind]` + payload: kind 0 blank, kind 1
//!   normal with the command's bytes, kind 2 membership
//! - snapshot meta: `[last log id | null, membership log id | null, membership]`

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use openraft::BasicNode;
use openraft::vote::RaftLeaderIdExt;

use super::{Entry, LeaderId, LogId, Membership, Request, SnapshotMeta, StoredMembership, Vote};

/// Why bytes did not decode as a Raft value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CodecError(pub(crate) String);

impl From<minicbor::decode::Error> for CodecError {
    fn from(e: minicbor::decode::Error) -> CodecError {
        CodecError(format!("invalid cbor: {e}"))
    }
}

impl From<minicbor::encode::Error<Infallible>> for CodecError {
    fn from(e: minicbor::encode::Error<Infallible>) -> CodecError {
        CodecError(format!("cannot encode: {e}"))
    }
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.0)
    }
}

pub(crate) type Enc = Encoder<Vec<u8>>;
pub(crate) type EncResult = Result<(), minicbor::encode::Error<Infallible>>;

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

/// Runs `f` on a fresh encoder and returns the bytes.
pub(crate) fn encode(f: impl FnOnce(&mut Enc) -> EncResult) -> Result<Vec<u8>, CodecError> {
    let mut e = Encoder::new(Vec::new());
    f(&mut e)?;
    Ok(e.into_writer())
}

fn array_len(d: &mut Decoder<'_>, want: u64, what: &str) -> Result<(), CodecError> {
    match d.array()? {
        Some(n) if n == want => Ok(()),
        other => Err(CodecError(format!(
            "{what}: expected an array of {want}, found {other:?}"
        ))),
    }
}

fn definite(len: Option<u64>, what: &str) -> Result<u64, CodecError> {
    len.ok_or_else(|| CodecError(format!("{what}: indefinite length")))
}

/// Whether the next item is null (and consumes it if so).
fn null(d: &mut Decoder<'_>) -> Result<bool, CodecError> {
    if d.datatype()? == Type::Null {
        d.skip()?;
        return Ok(true);
    }
    Ok(false)
}

pub(crate) fn put_log_id(e: &mut Enc, id: &LogId) -> EncResult {
    e.array(3)?
        .u64(id.leader_id.term)?
        .u64(id.leader_id.node_id)?
        .u64(id.index)?;
    Ok(())
}

pub(crate) fn get_log_id(d: &mut Decoder<'_>) -> Result<LogId, CodecError> {
    array_len(d, 3, "log id")?;
    let term = d.u64()?;
    let node = d.u64()?;
    let index = d.u64()?;
    Ok(LogId::new(LeaderId::new_committed(term, node), index))
}

pub(crate) fn put_opt_log_id(e: &mut Enc, id: Option<&LogId>) -> EncResult {
    match id {
        Some(id) => put_log_id(e, id),
        None => {
            e.null()?;
            Ok(())
        }
    }
}

pub(crate) fn get_opt_log_id(d: &mut Decoder<'_>) -> Result<Option<LogId>, CodecError> {
    if null(d)? {
        return Ok(None);
    }
    get_log_id(d).map(Some)
}

pub(crate) fn put_vote(e: &mut Enc, v: &Vote) -> EncResult {
    e.array(3)?
        .u64(v.leader_id.term)?
        .u64(v.leader_id.node_id)?
        .bool(v.committed)?;
    Ok(())
}

pub(crate) fn get_vote(d: &mut Decoder<'_>) -> Result<Vote, CodecError> {
    array_len(d, 3, "vote")?;
    let term = d.u64()?;
    let node = d.u64()?;
    let committed = d.bool()?;
    Ok(Vote {
        leader_id: LeaderId {
            term,
            node_id: node,
        },
        committed,
    })
}

pub(crate) fn put_membership(e: &mut Enc, m: &Membership) -> EncResult {
    let configs = m.get_joint_config();
    e.array(2)?.array(configs.len() as u64)?;
    for config in configs {
        e.array(config.len() as u64)?;
        for id in config {
            e.u64(*id)?;
        }
    }
    let nodes: Vec<(&u64, &BasicNode)> = m.nodes().collect();
    e.map(nodes.len() as u64)?;
    for (id, node) in nodes {
        e.u64(*id)?.str(&node.addr)?;
    }
    Ok(())
}

pub(crate) fn get_membership(d: &mut Decoder<'_>) -> Result<Membership, CodecError> {
    array_len(d, 2, "membership")?;
    let mut configs = Vec::new();
    for _ in 0..definite(d.array()?, "membership configs")? {
        let mut config = BTreeSet::new();
        for _ in 0..definite(d.array()?, "membership config")? {
            config.insert(d.u64()?);
        }
        configs.push(config);
    }
    let mut nodes = BTreeMap::new();
    for _ in 0..definite(d.map()?, "membership nodes")? {
        let id = d.u64()?;
        let addr = d.str()?.to_owned();
        nodes.insert(id, BasicNode { addr });
    }
    Membership::new(configs, nodes).map_err(|e| CodecError(format!("invalid membership: {e}")))
}

pub(crate) fn put_entry(e: &mut Enc, entry: &Entry) -> EncResult {
    let id = &entry.log_id;
    let head = |e: &mut Enc, n: u64, kind: u8| -> EncResult {
        e.array(n)?
            .u64(id.leader_id.term)?
            .u64(id.leader_id.node_id)?
            .u64(id.index)?
            .u8(kind)?;
        Ok(())
    };
    match &entry.payload {
        openraft::EntryPayload::Blank => head(e, 4, KIND_BLANK),
        openraft::EntryPayload::Normal(request) => {
            head(e, 5, KIND_NORMAL)?;
            e.bytes(&request.0)?;
            Ok(())
        }
        openraft::EntryPayload::Membership(m) => {
            head(e, 5, KIND_MEMBERSHIP)?;
            put_membership(e, m)
        }
    }
}

pub(crate) fn get_entry(d: &mut Decoder<'_>) -> Result<Entry, CodecError> {
    let n = definite(d.array()?, "entry")?;
    let term = d.u64()?;
    let node = d.u64()?;
    let index = d.u64()?;
    let kind = d.u8()?;
    let log_id = LogId::new(LeaderId::new_committed(term, node), index);
    let payload = match (kind, n) {
        (KIND_BLANK, 4) => openraft::EntryPayload::Blank,
        (KIND_NORMAL, 5) => openraft::EntryPayload::Normal(Request(d.bytes()?.into())),
        (KIND_MEMBERSHIP, 5) => openraft::EntryPayload::Membership(get_membership(d)?),
        _ => {
            return Err(CodecError(format!(
                "entry {index}: unknown kind {kind} with {n} fields"
            )));
        }
    };
    Ok(Entry { log_id, payload })
}

pub(crate) fn entry_to_bytes(entry: &Entry) -> Result<Vec<u8>, CodecError> {
    encode(|e| put_entry(e, entry))
}

pub(crate) fn entry_from_bytes(bytes: &[u8]) -> Result<Entry, CodecError> {
    let mut d = Decoder::new(bytes);
    let entry = get_entry(&mut d)?;
    if d.position() != bytes.len() {
        return Err(CodecError(format!(
            "entry {}: {} trailing bytes",
            entry.log_id.index,
            bytes.len() - d.position()
        )));
    }
    Ok(entry)
}

/// The log id of an encoded entry, read from its first fields only.
pub(crate) fn entry_log_id(bytes: &[u8]) -> Result<LogId, CodecError> {
    let mut d = Decoder::new(bytes);
    definite(d.array()?, "entry")?;
    let term = d.u64()?;
    let node = d.u64()?;
    let index = d.u64()?;
    Ok(LogId::new(LeaderId::new_committed(term, node), index))
}

pub(crate) fn put_snapshot_meta(e: &mut Enc, meta: &SnapshotMeta) -> EncResult {
    e.array(3)?;
    put_opt_log_id(e, meta.last_log_id.as_ref())?;
    put_opt_log_id(e, meta.last_membership.log_id().as_ref())?;
    put_membership(e, meta.last_membership.membership())
}

pub(crate) fn get_snapshot_meta(d: &mut Decoder<'_>) -> Result<SnapshotMeta, CodecError> {
    array_len(d, 3, "snapshot meta")?;
    let last_log_id = get_opt_log_id(d)?;
    let membership_log_id = get_opt_log_id(d)?;
    let membership = get_membership(d)?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(membership_log_id, membership),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership {
        let nodes: BTreeMap<u64, BasicNode> =
            [(1, "a:1"), (2, "b:2"), (3, "c:3"), (4, "learner:4")]
                .into_iter()
                .map(|(id, addr)| (id, BasicNode { addr: addr.into() }))
                .collect();
        Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap()
    }

    #[test]
    fn entries_round_trip() {
        let id = LogId::new(LeaderId::new_committed(3, 2), 41);
        for payload in [
            openraft::EntryPayload::Blank,
            openraft::EntryPayload::Normal(Request(vec![1u8, 2, 3].into())),
            openraft::EntryPayload::Membership(membership()),
        ] {
            let entry = Entry {
                log_id: id,
                payload,
            };
            let bytes = entry_to_bytes(&entry).unwrap();
            assert_eq!(entry_from_bytes(&bytes).unwrap(), entry);
            assert_eq!(entry_log_id(&bytes).unwrap(), id);
        }
    }

    #[test]
    fn snapshot_meta_round_trips() {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(LeaderId::new_committed(2, 1), 9)),
            last_membership: StoredMembership::new(
                Some(LogId::new(LeaderId::new_committed(1, 1), 1)),
                membership(),
            ),
        };
        let bytes = encode(|e| put_snapshot_meta(e, &meta)).unwrap();
        assert_eq!(get_snapshot_meta(&mut Decoder::new(&bytes)).unwrap(), meta);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            &[0x85, 0, 0, 0, 9][..],
            &[0x84, 1, 1, 1, 7][..],
            &[0xff; 16][..],
        ] {
            assert!(entry_from_bytes(bytes).is_err());
        }
        // A voter that is not among the nodes.
        let bad = encode(|e| {
            e.array(2)?.array(1)?.array(1)?.u64(7)?.map(0)?;
            Ok(())
        })
        .unwrap();
        assert!(get_membership(&mut Decoder::new(&bad)).is_err());
    }
}
