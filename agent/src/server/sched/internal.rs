//! The leader's answers to workers on other servers: dequeue (a long
//! poll on the broker), ack or nack, and plan submission (see `rpc`).

use std::sync::Arc;
use std::time::Duration;

use wren_sched::broker::BrokerError;

use super::Shared;
use super::rpc::{AckRequest, DequeueRequest, DequeueResponse, PlanRequest, Settled, not_leader};
use crate::wire::{ApiError, HandlerResult, Request};

/// The longest a dequeue is held waiting for work (the caller's request
/// timeout is longer).
const MAX_WAIT: Duration = Duration::from_secs(10);

fn broker_error(e: BrokerError) -> ApiError {
    match e {
        BrokerError::Disabled => not_leader(),
        other => ApiError::conflict(other.to_string()),
    }
}

/// `POST /v1/internal/sched/dequeue`.
pub async fn dequeue(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let body: DequeueRequest = req.decode()?;
    if body.types.is_empty() {
        return Err(ApiError::bad_request("no scheduler types to dequeue for"));
    }
    let wait = Duration::from_millis(body.wait_ms).min(MAX_WAIT);
    let got = shared
        .broker
        .dequeue(&body.types, wait)
        .await
        .map_err(broker_error)?;
    let wait_index = shared.core.node.snapshot().index();
    let resp = match got {
        Some((eval, token)) => DequeueResponse {
            eval: Some(eval),
            token,
            wait_index,
        },
        None => DequeueResponse {
            wait_index,
            ..DequeueResponse::default()
        },
    };
    Ok(req.reply(&resp))
}

/// `POST /v1/internal/sched/ack`.
pub async fn ack(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let body: AckRequest = req.decode()?;
    if body.nack {
        shared.broker.nack(&body.eval_id, &body.token)
    } else {
        shared.broker.ack(&body.eval_id, &body.token, body.reblock)
    }
    .map_err(broker_error)?;
    Ok(req.reply(&Settled {}))
}

/// `POST /v1/internal/sched/plan`.
pub async fn plan(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let body: PlanRequest = req.decode()?;
    let result = shared.plans.submit(body.plan, body.evals).await?;
    Ok(req.reply(&result))
}
