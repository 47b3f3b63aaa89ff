//! `wren job ...`.

use std::process::ExitCode;

use argh::FromArgs;

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
}

/// Check a job file for errors without submitting it.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "validate")]
struct ValidateCmd {
    /// the job file
    #[argh(positional)]
    file: String,
}

impl JobCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            JobSub::Validate(cmd) => {
                let text = std::fs::read_to_string(&cmd.file)?;
                match wren_model::jobspec::parse(&cmd.file, &text) {
                    Ok(job) => {
                        println!("{}", wren_model::codec::to_json_pretty(&job));
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        Ok(ExitCode::from(1))
                    }
                }
            }
        }
    }
}
