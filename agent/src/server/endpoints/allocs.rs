//! Allocations: list, get one with the job version it runs and where its
//! node listens, and stop one (a desired transition to migrate, plus the
//! evaluation that acts on it, as Nomad's `alloc stop`).

use std::collections::BTreeMap;

use wren_model::{DesiredTransition, TriggeredBy};
use wren_state::{Command, Table, UpdateAllocDesiredTransitions};

use super::{changed, id, new_eval, not_found, operators, prefix, reply_at, route, watchable};
use crate::api::{AllocDetail, AllocStub, EvalResponse};
use crate::server::core::Core;
use crate::wire::{HandlerResult, Method, Request, Router};

/// Registers the allocation routes.
pub fn register(core: &Core, router: &mut Router) {
    let roles = operators();
    watchable(router, "/v1/allocs", roles, core, list);
    watchable(router, "/v1/alloc/:id", roles, core, get);
    route(
        router,
        Method::Post,
        "/v1/alloc/:id/stop",
        roles,
        core,
        stop,
    );
}

async fn list(core: Core, req: Request) -> HandlerResult {
    let state = core.read_for(&req, Table::Allocs).await?;
    let allocs: Vec<AllocStub> = state
        .allocs_by_prefix(prefix(&req))
        .map(|a| AllocStub::from(&**a))
        .collect();
    Ok(reply_at(&req, &allocs, state.table_index(Table::Allocs)))
}

async fn get(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Allocs).await?;
    let alloc = state
        .alloc(&id)
        .ok_or_else(|| not_found("allocation", &id))?;
    let detail = AllocDetail {
        alloc: (**alloc).clone(),
        job: state
            .job_version(&alloc.job_id, alloc.job_version)
            .map(|j| (**j).clone()),
        node_address: state
            .node(&alloc.node_id)
            .map(|n| n.address.clone())
            .unwrap_or_default(),
    };
    Ok(reply_at(&req, &detail, state.table_index(Table::Allocs)))
}

async fn stop(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read(false).await?;
    let alloc = state
        .alloc(&id)
        .ok_or_else(|| not_found("allocation", &id))?;
    let (priority, job_type, job_modify_index) = match state.job(&alloc.job_id) {
        Some(j) => (j.priority, j.job_type, j.job_modify_index),
        None => state.job_version(&alloc.job_id, alloc.job_version).map_or(
            (wren_model::defaults::PRIORITY, Default::default(), 0),
            |j| (j.priority, j.job_type, j.job_modify_index),
        ),
    };
    let mut eval = new_eval(&alloc.job_id, priority, job_type, TriggeredBy::AllocStop);
    eval.job_modify_index = job_modify_index;
    let eval_id = eval.id.clone();
    let transition = DesiredTransition {
        migrate: true,
        ..alloc.desired_transition.clone()
    };
    let written = core
        .write(Command::UpdateAllocDesiredTransitions(
            UpdateAllocDesiredTransitions {
                transitions: BTreeMap::from([(id, transition)]),
                evals: vec![eval],
            },
        ))
        .await?;
    Ok(changed(
        &req,
        &EvalResponse {
            eval_id: Some(eval_id),
            index: written.index,
        },
        written.index,
    ))
}
