//! The receiving side of Raft messages: decode, hand to openraft, encode
//! the reply; and reassembling snapshots sent in chunks.

use std::sync::PoisonError;

use openraft::raft::AppendEntriesRequest;
use openraft_rt::WatchReceiver;

use super::StateNode;
use crate::raft::rpc::{self, RpcRequest, RpcResponse, SnapshotChunk};
use crate::raft::{C, Snapshot, SnapshotMeta, Vote};

/// Rejects appends no correct leader sends, before openraft (which
/// asserts on some of them) sees them: entries must follow `prev_log_id`
/// one index at a time, and none may come from a later leader than the
/// sender's vote or an earlier one than the entry before it.
fn check_append(r: &AppendEntriesRequest<C>) -> Result<(), String> {
    let mut expected = r.prev_log_id.map_or(0, |p| p.index.saturating_add(1));
    let mut previous = r.prev_log_id.map(|p| p.leader_id);
    for entry in &r.entries {
        let id = entry.log_id;
        if id.index != expected {
            return Err(format!(
                "append: entry {} where {expected} was expected",
                id.index
            ));
        }
        if id.leader_id > r.vote.leader_id || previous.is_some_and(|p| id.leader_id < p) {
            return Err(format!(
                "append: entry {id} out of leader order under vote {}",
                r.vote
            ));
        }
        previous = Some(id.leader_id);
        expected = expected.saturating_add(1);
    }
    Ok(())
}

/// A snapshot being received.
#[derive(Debug)]
pub(crate) struct Incoming {
    transfer: u64,
    data: Vec<u8>,
}

fn refused(why: impl std::fmt::Display) -> RpcResponse {
    RpcResponse::Refused(why.to_string())
}

impl StateNode {
    /// Serves a Raft message from another server (the bytes its
    /// [`Transport`](crate::Transport) delivered) and returns the reply to
    /// send back. Never fails: malformed or unserviceable messages get a
    /// reply saying why.
    pub async fn handle_rpc(&self, message: &[u8]) -> Vec<u8> {
        let response = self.inner.spawner.enter(self.serve(message)).await;
        rpc::encode_response(&response).unwrap_or_default()
    }

    async fn serve(&self, message: &[u8]) -> RpcResponse {
        let raft = &self.inner.raft;
        match rpc::decode_request(message) {
            Err(e) => refused(format!("undecodable raft message: {e}")),
            Ok(RpcRequest::Append(r)) => match check_append(&r) {
                Err(why) => refused(why),
                Ok(()) => raft
                    .append_entries(r)
                    .await
                    .map_or_else(refused, RpcResponse::Append),
            },
            Ok(RpcRequest::Vote(r)) => raft.vote(r).await.map_or_else(refused, RpcResponse::Vote),
            Ok(RpcRequest::PreVote(r)) => raft
                .pre_vote(r)
                .await
                .map_or_else(refused, RpcResponse::Vote),
            Ok(RpcRequest::Snapshot(chunk)) => self.receive_chunk(chunk).await,
        }
    }

    async fn receive_chunk(&self, chunk: SnapshotChunk) -> RpcResponse {
        let limit = self.inner.config.max_snapshot_bytes;
        let complete = {
            let mut slot = self
                .inner
                .incoming
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if chunk.offset == 0 {
                *slot = Some(Incoming {
                    transfer: chunk.transfer,
                    data: Vec::new(),
                });
            }
            let Some(incoming) = slot.as_mut().filter(|i| i.transfer == chunk.transfer) else {
                return refused(format!(
                    "no snapshot transfer {} in progress",
                    chunk.transfer
                ));
            };
            if incoming.data.len() as u64 != chunk.offset {
                let have = incoming.data.len();
                *slot = None;
                return refused(format!(
                    "snapshot chunk at offset {}, expected {have}",
                    chunk.offset
                ));
            }
            if incoming.data.len().saturating_add(chunk.data.len()) > limit {
                *slot = None;
                return refused(format!("snapshot larger than the limit of {limit} bytes"));
            }
            incoming.data.extend_from_slice(&chunk.data);
            match chunk.done {
                None => return RpcResponse::ChunkAccepted,
                Some(meta) => (slot.take().map(|i| i.data).unwrap_or_default(), meta),
            }
        };
        let (data, meta) = complete;
        if let Err(why) = self.check_snapshot(&chunk.vote, &meta) {
            return refused(why);
        }
        let snapshot = Snapshot {
            meta,
            snapshot: data.into(),
        };
        match self
            .inner
            .raft
            .install_full_snapshot(chunk.vote, snapshot)
            .await
        {
            Ok(response) => RpcResponse::SnapshotInstalled(response.vote),
            Err(fatal) => refused(fatal),
        }
    }

    /// Rejects snapshots that openraft would treat as corruption (it
    /// asserts on them): one whose last entry is beyond the sending
    /// leader's vote, or one that contradicts what is committed here.
    fn check_snapshot(&self, vote: &Vote, meta: &SnapshotMeta) -> Result<(), String> {
        let Some(last) = meta.last_log_id else {
            return Ok(());
        };
        if last.leader_id > vote.leader_id {
            return Err(format!(
                "snapshot up to {last} is beyond the sender's vote {vote}"
            ));
        }
        let committed = self.inner.raft.metrics().borrow_watched().local_committed;
        if let Some(committed) = committed
            && last > committed
            && last.index <= committed.index
        {
            return Err(format!(
                "snapshot up to {last} contradicts the committed {committed}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::raft::{Entry, LeaderId, LogId};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(LeaderId::new_committed(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(prev: Option<(u64, u64)>, entries: Vec<Entry>) -> AppendEntriesRequest<C> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: prev.map(|(t, i)| LogId::new(LeaderId::new_committed(t, 1), i)),
            entries,
            leader_commit: None,
        }
    }

    #[test]
    fn appends_must_be_consecutive_and_in_leader_order() {
        assert!(check_append(&append(None, vec![entry(1, 0), entry(1, 1), entry(3, 2)])).is_ok());
        assert!(check_append(&append(Some((2, 7)), vec![entry(2, 8), entry(3, 9)])).is_ok());
        assert!(check_append(&append(Some((2, 7)), vec![])).is_ok());
        assert!(
            check_append(&append(Some((2, 7)), vec![entry(2, 9)])).is_err(),
            "a hole"
        );
        assert!(
            check_append(&append(None, vec![entry(1, 0), entry(1, 0)])).is_err(),
            "a repeat"
        );
        assert!(
            check_append(&append(None, vec![entry(4, 0)])).is_err(),
            "beyond the vote"
        );
        assert!(
            check_append(&append(Some((3, 1)), vec![entry(2, 2)])).is_err(),
            "an older leader after a newer one"
        );
    }
}
