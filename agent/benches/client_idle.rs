//! Footprint and start latency of a client agent: a real `wren agent` in
//! client mode (this build's binary) against the fixture servers of the
//! client tests, on this machine.
//!
//! ```sh
//! cargo bench -p wren-agent --bench client_idle          # 5 allocations
//! cargo bench -p wren-agent --bench client_idle -- 20    # 20 allocations
//! ```
//!
//! Reports the agent's RSS (`VmRSS`) and, from `smaps_rollup`, its PSS and
//! private memory: idle with no allocation, then idle with N running
//! service allocations (a shim and a `sleep` loop each), sampled every
//! 200 ms for 10 s after a settling pause (medians and maxima); the shims'
//! own RSS; and the time from an allocation's placement on the servers to
//! its task's first output (sequential batch allocations; median, p90).
//! Needs root (tasks run in cgroups).

#[path = "../tests/client_support/mod.rs"]
mod client_support;

use std::time::{Duration, Instant};

use client_support::*;
use wren_model::{ClientStatus, JobType, RestartMode};

fn kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss: u64,
    pss: u64,
    private: u64,
}

fn mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Mem {
        rss: kb(&status, "VmRSS:").unwrap_or(0),
        pss: kb(&smaps, "Pss:").unwrap_or(0),
        private: kb(&smaps, "Private_Clean:").unwrap_or(0)
            + kb(&smaps, "Private_Dirty:").unwrap_or(0),
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn sample(pid: u32, settle: Duration, over: Duration) -> (Mem, Mem) {
    std::thread::sleep(settle);
    let mut all = Vec::new();
    let end = Instant::now() + over;
    while Instant::now() < end {
        all.push(mem(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let med = Mem {
        rss: median(all.iter().map(|m| m.rss).collect()),
        pss: median(all.iter().map(|m| m.pss).collect()),
        private: median(all.iter().map(|m| m.private).collect()),
    };
    let max = Mem {
        rss: all.iter().map(|m| m.rss).max().unwrap_or(0),
        pss: all.iter().map(|m| m.pss).max().unwrap_or(0),
        private: all.iter().map(|m| m.private).max().unwrap_or(0),
    };
    (med, max)
}

fn agent_pid(agent: &AgentProc) -> u32 {
    // The newest `wren agent` whose command line names this config.
    let config = agent.config.display().to_string();
    let mut found = None;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" agent ") && cmd.contains(&config) {
            found = Some(found.map_or(pid, |p: u32| p.max(pid)));
        }
    }
    found.expect("the agent's pid")
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("client_idle: needs root (tasks run in cgroups); skipped");
        return;
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = TestDir::new("bench-client-idle");
    let rt = Runtime::new(1);
    let pki = Pki::new(dir.path());
    let fx = Fixture::start(&rt, &pki);
    fx.with(|s| s.ttl = wren_model::Duration::from_secs(10));
    let agent = AgentProc::start(dir.path(), &pki, &[fx.addr], "");
    let reaper = TaskReaper::new();
    let node = fx.node_id(Duration::from_secs(60));
    let pid = agent_pid(&agent);
    let limit = Duration::from_secs(120);

    let (idle0, idle0_max) = sample(pid, Duration::from_secs(3), Duration::from_secs(10));

    let service = job(
        "idle",
        JobType::Service,
        vec![sh_task("t", "while true; do sleep 1; done")],
        restart(3, 1000, RestartMode::Delay),
    );
    let mut ids = Vec::new();
    for i in 0..n {
        let id = fx.place(&service, &node, i as u32);
        reaper.track(&id, &["t"]);
        ids.push(id);
    }
    for id in &ids {
        fx.wait_status(id, ClientStatus::Running, limit);
    }
    let (busy, busy_max) = sample(pid, Duration::from_secs(5), Duration::from_secs(10));

    // The shims: processes running `wren shim` started for these tasks.
    let mut shims = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if cmd.starts_with(WREN.as_bytes()) && String::from_utf8_lossy(&cmd).contains("\0shim") {
            shims.push(mem(p));
        }
    }

    // Start latency: placement on the servers to the task's first output.
    let batch = job(
        "quick",
        JobType::Batch,
        vec![sh_task("t", "echo up")],
        restart(0, 1000, RestartMode::Fail),
    );
    let mut lat = Vec::new();
    for i in 0..20u32 {
        let t0 = Instant::now();
        let id = fx.place(&batch, &node, i);
        reaper.track(&id, &["t"]);
        eventually("first output", limit, || {
            log_text(&agent.alloc_dir(), &id, "t", "stdout")
                .contains("up")
                .then_some(())
        });
        lat.push(t0.elapsed().as_micros() as u64);
        fx.wait_status(&id, ClientStatus::Complete, limit);
    }
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;

    for id in &ids {
        fx.stop(id);
    }
    for id in &ids {
        fx.wait_status(id, ClientStatus::Complete, limit);
    }
    drop(agent);

    println!("| state | RSS median (max) | PSS median | private median |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| idle, no allocation | {} kB ({}) | {} kB | {} kB |",
        idle0.rss, idle0_max.rss, idle0.pss, idle0.private
    );
    println!(
        "| idle, {n} running allocations | {} kB ({}) | {} kB | {} kB |",
        busy.rss, busy_max.rss, busy.pss, busy.private
    );
    let _ = (
        idle0_max.pss,
        busy_max.pss,
        idle0_max.private,
        busy_max.private,
    );
    if !shims.is_empty() {
        println!(
            "\nshims: {} of them, RSS median {} kB, PSS median {} kB, private median {} kB",
            shims.len(),
            median(shims.iter().map(|m| m.rss).collect()),
            median(shims.iter().map(|m| m.pss).collect()),
            median(shims.iter().map(|m| m.private).collect())
        );
    }
    println!(
        "\nplacement to first output, 20 batch allocations: median {:.1} ms, p90 {:.1} ms, min {:.1} ms",
        p(0.5),
        p(0.9),
        p(0.0)
    );
}
