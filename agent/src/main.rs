//! `wren`: the one binary. It is the CLI, the agent (server, client, or
//! both with `--dev`), and, re-executed as `wren shim ...`, the small
//! per-task supervisor that keeps a task's logs and exit status alive
//! across agent restarts.
//!
//! This crate wires the library crates together: it is the only place that
//! opens sockets, owns the executor and decides threads.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    cli::run(&args)
}
