//! Nodes: list, get one (its secret redacted), its allocations, and the
//! operator's drain and eligibility changes, each with the evaluations
//! Nomad creates for it:
//!
//! - a drain that starts (or changes): one `node-drain` evaluation per job
//!   with live allocations on the node (system jobs skipped when the drain
//!   ignores them); the scheduler migrates what is on a draining node;
//! - a drain that ends with the node eligible again, or eligibility turned
//!   back on: `node-update` evaluations for the jobs on the node and for
//!   the system jobs of its pool, which may now place there.

use std::collections::BTreeMap;

use wren_model::{Eligibility, Evaluation, Node, TriggeredBy};
use wren_state::{Command, State, Table, UpdateNodeDrain, UpdateNodeEligibility};

use super::{changed, id, new_eval, not_found, operators, prefix, reply_at, route, watchable};
use crate::api::{AllocStub, EvalsResponse, NodeDrainRequest, NodeEligibilityRequest, NodeStub};
use crate::server::core::Core;
use crate::wire::{HandlerResult, Method, Request, Router};

/// Registers the node routes.
pub fn register(core: &Core, router: &mut Router) {
    let roles = operators();
    watchable(router, "/v1/nodes", roles, core, list);
    watchable(router, "/v1/node/:id", roles, core, get);
    watchable(router, "/v1/node/:id/allocations", roles, core, allocations);
    route(
        router,
        Method::Post,
        "/v1/node/:id/drain",
        roles,
        core,
        drain,
    );
    route(
        router,
        Method::Post,
        "/v1/node/:id/eligibility",
        roles,
        core,
        eligibility,
    );
}

async fn list(core: Core, req: Request) -> HandlerResult {
    let state = core.read_for(&req, Table::Nodes).await?;
    let nodes: Vec<NodeStub> = state
        .nodes_by_prefix(prefix(&req))
        .map(|n| NodeStub::from(&**n))
        .collect();
    Ok(reply_at(&req, &nodes, state.table_index(Table::Nodes)))
}

/// A node as the API shows it: its secret (the fingerprint of its client
/// certificate) is for the servers only.
fn redacted(node: &Node) -> Node {
    Node {
        secret_id: String::new(),
        ..node.clone()
    }
}

async fn get(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Nodes).await?;
    let node = state.node(&id).ok_or_else(|| not_found("node", &id))?;
    Ok(reply_at(
        &req,
        &redacted(node),
        state.table_index(Table::Nodes),
    ))
}

async fn allocations(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let state = core.read_for(&req, Table::Allocs).await?;
    let allocs: Vec<AllocStub> = state
        .allocs_by_node(&id)
        .map(|a| AllocStub::from(&**a))
        .collect();
    Ok(reply_at(&req, &allocs, state.table_index(Table::Allocs)))
}

/// One evaluation per job with live allocations on `node` (system jobs
/// only when `system`), and, when `placeable`, per system job of the
/// node's pool that has nothing there yet.
pub fn node_evals(
    state: &State,
    node: &Node,
    trigger: TriggeredBy,
    system: bool,
    placeable: bool,
) -> Vec<Evaluation> {
    let mut jobs = BTreeMap::new();
    for a in state.live_allocs_by_node(&node.id) {
        if let Some(job) = state.job(&a.job_id)
            && (system || !job.job_type.is_system())
        {
            jobs.insert(job.id.clone(), job.clone());
        }
    }
    if placeable {
        for job in state.jobs() {
            let pool_matches = job.node_pool == node.node_pool || job.node_pool == "all";
            if job.job_type.is_system() && !job.stop && pool_matches {
                jobs.insert(job.id.clone(), job.clone());
            }
        }
    }
    jobs.values()
        .map(|job| {
            let mut e = new_eval(&job.id, job.priority, job.job_type, trigger);
            e.node_id = Some(node.id.clone());
            e.job_modify_index = job.job_modify_index;
            e
        })
        .collect()
}

async fn drain(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let body: NodeDrainRequest = req.decode()?;
    let state = core.read(false).await?;
    let node = state.node(&id).ok_or_else(|| not_found("node", &id))?;
    let evals = match &body.drain {
        Some(d) => node_evals(
            &state,
            node,
            TriggeredBy::NodeDrain,
            !d.ignore_system_jobs,
            false,
        ),
        None if body.mark_eligible => node_evals(&state, node, TriggeredBy::NodeUpdate, true, true),
        None => Vec::new(),
    };
    let eval_ids: Vec<String> = evals.iter().map(|e| e.id.clone()).collect();
    let written = core
        .write(Command::UpdateNodeDrain(UpdateNodeDrain {
            node_id: id,
            drain: body.drain,
            mark_eligible: body.mark_eligible,
            evals,
        }))
        .await?;
    Ok(changed(
        &req,
        &EvalsResponse {
            eval_ids,
            index: written.index,
        },
        written.index,
    ))
}

async fn eligibility(core: Core, req: Request) -> HandlerResult {
    let id = id(&req)?;
    let body: NodeEligibilityRequest = req.decode()?;
    let state = core.read(false).await?;
    let node = state.node(&id).ok_or_else(|| not_found("node", &id))?;
    let evals =
        if body.eligibility == Eligibility::Eligible && node.eligibility != Eligibility::Eligible {
            node_evals(&state, node, TriggeredBy::NodeUpdate, true, true)
        } else {
            Vec::new()
        };
    let eval_ids: Vec<String> = evals.iter().map(|e| e.id.clone()).collect();
    let written = core
        .write(Command::UpdateNodeEligibility(UpdateNodeEligibility {
            node_id: id,
            eligibility: body.eligibility,
            evals,
        }))
        .await?;
    Ok(changed(
        &req,
        &EvalsResponse {
            eval_ids,
            index: written.index,
        },
        written.index,
    ))
}

#[cfg(test)]
mod tests {
    use wren_model::{ClientStatus, JobType};

    use super::*;
    use crate::server::endpoints::testing::{job, node, place, state};

    fn jobs_of(evals: &[Evaluation]) -> Vec<&str> {
        evals.iter().map(|e| e.job_id.as_str()).collect()
    }

    #[test]
    fn node_evaluations_cover_its_jobs_and_the_system_jobs_of_its_pool() {
        let s = state(vec![
            node("n1", "default"),
            job("web", JobType::Service),
            job("agent", JobType::System),
            job("logs", JobType::System),
            job("done", JobType::Batch),
            place(&[
                ("a1", "web", "n1", ClientStatus::Running),
                ("a2", "agent", "n1", ClientStatus::Running),
                ("a3", "done", "n1", ClientStatus::Complete),
            ]),
        ]);
        let n = s.node("n1").unwrap();
        // A drain: the jobs running there, system ones included...
        let evals = node_evals(&s, n, TriggeredBy::NodeDrain, true, false);
        assert_eq!(jobs_of(&evals), ["agent", "web"]);
        assert!(evals.iter().all(
            |e| e.node_id.as_deref() == Some("n1") && e.triggered_by == TriggeredBy::NodeDrain
        ));
        // ...or not, when the drain ignores system jobs.
        let evals = node_evals(&s, n, TriggeredBy::NodeDrain, false, false);
        assert_eq!(jobs_of(&evals), ["web"]);
        // Eligible again: also every system job of the pool.
        let evals = node_evals(&s, n, TriggeredBy::NodeUpdate, true, true);
        assert_eq!(jobs_of(&evals), ["agent", "logs", "web"]);
        assert_eq!(
            evals[0].job_modify_index,
            s.job("agent").unwrap().job_modify_index
        );
    }

    #[test]
    fn a_node_shown_through_the_api_has_no_secret() {
        let n = Node {
            secret_id: "abc".into(),
            name: "n".into(),
            ..Node::default()
        };
        let shown = redacted(&n);
        assert_eq!(shown.secret_id, "");
        assert_eq!(shown.name, "n");
    }
}
