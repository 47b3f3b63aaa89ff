//! The edge cases of issue 8 item 3, with a real `wren agent` process in
//! client mode (SIGKILLed and started again like on a device) against the
//! fixture servers, which the tests take down and bring back:
//!
//! - the agent is SIGKILLed and restarted: its tasks keep running and are
//!   found again (same pids, no restart, no new event);
//! - the servers are unreachable: failed tasks keep being restarted per
//!   policy, updates queue and reach the servers when they are back;
//! - a reboot while the servers are unreachable (agent, shims and tasks
//!   killed, the data dir kept): the agent starts its allocations again
//!   from local state without a server;
//! - reconnecting after more than the heartbeat TTL: nothing duplicated,
//!   nothing restarted, the servers' `unknown` overridden;
//! - `disconnect { stop_on_client_after }`: the client stops the
//!   allocation itself.

mod client_support;

use std::time::Duration;

use client_support::*;
use wren_agent::client::localdb::LocalDb;
use wren_model::{ClientStatus, DisconnectStrategy, JobType, RestartMode, TaskStatus};

const LIMIT: Duration = Duration::from_secs(60);

/// The pids a task printed (`pid N` lines), in order.
fn printed_pids(text: &str) -> Vec<i32> {
    text.lines()
        .filter_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
        .collect()
}

const SERVICE: &str =
    "echo \"pid $$\"; trap 'echo usr1' USR1; trap 'exit 0' TERM; while true; do sleep 0.05; done";

fn service_job(id: &str) -> wren_model::Job {
    job(
        id,
        JobType::Service,
        vec![sh_task("web", SERVICE)],
        restart(3, 100, RestartMode::Delay),
    )
}

struct Edge {
    agent: AgentProc,
    fx: Fixture,
    pki: Pki,
    reaper: TaskReaper,
    _dir: TestDir,
    _rt: Runtime,
}

fn setup(test: &str, ttl: Duration) -> Edge {
    let dir = TestDir::new(test);
    let rt = Runtime::new(2);
    let pki = Pki::new(dir.path());
    let fx = Fixture::start(&rt, &pki);
    fx.with(|s| s.ttl = wren_model::Duration(ttl.as_nanos() as u64));
    let agent = AgentProc::start(dir.path(), &pki, &[fx.addr], "");
    Edge {
        agent,
        fx,
        pki,
        reaper: TaskReaper::new(),
        _dir: dir,
        _rt: rt,
    }
}

impl Edge {
    fn place(&self, job: &wren_model::Job) -> String {
        let node = self.fx.node_id(LIMIT);
        let id = self.fx.place(job, &node, 0);
        self.reaper.track(&id, &["web"]);
        id
    }

    fn log(&self, id: &str) -> String {
        log_text(&self.agent.alloc_dir(), id, "web", "stdout")
    }

    /// Waits for the task's `n`th `pid` line and returns that pid.
    fn nth_pid(&self, id: &str, n: usize) -> i32 {
        eventually(&format!("pid line {n} of {id}"), LIMIT, || {
            printed_pids(&self.log(id)).get(n - 1).copied()
        })
    }

    /// Signals the task through the agent (proving the agent holds its
    /// handle) and waits for the task to say so.
    fn signal_through_agent(&self, id: &str) {
        let addr = self.agent.addr(LIMIT);
        let before = self.log(id).matches("usr1").count();
        let out = cli(
            &self.pki,
            &self.fx.addr.to_string(),
            &[
                "alloc", "signal", "-s", "SIGUSR1", "--node", &addr, id, "web",
            ],
        );
        assert!(
            out.status.success(),
            "alloc signal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eventually("the task to get SIGUSR1", LIMIT, || {
            (self.log(id).matches("usr1").count() > before).then_some(())
        });
    }
}

fn started_events(a: &wren_model::Allocation) -> usize {
    a.task_states["web"]
        .events
        .iter()
        .filter(|e| e.kind == "Started")
        .count()
}

#[test]
fn a_sigkilled_agent_finds_its_tasks_again_without_restarting_them() {
    let name = "a_sigkilled_agent_finds_its_tasks_again_without_restarting_them";
    if !require_root(name) {
        return;
    }
    let mut e = setup(name, Duration::from_secs(2));
    let id = e.place(&service_job("web"));
    e.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    let pid = e.nth_pid(&id, 1);

    e.agent.kill();
    assert!(alive(pid), "the task outlives its agent");
    let registrations = e.fx.with(|s| s.registrations);
    e.agent.restart();
    eventually("the restarted agent to register", LIMIT, || {
        (e.fx.with(|s| s.registrations) > registrations).then_some(())
    });
    assert!(e.agent.output().contains("restored 1 allocation(s)"));
    // The new agent holds the task's handle: a signal through it arrives.
    e.signal_through_agent(&id);
    assert!(alive(pid));
    assert_eq!(printed_pids(&e.log(&id)), [pid], "started exactly once");

    // Its full history, as the servers get it when the task stops.
    e.fx.stop(&id);
    let a = e.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    let st = &a.task_states["web"];
    assert_eq!(st.restarts, 0);
    assert_eq!(started_events(&a), 1);
    assert!(
        !st.events.iter().any(|ev| ev.kind == "Restarting"),
        "{:?}",
        st.events
    );
    assert!(!alive(pid));
}

#[test]
fn after_a_reboot_without_servers_the_agent_starts_its_allocations_from_local_state() {
    let name = "after_a_reboot_without_servers_the_agent_starts_its_allocations_from_local_state";
    if !require_root(name) {
        return;
    }
    let mut e = setup(name, Duration::from_secs(2));
    let id = e.place(&service_job("boot"));
    e.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    let first = e.nth_pid(&id, 1);

    // The power goes: servers out of reach, agent, shim and task gone.
    e.fx.down();
    e.agent.kill();
    {
        let db = LocalDb::open(&e.agent.data_dir.join("client/db"), 1 << 20).unwrap();
        let handle = db.handle(&id, "web").unwrap().expect("a kept handle");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(handle.shim_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for pid in task_pids(&id, "web") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    eventually("the task to be gone", LIMIT, || {
        (!alive(first)).then_some(())
    });

    // The node boots; no server answers.
    e.agent.restart();
    let second = e.nth_pid(&id, 2);
    assert_ne!(second, first);
    assert!(alive(second));
    assert!(e.agent.output().contains("restored 1 allocation(s)"));

    // The servers come back and hear what happened.
    e.fx.up();
    let a = eventually("the servers to hear of the restart", LIMIT, || {
        let a = e.fx.alloc(&id);
        a.task_states
            .get("web")
            .is_some_and(|s| {
                s.state == TaskStatus::Running
                    && s.events
                        .iter()
                        .any(|ev| ev.message.contains("lost while the agent was away"))
            })
            .then_some(a)
    });
    assert_eq!(a.client_status, ClientStatus::Running);
    assert_eq!(started_events(&a), 2);
    e.fx.stop(&id);
    e.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
}

#[test]
fn failed_tasks_keep_restarting_while_the_servers_are_unreachable_and_updates_queue() {
    let name = "failed_tasks_keep_restarting_while_the_servers_are_unreachable_and_updates_queue";
    if !require_root(name) {
        return;
    }
    let mut e = setup(name, Duration::from_secs(2));
    let job = job(
        "crashy",
        JobType::Service,
        vec![sh_task("web", "echo \"pid $$\"; sleep 0.2; exit 1")],
        restart(1000, 50, RestartMode::Delay),
    );
    let id = e.place(&job);
    e.nth_pid(&id, 1);
    e.fx.down();
    let runs = printed_pids(&e.log(&id)).len();
    // Three more runs with no server: the policy is applied locally.
    e.nth_pid(&id, runs + 3);
    let seen_by_servers =
        e.fx.alloc(&id)
            .task_states
            .get("web")
            .map_or(0, |s| s.restarts);
    e.fx.up();
    let a = eventually("the queued updates to arrive", LIMIT, || {
        let a = e.fx.alloc(&id);
        let r = a.task_states.get("web").map_or(0, |s| s.restarts);
        (r as usize >= runs + 2).then_some(a)
    });
    assert!(a.task_states["web"].restarts > seen_by_servers);
    e.fx.stop(&id);
    e.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    e.agent.terminate();
}

#[test]
fn reconnecting_after_the_ttl_duplicates_and_restarts_nothing() {
    let name = "reconnecting_after_the_ttl_duplicates_and_restarts_nothing";
    if !require_root(name) {
        return;
    }
    let mut e = setup(name, Duration::from_secs(1));
    let id = e.place(&service_job("steady"));
    e.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    let pid = e.nth_pid(&id, 1);
    let heartbeats = e.fx.with(|s| s.heartbeats);
    eventually("a heartbeat", LIMIT, || {
        (e.fx.with(|s| s.heartbeats) > heartbeats).then_some(())
    });

    e.fx.down();
    eventually("the agent to notice", LIMIT, || {
        e.agent.output().contains("no server answers").then_some(())
    });
    // As the servers do after a missed TTL.
    e.fx.mark_unknown(&id);
    assert!(alive(pid));

    e.fx.up();
    let a = e.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    assert!(alive(pid));
    assert_eq!(
        printed_pids(&e.log(&id)),
        [pid],
        "no second copy, no restart"
    );
    assert_eq!(a.task_states["web"].restarts, 0);
    assert_eq!(started_events(&a), 1);
    assert_eq!(e.fx.with(|s| s.allocs.len()), 1);
    e.signal_through_agent(&id);
    e.fx.stop(&id);
    e.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
}

#[test]
fn stop_on_client_after_stops_allocations_when_the_servers_stay_away() {
    let name = "stop_on_client_after_stops_allocations_when_the_servers_stay_away";
    if !require_root(name) {
        return;
    }
    let mut e = setup(name, Duration::from_secs(1));
    let mut job = service_job("careful");
    job.task_groups[0].disconnect = Some(DisconnectStrategy {
        stop_on_client_after: Some(wren_model::Duration::from_secs(1)),
        ..DisconnectStrategy::default()
    });
    let id = e.place(&job);
    e.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    let pid = e.nth_pid(&id, 1);
    e.fx.down();
    eventually("the client to stop the task", LIMIT, || {
        (!alive(pid)).then_some(())
    });
    e.fx.up();
    let a = e.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    assert!(
        a.client_description.contains("stop_on_client_after"),
        "{}",
        a.client_description
    );
    assert_eq!(printed_pids(&e.log(&id)), [pid], "not started again");
    e.agent.terminate();
}
