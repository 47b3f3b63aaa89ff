//! `wren`: the one binary. It is the CLI, the agent (server, client, or
//! both with `--dev`), and, re-executed as `wren shim ...`, the small
//! per-task supervisor that keeps a task's logs and exit status alive
//! across agent restarts.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // `wren shim` is the per-task shim, re-executed by the agent: dispatch
    // before the CLI parses anything (and before any thread exists, since
    // the shim forks).
    let mut raw = std::env::args_os();
    if raw.nth(1).is_some_and(|a| a == "shim") {
        let rest: Vec<std::ffi::OsString> = raw.collect();
        return wren_runtimes::shim::main(&rest);
    }
    let args: Vec<String> = std::env::args().collect();
    wren_agent::cli::run(&args)
}
