//! Plans, client updates, transitions, and the job status they drive.

use super::*;

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

/// The rules of `wren_sched::MemState::apply_plan_result`, which the
/// scheduler relies on: disconnects, reconnects, lost allocations and
/// replacements.
#[test]
fn plans_follow_the_schedulers_apply_rules() {
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
    let report = |a: Allocation| {
        Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
            node_id: "n1".into(),
            allocs: vec![a],
            evals: vec![],
        })
    };
    s.apply(4, at(4, report(running.clone()))).unwrap();

    // The node disconnects: the scheduler marks the allocation unknown.
    let mut unknown = alloc("a1", "web", "n1", "e2");
    unknown.client_status = ClientStatus::Unknown;
    unknown.client_description = "node is disconnected".into();
    unknown.disconnected_at = Some(T0 + 5);
    s.apply(5, at(5, plan(vec![unknown], vec![], vec![])))
        .unwrap();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(
        a1.client_status,
        ClientStatus::Unknown,
        "the scheduler's call"
    );
    assert_eq!(a1.client_description, "node is disconnected");
    assert_eq!(a1.disconnected_at, Some(T0 + 5));

    // The client comes back and reports: its report leaves the
    // scheduler's disconnect time alone.
    s.apply(6, at(6, report(running.clone()))).unwrap();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.client_status, ClientStatus::Running);
    assert_eq!(a1.disconnected_at, Some(T0 + 5));

    // The scheduler settles the reconnect with a copy of its (older)
    // snapshot: the client's status stays, the disconnect time clears.
    let mut settled = alloc("a1", "web", "n1", "e3");
    settled.client_status = ClientStatus::Pending;
    settled.disconnected_at = None;
    s.apply(7, at(7, plan(vec![settled], vec![], vec![])))
        .unwrap();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.client_status, ClientStatus::Running);
    assert_eq!(a1.disconnected_at, None);

    // A stop copied from a snapshot that still said `unknown` does not
    // override the client; a stop that declares the allocation lost does.
    let mut stop = alloc("a1", "web", "n1", "e4");
    stop.desired_status = DesiredStatus::Stop;
    stop.client_status = ClientStatus::Unknown;
    s.apply(8, at(8, plan(vec![], vec![stop.clone()], vec![])))
        .unwrap();
    assert_eq!(s.alloc("a1").unwrap().client_status, ClientStatus::Running);
    stop.client_status = ClientStatus::Lost;
    stop.client_description = "alloc is lost since its node is down".into();

    // ... together with its replacement, which links the predecessor.
    let mut replacement = alloc("a2", "web", "n1", "e4");
    replacement.previous_allocation = Some("a1".into());
    s.apply(9, at(9, plan(vec![replacement], vec![stop], vec![])))
        .unwrap();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.client_status, ClientStatus::Lost);
    assert_eq!(a1.desired_status, DesiredStatus::Stop);
    assert_eq!(a1.next_allocation.as_deref(), Some("a2"));
    assert_eq!(a1.modify_index, 9);
}
