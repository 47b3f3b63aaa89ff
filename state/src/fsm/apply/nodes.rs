//! Node registration, liveness, drain and eligibility.

use wren_model::{Eligibility, Node};

use super::Cx;
use crate::fsm::command::{
    ApplyError, Outcome, UpdateNodeDrain, UpdateNodeEligibility, UpdateNodeStatus, UpsertNode,
};
use crate::fsm::tables::State;

impl State {
    pub(super) fn apply_upsert_node(
        &mut self,
        cx: &mut Cx,
        c: UpsertNode,
    ) -> Result<Outcome, ApplyError> {
        let mut node = c.node;
        if node.id.is_empty() {
            return Err(ApplyError::Invalid("node without an id".to_owned()));
        }
        match self.nodes.get(&node.id) {
            Some(old) => {
                if !old.secret_id.is_empty() && old.secret_id != node.secret_id {
                    return Err(ApplyError::NodeSecretMismatch(node.id));
                }
                node.create_index = old.create_index;
                node.drain = old.drain.clone();
                node.eligibility = old.eligibility;
                node.status_updated_at = if old.status == node.status {
                    old.status_updated_at
                } else {
                    cx.now
                };
            }
            None => {
                node.create_index = self.index;
                node.status_updated_at = cx.now;
            }
        }
        node.modify_index = self.index;
        node.computed_class = node.compute_class();
        self.put_node(node);
        self.upsert_evals(cx, c.evals)?;
        Ok(Outcome::Applied)
    }

    pub(super) fn apply_node_status(
        &mut self,
        cx: &mut Cx,
        c: UpdateNodeStatus,
    ) -> Result<Outcome, ApplyError> {
        let mut node = self.existing_node(&c.node_id)?;
        if node.status != c.status {
            node.status_updated_at = cx.now;
        }
        node.status = c.status;
        node.status_description = c.description;
        node.modify_index = self.index;
        self.put_node(node);
        self.upsert_evals(cx, c.evals)?;
        Ok(Outcome::Applied)
    }

    pub(super) fn apply_node_drain(
        &mut self,
        cx: &mut Cx,
        c: UpdateNodeDrain,
    ) -> Result<Outcome, ApplyError> {
        let mut node = self.existing_node(&c.node_id)?;
        match c.drain {
            Some(mut drain) => {
                drain.started_at = node.drain.as_ref().map_or(cx.now, |d| d.started_at);
                if drain.force_deadline == 0 && drain.deadline.0 > 0 {
                    let deadline = i64::try_from(drain.deadline.0).unwrap_or(i64::MAX);
                    drain.force_deadline = cx.now.saturating_add(deadline);
                }
                node.drain = Some(drain);
                node.eligibility = Eligibility::Ineligible;
            }
            None => {
                node.drain = None;
                if c.mark_eligible {
                    node.eligibility = Eligibility::Eligible;
                }
            }
        }
        node.modify_index = self.index;
        self.put_node(node);
        self.upsert_evals(cx, c.evals)?;
        Ok(Outcome::Applied)
    }

    pub(super) fn apply_node_eligibility(
        &mut self,
        cx: &mut Cx,
        c: UpdateNodeEligibility,
    ) -> Result<Outcome, ApplyError> {
        let mut node = self.existing_node(&c.node_id)?;
        if c.eligibility == Eligibility::Eligible && node.drain.is_some() {
            return Err(ApplyError::NodeDraining(c.node_id));
        }
        node.eligibility = c.eligibility;
        node.modify_index = self.index;
        self.put_node(node);
        self.upsert_evals(cx, c.evals)?;
        Ok(Outcome::Applied)
    }

    fn existing_node(&self, id: &str) -> Result<Node, ApplyError> {
        self.nodes
            .get(id)
            .map(|n| (**n).clone())
            .ok_or_else(|| ApplyError::UnknownNode(id.to_owned()))
    }
}
