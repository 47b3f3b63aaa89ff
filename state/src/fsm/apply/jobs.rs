//! Registering, stopping and purging jobs.

use wren_model::{Evaluation, Job};

use super::{Cx, batch};
use crate::fsm::command::{ApplyError, DeregisterJob, Outcome, RegisterJob};
use crate::fsm::tables::State;

impl State {
    pub(super) fn apply_register_job(
        &mut self,
        cx: &mut Cx,
        c: RegisterJob,
    ) -> Result<Outcome, ApplyError> {
        let outcome = self.register_job(cx, c.job, c.enforce_index)?;
        if let (
            Some(eval),
            Outcome::Job {
                job_id,
                job_modify_index,
                ..
            },
        ) = (c.eval, &outcome)
        {
            self.insert_job_eval(cx, eval, job_id, *job_modify_index)?;
        }
        Ok(outcome)
    }

    pub(super) fn apply_deregister_job(
        &mut self,
        cx: &mut Cx,
        c: DeregisterJob,
    ) -> Result<Outcome, ApplyError> {
        let Some(current) = self.jobs.get(&c.job_id).cloned() else {
            return Err(ApplyError::UnknownJob(c.job_id));
        };
        let outcome = if c.purge {
            self.remove_job(&c.job_id);
            batch(1, 0)
        } else {
            let mut stopped = (*current).clone();
            stopped.stop = true;
            self.register_job(cx, stopped, None)?
        };
        if let Some(eval) = c.eval {
            let job_modify_index = self
                .jobs
                .get(&c.job_id)
                .map_or(current.job_modify_index, |j| j.job_modify_index);
            self.insert_job_eval(cx, eval, &c.job_id, job_modify_index)?;
        }
        Ok(outcome)
    }

    /// Stores `job` as a new version when its specification differs from
    /// the current one; otherwise only refreshes the current record.
    pub(super) fn register_job(
        &mut self,
        cx: &mut Cx,
        mut job: Job,
        enforce_index: Option<u64>,
    ) -> Result<Outcome, ApplyError> {
        if job.id.is_empty() {
            return Err(ApplyError::Invalid("job without an id".to_owned()));
        }
        let existing = self.jobs.get(&job.id).cloned();
        if let Some(expected) = enforce_index {
            let actual = existing.as_ref().map_or(0, |j| j.job_modify_index);
            if actual != expected {
                return Err(ApplyError::IndexMismatch {
                    job: job.id,
                    expected,
                    actual,
                });
            }
        }
        let new_version = match &existing {
            Some(old) if !old.spec_changed(&job) => {
                job = (**old).clone();
                false
            }
            Some(old) => {
                job.version = old.version.saturating_add(1);
                job.create_index = old.create_index;
                job.job_modify_index = self.index;
                job.submit_time = cx.now;
                job.stable = false;
                job.status = old.status;
                job.status_description = old.status_description.clone();
                true
            }
            None => {
                job.version = 0;
                job.create_index = self.index;
                job.job_modify_index = self.index;
                job.submit_time = cx.now;
                job.stable = false;
                job.status = Default::default();
                job.status_description = String::new();
                true
            }
        };
        job.modify_index = self.index;
        let outcome = Outcome::Job {
            job_id: job.id.clone(),
            version: job.version,
            job_modify_index: job.job_modify_index,
            new_version,
        };
        cx.jobs.insert(job.id.clone());
        self.put_job(job);
        Ok(outcome)
    }

    /// Inserts an evaluation created for `job_id`, stamped with the job's
    /// modify index.
    fn insert_job_eval(
        &mut self,
        cx: &mut Cx,
        mut eval: Evaluation,
        job_id: &str,
        job_modify_index: u64,
    ) -> Result<(), ApplyError> {
        if eval.job_id != job_id {
            return Err(ApplyError::Invalid(format!(
                "evaluation {:?} is for job {:?}, not {:?}",
                eval.id, eval.job_id, job_id
            )));
        }
        eval.job_modify_index = job_modify_index;
        self.upsert_eval(cx, eval)
    }
}
