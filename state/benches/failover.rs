//! Time from killing the leader of a three-server cluster to the first
//! write a new leader accepts, with default Raft timings, in one process
//! (in-memory network; the killed server's executor is dropped with all its
//! tasks, like a SIGKILL). The agent repeats this over the real wire.
//!
//! `cargo bench -p wren-state --bench failover [-- --kills N]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Cluster, block_on, register};
use wren_state::WriteError;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kills = args
        .iter()
        .position(|a| a == "--kills")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20usize);
    let mut c = Cluster::with("failover", 3, |config| config.timing.multiplier = 1);
    let mut times = Vec::new();
    for k in 0..kills {
        let leader = c.wait_leader(&c.ids);
        let last = block_on(c.node(leader).write(register(&format!("before-{k}")))).unwrap();
        c.wait_applied(&c.ids, last.index);
        c.kill(leader);
        let killed_at = Instant::now();
        // A client that tries the survivors in turn, following redirects.
        let survivors = c.running();
        let mut target = survivors[0];
        loop {
            match block_on(c.node(target).write(register(&format!("after-{k}")))) {
                Ok(_) => break,
                Err(WriteError::NotLeader { leader: Some(p) }) if survivors.contains(&p.id) => {
                    target = p.id
                }
                Err(_) => {
                    target = survivors[(survivors.iter().position(|&s| s == target).unwrap_or(0)
                        + 1)
                        % survivors.len()];
                    block_on(
                        c.node(target)
                            .wait_for_status(Duration::from_millis(10), |_| false),
                    );
                }
            }
            assert!(
                killed_at.elapsed() < common::PATIENCE,
                "no leader after kill {k}"
            );
        }
        times.push(killed_at.elapsed());
        c.start(leader);
    }
    times.sort();
    println!(
        "kill leader -> first accepted write, {kills} kills: p50 {:?}, p99 {:?}, min {:?}, max {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[0],
        times[times.len() - 1]
    );
}
