//! Evaluations the leader creates for changes it observes: a node that
//! changed status, a node that joined (system jobs), allocations that
//! failed on their client.

use std::collections::BTreeSet;

use wren_model::{EvalStatus, Evaluation, Job, TriggeredBy};
use wren_state::State;

/// A pending evaluation of `job`.
pub fn for_job(job: &Job, trigger: TriggeredBy, node_id: Option<&str>, now: i64) -> Evaluation {
    Evaluation {
        id: crate::ids::uuid(),
        priority: job.priority,
        job_type: job.job_type,
        triggered_by: trigger,
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        node_id: node_id.map(str::to_owned),
        status: EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// One evaluation per job with live allocations on the node.
pub fn jobs_on_node(
    state: &State,
    node_id: &str,
    trigger: TriggeredBy,
    now: i64,
) -> Vec<Evaluation> {
    let jobs: BTreeSet<&str> = state
        .live_allocs_by_node(node_id)
        .map(|a| a.job_id.as_str())
        .collect();
    jobs.into_iter()
        .filter_map(|id| state.job(id))
        .map(|job| for_job(job, trigger, Some(node_id), now))
        .collect()
}

/// What a node that joins or comes back needs: one evaluation per system
/// job (it may belong on the node) and per job with allocations on it,
/// each job once.
pub fn node_ready(state: &State, node_id: &str, trigger: TriggeredBy, now: i64) -> Vec<Evaluation> {
    let mut evals = jobs_on_node(state, node_id, trigger, now);
    let seen: BTreeSet<String> = evals.iter().map(|e| e.job_id.clone()).collect();
    evals.extend(
        state
            .jobs()
            .filter(|j| j.job_type.is_system() && !j.stop && !j.is_template())
            .filter(|j| !seen.contains(&j.id))
            .map(|j| for_job(j, TriggeredBy::NodeUpdate, Some(node_id), now)),
    );
    evals
}
