//! Deployments: creation from plans, health, promotion, status.

use super::*;

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
pub(super) fn deploying() -> State {
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
