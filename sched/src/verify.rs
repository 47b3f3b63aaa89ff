//! Plan verification, the pure half of the leader's plan applier: given the
//! newest state and a worker's plan, decide per node what may be committed
//! ([`verify_plan`]); and, on the worker's side, whether a result means
//! re-planning ([`Replan`]).
//!
//! A node's part is accepted when it only stops allocations, or the node
//! still exists, is ready (a disconnected node only takes `unknown`
//! markings), and every allocation left on it after the plan fits: cpu,
//! memory and disk within its allocatable capacity, no core, port or
//! device instance handed out twice, no reserved port used, new device
//! grants on healthy instances. Placements on ineligible or draining nodes
//! are refused; updates of allocations the state has since stopped or
//! moved are stale and refused. Rejected nodes set `refresh_index` so the
//! worker re-plans on a snapshot that includes what changed. An
//! `all_at_once` plan is committed whole or not at all.
//!
//! "Fits" is the scheduler's own count ([`NodeUsage::of_allocs`], which
//! only counts allocations that hold capacity) and comparison
//! ([`crate::usage::Cap::holds`]). The plan's allocations are judged as the
//! state will commit them: an update keeps the client's newer status, so
//! an allocation that finished since the plan was made holds nothing. A
//! part that takes nothing the node had not already given (updates by the
//! servers of allocations it holds, with the same resources) fits whatever
//! the node's capacity is now, even when that shrank below its usage.

use std::collections::HashSet;

use wren_model::{
    Allocation, ClientStatus, DesiredStatus, Eligibility, EvalStatus, Evaluation, JobType, NodeId,
    NodeStatus, Plan, PlanResult, TriggeredBy,
};

use crate::config::max_plan_attempts;
use crate::rng::Rng;
use crate::state::{StateView, committed_client_status};
use crate::usage::{
    Exhausted, NodeUsage, Overlap, holds_capacity, holds_capacity_as, parse_port_ranges,
};

/// Why a node's part of a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The node is gone.
    #[error("node {0} does not exist")]
    NoNode(NodeId),
    /// The node is not ready for placements.
    #[error("node {node} is {status}, not ready for placements")]
    NotReady {
        /// The node.
        node: NodeId,
        /// Its status.
        status: NodeStatus,
    },
    /// The node takes no new work (ineligible or draining).
    #[error("node {0} is not eligible for new allocations")]
    Ineligible(NodeId),
    /// The plan updates an allocation the state has since stopped, moved or
    /// dropped.
    #[error("allocation {alloc} on node {node} changed since the plan was made")]
    Stale {
        /// The node.
        node: NodeId,
        /// The allocation.
        alloc: String,
    },
    /// The allocations after the plan exceed a dimension.
    #[error("node {node} would be over-committed on {dimension}")]
    Overcommitted {
        /// The node.
        node: NodeId,
        /// `cpu`, `memory`, `disk`, `core 3`, `port 8080`, `device <id>`.
        dimension: String,
    },
}

/// The verdict on a plan, with the reason for each rejected node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// What may be committed, and which nodes were refused.
    pub result: PlanResult,
    /// Why each rejected node was refused.
    pub reasons: Vec<Rejection>,
}

/// Verifies `plan` against `state` (the newest state, plus whatever the
/// applier has committed but not yet indexed).
pub fn verify_plan<S: StateView + ?Sized>(state: &S, plan: &Plan) -> Verdict {
    let mut v = Verdict::default();
    for node in plan.nodes() {
        match check_node(state, plan, node) {
            Ok(()) => {
                if let Some(x) = plan.node_update.get(node) {
                    v.result.node_update.insert(node.clone(), x.clone());
                }
                if let Some(x) = plan.node_allocation.get(node) {
                    v.result.node_allocation.insert(node.clone(), x.clone());
                }
                if let Some(x) = plan.node_preemptions.get(node) {
                    v.result.node_preemptions.insert(node.clone(), x.clone());
                }
            }
            Err(r) => {
                v.result.rejected_nodes.push(node.clone());
                v.reasons.push(r);
            }
        }
    }
    if !v.result.rejected_nodes.is_empty() {
        v.result.refresh_index = state.index();
        if plan.all_at_once {
            v.result.node_update.clear();
            v.result.node_allocation.clear();
            v.result.node_preemptions.clear();
            return v;
        }
    }
    v.result.deployment.clone_from(&plan.deployment);
    v.result
        .deployment_updates
        .clone_from(&plan.deployment_updates);
    v
}

/// One allocation a plan puts on a node, as it will be once committed.
struct Judged<'a> {
    alloc: &'a Allocation,
    /// Not in the state yet.
    new: bool,
    /// Holds capacity once committed.
    holds: bool,
    /// Takes more than it held before (new, revived, or resized).
    adds: bool,
}

fn check_node<S: StateView + ?Sized>(state: &S, plan: &Plan, id: &NodeId) -> Result<(), Rejection> {
    let placing = plan.node_allocation.get(id).map_or(&[][..], Vec::as_slice);
    if placing.is_empty() {
        return Ok(());
    }
    let node = state
        .node(id)
        .ok_or_else(|| Rejection::NoNode(id.clone()))?;
    for a in placing {
        if let Some(stored) = state.alloc(&a.id)
            && (stored.node_id != a.node_id || stored.desired_status != DesiredStatus::Run)
        {
            return Err(Rejection::Stale {
                node: id.clone(),
                alloc: a.id.clone(),
            });
        }
    }
    match node.status {
        NodeStatus::Ready => {}
        NodeStatus::Disconnected
            if placing
                .iter()
                .all(|a| a.client_status == ClientStatus::Unknown) =>
        {
            return Ok(());
        }
        status => {
            return Err(Rejection::NotReady {
                node: id.clone(),
                status,
            });
        }
    }
    // Each placement judged as it will be committed (the client's newer
    // status wins over the plan's copy).
    let judged: Vec<Judged<'_>> = placing
        .iter()
        .map(|a| {
            let stored = state.alloc(&a.id);
            let holds = holds_capacity_as(a.desired_status, committed_client_status(a, stored));
            let held_same = stored.is_some_and(|s| holds_capacity(s) && s.resources == a.resources);
            Judged {
                alloc: a,
                new: stored.is_none(),
                holds,
                adds: holds && !held_same,
            }
        })
        .collect();
    let any_new = judged.iter().any(|j| j.new);
    if any_new && (node.eligibility == Eligibility::Ineligible || node.drain.is_some()) {
        return Err(Rejection::Ineligible(id.clone()));
    }
    if !judged.iter().any(|j| j.adds) {
        // Updates by the servers that take nothing the node had not
        // already given: they fit whatever its capacity is now (it may
        // have shrunk under its allocations), as in Nomad.
        return Ok(());
    }
    let removed: HashSet<&str> = plan
        .node_update
        .get(id)
        .into_iter()
        .flatten()
        .chain(plan.node_preemptions.get(id).into_iter().flatten())
        .chain(placing.iter())
        .map(|a| a.id.as_str())
        .collect();
    let over = |dimension: String| Rejection::Overcommitted {
        node: id.clone(),
        dimension,
    };
    let overlap = |o: Overlap| match o {
        Overlap::Core(c) => format!("core {c}"),
        Overlap::Port(p) => format!("port {p}"),
        Overlap::Device(d) => format!("device {d}"),
    };
    // The same count the scheduler makes of a node (`NodeUsage::of_allocs`).
    let mut usage = NodeUsage::of_allocs(
        node,
        state
            .allocs_by_node(id)
            .filter(|a| !removed.contains(a.id.as_str())),
    );
    for j in judged.iter().filter(|j| j.holds) {
        let a = j.alloc;
        usage
            .add(node, &a.resources)
            .map_err(|o| over(overlap(o)))?;
        if j.new {
            for d in a.resources.tasks.values().flat_map(|t| t.devices.iter()) {
                let healthy = node.resources.devices.iter().any(|g| {
                    g.vendor == d.vendor
                        && g.device_type == d.device_type
                        && g.name == d.name
                        && d.device_ids
                            .iter()
                            .all(|id| g.instances.iter().any(|i| &i.id == id && i.healthy))
                });
                if !healthy {
                    return Err(over(format!(
                        "devices {}/{}/{}",
                        d.vendor, d.device_type, d.name
                    )));
                }
            }
        }
    }
    usage.within_capacity(node).map_err(|e| {
        over(match e {
            Exhausted::Cpu => "cpu".into(),
            Exhausted::Memory => "memory".into(),
            Exhausted::Disk => "disk".into(),
            other => format!("{other:?}"),
        })
    })?;
    if let Some(o) = usage.outside_node(node, &parse_port_ranges(&node.reserved.ports)) {
        return Err(over(overlap(o)));
    }
    Ok(())
}

/// What a worker does after its plan was submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Everything was committed: ack the evaluation.
    Done,
    /// Part was refused: wait for a snapshot at least this new and
    /// schedule the evaluation again.
    Retry {
        /// The state index to refresh to.
        refresh_index: u64,
    },
    /// Too many partial commits: give up (see [`Replan::give_up`]).
    GiveUp,
}

/// Counts a worker's attempts at one evaluation (Nomad: 5 for services,
/// 2 for batch).
#[derive(Debug, Clone)]
pub struct Replan {
    attempts: u32,
    max: u32,
}

impl Replan {
    /// A fresh count for a job type.
    pub fn new(job_type: JobType) -> Replan {
        Replan {
            attempts: 0,
            max: max_plan_attempts(job_type),
        }
    }

    /// Decides after a plan was applied.
    pub fn after(&mut self, plan: &Plan, result: &PlanResult) -> Next {
        if result.is_full_commit(plan) {
            return Next::Done;
        }
        self.attempts += 1;
        if self.attempts >= self.max {
            Next::GiveUp
        } else {
            Next::Retry {
                refresh_index: result.refresh_index,
            }
        }
    }

    /// The evaluation marked failed after too many attempts, and the
    /// blocked evaluation that retries it when capacity changes after
    /// `snapshot_index` (the newest state the last plan was judged against:
    /// only a later change can make it fit; with 0, any change ever made
    /// would release it at once and the worker would spin on refusals).
    pub fn give_up(
        &self,
        eval: &Evaluation,
        now: i64,
        seed: u64,
        snapshot_index: u64,
    ) -> (Evaluation, Evaluation) {
        let mut failed = eval.clone();
        failed.status = EvalStatus::Failed;
        failed.status_description = format!("maximum attempts reached ({})", self.max);
        failed.modify_time = now;
        let blocked = Evaluation {
            id: Rng::new(seed).uuid(),
            priority: eval.priority,
            job_type: eval.job_type,
            triggered_by: TriggeredBy::MaxPlanAttempts,
            job_id: eval.job_id.clone(),
            job_modify_index: eval.job_modify_index,
            status: EvalStatus::Blocked,
            status_description: "created after plans kept being refused".into(),
            previous_eval: Some(eval.id.clone()),
            escaped_computed_class: true,
            snapshot_index,
            create_time: now,
            modify_time: now,
            ..Evaluation::default()
        };
        failed.blocked_eval = Some(blocked.id.clone());
        (failed, blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{
        AllocatedDevice, AllocatedPort, AllocatedResources, AllocatedTaskResources, Allocation,
        DrainStrategy, Node, NodeDevice, NodeDeviceResource, VecMap,
    };

    use crate::state::MemState;

    fn node(id: &str) -> Node {
        let mut n = Node {
            id: id.into(),
            status: NodeStatus::Ready,
            ..Node::default()
        };
        n.resources.cpu = 1000;
        n.resources.cores = 2;
        n.resources.memory_mb = 1000;
        n.resources.disk_mb = 1000;
        n.reserved.ports = "22".into();
        n.resources.devices = vec![NodeDeviceResource {
            vendor: "v".into(),
            device_type: "gpu".into(),
            name: "m".into(),
            instances: vec![
                NodeDevice {
                    id: "d0".into(),
                    healthy: true,
                    ..NodeDevice::default()
                },
                NodeDevice {
                    id: "d1".into(),
                    healthy: false,
                    ..NodeDevice::default()
                },
            ],
            ..NodeDeviceResource::default()
        }];
        n
    }

    fn alloc(id: &str, node: &str, mem: u64) -> Allocation {
        Allocation {
            id: id.into(),
            node_id: node.into(),
            job_id: "j".into(),
            resources: AllocatedResources {
                tasks: VecMap::from([(
                    "t".into(),
                    AllocatedTaskResources {
                        cpu: 100,
                        memory_mb: mem,
                        ..Default::default()
                    },
                )]),
                ..Default::default()
            },
            ..Allocation::default()
        }
    }

    fn state() -> MemState {
        let mut s = MemState::new();
        for id in ["a", "b"] {
            s.upsert_node(node(id));
        }
        s.upsert_alloc(alloc("old", "a", 600));
        s
    }

    fn plan(placements: Vec<Allocation>) -> Plan {
        let mut p = Plan::default();
        for a in placements {
            p.node_allocation
                .entry(a.node_id.clone())
                .or_default()
                .push(a);
        }
        p
    }

    #[test]
    fn what_fits_is_committed_and_the_rest_refused() {
        let s = state();
        let p = plan(vec![alloc("x", "a", 500), alloc("y", "b", 500)]);
        let v = verify_plan(&s, &p);
        assert_eq!(v.result.rejected_nodes, vec!["a".to_owned()]);
        assert_eq!(v.result.refresh_index, s.index());
        assert!(v.result.node_allocation.contains_key("b"));
        assert!(
            matches!(&v.reasons[0], Rejection::Overcommitted { dimension, .. } if dimension == "memory")
        );
        let mut all = p.clone();
        all.all_at_once = true;
        let v = verify_plan(&s, &all);
        assert!(v.result.node_allocation.is_empty(), "all or nothing");
        assert_eq!(v.result.rejected_nodes, vec!["a".to_owned()]);
    }

    #[test]
    fn stopping_makes_room_and_stops_always_fit() {
        let s = state();
        let mut p = plan(vec![alloc("x", "a", 500)]);
        let mut stop = alloc("old", "a", 600);
        stop.desired_status = DesiredStatus::Stop;
        p.node_update.insert("a".into(), vec![stop.clone()]);
        let v = verify_plan(&s, &p);
        assert!(v.reasons.is_empty(), "{:?}", v.reasons);
        let mut gone = Plan::default();
        stop.node_id = "ghost".into();
        gone.node_update.insert("ghost".into(), vec![stop]);
        assert!(verify_plan(&s, &gone).reasons.is_empty());
    }

    #[test]
    fn node_state_is_checked() {
        let mut s = state();
        assert_eq!(
            verify_plan(&s, &plan(vec![alloc("x", "ghost", 1)])).reasons,
            vec![Rejection::NoNode("ghost".into())]
        );
        if let Some(n) = s.node_mut("b") {
            n.status = NodeStatus::Down;
        }
        assert!(matches!(
            verify_plan(&s, &plan(vec![alloc("x", "b", 1)])).reasons[..],
            [Rejection::NotReady { .. }]
        ));
        if let Some(n) = s.node_mut("b") {
            n.status = NodeStatus::Disconnected;
        }
        let mut unknown = alloc("x", "b", 1);
        unknown.client_status = ClientStatus::Unknown;
        assert!(
            verify_plan(&s, &plan(vec![unknown])).reasons.is_empty(),
            "marking unknown is fine"
        );
        if let Some(n) = s.node_mut("a") {
            n.drain = Some(DrainStrategy::default());
        }
        assert_eq!(
            verify_plan(&s, &plan(vec![alloc("x", "a", 1)])).reasons,
            vec![Rejection::Ineligible("a".into())]
        );
        let mut update = alloc("old", "a", 600);
        update.job_version = 2;
        assert!(
            verify_plan(&s, &plan(vec![update])).reasons.is_empty(),
            "updates in place are fine"
        );
    }

    #[test]
    fn stale_updates_are_refused() {
        let mut s = state();
        if let Some(a) = s.alloc_mut("old") {
            a.desired_status = DesiredStatus::Stop;
        }
        let v = verify_plan(&s, &plan(vec![alloc("old", "a", 600)]));
        assert!(matches!(v.reasons[..], [Rejection::Stale { .. }]));
    }

    #[test]
    fn ports_cores_and_devices_are_not_handed_out_twice() {
        let mut s = state();
        let mut held = alloc("held", "b", 1);
        held.resources.ports = vec![AllocatedPort {
            value: 8080,
            ..Default::default()
        }];
        if let Some(t) = held.resources.tasks.get_mut("t") {
            t.cores = vec![1];
            t.devices = vec![AllocatedDevice {
                vendor: "v".into(),
                device_type: "gpu".into(),
                name: "m".into(),
                device_ids: vec!["d0".into()],
            }];
        }
        s.upsert_alloc(held.clone());
        let reason = |a: Allocation| verify_plan(&s, &plan(vec![a])).reasons;
        let mut port = alloc("p", "b", 1);
        port.resources.ports = vec![AllocatedPort {
            value: 8080,
            ..Default::default()
        }];
        assert!(
            matches!(&reason(port)[..], [Rejection::Overcommitted { dimension, .. }] if dimension == "port 8080")
        );
        let mut reserved = alloc("r", "b", 1);
        reserved.resources.ports = vec![AllocatedPort {
            value: 22,
            ..Default::default()
        }];
        assert!(
            matches!(&reason(reserved)[..], [Rejection::Overcommitted { dimension, .. }] if dimension == "port 22")
        );
        let mut core = alloc("c", "b", 1);
        if let Some(t) = core.resources.tasks.get_mut("t") {
            t.cores = vec![1];
        }
        assert!(
            matches!(&reason(core)[..], [Rejection::Overcommitted { dimension, .. }] if dimension == "core 1")
        );
        let mut dev = alloc("d", "b", 1);
        if let Some(t) = dev.resources.tasks.get_mut("t") {
            t.devices = held.resources.tasks["t"].devices.clone();
        }
        assert!(
            matches!(&reason(dev.clone())[..], [Rejection::Overcommitted { dimension, .. }] if dimension == "device d0")
        );
        if let Some(t) = dev.resources.tasks.get_mut("t") {
            t.devices[0].device_ids = vec!["d1".into()];
        }
        assert!(
            matches!(&reason(dev)[..], [Rejection::Overcommitted { dimension, .. }] if dimension.starts_with("devices")),
            "d1 is unhealthy"
        );
    }

    #[test]
    fn replanning_after_partial_commits() {
        let s = state();
        let p = plan(vec![alloc("x", "a", 500), alloc("y", "b", 500)]);
        let partial = verify_plan(&s, &p).result;
        let full = verify_plan(&s, &plan(vec![alloc("y", "b", 500)])).result;
        let mut r = Replan::new(JobType::Batch);
        assert_eq!(
            r.after(&plan(vec![alloc("y", "b", 500)]), &full),
            Next::Done
        );
        assert_eq!(
            r.after(&p, &partial),
            Next::Retry {
                refresh_index: s.index()
            }
        );
        assert_eq!(r.after(&p, &partial), Next::GiveUp, "batch: two attempts");
        let eval = Evaluation {
            id: "e".into(),
            job_id: "j".into(),
            ..Evaluation::default()
        };
        let (failed, blocked) = r.give_up(&eval, 5, 1, 42);
        assert_eq!(failed.status, EvalStatus::Failed);
        assert_eq!(failed.blocked_eval.as_ref(), Some(&blocked.id));
        assert_eq!(blocked.status, EvalStatus::Blocked);
        assert_eq!(blocked.triggered_by, TriggeredBy::MaxPlanAttempts);
        assert_eq!(
            blocked.snapshot_index, 42,
            "released only by capacity changes after the refusal"
        );
    }
}
