//! From `wren job run` returning to the task running, on a dev agent (in
//! its own network namespace, like the tests'): N times, a raw_exec
//! service job whose task writes a marker file as its first action; the
//! bench polls for the marker every millisecond from the moment `job run`
//! (watching its evaluation, as a user runs it) returns. Prints min, p50,
//! p90 and max of that latency, and of the whole `job run` plus start.
//!
//! Run with `cargo bench -p wren-tests --bench job_run_latency` (root:
//! network namespaces). `WREN_LATENCY_RUNS` changes N (default 30).

#[path = "../tests/cli_support/mod.rs"]
mod cli_support;

use std::path::Path;
use std::time::{Duration, Instant};

use cli_support::{DevAgent, can_run};

fn job(id: &str, marker: &Path) -> String {
    format!(
        r#"job "{id}" {{
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo $$ > {marker}; exec sleep 3600"]
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
    }}
  }}
}}
"#,
        marker = marker.display()
    )
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}

fn row(name: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {name} | {} | {} | {} | {} |",
        ms(percentile(&v, 0)),
        ms(percentile(&v, 50)),
        ms(percentile(&v, 90)),
        ms(v.last().copied().unwrap_or_default())
    );
}

fn main() {
    let name = "job_run_latency";
    if !can_run(name) {
        return;
    }
    let runs: usize = std::env::var("WREN_LATENCY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dev = DevAgent::start(name);
    // The node must be ready before the first job, as after any start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dev
        .cli
        .json(["node", "status", "--json"])
        .is_ok_and(|n| n[0]["status"] == "ready")
    {
        assert!(
            Instant::now() < deadline,
            "the dev agent's node is not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut after_return = Vec::new();
    let mut whole = Vec::new();
    for i in 0..runs {
        let id = format!("lat{i}");
        let marker = dev.dir.join(format!("marker-{i}"));
        let file = dev.file(&format!("{id}.hcl"), &job(&id, &marker));
        let t0 = Instant::now();
        let o = dev
            .cli
            .output(["job", "run", file.to_str().unwrap()])
            .unwrap();
        let t1 = Instant::now();
        assert!(o.status.success(), "{}\n{}", o.stdout, o.stderr);
        let deadline = t1 + Duration::from_secs(30);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "{id}: no marker after 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        let t2 = Instant::now();
        after_return.push(t2 - t1);
        whole.push(t2 - t0);
    }
    println!(
        "{runs} runs, raw_exec service, dev agent (debug build unless WREN_BIN says otherwise)"
    );
    println!("| measure | min | p50 | p90 | max |");
    println!("| --- | --- | --- | --- | --- |");
    row("job run returns -> task running", after_return);
    row("job run invoked -> task running", whole);
    for i in 0..runs {
        let _ = dev
            .cli
            .output(["job", "stop", "--detach", &format!("lat{i}")]);
    }
    // Wait for the tasks to go before the agent does.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && dev.cli.json(["job", "status", "--json"]).is_ok_and(|v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|j| j["status"] == "running"))
        })
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}
