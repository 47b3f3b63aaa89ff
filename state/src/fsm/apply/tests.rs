//! Unit tests of apply: one or more per command, plus indexes, atomicity,
//! determinism and the snapshot round trip.

use std::collections::BTreeMap;

use wren_model::{
    AllocDeploymentStatus, Allocation, ClientStatus, Deployment, DeploymentState, DeploymentStatus,
    DeploymentStatusUpdate, DesiredStatus, DesiredTransition, DrainStrategy, Eligibility,
    EvalStatus, Evaluation, Job, JobStatus, Node, NodeStatus, PlanResult, TaskGroup,
    UpdateStrategy,
};

use crate::fsm::command::*;
use crate::fsm::{GcPolicy, State, Table};

const T0: i64 = 1_700_000_000_000_000_000;

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

fn at(t: i64, command: Command) -> Proposal {
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

fn register(job: Job, eval: Option<Evaluation>) -> Command {
    Command::RegisterJob(RegisterJob {
        job,
        eval,
        enforce_index: None,
    })
}

fn upsert_node(n: Node) -> Command {
    Command::UpsertNode(UpsertNode {
        node: n,
        evals: vec![],
    })
}

fn plan(placed: Vec<Allocation>, stopped: Vec<Allocation>, evals: Vec<Evaluation>) -> Command {
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
fn base() -> State {
    build(vec![
        upsert_node(node("n1")),
        register(job("web"), Some(eval("e1", "web"))),
    ])
}

#[test]
fn register_creates_version_zero_with_its_eval() {
    let mut s = State::new();
    let out = s
        .apply(7, at(0, register(job("web"), Some(eval("e1", "web")))))
        .unwrap();
    assert_eq!(
        out,
        Outcome::Job {
            job_id: "web".into(),
            version: 0,
            job_modify_index: 7,
            new_version: true
        }
    );
    let j = s.job("web").unwrap();
    assert_eq!(
        (
            j.version,
            j.create_index,
            j.modify_index,
            j.job_modify_index
        ),
        (0, 7, 7, 7)
    );
    assert_eq!(j.submit_time, T0);
    assert_eq!(
        j.status,
        JobStatus::Pending,
        "a pending eval makes it pending"
    );
    let e = s.eval("e1").unwrap();
    assert_eq!(
        (e.create_index, e.modify_index, e.job_modify_index),
        (7, 7, 7)
    );
    assert_eq!(e.create_time, T0);
    assert_eq!(s.table_index(Table::Jobs), 7);
    assert_eq!(s.table_index(Table::Evals), 7);
    assert_eq!(s.table_index(Table::Nodes), 0);
    assert_eq!(s.evals_by_job("web").count(), 1);
}

#[test]
fn register_identical_spec_keeps_the_version() {
    let mut s = base();
    let out = s.apply(3, at(3, register(job("web"), None))).unwrap();
    assert!(matches!(
        out,
        Outcome::Job {
            version: 0,
            new_version: false,
            job_modify_index: 2,
            ..
        }
    ));
    assert_eq!(s.job_versions("web").len(), 1);
    assert_eq!(s.job("web").unwrap().modify_index, 3);
}

#[test]
fn register_changed_spec_adds_a_version() {
    let mut s = base();
    let mut changed = job("web");
    changed.priority = 70;
    let out = s.apply(3, at(3, register(changed, None))).unwrap();
    assert!(matches!(
        out,
        Outcome::Job {
            version: 1,
            new_version: true,
            job_modify_index: 3,
            ..
        }
    ));
    let versions = s.job_versions("web");
    assert_eq!(
        versions.iter().map(|j| j.version).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(s.job("web").unwrap().create_index, 2);
    assert_eq!(s.job_version("web", 0).unwrap().priority, 50);
}

#[test]
fn register_with_check_index() {
    let mut s = base();
    let mut changed = job("web");
    changed.priority = 70;
    let stale = Command::RegisterJob(RegisterJob {
        job: changed.clone(),
        eval: None,
        enforce_index: Some(1),
    });
    let err = s.apply(3, at(3, stale)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::IndexMismatch {
            job: "web".into(),
            expected: 1,
            actual: 2
        }
    );
    let fresh = Command::RegisterJob(RegisterJob {
        job: changed,
        eval: None,
        enforce_index: Some(2),
    });
    s.apply(4, at(4, fresh)).unwrap();
    assert_eq!(s.job("web").unwrap().version, 1);
}

#[test]
fn register_rejects_an_eval_for_another_job() {
    let mut s = State::new();
    let err = s
        .apply(1, at(0, register(job("web"), Some(eval("e1", "db")))))
        .unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)));
    assert!(
        s.job("web").is_none(),
        "a failed command leaves nothing behind"
    );
    assert_eq!(s.index(), 1);
    assert_eq!(s.table_index(Table::Jobs), 0);
}

#[test]
fn stop_makes_a_new_stopped_version_and_purge_removes_all() {
    let mut s = base();
    let stop = Command::DeregisterJob(DeregisterJob {
        job_id: "web".into(),
        purge: false,
        eval: Some(eval("e2", "web")),
    });
    let out = s.apply(3, at(3, stop)).unwrap();
    assert!(matches!(
        out,
        Outcome::Job {
            version: 1,
            new_version: true,
            ..
        }
    ));
    assert!(s.job("web").unwrap().stop);
    assert_eq!(s.eval("e2").unwrap().job_modify_index, 3);
    let purge = Command::DeregisterJob(DeregisterJob {
        job_id: "web".into(),
        purge: true,
        eval: None,
    });
    s.apply(4, at(4, purge)).unwrap();
    assert!(s.job("web").is_none());
    assert!(s.job_versions("web").is_empty());
    let again = Command::DeregisterJob(DeregisterJob {
        job_id: "web".into(),
        purge: true,
        eval: None,
    });
    assert_eq!(
        s.apply(5, at(5, again)).unwrap_err(),
        ApplyError::UnknownJob("web".into())
    );
}

#[test]
fn upsert_node_keeps_drain_and_checks_the_secret() {
    let mut s = base();
    let drain = Command::UpdateNodeDrain(UpdateNodeDrain {
        node_id: "n1".into(),
        drain: Some(DrainStrategy {
            deadline: wren_model::Duration(60_000_000_000),
            ..DrainStrategy::default()
        }),
        mark_eligible: false,
        evals: vec![],
    });
    s.apply(3, at(3, drain)).unwrap();
    let n = s.node("n1").unwrap();
    assert_eq!(n.eligibility, Eligibility::Ineligible);
    let d = n.drain.as_ref().unwrap();
    assert_eq!(
        (d.started_at, d.force_deadline),
        (T0 + 3, T0 + 3 + 60_000_000_000)
    );

    let mut again = node("n1");
    again.attributes.insert("cpu.arch".into(), "arm64".into());
    s.apply(4, at(4, upsert_node(again))).unwrap();
    let n = s.node("n1").unwrap();
    assert!(n.drain.is_some(), "re-registering keeps the drain");
    assert_eq!((n.create_index, n.modify_index), (1, 4));
    assert_eq!(n.attributes["cpu.arch"], "arm64");
    assert!(n.computed_class.starts_with("v1:"));

    let mut impostor = node("n1");
    impostor.secret_id = "guess".into();
    assert_eq!(
        s.apply(5, at(5, upsert_node(impostor))).unwrap_err(),
        ApplyError::NodeSecretMismatch("n1".into())
    );
}

#[test]
fn node_status_eligibility_and_drain_end() {
    let mut s = base();
    let down = Command::UpdateNodeStatus(UpdateNodeStatus {
        node_id: "n1".into(),
        status: NodeStatus::Down,
        description: "missed heartbeat".into(),
        evals: vec![eval("e2", "web")],
    });
    s.apply(3, at(3, down)).unwrap();
    let n = s.node("n1").unwrap();
    assert_eq!((n.status, n.status_updated_at), (NodeStatus::Down, T0 + 3));
    assert!(s.eval("e2").is_some());

    let unknown = Command::UpdateNodeStatus(UpdateNodeStatus {
        node_id: "nope".into(),
        status: NodeStatus::Ready,
        ..UpdateNodeStatus::default()
    });
    assert_eq!(
        s.apply(4, at(4, unknown)).unwrap_err(),
        ApplyError::UnknownNode("nope".into())
    );

    let drain = |d: Option<DrainStrategy>, mark_eligible| {
        Command::UpdateNodeDrain(UpdateNodeDrain {
            node_id: "n1".into(),
            drain: d,
            mark_eligible,
            evals: vec![],
        })
    };
    s.apply(5, at(5, drain(Some(DrainStrategy::default()), false)))
        .unwrap();
    let eligible = Command::UpdateNodeEligibility(UpdateNodeEligibility {
        node_id: "n1".into(),
        eligibility: Eligibility::Eligible,
        evals: vec![],
    });
    assert_eq!(
        s.apply(6, at(6, eligible.clone())).unwrap_err(),
        ApplyError::NodeDraining("n1".into())
    );
    s.apply(7, at(7, drain(None, true))).unwrap();
    assert_eq!(s.node("n1").unwrap().eligibility, Eligibility::Eligible);
    let ineligible = Command::UpdateNodeEligibility(UpdateNodeEligibility {
        node_id: "n1".into(),
        eligibility: Eligibility::Ineligible,
        evals: vec![],
    });
    s.apply(8, at(8, ineligible)).unwrap();
    s.apply(9, at(9, eligible)).unwrap();
    assert_eq!(s.node("n1").unwrap().eligibility, Eligibility::Eligible);
}

#[test]
fn upsert_evals_keeps_create_bookkeeping() {
    let mut s = base();
    let mut done = eval("e1", "web");
    done.status = EvalStatus::Complete;
    let c = Command::UpsertEvals(UpsertEvals {
        evals: vec![done, eval("e2", "web")],
    });
    assert_eq!(
        s.apply(3, at(3, c)).unwrap(),
        Outcome::Batch {
            changed: 2,
            skipped: 0
        }
    );
    let e1 = s.eval("e1").unwrap();
    assert_eq!(
        (e1.create_index, e1.modify_index, e1.status),
        (2, 3, EvalStatus::Complete)
    );
    assert_eq!((e1.create_time, e1.modify_time), (T0 + 2, T0 + 3));
    assert_eq!(s.evals_by_job("web").count(), 2);
}

#[test]
fn plan_places_stops_and_updates_the_eval_in_one_entry() {
    let mut s = base();
    let mut done = eval("e1", "web");
    done.status = EvalStatus::Complete;
    let c = plan(
        vec![
            alloc("a1", "web", "n1", "e1"),
            alloc("a2", "web", "n1", "e1"),
        ],
        vec![],
        vec![done],
    );
    assert_eq!(
        s.apply(3, at(3, c)).unwrap(),
        Outcome::Batch {
            changed: 2,
            skipped: 0
        }
    );
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(
        (a1.create_index, a1.modify_index, a1.alloc_modify_index),
        (3, 3, 3)
    );
    assert_eq!(s.allocs_by_node("n1").count(), 2);
    assert_eq!(s.allocs_by_job("web").count(), 2);
    assert_eq!(s.allocs_by_eval("e1").count(), 2);
    assert_eq!(s.node_allocs_index("n1"), 3);
    assert_eq!(s.eval("e1").unwrap().status, EvalStatus::Complete);
    assert_eq!(s.job("web").unwrap().status, JobStatus::Running);

    // The client reports running, then the plan stops one.
    let mut running = alloc("a1", "web", "n1", "e1");
    running.client_status = ClientStatus::Running;
    let report = Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
        node_id: "n1".into(),
        allocs: vec![running],
        evals: vec![],
    });
    s.apply(4, at(4, report)).unwrap();
    let mut stop = alloc("a1", "web", "n1", "e1");
    stop.desired_status = DesiredStatus::Stop;
    stop.desired_description = "alloc not needed".into();
    let mut unknown = alloc("gone", "web", "n1", "e1");
    unknown.desired_status = DesiredStatus::Stop;
    let c = plan(vec![], vec![stop, unknown], vec![]);
    assert_eq!(
        s.apply(5, at(5, c)).unwrap(),
        Outcome::Batch {
            changed: 1,
            skipped: 1
        }
    );
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.desired_status, DesiredStatus::Stop);
    assert_eq!(
        a1.client_status,
        ClientStatus::Running,
        "the plan does not override the client"
    );
    assert_eq!((a1.create_index, a1.modify_index), (3, 5));
}

#[test]
fn plan_in_place_update_keeps_client_fields() {
    let mut s = base();
    s.apply(
        3,
        at(
            3,
            plan(vec![alloc("a1", "web", "n1", "e1")], vec![], vec![]),
        ),
    )
    .unwrap();
    let mut running = alloc("a1", "web", "n1", "e1");
    running.client_status = ClientStatus::Running;
    running.client_description = "tasks are running".into();
    s.apply(
        4,
        at(
            4,
            Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
                node_id: "n1".into(),
                allocs: vec![running],
                evals: vec![],
            }),
        ),
    )
    .unwrap();
    let mut update = alloc("a1", "web", "n1", "e9");
    update.client_status = ClientStatus::Pending;
    s.apply(5, at(5, plan(vec![update], vec![], vec![])))
        .unwrap();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.client_status, ClientStatus::Running);
    assert_eq!(a1.client_description, "tasks are running");
    assert_eq!(a1.eval_id, "e9");
    assert_eq!(
        s.allocs_by_eval("e1").count(),
        0,
        "secondary index follows the update"
    );
    assert_eq!(s.allocs_by_eval("e9").count(), 1);
}

#[test]
fn plan_errors_leave_nothing_behind() {
    let mut s = base();
    let before = s.save().unwrap();
    let unknown_node = plan(
        vec![
            alloc("a1", "web", "n1", "e1"),
            alloc("a2", "web", "n9", "e1"),
        ],
        vec![],
        vec![],
    );
    assert_eq!(
        s.apply(3, at(3, unknown_node)).unwrap_err(),
        ApplyError::UnknownNode("n9".into())
    );
    let mut bad_version = alloc("a1", "web", "n1", "e1");
    bad_version.job_version = 4;
    let err = s
        .apply(4, at(4, plan(vec![bad_version], vec![], vec![])))
        .unwrap_err();
    assert_eq!(
        err,
        ApplyError::UnknownJobVersion {
            job: "web".into(),
            version: 4
        }
    );
    assert!(s.alloc("a1").is_none());
    assert_eq!(s.index(), 4);
    let mut after = s.clone();
    after.index = 2;
    assert_eq!(
        after.save().unwrap(),
        before,
        "tables untouched by failed commands"
    );
}

#[test]
fn client_updates_touch_only_client_fields_of_their_own_node() {
    let mut s = build(vec![
        upsert_node(node("n1")),
        upsert_node(node("n2")),
        register(job("web"), None),
        plan(
            vec![
                alloc("a1", "web", "n1", "e1"),
                alloc("a2", "web", "n2", "e1"),
            ],
            vec![],
            vec![],
        ),
    ]);
    let mut a1 = alloc("a1", "web", "n1", "e1");
    a1.client_status = ClientStatus::Failed;
    a1.desired_status = DesiredStatus::Stop; // not the client's to change
    a1.node_id = "elsewhere".into();
    let mut a2 = alloc("a2", "web", "n2", "e1");
    a2.client_status = ClientStatus::Running;
    let c = Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
        node_id: "n1".into(),
        allocs: vec![a1, a2, alloc("a3", "web", "n1", "e1")],
        evals: vec![eval("e2", "web")],
    });
    assert_eq!(
        s.apply(5, at(5, c)).unwrap(),
        Outcome::Batch {
            changed: 1,
            skipped: 2
        }
    );
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.client_status, ClientStatus::Failed);
    assert_eq!(a1.desired_status, DesiredStatus::Run);
    assert_eq!(a1.node_id, "n1");
    assert_eq!((a1.modify_index, a1.alloc_modify_index), (5, 4));
    assert_eq!(s.alloc("a2").unwrap().client_status, ClientStatus::Pending);
    assert!(s.eval("e2").is_some());
}

#[test]
fn desired_transitions() {
    let mut s = base();
    s.apply(
        3,
        at(
            3,
            plan(vec![alloc("a1", "web", "n1", "e1")], vec![], vec![]),
        ),
    )
    .unwrap();
    let mut transitions = BTreeMap::new();
    transitions.insert(
        "a1".to_owned(),
        DesiredTransition {
            migrate: true,
            ..DesiredTransition::default()
        },
    );
    transitions.insert("zz".to_owned(), DesiredTransition::default());
    let c = Command::UpdateAllocDesiredTransitions(UpdateAllocDesiredTransitions {
        transitions,
        evals: vec![],
    });
    assert_eq!(
        s.apply(4, at(4, c)).unwrap(),
        Outcome::Batch {
            changed: 1,
            skipped: 1
        }
    );
    assert!(s.alloc("a1").unwrap().desired_transition.migrate);
}

fn canary_job() -> Job {
    let mut j = job("web");
    j.task_groups[0].update = Some(UpdateStrategy {
        canary: 1,
        progress_deadline: wren_model::Duration(600_000_000_000),
        ..UpdateStrategy::default()
    });
    j
}

fn deployment() -> Deployment {
    let mut groups = BTreeMap::new();
    groups.insert(
        "web".to_owned(),
        DeploymentState {
            desired_canaries: 1,
            desired_total: 2,
            ..DeploymentState::default()
        },
    );
    Deployment {
        id: "d1".into(),
        job_id: "web".into(),
        job_version: 0,
        task_groups: groups,
        status: DeploymentStatus::Running,
        ..Deployment::default()
    }
}

/// Node n1, job web with a canary update, deployment d1 with canary a1.
fn deploying() -> State {
    let mut canary = alloc("a1", "web", "n1", "e1");
    canary.deployment_id = Some("d1".into());
    canary.deployment_status = Some(AllocDeploymentStatus {
        canary: true,
        ..AllocDeploymentStatus::default()
    });
    let mut result = PlanResult {
        deployment: Some(deployment()),
        ..PlanResult::default()
    };
    result.node_allocation.insert("n1".into(), vec![canary]);
    build(vec![
        upsert_node(node("n1")),
        register(canary_job(), Some(eval("e1", "web"))),
        Command::ApplyPlan(ApplyPlan {
            result,
            evals: vec![],
        }),
    ])
}

#[test]
fn plan_creates_a_deployment_and_counts_placements() {
    let s = deploying();
    let d = s.deployment("d1").unwrap();
    assert_eq!((d.create_index, d.modify_index), (3, 3));
    let g = &d.task_groups["web"];
    assert_eq!(g.placed_allocs, 1);
    assert_eq!(g.placed_canaries, vec!["a1".to_owned()]);
    assert_eq!(s.allocs_by_deployment("d1").count(), 1);
    assert_eq!(s.latest_deployment("web").unwrap().id, "d1");
}

#[test]
fn promotion_needs_healthy_canaries() {
    let mut s = deploying();
    let promote = Command::PromoteDeployment(PromoteDeployment {
        deployment_id: "d1".into(),
        groups: vec![],
        eval: Some(eval("e2", "web")),
    });
    let err = s.apply(4, at(4, promote.clone())).unwrap_err();
    assert!(matches!(
        err,
        ApplyError::CanariesUnhealthy {
            healthy: 0,
            desired: 1,
            ..
        }
    ));

    let health = Command::SetAllocHealth(SetAllocHealth {
        deployment_id: "d1".into(),
        healthy: vec!["a1".into()],
        ..SetAllocHealth::default()
    });
    s.apply(5, at(5, health)).unwrap();
    let a1 = s.alloc("a1").unwrap();
    let status = a1.deployment_status.as_ref().unwrap();
    assert_eq!(
        (status.healthy, status.timestamp, status.canary),
        (Some(true), T0 + 5, true)
    );
    let g = &s.deployment("d1").unwrap().task_groups["web"];
    assert_eq!(g.healthy_allocs, 1);
    assert_eq!(g.require_progress_by, T0 + 5 + 600_000_000_000);

    s.apply(6, at(6, promote)).unwrap();
    assert!(s.deployment("d1").unwrap().task_groups["web"].promoted);
    assert!(s.eval("e2").is_some());
}

#[test]
fn alloc_health_rejects_strangers_and_finished_deployments() {
    let mut s = deploying();
    s.apply(
        4,
        at(
            4,
            plan(vec![alloc("a2", "web", "n1", "e1")], vec![], vec![]),
        ),
    )
    .unwrap();
    let stranger = Command::SetAllocHealth(SetAllocHealth {
        deployment_id: "d1".into(),
        unhealthy: vec!["a2".into()],
        ..SetAllocHealth::default()
    });
    assert!(matches!(
        s.apply(5, at(5, stranger)).unwrap_err(),
        ApplyError::AllocNotInDeployment { .. }
    ));
    let fail = Command::UpdateDeploymentStatus(UpdateDeploymentStatus {
        update: DeploymentStatusUpdate {
            deployment_id: "d1".into(),
            status: DeploymentStatus::Failed,
            status_description: "progress deadline".into(),
        },
        job: Some({
            let mut j = canary_job();
            j.priority = 60;
            j
        }),
        eval: Some(eval("e3", "web")),
    });
    let out = s.apply(6, at(6, fail.clone())).unwrap();
    assert!(
        matches!(out, Outcome::Job { version: 1, .. }),
        "revert registers a version"
    );
    assert_eq!(s.deployment("d1").unwrap().status, DeploymentStatus::Failed);
    assert!(matches!(
        s.apply(7, at(7, fail)).unwrap_err(),
        ApplyError::DeploymentNotActive { .. }
    ));
}

#[test]
fn job_status_follows_allocs_and_evals() {
    let mut s = base();
    assert_eq!(s.job("web").unwrap().status, JobStatus::Pending);
    let mut done = eval("e1", "web");
    done.status = EvalStatus::Complete;
    s.apply(
        3,
        at(
            3,
            plan(vec![alloc("a1", "web", "n1", "e1")], vec![], vec![done]),
        ),
    )
    .unwrap();
    assert_eq!(s.job("web").unwrap().status, JobStatus::Running);
    let mut finished = alloc("a1", "web", "n1", "e1");
    finished.client_status = ClientStatus::Complete;
    s.apply(
        4,
        at(
            4,
            Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
                node_id: "n1".into(),
                allocs: vec![finished],
                evals: vec![],
            }),
        ),
    )
    .unwrap();
    let j = s.job("web").unwrap();
    assert_eq!(j.status, JobStatus::Dead);
    assert_eq!(j.modify_index, 4, "a status change is a change");
}

#[test]
fn gc_collects_only_what_is_old_and_finished() {
    let hour = 3_600_000_000_000i64;
    let mut s = base();
    let mut done = eval("e1", "web");
    done.status = EvalStatus::Complete;
    s.apply(
        3,
        at(
            3,
            plan(
                vec![
                    alloc("a1", "web", "n1", "e1"),
                    alloc("a2", "web", "n1", "e1"),
                ],
                vec![],
                vec![done],
            ),
        ),
    )
    .unwrap();
    let mut finished = alloc("a1", "web", "n1", "e1");
    finished.client_status = ClientStatus::Complete;
    s.apply(
        4,
        at(
            4,
            Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
                node_id: "n1".into(),
                allocs: vec![finished],
                evals: vec![],
            }),
        ),
    )
    .unwrap();
    for v in 1..=8 {
        let mut j = job("web");
        j.priority = 50 + v;
        s.apply(4 + u64::from(v), at(5, register(j, None))).unwrap();
    }
    let policy = GcPolicy::default();
    let soon = s.gc_candidates(&policy, T0 + 10);
    assert!(
        soon.allocs.is_empty() && soon.evals.is_empty(),
        "nothing is old yet"
    );
    let later = s.gc_candidates(&policy, T0 + 2 * hour);
    assert_eq!(later.allocs, vec!["a1".to_owned()]);
    assert!(later.evals.is_empty(), "e1 still placed a live allocation");
    // Versions 8..3 are kept; 2 and 1 go; 0 is run by a2.
    assert_eq!(
        later.job_versions,
        vec![("web".to_owned(), 2), ("web".to_owned(), 1)]
    );
    let mut gc = later.clone();
    gc.nodes.push("n1".into()); // not down: skipped when applied
    let out = s
        .apply(20, at(2 * hour, Command::GarbageCollect(gc)))
        .unwrap();
    assert_eq!(
        out,
        Outcome::Batch {
            changed: 3,
            skipped: 1
        }
    );
    assert!(s.alloc("a1").is_none());
    assert_eq!(s.allocs_by_node("n1").count(), 1);
    assert!(s.job_version("web", 0).is_some() && s.job_version("web", 1).is_none());
    assert!(s.node("n1").is_some());
}

#[test]
fn indexes_rise_with_every_change() {
    let s = base();
    assert_eq!(s.index(), 2);
    assert_eq!(s.table_index(Table::Nodes), 1);
    assert_eq!(s.table_index(Table::Jobs), 2);
    assert_eq!(s.node("n1").unwrap().create_index, 1);
    assert_eq!(s.nodes_in_pool("default").count(), 1);
    assert_eq!(s.nodes_in_datacenter("dc1").count(), 1);
    let mut moved = s.clone();
    let mut n = node("n1");
    n.datacenter = "dc2".into();
    moved.apply(3, at(3, upsert_node(n))).unwrap();
    assert_eq!(moved.nodes_in_datacenter("dc1").count(), 0);
    assert_eq!(moved.nodes_in_datacenter("dc2").count(), 1);
    assert_eq!(
        s.nodes_in_datacenter("dc1").count(),
        1,
        "the old snapshot is untouched"
    );
}

/// A pseudo-random command stream over a few ids, including commands that
/// fail.
fn scripted(seed: u64, n: usize) -> Vec<Proposal> {
    let mut x = seed;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    (0..n)
        .map(|i| {
            let id = |p: &str, k: u64| format!("{p}{k}");
            let command = match next(6) {
                0 => upsert_node(node(&id("n", next(3)))),
                1 => {
                    let mut j = job(&id("j", next(3)));
                    j.priority = 40 + next(3) as u8;
                    let e = eval(&id("e", i as u64), &j.id);
                    register(j, Some(e))
                }
                2 => {
                    let a = alloc(
                        &id("a", next(8)),
                        &id("j", next(3)),
                        &id("n", next(3)),
                        "e0",
                    );
                    plan(vec![a], vec![], vec![])
                }
                3 => {
                    let mut a = alloc(&id("a", next(8)), "", "", "");
                    a.client_status = ClientStatus::Running;
                    Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
                        node_id: id("n", next(3)),
                        allocs: vec![a],
                        evals: vec![],
                    })
                }
                4 => Command::DeregisterJob(DeregisterJob {
                    job_id: id("j", next(3)),
                    purge: next(2) == 0,
                    eval: None,
                }),
                _ => Command::UpdateNodeStatus(UpdateNodeStatus {
                    node_id: id("n", next(4)),
                    status: NodeStatus::Down,
                    ..UpdateNodeStatus::default()
                }),
            };
            Proposal {
                issued_at: T0 + i as i64,
                command,
            }
        })
        .collect()
}

#[test]
fn the_same_commands_give_the_same_state() {
    for seed in [1u64, 7, 42, 1234] {
        let commands = scripted(seed, 300);
        let run = |commands: &[Proposal]| {
            let mut s = State::new();
            let results: Vec<_> = commands
                .iter()
                .enumerate()
                .map(|(i, p)| s.apply(i as u64 + 1, p.clone()))
                .collect();
            (s.save().unwrap(), results)
        };
        let (a, ra) = run(&commands);
        let (b, rb) = run(&commands);
        assert_eq!(a, b, "seed {seed}: states differ");
        assert_eq!(ra, rb, "seed {seed}: outcomes differ");
        assert!(
            ra.iter().any(Result::is_err),
            "seed {seed}: the script should hit errors too"
        );
        assert!(ra.iter().any(Result::is_ok));
    }
}

#[test]
fn snapshot_round_trip() {
    let mut s = deploying();
    for p in scripted(99, 200) {
        let i = s.index() + 1;
        let _ = s.apply(i, p);
    }
    let bytes = s.save().unwrap();
    let loaded = State::load(&bytes).unwrap();
    assert_eq!(loaded.save().unwrap(), bytes);
    assert_eq!(loaded.index(), s.index());
    for t in Table::ALL {
        assert_eq!(loaded.table_index(t), s.table_index(t));
    }
    assert_eq!(loaded.counts(), s.counts());
    for n in s.nodes() {
        assert_eq!(
            loaded
                .allocs_by_node(&n.id)
                .map(|a| a.id.clone())
                .collect::<Vec<_>>(),
            s.allocs_by_node(&n.id)
                .map(|a| a.id.clone())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn damaged_snapshots_are_refused() {
    let bytes = deploying().save().unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    assert!(matches!(
        State::load(&flipped),
        Err(crate::SnapshotError::Checksum { .. })
    ));
    assert!(matches!(
        State::load(&bytes[..5]),
        Err(crate::SnapshotError::Truncated(5))
    ));
    assert!(matches!(
        State::load(b"not a snapshot at all"),
        Err(crate::SnapshotError::BadMagic)
    ));
}

#[test]
fn restore_replaces_everything() {
    let saved = deploying();
    let mut s = base();
    s.apply(3, at(3, upsert_node(node("other")))).unwrap();
    let c = Command::Restore(Restore {
        snapshot: saved.save().unwrap(),
    });
    s.apply(9, at(9, c)).unwrap();
    assert!(s.node("other").is_none());
    assert_eq!(s.deployment("d1").unwrap().create_index, 3);
    assert_eq!(s.index(), 9);
    assert_eq!(s.table_index(Table::Allocs), 9);
    let bad = Command::Restore(Restore {
        snapshot: b"garbage".to_vec(),
    });
    assert!(matches!(
        s.apply(10, at(10, bad)).unwrap_err(),
        ApplyError::Invalid(_)
    ));
    assert!(s.deployment("d1").is_some());
}

#[test]
fn commands_round_trip_through_cbor() {
    for p in scripted(5, 50) {
        let bytes = wren_model::codec::to_cbor(&p);
        let back: Proposal = wren_model::codec::from_cbor(&bytes).unwrap();
        assert_eq!(back, p);
    }
    let out = Outcome::Job {
        job_id: "web".into(),
        version: 3,
        job_modify_index: 9,
        new_version: true,
    };
    let back: Outcome = wren_model::codec::from_cbor(&wren_model::codec::to_cbor(&out)).unwrap();
    assert_eq!(back, out);
    let err = ApplyError::UnknownNode("n".into());
    let back: ApplyError = wren_model::codec::from_cbor(&wren_model::codec::to_cbor(&err)).unwrap();
    assert_eq!(back, err);
}
