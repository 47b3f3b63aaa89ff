//! The system and sysbatch schedulers: one allocation per group on every
//! feasible node of the job's pool and datacenters.
//!
//! Nodes that join get theirs on the next evaluation; nodes that are down
//! or gone lose theirs; draining nodes stop them (unless the drain ignores
//! system jobs); ineligible nodes keep what they run but get nothing new.
//! A node filtered by constraints is not a failure; a feasible node without
//! room is, and blocks the evaluation. A sysbatch allocation that finished
//! is not run again for the same job version. Outdated allocations are
//! updated in place when possible, otherwise replaced on the same node,
//! `update.max_parallel` at a time, with a follow-up evaluation for the
//! rest after `update.stagger`.

use std::collections::{BTreeMap, HashMap, HashSet};

use wren_model::{
    AllocMetric, Allocation, ClientStatus, DesiredStatus, Duration, Evaluation, Job, NodeStatus,
    TaskGroup, TriggeredBy,
};

use crate::config::SchedConfig;
use crate::feasible::{datacenter_matches, pool_matches};
use crate::generic::{base_plan, block_info, placer, push_stop};
use crate::outcome::{self, Finish, Outcome, followup_eval};
use crate::reconcile::{tolerates_disconnect, update, why};
use crate::rng::Rng;
use crate::select::{Cluster, GroupPlacer};
use crate::state::StateView;

/// Nomad's default stagger between rolling batches.
const DEFAULT_STAGGER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Place,
    Replace,
}

/// Schedules a system or sysbatch job.
pub(crate) fn schedule<S: StateView + ?Sized>(
    state: &S,
    eval: &Evaluation,
    job: &Job,
    now: i64,
    mut rng: Rng,
    config: &SchedConfig,
) -> Outcome {
    let mut plan = base_plan(eval, job, state.index());
    let mut fin = Finish::new(state.index(), now);
    let allocs: Vec<&Allocation> = state.allocs_by_job(&job.id).collect();
    let mut stops: Vec<(&Allocation, &'static str, bool)> = Vec::new();
    let mut desired: BTreeMap<String, wren_model::DesiredUpdates> = BTreeMap::new();
    let mut work: Vec<(&TaskGroup, &str, Action, Option<&Allocation>)> = Vec::new();
    let mut inplace: Vec<(&TaskGroup, &Allocation)> = Vec::new();
    let mut deferred = false;

    if job.stop || job.is_template() {
        for a in allocs.iter().filter(|a| !a.is_terminal()) {
            stops.push((a, why::JOB_STOPPED, false));
        }
    } else {
        for a in allocs
            .iter()
            .filter(|a| !a.is_terminal() && job.group(&a.task_group).is_none())
        {
            stops.push((a, why::NOT_NEEDED, false));
        }
        for tg in &job.task_groups {
            let d = desired.entry(tg.name.clone()).or_default();
            fin.queued.insert(tg.name.clone(), 0);
            let mut by_node: HashMap<&str, Vec<&Allocation>> = HashMap::new();
            let mut done_on: HashSet<&str> = HashSet::new();
            for a in allocs.iter().filter(|a| a.task_group == tg.name) {
                if job.job_type.is_batch()
                    && a.job_version == job.version
                    && a.client_status.is_terminal()
                    && a.client_status != ClientStatus::Lost
                {
                    done_on.insert(a.node_id.as_str());
                }
                if a.desired_status == DesiredStatus::Run && !a.client_status.is_terminal() {
                    by_node.entry(a.node_id.as_str()).or_default().push(a);
                }
            }
            let limit = tg
                .update
                .as_ref()
                .filter(|u| u.is_rolling())
                .map_or(usize::MAX, |u| u.max_parallel as usize);
            let mut replacing = 0usize;
            let mut ids: Vec<&str> = by_node.keys().copied().collect();
            ids.sort_unstable();
            for node_id in ids {
                let list = by_node.get(node_id).cloned().unwrap_or_default();
                let Some((&a, extra)) = list.split_first() else {
                    continue;
                };
                for x in extra {
                    stops.push((x, why::NOT_NEEDED, false));
                    d.stop += 1;
                }
                let node = state.node(node_id);
                let in_scope = node.is_some_and(|n| {
                    pool_matches(&job.node_pool, &n.node_pool)
                        && datacenter_matches(&job.datacenters, &n.datacenter)
                });
                match node.map(|n| n.status) {
                    None | Some(NodeStatus::Down) => {
                        stops.push((a, why::LOST, true));
                        d.stop += 1;
                        continue;
                    }
                    Some(NodeStatus::Disconnected) => {
                        if tolerates_disconnect(tg) {
                            if a.client_status != ClientStatus::Unknown {
                                let mut u = a.clone();
                                u.client_status = ClientStatus::Unknown;
                                u.client_description = "node is disconnected".into();
                                u.disconnected_at = Some(now);
                                u.modify_time = now;
                                plan.node_allocation
                                    .entry(u.node_id.clone())
                                    .or_default()
                                    .push(u);
                            }
                            d.ignore += 1;
                        } else {
                            stops.push((a, why::LOST, true));
                            d.stop += 1;
                        }
                        continue;
                    }
                    _ => {}
                }
                if !in_scope {
                    stops.push((a, why::NOT_NEEDED, false));
                    d.stop += 1;
                    continue;
                }
                if node
                    .and_then(|n| n.drain.as_ref())
                    .is_some_and(|dr| !dr.ignore_system_jobs)
                {
                    stops.push((a, why::MIGRATING, false));
                    d.migrate += 1;
                    continue;
                }
                if a.job_version != job.version {
                    let old_tg = state
                        .job_version(&job.id, a.job_version)
                        .and_then(|oj| oj.group(&tg.name).map(|g| (oj, g)));
                    match old_tg {
                        Some((oj, otg)) if !update::destructive(oj, otg, job, tg) => {
                            inplace.push((tg, a));
                            d.in_place_update += 1;
                        }
                        _ if node.is_some_and(|n| n.is_schedulable()) => {
                            if replacing < limit {
                                replacing += 1;
                                work.push((tg, node_id, Action::Replace, Some(a)));
                                d.destructive_update += 1;
                            } else {
                                deferred = true;
                                d.ignore += 1;
                            }
                        }
                        _ => d.ignore += 1,
                    }
                    continue;
                }
                d.ignore += 1;
            }
            for n in state.nodes() {
                if !n.is_schedulable()
                    || !pool_matches(&job.node_pool, &n.node_pool)
                    || !datacenter_matches(&job.datacenters, &n.datacenter)
                    || by_node.contains_key(n.id.as_str())
                    || done_on.contains(n.id.as_str())
                {
                    continue;
                }
                work.push((tg, n.id.as_str(), Action::Place, None));
            }
        }
    }

    let mut stopping = HashSet::new();
    for (a, why, lost) in &stops {
        if stopping.insert(a.id.clone()) {
            push_stop(&mut plan, a, why, *lost, now);
        }
    }
    if job.stop || job.is_template() {
        for (a, _, _) in &stops {
            desired.entry(a.task_group.clone()).or_default().stop += 1;
        }
    }
    let mut placement_rng = Rng::new(rng.next_u64());
    if deferred {
        let stagger = job
            .task_groups
            .iter()
            .filter_map(|tg| tg.update.as_ref())
            .map(|u| u.stagger)
            .find(|s| !s.is_zero())
            .unwrap_or(DEFAULT_STAGGER);
        let due = now.saturating_add(stagger.as_nanos() as i64);
        fin.followups.push(followup_eval(
            &mut placement_rng,
            job,
            eval,
            now,
            due,
            TriggeredBy::RollingUpdate,
        ));
    }
    let mut cluster = Cluster::new(state, job, config, rng, stopping);
    let mut placers: BTreeMap<&str, GroupPlacer<'_>> = BTreeMap::new();
    for (tg, a) in inplace {
        let p = placer(&mut placers, &cluster, tg);
        if state.node(&a.node_id).is_some_and(|n| p.feasible_on(n)) {
            let mut u = a.clone();
            u.job_version = job.version;
            u.modify_time = now;
            u.desired_description = "alloc updated in place".into();
            plan.node_allocation
                .entry(u.node_id.clone())
                .or_default()
                .push(u);
        } else {
            push_stop(&mut plan, a, why::NOT_NEEDED, false, now);
        }
    }
    for (tg, node_id, action, prev) in work {
        let Some(i) = cluster.candidate(node_id) else {
            continue;
        };
        let p = placer(&mut placers, &cluster, tg);
        let released = match prev {
            Some(a) => p.release(&mut cluster, a),
            None => false,
        };
        match p.select_node(&mut cluster, i) {
            Ok(picked) => {
                p.commit(&mut cluster, &picked);
                let alloc = Allocation {
                    id: placement_rng.uuid(),
                    eval_id: eval.id.clone(),
                    name: Allocation::name_for(&job.id, &tg.name, 0),
                    node_id: picked.node.id.clone(),
                    node_name: picked.node.name.clone(),
                    job_id: job.id.clone(),
                    job_version: job.version,
                    task_group: tg.name.clone(),
                    resources: picked.resources,
                    desired_status: DesiredStatus::Run,
                    client_status: ClientStatus::Pending,
                    previous_allocation: prev.map(|a| a.id.clone()),
                    metrics: Some(picked.metric),
                    create_time: now,
                    modify_time: now,
                    ..Allocation::default()
                };
                plan.node_allocation
                    .entry(alloc.node_id.clone())
                    .or_default()
                    .push(alloc);
                if let Some(a) = prev {
                    push_stop(&mut plan, a, why::UPDATING, false, now);
                }
                if action == Action::Place {
                    desired.entry(tg.name.clone()).or_default().place += 1;
                }
            }
            Err(metric) => {
                if released && let Some(a) = prev {
                    p.reclaim(&mut cluster, a);
                }
                if GroupPlacer::is_filtered(&metric) {
                    if let Some(a) = prev {
                        // The new version cannot run there at all.
                        push_stop(&mut plan, a, why::NOT_NEEDED, false, now);
                    }
                    continue;
                }
                *fin.queued.entry(tg.name.clone()).or_insert(0) += 1;
                merge_failure(&mut fin.failed, &tg.name, *metric);
            }
        }
    }
    block_info(&cluster, &placers, &mut fin);
    plan.annotations = Some(wren_model::PlanAnnotations {
        desired_tg_updates: desired,
        ..Default::default()
    });
    outcome::finish(&mut placement_rng, eval, Some(job), plan, fin)
}

/// Adds one node's failure to the group's explanation.
fn merge_failure(failed: &mut BTreeMap<String, AllocMetric>, group: &str, m: AllocMetric) {
    let Some(into) = failed.get_mut(group) else {
        failed.insert(group.to_owned(), m);
        return;
    };
    into.coalesced_failures += 1;
    into.nodes_evaluated += m.nodes_evaluated;
    into.nodes_filtered += m.nodes_filtered;
    into.nodes_exhausted += m.nodes_exhausted;
    for (k, v) in m.dimension_exhausted {
        *into.dimension_exhausted.entry(k).or_insert(0) += v;
    }
    for (k, v) in m.class_exhausted {
        *into.class_exhausted.entry(k).or_insert(0) += v;
    }
    for (k, v) in m.constraint_filtered {
        *into.constraint_filtered.entry(k).or_insert(0) += v;
    }
}
