//! Client mode in-process against the fixture servers, with real raw_exec
//! tasks (shims, cgroups): environment and interpolation, lifecycle order,
//! restart policy, stops, leader tasks, garbage collection.

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use client_support::*;
use wren_agent::client::{ClientMode, ClientOptions};
use wren_agent::config::AgentConfig;
use wren_agent::wire::{Role, Router, Server, Settings};
use wren_model::{ClientStatus, JobType, Lifecycle, LifecycleHook, RestartMode, TaskStatus, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// A client in this process, its listener, and the fixture it talks to.
struct Setup {
    mode: ClientMode,
    listener: Arc<Server>,
    fx: Fixture,
    _pki: Pki,
    reaper: TaskReaper,
    dir: TestDir,
    _rt: Runtime,
}

impl Setup {
    fn new(test: &str, tweak: impl FnOnce(&mut AgentConfig)) -> Setup {
        let dir = TestDir::new(test);
        let rt = Runtime::new(2);
        let pki = Pki::new(dir.path());
        let fx = Fixture::start(&rt, &pki);
        let mut config = AgentConfig {
            data_dir: Some(dir.path().join("data")),
            name: Some("c1".into()),
            ..AgentConfig::default()
        };
        config.client.enabled = true;
        config.client.servers = vec![fx.addr.to_string()];
        config.plugins.insert(
            "raw_exec".into(),
            Value::Map([("enabled".to_owned(), Value::Bool(true))].into()),
        );
        tweak(&mut config);
        let tls = pki.material(Role::Client);
        let data_dir = dir.path().join("data");
        let (mode, listener) = rt.block_on(async {
            let mut router = Router::new();
            let mode = ClientMode::open(
                &config,
                &data_dir,
                &tls,
                rt.ex.clone(),
                &mut router,
                ClientOptions {
                    shim: Some(vec![WREN.into(), "shim".into()]),
                    cgroup_parent: None,
                },
            )
            .await
            .expect("client mode opens");
            let listener = Arc::new(
                Server::bind(
                    "127.0.0.1:0".parse().unwrap(),
                    &tls,
                    router,
                    Settings::default(),
                    rt.ex.clone(),
                )
                .expect("client listener"),
            );
            (mode, listener)
        });
        let addr = listener.local_addr().unwrap();
        let l = listener.clone();
        rt.ex.spawn(async move { l.run().await }).detach();
        mode.start(addr.to_string());
        Setup {
            mode,
            listener,
            fx,
            _pki: pki,
            reaper: TaskReaper::new(),
            dir,
            _rt: rt,
        }
    }

    fn place(&self, job: &wren_model::Job) -> String {
        let node = self.fx.node_id(LIMIT);
        let id = self.fx.place(job, &node, 0);
        let tasks: Vec<&str> = job.task_groups[0]
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        self.reaper.track(&id, &tasks);
        id
    }

    fn alloc_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data/alloc")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.mode.stop();
        self.listener.shutdown();
    }
}

fn kinds(a: &wren_model::Allocation, task: &str) -> Vec<String> {
    a.task_states
        .get(task)
        .map(|s| s.events.iter().map(|e| e.kind.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_batch_task_runs_to_completion_with_its_environment_and_directories() {
    let name = "a_batch_task_runs_to_completion_with_its_environment_and_directories";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |c| {
        c.client.meta.insert("rack".into(), "r7".into());
    });
    let mut task = sh_task(
        "hello",
        "echo \"id=$WREN_ALLOC_ID nomad=$NOMAD_ALLOC_ID task=$NOMAD_TASK_NAME group=$WREN_GROUP_NAME job=$WREN_JOB_ID index=$NOMAD_ALLOC_INDEX\"; \
         echo \"greeting=$GREETING arch=${ARG}\"; echo \"cpu=$WREN_CPU_LIMIT mem=$NOMAD_MEMORY_LIMIT dc=$WREN_DC region=$NOMAD_REGION\"; \
         test -d \"$NOMAD_TASK_DIR\" && test -d \"$WREN_SECRETS_DIR\" && test -d \"$NOMAD_ALLOC_DIR/data\" && echo dirs-ok; \
         echo oops >&2",
    );
    task.env.insert(
        "GREETING".into(),
        "hello ${node.unique.name} in ${meta.rack}".into(),
    );
    task.env.insert("ARG".into(), "${attr.kernel.name}".into());
    let job = job(
        "hello",
        JobType::Batch,
        vec![task],
        restart(0, 100, RestartMode::Fail),
    );
    let id = s.place(&job);
    let a = s.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    let out = log_text(&s.alloc_dir(), &id, "hello", "stdout");
    assert!(
        out.contains(&format!(
            "id={id} nomad={id} task=hello group=g job=hello index=0"
        )),
        "{out}"
    );
    assert!(out.contains("greeting=hello c1 in r7 arch=linux"), "{out}");
    assert!(out.contains("cpu=100 mem=64 dc=dc1 region=global"), "{out}");
    assert!(out.contains("dirs-ok"), "{out}");
    assert_eq!(log_text(&s.alloc_dir(), &id, "hello", "stderr"), "oops\n");
    let state = &a.task_states["hello"];
    assert_eq!(state.state, TaskStatus::Dead);
    assert!(!state.failed);
    assert_eq!(
        kinds(&a, "hello"),
        [
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    assert!(task_pids(&id, "hello").is_empty(), "nothing left running");
}

#[test]
fn lifecycle_hooks_run_in_order_and_sidecars_are_stopped_with_the_main_tasks() {
    let name = "lifecycle_hooks_run_in_order_and_sidecars_are_stopped_with_the_main_tasks";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |_| {});
    let mark = |what: &str| format!("echo {what} >> \"$NOMAD_ALLOC_DIR/order\"");
    let hook = |hook, sidecar| Some(Lifecycle { hook, sidecar });
    let mut pre = sh_task("pre", &mark("pre"));
    pre.lifecycle = hook(LifecycleHook::Prestart, false);
    let mut side = sh_task(
        "side",
        &format!(
            "{}; trap 'exit 0' TERM; while true; do sleep 0.05; done",
            mark("side")
        ),
    );
    side.lifecycle = hook(LifecycleHook::Prestart, true);
    let main = sh_task(
        "main",
        &format!(
            "test -f \"$NOMAD_ALLOC_DIR/order\" || exit 9; {}; sleep 0.3",
            mark("main")
        ),
    );
    let mut post = sh_task("post", &mark("poststart"));
    post.lifecycle = hook(LifecycleHook::Poststart, false);
    let mut stop = sh_task("stop", &mark("poststop"));
    stop.lifecycle = hook(LifecycleHook::Poststop, false);
    let job = job(
        "life",
        JobType::Batch,
        vec![stop, main, post, side, pre],
        restart(0, 100, RestartMode::Fail),
    );
    let id = s.place(&job);
    let a = s.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    let order = std::fs::read_to_string(s.alloc_dir().join(&id).join("alloc/order")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    let pos = |w: &str| {
        lines
            .iter()
            .position(|l| *l == w)
            .unwrap_or_else(|| panic!("{w} missing from {lines:?}"))
    };
    assert!(pos("pre") < pos("main"), "{lines:?}");
    assert!(pos("side") < pos("main"), "{lines:?}");
    assert!(pos("main") < pos("poststart"), "{lines:?}");
    assert_eq!(lines.last(), Some(&"poststop"), "{lines:?}");
    for t in ["pre", "side", "main", "post", "stop"] {
        assert_eq!(a.task_states[t].state, TaskStatus::Dead, "{t}");
        assert!(!a.task_states[t].failed, "{t}");
    }
    assert!(
        kinds(&a, "side").contains(&"Killed".to_owned()),
        "{:?}",
        kinds(&a, "side")
    );
}

#[test]
fn a_failing_task_is_restarted_per_policy_then_fails_the_allocation() {
    let name = "a_failing_task_is_restarted_per_policy_then_fails_the_allocation";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |_| {});
    let job = job(
        "flaky",
        JobType::Batch,
        vec![sh_task("t", "echo run; exit 3")],
        restart(2, 50, RestartMode::Fail),
    );
    let id = s.place(&job);
    let a = s.fx.wait_status(&id, ClientStatus::Failed, LIMIT);
    let st = &a.task_states["t"];
    assert!(st.failed);
    assert_eq!(st.restarts, 2);
    let last = st.events.last().unwrap();
    assert_eq!(last.kind, "Not Restarting");
    assert!(
        last.message.contains("Exceeded allowed attempts 2"),
        "{}",
        last.message
    );
    assert_eq!(
        log_text(&s.alloc_dir(), &id, "t", "stdout"),
        "run\nrun\nrun\n",
        "three runs: the first and two restarts"
    );
}

#[test]
fn the_servers_stop_a_service_with_its_kill_signal() {
    let name = "the_servers_stop_a_service_with_its_kill_signal";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |_| {});
    let job = job(
        "svc",
        JobType::Service,
        vec![sh_task(
            "web",
            "trap 'echo got-term; exit 0' TERM; echo up; while true; do sleep 0.05; done",
        )],
        restart(3, 100, RestartMode::Delay),
    );
    let id = s.place(&job);
    s.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    eventually("the task to print", LIMIT, || {
        log_text(&s.alloc_dir(), &id, "web", "stdout")
            .contains("up")
            .then_some(())
    });
    s.fx.stop(&id);
    let a = s.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    assert!(log_text(&s.alloc_dir(), &id, "web", "stdout").contains("got-term"));
    let k = kinds(&a, "web");
    assert!(
        k.ends_with(&["Killing".to_owned(), "Killed".to_owned()]),
        "{k:?}"
    );
    assert_eq!(a.task_states["web"].restarts, 0);
    assert!(task_pids(&id, "web").is_empty());
}

#[test]
fn a_dead_leader_stops_its_group() {
    let name = "a_dead_leader_stops_its_group";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |_| {});
    let mut leader = sh_task("leader", "sleep 0.2");
    leader.leader = true;
    let follower = sh_task(
        "follower",
        "trap 'exit 0' TERM; while true; do sleep 0.05; done",
    );
    let job = job(
        "led",
        JobType::Batch,
        vec![leader, follower],
        restart(0, 100, RestartMode::Fail),
    );
    let id = s.place(&job);
    let a = s.fx.wait_status(&id, ClientStatus::Complete, LIMIT);
    assert!(kinds(&a, "follower").contains(&"Killing".to_owned()));
    let killing = a.task_states["follower"]
        .events
        .iter()
        .find(|e| e.kind == "Killing")
        .unwrap();
    assert!(
        killing.message.contains("leader task leader is dead"),
        "{}",
        killing.message
    );
}

#[test]
fn allocations_the_servers_forget_are_stopped_and_collected() {
    let name = "allocations_the_servers_forget_are_stopped_and_collected";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |_| {});
    let job = job(
        "gone",
        JobType::Service,
        vec![sh_task(
            "t",
            "trap 'exit 0' TERM; while true; do sleep 0.05; done",
        )],
        restart(3, 100, RestartMode::Delay),
    );
    let id = s.place(&job);
    s.fx.wait_status(&id, ClientStatus::Running, LIMIT);
    let dir = s.alloc_dir().join(&id);
    assert!(dir.is_dir());
    s.fx.forget(&id);
    eventually("the allocation to be collected", LIMIT, || {
        (!dir.exists() && s.mode.core.alloc(&id).is_none()).then_some(())
    });
    assert!(task_pids(&id, "t").is_empty());
}

#[test]
fn finished_allocations_beyond_gc_max_allocs_are_collected_oldest_first() {
    let name = "finished_allocations_beyond_gc_max_allocs_are_collected_oldest_first";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |c| c.client.gc_max_allocs = 1);
    let job = job(
        "b",
        JobType::Batch,
        vec![sh_task("t", "true")],
        restart(0, 100, RestartMode::Fail),
    );
    let first = s.place(&job);
    s.fx.wait_status(&first, ClientStatus::Complete, LIMIT);
    let second = s.place(&job);
    s.fx.wait_status(&second, ClientStatus::Complete, LIMIT);
    eventually("the older allocation to be collected", LIMIT, || {
        (!s.alloc_dir().join(&first).exists()).then_some(())
    });
    assert!(s.alloc_dir().join(&second).is_dir(), "the newest is kept");
}

#[test]
fn a_burst_of_allocations_all_start_and_tasks_failing_to_start_hold_up_none() {
    let name = "a_burst_of_allocations_all_start_and_tasks_failing_to_start_hold_up_none";
    if !require_root(name) {
        return;
    }
    let s = Setup::new(name, |_| {});
    let node = s.fx.node_id(LIMIT);
    let many = wren_agent::client::STARTS_AT_ONCE;
    // As many allocations as start at once, whose task cannot start and
    // waits a minute before each new attempt.
    let mut broken = sh_task("t", "true");
    broken.config = Value::Map(
        [(
            "command".to_owned(),
            Value::String("/nonexistent/wren-no-such-program".into()),
        )]
        .into(),
    );
    let broken = job(
        "broken",
        JobType::Service,
        vec![broken],
        restart(5, 60_000, RestartMode::Delay),
    );
    let broken: Vec<String> = (0..many)
        .map(|i| s.fx.place(&broken, &node, i as u32))
        .collect();
    for id in &broken {
        eventually(
            "the broken task to wait for its next attempt",
            LIMIT,
            || {
                kinds(&s.fx.alloc(id), "t")
                    .contains(&"Restarting".to_owned())
                    .then_some(())
            },
        );
    }
    // Then more services than start at once: each starts although the
    // broken ones are still waiting, and running ones hold no place.
    let svc = job(
        "svc",
        JobType::Service,
        vec![sh_task(
            "web",
            "trap 'exit 0' TERM; while true; do sleep 0.05; done",
        )],
        restart(0, 100, RestartMode::Fail),
    );
    let started = std::time::Instant::now();
    let services: Vec<String> = (0..many + 4)
        .map(|i| {
            let id = s.fx.place(&svc, &node, i as u32);
            s.reaper.track(&id, &["web"]);
            id
        })
        .collect();
    for id in &services {
        s.fx.wait_status(id, ClientStatus::Running, Duration::from_secs(30));
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the services waited for the broken tasks' restart delay"
    );
    for id in &broken {
        let a = s.fx.alloc(id);
        assert_eq!(a.task_states["t"].state, TaskStatus::Pending, "{id}");
        assert_eq!(a.task_states["t"].restarts, 1, "{id}");
    }
}
