//! Placement throughput: one 10,000-allocation service job with
//! constraints and a datacenter spread, onto 1,000, 5,000 and 10,000
//! heterogeneous nodes, on one core (the scheduler is single-threaded).
//! Reports the median of several runs of `schedule` (state building is not
//! timed), placements per second and the cost per placement.
//!
//! Run: `cargo bench -p wren-sched --bench placement` (optionally
//! `-- --runs 9`).

use std::time::{Duration, Instant};

use wren_model::{
    Constraint, DriverInfo, EvalStatus, Evaluation, Job, JobType, Node, NodeDevice,
    NodeDeviceResource, NodeResources, NodeStatus, Operator, Resources, Spread, SpreadTarget, Task,
    TaskGroup, TriggeredBy,
};
use wren_sched::{MemState, Rng, SchedConfig, schedule};

const DCS: [&str; 4] = ["edge-a", "edge-b", "edge-c", "core"];

/// A mixed fleet: Pis and small x86 boxes, several kernels and sizes,
/// some GPUs and QEMU hosts, 40 racks, 4 datacenters.
fn fleet(n: usize, seed: u64) -> MemState {
    let mut rng = Rng::new(seed);
    let mut state = MemState::new();
    for i in 0..n {
        let arm = rng.below(10) < 6;
        let mem = [2048u64, 4096, 8192, 16_384][rng.below(4) as usize];
        let cores = [4u32, 4, 8, 16][rng.below(4) as usize];
        let mut node = Node {
            id: format!("{:08x}-node-{i}", rng.next_u64() as u32),
            name: format!("node-{i}"),
            datacenter: DCS[rng.below(4) as usize].into(),
            node_pool: "default".into(),
            node_class: if arm { "pi".into() } else { "nuc".into() },
            status: NodeStatus::Ready,
            resources: NodeResources {
                cpu: cores * if arm { 1500 } else { 2500 },
                cores,
                memory_mb: mem,
                disk_mb: 32_000,
                ..NodeResources::default()
            },
            ..Node::default()
        };
        let attrs = &mut node.attributes;
        attrs.insert(
            "cpu.arch".into(),
            if arm { "arm64" } else { "amd64" }.into(),
        );
        attrs.insert("kernel.name".into(), "linux".into());
        attrs.insert(
            "kernel.version".into(),
            ["5.4.0", "5.15.0", "6.1.0", "6.6.0"][rng.below(4) as usize].into(),
        );
        attrs.insert(
            "os.name".into(),
            if rng.below(10) == 0 {
                "alpine"
            } else {
                "debian"
            }
            .into(),
        );
        attrs.insert("unique.hostname".into(), node.name.clone());
        node.meta
            .insert("rack".into(), format!("r{}", rng.below(40)));
        node.drivers.insert(
            "exec".into(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..DriverInfo::default()
            },
        );
        if !arm && rng.below(4) == 0 {
            node.drivers.insert(
                "qemu".into(),
                DriverInfo {
                    detected: true,
                    healthy: true,
                    ..DriverInfo::default()
                },
            );
        }
        if !arm && rng.below(8) == 0 {
            node.resources.devices.push(NodeDeviceResource {
                vendor: "nvidia".into(),
                device_type: "gpu".into(),
                name: "T4".into(),
                instances: vec![NodeDevice {
                    id: format!("gpu-{i}"),
                    healthy: true,
                    ..NodeDevice::default()
                }],
                ..NodeDeviceResource::default()
            });
        }
        state.upsert_node(node);
    }
    state
}

fn job(count: u32, spread: bool) -> Job {
    let mut tg = TaskGroup {
        name: "sensor".into(),
        count,
        tasks: vec![Task {
            name: "collect".into(),
            driver: "exec".into(),
            resources: Resources {
                cpu: 100,
                memory_mb: 128,
                ..Resources::default()
            },
            ..Task::default()
        }],
        ..TaskGroup::default()
    };
    tg.ephemeral_disk.size_mb = 50;
    if spread {
        tg.spreads.push(Spread {
            attribute: "${node.datacenter}".into(),
            weight: 100,
            targets: vec![
                SpreadTarget {
                    value: "edge-a".into(),
                    percent: 40,
                },
                SpreadTarget {
                    value: "edge-b".into(),
                    percent: 30,
                },
                SpreadTarget {
                    value: "edge-c".into(),
                    percent: 20,
                },
                SpreadTarget {
                    value: "core".into(),
                    percent: 10,
                },
            ],
        });
    }
    Job {
        id: "fleet-sensors".into(),
        name: "fleet-sensors".into(),
        datacenters: vec!["*".into()],
        node_pool: "default".into(),
        job_type: JobType::Service,
        priority: 50,
        constraints: vec![
            Constraint::new("${attr.kernel.name}", Operator::Eq, "linux"),
            Constraint::new("${attr.kernel.version}", Operator::Version, ">= 5.10"),
            Constraint::new("${attr.os.name}", Operator::Ne, "alpine"),
        ],
        task_groups: vec![tg],
        ..Job::default()
    }
}

/// CPU time this thread has run, from the scheduler's own accounting
/// (`/proc/thread-self/schedstat`, nanoseconds): on a shared machine it is
/// the "one core" figure, where wall time also counts waiting for a core.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    nodes: usize,
    spread: bool,
    placed: usize,
    wall: Duration,
    cpu: Option<Duration>,
}

fn run(nodes: usize, spread: bool, runs: usize) -> Row {
    run_count(nodes, spread, runs, 10_000)
}

/// Times `runs` samples of `batch` evaluations each (short evaluations are
/// batched so the thread's CPU clock, which advances at scheduler ticks,
/// resolves them); reports the median per evaluation.
fn run_count(nodes: usize, spread: bool, runs: usize, count: u32) -> Row {
    let batch: u32 = if count < 100 { 20 } else { 1 };
    let mut state = fleet(nodes, 7);
    state.register_job(job(count, spread));
    let eval = Evaluation {
        id: "bench-eval".into(),
        priority: 50,
        job_type: JobType::Service,
        triggered_by: TriggeredBy::JobRegister,
        job_id: "fleet-sensors".into(),
        status: EvalStatus::Pending,
        ..Evaluation::default()
    };
    let config = SchedConfig::default();
    let mut times = Vec::with_capacity(runs);
    let mut cpu_times = Vec::with_capacity(runs);
    let mut placed = 0;
    for r in 0..runs {
        let mut outs = Vec::with_capacity(batch as usize);
        let cpu_start = thread_cpu();
        let start = Instant::now();
        for b in 0..batch {
            let seed = u64::from(b) + r as u64 * 1000;
            outs.push(schedule(&state, &eval, 1_000_000_000_000, seed, &config));
        }
        times.push(start.elapsed() / batch);
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu()) {
            cpu_times.push(b.saturating_sub(a) / batch);
        }
        for out in outs {
            placed = out.plan.node_allocation.values().map(Vec::len).sum();
            assert!(out.eval.failed_tg_allocs.is_empty(), "{:?}", out.explain());
            std::hint::black_box(out);
        }
    }
    Row {
        nodes,
        spread,
        placed,
        wall: median(times),
        cpu: (cpu_times.len() == runs).then(|| median(cpu_times)),
    }
}

/// Places the job, commits the plan, then times evaluating it again.
fn rerun(nodes: usize, runs: usize) -> (Duration, Option<Duration>) {
    let mut state = fleet(nodes, 7);
    state.register_job(job(10_000, true));
    let eval = Evaluation {
        id: "bench-eval".into(),
        priority: 50,
        job_type: JobType::Service,
        triggered_by: TriggeredBy::JobRegister,
        job_id: "fleet-sensors".into(),
        status: EvalStatus::Pending,
        ..Evaluation::default()
    };
    let config = SchedConfig::default();
    let out = schedule(&state, &eval, 1_000_000_000_000, 1, &config);
    let verdict = wren_sched::verify::verify_plan(&state, &out.plan);
    assert!(verdict.reasons.is_empty(), "{:?}", verdict.reasons);
    state.apply_plan_result(&verdict.result);
    let mut walls = Vec::with_capacity(runs);
    let mut cpus = Vec::with_capacity(runs);
    for r in 0..runs {
        let cpu_start = thread_cpu();
        let start = Instant::now();
        let again = schedule(&state, &eval, 1_000_000_000_000, r as u64, &config);
        walls.push(start.elapsed());
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu()) {
            cpus.push(b.saturating_sub(a));
        }
        assert!(again.plan.is_no_op(), "nothing to change");
        std::hint::black_box(again);
    }
    let n = cpus.len();
    (median(walls), (n == runs).then(|| median(cpus)))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let runs = flag("--runs").unwrap_or(7).max(1);
    let only = flag("--only");
    if let Some(n) = flag("--rerun-only") {
        let (wall, cpu) = rerun(n, runs);
        println!("re-evaluation on {n} nodes: {wall:?} wall, {cpu:?} cpu");
        return;
    }
    if let Some(n) = flag("--fixed-only") {
        let row = run_count(n, true, runs, 1);
        println!(
            "fixed cost on {n} nodes: {:?} cpu",
            row.cpu.unwrap_or(row.wall)
        );
        return;
    }
    println!(
        "| nodes | spread | placements | median wall | median cpu | placements/s (cpu) | per placement (cpu) |"
    );
    println!("| ---: | :---: | ---: | ---: | ---: | ---: | ---: |");
    for &(nodes, spread) in &[
        (1_000, true),
        (5_000, true),
        (10_000, true),
        (1_000, false),
        (5_000, false),
        (10_000, false),
    ] {
        if only.is_some_and(|o| o != nodes) {
            continue;
        }
        let row = run(nodes, spread, runs);
        let cpu = row.cpu.unwrap_or(row.wall).as_secs_f64();
        println!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {:.0} | {:.2} µs |",
            row.nodes,
            if row.spread { "yes" } else { "no" },
            row.placed,
            row.wall.as_secs_f64() * 1e3,
            cpu * 1e3,
            row.placed as f64 / cpu,
            cpu * 1e6 / row.placed as f64,
        );
    }
    println!("(median of {runs} runs each; one thread; cpu = the thread's own run time)");
    println!();
    println!("Re-evaluating a placed job (nothing to change; reconcile and no-op plan):");
    println!();
    println!("| nodes | allocations | median wall | median cpu |");
    println!("| ---: | ---: | ---: | ---: |");
    for nodes in [1_000, 5_000, 10_000] {
        if only.is_some_and(|o| o != nodes) {
            continue;
        }
        let (wall, cpu) = rerun(nodes, runs);
        println!(
            "| {nodes} | 10000 | {:.1} ms | {:.1} ms |",
            wall.as_secs_f64() * 1e3,
            cpu.unwrap_or(wall).as_secs_f64() * 1e3
        );
    }
    println!();
    println!("Fixed cost of an evaluation (a job of 1, with spread):");
    println!();
    println!("| nodes | median wall | median cpu |");
    println!("| ---: | ---: | ---: |");
    for nodes in [1_000, 5_000, 10_000] {
        if only.is_some_and(|o| o != nodes) {
            continue;
        }
        let row = run_count(nodes, true, runs, 1);
        println!(
            "| {} | {:.2} ms | {:.2} ms |",
            row.nodes,
            row.wall.as_secs_f64() * 1e3,
            row.cpu.unwrap_or(row.wall).as_secs_f64() * 1e3
        );
    }
}
