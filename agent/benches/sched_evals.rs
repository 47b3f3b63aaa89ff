//! Evaluations per second through the real scheduling machinery of one
//! server, as a dev agent runs it: jobs registered through the Raft log
//! (durable, fdatasync), the broker fed from the state, workers scheduling
//! on snapshots, the plan applier verifying and committing each plan in
//! its own Raft entry. Nodes are registered over the wire with client
//! certificates and keep heartbeating.
//!
//! `cargo bench -p wren-agent --bench sched_evals [-- --jobs N --nodes N
//! --count N --rounds N]` (release profile). Each round starts a fresh
//! server, registers the nodes, then submits every job at once (from 16
//! threads) and waits until every evaluation is complete; the figure is
//! evaluations (and placements) per second from the first submission to
//! the last completion. Medians of the rounds, for 1 and 2 workers.

#[path = "../tests/sched_support/mod.rs"]
mod sched_support;

use std::time::{Duration, Instant};

use sched_support::{Region, eventually, node, service};
use wren_model::EvalStatus;

struct Args {
    jobs: usize,
    nodes: usize,
    count: u32,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        jobs: 400,
        nodes: 50,
        count: 4,
        rounds: 5,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match (argv[i].as_str(), value) {
            ("--jobs", Some(v)) => a.jobs = v,
            ("--nodes", Some(v)) => a.nodes = v,
            ("--count", Some(v)) => a.count = v as u32,
            ("--rounds", Some(v)) => a.rounds = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

struct Round {
    evals_per_sec: f64,
    placements_per_sec: f64,
    refused: u64,
}

fn round(a: &Args, workers: usize, n: usize) -> Round {
    let region = Region::start(&format!("bench-{workers}-{n}"), 1, |c| {
        c.server.num_schedulers = Some(workers);
    });
    let _nodes: Vec<_> = (0..a.nodes)
        .map(|i| region.add_node(node(&format!("n{i}"), 8000, 16_384)))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..16 {
            let region = &region;
            s.spawn(move || {
                for j in (t..a.jobs).step_by(16) {
                    region.register_job(0, service(&format!("job{j}"), a.count, 100, 64));
                }
            });
        }
    });
    let placed = eventually(
        "every evaluation complete",
        Duration::from_secs(600),
        || {
            let state = region.state();
            let done = state
                .evals()
                .filter(|e| e.status == EvalStatus::Complete)
                .count();
            (done >= a.jobs && state.evals().all(|e| e.status.is_terminal()))
                .then(|| state.allocs().filter(|x| !x.is_terminal()).count())
        },
    );
    let secs = start.elapsed().as_secs_f64();
    let refused = region.srv(0).server.sched.plan_stats().partly_refused;
    Round {
        evals_per_sec: a.jobs as f64 / secs,
        placements_per_sec: placed as f64 / secs,
        refused,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    println!(
        "{} jobs of {} allocations on {} nodes, one server (durable Raft log), {} rounds",
        a.jobs, a.count, a.nodes, a.rounds
    );
    println!(
        "| workers | evals/s (median) | min..max | placements/s (median) | plans partly refused |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for workers in [1, 2] {
        let rounds: Vec<Round> = (0..a.rounds).map(|n| round(&a, workers, n)).collect();
        let evals: Vec<f64> = rounds.iter().map(|r| r.evals_per_sec).collect();
        let lo = evals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = evals.iter().copied().fold(0.0, f64::max);
        let refused: Vec<f64> = rounds.iter().map(|r| r.refused as f64).collect();
        println!(
            "| {workers} | {:.0} | {lo:.0}..{hi:.0} | {:.0} | {:.0} |",
            median(evals),
            median(rounds.iter().map(|r| r.placements_per_sec).collect()),
            median(refused),
        );
    }
}
