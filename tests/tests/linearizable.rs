//! The linearizability checker on hand-made histories (each named after
//! the anomaly it shows), on random histories generated from a sequential
//! model (linearizable by construction), and on random mutations of them
//! checked against a brute-force search over every order.

use wren_tests::history::{End, JobHistory, JobInput, JobOutput};
use wren_tests::linearizable::generate::{Shape, generate};
use wren_tests::linearizable::{Budget, Jobs, Model, Verdict, check};
use wren_tests::rng::Rng;

use JobInput::{Deregister, Read, Register};
use JobOutput::{Absent, NotFound, Ok, Present};

fn ret(at: u64, output: JobOutput) -> End<JobOutput> {
    End::Returned { at, output }
}

fn verdict(h: &JobHistory) -> Verdict {
    check(&Jobs, h, Budget::default())
}

fn assert_linearizable(h: &JobHistory) {
    let v = verdict(h);
    assert!(v.is_linearizable(), "{v}");
}

fn assert_violation(h: &JobHistory) -> wren_tests::linearizable::Violation {
    match verdict(h) {
        Verdict::Violation(v) => v,
        other => panic!("expected a violation, got {other}\n{h:#?}"),
    }
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    assert_linearizable(&JobHistory::default());
    let mut h = JobHistory::default();
    h.push(0, "web", Read, 0, ret(1, Absent));
    h.push(0, "web", Register(1), 2, ret(3, Ok));
    h.push(0, "web", Read, 4, ret(5, Present(1)));
    h.push(0, "web", Register(2), 6, ret(7, Ok));
    h.push(0, "web", Read, 8, ret(9, Present(2)));
    h.push(0, "web", Deregister, 10, ret(11, Ok));
    h.push(0, "web", Read, 12, ret(13, Absent));
    h.push(0, "web", Deregister, 14, ret(15, NotFound));
    assert_linearizable(&h);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [Present(1), Present(2)] {
        let mut h = JobHistory::default();
        h.push(0, "web", Register(1), 0, ret(1, Ok));
        h.push(0, "web", Register(2), 2, ret(10, Ok));
        h.push(1, "web", Read, 3, ret(9, seen));
        assert_linearizable(&h);
    }
}

#[test]
fn concurrent_reads_must_agree_on_one_order() {
    // Two writes overlap two readers; the readers see them in opposite
    // orders. Each read alone is fine; together they need v1 before v2
    // and v2 before v1.
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, ret(10, Ok));
    h.push(1, "web", Register(2), 0, ret(10, Ok));
    h.push(2, "web", Read, 1, ret(3, Present(1)));
    h.push(2, "web", Read, 4, ret(5, Present(2)));
    h.push(3, "web", Read, 1, ret(3, Present(2)));
    h.push(3, "web", Read, 4, ret(5, Present(1)));
    assert_violation(&h);
}

#[test]
fn stale_read_after_an_acknowledged_write() {
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, ret(1, Ok));
    h.push(1, "web", Read, 2, ret(3, Absent));
    let v = assert_violation(&h);
    assert_eq!(v.key, "web");
    assert_eq!(v.linearized, vec![0]);
    assert_eq!(v.refused, vec![1]);
    assert!(v.report.contains("Absent"), "{}", v.report);
}

#[test]
fn stale_value_after_a_newer_acknowledged_write() {
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, ret(1, Ok));
    h.push(0, "web", Register(2), 2, ret(3, Ok));
    h.push(1, "web", Read, 4, ret(5, Present(1)));
    assert_violation(&h);
}

#[test]
fn lost_write_is_seen_then_gone() {
    // A later read without the acknowledged value, after an earlier read
    // had it: the write was lost (e.g. a leader that acknowledged before
    // committing).
    let mut h = JobHistory::default();
    h.push(0, "web", Register(7), 0, ret(1, Ok));
    h.push(1, "web", Read, 2, ret(3, Present(7)));
    h.push(2, "web", Read, 4, ret(5, Absent));
    assert_violation(&h);
}

#[test]
fn a_value_nobody_wrote() {
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, ret(1, Ok));
    h.push(1, "web", Read, 2, ret(3, Present(99)));
    assert_violation(&h);
}

#[test]
fn not_found_while_the_job_exists() {
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, ret(1, Ok));
    h.push(0, "web", Deregister, 2, ret(3, NotFound));
    assert_violation(&h);
}

#[test]
fn a_write_with_unknown_outcome_may_or_may_not_have_happened() {
    // Seen later: it happened.
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, End::Unknown);
    h.push(1, "web", Read, 5, ret(6, Present(1)));
    assert_linearizable(&h);
    // Never seen: it did not (or not yet).
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, End::Unknown);
    h.push(1, "web", Read, 5, ret(6, Absent));
    h.push(1, "web", Read, 7, ret(8, Absent));
    assert_linearizable(&h);
    // It can take effect long after the client gave up.
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, End::Unknown);
    h.push(1, "web", Read, 5, ret(6, Absent));
    h.push(1, "web", Read, 100, ret(101, Present(1)));
    assert_linearizable(&h);
    // But not before it was invoked.
    let mut h = JobHistory::default();
    h.push(1, "web", Read, 0, ret(1, Present(1)));
    h.push(0, "web", Register(1), 2, End::Unknown);
    assert_violation(&h);
    // And once seen, it cannot be unseen without another write.
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, End::Unknown);
    h.push(1, "web", Read, 5, ret(6, Present(1)));
    h.push(1, "web", Read, 7, ret(8, Absent));
    assert_violation(&h);
    // A read with an unknown outcome constrains nothing.
    let mut h = JobHistory::default();
    h.push(0, "web", Register(1), 0, ret(1, Ok));
    h.push(1, "web", Read, 2, End::Unknown);
    assert_linearizable(&h);
}

#[test]
fn keys_are_checked_independently_and_the_bad_one_is_named() {
    let mut h = JobHistory::default();
    h.push(0, "api", Register(1), 0, ret(1, Ok));
    h.push(0, "web", Register(2), 0, ret(1, Ok));
    h.push(1, "api", Read, 2, ret(3, Present(1)));
    // Would be fine if keys were one register: "web" was written last.
    h.push(1, "web", Read, 2, ret(3, Absent));
    let v = assert_violation(&h);
    assert_eq!(v.key, "web");
}

#[test]
fn equal_times_count_as_overlapping() {
    // The read returns at the instant the write is invoked: with coarse
    // clocks either order is possible, so the history is accepted.
    let mut h = JobHistory::default();
    h.push(0, "web", Read, 0, ret(5, Present(1)));
    h.push(1, "web", Register(1), 5, ret(6, Ok));
    assert_linearizable(&h);
}

#[test]
fn a_tiny_budget_is_inconclusive_not_wrong() {
    let mut h = JobHistory::default();
    for c in 0..6 {
        h.push(c, "web", Register(c as u64), 0, ret(100, Ok));
    }
    h.push(9, "web", Read, 101, ret(102, Present(3)));
    match check(&Jobs, &h, Budget { steps_per_key: 3 }) {
        Verdict::Inconclusive { key, .. } => assert_eq!(key, "web"),
        other => panic!("{other}"),
    }
    assert_linearizable(&h);
}

// ---- generated histories ----

/// Every order consistent with real time, tried one by one (for small
/// histories only). Unknown operations may be left out.
fn brute_force(h: &JobHistory) -> bool {
    let mut keys: Vec<&str> = h.ops.iter().map(|o| o.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().all(|k| {
        let ops: Vec<_> = h.ops.iter().filter(|o| o.key == k).collect();
        fn search(
            ops: &[&wren_tests::history::Op<JobInput, JobOutput>],
            done: u64,
            state: Option<u64>,
        ) -> bool {
            let pending: Vec<usize> = (0..ops.len()).filter(|i| done & (1 << i) == 0).collect();
            if pending.iter().all(|&i| ops[i].output().is_none()) {
                return true;
            }
            pending.iter().any(|&i| {
                let first = pending
                    .iter()
                    .all(|&j| j == i || ops[j].ret() >= ops[i].call);
                first
                    && Jobs
                        .step(&state, &ops[i].input, ops[i].output())
                        .is_some_and(|s| search(ops, done | (1 << i), s))
            })
        }
        search(&ops, 0, None)
    })
}

#[test]
fn generated_histories_are_linearizable() {
    let mut rng = Rng::from_env("generated_histories_are_linearizable");
    for round in 0..300 {
        let (clients, keys, ops) = (1 + rng.index(5), 1 + rng.index(3), 5 + rng.index(60));
        let h = generate(&mut rng, Shape { clients, keys, ops });
        let v = verdict(&h);
        assert!(v.is_linearizable(), "round {round}: {v}\n{h:#?}");
    }
}

#[test]
fn a_big_generated_history_is_decided_quickly_enough() {
    let mut rng = Rng::from_env("a_big_generated_history_is_decided_quickly_enough");
    let h = generate(
        &mut rng,
        Shape {
            clients: 8,
            keys: 4,
            ops: 4000,
        },
    );
    let v = check(
        &Jobs,
        &h,
        Budget {
            steps_per_key: 20_000_000,
        },
    );
    assert!(v.is_linearizable(), "{v}");
}

#[test]
fn reading_a_value_never_written_is_always_caught() {
    let mut rng = Rng::from_env("reading_a_value_never_written_is_always_caught");
    for round in 0..200 {
        let (clients, keys, ops) = (1 + rng.index(5), 1 + rng.index(3), 5 + rng.index(40));
        let mut h = generate(&mut rng, Shape { clients, keys, ops });
        let reads: Vec<usize> = h
            .ops
            .iter()
            .filter(|o| o.input == Read && o.output().is_some())
            .map(|o| o.id)
            .collect();
        if reads.is_empty() {
            continue;
        }
        let victim = reads[rng.index(reads.len())];
        let at = h.ops[victim].ret();
        h.ops[victim].end = ret(at, Present(u64::MAX));
        let v = verdict(&h);
        assert!(matches!(v, Verdict::Violation(_)), "round {round}: {v}");
    }
}

#[test]
fn mutated_small_histories_agree_with_brute_force() {
    let mut rng = Rng::from_env("mutated_small_histories_agree_with_brute_force");
    let (mut good, mut bad) = (0, 0);
    for round in 0..2000 {
        let (clients, keys, ops) = (1 + rng.index(4), 1 + rng.index(2), 2 + rng.index(8));
        let mut h = generate(&mut rng, Shape { clients, keys, ops });
        // Change one outcome to something random (or to unknown).
        let i = rng.index(h.ops.len());
        let at = h.ops[i].ret().min(h.ops[i].call + 1 + rng.below(20));
        h.ops[i].end = match rng.below(6) {
            0 => End::Unknown,
            1 => ret(at, Ok),
            2 => ret(at, NotFound),
            3 => ret(at, Absent),
            _ => ret(at, Present(rng.below(6))),
        };
        let expected = brute_force(&h);
        let v = verdict(&h);
        assert_eq!(
            v.is_linearizable(),
            expected,
            "round {round}: checker says {v}\n{h:#?}"
        );
        if expected {
            good += 1;
        } else {
            bad += 1;
        }
    }
    // Both answers occurred often enough for the comparison to mean something.
    assert!(good > 200 && bad > 200, "{good} linearizable, {bad} not");
}
