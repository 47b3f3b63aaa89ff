//! `wren`: the one binary. It is the CLI, the agent (server, client, or
//! both with `--dev`), and, re-executed as `wren shim ...`, the small
//! per-task supervisor that keeps a task's logs and exit status alive
//! across agent restarts.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    wren_agent::cli::run(&args)
}
