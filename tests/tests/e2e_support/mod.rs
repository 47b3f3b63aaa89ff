//! What the end-to-end tests (`e2e_*.rs`) read about tasks and
//! allocations: task processes through their cgroups, and the CLI's JSON
//! about a job's allocations.

#![allow(dead_code)]

use serde_json::Value;
use wren_runtimes::cgroup::Hierarchies;

/// Whether this machine has cgroups the exec driver can use; the reason
/// otherwise.
pub fn have_cgroups() -> Result<(), String> {
    let h = Hierarchies::detect().map_err(|e| format!("no cgroups: {e}"))?;
    match h.version() {
        Some(_) => Ok(()),
        None => Err("no cgroup hierarchy is mounted".into()),
    }
}

/// The pids in a task's cgroup (`wren/<alloc>.<task>`, whichever agent
/// made it: every agent on this host shares the cgroup tree).
pub fn task_pids(alloc: &str, task: &str) -> Vec<i32> {
    Hierarchies::detect()
        .ok()
        .and_then(|h| h.existing("wren", &format!("{alloc}.{task}")).ok())
        .and_then(|cg| cg.pids().ok())
        .unwrap_or_default()
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// The allocations of `job status --json` output.
pub fn allocs(status: &Value) -> Vec<Value> {
    status["allocations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Allocations the servers want running and that have not ended.
pub fn live(allocs: &[Value]) -> Vec<Value> {
    allocs
        .iter()
        .filter(|a| {
            a["desired_status"] == "run"
                && !matches!(
                    a["client_status"].as_str(),
                    Some("complete" | "failed" | "lost")
                )
        })
        .cloned()
        .collect()
}

/// An allocation's id.
pub fn id(alloc: &Value) -> String {
    alloc["id"].as_str().unwrap_or_default().to_owned()
}

/// How many `Started` events a task of `alloc status --json` has.
pub fn started_events(alloc: &Value, task: &str) -> usize {
    alloc["alloc"]["task_states"][task]["events"]
        .as_array()
        .map_or(0, |evs| {
            evs.iter().filter(|e| e["type"] == "Started").count()
        })
}
