//! Whole-state properties: indexes, garbage collection, determinism, snapshots.

use super::deployments::deploying;
use super::*;

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
