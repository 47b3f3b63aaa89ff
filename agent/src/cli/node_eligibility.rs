//! `wren node eligibility ID --enable|--disable`: whether new work may be
//! placed on a node (what runs there stays).

use std::process::ExitCode;

use wren_model::Eligibility;

use super::format::short;
use super::node_status::find_node;
use super::remote::Remote;
use crate::api::{EvalsResponse, NodeEligibilityRequest};
use crate::wire::Method;

crate::wire::api_command! {
    /// Mark a node eligible or ineligible for new work.
    #[argh(subcommand, name = "eligibility")]
    pub struct EligibilityCmd {
        /// new work may be placed on the node
        #[argh(switch)]
        enable: bool,
        /// no new work on the node
        #[argh(switch)]
        disable: bool,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// the node id, or a unique prefix of it
        #[argh(positional)]
        id: String,
    }
}

impl EligibilityCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let eligibility = match (self.enable, self.disable) {
            (true, false) => Eligibility::Eligible,
            (false, true) => Eligibility::Ineligible,
            _ => anyhow::bail!("give exactly one of --enable or --disable"),
        };
        let remote = Remote::connect(&self.api_flags())?;
        let node = find_node(&remote, &self.id, false)?;
        let resp: EvalsResponse = remote.send(
            Method::Post,
            &format!("/v1/node/{}/eligibility", node.id),
            &NodeEligibilityRequest { eligibility },
        )?;
        println!(
            "Node {:?} scheduling eligibility set: {} for scheduling",
            short(&node.id, self.verbose),
            eligibility
        );
        for id in &resp.eval_ids {
            println!("Evaluation ID: {id}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
