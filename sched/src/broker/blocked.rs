//! Blocked evaluations: evaluations that could not place everything,
//! waiting for capacity to change.
//!
//! Each blocked evaluation records, per computed node class, whether the
//! job could run on that class at all. A capacity change in a class (a
//! node joins or changes, an allocation ends) releases the evaluations
//! that found the class eligible or never looked at it; evaluations whose
//! feasibility depended on unique attributes ("escaped") are released by
//! any change. One blocked evaluation per job is kept, the newest; older
//! ones are shed as duplicates for the leader to cancel. A change that
//! happened after the evaluation's snapshot but before it was blocked
//! releases it at once, so no capacity change is missed.

use std::collections::{BTreeMap, HashMap};

use wren_model::{EvalId, Evaluation, JobId};

/// The tracker of blocked evaluations.
#[derive(Debug, Default)]
pub struct BlockedEvals {
    captured: BTreeMap<EvalId, Evaluation>,
    by_job: HashMap<JobId, EvalId>,
    /// The last index at which capacity changed, per computed class.
    unblock_indexes: HashMap<String, u64>,
    /// The last index of any capacity change.
    last_unblock: u64,
    duplicates: Vec<Evaluation>,
}

impl BlockedEvals {
    /// An empty tracker.
    pub fn new() -> BlockedEvals {
        BlockedEvals::default()
    }

    /// Tracks a blocked evaluation. Returns it back when a capacity change
    /// it could use already happened after its snapshot: enqueue it then.
    pub fn block(&mut self, eval: Evaluation) -> Option<Evaluation> {
        if let Some(old_id) = self.by_job.get(&eval.job_id).cloned()
            && old_id != eval.id
        {
            let newer = self.captured.get(&old_id).is_none_or(|old| {
                (eval.create_index, eval.create_time) >= (old.create_index, old.create_time)
            });
            if !newer {
                self.duplicates.push(eval);
                return None;
            }
            if let Some(old) = self.captured.remove(&old_id) {
                self.duplicates.push(old);
            }
        }
        if self.missed_unblock(&eval) {
            self.by_job.remove(&eval.job_id);
            return Some(eval);
        }
        self.by_job.insert(eval.job_id.clone(), eval.id.clone());
        self.captured.insert(eval.id.clone(), eval);
        None
    }

    fn missed_unblock(&self, eval: &Evaluation) -> bool {
        if eval.escaped_computed_class {
            return self.last_unblock > eval.snapshot_index;
        }
        self.unblock_indexes.iter().any(|(class, &index)| {
            index > eval.snapshot_index && eval.class_eligibility.get(class) != Some(&false)
        })
    }

    /// Capacity changed in `class` at `index`: returns the evaluations to
    /// enqueue again.
    pub fn unblock(&mut self, class: &str, index: u64) -> Vec<Evaluation> {
        self.unblock_indexes
            .entry(class.to_owned())
            .and_modify(|i| *i = (*i).max(index))
            .or_insert(index);
        self.last_unblock = self.last_unblock.max(index);
        let ids: Vec<EvalId> = self
            .captured
            .values()
            .filter(|e| e.escaped_computed_class || e.class_eligibility.get(class) != Some(&false))
            .map(|e| e.id.clone())
            .collect();
        self.release(ids)
    }

    /// Capacity changed everywhere (a new node pool, a scheduler config
    /// change): releases everything.
    pub fn unblock_all(&mut self, index: u64) -> Vec<Evaluation> {
        self.last_unblock = self.last_unblock.max(index);
        let ids: Vec<EvalId> = self.captured.keys().cloned().collect();
        self.release(ids)
    }

    fn release(&mut self, ids: Vec<EvalId>) -> Vec<Evaluation> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.captured.remove(&id) {
                self.by_job.remove(&e.job_id);
                out.push(e);
            }
        }
        out
    }

    /// Stops tracking a job's blocked evaluation (the job was stopped or a
    /// newer evaluation placed everything); returns it for cancelling.
    pub fn untrack(&mut self, job_id: &str) -> Option<Evaluation> {
        let id = self.by_job.remove(job_id)?;
        self.captured.remove(&id)
    }

    /// Older blocked evaluations superseded by newer ones of the same job,
    /// for the leader to mark cancelled.
    pub fn take_duplicates(&mut self) -> Vec<Evaluation> {
        std::mem::take(&mut self.duplicates)
    }

    /// How many evaluations are blocked.
    pub fn len(&self) -> usize {
        self.captured.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.captured.is_empty()
    }

    /// The blocked evaluation of a job.
    pub fn of_job(&self, job_id: &str) -> Option<&Evaluation> {
        self.captured.get(self.by_job.get(job_id)?)
    }

    /// Forgets everything (leadership lost).
    pub fn clear(&mut self) {
        *self = BlockedEvals::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::EvalStatus;

    fn blocked(id: &str, job: &str, snapshot: u64, classes: &[(&str, bool)]) -> Evaluation {
        Evaluation {
            id: id.into(),
            job_id: job.into(),
            status: EvalStatus::Blocked,
            snapshot_index: snapshot,
            create_index: snapshot,
            class_eligibility: classes.iter().map(|(c, e)| ((*c).to_owned(), *e)).collect(),
            ..Evaluation::default()
        }
    }

    #[test]
    fn unblocks_by_class_eligibility() {
        let mut b = BlockedEvals::new();
        assert!(
            b.block(blocked("e1", "a", 10, &[("gpu", true), ("pi", false)]))
                .is_none()
        );
        assert!(b.block(blocked("e2", "b", 10, &[("pi", true)])).is_none());
        let mut escaped = blocked("e3", "c", 10, &[("pi", false)]);
        escaped.escaped_computed_class = true;
        assert!(b.block(escaped).is_none());
        let got: Vec<String> = b.unblock("pi", 11).into_iter().map(|e| e.id).collect();
        assert_eq!(got, vec!["e2", "e3"], "e1 knows pi is infeasible");
        let got: Vec<String> = b.unblock("x86", 12).into_iter().map(|e| e.id).collect();
        assert_eq!(got, vec!["e1"], "an unseen class may fit");
        assert!(b.is_empty());
    }

    #[test]
    fn one_per_job_newest_wins() {
        let mut b = BlockedEvals::new();
        b.block(blocked("old", "a", 5, &[]));
        b.block(blocked("new", "a", 7, &[]));
        assert_eq!(b.len(), 1);
        assert_eq!(b.of_job("a").map(|e| e.id.as_str()), Some("new"));
        let dups: Vec<String> = b.take_duplicates().into_iter().map(|e| e.id).collect();
        assert_eq!(dups, vec!["old"]);
        b.block(blocked("older", "a", 3, &[]));
        assert_eq!(
            b.take_duplicates().len(),
            1,
            "an older arrival is the duplicate"
        );
        assert_eq!(b.untrack("a").map(|e| e.id), Some("new".into()));
    }

    #[test]
    fn a_change_after_the_snapshot_is_not_missed() {
        let mut b = BlockedEvals::new();
        assert!(b.unblock("pi", 20).is_empty());
        let back = b.block(blocked("e", "a", 15, &[("pi", true)]));
        assert_eq!(back.map(|e| e.id), Some("e".into()));
        assert!(b.block(blocked("f", "b", 25, &[("pi", true)])).is_none());
        assert!(
            b.block(blocked("g", "c", 15, &[("pi", false)])).is_none(),
            "pi is no use to it"
        );
    }
}
