//! `wren node drain ID --enable|--disable`: move a node's allocations
//! elsewhere and take no new work there (or stop doing so).

use std::process::ExitCode;

use wren_model::DrainStrategy;

use super::format::short;
use super::node_status::find_node;
use super::remote::Remote;
use crate::api::{EvalsResponse, NodeDrainRequest};
use crate::wire::Method;

/// Nomad's default drain deadline.
const DEFAULT_DEADLINE: wren_model::Duration = wren_model::Duration::from_hours(1);

crate::wire::api_command! {
    /// Start or stop draining a node: its allocations migrate elsewhere
    /// and it takes no new work.
    #[argh(subcommand, name = "drain")]
    pub struct DrainCmd {
        /// start draining
        #[argh(switch)]
        enable: bool,
        /// stop draining
        #[argh(switch)]
        disable: bool,
        /// stop what has not migrated after this long, e.g. 30m (default 1h)
        #[argh(option)]
        deadline: Option<wren_model::Duration>,
        /// no deadline: allocations migrate at their own pace
        #[argh(switch)]
        no_deadline: bool,
        /// migrate everything now, ignoring migrate strategies
        #[argh(switch)]
        force: bool,
        /// leave system jobs' allocations in place
        #[argh(switch)]
        ignore_system: bool,
        /// with --disable: keep the node ineligible for new work
        #[argh(switch)]
        keep_ineligible: bool,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// the node id, or a unique prefix of it
        #[argh(positional)]
        id: String,
    }
}

impl DrainCmd {
    /// The request the flags ask for, at `now` (unix nanoseconds).
    fn request(&self, now: i64) -> anyhow::Result<NodeDrainRequest> {
        match (self.enable, self.disable) {
            (true, false) => {}
            (false, true) => {
                return Ok(NodeDrainRequest {
                    drain: None,
                    mark_eligible: !self.keep_ineligible,
                });
            }
            _ => anyhow::bail!("give exactly one of --enable or --disable"),
        }
        if [self.deadline.is_some(), self.no_deadline, self.force]
            .iter()
            .filter(|b| **b)
            .count()
            > 1
        {
            anyhow::bail!("give at most one of --deadline, --no-deadline and --force");
        }
        let mut drain = DrainStrategy {
            ignore_system_jobs: self.ignore_system,
            ..DrainStrategy::default()
        };
        if self.force {
            drain.force_deadline = now;
        } else if !self.no_deadline {
            drain.deadline = self.deadline.unwrap_or(DEFAULT_DEADLINE);
        }
        Ok(NodeDrainRequest {
            drain: Some(drain),
            mark_eligible: false,
        })
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        let req = self.request(crate::ids::now_nanos())?;
        let remote = Remote::connect(&self.api_flags())?;
        let node = find_node(&remote, &self.id, false)?;
        let enabling = req.drain.is_some();
        let resp: EvalsResponse =
            remote.send(Method::Post, &format!("/v1/node/{}/drain", node.id), &req)?;
        println!(
            "Node {:?} drain strategy {}",
            short(&node.id, self.verbose),
            if enabling { "set" } else { "unset" }
        );
        for id in &resp.eval_ids {
            println!("Evaluation ID: {id}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use argh::FromArgs;

    use super::*;

    fn parse(args: &[&str]) -> DrainCmd {
        DrainCmd::from_args(&["drain"], args).unwrap()
    }

    #[test]
    fn flags_make_the_drain_nomad_would() {
        let r = parse(&["n1", "--enable"]).request(5).unwrap();
        let d = r.drain.unwrap();
        assert_eq!(d.deadline, DEFAULT_DEADLINE);
        assert_eq!(d.force_deadline, 0);
        let r = parse(&["n1", "--enable", "--force", "--ignore-system"])
            .request(5)
            .unwrap();
        let d = r.drain.unwrap();
        assert_eq!((d.force_deadline, d.ignore_system_jobs), (5, true));
        let r = parse(&["n1", "--enable", "--no-deadline"])
            .request(5)
            .unwrap();
        assert_eq!(r.drain.unwrap().deadline, wren_model::Duration::default());
        let r = parse(&["n1", "--disable"]).request(5).unwrap();
        assert!(r.drain.is_none() && r.mark_eligible);
        let r = parse(&["n1", "--disable", "--keep-ineligible"])
            .request(5)
            .unwrap();
        assert!(!r.mark_eligible);
        assert!(parse(&["n1"]).request(5).is_err());
        assert!(
            parse(&["n1", "--enable", "--force", "--no-deadline"])
                .request(5)
                .is_err()
        );
    }
}
