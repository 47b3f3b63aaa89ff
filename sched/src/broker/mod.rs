//! The evaluation broker, as a plain data structure with time passed in.
//! The leader owns one; the agent wraps it with notification (waking
//! workers) and timers (calling [`EvalBroker::tick`] at
//! [`EvalBroker::next_deadline`]).
//!
//! - Ready evaluations are handed out by job priority, then age.
//! - At most one evaluation per job is ready or in flight; others for the
//!   job wait, and a newer one cancels the older waiting ones (it will see
//!   the newest state anyway). Cancelled ones are collected for the leader
//!   to mark `canceled` ([`EvalBroker::take_cancelable`]).
//! - [`EvalBroker::dequeue`] returns a token; [`EvalBroker::ack`] and
//!   [`EvalBroker::nack`] must present it. An evaluation not acked within
//!   the nack timeout is nacked. A nacked evaluation is redelivered after a
//!   backoff, until the delivery limit: then it is failed and kept for the
//!   operator ([`EvalBroker::failed`]).
//! - Evaluations with `wait_until` in the future wait until then.
//! - Blocked evaluations are tracked by [`BlockedEvals`] and re-enqueued
//!   when capacity changes.
//! - [`EvalBroker::restore`] rebuilds everything from a state snapshot when
//!   a new leader takes over.

mod blocked;

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use wren_model::{Duration, EvalId, EvalStatus, Evaluation, JobId, JobType, TriggeredBy};

pub use blocked::BlockedEvals;

use crate::rng::Rng;
use crate::state::StateView;

/// Broker tunables (Nomad's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Deliveries before an evaluation is failed.
    pub delivery_limit: u32,
    /// How long a worker may hold an evaluation without acking.
    pub nack_timeout: Duration,
    /// Redelivery delay after the first nack.
    pub initial_nack_delay: Duration,
    /// Redelivery delay after later nacks.
    pub subsequent_nack_delay: Duration,
    /// The shortest wait before a failed evaluation's follow-up.
    pub failed_followup_base: Duration,
    /// A random extra wait, up to this, spreads follow-ups out.
    pub failed_followup_range: Duration,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            delivery_limit: 3,
            nack_timeout: Duration::from_secs(60),
            initial_nack_delay: Duration::from_secs(1),
            subsequent_nack_delay: Duration::from_secs(20),
            failed_followup_base: Duration::from_mins(1),
            failed_followup_range: Duration::from_mins(5),
        }
    }
}

/// Why the broker refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker runs only on the leader.
    #[error("eval broker is disabled (not the leader)")]
    Disabled,
    /// Nobody holds this evaluation.
    #[error("evaluation {0} is not outstanding")]
    NotOutstanding(EvalId),
    /// Someone else holds it (the token is stale).
    #[error("token does not match for evaluation {0}")]
    TokenMismatch(EvalId),
}

/// A ready evaluation's place in line.
#[derive(Debug)]
struct Ready {
    priority: u8,
    age: Reverse<(u64, u64)>,
    eval: Evaluation,
}

impl PartialEq for Ready {
    fn eq(&self, o: &Ready) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, o: &Ready) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ready {
    fn cmp(&self, o: &Ready) -> Ordering {
        (self.priority, self.age).cmp(&(o.priority, o.age))
    }
}

#[derive(Debug)]
struct Unacked {
    eval: Evaluation,
    token: String,
    deadline: i64,
}

/// Counts, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerStats {
    /// Ready to be dequeued.
    pub ready: usize,
    /// Dequeued, not yet acked.
    pub unacked: usize,
    /// Waiting for their job's outstanding evaluation.
    pub pending: usize,
    /// Waiting for a time.
    pub delayed: usize,
    /// Blocked on capacity.
    pub blocked: usize,
    /// Failed after the delivery limit.
    pub failed: usize,
}

/// The leader's evaluation broker.
#[derive(Debug)]
pub struct EvalBroker {
    config: BrokerConfig,
    rng: Rng,
    enabled: bool,
    seq: u64,
    ready: BTreeMap<JobType, BinaryHeap<Ready>>,
    unacked: HashMap<EvalId, Unacked>,
    /// The evaluation that owns each job (ready, unacked or nack-delayed).
    owner: HashMap<JobId, EvalId>,
    pending: HashMap<JobId, Evaluation>,
    delayed: BTreeSet<(i64, u64, EvalId)>,
    delayed_evals: HashMap<EvalId, Evaluation>,
    deliveries: HashMap<EvalId, u32>,
    failed: Vec<Evaluation>,
    failed_unreaped: Vec<Evaluation>,
    cancelable: Vec<Evaluation>,
    blocked: BlockedEvals,
}

impl EvalBroker {
    /// A disabled broker; [`EvalBroker::set_enabled`] on gaining leadership.
    /// `seed` makes tokens and follow-up jitter reproducible.
    pub fn new(config: BrokerConfig, seed: u64) -> EvalBroker {
        EvalBroker {
            config,
            rng: Rng::new(seed),
            enabled: false,
            seq: 0,
            ready: BTreeMap::new(),
            unacked: HashMap::new(),
            owner: HashMap::new(),
            pending: HashMap::new(),
            delayed: BTreeSet::new(),
            delayed_evals: HashMap::new(),
            deliveries: HashMap::new(),
            failed: Vec::new(),
            failed_unreaped: Vec::new(),
            cancelable: Vec::new(),
            blocked: BlockedEvals::new(),
        }
    }

    /// Turns the broker on or off; turning it off forgets everything.
    pub fn set_enabled(&mut self, enabled: bool) {
        if !enabled {
            let (config, rng) = (self.config.clone(), self.rng.clone());
            *self = EvalBroker::new(config, 0);
            self.rng = rng;
        }
        self.enabled = enabled;
    }

    /// Whether the broker is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Rebuilds the broker from a state snapshot (a new leader): pending
    /// evaluations are enqueued, blocked ones tracked.
    pub fn restore<S: StateView + ?Sized>(&mut self, state: &S, now: i64) {
        self.set_enabled(false);
        self.enabled = true;
        let mut evals: Vec<&Evaluation> = state.evals().collect();
        evals.sort_by_key(|e| (e.create_index, e.id.clone()));
        for e in evals {
            match e.status {
                EvalStatus::Pending => self.enqueue(e.clone(), now),
                EvalStatus::Blocked => self.block(e.clone(), now),
                _ => {}
            }
        }
    }

    fn tracked(&self, eval: &Evaluation) -> bool {
        let id = eval.id.as_str();
        self.unacked.contains_key(id)
            || self.delayed_evals.contains_key(id)
            || self.owner.get(&eval.job_id).is_some_and(|o| o == id)
            || self.pending.get(&eval.job_id).is_some_and(|p| p.id == id)
    }

    /// Adds an evaluation (ignored when disabled or already tracked).
    pub fn enqueue(&mut self, eval: Evaluation, now: i64) {
        if !self.enabled || self.tracked(&eval) {
            return;
        }
        if eval.wait_until > now {
            self.delay(eval.wait_until, eval);
            return;
        }
        self.admit(eval);
    }

    fn delay(&mut self, until: i64, eval: Evaluation) {
        self.seq += 1;
        self.delayed.insert((until, self.seq, eval.id.clone()));
        self.delayed_evals.insert(eval.id.clone(), eval);
    }

    /// Makes an evaluation ready, or parks it behind its job's owner.
    fn admit(&mut self, eval: Evaluation) {
        match self.owner.get(&eval.job_id) {
            Some(owner) if *owner != eval.id => {
                let newer = self.pending.get(&eval.job_id).is_none_or(|p| {
                    (eval.create_index, eval.create_time) >= (p.create_index, p.create_time)
                });
                if newer {
                    if let Some(old) = self.pending.insert(eval.job_id.clone(), eval) {
                        self.cancelable.push(old);
                    }
                } else {
                    self.cancelable.push(eval);
                }
            }
            _ => {
                self.owner.insert(eval.job_id.clone(), eval.id.clone());
                self.push_ready(eval);
            }
        }
    }

    fn push_ready(&mut self, eval: Evaluation) {
        self.seq += 1;
        let entry = Ready {
            priority: eval.priority,
            age: Reverse((eval.create_index, self.seq)),
            eval,
        };
        self.ready
            .entry(entry.eval.job_type)
            .or_default()
            .push(entry);
    }

    /// Hands out the best ready evaluation of the given scheduler types,
    /// with the token that acks or nacks it.
    pub fn dequeue(
        &mut self,
        types: &[JobType],
        now: i64,
    ) -> Result<Option<(Evaluation, String)>, BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        let best = types
            .iter()
            .filter_map(|t| {
                self.ready
                    .get(t)
                    .and_then(BinaryHeap::peek)
                    .map(|r| (*t, r))
            })
            .max_by(|a, b| a.1.cmp(b.1))
            .map(|(t, _)| t);
        let Some(t) = best else {
            return Ok(None);
        };
        let Some(Ready { mut eval, .. }) = self.ready.get_mut(&t).and_then(BinaryHeap::pop) else {
            return Ok(None);
        };
        let count = self.deliveries.entry(eval.id.clone()).or_insert(0);
        *count += 1;
        eval.delivery_count = *count;
        let token = self.rng.uuid();
        self.unacked.insert(
            eval.id.clone(),
            Unacked {
                eval: eval.clone(),
                token: token.clone(),
                deadline: now.saturating_add(self.config.nack_timeout.as_nanos() as i64),
            },
        );
        Ok(Some((eval, token)))
    }

    fn take_unacked(&mut self, id: &str, token: &str) -> Result<Unacked, BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        match self.unacked.get(id) {
            None => Err(BrokerError::NotOutstanding(id.to_owned())),
            Some(u) if u.token != token => Err(BrokerError::TokenMismatch(id.to_owned())),
            Some(_) => self
                .unacked
                .remove(id)
                .ok_or_else(|| BrokerError::NotOutstanding(id.to_owned())),
        }
    }

    /// Whether `token` currently holds evaluation `id` (the plan applier
    /// checks this before applying a plan).
    pub fn holds(&self, id: &str, token: &str) -> bool {
        self.unacked.get(id).is_some_and(|u| u.token == token)
    }

    /// The evaluation is done: frees its job for the next one.
    pub fn ack(&mut self, id: &str, token: &str) -> Result<(), BrokerError> {
        let u = self.take_unacked(id, token)?;
        self.deliveries.remove(id);
        self.release_job(&u.eval.job_id);
        Ok(())
    }

    /// Acks an evaluation that is blocked again and tracks it as blocked.
    pub fn reblock(&mut self, eval: Evaluation, token: &str, now: i64) -> Result<(), BrokerError> {
        self.ack(&eval.id, token)?;
        self.block(eval, now);
        Ok(())
    }

    fn release_job(&mut self, job_id: &str) {
        self.owner.remove(job_id);
        if let Some(next) = self.pending.remove(job_id) {
            self.admit(next);
        }
    }

    /// The worker could not finish: redeliver after a backoff, or fail the
    /// evaluation once it reached the delivery limit.
    pub fn nack(&mut self, id: &str, token: &str, now: i64) -> Result<(), BrokerError> {
        let u = self.take_unacked(id, token)?;
        self.requeue_after_nack(u.eval, now);
        Ok(())
    }

    fn requeue_after_nack(&mut self, mut eval: Evaluation, now: i64) {
        let deliveries = self.deliveries.get(&eval.id).copied().unwrap_or(0);
        if deliveries >= self.config.delivery_limit {
            self.deliveries.remove(&eval.id);
            eval.status = EvalStatus::Failed;
            eval.status_description = format!(
                "evaluation reached its delivery limit ({})",
                self.config.delivery_limit
            );
            eval.modify_time = now;
            self.failed.push(eval.clone());
            self.failed_unreaped.push(eval.clone());
            self.release_job(&eval.job_id);
            return;
        }
        let delay = if deliveries <= 1 {
            self.config.initial_nack_delay
        } else {
            self.config.subsequent_nack_delay
        };
        // Still owns its job while it waits.
        self.delay(now.saturating_add(delay.as_nanos() as i64), eval);
    }

    /// Extends the nack deadline of an evaluation a worker still works on.
    pub fn outstanding_reset(
        &mut self,
        id: &str,
        token: &str,
        now: i64,
    ) -> Result<(), BrokerError> {
        let timeout = self.config.nack_timeout.as_nanos() as i64;
        match self.unacked.get_mut(id) {
            None => Err(BrokerError::NotOutstanding(id.to_owned())),
            Some(u) if u.token != token => Err(BrokerError::TokenMismatch(id.to_owned())),
            Some(u) => {
                u.deadline = now.saturating_add(timeout);
                Ok(())
            }
        }
    }

    /// Advances time: delayed evaluations that are due become ready, and
    /// evaluations held past their nack timeout are nacked.
    pub fn tick(&mut self, now: i64) {
        while let Some(&(at, seq, ref id)) = self.delayed.first() {
            if at > now {
                break;
            }
            let id = id.clone();
            self.delayed.remove(&(at, seq, id.clone()));
            if let Some(eval) = self.delayed_evals.remove(&id) {
                if self.owner.get(&eval.job_id) == Some(&eval.id) {
                    self.push_ready(eval);
                } else {
                    self.admit(eval);
                }
            }
        }
        let mut expired: Vec<EvalId> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        expired.sort();
        for id in expired {
            if let Some(u) = self.unacked.remove(&id) {
                self.requeue_after_nack(u.eval, now);
            }
        }
    }

    /// When [`EvalBroker::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let delayed = self.delayed.first().map(|(at, _, _)| *at);
        let unacked = self.unacked.values().map(|u| u.deadline).min();
        match (delayed, unacked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tracks a blocked evaluation (enqueued at once if capacity it could
    /// use changed since its snapshot).
    pub fn block(&mut self, eval: Evaluation, now: i64) {
        if !self.enabled {
            return;
        }
        if let Some(back) = self.blocked.block(eval) {
            self.enqueue(back, now);
        }
        self.cancelable.extend(self.blocked.take_duplicates());
    }

    /// Capacity changed in computed class `class` at `index` (a node joined
    /// or changed, an allocation ended): blocked evaluations that may now
    /// fit are enqueued.
    pub fn unblock(&mut self, class: &str, index: u64, now: i64) {
        for e in self.blocked.unblock(class, index) {
            self.enqueue(e, now);
        }
    }

    /// Capacity changed everywhere: every blocked evaluation is enqueued.
    pub fn unblock_all(&mut self, index: u64, now: i64) {
        for e in self.blocked.unblock_all(index) {
            self.enqueue(e, now);
        }
    }

    /// Drops a job's blocked evaluation (job stopped, or placed fully by a
    /// newer evaluation); it is returned for cancelling.
    pub fn untrack_blocked(&mut self, job_id: &str) -> Option<Evaluation> {
        self.blocked.untrack(job_id)
    }

    /// Evaluations superseded while waiting, to be marked `canceled`.
    pub fn take_cancelable(&mut self) -> Vec<Evaluation> {
        std::mem::take(&mut self.cancelable)
    }

    /// Evaluations that failed since the last call, each with a follow-up
    /// evaluation delayed by a minute plus jitter, for the leader to store.
    pub fn take_failed(&mut self, now: i64) -> Vec<(Evaluation, Evaluation)> {
        let failed = std::mem::take(&mut self.failed_unreaped);
        failed
            .into_iter()
            .map(|mut f| {
                let jitter = self
                    .rng
                    .below(self.config.failed_followup_range.as_nanos().max(1));
                let wait = self
                    .config
                    .failed_followup_base
                    .as_nanos()
                    .saturating_add(jitter);
                let follow = Evaluation {
                    id: self.rng.uuid(),
                    priority: f.priority,
                    job_type: f.job_type,
                    triggered_by: TriggeredBy::FailedFollowUp,
                    job_id: f.job_id.clone(),
                    job_modify_index: f.job_modify_index,
                    status: EvalStatus::Pending,
                    status_description: "follow-up of a failed evaluation".into(),
                    wait_until: now.saturating_add(wait as i64),
                    previous_eval: Some(f.id.clone()),
                    create_time: now,
                    modify_time: now,
                    ..Evaluation::default()
                };
                f.next_eval = Some(follow.id.clone());
                (f, follow)
            })
            .collect()
    }

    /// Every evaluation that failed its delivery limit, for the operator.
    pub fn failed(&self) -> &[Evaluation] {
        &self.failed
    }

    /// The blocked evaluations.
    pub fn blocked(&self) -> &BlockedEvals {
        &self.blocked
    }

    /// Current counts.
    pub fn stats(&self) -> BrokerStats {
        BrokerStats {
            ready: self.ready.values().map(BinaryHeap::len).sum(),
            unacked: self.unacked.len(),
            pending: self.pending.len(),
            delayed: self.delayed.len(),
            blocked: self.blocked.len(),
            failed: self.failed.len(),
        }
    }
}

#[cfg(test)]
mod tests;
