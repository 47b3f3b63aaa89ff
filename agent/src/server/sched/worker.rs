//! Scheduler workers: on every server, each takes an evaluation from the
//! leader's broker (in process on the leader, over the wire elsewhere),
//! waits until this server's replica has applied at least what the leader
//! had when it handed the evaluation out, schedules it on a snapshot
//! ([`wren_sched::schedule`]), submits the plan to the leader's applier,
//! plans again on a newer snapshot when part of it was refused (up to
//! [`wren_sched::max_plan_attempts`]), and settles the evaluation: ack,
//! ack as blocked again, or nack when something failed on the way.
//!
//! The evaluation's new state, its blocked evaluation and follow-ups are
//! written in the same Raft entry as the plan that placed everything
//! (see `plan_apply`), so a crash between the two cannot lose one.

use std::sync::Arc;
use std::time::Duration;

use wren_model::{EvalStatus, Evaluation, JobType, Plan, PlanResult};
use wren_sched::verify::{Next, Replan};
use wren_state::{Command, State, UpsertEvals};

use super::Shared;
use super::rpc::{
    ACK_PATH, AckRequest, DEQUEUE_PATH, DequeueRequest, DequeueResponse, PLAN_PATH, PlanRequest,
    Settled, is_leader, remote_leader, to_leader,
};
use super::view::View;
use crate::wire::ApiError;

/// Every scheduler type; a worker runs them all.
pub const TYPES: [JobType; 4] = [
    JobType::Service,
    JobType::Batch,
    JobType::System,
    JobType::Sysbatch,
];

/// How long a dequeue waits for work before asking again.
pub const DEQUEUE_WAIT: Duration = Duration::from_secs(5);

/// How long a worker waits for its replica to catch up with the index an
/// evaluation or a refused plan asks for.
const CATCH_UP: Duration = Duration::from_secs(10);

/// An evaluation a worker holds.
#[derive(Debug, Clone)]
struct Held {
    eval: Evaluation,
    token: String,
    wait_index: u64,
    /// Whether it came from this server's own broker.
    local: bool,
}

/// Runs one worker until its task is dropped.
pub async fn run(shared: Arc<Shared>) {
    let mut pause = Duration::from_millis(50);
    loop {
        match dequeue(&shared).await {
            Ok(Some(held)) => {
                pause = Duration::from_millis(50);
                process(&shared, held).await;
            }
            Ok(None) => {}
            Err(_) => {
                // No leader, or it is busy changing: look again soon.
                smol::Timer::after(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn dequeue(shared: &Shared) -> Result<Option<Held>, ApiError> {
    let core = &shared.core;
    if is_leader(core) && shared.broker.is_enabled() {
        let got = shared
            .broker
            .dequeue(&TYPES, DEQUEUE_WAIT)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        return Ok(got.map(|(eval, token)| Held {
            eval,
            token,
            wait_index: core.node.snapshot().index(),
            local: true,
        }));
    }
    let Some(leader) = remote_leader(core) else {
        core.node.wait_for_leader(Duration::from_secs(1)).await;
        return Err(ApiError::unavailable("no leader"));
    };
    let req = DequeueRequest {
        types: TYPES.to_vec(),
        wait_ms: DEQUEUE_WAIT.as_millis() as u64,
    };
    let resp: DequeueResponse = to_leader(core, &leader, DEQUEUE_PATH, &req).await?;
    Ok(resp.eval.map(|eval| Held {
        eval,
        token: resp.token,
        wait_index: resp.wait_index,
        local: false,
    }))
}

/// Works on one evaluation and settles it.
async fn process(shared: &Shared, held: Held) {
    let outcome = work(shared, &held).await;
    let settled = match outcome {
        Ok(reblock) => settle(shared, &held, false, reblock).await,
        Err(e) => {
            eprintln!(
                "wren server: evaluation {} of job {}: {e}; handing it back",
                held.eval.id, held.eval.job_id
            );
            settle(shared, &held, true, None).await
        }
    };
    if let Err(e) = settled {
        // The leader changed or the token expired: the new leader's broker
        // hands the evaluation out again from the state.
        eprintln!("wren server: settling evaluation {}: {e}", held.eval.id);
    }
}

/// Schedules until the plan commits in full (or attempts run out).
/// Returns the evaluation when it is blocked again.
async fn work(shared: &Shared, held: &Held) -> Result<Option<Evaluation>, ApiError> {
    let wait = held.wait_index.max(held.eval.modify_index);
    let mut state = caught_up(shared, wait).await?;
    let mut replan = Replan::new(held.eval.job_type);
    loop {
        let now = crate::ids::now_nanos();
        let seed = crate::ids::random_u64();
        let snapshot_index = state.index();
        let outcome =
            wren_sched::schedule(&View(state), &held.eval, now, seed, &shared.sched_config);
        let mut plan = outcome.plan;
        plan.eval_id.clone_from(&held.eval.id);
        plan.eval_token.clone_from(&held.token);
        let mut evals = vec![outcome.eval.clone()];
        evals.extend(outcome.blocked);
        evals.extend(outcome.followups);
        let result = submit(shared, held, &plan, evals).await?;
        match replan.after(&plan, &result) {
            Next::Done => {
                let blocked = outcome.eval.status == EvalStatus::Blocked;
                return Ok(blocked.then_some(outcome.eval));
            }
            Next::Retry { refresh_index } => {
                state = caught_up(shared, refresh_index.max(result.alloc_index)).await?;
            }
            Next::GiveUp => {
                // Blocked as of the state the refusal was judged against:
                // only a capacity change after it releases the evaluation.
                let judged_at = result.refresh_index.max(snapshot_index);
                let (failed, blocked) = replan.give_up(&held.eval, now, seed, judged_at);
                shared
                    .core
                    .write(Command::UpsertEvals(UpsertEvals {
                        evals: vec![failed, blocked],
                    }))
                    .await?;
                return Ok(None);
            }
        }
    }
}

/// This server's state once it has applied `index`.
async fn caught_up(shared: &Shared, index: u64) -> Result<State, ApiError> {
    shared
        .core
        .node
        .wait_for(CATCH_UP, |s| (s.index() >= index).then(|| s.clone()))
        .await
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "this server's replica did not reach index {index} within {CATCH_UP:?}"
            ))
        })
}

async fn submit(
    shared: &Shared,
    held: &Held,
    plan: &Plan,
    evals: Vec<Evaluation>,
) -> Result<PlanResult, ApiError> {
    let core = &shared.core;
    if held.local || is_leader(core) {
        return shared.plans.submit(plan.clone(), evals).await;
    }
    let leader = remote_leader(core).ok_or_else(|| ApiError::unavailable("no leader"))?;
    let req = PlanRequest {
        plan: plan.clone(),
        evals,
    };
    to_leader(core, &leader, PLAN_PATH, &req).await
}

async fn settle(
    shared: &Shared,
    held: &Held,
    nack: bool,
    reblock: Option<Evaluation>,
) -> Result<(), ApiError> {
    let core = &shared.core;
    if held.local || is_leader(core) {
        let done = if nack {
            shared.broker.nack(&held.eval.id, &held.token)
        } else {
            shared.broker.ack(&held.eval.id, &held.token, reblock)
        };
        return done.map_err(|e| ApiError::conflict(e.to_string()));
    }
    let leader = remote_leader(core).ok_or_else(|| ApiError::unavailable("no leader"))?;
    let req = AckRequest {
        eval_id: held.eval.id.clone(),
        token: held.token.clone(),
        nack,
        reblock,
    };
    let _: Settled = to_leader(core, &leader, ACK_PATH, &req).await?;
    Ok(())
}
