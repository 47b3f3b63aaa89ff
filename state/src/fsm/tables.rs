//! The tables: persistent maps of every object, with secondary indexes and
//! the Raft index at which each table last changed.
//!
//! Objects are stored behind `Arc` so that the copy-on-write of a map node
//! copies pointers, not allocations. Cloning a [`State`] is O(1); a clone is
//! a consistent snapshot that later writes never disturb.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use wren_model::{AllocId, Allocation, Deployment, EvalId, Evaluation, Job, JobId, Node, NodeId};

/// The tables a blocking query can wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Jobs and their versions.
    Jobs,
    /// Nodes.
    Nodes,
    /// Evaluations.
    Evals,
    /// Allocations.
    Allocs,
    /// Deployments.
    Deployments,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 5] = [
        Table::Jobs,
        Table::Nodes,
        Table::Evals,
        Table::Allocs,
        Table::Deployments,
    ];

    pub(crate) fn slot(self) -> usize {
        match self {
            Table::Jobs => 0,
            Table::Nodes => 1,
            Table::Evals => 2,
            Table::Allocs => 3,
            Table::Deployments => 4,
        }
    }
}

/// A set of ids per key, for secondary indexes.
pub(crate) type IdIndex = OrdMap<String, OrdSet<String>>;

/// The cluster state at one Raft index. Cheap to clone; the read side
/// (queries) is in [`crate::fsm::query`], the write side in
/// [`crate::fsm::apply`].
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The Raft index of the last command applied.
    pub(crate) index: u64,
    /// Per table, the Raft index of its last change.
    pub(crate) table_index: [u64; 5],
    pub(crate) jobs: OrdMap<JobId, Arc<Job>>,
    pub(crate) job_versions: OrdMap<(JobId, u64), Arc<Job>>,
    pub(crate) nodes: OrdMap<NodeId, Arc<Node>>,
    pub(crate) evals: OrdMap<EvalId, Arc<Evaluation>>,
    pub(crate) allocs: OrdMap<AllocId, Arc<Allocation>>,
    pub(crate) deployments: OrdMap<String, Arc<Deployment>>,
    pub(crate) allocs_by_node: IdIndex,
    pub(crate) allocs_by_job: IdIndex,
    pub(crate) allocs_by_eval: IdIndex,
    pub(crate) allocs_by_deployment: IdIndex,
    pub(crate) evals_by_job: IdIndex,
    pub(crate) nodes_by_pool: IdIndex,
    pub(crate) nodes_by_datacenter: IdIndex,
    pub(crate) deployments_by_job: IdIndex,
}

fn index_add(index: &mut IdIndex, key: &str, id: &str) {
    match index.get_mut(key) {
        Some(set) => {
            set.insert(id.to_owned());
        }
        None => {
            index.insert(key.to_owned(), OrdSet::unit(id.to_owned()));
        }
    }
}

fn index_remove(index: &mut IdIndex, key: &str, id: &str) {
    let now_empty = match index.get_mut(key) {
        Some(set) => {
            set.remove(id);
            set.is_empty()
        }
        None => false,
    };
    if now_empty {
        index.remove(key);
    }
}

/// Moves `id` from `old` to `new` in `index` when they differ.
fn index_move(index: &mut IdIndex, old: Option<&str>, new: Option<&str>, id: &str) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        index_remove(index, old, id);
    }
    if let Some(new) = new {
        index_add(index, new, id);
    }
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State::default()
    }

    /// Marks `table` changed at the current index.
    pub(crate) fn touch(&mut self, table: Table) {
        self.table_index[table.slot()] = self.index;
    }

    pub(crate) fn put_job(&mut self, job: Job) {
        let job = Arc::new(job);
        self.job_versions
            .insert((job.id.clone(), job.version), job.clone());
        self.jobs.insert(job.id.clone(), job);
        self.touch(Table::Jobs);
    }

    pub(crate) fn remove_job(&mut self, id: &str) {
        if self.jobs.remove(id).is_none() {
            return;
        }
        let versions: Vec<(JobId, u64)> = self
            .job_versions
            .range((id.to_owned(), 0)..=(id.to_owned(), u64::MAX))
            .map(|(k, _)| k.clone())
            .collect();
        for key in versions {
            self.job_versions.remove(&key);
        }
        self.touch(Table::Jobs);
    }

    pub(crate) fn remove_job_version(&mut self, id: &str, version: u64) -> bool {
        let removed = self
            .job_versions
            .remove(&(id.to_owned(), version))
            .is_some();
        if removed {
            self.touch(Table::Jobs);
        }
        removed
    }

    pub(crate) fn put_node(&mut self, node: Node) {
        let old = self.nodes.get(&node.id).cloned();
        index_move(
            &mut self.nodes_by_pool,
            old.as_ref().map(|n| n.node_pool.as_str()),
            Some(&node.node_pool),
            &node.id,
        );
        index_move(
            &mut self.nodes_by_datacenter,
            old.as_ref().map(|n| n.datacenter.as_str()),
            Some(&node.datacenter),
            &node.id,
        );
        self.nodes.insert(node.id.clone(), Arc::new(node));
        self.touch(Table::Nodes);
    }

    pub(crate) fn remove_node(&mut self, id: &str) -> bool {
        let Some(old) = self.nodes.remove(id) else {
            return false;
        };
        index_remove(&mut self.nodes_by_pool, &old.node_pool, id);
        index_remove(&mut self.nodes_by_datacenter, &old.datacenter, id);
        self.touch(Table::Nodes);
        true
    }

    pub(crate) fn put_eval(&mut self, eval: Evaluation) {
        let old = self.evals.get(&eval.id).cloned();
        index_move(
            &mut self.evals_by_job,
            old.as_ref().map(|e| e.job_id.as_str()),
            Some(&eval.job_id),
            &eval.id,
        );
        self.evals.insert(eval.id.clone(), Arc::new(eval));
        self.touch(Table::Evals);
    }

    pub(crate) fn remove_eval(&mut self, id: &str) -> bool {
        let Some(old) = self.evals.remove(id) else {
            return false;
        };
        index_remove(&mut self.evals_by_job, &old.job_id, id);
        self.touch(Table::Evals);
        true
    }

    pub(crate) fn put_alloc(&mut self, mut alloc: Allocation) {
        alloc.shrink_to_fit();
        let old = self.allocs.get(&alloc.id).cloned();
        let id = alloc.id.clone();
        index_move(
            &mut self.allocs_by_node,
            old.as_ref().map(|a| a.node_id.as_str()),
            Some(&alloc.node_id),
            &id,
        );
        index_move(
            &mut self.allocs_by_job,
            old.as_ref().map(|a| a.job_id.as_str()),
            Some(&alloc.job_id),
            &id,
        );
        index_move(
            &mut self.allocs_by_eval,
            old.as_ref().map(|a| a.eval_id.as_str()),
            Some(&alloc.eval_id),
            &id,
        );
        index_move(
            &mut self.allocs_by_deployment,
            old.as_ref().and_then(|a| a.deployment_id.as_deref()),
            alloc.deployment_id.as_deref(),
            &id,
        );
        self.allocs.insert(id, Arc::new(alloc));
        self.touch(Table::Allocs);
    }

    pub(crate) fn remove_alloc(&mut self, id: &str) -> bool {
        let Some(old) = self.allocs.remove(id) else {
            return false;
        };
        index_remove(&mut self.allocs_by_node, &old.node_id, id);
        index_remove(&mut self.allocs_by_job, &old.job_id, id);
        index_remove(&mut self.allocs_by_eval, &old.eval_id, id);
        if let Some(d) = &old.deployment_id {
            index_remove(&mut self.allocs_by_deployment, d, id);
        }
        self.touch(Table::Allocs);
        true
    }

    pub(crate) fn put_deployment(&mut self, deployment: Deployment) {
        let old = self.deployments.get(&deployment.id).cloned();
        index_move(
            &mut self.deployments_by_job,
            old.as_ref().map(|d| d.job_id.as_str()),
            Some(&deployment.job_id),
            &deployment.id,
        );
        self.deployments
            .insert(deployment.id.clone(), Arc::new(deployment));
        self.touch(Table::Deployments);
    }

    pub(crate) fn remove_deployment(&mut self, id: &str) -> bool {
        let Some(old) = self.deployments.remove(id) else {
            return false;
        };
        index_remove(&mut self.deployments_by_job, &old.job_id, id);
        self.touch(Table::Deployments);
        true
    }
}
