//! The per-task shim as a program of its own, so that tests (which cannot
//! depend on the agent) run real shims. Production re-executes the `wren`
//! binary as `wren shim`, which calls the same entry point.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    wren_runtimes::shim::main(&args)
}
