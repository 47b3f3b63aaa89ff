//! What the region tests share: a region of real `wren agent` servers in
//! namespaces, finding its leader through `wren operator raft list-peers`,
//! and job writes and reads through the CLI (`job run --detach`, `job
//! inspect`, `job stop --purge --detach`), each job carrying a value in
//! its meta so that a read says which write it saw.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wren_tests::cluster::{AgentId, Cli, CliError, CliOutput, Cluster, ClusterSpec};
use wren_tests::{bin, eventually, require, require_netns};

/// Whether the test can run here: root with namespaces, and a `wren`
/// binary that has the region commands. Skips (or fails under `CI=true`)
/// otherwise.
pub fn can_run(test: &str) -> bool {
    if !require_netns(test) {
        return false;
    }
    let check = bin::wren().map_err(|e| e.to_string()).and_then(|wren| {
        let out = Command::new(wren)
            .args(["operator", "raft", "list-peers", "--help"])
            .output()
            .map_err(|e| format!("running {}: {e}", wren.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err("this wren binary has no `wren operator raft` yet".to_owned())
        }
    });
    require(test, check)
}

/// Starts a region of `servers` servers (every one with `bootstrap_expect`
/// = `servers` and all of them in `retry_join`).
pub fn start(test: &str, servers: usize) -> Cluster {
    let cluster = Cluster::start(test, &ClusterSpec::new(servers, 0))
        .unwrap_or_else(|e| panic!("starting {servers} servers: {e}"));
    wait_for_leader(&cluster, &cluster.servers(), Duration::from_secs(60));
    cluster
}

/// The Raft configuration as one server sees it (`--stale`: its own view).
pub fn peers(cli: &Cli, stale: bool) -> Result<Value, CliError> {
    let mut args = vec!["operator", "raft", "list-peers", "--json"];
    if stale {
        args.push("--stale");
    }
    cli.json(args)
}

/// The leader's address in a `list-peers --json` answer.
pub fn leader_addr(peers: &Value) -> Option<String> {
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["leader"] == true)
        .and_then(|p| p["address"].as_str())
        .map(str::to_owned)
}

/// The agent listening at `addr`.
pub fn agent_at(cluster: &Cluster, addr: &str) -> Option<AgentId> {
    cluster
        .agents()
        .iter()
        .position(|a| a.addr.to_string() == addr)
        .map(AgentId)
}

/// Waits until every server of `among` names the same leader, itself one
/// of `among`, and returns it.
pub fn wait_for_leader(cluster: &Cluster, among: &[AgentId], timeout: Duration) -> AgentId {
    eventually("one leader that every server names", timeout, || {
        let mut seen = None;
        for &s in among {
            let cli = cluster.cli_to(&[s]).timeout(Duration::from_secs(10));
            let p = peers(&cli, true).map_err(|e| e.to_string())?;
            let addr =
                leader_addr(&p).ok_or_else(|| format!("{} knows no leader", name(cluster, s)))?;
            let leader =
                agent_at(cluster, &addr).ok_or_else(|| format!("leader {addr} is no agent"))?;
            if !among.contains(&leader) {
                return Err(format!(
                    "{} names {addr}, outside the group",
                    name(cluster, s)
                ));
            }
            if seen.is_some_and(|l| l != leader) {
                return Err("the servers name different leaders".to_owned());
            }
            seen = Some(leader);
        }
        seen.ok_or_else(|| "no servers".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An agent's name.
pub fn name(cluster: &Cluster, id: AgentId) -> &str {
    &cluster.agent(id).name
}

/// Writes a job file for job `id` carrying `value` in its meta, under
/// `dir`, and returns its path.
pub fn job_file(dir: &Path, id: &str, value: u64) -> PathBuf {
    let path = dir.join(format!("{id}-{value}.hcl"));
    let text = format!(
        r#"job "{id}" {{
  datacenters = ["dc1"]
  meta {{
    v = "{value}"
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
    }}
  }}
}}
"#
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// `wren job run --detach` of job `id` with `value`.
pub fn register(cli: &Cli, dir: &Path, id: &str, value: u64) -> Result<CliOutput, CliError> {
    let file = job_file(dir, id, value);
    cli.output([
        "job".as_ref(),
        "run".as_ref(),
        "--detach".as_ref(),
        file.as_os_str(),
    ])
}

/// `wren job stop --purge --detach`.
pub fn purge(cli: &Cli, id: &str) -> Result<CliOutput, CliError> {
    cli.output(["job", "stop", "--purge", "--detach", id])
}

/// What a read of a job found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// No such job.
    Absent,
    /// The job, with this value.
    Present(u64),
}

/// `wren job inspect` of job `id`: its value, absent, or an error (the
/// command's stderr).
pub fn read(cli: &Cli, id: &str, stale: bool) -> Result<Read, String> {
    let mut args = vec!["job", "inspect", id];
    if stale {
        args.push("--stale");
    }
    let o = cli.output(args).map_err(|e| e.to_string())?;
    if !o.status.success() {
        return if o.stderr.contains("no job with id or prefix") {
            Ok(Read::Absent)
        } else {
            Err(o.stderr.trim().to_owned())
        };
    }
    let job: Value = serde_json::from_str(&o.stdout)
        .map_err(|e| format!("job inspect printed {e}: {}", o.stdout))?;
    if job["id"] != id {
        return Err(format!("asked for job {id}, got {}", job["id"]));
    }
    job["meta"]["v"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .map(Read::Present)
        .ok_or_else(|| format!("job {id} has no value in its meta: {}", o.stdout))
}

/// Whether a failed CLI command said the job does not exist.
pub fn said_not_found(o: &CliOutput) -> bool {
    !o.status.success() && o.stderr.contains("4.04")
}
