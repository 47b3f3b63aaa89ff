//! Evaluations: list (by prefix or job), get one (observable, so `job run`
//! can watch it move from pending to complete or blocked), and the
//! allocations one placed.

use wren_model::Evaluation;
use wren_state::Table;

use super::{id, not_found, operators, prefix, reply_at, watchable};
use crate::api::AllocStub;
use crate::server::core::Core;
use crate::wire::{HandlerResult, Request, Router};

/// Registers the evaluation routes.
pub fn register(core: &Core, router: &mut Router) {
    let roles = operators();
    watchable(router, "/v1/evals", roles, core, list);
    watchable(router, "/v1/eval/:id", roles, core, get);
    watchable(router, "/v1/eval/:id/allocations", roles, core, allocations);
}

/// Sorts evaluations newest first (as Nomad lists them).
pub fn newest_first(evals: &mut [Evaluation]) {
    evals.sort_by(|a, b| {
        (b.create_index, b.create_time, &b.id).cmp(&(a.create_index, a.create_time, &a.id))
    });
}

async fn list(core: Core, req: Request) -> HandlerResult {
    let state = core.read_for(&req, Table::Evals).await?;
    let prefix = prefix(&req);
    let job = req.query("job").filter(|j| !j.is_empty());
    let mut evals: Vec<Evaluation> = match job {
        Some(job) => state
            .evals_by_job(job)
            .filter(|e| e.id.starts_with(prefix))
            .map(|e| (**e).clone())
            .collect(),
        None => state
            .evals()
            .filter(|e| e.id.starts_with(prefix))
            .map(|e| (**e).clone())
            .collect(),
    };
    newest_first(&mut evals);
    Ok(reply_at(&req, &evals, state.table_index(Table::Evals)))
}

async fn get(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Evals).await?;
    let eval = state
        .eval(&id)
        .ok_or_else(|| not_found("evaluation", &id))?;
    Ok(reply_at(&req, &**eval, state.table_index(Table::Evals)))
}

async fn allocations(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Allocs).await?;
    let allocs: Vec<AllocStub> = state
        .allocs_by_eval(&id)
        .map(|a| AllocStub::from(&**a))
        .collect();
    Ok(reply_at(&req, &allocs, state.table_index(Table::Allocs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_list_newest_first() {
        let e = |id: &str, create_index: u64| Evaluation {
            id: id.into(),
            create_index,
            ..Evaluation::default()
        };
        let mut list = vec![e("a", 3), e("b", 9), e("c", 5)];
        newest_first(&mut list);
        let ids: Vec<&str> = list.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }
}
