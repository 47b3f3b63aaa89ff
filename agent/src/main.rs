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
    quiet_on_closed_stdout();
    let args: Vec<String> = std::env::args().collect();
    wren_agent::cli::run(&args)
}

/// `wren job status | head`: when whoever reads our output goes away,
/// `println!` fails with EPIPE and panics. Stop quietly instead, with the
/// status a Unix tool killed by SIGPIPE has (128 + 13), as `ls | head`
/// does; every other panic is reported as usual.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("os error 32") {
            std::process::exit(141);
        }
        report(info);
    }));
}
