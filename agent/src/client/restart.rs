//! The restart policy, as Nomad's client applies it: after a task ends (or
//! fails to start), restart it after `delay` (plus up to 25% jitter) as
//! long as fewer than `attempts` restarts happened in the current
//! `interval`; past that, `mode = "fail"` gives up and `mode = "delay"`
//! waits for the interval to end and starts counting again. A task that is
//! meant to finish (a batch job's, or a non-sidecar lifecycle task) and
//! exits 0 is done; a service's task is restarted whatever its exit code.
//!
//! Pure: the caller passes the time and the jitter draw, so every branch is
//! tested from data.

use std::time::Duration;

use wren_model::{RestartMode, RestartPolicy};

use super::localdb::RestartTracker;

/// How a task's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exited 0 on its own.
    Success,
    /// Exited non-zero, was killed by a signal or the OOM killer, or its
    /// driver lost track of it.
    Failure,
    /// Did not start; `recoverable` when trying again may help.
    StartFailed {
        /// Whether a retry may succeed (not a config error, not a refused
        /// or disabled driver).
        recoverable: bool,
    },
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start the task again after `delay`.
    Restart {
        /// How long to wait first.
        delay: Duration,
        /// For the `Restarting` event.
        reason: String,
    },
    /// Leave the task dead.
    Stop {
        /// Whether it counts as failed.
        failed: bool,
        /// For the `Not Restarting` event.
        reason: String,
    },
}

/// Applies `policy` to a task that just ended. `finishes` says whether the
/// task is meant to run to completion (then exit 0 is final). `now` is in
/// Unix nanoseconds; `jitter` is a random draw (only its value modulo the
/// jitter range matters).
pub fn decide(
    policy: &RestartPolicy,
    tracker: &mut RestartTracker,
    ending: Ending,
    finishes: bool,
    now: i64,
    jitter: u64,
) -> Decision {
    match ending {
        Ending::StartFailed { recoverable: false } => {
            return Decision::Stop {
                failed: true,
                reason: "Error was unrecoverable".to_owned(),
            };
        }
        Ending::Success if finishes => {
            return Decision::Stop {
                failed: false,
                reason: "Restart unnecessary as task terminated successfully".to_owned(),
            };
        }
        _ => {}
    }
    let interval = i64::try_from(policy.interval.as_nanos()).unwrap_or(i64::MAX);
    if tracker.window_start == 0 || now.saturating_sub(tracker.window_start) > interval {
        tracker.window_start = now;
        tracker.count = 0;
    }
    tracker.count = tracker.count.saturating_add(1);
    if tracker.count > policy.attempts {
        let attempts = policy.attempts;
        let every = humanize(policy.interval.to_std());
        return match policy.mode {
            RestartMode::Fail => Decision::Stop {
                failed: true,
                reason: format!(
                    "Exceeded allowed attempts {attempts} in interval {every} and mode is \"fail\""
                ),
            },
            RestartMode::Delay => {
                let end = tracker.window_start.saturating_add(interval);
                let wait = u64::try_from(end.saturating_sub(now)).unwrap_or(0);
                let delay = Duration::from_nanos(wait).max(policy.delay.to_std());
                Decision::Restart {
                    delay,
                    reason: format!(
                        "Exceeded allowed attempts {attempts} in interval {every} and mode is \"delay\", delaying for {}",
                        humanize(delay)
                    ),
                }
            }
        };
    }
    let base = policy.delay.to_std();
    let range = u64::try_from(base.as_nanos() / 4).unwrap_or(u64::MAX);
    let extra = if range == 0 { 0 } else { jitter % range };
    Decision::Restart {
        delay: base + Duration::from_nanos(extra),
        reason: "Restart within policy".to_owned(),
    }
}

/// `1m30s`, `250ms`, for events.
pub fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::Duration as D;

    const SEC: i64 = 1_000_000_000;

    fn policy(attempts: u32, mode: RestartMode) -> RestartPolicy {
        RestartPolicy {
            attempts,
            interval: D::from_secs(60),
            delay: D::from_secs(4),
            mode,
        }
    }

    #[test]
    fn restarts_within_attempts_then_fails() {
        let p = policy(2, RestartMode::Fail);
        let mut t = RestartTracker::default();
        for i in 0..2 {
            match decide(&p, &mut t, Ending::Failure, false, 100 * SEC + i, 7) {
                Decision::Restart { delay, .. } => {
                    assert!(delay >= Duration::from_secs(4) && delay <= Duration::from_secs(5));
                }
                d => panic!("{d:?}"),
            }
        }
        let d = decide(&p, &mut t, Ending::Failure, false, 101 * SEC, 7);
        assert_eq!(
            d,
            Decision::Stop {
                failed: true,
                reason: "Exceeded allowed attempts 2 in interval 1m and mode is \"fail\"".into()
            }
        );
    }

    #[test]
    fn the_window_resets_after_the_interval() {
        let p = policy(1, RestartMode::Fail);
        let mut t = RestartTracker::default();
        assert!(matches!(
            decide(&p, &mut t, Ending::Failure, false, 10 * SEC, 0),
            Decision::Restart { .. }
        ));
        // 61 s later the window starts over.
        assert!(matches!(
            decide(&p, &mut t, Ending::Failure, false, 71 * SEC, 0),
            Decision::Restart { .. }
        ));
        assert_eq!(t.count, 1);
    }

    #[test]
    fn delay_mode_waits_for_the_window_to_end() {
        let p = policy(1, RestartMode::Delay);
        let mut t = RestartTracker::default();
        decide(&p, &mut t, Ending::Failure, false, 10 * SEC, 0);
        match decide(&p, &mut t, Ending::Failure, false, 20 * SEC, 0) {
            Decision::Restart { delay, reason } => {
                assert_eq!(delay, Duration::from_secs(50));
                assert!(reason.contains("delaying for 50s"), "{reason}");
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn batch_success_is_final_and_service_success_restarts() {
        let p = policy(3, RestartMode::Fail);
        let mut t = RestartTracker::default();
        assert!(matches!(
            decide(&p, &mut t, Ending::Success, true, SEC, 0),
            Decision::Stop { failed: false, .. }
        ));
        assert_eq!(t.count, 0, "a finished task does not use an attempt");
        assert!(matches!(
            decide(&p, &mut t, Ending::Success, false, SEC, 0),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn unrecoverable_start_failures_are_final() {
        let p = policy(3, RestartMode::Delay);
        let mut t = RestartTracker::default();
        assert!(matches!(
            decide(
                &p,
                &mut t,
                Ending::StartFailed { recoverable: false },
                false,
                SEC,
                0
            ),
            Decision::Stop { failed: true, .. }
        ));
        assert!(matches!(
            decide(
                &p,
                &mut t,
                Ending::StartFailed { recoverable: true },
                false,
                SEC,
                0
            ),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn zero_attempts_in_fail_mode_never_restart() {
        let p = policy(0, RestartMode::Fail);
        let mut t = RestartTracker::default();
        assert!(matches!(
            decide(&p, &mut t, Ending::Failure, false, SEC, 0),
            Decision::Stop { failed: true, .. }
        ));
    }

    #[test]
    fn durations_read_like_nomads() {
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::from_secs(3600)), "1h");
        assert_eq!(humanize(Duration::from_secs(1)), "1s");
    }
}
