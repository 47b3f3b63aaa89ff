//! `wren job run FILE`: parse the job here (errors name file:line:col),
//! submit it, then watch its evaluation and print the placements or why
//! nothing was placed (`--detach`: print the evaluation id and return).

use std::process::ExitCode;

use anyhow::Context as _;

use super::eval;
use super::job::load_job;
use super::remote::Remote;
use crate::api::{JobRegisterRequest, JobRegisterResponse};
use crate::wire::Method;

crate::wire::api_command! {
    /// Submit a job and watch its evaluation (with --output: print the job
    /// as JSON, contacting no server).
    #[argh(subcommand, name = "run")]
    pub struct RunCmd {
        /// print the canonical job as JSON instead of submitting it
        #[argh(switch)]
        output: bool,
        /// return at once with the evaluation id instead of watching it
        #[argh(switch)]
        detach: bool,
        /// register only if the job's modify index is this (0: only if the
        /// job does not exist yet)
        #[argh(option)]
        check_index: Option<u64>,
        /// how long to watch the evaluation, e.g. 30s (default 2m)
        #[argh(option)]
        timeout: Option<wren_model::Duration>,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// set a variable: --var name=value (repeatable)
        #[argh(option)]
        var: Vec<String>,
        /// the job file ("-" reads standard input)
        #[argh(positional)]
        file: String,
    }
}

impl RunCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Some(job) = load_job(&self.file, &self.var)? else {
            return Ok(ExitCode::from(1));
        };
        if self.output {
            println!("{}", wren_model::codec::to_json_pretty(&job));
            return Ok(ExitCode::SUCCESS);
        }
        let remote = Remote::connect(&self.api_flags())?;
        let job_id = job.id.clone();
        let resp: JobRegisterResponse = remote
            .send(
                Method::Post,
                "/v1/jobs",
                &JobRegisterRequest {
                    job,
                    enforce_index: self.check_index,
                },
            )
            .with_context(|| format!("registering job {job_id:?}"))?;
        for w in &resp.warnings {
            eprintln!("Warning: {w}");
        }
        let Some(eval_id) = resp.eval_id else {
            println!("Job registration successful");
            println!("Job {job_id:?} is a periodic or parameterized template: nothing to evaluate");
            return Ok(ExitCode::SUCCESS);
        };
        if self.detach {
            println!("Job registration successful");
            println!("Evaluation ID: {eval_id}");
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
