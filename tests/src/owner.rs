//! Who owns a namespace or a test directory: a test process, named by its
//! pid and its start time (in clock ticks since boot), so that a reused pid
//! is not mistaken for the owner. Names carry this tag; stale-resource
//! cleanup removes what belongs to owners that are gone.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// This process's tag, `<pid>x<starttime>`.
pub(crate) fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        let start = start_time(pid).unwrap_or(0);
        format!("{pid}x{start}")
    })
}

/// A number unique within this process, for unique names.
pub(crate) fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Whether the process a tag names still runs. A tag that does not parse is
/// treated as alive: never remove what we do not understand.
pub(crate) fn is_alive(tag: &str) -> bool {
    let Some((pid, start)) = tag.split_once('x') else {
        return true;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return true;
    };
    match start_time(pid) {
        Some(now) => now == start,
        None => false,
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name come fields 3.. ; the start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_not() {
        assert!(is_alive(tag()));
        // pid_max is at most 2^22 on Linux; this pid cannot exist.
        assert!(!is_alive("4294967295x1"));
        // Same pid, different start time: a reused pid, not the owner.
        let pid = std::process::id();
        assert!(!is_alive(&format!("{pid}x0")));
        assert!(is_alive("garbage"));
    }
}
