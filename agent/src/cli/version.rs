//! `wren version`.

use std::process::ExitCode;

use argh::FromArgs;

/// Print the version of wren.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "version")]
pub struct VersionCmd {}

impl VersionCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        println!(
            "wren v{} ({}-{})",
            wren_model::VERSION,
            std::env::consts::ARCH,
            std::env::consts::OS
        );
        Ok(ExitCode::SUCCESS)
    }
}
