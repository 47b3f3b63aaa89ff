//! Allocations: plan results, client reports, desired transitions, and the
//! deployment accounting that follows allocation changes.

use wren_model::{Allocation, ClientStatus, DesiredStatus};

use super::{Cx, batch};
use crate::fsm::command::{
    ApplyError, ApplyPlan, Outcome, UpdateAllocDesiredTransitions, UpdateAllocsFromClient,
};
use crate::fsm::tables::State;

impl State {
    pub(super) fn apply_plan(&mut self, cx: &mut Cx, c: ApplyPlan) -> Result<Outcome, ApplyError> {
        let result = c.result;
        let (mut changed, mut skipped) = (0usize, 0usize);
        // The deployment first, so that allocations placed into it count.
        if let Some(deployment) = result.deployment {
            self.upsert_deployment(deployment)?;
        }
        for update in &result.deployment_updates {
            if self.set_deployment_status(update) {
                changed += 1;
            } else {
                skipped += 1;
            }
        }
        for (node_id, allocs) in result.node_allocation {
            if !self.nodes.contains_key(&node_id) {
                return Err(ApplyError::UnknownNode(node_id));
            }
            for alloc in allocs {
                if alloc.node_id != node_id {
                    return Err(ApplyError::Invalid(format!(
                        "allocation {:?} is on node {:?} but planned under {:?}",
                        alloc.id, alloc.node_id, node_id
                    )));
                }
                self.place_alloc(cx, alloc)?;
                changed += 1;
            }
        }
        let stops = result.node_update.into_values().flatten();
        let preemptions = result
            .node_preemptions
            .into_values()
            .flatten()
            .map(|mut a| {
                a.desired_status = DesiredStatus::Evict;
                a
            });
        for alloc in stops.chain(preemptions) {
            if self.stop_alloc(cx, &alloc) {
                changed += 1;
            } else {
                skipped += 1;
            }
        }
        self.upsert_evals(cx, c.evals)?;
        Ok(batch(changed, skipped))
    }

    /// Creates an allocation or updates one in place, with the rules of
    /// `wren_sched::MemState::apply_plan_result`: an update keeps the
    /// client's task states, deployment health and client status (unless
    /// the scheduler declares the allocation `lost` or `unknown`: its
    /// client cannot report), and takes `disconnected_at` from the
    /// scheduler, whose field it is; a new allocation that replaces
    /// another links the other's `next_allocation` to itself.
    fn place_alloc(&mut self, cx: &mut Cx, mut alloc: Allocation) -> Result<(), ApplyError> {
        if alloc.id.is_empty() {
            return Err(ApplyError::Invalid("allocation without an id".to_owned()));
        }
        if self.job_version(&alloc.job_id, alloc.job_version).is_none() {
            return Err(ApplyError::UnknownJobVersion {
                job: alloc.job_id,
                version: alloc.job_version,
            });
        }
        let old = self.allocs.get(&alloc.id).cloned();
        match &old {
            Some(old) => {
                alloc.create_index = old.create_index;
                alloc.create_time = old.create_time;
                if !server_decided(alloc.client_status) {
                    alloc.client_status = old.client_status;
                    alloc.client_description = old.client_description.clone();
                }
                alloc.task_states = old.task_states.clone();
                alloc.deployment_status = old.deployment_status.clone();
            }
            None => {
                alloc.create_index = self.index;
                alloc.create_time = cx.now;
                self.link_previous(&alloc);
            }
        }
        alloc.modify_index = self.index;
        alloc.alloc_modify_index = self.index;
        alloc.modify_time = cx.now;
        cx.jobs.insert(alloc.job_id.clone());
        self.count_in_deployment(cx, old.as_deref(), &alloc);
        self.put_alloc(alloc);
        Ok(())
    }

    /// Points the allocation `alloc` replaces at it.
    fn link_previous(&mut self, alloc: &Allocation) {
        let Some(prev) = alloc.previous_allocation.as_deref() else {
            return;
        };
        let Some(old) = self.allocs.get(prev) else {
            return;
        };
        let mut p = (**old).clone();
        p.next_allocation = Some(alloc.id.clone());
        p.modify_index = self.index;
        self.put_alloc(p);
    }

    /// Applies a stop or eviction from a plan; false when the allocation
    /// is unknown (already collected).
    fn stop_alloc(&mut self, cx: &mut Cx, planned: &Allocation) -> bool {
        let Some(old) = self.allocs.get(&planned.id) else {
            return false;
        };
        let mut alloc = (**old).clone();
        alloc.desired_status = if planned.desired_status == DesiredStatus::Run {
            DesiredStatus::Stop
        } else {
            planned.desired_status
        };
        alloc.desired_description = planned.desired_description.clone();
        alloc.desired_transition = planned.desired_transition.clone();
        if planned.followup_eval_id.is_some() {
            alloc.followup_eval_id = planned.followup_eval_id.clone();
        }
        if planned.next_allocation.is_some() {
            alloc.next_allocation = planned.next_allocation.clone();
        }
        // A stop decides a client status only for allocations whose client
        // is gone for good; an `unknown` copied from the snapshot must not
        // override what the client reported since.
        if planned.client_status == ClientStatus::Lost {
            alloc.client_status = planned.client_status;
            alloc.client_description = planned.client_description.clone();
        }
        alloc.modify_index = self.index;
        alloc.alloc_modify_index = self.index;
        alloc.modify_time = cx.now;
        cx.jobs.insert(alloc.job_id.clone());
        self.put_alloc(alloc);
        true
    }

    pub(super) fn apply_client_updates(
        &mut self,
        cx: &mut Cx,
        c: UpdateAllocsFromClient,
    ) -> Result<Outcome, ApplyError> {
        let (mut changed, mut skipped) = (0usize, 0usize);
        for update in c.allocs {
            let Some(old) = self.allocs.get(&update.id).cloned() else {
                skipped += 1;
                continue;
            };
            if old.node_id != c.node_id {
                skipped += 1;
                continue;
            }
            let mut alloc = (*old).clone();
            alloc.client_status = update.client_status;
            alloc.client_description = update.client_description;
            alloc.task_states = update.task_states;
            if update.deployment_status.is_some() {
                alloc.deployment_status = update.deployment_status;
            }
            // `disconnected_at` is the scheduler's (set when it marks the
            // allocation unknown, cleared when it settles the reconnect).
            alloc.modify_index = self.index;
            alloc.modify_time = cx.now;
            cx.jobs.insert(alloc.job_id.clone());
            self.count_in_deployment(cx, Some(&old), &alloc);
            self.put_alloc(alloc);
            changed += 1;
        }
        self.upsert_evals(cx, c.evals)?;
        Ok(batch(changed, skipped))
    }

    pub(super) fn apply_desired_transitions(
        &mut self,
        cx: &mut Cx,
        c: UpdateAllocDesiredTransitions,
    ) -> Result<Outcome, ApplyError> {
        let (mut changed, mut skipped) = (0usize, 0usize);
        for (id, transition) in c.transitions {
            let Some(old) = self.allocs.get(&id) else {
                skipped += 1;
                continue;
            };
            let mut alloc = (**old).clone();
            alloc.desired_transition = transition;
            alloc.modify_index = self.index;
            alloc.alloc_modify_index = self.index;
            alloc.modify_time = cx.now;
            self.put_alloc(alloc);
            changed += 1;
        }
        self.upsert_evals(cx, c.evals)?;
        Ok(batch(changed, skipped))
    }

    /// Keeps a deployment's per-group counts in step with one allocation
    /// change: a new placement counts as placed (and as a canary when it
    /// is one), a first healthy or unhealthy verdict counts once.
    pub(super) fn count_in_deployment(
        &mut self,
        cx: &Cx,
        old: Option<&Allocation>,
        new: &Allocation,
    ) {
        let Some(deployment_id) = new.deployment_id.as_deref() else {
            return;
        };
        let Some(deployment) = self.deployments.get(deployment_id) else {
            return;
        };
        let mut deployment = (**deployment).clone();
        let Some(group) = deployment.task_groups.get_mut(&new.task_group) else {
            return;
        };
        let mut changed = false;
        let was_in = old.is_some_and(|o| o.deployment_id.as_deref() == Some(deployment_id));
        if !was_in {
            group.placed_allocs = group.placed_allocs.saturating_add(1);
            changed = true;
        }
        let canary = new.deployment_status.as_ref().is_some_and(|s| s.canary);
        if canary && !group.placed_canaries.contains(&new.id) {
            group.placed_canaries.push(new.id.clone());
            changed = true;
        }
        let health = |a: Option<&Allocation>| {
            a.and_then(|a| a.deployment_status.as_ref())
                .and_then(|s| s.healthy)
        };
        let (before, after) = (if was_in { health(old) } else { None }, health(Some(new)));
        if before != after {
            match after {
                Some(true) => {
                    group.healthy_allocs = group.healthy_allocs.saturating_add(1);
                    if let Some(deadline) = self.progress_deadline(new) {
                        group.require_progress_by = cx.now.saturating_add(deadline);
                    }
                }
                Some(false) => group.unhealthy_allocs = group.unhealthy_allocs.saturating_add(1),
                None => {}
            }
            changed = changed || after.is_some();
        }
        if changed {
            deployment.modify_index = self.index;
            self.put_deployment(deployment);
        }
    }

    /// The group's progress deadline in nanoseconds, if it has one.
    fn progress_deadline(&self, alloc: &Allocation) -> Option<i64> {
        let job = self.job_version(&alloc.job_id, alloc.job_version)?;
        let update = job.group(&alloc.task_group)?.update.as_ref()?;
        let nanos = update.progress_deadline.0;
        (nanos > 0).then(|| i64::try_from(nanos).unwrap_or(i64::MAX))
    }
}

/// Client statuses a plan may set on an existing allocation: its client
/// cannot report (`lost` with its node, `unknown` while disconnected).
fn server_decided(status: ClientStatus) -> bool {
    matches!(status, ClientStatus::Lost | ClientStatus::Unknown)
}
