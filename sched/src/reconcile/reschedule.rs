//! Reschedule policy: whether a failed allocation may be replaced, when,
//! and the tracker its replacement carries (Nomad's semantics: attempts
//! within an interval or unlimited; constant, exponential or fibonacci
//! delays capped by `max_delay`, reset once the allocation ran longer than
//! the cap).

use wren_model::{Allocation, DelayFunction, Duration, RescheduleEvent, ReschedulePolicy};

/// Unlimited policies keep only this many past events.
const MAX_PAST_EVENTS_UNLIMITED: usize = 5;

/// When the allocation failed: its last task finishing, else its last
/// change, else `now`.
pub(crate) fn fail_time(alloc: &Allocation, now: i64) -> i64 {
    let finished = alloc
        .task_states
        .values()
        .map(|t| t.finished_at)
        .max()
        .unwrap_or(0);
    if finished > 0 {
        finished
    } else if alloc.modify_time > 0 {
        alloc.modify_time
    } else {
        now
    }
}

/// Whether the policy allows another reschedule of `alloc` failing at
/// `failed_at`.
pub(crate) fn eligible(
    policy: Option<&ReschedulePolicy>,
    alloc: &Allocation,
    failed_at: i64,
) -> bool {
    let Some(p) = policy else {
        return false;
    };
    if p.unlimited {
        return true;
    }
    if p.attempts == 0 {
        return false;
    }
    let interval = p.interval.as_nanos() as i64;
    let recent = alloc
        .reschedule_tracker
        .iter()
        .filter(|e| interval == 0 || failed_at.saturating_sub(e.time) < interval)
        .count();
    recent < p.attempts as usize
}

/// The delay before the next reschedule.
pub(crate) fn next_delay(
    policy: &ReschedulePolicy,
    alloc: &Allocation,
    failed_at: i64,
) -> Duration {
    let events = &alloc.reschedule_tracker;
    let Some(last) = events.last() else {
        return policy.delay;
    };
    let mut delay = match policy.delay_function {
        DelayFunction::Constant => return policy.delay,
        DelayFunction::Exponential => Duration(last.delay.as_nanos().saturating_mul(2)),
        DelayFunction::Fibonacci => match events.len() {
            0 | 1 => policy.delay,
            n => {
                let prev = events[n - 2].delay;
                if prev == policy.max_delay && last.delay == policy.delay {
                    // The series was reset: start again.
                    last.delay
                } else {
                    Duration(last.delay.as_nanos().saturating_add(prev.as_nanos()))
                }
            }
        },
    };
    if !policy.max_delay.is_zero() && delay > policy.max_delay {
        delay = policy.max_delay;
        // Ran longer than the cap since the last reschedule: reset.
        if failed_at.saturating_sub(last.time) > delay.as_nanos() as i64 {
            delay = policy.delay;
        }
    }
    delay
}

/// When a failed allocation may be replaced, if ever.
pub(crate) fn next_time(
    policy: Option<&ReschedulePolicy>,
    alloc: &Allocation,
    now: i64,
) -> Option<i64> {
    let failed_at = fail_time(alloc, now);
    if !eligible(policy, alloc, failed_at) {
        return None;
    }
    let delay = next_delay(policy?, alloc, failed_at);
    Some(failed_at.saturating_add(delay.as_nanos() as i64))
}

/// The tracker for the replacement of `prev`: its past events still
/// relevant to the policy, plus this reschedule.
pub(crate) fn tracker_for(
    policy: Option<&ReschedulePolicy>,
    prev: &Allocation,
    now: i64,
) -> Vec<RescheduleEvent> {
    let failed_at = fail_time(prev, now);
    let delay = policy.map_or(Duration::ZERO, |p| next_delay(p, prev, failed_at));
    let mut events: Vec<RescheduleEvent> = match policy {
        Some(p) if p.unlimited => {
            let skip = prev
                .reschedule_tracker
                .len()
                .saturating_sub(MAX_PAST_EVENTS_UNLIMITED - 1);
            prev.reschedule_tracker.iter().skip(skip).cloned().collect()
        }
        Some(p) if !p.interval.is_zero() => {
            let interval = p.interval.as_nanos() as i64;
            prev.reschedule_tracker
                .iter()
                .filter(|e| now.saturating_sub(e.time) < interval)
                .cloned()
                .collect()
        }
        _ => prev.reschedule_tracker.clone(),
    };
    events.push(RescheduleEvent {
        time: now,
        prev_alloc_id: prev.id.clone(),
        prev_node_id: prev.node_id.clone(),
        delay,
    });
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::TaskState;
    use wren_model::VecMap;

    const S: i64 = 1_000_000_000;

    fn failed_at(t: i64, tracker: &[(i64, u64)]) -> Allocation {
        Allocation {
            id: "a".into(),
            node_id: "n".into(),
            task_states: VecMap::from([(
                "t".into(),
                TaskState {
                    finished_at: t,
                    ..TaskState::default()
                },
            )]),
            reschedule_tracker: tracker
                .iter()
                .map(|&(time, d)| RescheduleEvent {
                    time,
                    delay: Duration::from_secs(d),
                    ..RescheduleEvent::default()
                })
                .collect(),
            ..Allocation::default()
        }
    }

    fn policy(f: DelayFunction, attempts: u32, unlimited: bool) -> ReschedulePolicy {
        ReschedulePolicy {
            attempts,
            interval: Duration::from_secs(3600),
            delay: Duration::from_secs(5),
            delay_function: f,
            max_delay: Duration::from_secs(60),
            unlimited,
        }
    }

    #[test]
    fn attempts_within_interval() {
        let p = policy(DelayFunction::Constant, 2, false);
        assert!(eligible(Some(&p), &failed_at(100 * S, &[]), 100 * S));
        assert!(eligible(
            Some(&p),
            &failed_at(100 * S, &[(90 * S, 5)]),
            100 * S
        ));
        assert!(!eligible(
            Some(&p),
            &failed_at(100 * S, &[(80 * S, 5), (90 * S, 5)]),
            100 * S
        ));
        // Old attempts fall out of the interval.
        let late = 10_000 * S;
        assert!(eligible(
            Some(&p),
            &failed_at(late, &[(80 * S, 5), (90 * S, 5)]),
            late
        ));
        assert!(eligible(
            Some(&policy(DelayFunction::Constant, 0, true)),
            &failed_at(1, &[(0, 1); 50]),
            1
        ));
        assert!(!eligible(None, &failed_at(1, &[]), 1));
        assert!(!eligible(
            Some(&policy(DelayFunction::Constant, 0, false)),
            &failed_at(1, &[]),
            1
        ));
    }

    #[test]
    fn delay_functions() {
        let t = 1000 * S;
        let exp = policy(DelayFunction::Exponential, 10, false);
        assert_eq!(
            next_delay(&exp, &failed_at(t, &[]), t),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_delay(&exp, &failed_at(t, &[(t - S, 5)]), t),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_delay(&exp, &failed_at(t, &[(t - S, 40)]), t),
            Duration::from_secs(60)
        );
        // Ran longer than max_delay since the last reschedule: reset.
        assert_eq!(
            next_delay(&exp, &failed_at(t, &[(t - 100 * S, 40)]), t),
            Duration::from_secs(5)
        );
        let fib = policy(DelayFunction::Fibonacci, 10, false);
        assert_eq!(
            next_delay(&fib, &failed_at(t, &[(t - S, 5)]), t),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_delay(&fib, &failed_at(t, &[(t - 2 * S, 5), (t - S, 5)]), t),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_delay(&fib, &failed_at(t, &[(t - 2 * S, 5), (t - S, 10)]), t),
            Duration::from_secs(15)
        );
        let c = policy(DelayFunction::Constant, 10, false);
        assert_eq!(
            next_delay(&c, &failed_at(t, &[(t - S, 5)]), t),
            Duration::from_secs(5)
        );
        assert_eq!(next_time(Some(&c), &failed_at(t, &[]), t), Some(t + 5 * S));
    }

    #[test]
    fn tracker_carries_recent_events() {
        let now = 10_000 * S;
        let prev = failed_at(now, &[(10, 5), (now - 10 * S, 5)]);
        let p = policy(DelayFunction::Constant, 3, false);
        let t = tracker_for(Some(&p), &prev, now);
        assert_eq!(t.len(), 2, "the event outside the interval is dropped");
        assert_eq!(t[1].prev_alloc_id, "a");
        assert_eq!(t[1].prev_node_id, "n");
        let many = failed_at(now, &[(now - S, 5); 9]);
        let u = tracker_for(Some(&policy(DelayFunction::Constant, 0, true)), &many, now);
        assert_eq!(u.len(), MAX_PAST_EVENTS_UNLIMITED);
    }
}
