//! `wren job inspect ID`: the job as the servers hold it, as JSON (a
//! version of it with `--version N`).

use std::process::ExitCode;

use wren_model::Job;

use super::format;
use super::job_status::find_job;
use super::remote::{self, Remote, with_query};

crate::wire::api_command! {
    /// Print a job as the servers hold it, as JSON.
    #[argh(subcommand, name = "inspect")]
    pub struct InspectCmd {
        /// this version instead of the current one
        #[argh(option)]
        version: Option<u64>,
        /// answer from any server, possibly behind the leader
        #[argh(switch)]
        stale: bool,
        /// print JSON (the only format; accepted for Nomad's spelling)
        #[argh(switch)]
        json: bool,
        /// the job id, or a unique prefix of it
        #[argh(positional)]
        id: String,
    }
}

impl InspectCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let _ = self.json;
        let remote = Remote::connect(&self.api_flags())?;
        let job = find_job(&remote, &self.id, self.stale)?;
        let job = match self.version {
            None => job,
            Some(v) => {
                let versions: Vec<Job> = remote.get(&with_query(
                    &format!("/v1/job/{}/versions", job.id),
                    &[remote::stale(self.stale)],
                ))?;
                versions
                    .into_iter()
                    .find(|j| j.version == v)
                    .ok_or_else(|| anyhow::anyhow!("job {:?} has no version {v}", job.id))?
            }
        };
        format::print_json(&job);
        Ok(ExitCode::SUCCESS)
    }
}
