//! What the scheduler reads of the cluster state ([`StateView`]), and an
//! in-memory implementation of it ([`MemState`]) used by tests, scenarios
//! and benchmarks.
//!
//! `sched` never depends on the state crate: the agent implements
//! [`StateView`] for the replicated state's snapshot. [`MemState`] is a
//! complete, if unreplicated, store: it also applies committed plan results
//! with the same rules the real state machine must follow (documented on
//! [`MemState::apply_plan_result`]), so multi-step tests exercise the
//! contract rather than a stand-in.

use std::collections::{BTreeMap, BTreeSet};

use wren_model::{
    AllocId, Allocation, ClientStatus, Deployment, DeploymentStatusUpdate, EvalId, Evaluation, Job,
    JobId, Node, NodeId, PlanResult,
};

/// A consistent, read-only view of the cluster state at one Raft index.
///
/// Iterators yield in a stable order (the scheduler's choices are then a
/// function of the view, the eval, the time and the seed).
pub trait StateView {
    /// The Raft index this view reflects.
    fn index(&self) -> u64;
    /// Every registered node.
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_>;
    /// One node.
    fn node(&self, id: &str) -> Option<&Node>;
    /// The job's latest version.
    fn job(&self, id: &str) -> Option<&Job>;
    /// A given version of a job, while the state still keeps it.
    fn job_version(&self, id: &str, version: u64) -> Option<&Job>;
    /// One allocation.
    fn alloc(&self, id: &str) -> Option<&Allocation>;
    /// Every allocation of a job, terminal ones included.
    fn allocs_by_job(&self, job_id: &str) -> Box<dyn Iterator<Item = &Allocation> + '_>;
    /// Every allocation on a node, terminal ones included.
    fn allocs_by_node(&self, node_id: &str) -> Box<dyn Iterator<Item = &Allocation> + '_>;
    /// The job's most recent deployment.
    fn latest_deployment(&self, job_id: &str) -> Option<&Deployment>;
    /// Every evaluation (the broker rebuilds itself from these).
    fn evals(&self) -> Box<dyn Iterator<Item = &Evaluation> + '_>;
    /// The evaluations of one job.
    fn evals_by_job(&self, job_id: &str) -> Box<dyn Iterator<Item = &Evaluation> + '_>;
}

/// An in-memory cluster state. Cloning it is the snapshot.
#[derive(Debug, Clone, Default)]
pub struct MemState {
    index: u64,
    nodes: BTreeMap<NodeId, Node>,
    jobs: BTreeMap<JobId, BTreeMap<u64, Job>>,
    allocs: BTreeMap<AllocId, Allocation>,
    by_node: BTreeMap<NodeId, BTreeSet<AllocId>>,
    by_job: BTreeMap<JobId, BTreeSet<AllocId>>,
    deployments: BTreeMap<String, Deployment>,
    evals: BTreeMap<EvalId, Evaluation>,
}

impl MemState {
    /// An empty state at index 0.
    pub fn new() -> MemState {
        MemState::default()
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Adds or replaces a node; fills its computed class when empty.
    pub fn upsert_node(&mut self, mut node: Node) -> u64 {
        let index = self.bump();
        if node.computed_class.is_empty() {
            node.computed_class = node.compute_class();
        }
        node.create_index = self.nodes.get(&node.id).map_or(index, |n| n.create_index);
        node.modify_index = index;
        self.nodes.insert(node.id.clone(), node);
        index
    }

    /// Mutable access to a node (for tests that change status or drain).
    /// The caller re-upserts or accepts that indexes are not bumped.
    pub fn node_mut(&mut self, id: &str) -> Option<&mut Node> {
        self.nodes.get_mut(id)
    }

    /// Registers a job: a new version when the specification changed (or
    /// the job is new), otherwise only the bookkeeping is refreshed.
    /// Returns the version now current.
    pub fn register_job(&mut self, mut job: Job) -> u64 {
        let index = self.bump();
        let versions = self.jobs.entry(job.id.clone()).or_default();
        match versions.values().next_back() {
            Some(latest) if !latest.spec_changed(&job) => {
                let version = latest.version;
                if let Some(latest) = versions.get_mut(&version) {
                    latest.modify_index = index;
                }
                version
            }
            latest => {
                job.version = latest.map_or(0, |l| l.version + 1);
                job.create_index = latest.map_or(index, |l| l.create_index);
                job.modify_index = index;
                job.job_modify_index = index;
                let version = job.version;
                versions.insert(version, job);
                version
            }
        }
    }

    /// Stores a job exactly as given (version and indexes included), for
    /// scenarios that set up older versions.
    pub fn insert_job_version(&mut self, job: Job) {
        self.bump();
        self.jobs
            .entry(job.id.clone())
            .or_default()
            .insert(job.version, job);
    }

    /// Adds or replaces an allocation as given.
    pub fn upsert_alloc(&mut self, mut alloc: Allocation) -> u64 {
        let index = self.bump();
        if let Some(old) = self.allocs.get(&alloc.id) {
            alloc.create_index = old.create_index;
            if old.node_id != alloc.node_id
                && let Some(set) = self.by_node.get_mut(&old.node_id)
            {
                set.remove(&alloc.id);
            }
        } else if alloc.create_index == 0 {
            alloc.create_index = index;
        }
        alloc.modify_index = index;
        self.by_node
            .entry(alloc.node_id.clone())
            .or_default()
            .insert(alloc.id.clone());
        self.by_job
            .entry(alloc.job_id.clone())
            .or_default()
            .insert(alloc.id.clone());
        self.allocs.insert(alloc.id.clone(), alloc);
        index
    }

    /// Mutable access to an allocation, as a client status update would
    /// change it.
    pub fn alloc_mut(&mut self, id: &str) -> Option<&mut Allocation> {
        self.allocs.get_mut(id)
    }

    /// Adds or replaces an evaluation.
    pub fn upsert_eval(&mut self, mut eval: Evaluation) -> u64 {
        let index = self.bump();
        if eval.create_index == 0 {
            eval.create_index = index;
        }
        eval.modify_index = index;
        self.evals.insert(eval.id.clone(), eval);
        index
    }

    /// Adds or replaces a deployment.
    pub fn upsert_deployment(&mut self, mut d: Deployment) -> u64 {
        let index = self.bump();
        if d.create_index == 0 {
            d.create_index = index;
        }
        d.modify_index = index;
        self.deployments.insert(d.id.clone(), d);
        index
    }

    /// Commits what the plan applier accepted, at a new index, and returns
    /// it. These are the rules the replicated state machine follows too:
    ///
    /// - a stop (`node_update`) sets the existing allocation's desired
    ///   status and description, and its client status only when the
    ///   scheduler declares it `lost`;
    /// - a placement of a new id is inserted; a placement of an existing id
    ///   is an update by the servers: it keeps the client's task states and
    ///   client status, unless the scheduler sets the status to `lost` or
    ///   `unknown` (a disconnect), and keeps the create index;
    /// - a new allocation with `previous_allocation` links the previous
    ///   one's `next_allocation` to it;
    /// - the deployment is upserted, status updates applied, and the
    ///   deployment's per-group `placed_allocs` and `placed_canaries` count
    ///   the new allocations carrying its id.
    pub fn apply_plan_result(&mut self, result: &PlanResult) -> u64 {
        let index = self.bump();
        for stop in result.node_update.values().flatten() {
            if let Some(existing) = self.allocs.get_mut(&stop.id) {
                existing.desired_status = stop.desired_status;
                existing
                    .desired_description
                    .clone_from(&stop.desired_description);
                existing.desired_transition = stop.desired_transition.clone();
                if stop.client_status == ClientStatus::Lost {
                    existing.client_status = ClientStatus::Lost;
                    existing
                        .client_description
                        .clone_from(&stop.client_description);
                }
                existing.modify_index = index;
                existing.alloc_modify_index = index;
            }
        }
        if let Some(d) = &result.deployment {
            let mut d = d.clone();
            if let Some(old) = self.deployments.get(&d.id) {
                d.create_index = old.create_index;
            } else {
                d.create_index = index;
            }
            d.modify_index = index;
            self.deployments.insert(d.id.clone(), d);
        }
        for placed in result.node_allocation.values().flatten() {
            let mut alloc = placed.clone();
            alloc.modify_index = index;
            alloc.alloc_modify_index = index;
            if let Some(existing) = self.allocs.get(&alloc.id) {
                alloc.create_index = existing.create_index;
                alloc.task_states = existing.task_states.clone();
                if !server_decided(alloc.client_status) {
                    alloc.client_status = existing.client_status;
                    alloc.client_description = existing.client_description.clone();
                }
            } else {
                alloc.create_index = index;
                if let Some(prev) = alloc.previous_allocation.as_ref()
                    && let Some(p) = self.allocs.get_mut(prev)
                {
                    p.next_allocation = Some(alloc.id.clone());
                    p.modify_index = index;
                }
                self.count_placement(&alloc);
            }
            self.by_node
                .entry(alloc.node_id.clone())
                .or_default()
                .insert(alloc.id.clone());
            self.by_job
                .entry(alloc.job_id.clone())
                .or_default()
                .insert(alloc.id.clone());
            self.allocs.insert(alloc.id.clone(), alloc);
        }
        for u in &result.deployment_updates {
            self.apply_deployment_update(u, index);
        }
        index
    }

    fn count_placement(&mut self, alloc: &Allocation) {
        let Some(id) = alloc.deployment_id.as_ref() else {
            return;
        };
        let Some(d) = self.deployments.get_mut(id) else {
            return;
        };
        let state = d.task_groups.entry(alloc.task_group.clone()).or_default();
        state.placed_allocs += 1;
        if alloc.deployment_status.as_ref().is_some_and(|s| s.canary) {
            state.placed_canaries.push(alloc.id.clone());
        }
    }

    fn apply_deployment_update(&mut self, u: &DeploymentStatusUpdate, index: u64) {
        if let Some(d) = self.deployments.get_mut(&u.deployment_id) {
            d.status = u.status;
            d.status_description.clone_from(&u.status_description);
            d.modify_index = index;
        }
    }

    /// Every allocation (for assertions).
    pub fn allocs(&self) -> impl Iterator<Item = &Allocation> {
        self.allocs.values()
    }

    /// A deployment by id.
    pub fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.deployments.get(id)
    }

    /// An evaluation by id.
    pub fn eval(&self, id: &str) -> Option<&Evaluation> {
        self.evals.get(id)
    }
}

/// Whether a client status in a plan is the servers' to set (`lost`,
/// `unknown`: the client cannot report); any other status in a plan's
/// update of an existing allocation gives way to the client's own.
pub(crate) fn server_decided(status: ClientStatus) -> bool {
    matches!(status, ClientStatus::Lost | ClientStatus::Unknown)
}

/// The client status a plan's version of an allocation has once committed
/// (see [`MemState::apply_plan_result`]): an update of a stored allocation
/// keeps the client's own status unless [`server_decided`]. The plan
/// verifier judges this, not the plan's copy, which may be older than the
/// state.
pub(crate) fn committed_client_status(
    planned: &Allocation,
    stored: Option<&Allocation>,
) -> ClientStatus {
    match stored {
        Some(s) if !server_decided(planned.client_status) => s.client_status,
        _ => planned.client_status,
    }
}

impl StateView for MemState {
    fn index(&self) -> u64 {
        self.index
    }

    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.nodes.values())
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.get(id)?.values().next_back()
    }

    fn job_version(&self, id: &str, version: u64) -> Option<&Job> {
        self.jobs.get(id)?.get(&version)
    }

    fn alloc(&self, id: &str) -> Option<&Allocation> {
        self.allocs.get(id)
    }

    fn allocs_by_job(&self, job_id: &str) -> Box<dyn Iterator<Item = &Allocation> + '_> {
        match self.by_job.get(job_id) {
            Some(ids) => Box::new(ids.iter().filter_map(|id| self.allocs.get(id))),
            None => Box::new(std::iter::empty()),
        }
    }

    fn allocs_by_node(&self, node_id: &str) -> Box<dyn Iterator<Item = &Allocation> + '_> {
        match self.by_node.get(node_id) {
            Some(ids) => {
                let node_id = node_id.to_owned();
                Box::new(
                    ids.iter()
                        .filter_map(|id| self.allocs.get(id))
                        .filter(move |a| a.node_id == node_id),
                )
            }
            None => Box::new(std::iter::empty()),
        }
    }

    fn latest_deployment(&self, job_id: &str) -> Option<&Deployment> {
        self.deployments
            .values()
            .filter(|d| d.job_id == job_id)
            .max_by_key(|d| (d.job_version, d.create_index))
    }

    fn evals(&self) -> Box<dyn Iterator<Item = &Evaluation> + '_> {
        Box::new(self.evals.values())
    }

    fn evals_by_job(&self, job_id: &str) -> Box<dyn Iterator<Item = &Evaluation> + '_> {
        let job_id = job_id.to_owned();
        Box::new(self.evals.values().filter(move |e| e.job_id == job_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{DesiredStatus, TaskGroup};

    #[test]
    fn identical_registration_keeps_the_version() {
        let mut s = MemState::new();
        let job = Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                count: 1,
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        assert_eq!(s.register_job(job.clone()), 0);
        assert_eq!(s.register_job(job.clone()), 0);
        let mut changed = job;
        changed.task_groups[0].count = 3;
        assert_eq!(s.register_job(changed), 1);
        assert_eq!(s.job("web").map(|j| j.version), Some(1));
        assert!(s.job_version("web", 0).is_some());
    }

    #[test]
    fn plan_results_keep_client_fields_and_link_replacements() {
        let mut s = MemState::new();
        let old = Allocation {
            id: "a1".into(),
            node_id: "n1".into(),
            job_id: "web".into(),
            client_status: ClientStatus::Running,
            ..Allocation::default()
        };
        s.upsert_alloc(old.clone());
        let mut stop = old.clone();
        stop.desired_status = DesiredStatus::Stop;
        stop.client_status = ClientStatus::Pending;
        let new = Allocation {
            id: "a2".into(),
            node_id: "n2".into(),
            job_id: "web".into(),
            previous_allocation: Some("a1".into()),
            ..Allocation::default()
        };
        let mut result = PlanResult::default();
        result.node_update.insert("n1".into(), vec![stop]);
        result.node_allocation.insert("n2".into(), vec![new]);
        s.apply_plan_result(&result);
        let a1 = s.alloc("a1").unwrap();
        assert_eq!(a1.desired_status, DesiredStatus::Stop);
        assert_eq!(a1.client_status, ClientStatus::Running);
        assert_eq!(a1.next_allocation.as_deref(), Some("a2"));
        assert_eq!(s.allocs_by_node("n2").count(), 1);
        assert_eq!(s.allocs_by_job("web").count(), 2);
    }
}
