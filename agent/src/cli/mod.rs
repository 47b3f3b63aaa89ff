//! The command line, in Nomad's shape: `wren <noun> <verb> [flags] [args]`.
//!
//! Flags are spelled `--json` as argh does; Nomad's single-dash spelling
//! (`-json`, `-output=FILE`) is accepted too and rewritten before parsing.

mod agent;
mod alloc;
mod args;
mod eval;
mod format;
mod job;
mod job_inspect;
mod job_plan;
mod job_run;
mod job_status;
mod job_stop;
mod node;
mod node_drain;
mod node_eligibility;
mod node_self;
mod node_status;
mod operator;
mod remote;
mod server;
mod tls;
mod version;

use std::process::ExitCode;

use argh::FromArgs;

/// wren: a small workload orchestrator for edge fleets.
#[derive(FromArgs, Debug)]
struct Wren {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Version(version::VersionCmd),
    Agent(agent::AgentCmd),
    Alloc(alloc::AllocCmd),
    Job(job::JobCmd),
    Eval(eval::EvalCmd),
    Node(node::NodeCmd),
    Server(server::ServerCmd),
    Operator(operator::OperatorCmd),
    Tls(tls::TlsCmd),
}

/// Parses `args` (including the program name) and runs the command.
pub fn run(args: &[String]) -> ExitCode {
    let args = args::normalize(args);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, rest) = match strs.split_first() {
        Some((name, rest)) => (*name, rest),
        None => ("wren", &[][..]),
    };
    let name = std::path::Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("wren");
    let wren = match Wren::from_args(&[name], rest) {
        Ok(w) => w,
        Err(early) => {
            return if early.status.is_ok() {
                println!("{}", early.output);
                ExitCode::SUCCESS
            } else {
                eprintln!("{}", early.output);
                ExitCode::from(1)
            };
        }
    };
    let result = match wren.command {
        Command::Version(cmd) => cmd.run(),
        Command::Agent(cmd) => cmd.run(),
        Command::Alloc(cmd) => cmd.run(),
        Command::Job(cmd) => cmd.run(),
        Command::Eval(cmd) => cmd.run(),
        Command::Node(cmd) => cmd.run(),
        Command::Server(cmd) => cmd.run(),
        Command::Operator(cmd) => cmd.run(),
        Command::Tls(cmd) => cmd.run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}
