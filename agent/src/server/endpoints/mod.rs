//! The `/v1` read and write endpoints the CLI uses (see the table in
//! [`crate::api`]): one module per area. Each handler reads through
//! [`Core::read_for`] (consistent by default, `?stale` on request,
//! `?index=N` and observations block until the area's table passes N) or
//! writes one [`wren_state::Command`] through [`Core::write`], building the
//! evaluations Nomad would create for the change.
//!
//! Deliberately not here: the scheduling machinery (broker, workers, plan
//! applier, heartbeats) and the client agents' endpoints. Evaluations these
//! handlers create are written as `pending`; the leader's broker finds
//! them in the state.

pub mod allocs;
pub mod deployments;
pub mod evals;
pub mod jobs;
pub mod members;
pub mod nodes;
pub mod operator;

use std::future::Future;

use coap_lite::ResponseType;
use minicbor::Encode;
use serde::Serialize;
use wren_model::{EvalStatus, Evaluation, JobType, TriggeredBy};

use super::core::Core;
use super::membership::Membership;
use crate::wire::{ApiError, HandlerResult, Method, Request, Response, Roles, Router};

/// Who may read and change the region's objects: people (the CLI) and
/// servers; client agents have their own endpoints for their own node.
pub fn operators() -> Roles {
    Roles::CLI | Roles::SERVER
}

/// Registers every endpoint of this module on `router`.
pub fn register(core: &Core, members: &Membership, router: &mut Router) {
    jobs::register(core, router);
    evals::register(core, router);
    allocs::register(core, router);
    nodes::register(core, router);
    deployments::register(core, router);
    operator::register(core, members, router);
    members::register(core, members, router);
}

/// Adds a route whose handler gets a clone of `core`.
pub(crate) fn route<F, Fut>(
    router: &mut Router,
    method: Method,
    pattern: &str,
    roles: Roles,
    core: &Core,
    handler: F,
) where
    F: Fn(Core, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    let core = core.clone();
    router.route(method, pattern, roles, move |req| {
        handler(core.clone(), req)
    });
}

/// Adds a GET route that can also be observed (a blocking query).
pub(crate) fn watchable<F, Fut>(
    router: &mut Router,
    pattern: &str,
    roles: Roles,
    core: &Core,
    handler: F,
) where
    F: Fn(Core, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    let core = core.clone();
    router.observable(pattern, roles, move |req| handler(core.clone(), req));
}

/// The `:id` path parameter.
pub(crate) fn id(req: &Request) -> Result<String, ApiError> {
    req.param("id")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request("the path names no id"))
}

/// Whether a query flag is set (`?purge`, `?purge=true`).
pub(crate) fn flag(req: &Request, name: &str) -> bool {
    req.query(name)
        .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true") || v == "1")
}

/// The `?prefix=` filter (empty: everything).
pub(crate) fn prefix(req: &Request) -> &str {
    req.query("prefix").unwrap_or("")
}

/// 2.05 with `value` and the index it reflects.
pub(crate) fn reply_at<T: Encode<()> + Serialize>(
    req: &Request,
    value: &T,
    index: u64,
) -> Response {
    req.reply(value).with_index(index.max(1))
}

/// 2.04 Changed with `value`, for writes.
pub(crate) fn changed<T: Encode<()> + Serialize>(req: &Request, value: &T, index: u64) -> Response {
    Response::value(ResponseType::Changed, value, req.wants_json()).with_index(index.max(1))
}

/// A pending evaluation of `job_id`, stamped now.
pub(crate) fn new_eval(
    job_id: &str,
    priority: u8,
    job_type: JobType,
    triggered_by: TriggeredBy,
) -> Evaluation {
    let now = crate::ids::now_nanos();
    Evaluation {
        id: crate::ids::uuid(),
        priority,
        job_type,
        triggered_by,
        job_id: job_id.to_owned(),
        status: EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// A 4.04 naming what was not found.
pub(crate) fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("{what} {id:?} not found"))
}

/// States built from commands, for the handlers' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use wren_model::{
        Allocation, ClientStatus, Job, JobType, Node, NodeStatus, PlanResult, Task, TaskGroup,
    };
    use wren_state::{ApplyPlan, Command, Proposal, RegisterJob, State, UpsertNode};

    /// Applies `commands` in order from index 1.
    pub fn state(commands: Vec<Command>) -> State {
        let mut s = State::default();
        for (i, command) in commands.into_iter().enumerate() {
            let index = i as u64 + 1;
            s.apply(
                index,
                Proposal {
                    issued_at: 1_000 + index as i64,
                    command,
                },
            )
            .unwrap_or_else(|e| panic!("command {index}: {e}"));
        }
        s
    }

    /// A ready node in pool `pool`.
    pub fn node(id: &str, pool: &str) -> Command {
        Command::UpsertNode(UpsertNode {
            node: Node {
                id: id.into(),
                name: id.into(),
                datacenter: "dc1".into(),
                node_pool: pool.into(),
                status: NodeStatus::Ready,
                ..Node::default()
            },
            evals: Vec::new(),
        })
    }

    /// A job of one group `g` with one task.
    pub fn job(id: &str, job_type: JobType) -> Command {
        Command::RegisterJob(RegisterJob {
            job: Job {
                id: id.into(),
                name: id.into(),
                job_type,
                priority: 50,
                node_pool: "default".into(),
                datacenters: vec!["dc1".into()],
                task_groups: vec![TaskGroup {
                    name: "g".into(),
                    count: 1,
                    tasks: vec![Task {
                        name: "t".into(),
                        driver: "raw_exec".into(),
                        ..Task::default()
                    }],
                    ..TaskGroup::default()
                }],
                ..Job::default()
            },
            eval: None,
            enforce_index: None,
        })
    }

    /// Places allocations `(id, job, node, client status)`.
    pub fn place(allocs: &[(&str, &str, &str, ClientStatus)]) -> Command {
        let mut result = PlanResult::default();
        for (id, job, node, status) in allocs {
            result
                .node_allocation
                .entry((*node).to_owned())
                .or_insert_with(Vec::new)
                .push(Allocation {
                    id: (*id).into(),
                    name: format!("{job}.g[0]"),
                    node_id: (*node).into(),
                    job_id: (*job).into(),
                    task_group: "g".into(),
                    client_status: *status,
                    ..Allocation::default()
                });
        }
        Command::ApplyPlan(ApplyPlan {
            result,
            evals: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Role;

    #[test]
    fn reads_and_writes_are_for_the_cli_and_servers() {
        let roles = operators();
        assert!(roles.allows(Role::Cli));
        assert!(roles.allows(Role::Server));
        assert!(!roles.allows(Role::Client));
    }

    #[test]
    fn new_evals_are_pending_and_unique() {
        let a = new_eval("web", 70, JobType::Batch, TriggeredBy::JobRegister);
        let b = new_eval("web", 70, JobType::Batch, TriggeredBy::JobRegister);
        assert_ne!(a.id, b.id);
        assert_eq!(a.status, EvalStatus::Pending);
        assert_eq!((a.priority, a.job_type), (70, JobType::Batch));
        assert!(a.create_time > 0 && a.create_time == a.modify_time);
    }
}
