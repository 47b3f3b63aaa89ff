//! Committed commands per second on an in-process three-server cluster
//! (in-memory network, each server with its own executor thread and its own
//! sled directory), with power-loss-durable storage and with storage made
//! non-durable, so the cost of durability is visible.
//!
//! Scenarios: one proposer writing small commands one after another; 64
//! proposers writing concurrently; one proposer writing plan-sized entries
//! (a plan result placing 100 allocations, about 30 KB).
//!
//! `cargo bench -p wren-state --bench commit [-- --rounds N --quick]`;
//! prints medians (and min..max) over the rounds.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Cluster, Runner, block_on, job, register};
use wren_model::{
    AllocatedResources, AllocatedTaskResources, Allocation, Node, NodeStatus, PlanResult,
};
use wren_state::{ApplyPlan, Command, Durability, NodeConfig, RegisterJob, UpsertNode};

fn durable(c: &mut NodeConfig) {
    c.durability = Durability::PowerLoss;
    c.timing.multiplier = 1;
}

fn volatile(c: &mut NodeConfig) {
    c.durability = Durability::None;
    c.timing.multiplier = 1;
}

#[derive(Clone, Copy)]
enum Scenario {
    Single,
    Concurrent64,
    Plans,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Single => "1 proposer, small commands",
            Scenario::Concurrent64 => "64 proposers, small commands",
            Scenario::Plans => "1 proposer, plans of 100 allocs",
        }
    }
}

fn node(i: usize) -> Node {
    Node {
        id: format!("node-{i}"),
        name: format!("node-{i}"),
        datacenter: "dc1".into(),
        node_pool: "default".into(),
        status: NodeStatus::Ready,
        ..Node::default()
    }
}

/// A plan placing (or updating in place) 100 allocations; ids repeat every
/// ten plans so the state stays bounded.
fn plan(n: usize) -> Command {
    let mut result = PlanResult::default();
    for k in 0..100 {
        let id = format!("alloc-{}-{k}", n % 10);
        let node_id = format!("node-{}", k % 10);
        let mut tasks = wren_model::VecMap::new();
        tasks.insert(
            "server".to_owned(),
            AllocatedTaskResources {
                cpu: 500,
                memory_mb: 256,
                ..AllocatedTaskResources::default()
            },
        );
        let alloc = Allocation {
            id,
            eval_id: format!("eval-{n}"),
            name: format!("web.web[{k}]"),
            node_id: node_id.clone(),
            node_name: node_id.clone(),
            job_id: "web".into(),
            task_group: "web".into(),
            resources: AllocatedResources {
                tasks,
                disk_mb: 300,
                ports: vec![],
            },
            desired_description: "placed by the benchmark".into(),
            ..Allocation::default()
        };
        result
            .node_allocation
            .entry(node_id)
            .or_default()
            .push(alloc);
    }
    Command::ApplyPlan(ApplyPlan {
        result,
        evals: vec![],
    })
}

/// Runs one round and returns (commands committed, seconds).
fn round(scenario: Scenario, durability: Durability, quick: bool) -> (usize, f64) {
    let configure = match durability {
        Durability::None => volatile,
        _ => durable,
    };
    let c = Cluster::with("bench", 3, configure);
    let leader = c.node(c.wait_leader(&c.ids)).clone();
    let scale = if quick { 4 } else { 1 };
    match scenario {
        Scenario::Single => {
            let n = 400 / scale;
            let start = Instant::now();
            for i in 0..n {
                block_on(leader.write(register(&format!("job-{i}")))).unwrap();
            }
            (n, start.elapsed().as_secs_f64())
        }
        Scenario::Concurrent64 => {
            let per = 40 / scale;
            let client = Runner::new("bench-clients");
            let spawner = client.spawner();
            let start = Instant::now();
            let handles: Vec<_> = (0..64)
                .map(|p| {
                    let leader = leader.clone();
                    spawner.spawn(async move {
                        for i in 0..per {
                            leader
                                .write(register(&format!("job-{p}-{i}")))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                block_on(h).unwrap();
            }
            (64 * per, start.elapsed().as_secs_f64())
        }
        Scenario::Plans => {
            for i in 0..10 {
                let upsert = Command::UpsertNode(UpsertNode {
                    node: node(i),
                    evals: vec![],
                });
                block_on(leader.write(upsert)).unwrap();
            }
            let register = Command::RegisterJob(RegisterJob {
                job: job("web"),
                eval: None,
                enforce_index: None,
            });
            block_on(leader.write(register)).unwrap();
            let n = 100 / scale;
            let plans: Vec<Command> = (0..n).map(plan).collect();
            let start = Instant::now();
            for p in plans {
                block_on(leader.write(p)).unwrap();
            }
            (n, start.elapsed().as_secs_f64())
        }
    }
}

/// Resident set size of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5usize);
    let bytes = wren_model::codec::to_cbor(&wren_state::Proposal {
        issued_at: 0,
        command: plan(0),
    })
    .len();
    println!(
        "plan entry: {bytes} bytes of CBOR; small command: {} bytes",
        {
            wren_model::codec::to_cbor(&wren_state::Proposal {
                issued_at: 0,
                command: register("job-0"),
            })
            .len()
        }
    );
    {
        // What one more server costs once the process has warmed up (sled's
        // globals, the allocator, async-io's reactor): open and elect a
        // single-server cluster next to a running one.
        let _warm = Cluster::new("warm", 1);
        let before = rss_kib();
        let single = Cluster::new("rss", 1);
        single.wait_leader(&single.ids);
        println!(
            "an idle server (open, elected, empty state): {} KiB of RSS beyond a warmed-up process",
            rss_kib().saturating_sub(before)
        );
    }
    println!("| scenario | storage | commands/s (median) | min..max | rounds |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for scenario in [Scenario::Single, Scenario::Concurrent64, Scenario::Plans] {
        for durability in [Durability::PowerLoss, Durability::None] {
            let rates: Vec<f64> = (0..rounds)
                .map(|_| {
                    let (n, secs) = round(scenario, durability, quick);
                    n as f64 / secs.max(1e-9)
                })
                .collect();
            let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rates.iter().copied().fold(0.0, f64::max);
            let storage = match durability {
                Durability::PowerLoss => "durable (fdatasync)",
                _ => "not durable",
            };
            println!(
                "| {} | {storage} | {:.0} | {lo:.0}..{hi:.0} | {rounds} |",
                scenario.name(),
                median(rates)
            );
        }
    }
}
