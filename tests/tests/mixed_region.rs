//! A mixed-architecture region: one x86_64 server, an aarch64 client
//! (the `wren` binary built for aarch64, run under qemu-user) and an
//! x86_64 client. A batch job constrained to `${attr.cpu.arch} = "arm64"`
//! must land on the aarch64 client only, every task must complete there,
//! and its output must be readable with `wren alloc logs`.
//!
//! Under qemu-user Landlock's syscalls answer ENOSYS and `clone` with
//! namespace flags fails, so the aarch64 node has no sandbox: the job uses
//! `raw_exec`, and the test prints what the node reported about it. Tasks
//! run through `wren shim`, which the agent starts by re-executing its
//! own (aarch64) binary: that needs qemu-aarch64 registered with
//! binfmt_misc (`cross/check` does it; see README "Cross-building").
//!
//! Needs: root and network namespaces; `WREN_AARCH64_BIN`, the aarch64
//! `wren` (`cross/check` builds it and `scripts/test` sets it);
//! `qemu-aarch64-static` with `libc6:arm64` (`cross/install-toolchain`);
//! binfmt_misc for qemu-aarch64. Skipped with the reason when one is
//! missing, except under `CI=true`, where that fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wren_tests::cluster::{Cli, Cluster, ClusterSpec};
use wren_tests::{eventually, require, require_netns};

/// The aarch64 `wren` binary.
const BIN_ENV: &str = "WREN_AARCH64_BIN";
/// How long anything in this test may take: the aarch64 agent is an
/// unoptimised build under emulation, on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(180);
/// The binfmt_misc entry `update-binfmts --enable qemu-aarch64` makes.
const BINFMT: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

/// The aarch64 binary, once it is known to run here with what it needs.
fn aarch64_wren() -> Result<PathBuf, String> {
    let bin = std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "{BIN_ENV} is not set: it names the aarch64 wren binary \
             (cross/check builds it; or `cross/build --debug aarch64-unknown-linux-gnu`)"
            )
        })?;
    if !bin.is_file() {
        return Err(format!("{BIN_ENV}={}: no such file", bin.display()));
    }
    let out = Command::new("qemu-aarch64-static")
        .args(["-L", "/"])
        .arg(&bin)
        .arg("version")
        .output()
        .map_err(|e| {
            format!("qemu-aarch64-static cannot run ({e}): run cross/install-toolchain as root")
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("aarch64") {
        return Err(format!(
            "{} under qemu-aarch64-static: `wren version` said {text:?} (exit {:?}, stderr {:?})",
            bin.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The agent starts each task's shim by re-executing its own binary;
    // the kernel runs an aarch64 executable only through binfmt_misc.
    let entry = std::fs::read_to_string(BINFMT).map_err(|e| {
        format!(
            "{BINFMT}: {e}: qemu-aarch64 is not registered with binfmt_misc, so the aarch64 \
             agent cannot re-execute itself as a task shim (cross/check registers it; by hand: \
             mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; \
             update-binfmts --enable qemu-aarch64)"
        )
    })?;
    if entry.lines().next() != Some("enabled") {
        return Err(format!(
            "{BINFMT} is disabled: update-binfmts --enable qemu-aarch64"
        ));
    }
    Ok(bin)
}

/// Every node the servers know, with its attributes.
fn nodes(cli: &Cli) -> Result<Vec<Value>, String> {
    let stubs = cli
        .json(["node", "status", "--json"])
        .map_err(|e| e.to_string())?;
    let stubs = stubs.as_array().ok_or("node status --json: not a list")?;
    stubs
        .iter()
        .map(|s| {
            let id = s["id"].as_str().ok_or("a node without an id")?;
            let v = cli
                .json(["node", "status", "--json", id])
                .map_err(|e| e.to_string())?;
            Ok(v["node"].clone())
        })
        .collect()
}

/// The node named `name`, once it is registered, ready and fingerprinted.
fn ready_node<'a>(nodes: &'a [Value], name: &str) -> Result<&'a Value, String> {
    let n = nodes
        .iter()
        .find(|n| n["name"] == name)
        .ok_or_else(|| format!("{name} has not registered"))?;
    if n["status"] != "ready" {
        return Err(format!("{name} is {}", n["status"]));
    }
    if n["attributes"]["cpu.arch"].is_null() {
        return Err(format!("{name} has no cpu.arch yet"));
    }
    Ok(n)
}

fn job_file(dir: &Path) -> PathBuf {
    let path = dir.join("mixed.hcl");
    std::fs::write(
        &path,
        r#"job "mixed" {
  type = "batch"

  constraint {
    attribute = "${attr.cpu.arch}"
    value     = "arm64"
  }

  group "probe" {
    count = 2

    task "probe" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"ran for alloc $WREN_ALLOC_ID on node $WREN_NODE_NAME\""]
      }

      resources {
        cpu    = 50
        memory = 16
      }
    }
  }
}
"#,
    )
    .expect("writing the job file");
    path
}

#[test]
fn an_arm64_constraint_places_a_batch_job_on_the_aarch64_client_under_qemu() {
    let name = "an_arm64_constraint_places_a_batch_job_on_the_aarch64_client_under_qemu";
    if !require_netns(name) {
        return;
    }
    let Some(arm_bin) = require_ok(name, aarch64_wren()) else {
        return;
    };

    let spec = ClusterSpec::new(1, 2);
    let mut cluster = Cluster::prepare(name, &spec).expect("preparing the region");
    // c1 is the aarch64 client: the same config, the aarch64 binary, qemu
    // in front of it.
    let arm = cluster.find("c1").expect("c1");
    cluster.respec(arm, |s| {
        s.program(&arm_bin)
            .wrapped("qemu-aarch64-static", ["-L", "/"])
    });
    cluster.start_all().expect("starting the region");
    let cli = cluster.cli().timeout(Duration::from_secs(30));

    let all = eventually("both clients registered and ready", LONG, || {
        let all = nodes(&cli)?;
        ready_node(&all, "c1")?;
        ready_node(&all, "c2")?;
        Ok::<_, String>(all)
    })
    .expect("both clients ready");
    let arm_node = ready_node(&all, "c1").expect("checked above").clone();
    let x86_node = ready_node(&all, "c2").expect("checked above").clone();
    let attrs = &arm_node["attributes"];
    assert_eq!(
        attrs["cpu.arch"], "arm64",
        "c1 (aarch64 under qemu): {attrs}"
    );
    assert_ne!(x86_node["attributes"]["cpu.arch"], "arm64", "c2 (x86_64)");
    println!(
        "{name}: c1 runs the aarch64 wren under qemu-user: cpu.arch = {}, landlock.abi = {}, \
         namespaces pid/mount = {}/{}: Landlock and namespaces are unavailable under \
         qemu-user, so the job uses raw_exec (exec driver: {}); c2 is x86_64 (cpu.arch = {})",
        attrs["cpu.arch"],
        attrs["landlock.abi"],
        attrs["namespaces.pid"],
        attrs["namespaces.mount"],
        arm_node["drivers"]["exec"],
        x86_node["attributes"]["cpu.arch"],
    );
    let arm_id = arm_node["id"].as_str().expect("a node id").to_owned();

    let job = job_file(cluster.dir().path());
    let run = cli
        .output([
            "job",
            "run",
            "--detach",
            job.to_str().expect("a UTF-8 path"),
        ])
        .expect("job run");
    assert!(run.status.success(), "job run: {run:?}");

    let allocs = eventually(
        "both allocations complete on the aarch64 client",
        LONG,
        || {
            let v = cli
                .json(["job", "status", "--json", "mixed"])
                .map_err(|e| e.to_string())?;
            let allocs = v["allocations"]
                .as_array()
                .ok_or_else(|| format!("no allocations in {v}"))?
                .clone();
            if allocs.len() < 2 {
                return Err(format!("{} allocations placed", allocs.len()));
            }
            for a in &allocs {
                // Placement first: a wrong node is a failure, not a wait.
                if a["node_id"] != arm_id.as_str() {
                    return Ok(Err(format!(
                        "allocation {} went to {} ({}), not to the arm64 node c1",
                        a["id"], a["node_name"], a["node_id"]
                    )));
                }
                match a["client_status"].as_str() {
                    Some("complete") => {}
                    Some("failed" | "lost") => {
                        return Ok(Err(format!("allocation {} ended {}", a["id"], a)));
                    }
                    other => return Err(format!("allocation {} is {other:?}", a["id"])),
                }
            }
            Ok(Ok(allocs))
        },
    )
    .expect("the allocations to finish")
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(allocs.len(), 2, "{allocs:?}");

    for a in &allocs {
        let id = a["id"].as_str().expect("an allocation id");
        let logs = cli
            .run(["alloc", "logs", id, "probe"])
            .unwrap_or_else(|e| panic!("alloc logs {id}: {e}"));
        assert_eq!(logs, format!("ran for alloc {id} on node c1\n"));
        println!("{name}: alloc {id} on c1 (arm64): complete, logs: {logs:?}");
    }
}

/// [`require`] for a check that yields a value.
fn require_ok<T>(test: &str, check: Result<T, String>) -> Option<T> {
    match check {
        Ok(v) => Some(v),
        Err(e) => {
            require(test, Err(e));
            None
        }
    }
}
