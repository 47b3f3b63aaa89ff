//! The generic scheduler (service and batch jobs): reconcile, then turn
//! the decisions into a plan, choosing nodes for placements.
//!
//! Order, as in Nomad: stops first (their capacity is free for what
//! follows), then updates by the servers, in-place updates (falling back to
//! destructive ones when the node no longer satisfies the group), then
//! destructive updates, then the other placements. A replacement that
//! stops its predecessor (migration, reschedule, destructive update) frees
//! the predecessor only while it is being placed, and takes it back if no
//! node fits. After the first failure of a group its remaining placements
//! are counted into the same explanation instead of being tried again.

use std::collections::{BTreeMap, HashSet};

use wren_model::{
    AllocDeploymentStatus, Allocation, ClientStatus, DesiredStatus, Evaluation, Job, JobType, Plan,
    PlanAnnotations, TaskGroup,
};

use crate::config::SchedConfig;
use crate::outcome::{self, Finish, Outcome};
use crate::reconcile::{self, Ctx, Place, PlaceKind, reschedule};
use crate::rng::Rng;
use crate::select::{Cluster, GroupPlacer, Picked, SelectOptions};
use crate::state::StateView;

/// Schedules a service or batch job.
pub(crate) fn schedule<S: StateView + ?Sized>(
    state: &S,
    eval: &Evaluation,
    job: &Job,
    now: i64,
    mut rng: Rng,
    config: &SchedConfig,
) -> Outcome {
    let rec = {
        let mut ctx = Ctx {
            state,
            job,
            eval,
            now,
            config,
            rng: &mut rng,
        };
        reconcile::reconcile(&mut ctx, &job.id)
    };
    let mut plan = base_plan(eval, job, state.index());
    plan.annotations = Some(PlanAnnotations {
        desired_tg_updates: rec.desired.clone(),
        ..PlanAnnotations::default()
    });
    let mut stopping = HashSet::new();
    for s in &rec.stops {
        if stopping.insert(s.alloc.id.clone()) {
            push_stop(&mut plan, s.alloc, s.desc, s.lost, now);
        }
    }
    for u in rec.updates {
        if !stopping.contains(&u.id) {
            plan.node_allocation
                .entry(u.node_id.clone())
                .or_default()
                .push(u);
        }
    }
    plan.deployment = rec.deployment;
    plan.deployment_updates = rec.deployment_updates;
    let mut placement_seed = Rng::new(rng.next_u64());
    let mut fin = Finish::new(state.index(), now);
    fin.followups = rec.followups;
    for tg in &job.task_groups {
        fin.queued.insert(tg.name.clone(), 0);
    }
    if rec.inplace.is_empty() && rec.place.is_empty() {
        // Nothing to place: no need to look at the nodes at all.
        return outcome::finish(&mut placement_seed, eval, Some(job), plan, fin);
    }
    let mut cluster = Cluster::new(state, job, config, rng, stopping);
    let mut placers: BTreeMap<&str, GroupPlacer<'_>> = BTreeMap::new();
    let mut destructive: Vec<Place<'_>> = Vec::new();
    for (tg, a) in rec.inplace {
        if cluster.is_stopping(&a.id) {
            continue;
        }
        let placer = placer(&mut placers, &cluster, tg);
        let fits = state
            .node(&a.node_id)
            .is_some_and(|n| placer.feasible_on(n));
        if fits {
            let mut u = a.clone();
            u.job_version = job.version;
            u.modify_time = now;
            u.desired_description = "alloc updated in place".into();
            plan.node_allocation
                .entry(u.node_id.clone())
                .or_default()
                .push(u);
        } else {
            if let Some(d) = plan
                .annotations
                .as_mut()
                .and_then(|x| x.desired_tg_updates.get_mut(&tg.name))
            {
                d.in_place_update = d.in_place_update.saturating_sub(1);
                d.destructive_update += 1;
            }
            destructive.push(Place {
                tg,
                name: a.name.clone(),
                previous: Some(a),
                kind: PlaceKind::Destructive,
            });
        }
    }
    let (mut first, rest): (Vec<Place<'_>>, Vec<Place<'_>>) = rec
        .place
        .into_iter()
        .partition(|p| p.kind == PlaceKind::Destructive);
    first.append(&mut destructive);
    for p in first.into_iter().chain(rest) {
        place_one(
            &mut plan,
            &mut cluster,
            &mut placers,
            &mut fin,
            p,
            eval,
            rec.deployment_id.as_deref(),
            now,
            &mut placement_seed,
        );
    }
    block_info(&cluster, &placers, &mut fin);
    let mut rng = placement_seed;
    outcome::finish(&mut rng, eval, Some(job), plan, fin)
}

/// The plan's header for `job`.
pub(crate) fn base_plan(eval: &Evaluation, job: &Job, index: u64) -> Plan {
    Plan {
        eval_id: eval.id.clone(),
        priority: job.priority,
        all_at_once: job.all_at_once,
        job_id: job.id.clone(),
        job_version: job.version,
        snapshot_index: index,
        ..Plan::default()
    }
}

/// Adds a stop of `a` to the plan.
pub(crate) fn push_stop(plan: &mut Plan, a: &Allocation, desc: &str, lost: bool, now: i64) {
    let mut s = a.clone();
    s.desired_status = DesiredStatus::Stop;
    s.desired_description = desc.to_owned();
    if lost {
        s.client_status = ClientStatus::Lost;
        s.client_description = desc.to_owned();
    }
    s.task_states.clear();
    s.metrics = None;
    s.modify_time = now;
    plan.node_update
        .entry(a.node_id.clone())
        .or_default()
        .push(s);
}

pub(crate) fn placer<'a, 'p, S: StateView + ?Sized>(
    placers: &'p mut BTreeMap<&'a str, GroupPlacer<'a>>,
    cluster: &Cluster<'a, S>,
    tg: &'a TaskGroup,
) -> &'p mut GroupPlacer<'a> {
    placers
        .entry(tg.name.as_str())
        .or_insert_with(|| GroupPlacer::new(cluster, tg))
}

#[allow(clippy::too_many_arguments)]
fn place_one<'a, S: StateView + ?Sized>(
    plan: &mut Plan,
    cluster: &mut Cluster<'a, S>,
    placers: &mut BTreeMap<&'a str, GroupPlacer<'a>>,
    fin: &mut Finish,
    p: Place<'a>,
    eval: &Evaluation,
    deployment_id: Option<&str>,
    now: i64,
    rng: &mut Rng,
) {
    let tg = p.tg;
    if let Some(m) = fin.failed.get_mut(&tg.name) {
        m.coalesced_failures += 1;
        *fin.queued.entry(tg.name.clone()).or_insert(0) += 1;
        return;
    }
    let placer = placer(placers, cluster, tg);
    let released = match (p.kind.stops_previous(), p.previous) {
        (true, Some(prev)) => placer.release(cluster, prev),
        _ => false,
    };
    let mut opts = SelectOptions::default();
    if let Some(prev) = p.previous {
        if p.kind == PlaceKind::Reschedule {
            opts.penalty_nodes.push(prev.node_id.as_str());
            for e in &prev.reschedule_tracker {
                opts.penalty_nodes.push(e.prev_node_id.as_str());
            }
        }
        if tg.ephemeral_disk.sticky {
            opts.preferred_node = Some(prev.node_id.as_str());
        }
    }
    match placer.select(cluster, &opts) {
        Ok(picked) => {
            placer.commit(cluster, &picked);
            let job = cluster.job;
            let (kind, previous) = (p.kind, p.previous);
            let alloc = new_alloc(rng, eval, job, p, picked, deployment_id, now);
            plan.node_allocation
                .entry(alloc.node_id.clone())
                .or_default()
                .push(alloc);
            if let (true, Some(prev)) = (kind.stops_previous(), previous) {
                push_stop(plan, prev, kind.stop_reason(), false, now);
            }
        }
        Err(metric) => {
            if released && let Some(prev) = p.previous {
                placer.reclaim(cluster, prev);
            }
            fin.failed.insert(tg.name.clone(), *metric);
            *fin.queued.entry(tg.name.clone()).or_insert(0) += 1;
        }
    }
}

fn new_alloc(
    rng: &mut Rng,
    eval: &Evaluation,
    job: &Job,
    p: Place<'_>,
    picked: Picked<'_>,
    deployment_id: Option<&str>,
    now: i64,
) -> Allocation {
    let tg = p.tg;
    let rolling =
        job.job_type == JobType::Service && tg.update.as_ref().is_some_and(|u| u.is_rolling());
    let reschedule_tracker = match (p.kind, p.previous) {
        (PlaceKind::Reschedule, Some(prev)) => {
            reschedule::tracker_for(tg.reschedule.as_ref(), prev, now)
        }
        _ => Vec::new(),
    };
    Allocation {
        id: rng.uuid(),
        eval_id: eval.id.clone(),
        name: p.name,
        node_id: picked.node.id.clone(),
        node_name: picked.node.name.clone(),
        job_id: job.id.clone(),
        job_version: job.version,
        task_group: tg.name.clone(),
        resources: picked.resources,
        desired_status: DesiredStatus::Run,
        client_status: ClientStatus::Pending,
        previous_allocation: p.previous.map(|a| a.id.clone()),
        deployment_id: deployment_id.filter(|_| rolling).map(str::to_owned),
        deployment_status: (p.kind == PlaceKind::Canary).then(|| AllocDeploymentStatus {
            canary: true,
            ..AllocDeploymentStatus::default()
        }),
        reschedule_tracker,
        metrics: Some(picked.metric),
        create_time: now,
        modify_time: now,
        ..Allocation::default()
    }
}

/// Fills the blocked evaluation's class eligibility: a class is eligible
/// when a failed group found it feasible, ineligible when every failed
/// group found it infeasible, and left out when not looked at.
pub(crate) fn block_info<'a, S: StateView + ?Sized>(
    cluster: &Cluster<'a, S>,
    placers: &BTreeMap<&'a str, GroupPlacer<'a>>,
    fin: &mut Finish,
) {
    let failed: Vec<&GroupPlacer<'_>> = placers
        .iter()
        .filter(|(name, _)| fin.failed.contains_key(**name))
        .map(|(_, p)| p)
        .collect();
    if failed.is_empty() {
        return;
    }
    fin.escaped = failed.iter().any(|p| p.escaped(cluster));
    for (c, name) in cluster.class_names.iter().enumerate() {
        let verdicts: Vec<Option<bool>> =
            failed.iter().map(|p| p.class_verdict(c as u32)).collect();
        if verdicts.contains(&Some(true)) {
            fin.class_eligibility.insert(name.to_string(), true);
        } else if verdicts.iter().all(|v| *v == Some(false)) {
            fin.class_eligibility.insert(name.to_string(), false);
        }
    }
}
