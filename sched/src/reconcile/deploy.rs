//! Deployments and canaries: which deployment placements join, whether a
//! group is waiting for its canaries to be promoted, how many destructive
//! updates `update.max_parallel` allows right now, and which deployments to
//! create or cancel.
//!
//! A deployment covers a service job's version when some group has a
//! rolling update block. Health is reported by clients and promotion is an
//! operator action; both arrive here through the state (allocations'
//! `deployment_status`, the deployment's `promoted`). Counting placements
//! into the deployment is the state machine's job when it commits them.

use wren_model::{
    Allocation, Deployment, DeploymentState, DeploymentStatus, DeploymentStatusUpdate, Job,
    JobType, TaskGroup,
};

use super::{Place, Reconciled};
use crate::rng::Rng;

/// The cancel update for a deployment.
pub(crate) fn cancel(d: &Deployment, why: &str) -> DeploymentStatusUpdate {
    DeploymentStatusUpdate {
        deployment_id: d.id.clone(),
        status: DeploymentStatus::Cancelled,
        status_description: why.to_owned(),
    }
}

/// What one rolling group needs of the deployment.
#[derive(Debug)]
struct Note {
    name: String,
    desired_canaries: u32,
    desired_total: u32,
    placing: bool,
}

/// The deployment side of one reconciliation.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    job: &'a Job,
    current: Option<&'a Deployment>,
    older_active: Option<&'a Deployment>,
    notes: Vec<Note>,
    now: i64,
}

/// Canary bookkeeping of one group.
#[derive(Debug)]
pub(crate) struct Canaries<'a> {
    wanted: u32,
    promoted: bool,
    existing: Vec<&'a Allocation>,
}

impl Canaries<'_> {
    /// An unpromoted canary does not count toward the group's count.
    pub(crate) fn is_unpromoted_canary(&self, a: &Allocation) -> bool {
        !self.promoted && self.existing.iter().any(|c| c.id == a.id)
    }

    /// Whether the group waits on canaries instead of rolling.
    pub(crate) fn canarying(&self, has_outdated: bool) -> bool {
        self.wanted > 0 && !self.promoted && (has_outdated || !self.existing.is_empty())
    }

    /// Canaries still to place.
    pub(crate) fn missing(&self) -> usize {
        (self.wanted as usize).saturating_sub(self.existing.len())
    }

    /// Names the existing canaries hold.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.existing.iter().map(|a| a.name.as_str())
    }
}

fn rolling(job: &Job, tg: &TaskGroup) -> bool {
    job.job_type == JobType::Service && tg.update.as_ref().is_some_and(|u| u.is_rolling())
}

impl<'a> Plan<'a> {
    pub(crate) fn new(job: &'a Job, latest: Option<&'a Deployment>, now: i64) -> Plan<'a> {
        let current = latest.filter(|d| d.job_version == job.version);
        let older_active = latest.filter(|d| d.job_version != job.version && d.status.is_active());
        Plan {
            job,
            current,
            older_active,
            notes: Vec::new(),
            now,
        }
    }

    fn active(&self) -> Option<&'a Deployment> {
        self.current.filter(|d| d.status.is_active())
    }

    /// The group's canaries, among the allocations it keeps.
    pub(crate) fn canaries(&self, tg: &TaskGroup, keep: &[&'a Allocation]) -> Canaries<'a> {
        let wanted = if rolling(self.job, tg) {
            tg.update.as_ref().map_or(0, |u| u.canary)
        } else {
            0
        };
        let state = self.current.and_then(|d| d.task_groups.get(&tg.name));
        let promoted = state.is_some_and(|s| s.promoted);
        let existing = match self.current {
            Some(d) if wanted > 0 => keep
                .iter()
                .copied()
                .filter(|a| {
                    a.deployment_id.as_deref() == Some(d.id.as_str())
                        && a.job_version == self.job.version
                        && a.deployment_status.as_ref().is_some_and(|s| s.canary)
                })
                .collect(),
            _ => Vec::new(),
        };
        Canaries {
            wanted,
            promoted,
            existing,
        }
    }

    /// Whether new work may be started (the deployment of this version is
    /// not paused or failed).
    pub(crate) fn can_progress(&self) -> bool {
        self.current.is_none_or(|d| {
            !matches!(
                d.status,
                DeploymentStatus::Paused | DeploymentStatus::Failed
            )
        })
    }

    /// How many destructive updates may start now.
    pub(crate) fn rolling_limit(&self, tg: &TaskGroup, allocs: &[&Allocation]) -> usize {
        if !rolling(self.job, tg) {
            return usize::MAX;
        }
        if !self.can_progress() {
            return 0;
        }
        let max = tg.update.as_ref().map_or(1, |u| u.max_parallel) as usize;
        let Some(d) = self.active() else {
            return max;
        };
        let unhealthy = allocs
            .iter()
            .filter(|a| {
                a.deployment_id.as_deref() == Some(d.id.as_str())
                    && !a.is_terminal()
                    && a.deployment_status.as_ref().and_then(|s| s.healthy) != Some(true)
            })
            .count();
        max.saturating_sub(unhealthy)
    }

    /// Records what a rolling group asks of the deployment.
    pub(crate) fn note_group(&mut self, tg: &TaskGroup, place: &[Place<'_>], canarying: bool) {
        if !rolling(self.job, tg) {
            return;
        }
        self.notes.push(Note {
            name: tg.name.clone(),
            desired_canaries: if canarying {
                tg.update.as_ref().map_or(0, |u| u.canary)
            } else {
                0
            },
            desired_total: tg.count,
            placing: place.iter().any(|p| p.tg.name == tg.name),
        });
    }

    /// Cancels an older deployment, creates this version's when there is
    /// work for it, or updates its canary wishes.
    pub(crate) fn finish(self, out: &mut Reconciled<'_>, rng: &mut Rng) {
        if let Some(old) = self.older_active {
            out.deployment_updates
                .push(cancel(old, "cancelled due to newer version of job"));
        }
        let state = |n: &Note, base: Option<&DeploymentState>| {
            let u = self.job.group(&n.name).and_then(|g| g.update.as_ref());
            let mut s = base.cloned().unwrap_or_else(|| DeploymentState {
                auto_revert: u.is_some_and(|u| u.auto_revert),
                auto_promote: u.is_some_and(|u| u.auto_promote),
                require_progress_by: u.filter(|u| !u.progress_deadline.is_zero()).map_or(0, |u| {
                    self.now
                        .saturating_add(u.progress_deadline.as_nanos() as i64)
                }),
                ..DeploymentState::default()
            });
            s.desired_total = n.desired_total;
            s.desired_canaries = s.desired_canaries.max(n.desired_canaries);
            s
        };
        match self.current {
            None => {
                if !self.notes.iter().any(|n| n.placing) {
                    return;
                }
                let d = Deployment {
                    id: rng.uuid(),
                    job_id: self.job.id.clone(),
                    job_version: self.job.version,
                    job_modify_index: self.job.job_modify_index,
                    task_groups: self
                        .notes
                        .iter()
                        .map(|n| (n.name.clone(), state(n, None)))
                        .collect(),
                    status: DeploymentStatus::Running,
                    status_description: "deployment is running".into(),
                    ..Deployment::default()
                };
                out.deployment_id = Some(d.id.clone());
                out.deployment = Some(d);
            }
            Some(d) if d.status.is_active() => {
                out.deployment_id = Some(d.id.clone());
                let mut changed = d.clone();
                for n in &self.notes {
                    let s = state(n, d.task_groups.get(&n.name));
                    changed.task_groups.insert(n.name.clone(), s);
                }
                if changed != *d {
                    out.deployment = Some(changed);
                }
            }
            Some(_) => {}
        }
    }
}
