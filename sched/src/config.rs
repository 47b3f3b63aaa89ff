//! Scheduler tunables. The defaults follow Nomad where Nomad has a value.

use wren_model::{Duration, JobType};

pub use crate::rank::Algorithm;

/// How the scheduler behaves; the same for every evaluation of a region.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedConfig {
    /// Pack nodes (default) or spread load over them.
    pub algorithm: Algorithm,
    /// Feasible nodes scored per placement for batch jobs, and the floor
    /// for service jobs (power of two choices).
    pub min_candidates: usize,
    /// Feasible nodes scored per placement when the group has spreads or
    /// affinities, which need a wider view than two random choices. Nomad
    /// scores every feasible node then; a bound keeps a placement's cost
    /// independent of the cluster's size.
    pub widened_candidates: usize,
    /// Nodes scoring at or below zero that may be passed over while
    /// better ones are looked for (Nomad: 3).
    pub max_skip: usize,
    /// The best-scoring nodes kept in an allocation's metrics (the chosen
    /// one first). Each costs a few small allocations per placement.
    pub retained_scores: usize,
    /// A failed allocation whose reschedule time is this close is
    /// replaced now rather than by a follow-up evaluation (Nomad: 1s).
    pub reschedule_window: Duration,
    /// Delayed reschedules due within this window share one follow-up
    /// evaluation (Nomad: 5s).
    pub followup_batch_window: Duration,
}

impl Default for SchedConfig {
    fn default() -> SchedConfig {
        SchedConfig {
            algorithm: Algorithm::Binpack,
            min_candidates: 2,
            widened_candidates: 48,
            max_skip: 3,
            retained_scores: 1,
            reschedule_window: Duration::from_secs(1),
            followup_batch_window: Duration::from_secs(5),
        }
    }
}

impl SchedConfig {
    /// How many feasible nodes to score for one placement among `nodes`
    /// candidates: `max(min, ceil(log2 n))` for services, `min` for batch,
    /// widened when spreads or affinities count.
    pub fn candidate_limit(&self, job_type: JobType, nodes: usize, widened: bool) -> usize {
        let mut limit = self.min_candidates.max(1);
        if !job_type.is_batch() && nodes > 1 {
            let log = usize::BITS - (nodes - 1).leading_zeros();
            limit = limit.max(log as usize);
        }
        if widened {
            limit = limit.max(self.widened_candidates);
        }
        limit
    }
}

/// How many times a worker re-plans an evaluation whose plan was partly
/// rejected before giving up (Nomad: 5 for services, 2 for batch).
pub fn max_plan_attempts(job_type: JobType) -> u32 {
    if job_type.is_batch() { 2 } else { 5 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let c = SchedConfig::default();
        assert_eq!(c.candidate_limit(JobType::Batch, 10_000, false), 2);
        assert_eq!(c.candidate_limit(JobType::Service, 10_000, false), 14);
        assert_eq!(c.candidate_limit(JobType::Service, 3, false), 2);
        assert_eq!(c.candidate_limit(JobType::Service, 1024, false), 10);
        assert_eq!(c.candidate_limit(JobType::Batch, 10, true), 48);
    }
}
