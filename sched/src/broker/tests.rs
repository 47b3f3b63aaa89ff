use super::*;
use crate::state::MemState;

const S: i64 = 1_000_000_000;

fn eval(id: &str, job: &str, priority: u8, index: u64) -> Evaluation {
    Evaluation {
        id: id.into(),
        job_id: job.into(),
        priority,
        create_index: index,
        job_type: JobType::Service,
        status: EvalStatus::Pending,
        ..Evaluation::default()
    }
}

fn broker() -> EvalBroker {
    let mut b = EvalBroker::new(BrokerConfig::default(), 1);
    b.set_enabled(true);
    b
}

fn next(b: &mut EvalBroker, now: i64) -> Option<(String, String)> {
    b.dequeue(&[JobType::Service, JobType::Batch, JobType::System], now)
        .unwrap()
        .map(|(e, t)| (e.id, t))
}

#[test]
fn priority_then_age() {
    let mut b = broker();
    b.enqueue(eval("low", "a", 10, 1), 0);
    b.enqueue(eval("high-new", "b", 90, 5), 0);
    b.enqueue(eval("high-old", "c", 90, 3), 0);
    let order: Vec<String> = (0..3)
        .filter_map(|_| next(&mut b, 0))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(order, vec!["high-old", "high-new", "low"]);
}

#[test]
fn dequeue_only_asked_types() {
    let mut b = broker();
    let mut sys = eval("sys", "s", 50, 1);
    sys.job_type = JobType::System;
    b.enqueue(sys, 0);
    assert_eq!(b.dequeue(&[JobType::Service], 0).unwrap(), None);
    assert!(b.dequeue(&[JobType::System], 0).unwrap().is_some());
}

#[test]
fn one_in_flight_per_job_and_newer_cancels_older() {
    let mut b = broker();
    b.enqueue(eval("e1", "web", 50, 1), 0);
    let (id, token) = next(&mut b, 0).unwrap();
    assert_eq!(id, "e1");
    b.enqueue(eval("e2", "web", 50, 2), 0);
    b.enqueue(eval("e3", "web", 50, 3), 0);
    assert_eq!(next(&mut b, 0), None, "web already has one in flight");
    assert_eq!(b.stats().pending, 1);
    let cancelled: Vec<String> = b.take_cancelable().into_iter().map(|e| e.id).collect();
    assert_eq!(cancelled, vec!["e2"]);
    b.ack("e1", &token).unwrap();
    let (id, _) = next(&mut b, 0).unwrap();
    assert_eq!(id, "e3");
}

#[test]
fn tokens_are_checked() {
    let mut b = broker();
    b.enqueue(eval("e1", "web", 50, 1), 0);
    let (_, token) = next(&mut b, 0).unwrap();
    assert!(b.holds("e1", &token));
    assert_eq!(
        b.ack("e1", "wrong"),
        Err(BrokerError::TokenMismatch("e1".into()))
    );
    assert_eq!(
        b.ack("nope", &token),
        Err(BrokerError::NotOutstanding("nope".into()))
    );
    b.ack("e1", &token).unwrap();
    assert_eq!(
        b.ack("e1", &token),
        Err(BrokerError::NotOutstanding("e1".into()))
    );
    let mut off = EvalBroker::new(BrokerConfig::default(), 1);
    assert_eq!(
        off.dequeue(&[JobType::Service], 0),
        Err(BrokerError::Disabled)
    );
}

#[test]
fn nacks_back_off_then_fail_at_the_limit() {
    let mut b = broker();
    b.enqueue(eval("e1", "web", 50, 1), 0);
    b.enqueue(eval("other", "api", 10, 2), 0);
    let (_, t1) = next(&mut b, 0).unwrap();
    b.nack("e1", &t1, 0).unwrap();
    // The job stays owned while e1 waits out its backoff: a new eval for it
    // waits too, and the other job's eval goes ahead.
    b.enqueue(eval("e2", "web", 50, 3), 0);
    assert_eq!(next(&mut b, 0).map(|x| x.0), Some("other".into()));
    assert_eq!(next(&mut b, 0), None);
    assert_eq!(b.next_deadline(), Some(S));
    b.tick(S);
    let (id, t2) = next(&mut b, S).unwrap();
    assert_eq!(id, "e1");
    b.nack("e1", &t2, S).unwrap();
    b.tick(2 * S);
    assert_eq!(next(&mut b, 2 * S), None, "second backoff is 20s");
    b.tick(21 * S);
    let (_, t3) = next(&mut b, 21 * S).unwrap();
    b.nack("e1", &t3, 21 * S).unwrap();
    assert_eq!(b.failed().len(), 1);
    assert_eq!(b.failed()[0].status, EvalStatus::Failed);
    let reaped = b.take_failed(22 * S);
    assert_eq!(reaped.len(), 1);
    let (f, follow) = &reaped[0];
    assert_eq!(f.next_eval.as_ref(), Some(&follow.id));
    assert_eq!(follow.triggered_by, TriggeredBy::FailedFollowUp);
    assert!(follow.wait_until >= 22 * S + 60 * S);
    assert!(b.take_failed(23 * S).is_empty());
    // The job is free again: its waiting eval comes next.
    assert_eq!(next(&mut b, 22 * S).map(|x| x.0), Some("e2".into()));
}

#[test]
fn unacked_evals_time_out() {
    let mut b = broker();
    b.enqueue(eval("e1", "web", 50, 1), 0);
    let (_, token) = next(&mut b, 0).unwrap();
    b.outstanding_reset("e1", &token, 30 * S).unwrap();
    b.tick(60 * S);
    assert_eq!(b.stats().unacked, 1, "reset pushed the deadline to 90s");
    b.tick(90 * S);
    assert_eq!(b.stats().unacked, 0);
    assert_eq!(
        b.ack("e1", &token),
        Err(BrokerError::NotOutstanding("e1".into()))
    );
    b.tick(91 * S);
    let (id, _) = next(&mut b, 91 * S).unwrap();
    assert_eq!(id, "e1", "redelivered after the timeout's nack");
}

#[test]
fn delayed_evals_wait() {
    let mut b = broker();
    let mut e = eval("later", "web", 50, 1);
    e.wait_until = 10 * S;
    b.enqueue(e, 0);
    assert_eq!(next(&mut b, 5 * S), None);
    assert_eq!(b.next_deadline(), Some(10 * S));
    b.tick(10 * S);
    assert_eq!(next(&mut b, 10 * S).map(|x| x.0), Some("later".into()));
}

#[test]
fn blocked_evals_return_on_capacity() {
    let mut b = broker();
    let mut e = eval("blk", "web", 50, 5);
    e.status = EvalStatus::Blocked;
    e.snapshot_index = 5;
    e.class_eligibility.insert("pi".into(), false);
    b.block(e, 0);
    assert_eq!(b.stats().blocked, 1);
    b.unblock("pi", 6, 0);
    assert_eq!(next(&mut b, 0), None, "pi was known infeasible");
    b.unblock("x86", 7, 0);
    let (id, token) = next(&mut b, 0).unwrap();
    assert_eq!(id, "blk");
    let mut again = eval("blk", "web", 50, 5);
    again.status = EvalStatus::Blocked;
    again.snapshot_index = 8;
    b.reblock(again, &token, 0).unwrap();
    assert_eq!(b.stats().blocked, 1);
    assert_eq!(b.untrack_blocked("web").map(|e| e.id), Some("blk".into()));
}

#[test]
fn restores_from_state() {
    let mut s = MemState::new();
    s.upsert_eval(eval("p1", "a", 50, 0));
    let mut blk = eval("b1", "b", 50, 0);
    blk.status = EvalStatus::Blocked;
    s.upsert_eval(blk);
    let mut done = eval("c1", "c", 50, 0);
    done.status = EvalStatus::Complete;
    s.upsert_eval(done);
    let mut b = broker();
    b.enqueue(eval("stale", "z", 50, 0), 0);
    b.restore(&s, 0);
    let st = b.stats();
    assert_eq!((st.ready, st.blocked), (1, 1));
    assert_eq!(next(&mut b, 0).map(|x| x.0), Some("p1".into()));
    b.set_enabled(false);
    assert_eq!(b.stats(), BrokerStats::default());
}
