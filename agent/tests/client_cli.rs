//! The client node's endpoints through the real CLI: `wren alloc status`
//! (from the servers), `alloc logs [-f] [--stderr]`, `alloc signal`,
//! `alloc restart`, `alloc exec` (from the client agent, found through the
//! servers or given with `--node`) and `node status --self`, against a
//! real `wren agent` in client mode.

mod client_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use client_support::*;
use wren_agent::wire::Role;
use wren_model::{ClientStatus, JobType, RestartMode};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_cli_reads_logs_signals_restarts_and_execs_through_the_client_agent() {
    let name = "the_cli_reads_logs_signals_restarts_and_execs_through_the_client_agent";
    if !require_root(name) {
        return;
    }
    let dir = TestDir::new(name);
    let rt = Runtime::new(2);
    let pki = Pki::new(dir.path());
    let fx = Fixture::start(&rt, &pki);
    let agent = AgentProc::start(dir.path(), &pki, &[fx.addr], "");
    let reaper = TaskReaper::new();
    let job = job(
        "chatty",
        JobType::Service,
        vec![sh_task(
            "web",
            "echo \"pid $$\"; echo hello-err >&2; trap 'echo usr1' USR1; trap 'exit 0' TERM; \
             while true; do sleep 0.05; done",
        )],
        restart(3, 50, RestartMode::Delay),
    );
    let node = fx.node_id(LIMIT);
    let id = fx.place(&job, &node, 0);
    reaper.track(&id, &["web"]);
    fx.wait_status(&id, ClientStatus::Running, LIMIT);
    let servers = fx.addr.to_string();
    let node_addr = agent.addr(LIMIT);
    let run = |args: &[&str]| {
        let out = cli(&pki, &servers, args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status, text, err)
    };
    let short = &id[..8];

    // status, from the servers, with a shortened id
    let (st, out, err) = run(&["alloc", "status", short]);
    assert!(st.success(), "{err}");
    assert!(
        out.contains(&format!("ID                  = {id}")),
        "{out}"
    );
    assert!(out.contains("Client Status       = running"), "{out}");
    assert!(out.contains("Task \"web\" is \"running\""), "{out}");
    let (st, out, _) = run(&["alloc", "status", "--json", &id]);
    assert!(st.success());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["alloc"]["id"], id.as_str());

    // logs: the node's address comes from the servers
    let pid_line = eventually("the first output", LIMIT, || {
        let (st, out, _) = run(&["alloc", "logs", short]);
        (st.success() && out.starts_with("pid ")).then_some(out)
    });
    let (st, out, _) = run(&["alloc", "logs", "--stderr", &id, "web"]);
    assert!(st.success());
    assert_eq!(out, "hello-err\n");

    // follow: new output arrives as it is written, and the command ends
    // when the task is gone for good
    let follow_out = dir.path().join("follow.out");
    let mut follow = Command::new(WREN)
        .args(["alloc", "logs", "-f", &id])
        .env_clear()
        .env("WREN_ADDR", &servers)
        .env("WREN_CACERT", pki.ca_file())
        .env("WREN_CLIENT_CERT", pki.cert(Role::Cli))
        .env("WREN_CLIENT_KEY", pki.key(Role::Cli))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&follow_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let followed = || std::fs::read_to_string(&follow_out).unwrap_or_default();
    eventually("logs -f to print what was there", LIMIT, || {
        followed().starts_with(&pid_line).then_some(())
    });

    // signal, straight to the node
    let (st, _, err) = run(&[
        "alloc", "signal", "-s", "SIGUSR1", "--node", &node_addr, &id, "web",
    ]);
    assert!(st.success(), "{err}");
    eventually("logs -f to show the signal's output", LIMIT, || {
        followed().contains("usr1").then_some(())
    });
    let (st, _, err) = run(&["alloc", "signal", "-s", "SIGNOPE", &id]);
    assert!(!st.success());
    assert!(err.contains("SIGNOPE"), "{err}");

    // exec in the task's environment
    let (st, out, err) = run(&[
        "alloc",
        "exec",
        &id,
        "--",
        "/bin/sh",
        "-c",
        "echo $WREN_ALLOC_ID in $(pwd); exit 7",
    ]);
    assert_eq!(st.code(), Some(7), "{err}");
    let task_dir = agent.alloc_dir().join(&id).join("web");
    assert_eq!(out, format!("{id} in {}\n", task_dir.display()));

    // restart: a new process, counted as a restart but not by the policy
    let (st, _, err) = run(&["alloc", "restart", &id]);
    assert!(st.success(), "{err}");
    eventually("the restarted task", LIMIT, || {
        (log_text(&agent.alloc_dir(), &id, "web", "stdout")
            .matches("pid ")
            .count()
            == 2)
            .then_some(())
    });
    let a = eventually("the servers to hear of the restart", LIMIT, || {
        let a = fx.alloc(&id);
        (a.task_states["web"].restarts == 1 && a.client_status == ClientStatus::Running)
            .then_some(a)
    });
    assert!(
        a.task_states["web"]
            .events
            .iter()
            .any(|e| e.kind == "Restart Signaled")
    );

    // node status --self, from the agent itself
    let (st, out, err) = run(&[
        "node",
        "status",
        "--self",
        "--json",
        "--address",
        &node_addr,
    ]);
    assert!(st.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["node"]["id"], node.as_str());
    assert_eq!(v["node"]["name"], "c1");
    assert_eq!(v["connected"], true);
    assert_eq!(v["allocs"][0]["id"], id.as_str());
    let (st, out, _) = run(&["node", "status", "--self", "--address", &node_addr]);
    assert!(st.success());
    assert!(out.contains("Servers      = connected"), "{out}");

    // stopping the allocation ends the follow
    fx.stop(&id);
    fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    let status = eventually("logs -f to end", LIMIT, || follow.try_wait().unwrap());
    assert!(status.success());
}
