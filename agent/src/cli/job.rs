//! `wren job ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use argh::FromArgs;
use wren_model::Job;
use wren_model::jobspec::{self, Options};

/// Work with jobs.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "job")]
pub struct JobCmd {
    #[argh(subcommand)]
    command: JobSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum JobSub {
    Validate(ValidateCmd),
    Run(RunCmd),
    Plan(super::job_plan::PlanCmd),
}

/// Check a job file for errors without submitting it.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "validate")]
struct ValidateCmd {
    /// set a variable: --var name=value (repeatable)
    #[argh(option)]
    var: Vec<String>,
    /// the job file ("-" reads standard input)
    #[argh(positional)]
    file: String,
}

/// Submit a job (with --output: print it as JSON, contacting no server).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
struct RunCmd {
    /// print the canonical job as JSON instead of submitting it
    #[argh(switch)]
    output: bool,
    /// set a variable: --var name=value (repeatable)
    #[argh(option)]
    var: Vec<String>,
    /// the job file ("-" reads standard input)
    #[argh(positional)]
    file: String,
}

impl JobCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            JobSub::Validate(cmd) => {
                let Some(_job) = load_job(&cmd.file, &cmd.var)? else {
                    return Ok(ExitCode::from(1));
                };
                println!("Job validation successful");
                Ok(ExitCode::SUCCESS)
            }
            JobSub::Plan(cmd) => cmd.run(),
            JobSub::Run(cmd) => {
                let Some(job) = load_job(&cmd.file, &cmd.var)? else {
                    return Ok(ExitCode::from(1));
                };
                if !cmd.output {
                    anyhow::bail!(
                        "submitting jobs needs a running server, which this build of wren does not have yet; \
                         use --output to print the job"
                    );
                }
                println!("{}", wren_model::codec::to_json_pretty(&job));
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Reads and parses a job file. Parse errors are printed (one per line,
/// `file:line:col: message`) and give `None`; I/O errors are returned.
pub fn load_job(file: &str, vars: &[String]) -> anyhow::Result<Option<Job>> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the job from standard input")?
    } else {
        std::fs::read_to_string(PathBuf::from(file))
            .with_context(|| format!("reading job file {file}"))?
    };
    let mut options = Options::default();
    for v in vars {
        let (name, value) = v
            .split_once('=')
            .with_context(|| format!("--var {v:?}: expected name=value"))?;
        options
            .vars
            .insert(name.trim().to_owned(), value.to_owned());
    }
    let name = if file == "-" { "<stdin>" } else { file };
    match jobspec::parse_with(name, &text, &options) {
        Ok(job) => Ok(Some(job)),
        Err(errors) => {
            eprintln!("{errors}");
            Ok(None)
        }
    }
}
