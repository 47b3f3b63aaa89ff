//! The read side: what scheduler workers, the plan applier, API handlers
//! and the CLI ask of a [`State`].
//!
//! Every method reads one consistent snapshot; results borrow from it, so
//! hold the `State` (a cheap clone) for as long as you read.

use std::sync::Arc;

use imbl::OrdSet;
use wren_model::{Allocation, Deployment, Evaluation, Job, Node};

use super::tables::{IdIndex, State, Table};

fn ids<'a>(index: &'a IdIndex, key: &str) -> impl Iterator<Item = &'a String> + 'a {
    index.get(key).into_iter().flat_map(OrdSet::iter)
}

/// How many objects each table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Jobs (current versions).
    pub jobs: usize,
    /// Job versions, current ones included.
    pub job_versions: usize,
    /// Nodes.
    pub nodes: usize,
    /// Evaluations.
    pub evals: usize,
    /// Allocations.
    pub allocs: usize,
    /// Deployments.
    pub deployments: usize,
}

impl State {
    /// The Raft index of the last entry applied.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The Raft index at which `table` last changed (0: never).
    pub fn table_index(&self, table: Table) -> u64 {
        self.table_index[table.slot()]
    }

    /// How many objects each table holds.
    pub fn counts(&self) -> Counts {
        Counts {
            jobs: self.jobs.len(),
            job_versions: self.job_versions.len(),
            nodes: self.nodes.len(),
            evals: self.evals.len(),
            allocs: self.allocs.len(),
            deployments: self.deployments.len(),
        }
    }

    /// Whether both states hold the same objects and table indexes,
    /// whatever entries (blank, membership) were applied since.
    pub fn same_tables(&self, other: &State) -> bool {
        self.table_index == other.table_index
            && self.jobs == other.jobs
            && self.job_versions == other.job_versions
            && self.nodes == other.nodes
            && self.evals == other.evals
            && self.allocs == other.allocs
            && self.deployments == other.deployments
    }

    // ---- jobs ----

    /// The current version of a job.
    pub fn job(&self, id: &str) -> Option<&Arc<Job>> {
        self.jobs.get(id)
    }

    /// Every job's current version, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> + '_ {
        self.jobs.values()
    }

    /// Jobs whose id starts with `prefix`, by id (for `job status <prefix>`).
    pub fn jobs_by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Job>> + 'a {
        self.jobs
            .range(prefix.to_owned()..)
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, j)| j)
    }

    /// One version of a job (allocations name the version they run).
    pub fn job_version(&self, id: &str, version: u64) -> Option<&Arc<Job>> {
        self.job_versions.get(&(id.to_owned(), version))
    }

    /// Every kept version of a job, newest first.
    pub fn job_versions(&self, id: &str) -> Vec<Arc<Job>> {
        let mut all: Vec<Arc<Job>> = self
            .job_versions
            .range((id.to_owned(), 0)..=(id.to_owned(), u64::MAX))
            .map(|(_, j)| j.clone())
            .collect();
        all.reverse();
        all
    }

    // ---- nodes ----

    /// A node.
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.get(id)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> + '_ {
        self.nodes.values()
    }

    /// Nodes whose id starts with `prefix`, by id.
    pub fn nodes_by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Node>> + 'a {
        self.nodes
            .range(prefix.to_owned()..)
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, n)| n)
    }

    /// Nodes in a node pool, by id.
    pub fn nodes_in_pool<'a>(&'a self, pool: &str) -> impl Iterator<Item = &'a Arc<Node>> + 'a {
        ids(&self.nodes_by_pool, pool).filter_map(|id| self.nodes.get(id))
    }

    /// Nodes in a datacenter, by id.
    pub fn nodes_in_datacenter<'a>(&'a self, dc: &str) -> impl Iterator<Item = &'a Arc<Node>> + 'a {
        ids(&self.nodes_by_datacenter, dc).filter_map(|id| self.nodes.get(id))
    }

    /// The node pools that have nodes.
    pub fn node_pools(&self) -> impl Iterator<Item = &String> + '_ {
        self.nodes_by_pool.keys()
    }

    /// The datacenters that have nodes.
    pub fn datacenters(&self) -> impl Iterator<Item = &String> + '_ {
        self.nodes_by_datacenter.keys()
    }

    // ---- evaluations ----

    /// An evaluation.
    pub fn eval(&self, id: &str) -> Option<&Arc<Evaluation>> {
        self.evals.get(id)
    }

    /// Every evaluation, by id.
    pub fn evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> + '_ {
        self.evals.values()
    }

    /// A job's evaluations, by id.
    pub fn evals_by_job<'a>(&'a self, job: &str) -> impl Iterator<Item = &'a Arc<Evaluation>> + 'a {
        ids(&self.evals_by_job, job).filter_map(|id| self.evals.get(id))
    }

    // ---- allocations ----

    /// An allocation.
    pub fn alloc(&self, id: &str) -> Option<&Arc<Allocation>> {
        self.allocs.get(id)
    }

    /// Every allocation, by id.
    pub fn allocs(&self) -> impl Iterator<Item = &Arc<Allocation>> + '_ {
        self.allocs.values()
    }

    /// Allocations whose id starts with `prefix`, by id.
    pub fn allocs_by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        self.allocs
            .range(prefix.to_owned()..)
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, a)| a)
    }

    /// Allocations placed on a node, terminal ones included, by id.
    pub fn allocs_by_node<'a>(
        &'a self,
        node: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        ids(&self.allocs_by_node, node).filter_map(|id| self.allocs.get(id))
    }

    /// Allocations on a node that are not terminal (what uses its
    /// capacity).
    pub fn live_allocs_by_node<'a>(
        &'a self,
        node: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        self.allocs_by_node(node).filter(|a| !a.is_terminal())
    }

    /// The highest `modify_index` among a node's allocations: a client
    /// watching its allocations waits for this to pass what it has seen.
    pub fn node_allocs_index(&self, node: &str) -> u64 {
        self.allocs_by_node(node)
            .map(|a| a.modify_index)
            .max()
            .unwrap_or(0)
    }

    /// A job's allocations, by id.
    pub fn allocs_by_job<'a>(
        &'a self,
        job: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        ids(&self.allocs_by_job, job).filter_map(|id| self.allocs.get(id))
    }

    /// Allocations an evaluation placed, by id.
    pub fn allocs_by_eval<'a>(
        &'a self,
        eval: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        ids(&self.allocs_by_eval, eval).filter_map(|id| self.allocs.get(id))
    }

    /// Allocations belonging to a deployment, by id.
    pub fn allocs_by_deployment<'a>(
        &'a self,
        deployment: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        ids(&self.allocs_by_deployment, deployment).filter_map(|id| self.allocs.get(id))
    }

    // ---- deployments ----

    /// A deployment.
    pub fn deployment(&self, id: &str) -> Option<&Arc<Deployment>> {
        self.deployments.get(id)
    }

    /// Every deployment, by id.
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> + '_ {
        self.deployments.values()
    }

    /// A job's deployments, by id.
    pub fn deployments_by_job<'a>(
        &'a self,
        job: &str,
    ) -> impl Iterator<Item = &'a Arc<Deployment>> + 'a {
        ids(&self.deployments_by_job, job).filter_map(|id| self.deployments.get(id))
    }

    /// A job's most recently created deployment.
    pub fn latest_deployment(&self, job: &str) -> Option<&Arc<Deployment>> {
        self.deployments_by_job(job)
            .max_by_key(|d| (d.create_index, d.id.clone()))
    }
}
