//! Committed commands per second on a three-server region over the real
//! wire on loopback: each server in this process with its own executor
//! (two threads), data directory and TLS listener, formed through
//! `bootstrap_expect`/`retry_join` like real agents.
//!
//! Scenarios, each with durable storage (fdatasync before Raft is told)
//! and with storage that forces nothing to disk:
//!
//! - one client registering jobs one after another (`POST /v1/jobs`: the
//!   job, validated, plus its evaluation in one Raft entry);
//! - 64 clients, each on its own connection, doing the same concurrently;
//! - one client committing plan-sized entries (a plan result placing 100
//!   allocations, about 15 KB of CBOR) through the servers' internal write
//!   path, as the plan applier's writes are.
//!
//! A command counts when its answer arrived: committed by a quorum and
//! applied on the leader. `cargo bench -p wren-agent --bench region_commit`
//! (`-- --secs S --rounds N`); figures are medians of the rounds.

#[path = "../tests/region_support/mod.rs"]
mod region_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use region_support::InProcRegion;
use wren_agent::api::{JobRegisterRequest, JobRegisterResponse};
use wren_agent::wire::{Client, Method, Role};
use wren_model::{
    AllocatedResources, AllocatedTaskResources, Allocation, Job, Node, NodeStatus, PlanResult,
};
use wren_state::{ApplyPlan, Command, Durability, UpsertNode};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    One,
    Many,
    Plans,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::One => "1 client, job registrations",
            Scenario::Many => "64 clients, job registrations",
            Scenario::Plans => "1 client, plans of 100 allocs",
        }
    }
}

fn job(n: u64) -> Job {
    let text = format!(
        r#"job "bench-{n}" {{
  datacenters = ["dc1"]
  group "web" {{
    count = 3
    task "server" {{
      driver = "exec"
      config {{
        command = "/usr/bin/server"
        args    = ["--port", "8080"]
      }}
      resources {{
        cpu    = 500
        memory = 256
      }}
    }}
  }}
}}
"#
    );
    wren_model::jobspec::parse("bench.hcl", &text).expect("the benchmark's job parses")
}

fn plan(n: u64) -> Command {
    let mut result = PlanResult::default();
    for k in 0..100 {
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
            id: format!("alloc-{}-{k}", n % 10),
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

async fn register(client: &Client, n: u64) {
    register_job(client, job(n)).await;
}

async fn register_job(client: &Client, job: Job) {
    let r: Result<(JobRegisterResponse, _), _> = client
        .send(
            Method::Post,
            "/v1/jobs",
            &JobRegisterRequest {
                job,
                enforce_index: None,
            },
        )
        .await;
    if let Err(e) = r {
        panic!("registering a job failed: {e}");
    }
}

async fn commit_plan(client: &Client, n: u64) {
    let body = wren_model::codec::to_cbor(&plan(n));
    let resp = client
        .request(Method::Post, "/v1/internal/write", &body)
        .await
        .unwrap_or_else(|e| panic!("committing a plan failed: {e}"));
    assert!(
        resp.is_success(),
        "committing a plan failed: {:?}",
        resp.as_error()
    );
}

/// The nodes and the job the plans place allocations for.
fn prepare_plans(region: &InProcRegion) {
    let leader = region.wait_for_leader(Duration::from_secs(30));
    let server = region.client(Role::Server, &[leader]);
    let ex = region.client_executor();
    smol::block_on(ex.run(async {
        for k in 0..10 {
            let node = Node {
                id: format!("node-{k}"),
                name: format!("node-{k}"),
                datacenter: "dc1".into(),
                node_pool: "default".into(),
                status: NodeStatus::Ready,
                ..Node::default()
            };
            let body = wren_model::codec::to_cbor(&Command::UpsertNode(UpsertNode {
                node,
                evals: vec![],
            }));
            let resp = server
                .request(Method::Post, "/v1/internal/write", &body)
                .await
                .expect("registering a node");
            assert!(
                resp.is_success(),
                "registering a node: {:?}",
                resp.as_error()
            );
        }
        let mut web = job(0);
        web.id = "web".into();
        web.name = "web".into();
        register_job(&server, web).await;
    }));
}

/// Runs one scenario for `secs` and returns committed commands per second.
fn round(region: &InProcRegion, scenario: Scenario, secs: f64) -> f64 {
    let leader = region.wait_for_leader(Duration::from_secs(30));
    let ex = region.client_executor();
    let clients: Vec<Client> = match scenario {
        Scenario::One => vec![region.client(Role::Cli, &[leader])],
        Scenario::Many => (0..64)
            .map(|_| region.client(Role::Cli, &[leader]))
            .collect(),
        Scenario::Plans => vec![region.client(Role::Server, &[leader])],
    };
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    // Warm the connections up.
    for c in &clients {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        smol::block_on(ex.run(async {
            match scenario {
                Scenario::Plans => commit_plan(c, n).await,
                _ => register(c, n).await,
            }
        }));
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (done, stop, seq) = (done.clone(), stop.clone(), seq.clone());
            ex.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    match scenario {
                        Scenario::Plans => commit_plan(&c, n).await,
                        _ => register(&c, n).await,
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let committed = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        smol::block_on(ex.run(t));
    }
    committed as f64 / elapsed
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let secs = opt("--secs", 5.0);
    let rounds = opt("--rounds", 5.0) as usize;
    println!(
        "3 servers in one process over the wire on loopback; {rounds} rounds of {secs} s each; \
         commands/s (median, min..max)"
    );
    println!("| scenario | storage | commands/s | min..max |");
    println!("| --- | --- | ---: | ---: |");
    for (durability, label) in [
        (Durability::PowerLoss, "durable (fdatasync)"),
        (Durability::None, "not durable"),
    ] {
        let region = InProcRegion::start("bench", 3, durability);
        prepare_plans(&region);
        for scenario in [Scenario::One, Scenario::Many, Scenario::Plans] {
            let results: Vec<f64> = (0..rounds.max(1))
                .map(|_| round(&region, scenario, secs))
                .collect();
            let (m, lo, hi) = median(results);
            println!(
                "| {} | {label} | {m:.0} | {lo:.0}..{hi:.0} |",
                scenario.label()
            );
        }
        region.stop();
    }
}
