//! Multi-step flows: schedule, verify, commit, let time and clients move,
//! schedule again. They check the contract between the scheduler's output
//! and the state's apply rules (`MemState::apply_plan_result`): follow-up
//! evaluations find what they were created for, `unknown` markings and
//! reconnects survive the round trip, drains proceed a batch at a time.

use wren_model::{
    ClientStatus, DisconnectStrategy, DrainStrategy, Duration, EvalStatus, Evaluation, Job,
    JobType, MigrateStrategy, Node, NodeResources, NodeStatus, ReconcileStrategy, ReschedulePolicy,
    Resources, Task, TaskGroup, TaskState, TriggeredBy,
};
use wren_sched::verify::verify_plan;
use wren_sched::{MemState, Outcome, SchedConfig, StateView, schedule};

const S: i64 = 1_000_000_000;

mod common;

fn node(id: &str) -> Node {
    common::ready_node(
        id,
        NodeResources {
            cpu: 4000,
            cores: 4,
            memory_mb: 4096,
            disk_mb: 10_000,
            ..NodeResources::default()
        },
        "exec",
    )
}

fn job(count: u32, edit: impl FnOnce(&mut TaskGroup)) -> Job {
    let mut tg = TaskGroup {
        name: "g".into(),
        count,
        tasks: vec![Task {
            name: "t".into(),
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
    edit(&mut tg);
    Job {
        id: "app".into(),
        name: "app".into(),
        datacenters: vec!["*".into()],
        node_pool: "default".into(),
        job_type: JobType::Service,
        priority: 50,
        task_groups: vec![tg],
        ..Job::default()
    }
}

struct World {
    state: MemState,
    evals: u32,
}

impl World {
    fn new(nodes: &[&str], job: Job) -> World {
        let mut state = MemState::new();
        for n in nodes {
            state.upsert_node(node(n));
        }
        state.register_job(job);
        World { state, evals: 0 }
    }

    fn eval(&mut self, trigger: TriggeredBy) -> Evaluation {
        self.evals += 1;
        Evaluation {
            id: format!("eval-{}", self.evals),
            priority: 50,
            job_type: JobType::Service,
            triggered_by: trigger,
            job_id: "app".into(),
            status: EvalStatus::Pending,
            ..Evaluation::default()
        }
    }

    /// Schedules, verifies and commits; stores the evaluations created.
    fn run(&mut self, eval: &Evaluation, now: i64) -> Outcome {
        let out = schedule(
            &self.state,
            eval,
            now,
            self.evals.into(),
            &SchedConfig::default(),
        );
        let verdict = verify_plan(&self.state, &out.plan);
        assert!(verdict.reasons.is_empty(), "{:?}", verdict.reasons);
        self.state.apply_plan_result(&verdict.result);
        for f in &out.followups {
            self.state.upsert_eval(f.clone());
        }
        out
    }

    fn live(&self) -> Vec<(String, String, ClientStatus)> {
        let mut v: Vec<_> = self
            .state
            .allocs_by_job("app")
            .filter(|a| !a.is_terminal())
            .map(|a| (a.id.clone(), a.node_id.clone(), a.client_status))
            .collect();
        v.sort();
        v
    }

    fn set_client(&mut self, id: &str, status: ClientStatus, at: i64) {
        if let Some(a) = self.state.alloc_mut(id) {
            a.client_status = status;
            a.task_states = wren_model::VecMap::from([(
                "t".to_owned(),
                TaskState {
                    started_at: at - 100 * S,
                    finished_at: if status == ClientStatus::Failed {
                        at
                    } else {
                        0
                    },
                    failed: status == ClientStatus::Failed,
                    ..TaskState::default()
                },
            )]);
        }
    }
}

#[test]
fn a_failure_is_rescheduled_by_its_follow_up_evaluation() {
    let mut w = World::new(
        &["n1", "n2"],
        job(1, |g| {
            g.reschedule = Some(ReschedulePolicy {
                attempts: 3,
                interval: Duration::from_hours(1),
                delay: Duration::from_secs(30),
                ..ReschedulePolicy::default()
            })
        }),
    );
    let first = w.eval(TriggeredBy::JobRegister);
    w.run(&first, 1_000 * S);
    let (id, node, _) = w.live()[0].clone();
    w.set_client(&id, ClientStatus::Failed, 1_010 * S);
    let failed = w.eval(TriggeredBy::AllocFailure);
    let out = w.run(&failed, 1_010 * S);
    assert_eq!(out.followups.len(), 1);
    let follow = out.followups[0].clone();
    assert_eq!(follow.wait_until, 1_040 * S);
    assert_eq!(
        w.state.alloc(&id).and_then(|a| a.followup_eval_id.clone()),
        Some(follow.id.clone()),
        "the failed allocation points at its follow-up"
    );
    // Another evaluation before then changes nothing.
    let early = w.eval(TriggeredBy::NodeUpdate);
    assert!(w.run(&early, 1_020 * S).plan.is_no_op());
    // The follow-up replaces it, away from the node it failed on.
    let out = w.run(&follow, 1_040 * S);
    assert!(out.followups.is_empty());
    let live = w.live();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].1, node);
    let replacement = w.state.alloc(&live[0].0).cloned().unwrap_or_default();
    assert_eq!(
        replacement.previous_allocation.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(replacement.reschedule_tracker.len(), 1);
    assert_eq!(
        w.state.alloc(&id).and_then(|a| a.next_allocation.clone()),
        Some(replacement.id.clone())
    );
}

#[test]
fn a_disconnected_allocation_is_lost_after_its_timeout() {
    let mut w = World::new(
        &["n1", "n2"],
        job(1, |g| {
            g.disconnect = Some(DisconnectStrategy {
                lost_after: Duration::from_secs(60),
                replace: false,
                ..DisconnectStrategy::default()
            })
        }),
    );
    let first = w.eval(TriggeredBy::JobRegister);
    w.run(&first, 1_000 * S);
    let (id, node, _) = w.live()[0].clone();
    w.set_client(&id, ClientStatus::Running, 1_050 * S);
    if let Some(n) = w.state.node_mut(&node) {
        n.status = NodeStatus::Disconnected;
    }
    let missed = w.eval(TriggeredBy::NodeUpdate);
    let out = w.run(&missed, 1_100 * S);
    assert_eq!(
        w.live(),
        vec![(id.clone(), node.clone(), ClientStatus::Unknown)]
    );
    let timeout = out.followups[0].clone();
    assert_eq!(timeout.triggered_by, TriggeredBy::MaxDisconnectTimeout);
    assert_eq!(timeout.wait_until, 1_160 * S);
    let meanwhile = w.eval(TriggeredBy::NodeUpdate);
    assert!(
        w.run(&meanwhile, 1_130 * S).plan.is_no_op(),
        "still within lost_after"
    );
    w.run(&timeout, 1_160 * S);
    let live = w.live();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].0, id);
    assert_eq!(
        w.state.alloc(&id).map(|a| a.client_status),
        Some(ClientStatus::Lost)
    );
}

#[test]
fn a_reconnect_keeps_the_original_and_stops_the_replacement() {
    let mut w = World::new(
        &["n1", "n2"],
        job(1, |g| {
            g.disconnect = Some(DisconnectStrategy {
                lost_after: Duration::from_mins(10),
                replace: true,
                reconcile: ReconcileStrategy::KeepOriginal,
                ..DisconnectStrategy::default()
            })
        }),
    );
    let first = w.eval(TriggeredBy::JobRegister);
    w.run(&first, 1_000 * S);
    let (original, node, _) = w.live()[0].clone();
    w.set_client(&original, ClientStatus::Running, 1_050 * S);
    if let Some(n) = w.state.node_mut(&node) {
        n.status = NodeStatus::Disconnected;
    }
    let missed = w.eval(TriggeredBy::NodeUpdate);
    w.run(&missed, 1_100 * S);
    assert_eq!(
        w.live().len(),
        2,
        "the unknown original and its replacement"
    );
    // The node comes back and its client reports the original running.
    if let Some(n) = w.state.node_mut(&node) {
        n.status = NodeStatus::Ready;
    }
    w.set_client(&original, ClientStatus::Running, 1_200 * S);
    let back = w.eval(TriggeredBy::Reconnect);
    w.run(&back, 1_200 * S);
    let live = w.live();
    assert_eq!(live, vec![(original.clone(), node, ClientStatus::Running)]);
    assert_eq!(
        w.state.alloc(&original).and_then(|a| a.disconnected_at),
        None
    );
    let again = w.eval(TriggeredBy::NodeUpdate);
    assert!(w.run(&again, 1_300 * S).plan.is_no_op(), "settled");
}

#[test]
fn a_drain_moves_one_allocation_at_a_time() {
    let mut w = World::new(
        &["old"],
        job(3, |g| {
            g.migrate = Some(MigrateStrategy {
                max_parallel: 1,
                ..MigrateStrategy::default()
            })
        }),
    );
    let first = w.eval(TriggeredBy::JobRegister);
    w.run(&first, 1_000 * S);
    assert!(w.live().iter().all(|(_, n, _)| n == "old"));
    w.state.upsert_node(node("new"));
    if let Some(n) = w.state.node_mut("old") {
        n.drain = Some(DrainStrategy {
            deadline: Duration::from_hours(1),
            ..DrainStrategy::default()
        });
    }
    let mut now = 1_100 * S;
    for step in 1..=3 {
        let e = w.eval(TriggeredBy::NodeDrain);
        w.run(&e, now);
        let live = w.live();
        let moved: Vec<_> = live.iter().filter(|(_, n, _)| n == "new").collect();
        assert_eq!(moved.len(), step, "step {step}: {live:?}");
        assert_eq!(live.len(), 3);
        // Nothing more moves until the replacement runs.
        let wait = w.eval(TriggeredBy::NodeDrain);
        assert!(w.run(&wait, now).plan.is_no_op(), "step {step}");
        for (id, n, status) in &live {
            if n == "new" && *status == ClientStatus::Pending {
                w.set_client(id, ClientStatus::Running, now);
            }
        }
        now += 10 * S;
    }
    assert!(w.live().iter().all(|(_, n, _)| n == "new"));
}
