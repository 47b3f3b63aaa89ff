//! Jobs: register (with its evaluation), stop and purge (with a
//! deregister evaluation), read one or all with allocation summaries, and a
//! job's versions, allocations and evaluations.

use wren_model::validate::validate_job;
use wren_model::{ClientStatus, Job, TriggeredBy};
use wren_state::{Command, DeregisterJob, Outcome, RegisterJob, State, Table};

use super::{changed, flag, id, new_eval, not_found, operators, reply_at, route, watchable};
use crate::api::{
    AllocStub, GroupSummary, JobListStub, JobRegisterRequest, JobRegisterResponse, JobStopResponse,
    JobSummary,
};
use crate::server::core::Core;
use crate::wire::{ApiError, HandlerResult, Method, Request, Router};

/// Registers the job routes.
pub fn register(core: &Core, router: &mut Router) {
    let roles = operators();
    watchable(router, "/v1/jobs", roles, core, list);
    route(router, Method::Post, "/v1/jobs", roles, core, submit);
    watchable(router, "/v1/job/:id", roles, core, get);
    route(router, Method::Delete, "/v1/job/:id", roles, core, stop);
    watchable(router, "/v1/job/:id/summary", roles, core, summary);
    watchable(router, "/v1/job/:id/allocations", roles, core, allocations);
    watchable(router, "/v1/job/:id/evaluations", roles, core, evaluations);
    watchable(router, "/v1/job/:id/versions", roles, core, versions);
}

/// Allocation counts per group, like Nomad's job summary: client statuses
/// of the job's allocations, and what its latest evaluation left queued.
pub fn job_summary(state: &State, job: &Job) -> JobSummary {
    let mut groups: std::collections::BTreeMap<String, GroupSummary> = job
        .task_groups
        .iter()
        .map(|g| (g.name.clone(), GroupSummary::default()))
        .collect();
    for a in state.allocs_by_job(&job.id) {
        let g = groups.entry(a.task_group.clone()).or_default();
        let n = match a.client_status {
            ClientStatus::Pending => &mut g.starting,
            ClientStatus::Running => &mut g.running,
            ClientStatus::Failed => &mut g.failed,
            ClientStatus::Complete => &mut g.complete,
            ClientStatus::Lost => &mut g.lost,
            ClientStatus::Unknown => &mut g.unknown,
        };
        *n = n.saturating_add(1);
    }
    if let Some(latest) = state
        .evals_by_job(&job.id)
        .max_by_key(|e| (e.create_index, e.create_time))
    {
        for (group, queued) in &latest.queued_allocations {
            groups.entry(group.clone()).or_default().queued = *queued;
        }
    }
    JobSummary {
        job_id: job.id.clone(),
        groups,
    }
}

fn stub(state: &State, job: &Job) -> JobListStub {
    JobListStub {
        id: job.id.clone(),
        name: job.name.clone(),
        job_type: job.job_type,
        priority: job.priority,
        status: job.status,
        stop: job.stop,
        version: job.version,
        submit_time: job.submit_time,
        summary: job_summary(state, job),
    }
}

fn jobs_index(state: &State) -> u64 {
    state
        .table_index(Table::Jobs)
        .max(state.table_index(Table::Allocs))
}

async fn list(core: Core, req: Request) -> HandlerResult {
    let state = core.read_for(&req, Table::Jobs).await?;
    let stubs: Vec<JobListStub> = state
        .jobs_by_prefix(super::prefix(&req))
        .map(|j| stub(&state, j))
        .collect();
    Ok(reply_at(&req, &stubs, jobs_index(&state)))
}

fn the_job<'s>(state: &'s State, id: &str) -> Result<&'s Job, ApiError> {
    state
        .job(id)
        .map(|j| &**j)
        .ok_or_else(|| not_found("job", id))
}

async fn get(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Jobs).await?;
    let job = the_job(&state, &id)?;
    Ok(reply_at(&req, job, state.table_index(Table::Jobs)))
}

async fn submit(core: Core, req: Request) -> HandlerResult {
    let body: JobRegisterRequest = req.decode()?;
    let mut job = body.job;
    let region = &core.identity.region;
    if job.region.is_empty() {
        job.region = region.clone();
    }
    if &job.region != region {
        return Err(ApiError::bad_request(format!(
            "job {:?} is for region {:?}, but this is region {region:?}",
            job.id, job.region
        )));
    }
    let problems = validate_job(&job);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("  * {p}")).collect();
        return Err(ApiError::bad_request(format!(
            "job {:?} is invalid:\n{}",
            job.id,
            lines.join("\n")
        )));
    }
    let eval = (!job.is_template()).then(|| {
        new_eval(
            &job.id,
            job.priority,
            job.job_type,
            TriggeredBy::JobRegister,
        )
    });
    let eval_id = eval.as_ref().map(|e| e.id.clone());
    let job_id = job.id.clone();
    let written = core
        .write(Command::RegisterJob(RegisterJob {
            job,
            eval,
            enforce_index: body.enforce_index,
        }))
        .await?;
    let Outcome::Job {
        version,
        job_modify_index,
        new_version,
        ..
    } = written.outcome
    else {
        return Err(ApiError::internal(format!(
            "registering job {job_id:?} reported {:?}",
            written.outcome
        )));
    };
    let mut warnings = Vec::new();
    if !new_version {
        warnings.push(format!(
            "job {job_id:?} is unchanged: version {version} stays current"
        ));
    }
    Ok(changed(
        &req,
        &JobRegisterResponse {
            eval_id,
            job_modify_index,
            index: written.index,
            version,
            warnings,
        },
        written.index,
    ))
}

async fn stop(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let purge = flag(&req, "purge");
    // Consistent, so that "not found" is true when it is said.
    let state = core.read(false).await?;
    let job = the_job(&state, &id)?;
    let eval = new_eval(&id, job.priority, job.job_type, TriggeredBy::JobDeregister);
    let eval_id = eval.id.clone();
    let written = core
        .write(Command::DeregisterJob(DeregisterJob {
            job_id: id,
            purge,
            eval: Some(eval),
        }))
        .await?;
    Ok(changed(
        &req,
        &JobStopResponse {
            eval_id: Some(eval_id),
            index: written.index,
        },
        written.index,
    ))
}

async fn summary(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Allocs).await?;
    let job = the_job(&state, &id)?;
    Ok(reply_at(
        &req,
        &job_summary(&state, job),
        jobs_index(&state),
    ))
}

async fn allocations(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Allocs).await?;
    let allocs: Vec<AllocStub> = state
        .allocs_by_job(&id)
        .map(|a| AllocStub::from(&**a))
        .collect();
    Ok(reply_at(&req, &allocs, state.table_index(Table::Allocs)))
}

async fn evaluations(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Evals).await?;
    let mut evals: Vec<wren_model::Evaluation> =
        state.evals_by_job(&id).map(|e| (**e).clone()).collect();
    super::evals::newest_first(&mut evals);
    Ok(reply_at(&req, &evals, state.table_index(Table::Evals)))
}

async fn versions(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Jobs).await?;
    let versions: Vec<Job> = state
        .job_versions(&id)
        .iter()
        .map(|j| (**j).clone())
        .collect();
    if versions.is_empty() {
        return Err(not_found("job", &id));
    }
    Ok(reply_at(&req, &versions, state.table_index(Table::Jobs)))
}

#[cfg(test)]
mod tests {
    use wren_model::{ClientStatus, JobType};

    use super::*;
    use crate::server::endpoints::testing::{job, node, place, state};

    #[test]
    fn summaries_count_allocations_by_client_status() {
        let s = state(vec![
            node("n1", "default"),
            job("web", JobType::Service),
            place(&[
                ("a1", "web", "n1", ClientStatus::Running),
                ("a2", "web", "n1", ClientStatus::Running),
                ("a3", "web", "n1", ClientStatus::Failed),
                ("a4", "web", "n1", ClientStatus::Pending),
            ]),
        ]);
        let summary = job_summary(&s, s.job("web").unwrap());
        assert_eq!(summary.job_id, "web");
        assert_eq!(
            summary.groups["g"],
            GroupSummary {
                running: 2,
                failed: 1,
                starting: 1,
                ..GroupSummary::default()
            }
        );
        let listed = stub(&s, s.job("web").unwrap());
        assert_eq!((listed.id.as_str(), listed.version), ("web", 0));
        assert_eq!(listed.summary, summary);
        // A job without allocations has its groups at zero.
        let s = state(vec![job("idle", JobType::Batch)]);
        let summary = job_summary(&s, s.job("idle").unwrap());
        assert_eq!(summary.groups["g"], GroupSummary::default());
    }
}
