//! Deployments: creation from plans, status changes, allocation health and
//! canary promotion.

use std::sync::Arc;

use wren_model::{AllocDeploymentStatus, Deployment, DeploymentStatus, DeploymentStatusUpdate};

use super::{Cx, batch};
use crate::fsm::command::{
    ApplyError, Outcome, PromoteDeployment, SetAllocHealth, UpdateDeploymentStatus,
};
use crate::fsm::tables::State;

impl State {
    /// Creates a deployment or replaces one, keeping its creation index.
    pub(super) fn upsert_deployment(
        &mut self,
        mut deployment: Deployment,
    ) -> Result<(), ApplyError> {
        if deployment.id.is_empty() {
            return Err(ApplyError::Invalid("deployment without an id".to_owned()));
        }
        deployment.create_index = self
            .deployments
            .get(&deployment.id)
            .map_or(self.index, |d| d.create_index);
        deployment.modify_index = self.index;
        self.put_deployment(deployment);
        Ok(())
    }

    /// Sets a deployment's status; false when the deployment is unknown.
    pub(super) fn set_deployment_status(&mut self, update: &DeploymentStatusUpdate) -> bool {
        let Some(old) = self.deployments.get(&update.deployment_id) else {
            return false;
        };
        let mut deployment = (**old).clone();
        deployment.status = update.status;
        deployment.status_description = update.status_description.clone();
        deployment.modify_index = self.index;
        self.put_deployment(deployment);
        true
    }

    fn active_deployment(&self, id: &str) -> Result<Arc<Deployment>, ApplyError> {
        let deployment = self
            .deployments
            .get(id)
            .cloned()
            .ok_or_else(|| ApplyError::UnknownDeployment(id.to_owned()))?;
        if !deployment.status.is_active() {
            return Err(ApplyError::DeploymentNotActive {
                id: id.to_owned(),
                status: deployment.status.to_string(),
            });
        }
        Ok(deployment)
    }

    pub(super) fn apply_deployment_status(
        &mut self,
        cx: &mut Cx,
        c: UpdateDeploymentStatus,
    ) -> Result<Outcome, ApplyError> {
        self.active_deployment(&c.update.deployment_id)?;
        self.set_deployment_status(&c.update);
        self.finish_deployment_change(cx, c.job, c.eval)
    }

    pub(super) fn apply_alloc_health(
        &mut self,
        cx: &mut Cx,
        c: SetAllocHealth,
    ) -> Result<Outcome, ApplyError> {
        self.active_deployment(&c.deployment_id)?;
        let verdicts = c
            .healthy
            .iter()
            .map(|id| (id, true))
            .chain(c.unhealthy.iter().map(|id| (id, false)));
        for (id, healthy) in verdicts {
            let old = self
                .allocs
                .get(id)
                .cloned()
                .ok_or_else(|| ApplyError::UnknownAlloc(id.clone()))?;
            if old.deployment_id.as_deref() != Some(c.deployment_id.as_str()) {
                return Err(ApplyError::AllocNotInDeployment {
                    alloc: id.clone(),
                    deployment: c.deployment_id.clone(),
                });
            }
            let mut alloc = (*old).clone();
            let status = alloc
                .deployment_status
                .get_or_insert_with(AllocDeploymentStatus::default);
            status.healthy = Some(healthy);
            status.timestamp = cx.now;
            alloc.modify_index = self.index;
            alloc.modify_time = cx.now;
            cx.jobs.insert(alloc.job_id.clone());
            self.count_in_deployment(cx, Some(&old), &alloc);
            self.put_alloc(alloc);
        }
        if let Some(update) = &c.update {
            self.set_deployment_status(update);
        }
        self.finish_deployment_change(cx, c.job, c.eval)
    }

    pub(super) fn apply_promotion(
        &mut self,
        cx: &mut Cx,
        c: PromoteDeployment,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self.active_deployment(&c.deployment_id)?;
        let mut deployment = (*deployment).clone();
        for (name, group) in deployment.task_groups.iter_mut() {
            if !c.groups.is_empty() && !c.groups.contains(name) {
                continue;
            }
            if group.desired_canaries == 0 {
                continue;
            }
            let healthy = group
                .placed_canaries
                .iter()
                .filter_map(|id| self.allocs.get(id))
                .filter(|a| {
                    a.deployment_status
                        .as_ref()
                        .is_some_and(|s| s.healthy == Some(true))
                })
                .count();
            let healthy = u32::try_from(healthy).unwrap_or(u32::MAX);
            if healthy < group.desired_canaries {
                return Err(ApplyError::CanariesUnhealthy {
                    deployment: c.deployment_id,
                    group: name.clone(),
                    healthy,
                    desired: group.desired_canaries,
                });
            }
            group.promoted = true;
        }
        if deployment.status == DeploymentStatus::Blocked {
            deployment.status = DeploymentStatus::Running;
            deployment.status_description = "deployment is running".to_owned();
        }
        deployment.modify_index = self.index;
        self.put_deployment(deployment);
        self.finish_deployment_change(cx, None, c.eval)
    }

    /// The job revert and evaluation that may come with a deployment
    /// change.
    fn finish_deployment_change(
        &mut self,
        cx: &mut Cx,
        job: Option<wren_model::Job>,
        eval: Option<wren_model::Evaluation>,
    ) -> Result<Outcome, ApplyError> {
        let outcome = match job {
            Some(job) => self.register_job(cx, job, None)?,
            None => batch(1, 0),
        };
        if let Some(eval) = eval {
            self.upsert_eval(cx, eval)?;
        }
        Ok(outcome)
    }
}
