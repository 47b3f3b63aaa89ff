//! Two workers planning concurrently against scarce capacity, with the
//! plan verifier serializing their plans: no node is ever over-committed,
//! and every allocation is eventually placed.
//!
//! The "cluster" is a `MemState` (the newest state, as the plan applier
//! sees it) plus an `EvalBroker`. Each worker dequeues an evaluation, takes
//! a snapshot (a clone), schedules, and later submits its plan; a seeded
//! random interleaving decides which worker acts next, so plans are often
//! made on snapshots another worker's commit has made stale.

use std::collections::BTreeMap;

use wren_model::{
    EvalStatus, Evaluation, Job, JobType, Node, NodeResources, Plan, Resources, Task, TaskGroup,
    TriggeredBy,
};
use wren_sched::broker::{BrokerConfig, EvalBroker};
use wren_sched::verify::{Next, Replan, verify_plan};
use wren_sched::{MemState, Outcome, Rng, SchedConfig, StateView, schedule};

mod common;

const S: i64 = 1_000_000_000;
const TYPES: [JobType; 2] = [JobType::Service, JobType::Batch];

fn node(i: usize) -> Node {
    common::ready_node(
        &format!("node-{i:02}"),
        NodeResources {
            cpu: 2000,
            cores: 2,
            memory_mb: 2048,
            disk_mb: 10_000,
            ..NodeResources::default()
        },
        "exec",
    )
}

/// Each allocation takes half a node's memory: two per node.
fn job(id: &str, count: u32) -> Job {
    Job {
        id: id.into(),
        name: id.into(),
        datacenters: vec!["*".into()],
        node_pool: "default".into(),
        priority: 50,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count,
            tasks: vec![Task {
                name: "t".into(),
                driver: "exec".into(),
                resources: Resources {
                    cpu: 200,
                    memory_mb: 1024,
                    ..Resources::default()
                },
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

struct Held {
    eval: Evaluation,
    token: String,
    replan: Replan,
    outcome: Option<Outcome>,
}

struct Cluster {
    state: MemState,
    broker: EvalBroker,
    rng: Rng,
    now: i64,
    rejected_plans: usize,
}

impl Cluster {
    fn new(nodes: usize, seed: u64) -> Cluster {
        let mut state = MemState::new();
        for i in 0..nodes {
            state.upsert_node(node(i));
        }
        let mut broker = EvalBroker::new(BrokerConfig::default(), seed);
        broker.set_enabled(true);
        Cluster {
            state,
            broker,
            rng: Rng::new(seed),
            now: 1_000 * S,
            rejected_plans: 0,
        }
    }

    fn register(&mut self, job: Job, trigger: TriggeredBy) {
        let id = job.id.clone();
        self.state.register_job(job);
        let j = self.state.job(&id).cloned().unwrap_or_default();
        let eval = Evaluation {
            id: self.rng.uuid(),
            priority: j.priority,
            job_type: j.job_type,
            triggered_by: trigger,
            job_id: id,
            job_modify_index: j.job_modify_index,
            status: EvalStatus::Pending,
            create_time: self.now,
            ..Evaluation::default()
        };
        self.state.upsert_eval(eval.clone());
        let stored = self.state.eval(&eval.id).cloned().unwrap_or(eval);
        self.broker.enqueue(stored, self.now);
    }

    /// Every node's allocations fit it.
    fn assert_no_overcommit(&self) {
        for n in self.state.nodes() {
            let (mut cpu, mut mem) = (0u64, 0u64);
            for a in self
                .state
                .allocs_by_node(&n.id)
                .filter(|a| !a.is_terminal())
            {
                let (c, m, _) = a.resources.total();
                cpu += u64::from(c);
                mem += m;
            }
            let cap = n.allocatable();
            assert!(
                cpu <= u64::from(cap.cpu),
                "{} over-committed on cpu: {cpu}",
                n.id
            );
            assert!(
                mem <= cap.memory_mb,
                "{} over-committed on memory: {mem}",
                n.id
            );
        }
    }

    fn running(&self, job: &str) -> usize {
        self.state
            .allocs_by_job(job)
            .filter(|a| !a.is_terminal())
            .count()
    }

    /// One step of one worker: dequeue and plan, submit, or re-plan.
    fn step(&mut self, held: &mut Option<Held>, seed: u64) {
        let Some(h) = held else {
            if let Ok(Some((eval, token))) = self.broker.dequeue(&TYPES, self.now) {
                let snapshot = self.state.clone();
                let outcome = schedule(&snapshot, &eval, self.now, seed, &SchedConfig::default());
                *held = Some(Held {
                    replan: Replan::new(eval.job_type),
                    eval,
                    token,
                    outcome: Some(outcome),
                });
            }
            return;
        };
        let Some(outcome) = h.outcome.take() else {
            // Re-plan on a snapshot at least as new as the refresh index.
            let snapshot = self.state.clone();
            h.outcome = Some(schedule(
                &snapshot,
                &h.eval,
                self.now,
                seed,
                &SchedConfig::default(),
            ));
            return;
        };
        assert!(
            self.broker.holds(&h.eval.id, &h.token),
            "the worker still holds its eval"
        );
        let mut plan: Plan = outcome.plan.clone();
        plan.eval_token = h.token.clone();
        let verdict = verify_plan(&self.state, &plan);
        let index = self.state.apply_plan_result(&verdict.result);
        self.assert_no_overcommit();
        if !verdict.result.rejected_nodes.is_empty() {
            self.rejected_plans += 1;
        }
        match h.replan.after(&plan, &verdict.result) {
            Next::Done => {
                self.state.upsert_eval(outcome.eval.clone());
                for f in &outcome.followups {
                    self.state.upsert_eval(f.clone());
                    self.broker.enqueue(f.clone(), self.now);
                }
                if outcome.eval.status == EvalStatus::Blocked {
                    let token = h.token.clone();
                    self.broker
                        .reblock(outcome.eval.clone(), &token, self.now)
                        .expect("reblock held eval");
                } else {
                    self.broker
                        .ack(&h.eval.id, &h.token)
                        .expect("ack held eval");
                    if let Some(b) = outcome.blocked {
                        self.state.upsert_eval(b.clone());
                        self.broker.block(b, self.now);
                    }
                }
                *held = None;
            }
            Next::Retry { refresh_index } => {
                assert!(
                    refresh_index <= index,
                    "the newest state covers the refresh index"
                );
            }
            Next::GiveUp => {
                let (failed, blocked) =
                    h.replan
                        .give_up(&h.eval, self.now, seed, verdict.result.refresh_index);
                self.state.upsert_eval(failed);
                self.state.upsert_eval(blocked.clone());
                self.broker
                    .ack(&h.eval.id, &h.token)
                    .expect("ack given-up eval");
                self.broker.block(blocked, self.now);
                *held = None;
            }
        }
        // Allocations that end free capacity: blocked evals of the
        // classes they ran on may now fit.
        for stopped in verdict.result.node_update.values().flatten() {
            if let Some(n) = self.state.node(&stopped.node_id) {
                let class = n.computed_class.clone();
                self.broker.unblock(&class, index, self.now);
            }
        }
    }

    /// Runs both workers in a seeded random interleaving until nothing is
    /// left to do; the leader retries failed plans' blocked evals when
    /// idle, as Nomad's periodic unblock of failed evaluations does.
    fn run(&mut self, seed: u64) {
        let mut workers: [Option<Held>; 2] = [None, None];
        let mut placed_at_last_retry = None;
        for round in 0..10_000u64 {
            let w = self.rng.below(2) as usize;
            self.step(&mut workers[w], seed ^ round);
            self.now += S / 10;
            self.broker.tick(self.now);
            let busy = workers.iter().any(Option::is_some) || self.broker.stats().ready > 0;
            if !busy {
                let placed = self.state.allocs().filter(|a| !a.is_terminal()).count();
                if self.broker.stats().blocked == 0 || placed_at_last_retry == Some(placed) {
                    return;
                }
                placed_at_last_retry = Some(placed);
                let index = self.state.index();
                self.broker.unblock_all(index, self.now);
            }
        }
        panic!("workers did not settle");
    }
}

#[test]
fn two_workers_racing_never_overcommit_and_place_everything() {
    let mut conflicts = 0;
    for seed in 1..=20u64 {
        let mut c = Cluster::new(10, seed);
        let jobs: Vec<(String, u32)> = (0..4).map(|j| (format!("job-{j}"), 5)).collect();
        for (id, count) in &jobs {
            c.register(job(id, *count), TriggeredBy::JobRegister);
        }
        // Both workers plan on the same snapshot before either submits.
        let mut w1 = None;
        let mut w2 = None;
        c.step(&mut w1, seed);
        c.step(&mut w2, seed + 1);
        c.step(&mut w1, seed);
        c.step(&mut w2, seed + 1);
        let mut workers = [w1, w2];
        for (i, w) in workers.iter_mut().enumerate() {
            while w.is_some() {
                c.step(w, seed + 10 + i as u64);
            }
        }
        c.run(seed);
        c.assert_no_overcommit();
        for (id, count) in &jobs {
            assert_eq!(
                c.running(id),
                *count as usize,
                "seed {seed}: {id} fully placed"
            );
        }
        if c.rejected_plans > 0 {
            conflicts += 1;
        }
    }
    eprintln!("conflicting plans in {conflicts} of 20 runs");
    assert!(
        conflicts >= 10,
        "the workers raced for the same nodes in only {conflicts} of 20 runs"
    );
}

#[test]
fn scarce_capacity_blocks_then_places_when_capacity_frees() {
    for seed in 1..=10u64 {
        // 10 nodes of 2 slots: 20 slots for 24 allocations.
        let mut c = Cluster::new(10, seed);
        for j in 0..4 {
            c.register(job(&format!("job-{j}"), 6), TriggeredBy::JobRegister);
        }
        c.run(seed);
        c.assert_no_overcommit();
        let placed: usize = (0..4).map(|j| c.running(&format!("job-{j}"))).sum();
        assert_eq!(placed, 20, "seed {seed}: every slot used, nothing more");
        assert!(
            c.broker.stats().blocked > 0,
            "seed {seed}: what did not fit waits, blocked"
        );
        let waiting: BTreeMap<String, usize> = (0..4)
            .map(|j| format!("job-{j}"))
            .filter(|id| c.running(id) < 6)
            .map(|id| {
                let n = c.running(&id);
                (id, n)
            })
            .collect();
        assert!(!waiting.is_empty());
        // Stop a fully placed job: its capacity frees, blocked evals run.
        let done = (0..4)
            .map(|j| format!("job-{j}"))
            .find(|id| c.running(id) == 6)
            .expect("some job was fully placed");
        let mut stopped = c.state.job(&done).cloned().expect("job exists");
        stopped.stop = true;
        c.register(stopped, TriggeredBy::JobDeregister);
        c.run(seed);
        c.assert_no_overcommit();
        assert_eq!(c.running(&done), 0, "seed {seed}: the stopped job is gone");
        for id in waiting.keys() {
            assert_eq!(
                c.running(id),
                6,
                "seed {seed}: {id} placed once capacity freed"
            );
        }
    }
}
