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
    Run(super::job_run::RunCmd),
    Status(super::job_status::StatusCmd),
    Stop(super::job_stop::StopCmd),
    Inspect(super::job_inspect::InspectCmd),
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
            JobSub::Run(cmd) => cmd.run(),
            JobSub::Status(cmd) => cmd.run(),
            JobSub::Stop(cmd) => cmd.run(),
            JobSub::Inspect(cmd) => cmd.run(),
            JobSub::Plan(cmd) => cmd.run(),
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
    let (job, located) = match jobspec::parse_located(name, &text, &options) {
        Ok(parsed) => parsed,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(None);
        }
    };
    // The drivers' own options: checked here as the node will check them.
    let mut bad = false;
    for g in &job.task_groups {
        for t in &g.tasks {
            if let Err(e) = wren_runtimes::validate_task_config(t) {
                let path = format!("job.group[{}].task[{}].config.{}", g.name, t.name, e.key);
                eprintln!("{}", located.error(&path, e.to_string()));
                bad = true;
            }
        }
    }
    Ok((!bad).then_some(job))
}
