//! Waiting for a condition: poll it until a deadline, never sleep a fixed
//! time and hope. The first probes come quickly (a few milliseconds apart)
//! and back off to at most 100 ms, so a fast condition is seen fast and a
//! slow one does not burn a core.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The condition did not hold in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}: {last}")]
pub struct Timeout {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub waited: Duration,
    /// Why the last probe said no.
    pub last: String,
}

/// Calls `probe` until it returns `Ok` or `timeout` has passed; returns the
/// value, or a [`Timeout`] carrying the last probe's error.
pub fn eventually<T, E: Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> Result<T, Timeout> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        let last = match probe() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Timeout {
                what: what.to_owned(),
                waited,
                last,
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Like [`eventually`] for a yes/no condition.
pub fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<(), Timeout> {
    eventually(
        what,
        timeout,
        || {
            if cond() { Ok(()) } else { Err("not yet") }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_success_and_reports_the_last_failure() {
        let mut n = 0;
        let v = eventually("the third try", Duration::from_secs(30), || {
            n += 1;
            if n == 3 {
                Ok(n)
            } else {
                Err(format!("try {n}"))
            }
        })
        .unwrap();
        assert_eq!(v, 3);

        let err = eventually("never", Duration::from_millis(20), || {
            Err::<(), _>("still no")
        })
        .unwrap_err();
        assert_eq!(err.last, "still no");
        assert!(err.waited >= Duration::from_millis(20));
        assert!(err.to_string().contains("waiting for never"));
    }
}
