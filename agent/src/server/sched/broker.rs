//! The leader's evaluation broker as a service: [`wren_sched::broker`]'s
//! data structure behind a lock, with waiting (a dequeue sleeps until work
//! arrives), the state as its only input, and the evaluation writes it
//! asks for.
//!
//! - Input: [`Broker::observe`] is called with each newly applied state
//!   (the feed task in `mod.rs`). Evaluations that became `pending` are
//!   enqueued (delayed ones wait for `wait_until`), `blocked` ones are
//!   tracked, and a job's blocked evaluation is cancelled once a newer
//!   evaluation of the job completes without failures. Capacity changes
//!   release blocked evaluations: a node that became schedulable, or an
//!   allocation that ended (its node's computed class).
//! - Output: evaluations handed to workers ([`Broker::dequeue`], with a
//!   token for [`Broker::ack`] and [`Broker::nack`]); and evaluations the
//!   leader must write ([`Broker::take_writes`]): superseded and duplicate
//!   ones as `canceled`, those past their delivery limit as `failed` with
//!   a delayed follow-up.
//! - Time: [`Broker::tick`] makes delayed evaluations ready and nacks
//!   those held past the nack timeout; [`Broker::next_deadline`] says when.
//! - Leadership: [`Broker::enable`] rebuilds everything from a snapshot;
//!   [`Broker::disable`] forgets it and wakes every waiting dequeue with
//!   [`BrokerError::Disabled`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use event_listener::Event;
use wren_model::{EvalId, EvalStatus, Evaluation, JobType, TriggeredBy};
use wren_sched::broker::{BrokerConfig, BrokerError, BrokerStats, EvalBroker};
use wren_state::{State, Table};

use super::view::View;

/// The leader's broker; idle (disabled) on followers.
#[derive(Debug)]
pub struct Broker {
    inner: Mutex<Inner>,
    /// Notified when an evaluation may have become ready, or the broker
    /// was disabled.
    work: Event,
    /// Notified when deadlines or pending writes may have changed.
    changed: Event,
}

#[derive(Debug)]
struct Inner {
    broker: EvalBroker,
    /// Evaluations handed out and not yet acked or nacked, with their
    /// tokens (pruned after each tick: a nack timeout frees them).
    outstanding: HashMap<EvalId, String>,
    /// Blocked evaluations that exist because plans kept being refused:
    /// they depend on no class and are retried now and then.
    refused: HashSet<EvalId>,
    /// Evaluations to write as `canceled`.
    cancel: Vec<Evaluation>,
}

impl Broker {
    /// A disabled broker.
    pub fn new(config: BrokerConfig) -> Broker {
        Broker {
            inner: Mutex::new(Inner {
                broker: EvalBroker::new(config, crate::ids::random_u64()),
                outstanding: HashMap::new(),
                refused: HashSet::new(),
                cancel: Vec::new(),
            }),
            work: Event::new(),
            changed: Event::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain data; a panic while holding it cannot leave a half-made
        // change that matters more than losing the broker would.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes over on a new leader: everything pending or blocked in
    /// `state` is enqueued or tracked.
    pub fn enable(&self, state: &State, now: i64) {
        {
            let mut g = self.lock();
            g.outstanding.clear();
            g.refused.clear();
            g.cancel.clear();
            g.broker.restore(&View(state.clone()), now);
            let refused: Vec<EvalId> = state
                .evals()
                .filter(|e| {
                    e.status == EvalStatus::Blocked
                        && e.triggered_by == TriggeredBy::MaxPlanAttempts
                })
                .map(|e| e.id.clone())
                .collect();
            g.refused.extend(refused);
            collect_cancelable(&mut g);
        }
        self.work.notify(usize::MAX);
        self.changed.notify(usize::MAX);
    }

    /// Leadership lost: forgets everything; waiting dequeues fail.
    pub fn disable(&self) {
        {
            let mut g = self.lock();
            g.broker.set_enabled(false);
            g.outstanding.clear();
            g.refused.clear();
            g.cancel.clear();
        }
        self.work.notify(usize::MAX);
        self.changed.notify(usize::MAX);
    }

    /// Whether this broker is the region's (this server leads).
    pub fn is_enabled(&self) -> bool {
        self.lock().broker.is_enabled()
    }

    /// The best ready evaluation of the given types and its token,
    /// waiting up to `wait` for one; `None` when none came.
    pub async fn dequeue(
        &self,
        types: &[JobType],
        wait: Duration,
    ) -> Result<Option<(Evaluation, String)>, BrokerError> {
        let deadline = Instant::now() + wait;
        loop {
            // Listen before looking, so work enqueued in between wakes us.
            let listener = self.work.listen();
            {
                let mut g = self.lock();
                if let Some((eval, token)) = g.broker.dequeue(types, crate::ids::now_nanos())? {
                    g.outstanding.insert(eval.id.clone(), token.clone());
                    drop(g);
                    // A nack deadline was armed.
                    self.changed.notify(usize::MAX);
                    return Ok(Some((eval, token)));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let timer = async {
                smol::Timer::at(deadline).await;
            };
            smol::future::or(listener, timer).await;
        }
    }

    /// The worker is done with the evaluation. `reblock` is the evaluation
    /// as written when it is blocked again (a blocked evaluation that
    /// still cannot place everything): it is tracked as blocked.
    pub fn ack(
        &self,
        id: &str,
        token: &str,
        reblock: Option<Evaluation>,
    ) -> Result<(), BrokerError> {
        {
            let mut g = self.lock();
            let now = crate::ids::now_nanos();
            match reblock {
                Some(e) if e.id == id => {
                    if e.triggered_by == TriggeredBy::MaxPlanAttempts {
                        g.refused.insert(e.id.clone());
                    }
                    g.broker.reblock(e, token, now)?;
                }
                _ => g.broker.ack(id, token)?,
            }
            g.outstanding.remove(id);
            collect_cancelable(&mut g);
        }
        // The job's next evaluation may be ready now.
        self.work.notify(usize::MAX);
        self.changed.notify(usize::MAX);
        Ok(())
    }

    /// The worker could not finish: redelivered after a backoff, or failed
    /// at the delivery limit.
    pub fn nack(&self, id: &str, token: &str) -> Result<(), BrokerError> {
        {
            let mut g = self.lock();
            g.broker.nack(id, token, crate::ids::now_nanos())?;
            g.outstanding.remove(id);
        }
        self.work.notify(usize::MAX);
        self.changed.notify(usize::MAX);
        Ok(())
    }

    /// Whether `token` still holds evaluation `id` (the plan applier checks
    /// this before committing a plan), extending its nack deadline.
    pub fn hold(&self, id: &str, token: &str) -> bool {
        let mut g = self.lock();
        g.broker
            .outstanding_reset(id, token, crate::ids::now_nanos())
            .is_ok()
    }

    /// Current counts.
    pub fn stats(&self) -> BrokerStats {
        self.lock().broker.stats()
    }

    /// Evaluations that failed their delivery limit (for the operator).
    pub fn failed(&self) -> Vec<Evaluation> {
        self.lock().broker.failed().to_vec()
    }

    /// Takes in a newly applied state: what changed after index `seen` is
    /// enqueued, tracked as blocked, or releases blocked evaluations.
    pub fn observe(&self, state: &State, seen: u64) {
        let now = crate::ids::now_nanos();
        {
            let mut g = self.lock();
            if !g.broker.is_enabled() {
                return;
            }
            if state.table_index(Table::Evals) > seen {
                for e in state.evals().filter(|e| e.modify_index > seen) {
                    take_eval(&mut g, e, now);
                }
            }
            let mut released: BTreeSet<(String, u64)> = BTreeSet::new();
            if state.table_index(Table::Nodes) > seen {
                for n in state
                    .nodes()
                    .filter(|n| n.modify_index > seen && n.is_schedulable())
                {
                    released.insert((n.computed_class.clone(), n.modify_index));
                }
            }
            if state.table_index(Table::Allocs) > seen {
                for a in state
                    .allocs()
                    .filter(|a| a.modify_index > seen && a.is_terminal())
                {
                    if let Some(n) = state.node(&a.node_id) {
                        released.insert((n.computed_class.clone(), a.modify_index));
                    }
                }
            }
            for (class, index) in released {
                g.broker.unblock(&class, index, now);
            }
            collect_cancelable(&mut g);
        }
        self.work.notify(usize::MAX);
        self.changed.notify(usize::MAX);
    }

    /// Releases blocked evaluations that exist because plans kept being
    /// refused (Nomad retries those every minute); true when there were
    /// any.
    pub fn retry_refused(&self, index: u64) -> bool {
        {
            let mut g = self.lock();
            if g.refused.is_empty() || !g.broker.is_enabled() {
                return false;
            }
            g.refused.clear();
            g.broker.unblock_all(index, crate::ids::now_nanos());
        }
        self.work.notify(usize::MAX);
        true
    }

    /// Advances time: due evaluations become ready, expired ones are
    /// nacked.
    pub fn tick(&self, now: i64) {
        {
            let mut g = self.lock();
            g.broker.tick(now);
            let Inner {
                broker,
                outstanding,
                ..
            } = &mut *g;
            outstanding.retain(|id, token| broker.holds(id, token));
        }
        self.work.notify(usize::MAX);
    }

    /// When [`Broker::tick`] next has work.
    pub fn next_deadline(&self) -> Option<i64> {
        self.lock().broker.next_deadline()
    }

    /// A listener notified when deadlines or pending writes change.
    pub fn changes(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    /// Evaluations the leader must write: cancelled ones, and failed ones
    /// each followed by a delayed follow-up.
    pub fn take_writes(&self, now: i64) -> Vec<Evaluation> {
        let mut g = self.lock();
        let mut out = std::mem::take(&mut g.cancel);
        for (failed, followup) in g.broker.take_failed(now) {
            out.push(failed);
            out.push(followup);
        }
        out
    }
}

/// One evaluation that changed in the state.
fn take_eval(g: &mut Inner, e: &Evaluation, now: i64) {
    match e.status {
        EvalStatus::Pending => g.broker.enqueue(e.clone(), now),
        EvalStatus::Blocked => {
            // A worker holding it re-blocks it when it acks; one already
            // tracked needs nothing.
            let tracked = g
                .broker
                .blocked()
                .of_job(&e.job_id)
                .is_some_and(|b| b.id == e.id);
            if g.outstanding.contains_key(&e.id) || tracked {
                return;
            }
            if e.triggered_by == TriggeredBy::MaxPlanAttempts {
                g.refused.insert(e.id.clone());
            }
            g.broker.block(e.clone(), now);
        }
        EvalStatus::Complete if e.failed_tg_allocs.is_empty() && e.blocked_eval.is_none() => {
            // The job is placed in full: an older blocked evaluation of it
            // has nothing left to do.
            let older = g
                .broker
                .blocked()
                .of_job(&e.job_id)
                .is_some_and(|b| b.id != e.id && b.create_index < e.modify_index);
            if older && let Some(b) = g.broker.untrack_blocked(&e.job_id) {
                g.refused.remove(&b.id);
                g.cancel
                    .push(canceled(b, "the job was placed by a newer evaluation"));
            }
        }
        _ => {}
    }
}

/// Moves what the broker superseded into the writes.
fn collect_cancelable(g: &mut Inner) {
    for e in g.broker.take_cancelable() {
        g.refused.remove(&e.id);
        g.cancel
            .push(canceled(e, "superseded by a newer evaluation of the job"));
    }
}

fn canceled(mut e: Evaluation, why: &str) -> Evaluation {
    e.status = EvalStatus::Canceled;
    e.status_description = why.to_owned();
    e.modify_time = crate::ids::now_nanos();
    e
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wren_model::{EvalStatus, Evaluation, JobType};
    use wren_state::{Command, Proposal, State, UpsertEvals};

    use super::*;

    fn eval(id: &str, job: &str, status: EvalStatus) -> Evaluation {
        Evaluation {
            id: id.into(),
            job_id: job.into(),
            job_type: JobType::Service,
            priority: 50,
            status,
            ..Evaluation::default()
        }
    }

    fn put(state: &mut State, evals: Vec<Evaluation>) {
        let index = state.index() + 1;
        state
            .apply(
                index,
                Proposal {
                    issued_at: crate::ids::now_nanos(),
                    command: Command::UpsertEvals(UpsertEvals { evals }),
                },
            )
            .unwrap();
    }

    const TYPES: [JobType; 1] = [JobType::Service];

    #[test]
    fn a_waiting_dequeue_wakes_when_the_state_brings_work() {
        let broker = Arc::new(Broker::new(BrokerConfig::default()));
        let mut state = State::new();
        broker.enable(&state, crate::ids::now_nanos());
        let b = broker.clone();
        let waiter =
            std::thread::spawn(move || smol::block_on(b.dequeue(&TYPES, Duration::from_secs(30))));
        let seen = state.index();
        put(&mut state, vec![eval("e1", "web", EvalStatus::Pending)]);
        broker.observe(&state, seen);
        let got = waiter.join().unwrap().unwrap().map(|(e, _)| e.id);
        assert_eq!(got.as_deref(), Some("e1"));
    }

    #[test]
    fn disabling_fails_waiting_dequeues() {
        let broker = Arc::new(Broker::new(BrokerConfig::default()));
        broker.enable(&State::new(), crate::ids::now_nanos());
        let b = broker.clone();
        let waiter =
            std::thread::spawn(move || smol::block_on(b.dequeue(&TYPES, Duration::from_secs(30))));
        // Disable until the waiter has seen it (it may not be waiting yet).
        while !waiter.is_finished() {
            broker.disable();
            std::thread::yield_now();
        }
        assert_eq!(waiter.join().unwrap(), Err(BrokerError::Disabled));
    }

    #[test]
    fn blocked_evals_are_released_by_capacity_and_cancelled_when_placed() {
        let broker = Broker::new(BrokerConfig::default());
        let mut state = State::new();
        broker.enable(&state, crate::ids::now_nanos());
        let mut blocked = eval("b1", "web", EvalStatus::Blocked);
        blocked.class_eligibility.insert("pi".into(), true);
        let seen = state.index();
        put(&mut state, vec![blocked.clone()]);
        blocked.snapshot_index = state.index();
        put(&mut state, vec![blocked]);
        broker.observe(&state, seen);
        assert_eq!(broker.stats().blocked, 1);

        // A node of class "pi" joins: the blocked evaluation is ready.
        let seen = state.index();
        let mut n = wren_model::Node {
            id: "n1".into(),
            status: wren_model::NodeStatus::Ready,
            ..Default::default()
        };
        n.computed_class = n.compute_class();
        let index = state.index() + 1;
        state
            .apply(
                index,
                Proposal {
                    issued_at: 1,
                    command: Command::UpsertNode(wren_state::UpsertNode {
                        node: n,
                        evals: vec![],
                    }),
                },
            )
            .unwrap();
        let class = state.node("n1").unwrap().computed_class.clone();
        assert_ne!(class, "pi");
        broker.observe(&state, seen);
        assert_eq!(broker.stats().blocked, 0, "an unseen class may fit");
        let (e, token) = smol::block_on(broker.dequeue(&TYPES, Duration::ZERO))
            .unwrap()
            .unwrap();
        assert_eq!(e.id, "b1");

        // Still blocked after scheduling: the worker re-blocks it.
        let mut again = e.clone();
        again.snapshot_index = state.index();
        broker.ack("b1", &token, Some(again)).unwrap();
        assert_eq!(broker.stats().blocked, 1);

        // A newer evaluation places the job in full: b1 is cancelled.
        let seen = state.index();
        put(&mut state, vec![eval("e2", "web", EvalStatus::Complete)]);
        broker.observe(&state, seen);
        assert_eq!(broker.stats().blocked, 0);
        let writes = broker.take_writes(crate::ids::now_nanos());
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].id, "b1");
        assert_eq!(writes[0].status, EvalStatus::Canceled);
    }

    #[test]
    fn nacks_past_the_delivery_limit_fail_with_a_follow_up() {
        let config = BrokerConfig {
            delivery_limit: 2,
            initial_nack_delay: wren_model::Duration::ZERO,
            subsequent_nack_delay: wren_model::Duration::ZERO,
            ..BrokerConfig::default()
        };
        let broker = Broker::new(config);
        let mut state = State::new();
        put(&mut state, vec![eval("e1", "web", EvalStatus::Pending)]);
        broker.enable(&state, crate::ids::now_nanos());
        for _ in 0..2 {
            broker.tick(crate::ids::now_nanos());
            let (e, token) = smol::block_on(broker.dequeue(&TYPES, Duration::ZERO))
                .unwrap()
                .unwrap();
            broker.nack(&e.id, &token).unwrap();
        }
        let writes = broker.take_writes(crate::ids::now_nanos());
        assert_eq!(writes.len(), 2);
        assert_eq!(writes[0].status, EvalStatus::Failed);
        assert_eq!(writes[1].status, EvalStatus::Pending);
        assert!(writes[1].wait_until > 0, "the follow-up waits");
        assert_eq!(broker.failed().len(), 1);
    }
}
