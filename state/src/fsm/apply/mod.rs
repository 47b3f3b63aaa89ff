//! The write side: applying one command to the tables.
//!
//! Apply is a pure function of (state, Raft index, proposal): no clock, no
//! randomness, no I/O, and no iteration over unordered collections, so every
//! server computes the same state. A command is applied to a clone of the
//! state (O(1) with persistent maps) and the clone replaces the state only
//! when the whole command succeeded: a command that cannot be applied leaves
//! nothing behind and returns an [`ApplyError`] to its proposer.

mod allocs;
mod deployments;
mod gc;
mod jobs;
mod nodes;

use std::collections::BTreeSet;

use wren_model::{Evaluation, Job, JobId, JobStatus};

pub use gc::GcPolicy;

use super::command::{ApplyError, Command, Outcome, Proposal, UpsertEvals};
use super::tables::State;

/// What one command touched, for the bookkeeping done after it.
struct Cx {
    /// `issued_at` of the proposal.
    now: i64,
    /// Jobs whose derived status may have changed.
    jobs: BTreeSet<JobId>,
}

impl State {
    /// Applies `proposal` as the entry at Raft `index`. On error the state
    /// is unchanged except for its index.
    pub fn apply(&mut self, index: u64, proposal: Proposal) -> Result<Outcome, ApplyError> {
        let mut next = self.clone();
        next.index = index;
        let mut cx = Cx {
            now: proposal.issued_at,
            jobs: BTreeSet::new(),
        };
        match next.dispatch(&mut cx, proposal.command) {
            Ok(outcome) => {
                next.refresh_job_statuses(&cx);
                *self = next;
                Ok(outcome)
            }
            Err(e) => {
                self.index = index;
                Err(e)
            }
        }
    }

    /// Records that the entry at `index` (a blank or membership entry)
    /// was applied without changing any table.
    pub fn advance(&mut self, index: u64) {
        self.index = self.index.max(index);
    }

    fn dispatch(&mut self, cx: &mut Cx, command: Command) -> Result<Outcome, ApplyError> {
        match command {
            Command::RegisterJob(c) => self.apply_register_job(cx, c),
            Command::DeregisterJob(c) => self.apply_deregister_job(cx, c),
            Command::UpsertNode(c) => self.apply_upsert_node(cx, c),
            Command::UpdateNodeStatus(c) => self.apply_node_status(cx, c),
            Command::UpdateNodeDrain(c) => self.apply_node_drain(cx, c),
            Command::UpdateNodeEligibility(c) => self.apply_node_eligibility(cx, c),
            Command::UpsertEvals(UpsertEvals { evals }) => {
                let n = evals.len();
                self.upsert_evals(cx, evals)?;
                Ok(batch(n, 0))
            }
            Command::ApplyPlan(c) => self.apply_plan(cx, c),
            Command::UpdateAllocsFromClient(c) => self.apply_client_updates(cx, c),
            Command::UpdateAllocDesiredTransitions(c) => self.apply_desired_transitions(cx, c),
            Command::UpdateDeploymentStatus(c) => self.apply_deployment_status(cx, c),
            Command::SetAllocHealth(c) => self.apply_alloc_health(cx, c),
            Command::PromoteDeployment(c) => self.apply_promotion(cx, c),
            Command::GarbageCollect(c) => Ok(self.apply_gc(cx, c)),
            Command::Restore(c) => self.apply_restore(c.snapshot),
        }
    }

    /// Creates or replaces an evaluation, keeping its creation bookkeeping.
    fn upsert_eval(&mut self, cx: &mut Cx, mut eval: Evaluation) -> Result<(), ApplyError> {
        if eval.id.is_empty() {
            return Err(ApplyError::Invalid("evaluation without an id".to_owned()));
        }
        match self.evals.get(&eval.id) {
            Some(old) => {
                eval.create_index = old.create_index;
                eval.create_time = old.create_time;
            }
            None => {
                eval.create_index = self.index;
                eval.create_time = cx.now;
            }
        }
        eval.modify_index = self.index;
        eval.modify_time = cx.now;
        cx.jobs.insert(eval.job_id.clone());
        self.put_eval(eval);
        Ok(())
    }

    fn upsert_evals(&mut self, cx: &mut Cx, evals: Vec<Evaluation>) -> Result<(), ApplyError> {
        evals.into_iter().try_for_each(|e| self.upsert_eval(cx, e))
    }

    /// Replaces the state with a saved snapshot, keeping objects' own
    /// indexes and marking every table changed now.
    fn apply_restore(&mut self, snapshot: Vec<u8>) -> Result<Outcome, ApplyError> {
        let restored = State::load(&snapshot)
            .map_err(|e| ApplyError::Invalid(format!("snapshot does not restore: {e}")))?;
        let index = self.index;
        *self = restored;
        self.index = index;
        for slot in &mut self.table_index {
            *slot = index;
        }
        Ok(Outcome::Applied)
    }

    /// Re-derives the status of every job the command touched.
    fn refresh_job_statuses(&mut self, cx: &Cx) {
        for id in &cx.jobs {
            let Some(job) = self.jobs.get(id).cloned() else {
                continue;
            };
            let (status, description) = self.derive_job_status(&job);
            if job.status != status || job.status_description != description {
                let mut job = (*job).clone();
                job.status = status;
                job.status_description = description;
                job.modify_index = self.index;
                self.put_job(job);
            }
        }
    }

    /// A job's status from its allocations and evaluations, as Nomad
    /// derives it: running while any allocation is, pending while work is
    /// outstanding, dead once stopped or finished.
    fn derive_job_status(&self, job: &Job) -> (JobStatus, String) {
        if job.is_template() {
            return if job.stop {
                (JobStatus::Dead, "stopped".to_owned())
            } else {
                (JobStatus::Running, "template".to_owned())
            };
        }
        let mut any_alloc = false;
        for alloc in self.allocs_by_job(&job.id) {
            any_alloc = true;
            if !alloc.is_terminal() {
                return (JobStatus::Running, String::new());
            }
        }
        if self.evals_by_job(&job.id).any(|e| !e.status.is_terminal()) {
            return (JobStatus::Pending, String::new());
        }
        if job.stop {
            return (JobStatus::Dead, "stopped".to_owned());
        }
        if any_alloc {
            return (JobStatus::Dead, "all allocations finished".to_owned());
        }
        (JobStatus::Pending, String::new())
    }
}

fn batch(changed: usize, skipped: usize) -> Outcome {
    Outcome::Batch {
        changed: u32::try_from(changed).unwrap_or(u32::MAX),
        skipped: u32::try_from(skipped).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
pub(crate) mod tests;
