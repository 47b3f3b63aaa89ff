//! Raft messages between servers, over the wire: `state` hands us opaque
//! bytes for a peer; we POST them to `/v1/internal/raft` on that peer
//! (server certificates only), whose handler gives them to its
//! [`StateNode`] and answers with the reply bytes.

use std::sync::Arc;

use coap_lite::ResponseType;
use wren_state::{BoxFuture, PeerId, StateNode, Transport, TransportError};

use super::peers::Peers;
use crate::wire::{ApiError, CBOR, ClientError, HandlerResult, Method, Request, Response};

/// The path Raft messages travel on.
pub const RAFT_PATH: &str = "/v1/internal/raft";

/// [`Transport`] over the wire.
#[derive(Debug)]
pub struct WireTransport {
    peers: Peers,
}

impl WireTransport {
    /// A transport using `peers`' connections.
    pub fn new(peers: Peers) -> WireTransport {
        WireTransport { peers }
    }
}

impl Transport for WireTransport {
    fn send<'a>(
        &'a self,
        to: PeerId,
        addr: &'a str,
        message: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let unreachable = |reason: String| TransportError::Unreachable {
                peer: to,
                addr: addr.to_owned(),
                reason,
            };
            let client = self
                .peers
                .get(addr)
                .map_err(|e| unreachable(e.to_string()))?;
            match client.request(Method::Post, RAFT_PATH, &message).await {
                Ok(resp) if resp.is_success() => Ok(resp.body),
                Ok(resp) => Err(TransportError::Failed {
                    peer: to,
                    addr: addr.to_owned(),
                    reason: resp
                        .as_error()
                        .map_or_else(|| format!("code {}", resp.code_u8()), |e| e.to_string()),
                }),
                Err(ClientError::Timeout { .. }) => Err(TransportError::Timeout {
                    peer: to,
                    addr: addr.to_owned(),
                }),
                Err(
                    e @ (ClientError::Unreachable { .. }
                    | ClientError::BackingOff { .. }
                    | ClientError::ConnectionLost { .. }
                    | ClientError::AllFailed(_)),
                ) => Err(unreachable(e.to_string())),
                Err(e) => Err(TransportError::Failed {
                    peer: to,
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                }),
            }
        })
    }
}

/// The handler for [`RAFT_PATH`].
pub async fn receive(node: Arc<StateNode>, req: Request) -> HandlerResult {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("empty raft message"));
    }
    let reply = node.handle_rpc(&req.body).await;
    Ok(Response {
        code: ResponseType::Changed,
        body: reply,
        content_format: Some(CBOR),
        index: None,
    })
}
