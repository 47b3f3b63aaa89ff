//! Nodes and evaluations.

use super::*;

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
