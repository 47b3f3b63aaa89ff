//! Reconciling one task group: classify its allocations, decide stops,
//! replacements, updates and new placements, and scale to the count.

use std::collections::HashSet;

use wren_model::{Allocation, ClientStatus, DesiredUpdates, Job, ReconcileStrategy, TaskGroup};

use super::{Ctx, Place, PlaceKind, Reconciled, Slot, Stop, deploy, filter, update, why};
use crate::state::StateView;

/// Reconciles one group.
#[allow(clippy::too_many_arguments)]
pub(super) fn group<'a, S: StateView + ?Sized>(
    ctx: &mut Ctx<'a, '_, S>,
    out: &mut Reconciled<'a>,
    deployment: &mut deploy::Plan<'a>,
    tg: &'a TaskGroup,
    allocs: &[&'a Allocation],
    later: &mut Vec<(&'a Allocation, i64)>,
    timeouts: &mut Vec<(&'a Allocation, i64)>,
) {
    let (state, job, now) = (ctx.state, ctx.job, ctx.now);
    let b = filter::classify(state, job, tg, allocs, &ctx.eval.id, now, ctx.config);
    let replaced_by = filter::replacements(allocs);
    let mut d = DesiredUpdates::default();
    let mut slots: Vec<Slot<'a>> = Vec::new();
    let mut dropped: HashSet<&str> = HashSet::new();
    let replace_on_disconnect = tg.disconnect.as_ref().is_some_and(|x| x.replace);
    let lost_after = tg
        .disconnect
        .as_ref()
        .map_or(0, |x| x.lost_after.as_nanos() as i64);

    // Reconnecting allocations: keep the original or its replacement.
    for &a in &b.reconnecting {
        let live = replaced_by.get(a.id.as_str()).cloned().unwrap_or_default();
        let keep_original = live.is_empty() || original_wins(tg, a, &live);
        if keep_original {
            for r in live {
                out.stops.push(Stop {
                    alloc: r,
                    desc: why::RECONNECT_LOSER,
                    lost: false,
                });
                dropped.insert(r.id.as_str());
                d.stop += 1;
            }
            let mut u = a.clone();
            u.disconnected_at = None;
            u.modify_time = now;
            out.updates.push(u);
            d.reconnect += 1;
            slots.push(Slot::Existing(a, true));
        } else {
            out.stops.push(Stop {
                alloc: a,
                desc: why::RECONNECT_LOSER,
                lost: false,
            });
            d.stop += 1;
        }
    }
    // A replacement stopped by a reconnect above needs nothing more.
    let gone = |a: &Allocation| dropped.contains(a.id.as_str());
    for &a in b.lost.iter().filter(|a| !gone(a)) {
        out.stops.push(Stop {
            alloc: a,
            desc: why::LOST,
            lost: true,
        });
        d.stop += 1;
        if replaced_by.contains_key(a.id.as_str()) {
            continue;
        }
        slots.push(Slot::Placing(Place {
            tg,
            name: a.name.clone(),
            previous: Some(a),
            kind: PlaceKind::Lost,
        }));
    }
    for &a in b.disconnecting.iter().filter(|a| !gone(a)) {
        let mut u = a.clone();
        u.client_status = ClientStatus::Unknown;
        u.client_description = "node is disconnected".into();
        u.disconnected_at = Some(now);
        u.modify_time = now;
        out.updates.push(u);
        timeouts.push((a, now.saturating_add(lost_after)));
        if replace_on_disconnect && !replaced_by.contains_key(a.id.as_str()) {
            slots.push(Slot::Placing(Place {
                tg,
                name: a.name.clone(),
                previous: Some(a),
                kind: PlaceKind::Disconnect,
            }));
        } else if !replace_on_disconnect {
            slots.push(Slot::Existing(a, false));
        }
    }
    for &a in b.unknown.iter().filter(|a| !gone(a)) {
        if replaced_by.contains_key(a.id.as_str()) {
            continue;
        }
        if replace_on_disconnect {
            slots.push(Slot::Placing(Place {
                tg,
                name: a.name.clone(),
                previous: Some(a),
                kind: PlaceKind::Disconnect,
            }));
        } else {
            slots.push(Slot::Existing(a, false));
        }
    }
    // Migrations: those that must go now, then as many as the group's
    // migrate.max_parallel allows beside those still starting.
    let max_parallel = tg.migrate.as_ref().map_or(1, |m| m.max_parallel.max(1)) as usize;
    let migrated: HashSet<&str> = allocs
        .iter()
        .filter(|p| p.desired_transition.migrate || p.desired_description == why::MIGRATING)
        .map(|p| p.id.as_str())
        .collect();
    let starting = allocs
        .iter()
        .filter(|a| {
            a.client_status == ClientStatus::Pending
                && !a.is_terminal()
                && a.previous_allocation
                    .as_deref()
                    .is_some_and(|p| migrated.contains(p))
        })
        .count();
    let mut budget = max_parallel.saturating_sub(starting);
    for &(a, must) in b.migrate.iter().filter(|(a, _)| !gone(a)) {
        if must || budget > 0 {
            if !must {
                budget -= 1;
            }
            slots.push(Slot::Placing(Place {
                tg,
                name: a.name.clone(),
                previous: Some(a),
                kind: PlaceKind::Migrate,
            }));
            d.migrate += 1;
        } else {
            slots.push(Slot::Existing(a, false));
        }
    }
    for &a in b.reschedule_now.iter().filter(|a| !gone(a)) {
        slots.push(Slot::Placing(Place {
            tg,
            name: a.name.clone(),
            previous: Some(a),
            kind: PlaceKind::Reschedule,
        }));
        d.reschedule_now += 1;
    }
    for &(a, t) in &b.reschedule_later {
        later.push((a, t));
        slots.push(Slot::Existing(a, true));
        d.reschedule_later += 1;
    }

    // Allocations that stay: bring outdated ones to the job's version.
    let canaries = deployment.canaries(tg, &b.keep);
    let mut outdated: Vec<&'a Allocation> = Vec::new();
    for &a in &b.keep {
        if gone(a) || canaries.is_unpromoted_canary(a) {
            continue;
        }
        if a.job_version == job.version || a.client_status == ClientStatus::Complete {
            slots.push(Slot::Existing(a, false));
            continue;
        }
        let old_job = state.job_version(&job.id, a.job_version);
        let old_tg = old_job.and_then(|j| j.group(&tg.name));
        match (old_job, old_tg) {
            (Some(oj), Some(otg)) if !update::destructive(oj, otg, job, tg) => {
                out.inplace.push((tg, a));
                d.in_place_update += 1;
                slots.push(Slot::Existing(a, true));
            }
            _ => outdated.push(a),
        }
    }
    let count = tg.count as usize;
    let canarying = canaries.canarying(!outdated.is_empty());
    if canarying && deployment.can_progress() {
        let wanted = canaries.missing();
        let taken: HashSet<&str> = canaries.names().collect();
        let mut names: Vec<String> = outdated
            .iter()
            .map(|a| a.name.clone())
            .filter(|n| !taken.contains(n.as_str()))
            .take(wanted)
            .collect();
        if names.len() < wanted {
            let existing: Vec<&Allocation> = allocs
                .iter()
                .copied()
                .filter(|a| !a.is_terminal())
                .collect();
            names.extend(free_names(
                job,
                tg,
                &out.place,
                &existing,
                wanted - names.len(),
            ));
        }
        for name in names {
            out.place.push(Place {
                tg,
                name,
                previous: None,
                kind: PlaceKind::Canary,
            });
            d.canary += 1;
        }
    }
    // Scale to count: drop surplus, outdated allocations first.
    let mut surplus = (slots.len() + outdated.len()).saturating_sub(count);
    while surplus > 0 {
        let Some(a) = outdated.pop() else { break };
        out.stops.push(Stop {
            alloc: a,
            desc: why::NOT_NEEDED,
            lost: false,
        });
        d.stop += 1;
        surplus -= 1;
    }
    if surplus > 0 {
        drop_surplus(out, &mut slots, surplus, &mut d);
    }
    // Destructive updates, within the rolling limit.
    let limit = if canarying {
        0
    } else {
        deployment.rolling_limit(tg, allocs)
    };
    for (i, &a) in outdated.iter().enumerate() {
        if i < limit {
            out.place.push(Place {
                tg,
                name: a.name.clone(),
                previous: Some(a),
                kind: PlaceKind::Destructive,
            });
            d.destructive_update += 1;
        } else {
            d.ignore += 1;
        }
    }
    let kept = slots.len() + outdated.len();
    for s in slots {
        match s {
            Slot::Placing(p) => {
                if matches!(p.kind, PlaceKind::Lost | PlaceKind::Disconnect) {
                    d.place += 1;
                }
                out.place.push(p);
            }
            Slot::Existing(_, false) => d.ignore += 1,
            Slot::Existing(_, true) => {}
        }
    }
    // New allocations, unless a deployment holds them back.
    if kept < count && !canarying && deployment.can_progress() {
        let existing: Vec<&Allocation> = allocs
            .iter()
            .copied()
            .filter(|a| !a.is_terminal())
            .collect();
        for name in free_names(job, tg, &out.place, &existing, count - kept) {
            out.place.push(Place {
                tg,
                name,
                previous: None,
                kind: PlaceKind::New,
            });
            d.place += 1;
        }
    }
    deployment.note_group(tg, &out.place, canarying);
    add_desired(out.desired.entry(tg.name.clone()).or_default(), &d);
}

fn add_desired(into: &mut DesiredUpdates, d: &DesiredUpdates) {
    into.ignore += d.ignore;
    into.place += d.place;
    into.migrate += d.migrate;
    into.stop += d.stop;
    into.in_place_update += d.in_place_update;
    into.destructive_update += d.destructive_update;
    into.canary += d.canary;
    into.reschedule_now += d.reschedule_now;
    into.reschedule_later += d.reschedule_later;
    into.reconnect += d.reconnect;
}

/// Removes `n` slots: pending replacements first, then the allocations
/// with the highest indexes.
fn drop_surplus<'a>(
    out: &mut Reconciled<'a>,
    slots: &mut Vec<Slot<'a>>,
    n: usize,
    d: &mut DesiredUpdates,
) {
    let rank = |s: &Slot<'_>| match s {
        Slot::Placing(p) => (
            0,
            u32::MAX - p.previous.and_then(Allocation::index).unwrap_or(0),
        ),
        Slot::Existing(a, _) => (1, u32::MAX - a.index().unwrap_or(0)),
    };
    slots.sort_by_key(rank);
    for s in slots.drain(..n.min(slots.len())) {
        match s {
            Slot::Existing(a, _) => {
                out.stops.push(Stop {
                    alloc: a,
                    desc: why::NOT_NEEDED,
                    lost: false,
                });
                d.stop += 1;
            }
            Slot::Placing(p) => {
                if p.kind.stops_previous()
                    && let Some(a) = p.previous
                {
                    out.stops.push(Stop {
                        alloc: a,
                        desc: why::NOT_NEEDED,
                        lost: false,
                    });
                    d.stop += 1;
                }
                match p.kind {
                    PlaceKind::Migrate => d.migrate = d.migrate.saturating_sub(1),
                    PlaceKind::Reschedule => d.reschedule_now = d.reschedule_now.saturating_sub(1),
                    _ => {}
                }
            }
        }
    }
}

/// Whether the original allocation beats its replacements on reconnect.
fn original_wins(tg: &TaskGroup, original: &Allocation, replacements: &[&Allocation]) -> bool {
    let strategy = tg
        .disconnect
        .as_ref()
        .map(|d| d.reconcile)
        .unwrap_or_default();
    if original.client_status == ClientStatus::Failed {
        return false;
    }
    match strategy {
        ReconcileStrategy::KeepOriginal => true,
        ReconcileStrategy::KeepReplacement => false,
        ReconcileStrategy::LongestRunning => {
            let started = |a: &Allocation| {
                a.task_states
                    .values()
                    .map(|t| t.started_at)
                    .filter(|&t| t > 0)
                    .min()
                    .unwrap_or(i64::MAX)
            };
            replacements.iter().all(|r| started(original) <= started(r))
        }
        ReconcileStrategy::BestScore => {
            let score = |a: &Allocation| {
                a.metrics
                    .as_ref()
                    .and_then(|m| m.scores.iter().find(|s| s.node_id == a.node_id))
                    .map_or(0.0, |s| s.norm_score)
            };
            replacements.iter().all(|r| score(original) >= score(r))
        }
    }
}

/// Names for `n` new allocations: the lowest indexes no live allocation or
/// pending placement uses.
fn free_names(
    job: &Job,
    tg: &TaskGroup,
    placing: &[Place<'_>],
    existing: &[&Allocation],
    n: usize,
) -> Vec<String> {
    let mut used: HashSet<u32> = existing.iter().filter_map(|a| a.index()).collect();
    for p in placing.iter().filter(|p| p.tg.name == tg.name) {
        if let Some(i) = index_of(&p.name) {
            used.insert(i);
        }
    }
    let mut names = Vec::with_capacity(n);
    let mut i = 0u32;
    while names.len() < n {
        if !used.contains(&i) {
            names.push(Allocation::name_for(&job.id, &tg.name, i));
        }
        i += 1;
    }
    names
}

fn index_of(name: &str) -> Option<u32> {
    let open = name.rfind('[')?;
    let close = name.rfind(']')?;
    name.get(open + 1..close)?.parse().ok()
}
