//! The scheduler and the plan verifier agree on what fits a node's disk
//! (the footprint benchmark's livelock: every plan refused "over-committed
//! on disk" while the scheduler kept proposing it).
//!
//! One node whose disk is the scarce dimension, batch jobs of 2 MB
//! allocations, as in `scripts/bench-footprint`. Each plan is made on the
//! state and verified against the same state, so any refusal is a
//! disagreement between the two, never a race.

use wren_model::{
    Allocation, ClientStatus, DelayFunction, Duration, EphemeralDisk, EvalStatus, Evaluation, Job,
    JobType, Node, NodeResources, Plan, ReschedulePolicy, Resources, Task, TaskGroup, TriggeredBy,
};
use wren_sched::broker::{BrokerConfig, EvalBroker};
use wren_sched::verify::{Next, Replan, verify_plan};
use wren_sched::{MemState, Outcome, Rng, SchedConfig, StateView, schedule};

mod common;

const S: i64 = 1_000_000_000;

fn node(disk_mb: u64) -> Node {
    common::ready_node(
        "n1",
        NodeResources {
            cpu: 4000,
            cores: 2,
            memory_mb: 8192,
            disk_mb,
            ..NodeResources::default()
        },
        "raw_exec",
    )
}

/// A batch job of `count` allocations of 2 MB disk each; a failed one is
/// rescheduled a minute later (a follow-up evaluation, recorded on it by
/// an update in the plan).
fn job(id: &str, count: u32) -> Job {
    Job {
        id: id.into(),
        name: id.into(),
        job_type: JobType::Batch,
        datacenters: vec!["dc1".into()],
        node_pool: "default".into(),
        priority: 50,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count,
            ephemeral_disk: EphemeralDisk {
                size_mb: 2,
                ..EphemeralDisk::default()
            },
            reschedule: Some(ReschedulePolicy {
                attempts: 1,
                interval: Duration::from_hours(24),
                delay: Duration::from_secs(60),
                delay_function: DelayFunction::Constant,
                ..ReschedulePolicy::default()
            }),
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                resources: Resources {
                    cpu: 1,
                    memory_mb: 10,
                    ..Resources::default()
                },
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

struct Region {
    state: MemState,
    rng: Rng,
    now: i64,
}

impl Region {
    fn new(disk_mb: u64) -> Region {
        let mut state = MemState::new();
        state.upsert_node(node(disk_mb));
        Region {
            state,
            rng: Rng::new(7),
            now: 1_000 * S,
        }
    }

    fn eval(&mut self, job: &str, trigger: TriggeredBy) -> Evaluation {
        let e = Evaluation {
            id: self.rng.uuid(),
            priority: 50,
            job_type: JobType::Batch,
            triggered_by: trigger,
            job_id: job.into(),
            status: EvalStatus::Pending,
            create_time: self.now,
            ..Evaluation::default()
        };
        self.state.upsert_eval(e.clone());
        e
    }

    /// Schedules an evaluation and verifies the plan against the state it
    /// was made on; commits what was accepted. Returns the outcome and the
    /// verifier's reasons (empty: the two agree).
    fn run(&mut self, job: &str, trigger: TriggeredBy) -> (Outcome, Vec<String>) {
        let e = self.eval(job, trigger);
        self.now += S;
        let seed = self.rng.next_u64();
        let out = schedule(&self.state, &e, self.now, seed, &SchedConfig::default());
        let verdict = verify_plan(&self.state, &out.plan);
        self.state.apply_plan_result(&verdict.result);
        let reasons = verdict.reasons.iter().map(ToString::to_string).collect();
        (out, reasons)
    }

    fn register(&mut self, job: Job) -> (Outcome, Vec<String>) {
        let id = job.id.clone();
        self.state.register_job(job);
        self.run(&id, TriggeredBy::JobRegister)
    }

    fn live(&self, job: &str) -> Vec<Allocation> {
        self.state
            .allocs_by_job(job)
            .filter(|a| !a.is_terminal())
            .cloned()
            .collect()
    }

    /// The client reports allocations finished.
    fn finish(&mut self, allocs: &[Allocation], status: ClientStatus) {
        for a in allocs {
            if let Some(stored) = self.state.alloc_mut(&a.id) {
                stored.client_status = status;
            }
        }
    }

    /// The node registers again with another disk capacity.
    fn set_disk(&mut self, disk_mb: u64) {
        self.state.upsert_node(node(disk_mb));
    }

    fn used_disk(&self) -> u64 {
        self.state
            .allocs_by_node("n1")
            .filter(|a| !a.is_terminal())
            .map(|a| a.resources.disk_mb)
            .sum()
    }
}

fn placed(out: &Outcome) -> usize {
    out.plan.node_allocation.values().flatten().count()
}

#[test]
fn a_failed_allocation_waiting_for_its_reschedule_holds_no_disk() {
    // 20 slots of 2 MB.
    let mut r = Region::new(40);
    assert!(r.register(job("a", 10)).1.is_empty());
    let failed = r.live("a")[..1].to_vec();
    r.finish(&failed, ClientStatus::Failed);
    // Another job takes every free slot, the failed one's included.
    let (out, reasons) = r.register(job("b", 11));
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(placed(&out), 11);
    assert_eq!(r.used_disk(), 40, "the node is full");
    // The failure's evaluation records its follow-up on the failed
    // allocation: an update the verifier must not count as 2 MB more.
    let (out, reasons) = r.run("a", TriggeredBy::AllocFailure);
    assert_eq!(out.followups.len(), 1, "the reschedule waits a minute");
    assert!(
        reasons.is_empty(),
        "scheduler and verifier disagree: {reasons:?}"
    );
    let stored = r.state.alloc(&failed[0].id).expect("the failed allocation");
    assert!(
        stored.followup_eval_id.is_some(),
        "the update was committed"
    );
}

#[test]
fn an_update_made_before_the_client_finished_holds_nothing() {
    let mut r = Region::new(40);
    assert!(r.register(job("a", 10)).1.is_empty());
    assert!(r.register(job("b", 9)).1.is_empty());
    // A plan made while `a`'s first allocation ran: it updates that
    // allocation (as a reconnect or a follow-up would) and takes the
    // node's last free slot.
    let running = r.live("a")[0].clone();
    let mut update = running.clone();
    update.client_status = ClientStatus::Running;
    update.followup_eval_id = Some("f".into());
    let mut new = r.live("b")[0].clone();
    new.id = "new".into();
    new.name = "b.g[9]".into();
    let mut plan = Plan {
        eval_id: "e".into(),
        job_id: "b".into(),
        ..Plan::default()
    };
    plan.node_allocation
        .insert("n1".into(), vec![update.clone(), new.clone()]);
    // Before it is verified, the client reports the allocation complete
    // and a third job takes the slot that freed.
    r.finish(&[running], ClientStatus::Complete);
    assert!(r.register(job("c", 1)).1.is_empty());
    assert_eq!(r.used_disk(), 38);
    // The update keeps the client's newer status when committed: it holds
    // nothing, and the new allocation fits exactly.
    let verdict = verify_plan(&r.state, &plan);
    assert!(verdict.reasons.is_empty(), "{:?}", verdict.reasons);
    r.state.apply_plan_result(&verdict.result);
    assert_eq!(r.used_disk(), 40);
    // One more would not fit, and the verifier says so.
    let mut more = new;
    more.id = "more".into();
    plan.node_allocation.insert("n1".into(), vec![more]);
    let verdict = verify_plan(&r.state, &plan);
    assert_eq!(
        verdict
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["node n1 would be over-committed on disk"]
    );
}

#[test]
fn a_disk_that_shrank_below_its_usage_is_full_and_the_evaluation_blocks() {
    let mut r = Region::new(40);
    assert!(r.register(job("a", 10)).1.is_empty());
    assert!(r.register(job("b", 10)).1.is_empty());
    assert_eq!(r.used_disk(), 40);
    // The node registers again: its file system has less free space now.
    r.set_disk(30);
    let (out, reasons) = r.register(job("c", 10));
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(placed(&out), 0, "a full node takes nothing");
    assert_eq!(out.eval.status, EvalStatus::Complete);
    let blocked = out.blocked.expect("what did not fit waits, blocked");
    assert_eq!(blocked.status, EvalStatus::Blocked);
    let exhausted = &out.eval.failed_tg_allocs["g"].dimension_exhausted;
    assert_eq!(exhausted.get("disk"), Some(&1), "{exhausted:?}");
    // An allocation of `a` fails: recording its follow-up is an update
    // that takes nothing, so it fits although the node is over its
    // (shrunk) capacity.
    let failed = r.live("a")[..1].to_vec();
    r.finish(&failed, ClientStatus::Failed);
    let (out, reasons) = r.run("a", TriggeredBy::AllocFailure);
    assert!(
        reasons.is_empty(),
        "scheduler and verifier disagree: {reasons:?}"
    );
    assert_eq!(out.followups.len(), 1);
    // Still 38 MB on 30: `c` still blocks, and nothing is refused.
    let (out, reasons) = r.run("c", TriggeredBy::QueuedAllocs);
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(placed(&out), 0);
    assert!(out.blocked.is_some() || out.eval.status == EvalStatus::Blocked);
    // `a` and `b` complete: `c` fits in what is left.
    let done: Vec<Allocation> = r.live("a").into_iter().chain(r.live("b")).collect();
    r.finish(&done, ClientStatus::Complete);
    let (out, reasons) = r.run("c", TriggeredBy::QueuedAllocs);
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(placed(&out), 10);
    assert_eq!(r.used_disk(), 20);
}

#[test]
fn a_given_up_evaluation_waits_for_a_capacity_change_after_its_refusal() {
    let mut broker = EvalBroker::new(BrokerConfig::default(), 1);
    broker.set_enabled(true);
    let now = 1_000 * S;
    // Allocations ended long ago (index 5).
    broker.unblock("v1:0000000000000001", 5, now);
    let eval = Evaluation {
        id: "e".into(),
        job_id: "a".into(),
        job_type: JobType::Batch,
        ..Evaluation::default()
    };
    let refused = wren_model::PlanResult {
        rejected_nodes: vec!["n1".into()],
        refresh_index: 9,
        ..Default::default()
    };
    let mut plan = Plan::default();
    plan.node_allocation
        .insert("n1".into(), vec![Allocation::default()]);
    let mut replan = Replan::new(JobType::Batch);
    assert!(matches!(replan.after(&plan, &refused), Next::Retry { .. }));
    assert_eq!(replan.after(&plan, &refused), Next::GiveUp);
    let (_, blocked) = replan.give_up(&eval, now, 3, refused.refresh_index);
    broker.block(blocked, now);
    assert_eq!(
        broker.stats().blocked,
        1,
        "a change before the refusal does not release it (no spinning)"
    );
    assert_eq!(broker.stats().ready, 0);
    broker.unblock("v1:0000000000000001", 10, now);
    assert_eq!(broker.stats().ready, 1, "a later change does");
}
