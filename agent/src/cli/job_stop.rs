//! `wren job stop ID [--purge]`: stop a job (a new version with `stop`) or
//! purge it with all its versions, then watch the evaluation that stops
//! its allocations (`--detach`: print its id and return).

use std::process::ExitCode;

use anyhow::Context as _;

use super::eval;
use super::remote::{Remote, is_not_found, with_query};
use crate::api::{JobListStub, JobStopResponse};
use crate::wire::Method;

crate::wire::api_command! {
    /// Stop a job and watch the evaluation that stops its allocations.
    #[argh(subcommand, name = "stop")]
    pub struct StopCmd {
        /// remove the job and all its versions instead of keeping it stopped
        #[argh(switch)]
        purge: bool,
        /// return at once with the evaluation id instead of watching it
        #[argh(switch)]
        detach: bool,
        /// how long to watch the evaluation, e.g. 30s (default 2m)
        #[argh(option)]
        timeout: Option<wren_model::Duration>,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// stop the job a unique prefix names without asking
        #[argh(switch)]
        yes: bool,
        /// the job id (or, with --yes, a unique prefix of it)
        #[argh(positional)]
        id: String,
    }
}

impl StopCmd {
    /// Sends the stop once: a second purge after a lost answer could undo
    /// a registration made in between.
    fn stop(&self, remote: &Remote, id: &str) -> anyhow::Result<crate::wire::Response> {
        let path = with_query(
            &format!("/v1/job/{id}"),
            &[("purge", self.purge.then_some("true"))],
        );
        remote.once(Method::Delete, &path, &[])
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let resp = match self.stop(&remote, &self.id) {
            Err(e) if is_not_found(&e) => {
                // Not an exact id: a unique prefix of one, but stopping the
                // wrong job is not undone, so ask for --yes.
                let jobs: Vec<JobListStub> = remote.get(&with_query(
                    "/v1/jobs",
                    &[("prefix", Some(self.id.as_str()))],
                ))?;
                match jobs.as_slice() {
                    [one] if self.yes => self.stop(&remote, &one.id)?,
                    [one] => anyhow::bail!(
                        "no job {:?}; it is a prefix of job {:?}: pass --yes to stop that one",
                        self.id,
                        one.id
                    ),
                    _ => return Err(e),
                }
            }
            other => other?,
        };
        let id = &self.id;
        let stopped: JobStopResponse = resp
            .decode()
            .with_context(|| format!("the answer to stopping job {id:?}"))?;
        let Some(eval_id) = stopped.eval_id else {
            println!("Job {id:?} stopped");
            return Ok(ExitCode::SUCCESS);
        };
        if self.detach {
            println!("{eval_id}");
            return Ok(ExitCode::SUCCESS);
        }
        eval::monitor(
            &remote,
            &eval_id,
            self.timeout.map(wren_model::Duration::to_std),
            self.verbose,
        )
    }
}
