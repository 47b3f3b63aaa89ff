//! Sorting a group's allocations by what must happen to them: kept, lost
//! (node down or gone), disconnecting (node missed its heartbeat and the
//! group tolerates it), unknown (already disconnected), reconnecting (node
//! back), migrating (drain), failed and due for a reschedule now or later,
//! or ignored (finished or superseded).

use std::collections::{HashMap, HashSet};

use wren_model::{Allocation, ClientStatus, DesiredStatus, Job, NodeStatus, TaskGroup};

use super::reschedule;
use crate::config::SchedConfig;
use crate::state::StateView;

/// A group's allocations by fate.
#[derive(Debug, Default)]
pub(crate) struct Buckets<'a> {
    pub(crate) keep: Vec<&'a Allocation>,
    pub(crate) lost: Vec<&'a Allocation>,
    pub(crate) disconnecting: Vec<&'a Allocation>,
    pub(crate) unknown: Vec<&'a Allocation>,
    pub(crate) reconnecting: Vec<&'a Allocation>,
    /// Marked to migrate by the drainer, or on a draining node; `bool`:
    /// must go now (marked, or past the drain's force deadline).
    pub(crate) migrate: Vec<(&'a Allocation, bool)>,
    pub(crate) reschedule_now: Vec<&'a Allocation>,
    pub(crate) reschedule_later: Vec<(&'a Allocation, i64)>,
}

/// Live replacements, by the id of the allocation they replace.
pub(crate) fn replacements<'a>(allocs: &[&'a Allocation]) -> HashMap<&'a str, Vec<&'a Allocation>> {
    let mut map: HashMap<&str, Vec<&Allocation>> = HashMap::new();
    for a in allocs {
        if let Some(prev) = a.previous_allocation.as_deref()
            && !a.is_terminal()
        {
            map.entry(prev).or_default().push(a);
        }
    }
    map
}

/// Whether the group keeps allocations through a disconnect.
pub(crate) fn tolerates_disconnect(tg: &TaskGroup) -> bool {
    tg.disconnect
        .as_ref()
        .is_some_and(|d| !d.lost_after.is_zero())
}

/// Whether an unknown allocation has been disconnected longer than the
/// group allows.
fn expired(tg: &TaskGroup, a: &Allocation, now: i64) -> bool {
    let Some(d) = tg.disconnect.as_ref() else {
        return false;
    };
    a.client_status == ClientStatus::Unknown
        && a.disconnected_at
            .is_some_and(|t| now >= t.saturating_add(d.lost_after.as_nanos() as i64))
}

/// Sorts `allocs` (all of one group) into buckets.
#[allow(clippy::too_many_arguments)]
pub(crate) fn classify<'a, S: StateView + ?Sized>(
    state: &'a S,
    job: &Job,
    tg: &TaskGroup,
    allocs: &[&'a Allocation],
    eval_id: &str,
    now: i64,
    config: &SchedConfig,
) -> Buckets<'a> {
    let batch = job.job_type.is_batch();
    let disconnect = tolerates_disconnect(tg);
    let live_replacements: HashSet<&str> = replacements(allocs).into_keys().collect();
    let mut b = Buckets::default();
    for &a in allocs {
        let superseded = a.next_allocation.is_some() || live_replacements.contains(a.id.as_str());
        // Finished or stopped by the servers.
        if a.desired_status != DesiredStatus::Run {
            // A batch allocation that ran to completion stays done.
            if batch && a.client_status == ClientStatus::Complete && a.job_version == job.version {
                b.keep.push(a);
            }
            continue;
        }
        match a.client_status {
            ClientStatus::Complete => {
                if batch && a.job_version == job.version {
                    b.keep.push(a);
                }
                continue;
            }
            ClientStatus::Lost => continue,
            ClientStatus::Failed => {
                if superseded || (batch && a.job_version < job.version) {
                    continue;
                }
                let policy = tg.reschedule.as_ref();
                if a.desired_transition.force_reschedule {
                    b.reschedule_now.push(a);
                    continue;
                }
                match reschedule::next_time(policy, a, now) {
                    None => b.keep.push(a),
                    Some(t) => {
                        let window = config.reschedule_window.as_nanos() as i64;
                        if a.followup_eval_id.as_deref() == Some(eval_id)
                            || t <= now.saturating_add(window)
                        {
                            b.reschedule_now.push(a);
                        } else if a.followup_eval_id.is_none() {
                            b.reschedule_later.push((a, t));
                        } else {
                            b.keep.push(a);
                        }
                    }
                }
                continue;
            }
            ClientStatus::Pending | ClientStatus::Running | ClientStatus::Unknown => {}
        }
        let node = state.node(&a.node_id);
        let status = node.map(|n| n.status);
        if disconnect && a.disconnected_at.is_some() && status == Some(NodeStatus::Ready) {
            if expired(tg, a, now) {
                b.lost.push(a);
            } else {
                b.reconnecting.push(a);
            }
            continue;
        }
        if disconnect && expired(tg, a, now) {
            b.lost.push(a);
            continue;
        }
        match status {
            None | Some(NodeStatus::Down) => {
                b.lost.push(a);
                continue;
            }
            Some(NodeStatus::Disconnected) => {
                if !disconnect || a.client_status == ClientStatus::Pending {
                    b.lost.push(a);
                } else if a.client_status == ClientStatus::Unknown {
                    b.unknown.push(a);
                } else {
                    b.disconnecting.push(a);
                }
                continue;
            }
            _ => {}
        }
        if a.desired_transition.migrate {
            b.migrate.push((a, true));
            continue;
        }
        if let Some(drain) = node.and_then(|n| n.drain.as_ref()) {
            let forced = drain.force_deadline != 0 && now >= drain.force_deadline;
            b.migrate.push((a, forced));
            continue;
        }
        b.keep.push(a);
    }
    b
}
