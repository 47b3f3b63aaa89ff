//! Per-task overhead and start latency.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target/runtimes cargo bench -p wren-runtimes --bench shim
//! WREN_BENCH_SHIM="/path/to/wren shim" ...   # measure the real `wren` binary as shim
//! ```
//!
//! - Start latency: `Driver::start` from the call until the shim reports
//!   the task executed (cgroup created, shim spawned and forked, sandbox
//!   entered, `execve` done). exec (full isolation) and raw_exec.
//! - Per-task overhead: the shims of 20 running tasks whose logs are
//!   flowing, from `/proc/<pid>/smaps_rollup`: RSS, PSS and USS
//!   (private clean + private dirty).
//!
//! Needs root, cgroups, Landlock and namespaces (it runs real tasks);
//! prints why and exits otherwise.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wren_model::{Task, Value};
use wren_runtimes::exec::ExecDriver;
use wren_runtimes::host::HostCaps;
use wren_runtimes::raw_exec::RawExecDriver;
use wren_runtimes::{Driver, Runtime, RuntimeConfig, TaskSpec};

const PROBE: &str = env!("CARGO_BIN_EXE_wren-task-probe");
const RUNNING: usize = 20;
const STARTS: usize = 100;

fn spec(root: &Path, n: usize, driver: &str, args: &[&str]) -> TaskSpec {
    let alloc = format!("bench-{}-{n}", std::process::id());
    let alloc_dir = root.join("alloc").join(&alloc);
    let task_dir = alloc_dir.join("t");
    std::fs::create_dir_all(task_dir.join("local")).unwrap();
    for d in [root.join("alloc"), alloc_dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::copy(PROBE, task_dir.join("local/probe")).unwrap();
    let mut config = BTreeMap::new();
    config.insert("command".to_owned(), Value::String("local/probe".into()));
    config.insert(
        "args".to_owned(),
        Value::List(args.iter().map(|a| Value::String(a.to_string())).collect()),
    );
    TaskSpec {
        alloc_id: alloc,
        task: Task {
            name: "t".into(),
            driver: driver.into(),
            config: Value::Map(config),
            ..Task::default()
        },
        resources: wren_model::AllocatedTaskResources {
            cpu: 100,
            memory_mb: 64,
            ..Default::default()
        },
        alloc_dir,
        task_dir,
        ..TaskSpec::default()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn smaps(pid: i32) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kb: u64 = v.trim().trim_end_matches(" kB").trim().parse().ok()?;
            Some((k.trim().to_owned(), kb))
        })
        .collect()
}

/// RSS, PSS, shared and private kB of one process's mappings, grouped by
/// what they map (the binary, each library, heap, stack, anonymous).
fn breakdown(pid: i32) -> Vec<(String, [u64; 4])> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut groups: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = line.split_whitespace().nth(5).unwrap_or("[anon]");
            current = Path::new(name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.to_owned());
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let Ok(kb) = v.trim().trim_end_matches(" kB").trim().parse::<u64>() else {
            continue;
        };
        let slot = match k {
            "Rss" => 0,
            "Pss" => 1,
            "Shared_Clean" | "Shared_Dirty" => 2,
            "Private_Clean" | "Private_Dirty" => 3,
            _ => continue,
        };
        groups.entry(current.clone()).or_default()[slot] += kb;
    }
    let mut v: Vec<(String, [u64; 4])> = groups.into_iter().filter(|(_, s)| s[0] > 0).collect();
    v.sort_by(|a, b| b.1[0].cmp(&a.1[0]));
    v
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn latency(name: &str, driver: &dyn Driver, root: &Path, first: usize, n: usize) {
    let mut ms = Vec::new();
    for i in 0..n {
        let spec = spec(root, first + i, driver.name(), &["sleep"]);
        let t0 = Instant::now();
        let started = driver.start(&spec).unwrap();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        async_io::block_on(driver.stop(&started.handle, "SIGKILL", Duration::ZERO)).unwrap();
        driver.destroy(&started.handle).unwrap();
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "start latency {name:9} n={n:3}  median {:6.2} ms  p90 {:6.2} ms  p99 {:6.2} ms  min {:6.2} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.first().copied().unwrap_or(f64::NAN),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here.
    }
    let caps = HostCaps::detect();
    if !caps.root || caps.cgroups.version().is_none() || caps.landlock_abi.is_none() || !caps.pid_ns
    {
        eprintln!("shim bench: needs root, cgroups, landlock and namespaces; skipping");
        return;
    }
    let root = std::env::temp_dir().join(format!("wren-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shim: Vec<OsString> = match std::env::var("WREN_BENCH_SHIM") {
        Ok(cmd) => cmd.split_whitespace().map(OsString::from).collect(),
        Err(_) => vec![env!("CARGO_BIN_EXE_wren-task-shim").into()],
    };
    println!("shim: {:?}", shim);
    let config = RuntimeConfig {
        shim,
        state_dir: root.join("state"),
        cgroup_parent: "wren-bench".into(),
        policy: Default::default(),
    };
    let rt = Runtime::with_caps(config, caps).unwrap();
    let exec = ExecDriver::new(rt.clone());
    let raw = RawExecDriver::new(rt, true);

    // Overhead: RUNNING tasks printing a line every 100 ms.
    let mut running = Vec::new();
    for i in 0..RUNNING {
        let spec = spec(&root, 10_000 + i, "exec", &["count", "100"]);
        running.push(exec.start(&spec).unwrap().handle);
    }
    let log = root
        .join("alloc")
        .join(format!("bench-{}-{}", std::process::id(), 10_000))
        .join("alloc/logs/t.stdout.0");
    let t0 = Instant::now();
    while std::fs::read_to_string(&log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 10
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rollups: Vec<BTreeMap<String, u64>> = running.iter().map(|h| smaps(h.shim_pid)).collect();
    let field = |k: &str| {
        median(
            rollups
                .iter()
                .map(|r| r.get(k).copied().unwrap_or(0))
                .collect(),
        )
    };
    let uss = median(
        rollups
            .iter()
            .map(|r| {
                r.get("Private_Clean").copied().unwrap_or(0)
                    + r.get("Private_Dirty").copied().unwrap_or(0)
            })
            .collect(),
    );
    println!("per-task shim memory, median of {RUNNING} shims with logs flowing (kB):");
    for k in [
        "Rss",
        "Pss",
        "Pss_Anon",
        "Pss_File",
        "Shared_Clean",
        "Shared_Dirty",
        "Private_Clean",
        "Private_Dirty",
        "Anonymous",
    ] {
        println!("  {k:14} {:6}", field(k));
    }
    println!("  {:14} {:6}", "USS", uss);
    println!("one shim by mapping (kB):       rss    pss shared private");
    for (name, [rss, pss, shared, private]) in breakdown(running[0].shim_pid) {
        println!("  {name:28} {rss:6} {pss:6} {shared:6} {private:6}");
    }
    for h in &running {
        async_io::block_on(exec.stop(h, "SIGKILL", Duration::ZERO)).unwrap();
        exec.destroy(h).unwrap();
    }

    latency("exec", &exec, &root, 0, STARTS);
    latency("raw_exec", &raw, &root, 1_000, STARTS / 2);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir(PathBuf::from("/sys/fs/cgroup/pids/wren-bench"));
}
