//! The leader's plan applier: plans from every worker go through one
//! queue, one at a time. Each is checked to come from the worker that
//! holds its evaluation, verified against the newest state
//! ([`wren_sched::verify::verify_plan`]: node still there and ready, nothing
//! over-committed, nothing stale), and what fits is committed in one Raft
//! entry ([`Command::ApplyPlan`]) together with the evaluation's new state
//! when the whole plan fits. The worker gets the result: rejected nodes and
//! the index to refresh its snapshot to before planning again.
//!
//! Because plans are applied strictly one after another and each is
//! verified against the state that includes every plan before it, two
//! workers racing for the same capacity can never over-commit a node.
//! (Nomad overlaps the verification of the next plan with the commit of
//! the previous one; at edge scale the simple loop is enough: one plan per
//! Raft commit.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smol::channel::{Receiver, Sender};
use wren_model::{Evaluation, Plan, PlanResult};
use wren_sched::verify::verify_plan;
use wren_state::{ApplyPlan, Command};

use super::broker::Broker;
use super::view::View;
use crate::server::core::{Core, write_error};
use crate::wire::ApiError;

/// Plans waiting for the applier, at most.
const QUEUE: usize = 256;

struct Submitted {
    plan: Plan,
    evals: Vec<Evaluation>,
    reply: Sender<Result<PlanResult, ApiError>>,
}

/// Counts of what the applier did on this server (it counts only while
/// leading; the numbers are kept across terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanStats {
    /// Plans verified.
    pub plans: u64,
    /// Plans of which some node's part was refused.
    pub partly_refused: u64,
    /// Raft entries written.
    pub committed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    plans: AtomicU64,
    partly_refused: AtomicU64,
    committed: AtomicU64,
}

/// The way into the applier; open only while this server leads.
#[derive(Default)]
pub struct PlanQueue {
    tx: Mutex<Option<Sender<Submitted>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PlanQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanQueue").finish_non_exhaustive()
    }
}

impl PlanQueue {
    /// Opens the queue; the returned future applies plans until
    /// [`PlanQueue::close`] (run it on the executor while leading).
    pub fn open(
        &self,
        core: Core,
        broker: Arc<Broker>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (tx, rx) = smol::channel::bounded(QUEUE);
        *self.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        run(rx, core, broker, self.counters.clone())
    }

    /// What the applier did so far.
    pub fn stats(&self) -> PlanStats {
        let c = &self.counters;
        PlanStats {
            plans: c.plans.load(Ordering::Relaxed),
            partly_refused: c.partly_refused.load(Ordering::Relaxed),
            committed: c.committed.load(Ordering::Relaxed),
        }
    }

    /// Closes the queue: plans already queued are still answered (with
    /// whatever the state says), new ones are refused.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Submits a plan and waits for its result.
    pub async fn submit(&self, plan: Plan, evals: Vec<Evaluation>) -> Result<PlanResult, ApiError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(super::rpc::not_leader)?;
        let (reply, answer) = smol::channel::bounded(1);
        tx.send(Submitted { plan, evals, reply })
            .await
            .map_err(|_| super::rpc::not_leader())?;
        answer
            .recv()
            .await
            .map_err(|_| ApiError::unavailable("the plan applier stopped (leadership lost)"))?
    }
}

async fn run(rx: Receiver<Submitted>, core: Core, broker: Arc<Broker>, counters: Arc<Counters>) {
    while let Ok(s) = rx.recv().await {
        let result = apply(&core, &broker, s.plan, s.evals).await;
        counters.plans.fetch_add(1, Ordering::Relaxed);
        if let Ok((r, written)) = &result {
            if !r.rejected_nodes.is_empty() {
                counters.partly_refused.fetch_add(1, Ordering::Relaxed);
            }
            if *written {
                counters.committed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = s.reply.try_send(result.map(|(r, _)| r));
    }
}

/// Verifies and commits one plan; says whether anything was written.
async fn apply(
    core: &Core,
    broker: &Broker,
    plan: Plan,
    evals: Vec<Evaluation>,
) -> Result<(PlanResult, bool), ApiError> {
    if !broker.hold(&plan.eval_id, &plan.eval_token) {
        return Err(ApiError::conflict(format!(
            "evaluation {} is not held with this token (nacked, timed out or re-delivered); the plan is dropped",
            plan.eval_id
        )));
    }
    let state = core.node.snapshot();
    let verdict = verify_plan(&View(state.clone()), &plan);
    let mut result = verdict.result;
    if let Some(first) = verdict.reasons.first() {
        // Normal under contention: the worker plans again.
        eprintln!(
            "wren server: plan for evaluation {}: {} node(s) refused ({first}); the worker re-plans",
            plan.eval_id,
            verdict.reasons.len()
        );
    }
    let full = result.is_full_commit(&plan);
    let evals = if full { evals } else { Vec::new() };
    let nothing = result.node_update.values().all(Vec::is_empty)
        && result.node_allocation.values().all(Vec::is_empty)
        && result.node_preemptions.values().all(Vec::is_empty)
        && result.deployment.is_none()
        && result.deployment_updates.is_empty();
    if nothing && evals.is_empty() {
        result.alloc_index = state.index();
        return Ok((result, false));
    }
    let command = Command::ApplyPlan(ApplyPlan {
        result: result.clone(),
        evals,
    });
    let write = core.node.write(command);
    let timer = async {
        smol::Timer::after(core.deadline).await;
        None
    };
    let written = smol::future::or(async { Some(write.await) }, timer)
        .await
        .ok_or_else(|| ApiError::unavailable("the plan did not commit in time (no quorum?)"))?
        .map_err(write_error)?;
    result.alloc_index = written.index;
    Ok((result, true))
}
