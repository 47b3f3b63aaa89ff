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
                let _ = cmd.file;
                anyhow::bail!("job validate is not wired yet")
            }
        }
    }
}
