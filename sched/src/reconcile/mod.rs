//! The generic reconciler: desired state (the job) against existing
//! allocations, for service and batch jobs. It decides what to stop, what
//! to update in place, what to replace and what to place, without choosing
//! nodes; `generic` then places what it asks for.
//!
//! Per group: lost allocations are stopped and replaced; allocations on
//! disconnected nodes become `unknown` (and are replaced when the group's
//! `disconnect.replace` says so) until `lost_after`; on reconnect the
//! group's `reconcile` strategy picks the original or the replacement;
//! drained allocations migrate (at most `migrate.max_parallel` at a time
//! unless the drain's deadline passed); failed ones are rescheduled by the
//! reschedule policy, now or through a delayed follow-up evaluation;
//! outdated ones are updated in place when the change allows it, otherwise
//! replaced, subject to canaries and `update.max_parallel`. Finally the
//! group is scaled to its count.

mod deploy;
mod filter;
mod group;
pub(crate) mod reschedule;
pub(crate) mod update;

use std::collections::{BTreeMap, HashMap};

use wren_model::{
    Allocation, Deployment, DeploymentStatusUpdate, DesiredUpdates, Evaluation, Job, TaskGroup,
    TriggeredBy,
};

pub(crate) use filter::tolerates_disconnect;

use crate::config::SchedConfig;
use crate::outcome::followup_eval;
use crate::rng::Rng;
use crate::state::StateView;

/// Why allocations are stopped, in the words Nomad uses.
pub(crate) mod why {
    pub(crate) const JOB_STOPPED: &str = "alloc not needed as job is stopped";
    pub(crate) const NOT_NEEDED: &str = "alloc not needed due to job update";
    pub(crate) const LOST: &str = "alloc is lost since its node is down";
    pub(crate) const MIGRATING: &str = "alloc is being migrated";
    pub(crate) const UPDATING: &str = "alloc is being updated due to job update";
    pub(crate) const RESCHEDULED: &str = "alloc was rescheduled because it failed";
    pub(crate) const RECONNECT_LOSER: &str =
        "alloc not needed as another allocation was kept after reconnect";
}

/// An allocation to stop.
#[derive(Debug)]
pub(crate) struct Stop<'a> {
    pub(crate) alloc: &'a Allocation,
    pub(crate) desc: &'static str,
    /// Also declare the client status `lost`.
    pub(crate) lost: bool,
}

/// Why a placement is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaceKind {
    New,
    Lost,
    Migrate,
    Reschedule,
    Disconnect,
    Destructive,
    Canary,
}

impl PlaceKind {
    /// Whether the previous allocation is stopped when (and only when)
    /// the replacement is placed.
    pub(crate) fn stops_previous(self) -> bool {
        matches!(
            self,
            PlaceKind::Migrate | PlaceKind::Reschedule | PlaceKind::Destructive
        )
    }

    pub(crate) fn stop_reason(self) -> &'static str {
        match self {
            PlaceKind::Migrate => why::MIGRATING,
            PlaceKind::Reschedule => why::RESCHEDULED,
            _ => why::UPDATING,
        }
    }
}

/// A placement to make.
#[derive(Debug)]
pub(crate) struct Place<'a> {
    pub(crate) tg: &'a TaskGroup,
    pub(crate) name: String,
    pub(crate) previous: Option<&'a Allocation>,
    pub(crate) kind: PlaceKind,
}

/// What the reconciler decided.
#[derive(Debug, Default)]
pub(crate) struct Reconciled<'a> {
    pub(crate) stops: Vec<Stop<'a>>,
    /// Changes to existing allocations by the servers (unknown status,
    /// follow-up evaluation ids, reconnects), applied as they are.
    pub(crate) updates: Vec<Allocation>,
    pub(crate) inplace: Vec<(&'a TaskGroup, &'a Allocation)>,
    pub(crate) place: Vec<Place<'a>>,
    pub(crate) followups: Vec<Evaluation>,
    /// A deployment to create.
    pub(crate) deployment: Option<Deployment>,
    /// The deployment placements of rolling groups join.
    pub(crate) deployment_id: Option<String>,
    pub(crate) deployment_updates: Vec<DeploymentStatusUpdate>,
    pub(crate) desired: BTreeMap<String, DesiredUpdates>,
}

/// One count slot of a group: an allocation that stays (`true`: already
/// counted in the annotations as something other than "ignore"), or a
/// placement.
#[derive(Debug)]
enum Slot<'a> {
    Existing(&'a Allocation, bool),
    Placing(Place<'a>),
}

/// Everything a group's reconciliation reads.
pub(crate) struct Ctx<'a, 'r, S: StateView + ?Sized> {
    pub(crate) state: &'a S,
    pub(crate) job: &'a Job,
    pub(crate) eval: &'a Evaluation,
    pub(crate) now: i64,
    pub(crate) config: &'a SchedConfig,
    pub(crate) rng: &'r mut Rng,
}

/// Reconciles `job` (None: gone) with its allocations.
pub(crate) fn reconcile<'a, S: StateView + ?Sized>(
    ctx: &mut Ctx<'a, '_, S>,
    job_id: &str,
) -> Reconciled<'a> {
    let mut out = Reconciled::default();
    let state: &'a S = ctx.state;
    let allocs: Vec<&'a Allocation> = state.allocs_by_job(job_id).collect();
    let job = ctx.job;
    let latest = state.latest_deployment(job_id);
    if job.stop || job.is_template() {
        for a in allocs.iter().filter(|a| !a.is_terminal()) {
            out.stops.push(Stop {
                alloc: a,
                desc: why::JOB_STOPPED,
                lost: false,
            });
            out.desired.entry(a.task_group.clone()).or_default().stop += 1;
        }
        if let Some(d) = latest.filter(|d| d.status.is_active()) {
            out.deployment_updates
                .push(deploy::cancel(d, "cancelled because job is stopped"));
        }
        return out;
    }
    let mut by_group: BTreeMap<&str, Vec<&'a Allocation>> = BTreeMap::new();
    for a in &allocs {
        by_group.entry(a.task_group.as_str()).or_default().push(a);
    }
    for (name, group_allocs) in &by_group {
        if job.group(name).is_none() {
            for a in group_allocs.iter().filter(|a| !a.is_terminal()) {
                out.stops.push(Stop {
                    alloc: a,
                    desc: why::NOT_NEEDED,
                    lost: false,
                });
                out.desired.entry((*name).to_owned()).or_default().stop += 1;
            }
        }
    }
    let mut deployment = deploy::Plan::new(job, latest, ctx.now);
    let mut later: Vec<(&'a Allocation, i64)> = Vec::new();
    let mut timeouts: Vec<(&'a Allocation, i64)> = Vec::new();
    for tg in &job.task_groups {
        let group_allocs = by_group.get(tg.name.as_str()).cloned().unwrap_or_default();
        group::group(
            ctx,
            &mut out,
            &mut deployment,
            tg,
            &group_allocs,
            &mut later,
            &mut timeouts,
        );
    }
    let job = ctx.job;
    let (eval, now) = (ctx.eval, ctx.now);
    let window = ctx.config.followup_batch_window.as_nanos() as i64;
    batch_followups(
        &mut out,
        ctx.rng,
        job,
        eval,
        now,
        window,
        later,
        TriggeredBy::RetryFailedAlloc,
        false,
    );
    batch_followups(
        &mut out,
        ctx.rng,
        job,
        eval,
        now,
        window,
        timeouts,
        TriggeredBy::MaxDisconnectTimeout,
        true,
    );
    deployment.finish(&mut out, ctx.rng);
    out
}

/// Creates follow-up evaluations for allocations due at given times,
/// sharing one evaluation per `window`, and records their ids on the
/// allocations (for timeouts, on the pending `unknown` update).
#[allow(clippy::too_many_arguments)]
fn batch_followups<'a>(
    out: &mut Reconciled<'a>,
    rng: &mut Rng,
    job: &Job,
    eval: &Evaluation,
    now: i64,
    window: i64,
    mut due: Vec<(&'a Allocation, i64)>,
    trigger: TriggeredBy,
    amend_updates: bool,
) {
    due.sort_by_key(|(a, t)| (*t, a.id.clone()));
    let pending: HashMap<String, usize> = if amend_updates {
        out.updates
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect()
    } else {
        HashMap::new()
    };
    let mut current: Option<(i64, String)> = None;
    for (a, t) in due {
        let id = match &current {
            Some((start, id)) if t <= start.saturating_add(window) => id.clone(),
            _ => {
                let e = followup_eval(rng, job, eval, now, t, trigger);
                let id = e.id.clone();
                out.followups.push(e);
                current = Some((t, id.clone()));
                id
            }
        };
        if let Some(u) = pending.get(&a.id).and_then(|&i| out.updates.get_mut(i)) {
            u.followup_eval_id = Some(id);
            continue;
        }
        let mut u = a.clone();
        u.followup_eval_id = Some(id);
        u.modify_time = now;
        out.updates.push(u);
    }
}
