//! wren's placement brain, as pure functions and plain data structures.
//!
//! [`schedule`] takes a read-only view of the cluster state
//! ([`StateView`]), an evaluation, the time and a seed, and returns an
//! [`Outcome`]: the plan (stops, placements, updates, a deployment), the
//! evaluation's new status with an explanation of anything that could not
//! be placed, a blocked evaluation to retry when capacity appears, and
//! follow-up evaluations for delayed work. Service and batch jobs go
//! through the generic reconciler (`reconcile`, `generic`); system and
//! sysbatch jobs through `system`. Node choice is feasibility (`feasible`,
//! `constraint`, `distinct`, `usage`) then ranking (`rank`) over a bounded
//! number of candidates (`select`).
//!
//! Around it, the leader's machinery as synchronous data structures with
//! time passed in: the evaluation broker ([`broker`]), plan verification
//! ([`verify`]) and heartbeat TTLs ([`heartbeat`]).
//!
//! Deliberately absent: I/O, threads, clocks, and randomness not derived
//! from a seed the caller passes. The same state, evaluation, time and seed
//! give the same outcome, so every behaviour is testable from data files
//! (`testdata/`) and measurable without a cluster. This crate never
//! depends on the state crate; the agent implements [`StateView`] for its
//! snapshots and owns the async plumbing (notification, workers, the Raft
//! plan-apply loop).
//!
//! What the caller owes the scheduler:
//!
//! - Commit plans with the rules of [`MemState::apply_plan_result`] (keep
//!   client fields on updates unless the scheduler sets `lost`/`unknown`,
//!   link `next_allocation`, count placements into the deployment).
//! - Store [`Outcome::eval`]; track [`Outcome::blocked`] in the broker (and
//!   re-block an [`Outcome::eval`] whose status is `blocked`); store and
//!   enqueue [`Outcome::followups`] (they carry `wait_until`).
//! - `Allocation::disconnected_at` is the scheduler's: set when it marks an
//!   allocation `unknown`, cleared when it settles a reconnect; client
//!   updates leave it alone.
//! - Mark a node that missed its TTL `disconnected` rather than `down` while
//!   a group on it has `disconnect.lost_after`; create evaluations for the
//!   jobs on a node when it changes status, reconnects (`reconnect`), starts
//!   draining or a drained allocation's replacement starts running
//!   (`node-drain`), and for system jobs when a node joins.
//! - Call [`broker::EvalBroker::unblock`] with a node's computed class when
//!   it joins or changes or an allocation on it ends, and
//!   [`broker::EvalBroker::unblock_all`] now and then for evaluations
//!   blocked after too many refused plans (Nomad's periodic retry).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
mod config;
mod constraint;
mod distinct;
mod feasible;
mod generic;
pub mod heartbeat;
mod outcome;
mod rank;
mod reconcile;
mod rng;
mod select;
pub mod state;
mod system;
mod usage;
pub mod verify;

#[cfg(test)]
mod scenario;

pub use config::{Algorithm, SchedConfig, max_plan_attempts};
pub use outcome::Outcome;
pub use rng::Rng;
pub use state::{MemState, StateView};

use wren_model::{
    DeploymentStatus, DeploymentStatusUpdate, DesiredUpdates, Evaluation, Job, PlanAnnotations,
};

/// Schedules one evaluation against `state` at `now` (unix nanoseconds).
/// `seed` drives every random choice (node order, dynamic ports, ids).
///
/// A job that no longer exists, or is stopped, has all its allocations
/// stopped. The plan carries `snapshot_index = state.index()`; the worker
/// fills in `eval_token`.
pub fn schedule<S: StateView + ?Sized>(
    state: &S,
    eval: &Evaluation,
    now: i64,
    seed: u64,
    config: &SchedConfig,
) -> Outcome {
    let rng = Rng::new(seed);
    match state.job(&eval.job_id) {
        Some(job) if job.job_type.is_system() => {
            system::schedule(state, eval, job, now, rng, config)
        }
        Some(job) => generic::schedule(state, eval, job, now, rng, config),
        None => deregistered(state, eval, now, rng),
    }
}

/// A job gone from the state: stop whatever of it still runs and cancel
/// its deployment.
fn deregistered<S: StateView + ?Sized>(
    state: &S,
    eval: &Evaluation,
    now: i64,
    mut rng: Rng,
) -> Outcome {
    let job = Job {
        id: eval.job_id.clone(),
        job_type: eval.job_type,
        priority: eval.priority,
        stop: true,
        ..Job::default()
    };
    let mut plan = generic::base_plan(eval, &job, state.index());
    let mut desired = std::collections::BTreeMap::<String, DesiredUpdates>::new();
    for a in state
        .allocs_by_job(&eval.job_id)
        .filter(|a| !a.is_terminal())
    {
        generic::push_stop(&mut plan, a, reconcile::why::JOB_STOPPED, false, now);
        desired.entry(a.task_group.clone()).or_default().stop += 1;
    }
    if let Some(d) = state
        .latest_deployment(&eval.job_id)
        .filter(|d| d.status.is_active())
    {
        plan.deployment_updates.push(DeploymentStatusUpdate {
            deployment_id: d.id.clone(),
            status: DeploymentStatus::Cancelled,
            status_description: "cancelled because job is stopped".into(),
        });
    }
    plan.annotations = Some(PlanAnnotations {
        desired_tg_updates: desired,
        ..PlanAnnotations::default()
    });
    let fin = outcome::Finish::new(state.index(), now);
    outcome::finish(&mut rng, eval, None, plan, fin)
}
