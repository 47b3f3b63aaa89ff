//! `POST /v1/job/<id>/plan`: what registering a job would do, without
//! doing it.
//!
//! The job is registered on a private copy of a consistent snapshot (the
//! state machine's own apply, so versions and indexes come out exactly as
//! a real registration would make them), its evaluation is scheduled on
//! that copy, and the answer says per group what would change, which
//! placements would fail and why, where new allocations would go, and how
//! the job differs from its current version. Nothing is written.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use wren_model::{EvalStatus, Evaluation, TriggeredBy};
use wren_state::{Command, Proposal, RegisterJob};

use super::Shared;
use super::diff;
use super::view::View;
use crate::api::{JobPlanRequest, JobPlanResponse};
use crate::server::core::apply_error;
use crate::wire::{ApiError, HandlerResult, Request};

/// Handles a plan request.
pub async fn plan(shared: Arc<Shared>, req: Request) -> HandlerResult {
    let id = req
        .param("id")
        .ok_or_else(|| ApiError::bad_request("no job id in the path"))?
        .to_owned();
    let body: JobPlanRequest = req.decode()?;
    let mut job = body.job;
    if job.id.is_empty() {
        job.id.clone_from(&id);
    } else if job.id != id {
        return Err(ApiError::bad_request(format!(
            "the path names job {id:?} but the body is job {:?}",
            job.id
        )));
    }
    let problems = wren_model::validate::validate_job(&job);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ApiError::bad_request(format!(
            "job {id:?} is invalid: {}",
            lines.join("; ")
        )));
    }
    let stale = req
        .query("stale")
        .is_some_and(|v| v.is_empty() || v == "true");
    let state = shared.core.read(stale).await?;
    let current = state.job(&job.id).cloned();
    let now = crate::ids::now_nanos();
    let eval = Evaluation {
        id: crate::ids::uuid(),
        priority: job.priority,
        job_type: job.job_type,
        triggered_by: TriggeredBy::JobRegister,
        job_id: job.id.clone(),
        status: EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    };
    let template = job.is_template();
    let mut sim = state.clone();
    let index = sim.index() + 1;
    sim.apply(
        index,
        Proposal {
            issued_at: now,
            command: Command::RegisterJob(RegisterJob {
                job: job.clone(),
                eval: (!template).then(|| eval.clone()),
                enforce_index: None,
            }),
        },
    )
    .map_err(apply_error)?;
    let mut resp = JobPlanResponse {
        job_modify_index: current.as_ref().map_or(0, |j| j.job_modify_index),
        diff: diff::jobs(current.as_deref(), &job),
        ..JobPlanResponse::default()
    };
    if template {
        return Ok(req.reply(&resp));
    }
    let eval = sim.eval(&eval.id).map_or(eval, |e| (**e).clone());
    let outcome = wren_sched::schedule(
        &View(sim),
        &eval,
        now,
        crate::ids::random_u64(),
        &shared.sched_config,
    );
    let existing: HashSet<&str> = state
        .allocs_by_job(&job.id)
        .map(|a| a.id.as_str())
        .collect();
    let mut placements = BTreeMap::new();
    for (node, allocs) in &outcome.plan.node_allocation {
        let new = allocs
            .iter()
            .filter(|a| !existing.contains(a.id.as_str()))
            .count();
        if new > 0 {
            let name = state
                .node(node)
                .map_or_else(|| node.clone(), |n| n.name.clone());
            *placements.entry(name).or_insert(0u32) += u32::try_from(new).unwrap_or(u32::MAX);
        }
    }
    resp.annotations = outcome.plan.annotations;
    resp.failed_tg_allocs = outcome.eval.failed_tg_allocs;
    resp.placements = placements;
    Ok(req.reply(&resp))
}
