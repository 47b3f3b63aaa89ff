//! Issue 8's region "Done when", with real processes: three servers and
//! two client agents, each `wren agent` in its own network namespace, jobs
//! submitted with the CLI from an operator namespace. Heartbeat TTLs are
//! cut to about a second so a silent client is noticed quickly.
//!
//! - A client agent SIGKILLed and started again finds its tasks: same
//!   pids, no new `Started` event. A client SIGKILLed for good is marked
//!   `down` after its TTL and its service allocation is replaced on the
//!   other client.
//! - A client cut off for longer than its TTL and then restored (its group
//!   says `disconnect { lost_after }`, so the servers wait for it) loses,
//!   duplicates and restarts nothing. Isolated again and rebooted (agent,
//!   shims and tasks killed), it starts its allocation from local state
//!   without any server; back on the network, the servers see it running
//!   and nothing is duplicated.
//!
//! The tests read a task's pids from its log file in the client's data
//! dir (`pid N` lines: one per start), which needs no network.
//!
//! Needs root, network namespaces and cgroups; skipped without them unless
//! `CI=true`.

mod e2e_support;

use std::path::PathBuf;
use std::time::Duration;

use e2e_support::{alive, have_cgroups, id, live, started_events, task_pids};
use serde_json::Value;
use wren_tests::cluster::{AgentId, Cli, Cluster, ClusterSpec};
use wren_tests::{eventually, require, require_netns};

const LONG: Duration = Duration::from_secs(60);

const SCRIPT: &str = "echo \"pid $$\"; trap 'exit 0' TERM; while true; do sleep 0.2; done";

fn spec() -> ClusterSpec {
    ClusterSpec::new(3, 2).customize(|f| {
        if let Some(s) = f.server.as_mut() {
            s.extra.push_str(
                "min_heartbeat_ttl = \"1s\"\nheartbeat_grace = \"1s\"\nfailover_heartbeat_ttl = \"3s\"\n",
            );
        }
    })
}

fn job(id: &str, disconnect: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["dc1"]
  group "g" {{
    {disconnect}
    task "web" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", {SCRIPT:?}]
      }}
      kill_timeout = "2s"
      resources {{
        cpu    = 50
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

/// Kills whatever is left of the tasks it tracks (their cgroups), so a
/// test leaves no process behind, failed or not.
struct Reaper(std::cell::RefCell<Vec<String>>);

impl Reaper {
    fn track(&self, alloc: &str) {
        self.0.borrow_mut().push(alloc.to_owned());
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let Ok(h) = wren_runtimes::cgroup::Hierarchies::detect() else {
            return;
        };
        for a in self.0.borrow().iter() {
            if let Ok(cg) = h.existing("wren", &format!("{a}.web")) {
                let _ = cg.destroy(Duration::from_secs(5));
            }
        }
    }
}

struct Region {
    cluster: Cluster,
    cli: Cli,
    reaper: Reaper,
}

impl Region {
    fn start(test: &str) -> Region {
        let cluster = Cluster::start(test, &spec()).unwrap();
        let cli = cluster.cli().timeout(Duration::from_secs(15));
        let r = Region {
            cluster,
            cli,
            reaper: Reaper(Default::default()),
        };
        eventually("both clients ready", LONG, || {
            let n = r.nodes()?;
            let ready = n.iter().filter(|n| n["status"] == "ready").count();
            if ready == 2 {
                Ok(())
            } else {
                Err(format!("{n:?}"))
            }
        })
        .unwrap();
        r
    }

    fn nodes(&self) -> Result<Vec<Value>, String> {
        let v = self
            .cli
            .json(["node", "status", "--json"])
            .map_err(|e| e.to_string())?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    fn node_status(&self, name: &str) -> Result<String, String> {
        self.nodes()?
            .into_iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["status"].as_str().map(str::to_owned))
            .ok_or_else(|| format!("no node {name}"))
    }

    fn run(&self, id: &str, disconnect: &str) {
        let file = self.cluster.dir().join(format!("{id}.hcl"));
        std::fs::write(&file, job(id, disconnect)).unwrap();
        let out = self
            .cli
            .run(["job", "run", "--detach", file.to_str().unwrap()])
            .unwrap();
        assert!(out.contains("Evaluation ID"), "{out}");
    }

    fn allocs(&self, job: &str) -> Result<Vec<Value>, String> {
        let v = self
            .cli
            .json(["job", "status", "--json", job])
            .map_err(|e| e.to_string())?;
        Ok(v["allocations"].as_array().cloned().unwrap_or_default())
    }

    fn alloc(&self, alloc: &str) -> Result<Value, String> {
        self.cli
            .json(["alloc", "status", "--json", alloc])
            .map_err(|e| e.to_string())
    }

    /// Waits for the job's one running allocation; returns it and the
    /// client it runs on.
    fn running(&self, job: &str) -> (Value, AgentId) {
        let a = eventually(&format!("{job} running"), LONG, || {
            let all = self.allocs(job)?;
            match live(&all).as_slice() {
                [a] if a["client_status"] == "running" => Ok(a.clone()),
                _ => Err(format!("{all:?}")),
            }
        })
        .unwrap();
        self.reaper.track(&id(&a));
        let on = a["node_name"].as_str().unwrap_or_default();
        let agent = self.cluster.find(on).unwrap_or_else(|| panic!("{a}"));
        (a, agent)
    }

    /// The `pid N` lines the task of `alloc` printed on `client`.
    fn pids(&self, client: AgentId, alloc: &str) -> Vec<i32> {
        let logs = self
            .cluster
            .agent(client)
            .data_dir()
            .join("alloc")
            .join(alloc)
            .join("alloc/logs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("web.stdout."))
            })
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// Waits for the `n`th start of the task and returns its pid.
    fn nth_pid(&self, client: AgentId, alloc: &str, n: usize) -> i32 {
        eventually(&format!("start {n} of {alloc}"), LONG, || {
            let p = self.pids(client, alloc);
            p.get(n - 1).copied().ok_or(format!("pids so far: {p:?}"))
        })
        .unwrap()
    }

    /// The servers' view of the allocation once it is `status` again.
    fn wait_alloc(&self, alloc: &str, status: &str) -> Value {
        eventually(&format!("{alloc} {status}"), LONG, || {
            let a = self.alloc(alloc)?;
            if a["alloc"]["client_status"] == status {
                Ok(a)
            } else {
                Err(format!("{}", a["alloc"]["client_status"]))
            }
        })
        .unwrap()
    }

    fn stop(&self, job: &str) {
        self.cli.run(["job", "stop", job]).unwrap();
        eventually(&format!("{job} stopped"), LONG, || {
            let all = self.allocs(job)?;
            if live(&all).is_empty() {
                Ok(())
            } else {
                Err(format!("{all:?}"))
            }
        })
        .unwrap();
    }
}

fn can_run(test: &str) -> bool {
    require_netns(test) && require(test, have_cgroups())
}

#[test]
fn a_restarted_client_keeps_its_tasks_and_a_killed_one_is_replaced() {
    let test = "a_restarted_client_keeps_its_tasks_and_a_killed_one_is_replaced";
    if !can_run(test) {
        return;
    }
    let mut r = Region::start(test);
    r.run("web", "");
    let (a, x) = r.running("web");
    let alloc = id(&a);
    let pid = r.nth_pid(x, &alloc, 1);
    let name = r.cluster.agent(x).name.clone();

    // The agent-restart case (issue 8, item 3a) against real servers.
    r.cluster.kill(x).unwrap();
    assert!(alive(pid), "the task outlives its agent");
    r.cluster.restart(x).unwrap();
    let proc = r.cluster.agent(x).proc().unwrap();
    proc.wait_for_output("restored 1 allocation(s)", LONG)
        .unwrap();
    eventually("the restarted client to report in", LONG, || {
        let st = r.node_status(&name)?;
        (st == "ready").then_some(()).ok_or(st)
    })
    .unwrap();
    let after = r.wait_alloc(&alloc, "running");
    assert!(alive(pid));
    assert_eq!(r.pids(x, &alloc), [pid], "started exactly once");
    assert_eq!(started_events(&after, "web"), 1, "{after}");
    assert_eq!(after["alloc"]["task_states"]["web"]["restarts"], 0);

    // Killed for good: down after its TTL, the allocation lost and
    // replaced on the other client.
    r.cluster.kill(x).unwrap();
    eventually(&format!("{name} down"), LONG, || {
        let st = r.node_status(&name)?;
        (st == "down").then_some(()).ok_or(st)
    })
    .unwrap();
    let other = r.cluster.clients().into_iter().find(|&c| c != x).unwrap();
    let other_name = r.cluster.agent(other).name.clone();
    let replacement = eventually("a replacement on the other client", LONG, || {
        let all = r.allocs("web")?;
        let lost = all
            .iter()
            .any(|a| a["id"] == alloc.as_str() && a["client_status"] == "lost");
        let new: Vec<Value> = live(&all)
            .into_iter()
            .filter(|a| a["client_status"] == "running")
            .collect();
        match new.as_slice() {
            [n] if lost && n["node_name"] == other_name.as_str() => Ok(n.clone()),
            _ => Err(format!("{all:?}")),
        }
    })
    .unwrap();
    let new = id(&replacement);
    r.reaper.track(&new);
    let new_pid = r.nth_pid(other, &new, 1);
    assert!(alive(new_pid));
    assert!(task_pids(&new, "web").contains(&new_pid));
    r.stop("web");
    eventually("the replacement's task to end", LONG, || {
        (!alive(new_pid)).then_some(()).ok_or("alive")
    })
    .unwrap();
}

#[test]
fn a_client_cut_off_past_its_ttl_or_rebooted_offline_loses_duplicates_and_restarts_nothing() {
    let test =
        "a_client_cut_off_past_its_ttl_or_rebooted_offline_loses_duplicates_and_restarts_nothing";
    if !can_run(test) {
        return;
    }
    let mut r = Region::start(test);
    // The servers wait an hour for a silent client before replacing.
    r.run(
        "steady",
        "disconnect {\n      lost_after = \"1h\"\n      replace    = false\n    }",
    );
    let (a, x) = r.running("steady");
    let alloc = id(&a);
    let pid = r.nth_pid(x, &alloc, 1);
    let name = r.cluster.agent(x).name.clone();
    let host = r.cluster.agent(x).host;

    // Cable pulled for longer than the TTL.
    r.cluster.net().cut(host).unwrap();
    eventually(&format!("{name} disconnected"), LONG, || {
        let st = r.node_status(&name)?;
        (st == "disconnected").then_some(()).ok_or(st)
    })
    .unwrap();
    r.wait_alloc(&alloc, "unknown");
    assert!(alive(pid));
    r.cluster.net().restore(host).unwrap();
    eventually(&format!("{name} ready again"), LONG, || {
        let st = r.node_status(&name)?;
        (st == "ready").then_some(()).ok_or(st)
    })
    .unwrap();
    let back = r.wait_alloc(&alloc, "running");
    assert_eq!(started_events(&back, "web"), 1, "{back}");
    assert_eq!(r.pids(x, &alloc), [pid], "no restart");
    assert!(alive(pid));
    let all = r.allocs("steady").unwrap();
    assert_eq!(live(&all).len(), 1, "nothing duplicated: {all:?}");

    // The offline reboot: isolated, then agent, shim and task killed.
    r.cluster.net().isolate(host).unwrap();
    let restores = r
        .cluster
        .agent(x)
        .proc()
        .unwrap()
        .stderr()
        .matches("restored 1 allocation(s)")
        .count();
    let task = task_pids(&alloc, "web");
    let shims: Vec<i32> = task.iter().filter_map(|&p| parent_shim(p)).collect();
    assert!(!shims.is_empty(), "no shim among the parents of {task:?}");
    r.cluster.kill(x).unwrap();
    for p in shims.iter().chain(&task) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    eventually("the task to be gone", LONG, || {
        (!alive(pid)).then_some(()).ok_or("alive")
    })
    .unwrap();
    r.cluster.restart(x).unwrap();
    let second = r.nth_pid(x, &alloc, 2);
    assert!(alive(second));
    let out = r.cluster.agent(x).proc().unwrap().stderr();
    assert!(
        out.matches("restored 1 allocation(s)").count() > restores,
        "{out}"
    );

    // Back on the network: the servers see it running, once.
    r.cluster.net().heal().unwrap();
    let seen = eventually("the servers to see the restart", LONG, || {
        let a = r.alloc(&alloc)?;
        if a["alloc"]["client_status"] == "running" && started_events(&a, "web") == 2 {
            Ok(a)
        } else {
            Err(format!("{a}"))
        }
    })
    .unwrap();
    assert_eq!(seen["alloc"]["desired_status"], "run");
    let all = r.allocs("steady").unwrap();
    assert_eq!(live(&all).len(), 1, "nothing duplicated: {all:?}");
    assert_eq!(r.pids(x, &alloc), [pid, second]);
    r.stop("steady");
    eventually("the task to end", LONG, || {
        (!alive(second)).then_some(()).ok_or("alive")
    })
    .unwrap();
}

/// The shim that is `pid`'s parent (`wren shim ...`), if it is one.
fn parent_shim(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let ppid: i32 = rest.split_whitespace().nth(1)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    (args.get(1) == Some(&&b"shim"[..])).then_some(ppid)
}
