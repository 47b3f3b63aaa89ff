//! Unit tests of apply, by area, and the helpers they share.

use std::collections::BTreeMap;

use wren_model::{
    AllocDeploymentStatus, Allocation, ClientStatus, Deployment, DeploymentState, DeploymentStatus,
    DeploymentStatusUpdate, DesiredStatus, DesiredTransition, DrainStrategy, Eligibility,
    EvalStatus, Evaluation, Job, JobStatus, Node, NodeStatus, PlanResult, TaskGroup,
    UpdateStrategy,
};

use crate::fsm::command::*;
use crate::fsm::{GcPolicy, State, Table};

pub(crate) const T0: i64 = 1_700_000_000_000_000_000;

pub(crate) fn job(id: &str) -> Job {
    Job {
        id: id.to_owned(),
        name: id.to_owned(),
        region: "global".to_owned(),
        datacenters: vec!["dc1".to_owned()],
        node_pool: "default".to_owned(),
        priority: 50,
        task_groups: vec![TaskGroup {
            name: "web".to_owned(),
            count: 2,
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

pub(crate) fn node(id: &str) -> Node {
    Node {
        id: id.to_owned(),
        secret_id: format!("secret-{id}"),
        name: id.to_owned(),
        datacenter: "dc1".to_owned(),
        node_pool: "default".to_owned(),
        status: NodeStatus::Ready,
        ..Node::default()
    }
}

pub(crate) fn eval(id: &str, job: &str) -> Evaluation {
    Evaluation {
        id: id.to_owned(),
        job_id: job.to_owned(),
        priority: 50,
        status: EvalStatus::Pending,
        ..Evaluation::default()
    }
}

pub(crate) fn alloc(id: &str, job: &str, node: &str, eval: &str) -> Allocation {
    Allocation {
        id: id.to_owned(),
        eval_id: eval.to_owned(),
        name: format!("{job}.web[0]"),
        node_id: node.to_owned(),
        job_id: job.to_owned(),
        job_version: 0,
        task_group: "web".to_owned(),
        ..Allocation::default()
    }
}

pub(crate) fn at(t: i64, command: Command) -> Proposal {
    Proposal {
        issued_at: T0 + t,
        command,
    }
}

/// Applies commands at indexes 1, 2, ... and panics on the first error.
pub(crate) fn build(commands: Vec<Command>) -> State {
    let mut state = State::new();
    for (i, c) in commands.into_iter().enumerate() {
        let index = i as u64 + 1;
        state
            .apply(index, at(index as i64, c))
            .unwrap_or_else(|e| panic!("entry {index}: {e}"));
    }
    state
}

pub(crate) fn register(job: Job, eval: Option<Evaluation>) -> Command {
    Command::RegisterJob(RegisterJob {
        job,
        eval,
        enforce_index: None,
    })
}

pub(crate) fn upsert_node(n: Node) -> Command {
    Command::UpsertNode(UpsertNode {
        node: n,
        evals: vec![],
    })
}

pub(crate) fn plan(
    placed: Vec<Allocation>,
    stopped: Vec<Allocation>,
    evals: Vec<Evaluation>,
) -> Command {
    let mut result = PlanResult::default();
    for a in placed {
        result
            .node_allocation
            .entry(a.node_id.clone())
            .or_default()
            .push(a);
    }
    for a in stopped {
        result
            .node_update
            .entry(a.node_id.clone())
            .or_default()
            .push(a);
    }
    Command::ApplyPlan(ApplyPlan { result, evals })
}

/// A cluster with node n1, job web (version 0) and eval e1.
pub(crate) fn base() -> State {
    build(vec![
        upsert_node(node("n1")),
        register(job("web"), Some(eval("e1", "web"))),
    ])
}

mod allocs;
mod deployments;
mod jobs;
mod nodes_evals;
mod whole;
