//! openraft's network, implemented over the agent's [`Transport`]: encode a
//! request, send the bytes with a deadline, decode the reply.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, EntryPayload, OptionalSend};
use smol::future;

use super::rpc::{self, RpcRequest, RpcResponse, SnapshotChunk};
use super::{C, Entry, Snapshot, SnapshotData, Vote};
use crate::transport::{PeerId, Transport, TransportError};

/// Makes a client per peer.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) id: PeerId,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) snapshot_chunk_bytes: usize,
    pub(crate) max_message_bytes: usize,
}

impl RaftNetworkFactory<C> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: PeerId, node: &BasicNode) -> PeerClient {
        PeerClient {
            id: self.id,
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes.max(1),
            max_message_bytes: self.max_message_bytes.max(1),
        }
    }
}

/// Sends Raft messages to one peer.
pub(crate) struct PeerClient {
    id: PeerId,
    target: PeerId,
    addr: String,
    transport: Arc<dyn Transport>,
    snapshot_chunk_bytes: usize,
    max_message_bytes: usize,
}

/// An entry's encoded size, near enough to split appends by.
fn entry_bytes(entry: &Entry) -> usize {
    let payload = match &entry.payload {
        EntryPayload::Blank => 0,
        EntryPayload::Normal(request) => request.0.len(),
        EntryPayload::Membership(m) => m.nodes().map(|(_, n)| n.addr.len() + 24).sum(),
    };
    payload + 48
}

/// Splits entries into runs whose encoded size stays under `limit` (an
/// entry larger than `limit` forms a run of its own).
fn split(entries: Vec<Entry>, limit: usize) -> Vec<Vec<Entry>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut size = 0usize;
    for entry in entries {
        let bytes = entry_bytes(&entry);
        if !run.is_empty() && size.saturating_add(bytes) > limit {
            runs.push(std::mem::take(&mut run));
            size = 0;
        }
        size = size.saturating_add(bytes);
        run.push(entry);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Why a call failed, before mapping to openraft's error types.
enum Failure {
    Unreachable(TransportError),
    Timeout(Duration),
    Other(String),
}

fn rpc_type(request: &RpcRequest) -> RPCTypes {
    match request {
        RpcRequest::Append(_) => RPCTypes::AppendEntries,
        RpcRequest::Vote(_) | RpcRequest::PreVote(_) => RPCTypes::Vote,
        RpcRequest::Snapshot(_) => RPCTypes::InstallSnapshot,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl PeerClient {
    async fn call(&self, request: &RpcRequest, deadline: Duration) -> Result<RpcResponse, Failure> {
        let bytes = rpc::encode_request(request).map_err(|e| Failure::Other(e.0))?;
        let send = self.transport.send(self.target, &self.addr, bytes);
        let timer = async {
            async_io::Timer::after(deadline).await;
            Err(TransportError::Timeout {
                peer: self.target,
                addr: self.addr.clone(),
            })
        };
        match future::or(send, timer).await {
            Ok(reply) => match rpc::decode_response(&reply) {
                Ok(RpcResponse::Refused(why)) => Err(Failure::Other(format!(
                    "peer {} refused {}: {why}",
                    self.target,
                    request.kind()
                ))),
                Ok(response) => Ok(response),
                Err(e) => Err(Failure::Other(format!(
                    "peer {} sent an undecodable reply to {}: {e}",
                    self.target,
                    request.kind()
                ))),
            },
            Err(TransportError::Timeout { .. }) => Err(Failure::Timeout(deadline)),
            Err(e @ TransportError::Unreachable { .. }) => Err(Failure::Unreachable(e)),
            Err(e) => Err(Failure::Other(e.to_string())),
        }
    }

    fn rpc_error(&self, request: &RpcRequest, failure: Failure) -> RPCError<C> {
        match failure {
            Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Timeout(timeout) => RPCError::Timeout(Timeout {
                action: rpc_type(request),
                id: self.id,
                target: self.target,
                timeout,
            }),
            Failure::Other(why) => RPCError::Network(NetworkError::new(&Message(why))),
        }
    }

    fn unexpected(&self, request: &RpcRequest, got: &RpcResponse) -> RPCError<C> {
        let why = format!(
            "peer {} answered {} with {got:?}",
            self.target,
            request.kind()
        );
        RPCError::Network(NetworkError::new(&Message(why)))
    }

    async fn append_once(
        &self,
        rpc: AppendEntriesRequest<C>,
        option: &RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let request = RpcRequest::Append(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(RpcResponse::Append(a)) => Ok(a),
            Ok(other) => Err(self.unexpected(&request, &other)),
            Err(f) => Err(self.rpc_error(&request, f)),
        }
    }

    async fn vote_call(
        &mut self,
        request: RpcRequest,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(&request, option.hard_ttl()).await {
            Ok(RpcResponse::Vote(v)) => Ok(v),
            Ok(other) => Err(self.unexpected(&request, &other)),
            Err(f) => Err(self.rpc_error(&request, f)),
        }
    }
}

impl RaftNetworkV2<C> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let total: usize = rpc.entries.iter().map(entry_bytes).sum();
        if total <= self.max_message_bytes {
            return self.append_once(rpc, &option).await;
        }
        // Too large for one message: send consecutive runs, each following
        // the last entry the previous one delivered.
        let AppendEntriesRequest {
            vote,
            mut prev_log_id,
            entries,
            leader_commit,
        } = rpc;
        let mut delivered = false;
        for run in split(entries, self.max_message_bytes) {
            let last = run.last().map(|e| e.log_id);
            let request = AppendEntriesRequest {
                vote,
                prev_log_id,
                entries: run,
                leader_commit,
            };
            match self.append_once(request, &option).await {
                Ok(AppendEntriesResponse::Success) => {
                    prev_log_id = last;
                    delivered = true;
                }
                // Whatever the earlier runs delivered stands.
                Ok(_) | Err(_) if delivered => {
                    return Ok(AppendEntriesResponse::PartialSuccess(prev_log_id));
                }
                other => return other,
            }
        }
        Ok(AppendEntriesResponse::Success)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.vote_call(RpcRequest::Vote(rpc), option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.vote_call(RpcRequest::PreVote(rpc), option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let mut cancel = Box::pin(cancel);
        let data = snapshot.snapshot;
        let transfer = rand::random::<u64>();
        let mut offset = 0usize;
        loop {
            let end = offset
                .saturating_add(self.snapshot_chunk_bytes)
                .min(data.len());
            let last = end == data.len();
            let request = RpcRequest::Snapshot(SnapshotChunk {
                vote,
                transfer,
                offset: offset as u64,
                data: data.get(offset..end).unwrap_or_default().to_vec(),
                done: last.then(|| snapshot.meta.clone()),
            });
            let call = async { Ok(self.call(&request, option.hard_ttl()).await) };
            let closed = async { Err(cancel.as_mut().await) };
            let reply = match future::or(call, closed).await {
                Ok(reply) => reply,
                Err(closed) => return Err(StreamingError::Closed(closed)),
            };
            match reply {
                Ok(RpcResponse::ChunkAccepted) if !last => offset = end,
                Ok(RpcResponse::SnapshotInstalled(vote)) if last => {
                    return Ok(SnapshotResponse::new(vote));
                }
                Ok(other) => return Err(self.unexpected(&request, &other).into()),
                Err(f) => return Err(self.rpc_error(&request, f).into()),
            }
        }
    }
}
