//! Deployments: a job's latest and all of its deployments, and one by id.

use wren_model::Deployment;
use wren_state::Table;

use super::{id, not_found, operators, reply_at, watchable};
use crate::server::core::Core;
use crate::wire::{HandlerResult, Request, Router};

/// Registers the deployment routes.
pub fn register(core: &Core, router: &mut Router) {
    let roles = operators();
    watchable(router, "/v1/job/:id/deployment", roles, core, latest);
    watchable(router, "/v1/job/:id/deployments", roles, core, of_job);
    watchable(router, "/v1/deployment/:id", roles, core, get);
}

async fn latest(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Deployments).await?;
    let d: Option<Deployment> = state.latest_deployment(&id).map(|d| (**d).clone());
    Ok(reply_at(&req, &d, state.table_index(Table::Deployments)))
}

async fn of_job(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Deployments).await?;
    let mut all: Vec<Deployment> = state
        .deployments_by_job(&id)
        .map(|d| (**d).clone())
        .collect();
    all.sort_by_key(|d| std::cmp::Reverse(d.create_index));
    Ok(reply_at(&req, &all, state.table_index(Table::Deployments)))
}

async fn get(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Deployments).await?;
    let d = state
        .deployment(&id)
        .ok_or_else(|| not_found("deployment", &id))?;
    Ok(reply_at(&req, &**d, state.table_index(Table::Deployments)))
}
