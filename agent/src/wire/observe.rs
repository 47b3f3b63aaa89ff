//! Server-side observations (RFC 7641) on blocking queries.
//!
//! An observation re-runs its route's handler with `min_index` set to the
//! last index it sent. A handler of an observable route waits until the
//! state passes that index, so each return is a change: it goes out as a
//! notification with the next Observe sequence number. Indexes start at 1
//! (as Raft's do); a reported 0 counts as 1, so that `min_index` 0, which
//! means "answer at once", never turns an observation into a busy loop.
//! A handler that
//! returns without progress (its own deadline passed) is re-run after a
//! pause that grows, so a misbehaving handler cannot spin. An error, or a
//! response without an index, ends the observation with a final response
//! that carries no Observe option. Deregistration (`Observe: 1` on the
//! same token), Release and the end of the connection drop the task.

use std::sync::Arc;
use std::time::Duration;

use smol::channel::Sender;

use super::frame::{Frame, Token};
use super::link::LinkState;
use super::request::Request;
use super::response::Response;
use super::router::Handler;
use super::server::fit;

const MIN_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Observe sequence numbers are 24 bits.
const SEQ_MASK: u32 = 0xFF_FFFF;

/// Runs one observation until it ends or its task is dropped.
pub(crate) async fn run(
    handler: Arc<dyn Handler>,
    base: Request,
    token: Token,
    out: Sender<Frame>,
    state: Arc<LinkState>,
) {
    let json = base.wants_json();
    let mut last: Option<u64> = None;
    let mut seq: u32 = 0;
    let mut pause = MIN_PAUSE;
    loop {
        let mut req = base.clone();
        req.observe = true;
        if let Some(l) = last {
            req.min_index = l;
        }
        let resp = match handler.call(req).await {
            Ok(r) if r.is_success() => r,
            Ok(r) => return final_response(r, token, &out, &state, json).await,
            Err(e) => {
                return final_response(Response::error(&e, json), token, &out, &state, json).await;
            }
        };
        let Some(index) = resp.index.map(|i| i.max(1)) else {
            // Nothing to watch: answer once, as to a plain GET.
            return final_response(resp, token, &out, &state, json).await;
        };
        if last.is_some_and(|l| index <= l) {
            smol::Timer::after(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            continue;
        }
        pause = MIN_PAUSE;
        seq = (seq + 1) & SEQ_MASK;
        let frame = resp.to_frame(token, Some(seq));
        if !state.fits(&frame) {
            return final_response(resp, token, &out, &state, json).await;
        }
        if out.send(frame).await.is_err() {
            return;
        }
        last = Some(index);
    }
}

async fn final_response(
    resp: Response,
    token: Token,
    out: &Sender<Frame>,
    state: &LinkState,
    json: bool,
) {
    let _ = out.send(fit(resp.to_frame(token, None), state, json)).await;
}
