//! The scheduler's view of the replicated state: [`wren_sched::StateView`]
//! over a [`wren_state::State`] snapshot.
//!
//! A newtype because neither the trait nor the state is the agent's. The
//! snapshot is owned (an O(1) clone of persistent maps), so a view stays
//! consistent however long the scheduler takes.

use std::ops::Deref;

use wren_model::{Allocation, Deployment, Evaluation, Job, Node};
use wren_sched::StateView;
use wren_state::State;

/// A state snapshot the scheduler can read.
#[derive(Debug, Clone)]
pub struct View(pub State);

impl Deref for View {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl StateView for View {
    fn index(&self) -> u64 {
        self.0.index()
    }

    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.0.nodes().map(|n| &**n))
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.0.node(id).map(|n| &**n)
    }

    fn job(&self, id: &str) -> Option<&Job> {
        self.0.job(id).map(|j| &**j)
    }

    fn job_version(&self, id: &str, version: u64) -> Option<&Job> {
        self.0.job_version(id, version).map(|j| &**j)
    }

    fn alloc(&self, id: &str) -> Option<&Allocation> {
        self.0.alloc(id).map(|a| &**a)
    }

    fn allocs_by_job(&self, job_id: &str) -> Box<dyn Iterator<Item = &Allocation> + '_> {
        Box::new(self.0.allocs_by_job(job_id).map(|a| &**a))
    }

    fn allocs_by_node(&self, node_id: &str) -> Box<dyn Iterator<Item = &Allocation> + '_> {
        Box::new(self.0.allocs_by_node(node_id).map(|a| &**a))
    }

    fn latest_deployment(&self, job_id: &str) -> Option<&Deployment> {
        self.0.latest_deployment(job_id).map(|d| &**d)
    }

    fn evals(&self) -> Box<dyn Iterator<Item = &Evaluation> + '_> {
        Box::new(self.0.evals().map(|e| &**e))
    }

    fn evals_by_job(&self, job_id: &str) -> Box<dyn Iterator<Item = &Evaluation> + '_> {
        Box::new(self.0.evals_by_job(job_id).map(|e| &**e))
    }
}

#[cfg(test)]
mod tests {
    //! The replicated state and the scheduler's reference store
    //! (`MemState`) must agree: the same nodes, job and scheduling
    //! outcomes committed to both leave the same allocations, so the
    //! scheduler's multi-step behaviour (replacements, reconnects) holds
    //! in the product.

    use std::collections::BTreeMap;

    use wren_model::{
        ClientStatus, EvalStatus, Evaluation, Job, JobType, Node, NodeStatus, Resources, Task,
        TaskGroup, TriggeredBy,
    };
    use wren_sched::{MemState, SchedConfig, StateView, schedule};
    use wren_state::{
        ApplyPlan, Command, Proposal, RegisterJob, State, UpdateAllocsFromClient, UpdateNodeStatus,
        UpsertNode,
    };

    use super::View;

    const T0: i64 = 1_700_000_000_000_000_000;

    fn node(id: &str) -> Node {
        let mut n = Node {
            id: id.into(),
            name: id.into(),
            datacenter: "dc1".into(),
            node_pool: "default".into(),
            status: NodeStatus::Ready,
            ..Node::default()
        };
        n.resources.cpu = 4000;
        n.resources.memory_mb = 4096;
        n.resources.disk_mb = 10_000;
        n.drivers.insert(
            "raw_exec".into(),
            wren_model::DriverInfo {
                detected: true,
                healthy: true,
                ..Default::default()
            },
        );
        n
    }

    fn job() -> Job {
        Job {
            id: "web".into(),
            name: "web".into(),
            job_type: JobType::Service,
            datacenters: vec!["dc1".into()],
            node_pool: "default".into(),
            priority: 50,
            task_groups: vec![TaskGroup {
                name: "g".into(),
                count: 3,
                tasks: vec![Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    resources: Resources {
                        cpu: 500,
                        memory_mb: 256,
                        ..Resources::default()
                    },
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        }
    }

    fn eval(id: &str, trigger: TriggeredBy) -> Evaluation {
        Evaluation {
            id: id.into(),
            job_id: "web".into(),
            job_type: JobType::Service,
            priority: 50,
            triggered_by: trigger,
            status: EvalStatus::Pending,
            ..Evaluation::default()
        }
    }

    /// Both stores, changed in step.
    struct Both {
        state: State,
        mem: MemState,
        now: i64,
    }

    impl Both {
        fn apply(&mut self, c: Command) {
            let index = self.state.index() + 1;
            self.now += 1_000_000_000;
            self.state
                .apply(
                    index,
                    Proposal {
                        issued_at: self.now,
                        command: c,
                    },
                )
                .unwrap();
        }

        fn add_node(&mut self, n: Node) {
            self.mem.upsert_node(n.clone());
            self.apply(Command::UpsertNode(UpsertNode {
                node: n,
                evals: vec![],
            }));
        }

        fn set_status(&mut self, id: &str, status: NodeStatus) {
            if let Some(n) = self.mem.node_mut(id) {
                n.status = status;
            }
            self.apply(Command::UpdateNodeStatus(UpdateNodeStatus {
                node_id: id.into(),
                status,
                description: String::new(),
                evals: vec![],
            }));
        }

        /// Schedules `e` on each store and commits each outcome to its own
        /// store; both must make the same decisions.
        fn schedule(&mut self, e: &Evaluation) {
            let config = SchedConfig::default();
            // Ids come from the seed: a new seed per evaluation.
            let seed = self.state.index();
            let on_mem = schedule(&self.mem, e, self.now, seed, &config);
            let view = View(self.state.clone());
            let on_state = schedule(&view, e, self.now, seed, &config);
            assert_eq!(
                shape(&on_mem.plan),
                shape(&on_state.plan),
                "same view, same plan"
            );
            let result = wren_model::PlanResult {
                node_update: on_state.plan.node_update.clone(),
                node_allocation: on_state.plan.node_allocation.clone(),
                deployment: on_state.plan.deployment.clone(),
                deployment_updates: on_state.plan.deployment_updates.clone(),
                ..Default::default()
            };
            self.mem.apply_plan_result(&result);
            self.apply(Command::ApplyPlan(ApplyPlan {
                result,
                evals: vec![on_state.eval],
            }));
        }

        fn report(&mut self, node: &str, status: ClientStatus) {
            let ids: Vec<String> = self
                .mem
                .allocs_by_node(node)
                .filter(|a| !a.is_terminal())
                .map(|a| a.id.clone())
                .collect();
            let mut allocs = Vec::new();
            for id in ids {
                if let Some(a) = self.mem.alloc_mut(&id) {
                    a.client_status = status;
                    allocs.push(a.clone());
                }
            }
            self.apply(Command::UpdateAllocsFromClient(UpdateAllocsFromClient {
                node_id: node.into(),
                allocs,
                evals: vec![],
            }));
        }

        /// Allocation fields the two stores must agree on.
        fn same_allocs(&self) {
            type Row = (String, String, String, String, Option<String>, bool);
            let row = |a: &wren_model::Allocation| -> Row {
                (
                    a.node_id.clone(),
                    format!("{:?}", a.desired_status),
                    format!("{:?}", a.client_status),
                    a.name.clone(),
                    a.next_allocation.clone(),
                    a.disconnected_at.is_some(),
                )
            };
            let mem: BTreeMap<String, Row> =
                self.mem.allocs().map(|a| (a.id.clone(), row(a))).collect();
            let state: BTreeMap<String, Row> = self
                .state
                .allocs()
                .map(|a| (a.id.clone(), row(a)))
                .collect();
            assert_eq!(mem, state);
        }
    }

    #[test]
    fn the_state_commits_plans_as_the_scheduler_expects() {
        let mut b = Both {
            state: State::new(),
            mem: MemState::new(),
            now: T0,
        };
        for id in ["n1", "n2", "n3"] {
            b.add_node(node(id));
        }
        let mut j = job();
        j.task_groups[0].disconnect = Some(wren_model::DisconnectStrategy {
            lost_after: wren_model::Duration::from_mins(5),
            ..Default::default()
        });
        b.mem.register_job(j.clone());
        b.apply(Command::RegisterJob(RegisterJob {
            job: j,
            eval: None,
            enforce_index: None,
        }));
        b.schedule(&eval("e1", TriggeredBy::JobRegister));
        assert_eq!(b.state.allocs().count(), 3);
        b.same_allocs();
        for n in ["n1", "n2", "n3"] {
            b.report(n, ClientStatus::Running);
        }
        // n1 disconnects: its allocation becomes unknown.
        b.set_status("n1", NodeStatus::Disconnected);
        b.schedule(&eval("e2", TriggeredBy::NodeUpdate));
        b.same_allocs();
        let unknown = b
            .state
            .allocs_by_node("n1")
            .find(|a| a.client_status == ClientStatus::Unknown);
        assert!(
            unknown.is_some_and(|a| a.disconnected_at.is_some()),
            "the disconnect is recorded"
        );
        // n1 comes back and reports: the reconnect is settled.
        b.set_status("n1", NodeStatus::Ready);
        b.report("n1", ClientStatus::Running);
        b.schedule(&eval("e3", TriggeredBy::Reconnect));
        b.same_allocs();
        // n2 goes down: its allocation is lost and replaced, linked.
        b.set_status("n2", NodeStatus::Down);
        b.schedule(&eval("e4", TriggeredBy::NodeUpdate));
        b.same_allocs();
        let lost: Vec<_> = b
            .state
            .allocs_by_node("n2")
            .filter(|a| a.client_status == ClientStatus::Lost)
            .collect();
        assert_eq!(lost.len(), 1);
        assert!(lost[0].next_allocation.is_some(), "replacement linked");
        let live = b.state.allocs().filter(|a| !a.is_terminal()).count();
        assert_eq!(live, 3);
    }

    /// What a plan does, by node: allocation ids placed and stopped.
    fn shape(p: &wren_model::Plan) -> Vec<(String, Vec<String>, Vec<String>)> {
        let mut nodes: Vec<&String> = p.nodes().collect();
        nodes.dedup();
        nodes
            .into_iter()
            .map(|n| {
                let ids = |m: &BTreeMap<String, Vec<wren_model::Allocation>>| {
                    m.get(n)
                        .map(|v| v.iter().map(|a| a.id.clone()).collect())
                        .unwrap_or_default()
                };
                (n.clone(), ids(&p.node_allocation), ids(&p.node_update))
            })
            .collect()
    }
}
