//! What scheduling an evaluation produces: the plan, the evaluation as it
//! should be stored afterwards, a blocked evaluation for what could not be
//! placed, and follow-up evaluations for later.

use std::collections::BTreeMap;

use wren_model::{AllocMetric, EvalStatus, Evaluation, Job, Plan, TriggeredBy};

use crate::rng::Rng;

/// The result of [`crate::schedule`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What to submit to the plan applier (possibly a no-op).
    pub plan: Plan,
    /// The evaluation, updated: status `complete`, or `blocked` again when
    /// it was a blocked evaluation that still cannot place everything;
    /// `failed_tg_allocs`, `queued_allocations`, `blocked_eval` and
    /// `snapshot_index` filled in.
    pub eval: Evaluation,
    /// A new blocked evaluation, waiting for capacity, when placements
    /// failed (not when [`Outcome::eval`] itself is re-blocked).
    pub blocked: Option<Evaluation>,
    /// Evaluations to run later: delayed reschedules of failed allocations
    /// (`wait_until` set) and disconnect timeouts.
    pub followups: Vec<Evaluation>,
}

impl Outcome {
    /// One line per group that could not be placed: `group: why`.
    pub fn explain(&self) -> Vec<String> {
        self.eval
            .failed_tg_allocs
            .iter()
            .map(|(g, m)| format!("{g}: {}", m.explain()))
            .collect()
    }
}

/// A follow-up evaluation for `job`, created by `eval`, due at `wait_until`.
pub(crate) fn followup_eval(
    rng: &mut Rng,
    job: &Job,
    eval: &Evaluation,
    now: i64,
    wait_until: i64,
    trigger: TriggeredBy,
) -> Evaluation {
    Evaluation {
        id: rng.uuid(),
        priority: job.priority,
        job_type: job.job_type,
        triggered_by: trigger,
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: EvalStatus::Pending,
        status_description: "created for delayed work".into(),
        wait_until,
        previous_eval: Some(eval.id.clone()),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// Everything needed to finish the evaluation once placement is done.
#[derive(Debug, Default)]
pub(crate) struct Finish {
    pub(crate) failed: BTreeMap<String, AllocMetric>,
    pub(crate) queued: BTreeMap<String, u32>,
    pub(crate) class_eligibility: BTreeMap<String, bool>,
    pub(crate) escaped: bool,
    pub(crate) followups: Vec<Evaluation>,
    pub(crate) snapshot_index: u64,
    pub(crate) now: i64,
}

impl Finish {
    pub(crate) fn new(snapshot_index: u64, now: i64) -> Finish {
        Finish {
            snapshot_index,
            now,
            ..Finish::default()
        }
    }
}

/// Builds the outcome: updates the evaluation and, on failures, blocks it
/// (or re-blocks it when it already was a blocked evaluation).
pub(crate) fn finish(
    rng: &mut Rng,
    eval: &Evaluation,
    job: Option<&Job>,
    mut plan: Plan,
    fin: Finish,
) -> Outcome {
    let (snapshot_index, now, followups) = (fin.snapshot_index, fin.now, fin.followups);
    let mut e = eval.clone();
    e.snapshot_index = snapshot_index;
    e.modify_time = now;
    e.queued_allocations = fin.queued;
    e.failed_tg_allocs = fin.failed.clone();
    e.next_eval = followups.first().map(|f| f.id.clone());
    let mut blocked = None;
    if fin.failed.is_empty() {
        e.status = EvalStatus::Complete;
        e.status_description.clear();
    } else {
        let why: Vec<String> = fin
            .failed
            .iter()
            .map(|(g, m)| format!("{g}: {}", m.explain()))
            .collect();
        if eval.status == EvalStatus::Blocked {
            e.status = EvalStatus::Blocked;
            e.class_eligibility = fin.class_eligibility;
            e.escaped_computed_class = fin.escaped;
        } else {
            e.status = EvalStatus::Complete;
            let b = Evaluation {
                id: rng.uuid(),
                priority: eval.priority,
                job_type: job.map_or(eval.job_type, |j| j.job_type),
                triggered_by: TriggeredBy::QueuedAllocs,
                job_id: eval.job_id.clone(),
                job_modify_index: job.map_or(eval.job_modify_index, |j| j.job_modify_index),
                status: EvalStatus::Blocked,
                status_description: "created to place remaining allocations".into(),
                previous_eval: Some(eval.id.clone()),
                class_eligibility: fin.class_eligibility,
                escaped_computed_class: fin.escaped,
                queued_allocations: e.queued_allocations.clone(),
                snapshot_index,
                create_time: now,
                modify_time: now,
                ..Evaluation::default()
            };
            e.blocked_eval = Some(b.id.clone());
            blocked = Some(b);
        }
        e.status_description = format!("placement failed: {}", why.join("; "));
        if let Some(a) = plan.annotations.as_mut() {
            a.failed_tg_allocs = fin.failed;
        }
    }
    Outcome {
        plan,
        eval: e,
        blocked,
        followups,
    }
}
