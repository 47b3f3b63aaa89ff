//! Garbage collection: choosing what to delete (on the leader, with its
//! clock) and deleting it (in apply, re-checking each object).

use std::collections::BTreeSet;
use std::time::Duration;

use wren_model::{JobStatus, NodeStatus};

use super::{Cx, batch};
use crate::fsm::command::{GarbageCollect, Outcome};
use crate::fsm::tables::State;

/// How old things must be before they are collected (Nomad's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Terminal evaluations and finished allocations.
    pub eval_threshold: Duration,
    /// Dead jobs.
    pub job_threshold: Duration,
    /// Down nodes.
    pub node_threshold: Duration,
    /// Versions kept per job besides those allocations still run.
    pub keep_job_versions: usize,
}

impl Default for GcPolicy {
    fn default() -> GcPolicy {
        GcPolicy {
            eval_threshold: Duration::from_secs(3600),
            job_threshold: Duration::from_secs(4 * 3600),
            node_threshold: Duration::from_secs(24 * 3600),
            keep_job_versions: 6,
        }
    }
}

fn cutoff(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX))
}

impl State {
    /// What garbage collection would delete at `now` (unix nanoseconds)
    /// under `policy`. The result is proposed as
    /// [`Command::GarbageCollect`](crate::Command::GarbageCollect).
    pub fn gc_candidates(&self, policy: &GcPolicy, now: i64) -> GarbageCollect {
        let mut gc = GarbageCollect::default();
        let old_enough = cutoff(now, policy.eval_threshold);
        let collectable_alloc = |id: &String| {
            self.allocs.get(id).is_some_and(|a| {
                (a.client_terminal() || !self.nodes.contains_key(&a.node_id))
                    && a.modify_time <= old_enough
            })
        };
        let allocs: BTreeSet<String> = self
            .allocs
            .keys()
            .filter(|id| collectable_alloc(id))
            .cloned()
            .collect();
        for eval in self.evals.values() {
            let placed_all_gone = self
                .allocs_by_eval(&eval.id)
                .all(|a| allocs.contains(&a.id));
            if eval.status.is_terminal() && eval.modify_time <= old_enough && placed_all_gone {
                gc.evals.push(eval.id.clone());
            }
        }
        gc.allocs = allocs.iter().cloned().collect();

        for job in self.jobs.values() {
            let live: BTreeSet<u64> = self
                .allocs_by_job(&job.id)
                .filter(|a| !allocs.contains(&a.id))
                .map(|a| a.job_version)
                .collect();
            let versions = self.job_versions(&job.id);
            for old in versions.iter().skip(policy.keep_job_versions) {
                if old.version != job.version && !live.contains(&old.version) {
                    gc.job_versions.push((job.id.clone(), old.version));
                }
            }
            let dead = job.status == JobStatus::Dead
                && job.submit_time <= cutoff(now, policy.job_threshold)
                && live.is_empty()
                && self.evals_by_job(&job.id).all(|e| e.status.is_terminal());
            if dead {
                gc.jobs.push(job.id.clone());
            }
        }

        let node_cutoff = cutoff(now, policy.node_threshold);
        for node in self.nodes.values() {
            if node.status == NodeStatus::Down
                && node.status_updated_at <= node_cutoff
                && self.live_allocs_by_node(&node.id).next().is_none()
            {
                gc.nodes.push(node.id.clone());
            }
        }

        for deployment in self.deployments.values() {
            let superseded = self
                .latest_deployment(&deployment.job_id)
                .is_some_and(|latest| latest.id != deployment.id);
            let orphaned = !self.jobs.contains_key(&deployment.job_id);
            if !deployment.status.is_active() && (superseded || orphaned) {
                gc.deployments.push(deployment.id.clone());
            }
        }
        gc
    }

    /// Deletes what `gc` names, skipping whatever is no longer eligible.
    pub(super) fn apply_gc(&mut self, cx: &mut Cx, gc: GarbageCollect) -> Outcome {
        let (mut changed, mut skipped) = (0usize, 0usize);
        let mut count = |deleted: bool| {
            if deleted {
                changed += 1;
            } else {
                skipped += 1;
            }
        };
        for id in &gc.allocs {
            let eligible = self
                .allocs
                .get(id)
                .is_some_and(|a| a.client_terminal() || !self.nodes.contains_key(&a.node_id));
            if eligible {
                if let Some(a) = self.allocs.get(id) {
                    cx.jobs.insert(a.job_id.clone());
                }
                self.remove_alloc(id);
            }
            count(eligible);
        }
        for id in &gc.evals {
            let eligible = self.evals.get(id).is_some_and(|e| e.status.is_terminal());
            if eligible {
                self.remove_eval(id);
            }
            count(eligible);
        }
        for (job_id, version) in &gc.job_versions {
            let current = self.jobs.get(job_id).map(|j| j.version);
            let in_use = self
                .allocs_by_job(job_id)
                .any(|a| a.job_version == *version && !a.is_terminal());
            let eligible = current != Some(*version) && !in_use;
            count(eligible && self.remove_job_version(job_id, *version));
        }
        for id in &gc.jobs {
            let eligible = self
                .jobs
                .get(id)
                .is_some_and(|j| j.status == JobStatus::Dead)
                && self.allocs_by_job(id).all(|a| a.is_terminal())
                && self.evals_by_job(id).all(|e| e.status.is_terminal());
            if eligible {
                self.remove_job(id);
            }
            count(eligible);
        }
        for id in &gc.nodes {
            let eligible = self
                .nodes
                .get(id)
                .is_some_and(|n| n.status == NodeStatus::Down)
                && self.live_allocs_by_node(id).next().is_none();
            count(eligible && self.remove_node(id));
        }
        for id in &gc.deployments {
            let eligible = self
                .deployments
                .get(id)
                .is_some_and(|d| !d.status.is_active());
            count(eligible && self.remove_deployment(id));
        }
        batch(changed, skipped)
    }
}
