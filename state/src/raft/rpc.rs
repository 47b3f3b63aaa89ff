//! The messages servers exchange for Raft, as the opaque bytes the agent's
//! wire carries.
//!
//! Every message is a CBOR array whose first item is its kind:
//!
//! | request | fields |
//! | --- | --- |
//! | 0 append | vote, prev log id \| null, [entries], leader commit \| null |
//! | 1 vote, 2 pre-vote | vote, last log id \| null, leadership transfer |
//! | 3 snapshot chunk | vote, transfer id, offset, bytes, meta \| null (last chunk) |
//!
//! | response | fields |
//! | --- | --- |
//! | 0 append | 0 success, 1 partial + log id \| null, 2 conflict, 3 higher vote + vote |
//! | 1 vote | vote, granted, last log id \| null |
//! | 2 chunk accepted | |
//! | 3 snapshot installed | vote |
//! | 4 refused | why |

use minicbor::Decoder;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use wren_model::codec::{Limits, check_limits};

use super::codec::{self, CodecError, Enc, EncResult};
use super::{C, SnapshotMeta, Vote};

/// One piece of a snapshot sent to a lagging follower.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SnapshotChunk {
    /// The sending leader's vote.
    pub(crate) vote: Vote,
    /// Chosen by the sender per transfer.
    pub(crate) transfer: u64,
    /// Where `data` starts in the snapshot.
    pub(crate) offset: u64,
    pub(crate) data: Vec<u8>,
    /// Present on the last chunk only.
    pub(crate) done: Option<SnapshotMeta>,
}

#[derive(Debug)]
pub(crate) enum RpcRequest {
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    PreVote(VoteRequest<C>),
    Snapshot(SnapshotChunk),
}

#[derive(Debug, PartialEq)]
pub(crate) enum RpcResponse {
    Append(AppendEntriesResponse<C>),
    Vote(VoteResponse<C>),
    ChunkAccepted,
    SnapshotInstalled(Vote),
    Refused(String),
}

impl RpcRequest {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RpcRequest::Append(_) => "append-entries",
            RpcRequest::Vote(_) => "vote",
            RpcRequest::PreVote(_) => "pre-vote",
            RpcRequest::Snapshot(_) => "snapshot",
        }
    }
}

fn put_vote_request(e: &mut Enc, kind: u8, r: &VoteRequest<C>) -> EncResult {
    e.array(4)?.u8(kind)?;
    codec::put_vote(e, &r.vote)?;
    codec::put_opt_log_id(e, r.last_log_id.as_ref())?;
    e.bool(r.leadership_transfer)?;
    Ok(())
}

pub(crate) fn encode_request(r: &RpcRequest) -> Result<Vec<u8>, CodecError> {
    codec::encode(|e| match r {
        RpcRequest::Append(a) => {
            e.array(5)?.u8(0)?;
            codec::put_vote(e, &a.vote)?;
            codec::put_opt_log_id(e, a.prev_log_id.as_ref())?;
            e.array(a.entries.len() as u64)?;
            for entry in &a.entries {
                codec::put_entry(e, entry)?;
            }
            codec::put_opt_log_id(e, a.leader_commit.as_ref())
        }
        RpcRequest::Vote(v) => put_vote_request(e, 1, v),
        RpcRequest::PreVote(v) => put_vote_request(e, 2, v),
        RpcRequest::Snapshot(c) => {
            e.array(6)?.u8(3)?;
            codec::put_vote(e, &c.vote)?;
            e.u64(c.transfer)?.u64(c.offset)?.bytes(&c.data)?;
            match &c.done {
                Some(meta) => codec::put_snapshot_meta(e, meta),
                None => {
                    e.null()?;
                    Ok(())
                }
            }
        }
    })
}

fn head(d: &mut Decoder<'_>) -> Result<(u64, u8), CodecError> {
    let n = d
        .array()?
        .ok_or_else(|| CodecError("raft message: indefinite array".to_owned()))?;
    Ok((n, d.u8()?))
}

fn get_vote_request(d: &mut Decoder<'_>) -> Result<VoteRequest<C>, CodecError> {
    let vote = codec::get_vote(d)?;
    let last_log_id = codec::get_opt_log_id(d)?;
    let leadership_transfer = d.bool()?;
    Ok(VoteRequest {
        vote,
        last_log_id,
        leadership_transfer,
    })
}

fn finish<T>(d: &Decoder<'_>, bytes: &[u8], value: T) -> Result<T, CodecError> {
    if d.position() != bytes.len() {
        return Err(CodecError(format!(
            "raft message: {} trailing bytes",
            bytes.len() - d.position()
        )));
    }
    Ok(value)
}

/// Decodes a request from a peer. The bytes are bounded by the wire; the
/// CBOR shape is checked against the model's limits before decoding.
pub(crate) fn decode_request(bytes: &[u8]) -> Result<RpcRequest, CodecError> {
    check_limits(bytes, Limits::default()).map_err(|e| CodecError(e.to_string()))?;
    let mut d = Decoder::new(bytes);
    let request = match head(&mut d)? {
        (5, 0) => {
            let vote = codec::get_vote(&mut d)?;
            let prev_log_id = codec::get_opt_log_id(&mut d)?;
            let n = d
                .array()?
                .ok_or_else(|| CodecError("append: indefinite entries".to_owned()))?;
            let mut entries = Vec::new();
            for _ in 0..n {
                entries.push(codec::get_entry(&mut d)?);
            }
            let leader_commit = codec::get_opt_log_id(&mut d)?;
            RpcRequest::Append(AppendEntriesRequest {
                vote,
                prev_log_id,
                entries,
                leader_commit,
            })
        }
        (4, 1) => RpcRequest::Vote(get_vote_request(&mut d)?),
        (4, 2) => RpcRequest::PreVote(get_vote_request(&mut d)?),
        (6, 3) => {
            let vote = codec::get_vote(&mut d)?;
            let transfer = d.u64()?;
            let offset = d.u64()?;
            let data = d.bytes()?.to_vec();
            let done = if d.datatype()? == minicbor::data::Type::Null {
                d.skip()?;
                None
            } else {
                Some(codec::get_snapshot_meta(&mut d)?)
            };
            RpcRequest::Snapshot(SnapshotChunk {
                vote,
                transfer,
                offset,
                data,
                done,
            })
        }
        (n, kind) => {
            return Err(CodecError(format!(
                "raft message: unknown kind {kind} with {n} fields"
            )));
        }
    };
    finish(&d, bytes, request)
}

pub(crate) fn encode_response(r: &RpcResponse) -> Result<Vec<u8>, CodecError> {
    codec::encode(|e| match r {
        RpcResponse::Append(a) => match a {
            AppendEntriesResponse::Success => {
                e.array(2)?.u8(0)?.u8(0)?;
                Ok(())
            }
            AppendEntriesResponse::PartialSuccess(id) => {
                e.array(3)?.u8(0)?.u8(1)?;
                codec::put_opt_log_id(e, id.as_ref())
            }
            AppendEntriesResponse::Conflict => {
                e.array(2)?.u8(0)?.u8(2)?;
                Ok(())
            }
            AppendEntriesResponse::HigherVote(v) => {
                e.array(3)?.u8(0)?.u8(3)?;
                codec::put_vote(e, v)
            }
        },
        RpcResponse::Vote(v) => {
            e.array(4)?.u8(1)?;
            codec::put_vote(e, &v.vote)?;
            e.bool(v.vote_granted)?;
            codec::put_opt_log_id(e, v.last_log_id.as_ref())
        }
        RpcResponse::ChunkAccepted => {
            e.array(1)?.u8(2)?;
            Ok(())
        }
        RpcResponse::SnapshotInstalled(v) => {
            e.array(2)?.u8(3)?;
            codec::put_vote(e, v)
        }
        RpcResponse::Refused(why) => {
            e.array(2)?.u8(4)?.str(why)?;
            Ok(())
        }
    })
}

/// Decodes a reply from a peer.
pub(crate) fn decode_response(bytes: &[u8]) -> Result<RpcResponse, CodecError> {
    check_limits(bytes, Limits::default()).map_err(|e| CodecError(e.to_string()))?;
    let mut d = Decoder::new(bytes);
    let response = match head(&mut d)? {
        (n, 0) => match (n, d.u8()?) {
            (2, 0) => RpcResponse::Append(AppendEntriesResponse::Success),
            (3, 1) => RpcResponse::Append(AppendEntriesResponse::PartialSuccess(
                codec::get_opt_log_id(&mut d)?,
            )),
            (2, 2) => RpcResponse::Append(AppendEntriesResponse::Conflict),
            (3, 3) => {
                RpcResponse::Append(AppendEntriesResponse::HigherVote(codec::get_vote(&mut d)?))
            }
            (n, k) => {
                return Err(CodecError(format!(
                    "append reply: unknown kind {k} with {n} fields"
                )));
            }
        },
        (4, 1) => {
            let vote = codec::get_vote(&mut d)?;
            let vote_granted = d.bool()?;
            let last_log_id = codec::get_opt_log_id(&mut d)?;
            RpcResponse::Vote(VoteResponse {
                vote,
                vote_granted,
                last_log_id,
            })
        }
        (1, 2) => RpcResponse::ChunkAccepted,
        (2, 3) => RpcResponse::SnapshotInstalled(codec::get_vote(&mut d)?),
        (2, 4) => RpcResponse::Refused(d.str()?.to_owned()),
        (n, kind) => {
            return Err(CodecError(format!(
                "raft reply: unknown kind {kind} with {n} fields"
            )));
        }
    };
    finish(&d, bytes, response)
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::raft::{Entry, LeaderId, LogId, Request};

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(LeaderId::new_committed(term, 2), index)
    }

    #[test]
    fn requests_round_trip() {
        let append = AppendEntriesRequest::<C> {
            vote: Vote::new_committed(3, 2),
            prev_log_id: Some(id(2, 9)),
            entries: vec![
                Entry {
                    log_id: id(3, 10),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: id(3, 11),
                    payload: EntryPayload::Normal(Request(vec![9u8; 300].into())),
                },
            ],
            leader_commit: None,
        };
        let bytes = encode_request(&RpcRequest::Append(append.clone())).unwrap();
        match decode_request(&bytes).unwrap() {
            RpcRequest::Append(back) => {
                assert_eq!(back.vote, append.vote);
                assert_eq!(back.prev_log_id, append.prev_log_id);
                assert_eq!(back.entries, append.entries);
                assert_eq!(back.leader_commit, None);
            }
            other => panic!("{other:?}"),
        }
        let vote = VoteRequest::<C>::new(Vote::new(4, 1), Some(id(3, 11)));
        let bytes = encode_request(&RpcRequest::PreVote(vote.clone())).unwrap();
        assert!(matches!(decode_request(&bytes).unwrap(), RpcRequest::PreVote(v) if v == vote));
        let chunk = SnapshotChunk {
            vote: Vote::new_committed(3, 2),
            transfer: 77,
            offset: 4096,
            data: vec![1, 2, 3],
            done: None,
        };
        let bytes = encode_request(&RpcRequest::Snapshot(chunk.clone())).unwrap();
        assert!(matches!(decode_request(&bytes).unwrap(), RpcRequest::Snapshot(c) if c == chunk));
    }

    #[test]
    fn responses_round_trip() {
        for r in [
            RpcResponse::Append(AppendEntriesResponse::Success),
            RpcResponse::Append(AppendEntriesResponse::PartialSuccess(Some(id(1, 3)))),
            RpcResponse::Append(AppendEntriesResponse::PartialSuccess(None)),
            RpcResponse::Append(AppendEntriesResponse::Conflict),
            RpcResponse::Append(AppendEntriesResponse::HigherVote(Vote::new(9, 3))),
            RpcResponse::Vote(VoteResponse::new(Vote::new(2, 1), Some(id(1, 1)), true)),
            RpcResponse::ChunkAccepted,
            RpcResponse::SnapshotInstalled(Vote::new_committed(5, 1)),
            RpcResponse::Refused("node is shutting down".into()),
        ] {
            let bytes = encode_response(&r).unwrap();
            assert_eq!(decode_response(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn hostile_messages_are_errors() {
        let cases: [&[u8]; 6] = [
            b"",
            &[0x80],
            &[0x82, 0x09, 0x00],
            &[
                0x85, 0x00, 0x83, 0x01, 0x01, 0xf5, 0xf6, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff,
            ],
            &[0x81; 200],
            &[0x82, 0x04, 0x7f, 0x61, 0x61],
        ];
        for bytes in cases {
            assert!(decode_request(bytes).is_err(), "{bytes:?}");
            assert!(decode_response(bytes).is_err(), "{bytes:?}");
        }
    }
}
