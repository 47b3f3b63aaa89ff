//! Running a short external command (`ip`, `tc`, `bridge`, `nsenter`) and
//! turning a failure into an error that shows the command line and its
//! stderr.

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started.
    #[error("{cmd}: could not start: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{cmd}: {status}: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
}

impl CmdError {
    /// What the failed command printed on stderr ("" when it did not run).
    pub fn stderr(&self) -> &str {
        match self {
            CmdError::Spawn { .. } => "",
            CmdError::Failed { stderr, .. } => stderr,
        }
    }
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; returns its stdout when it exits with 0.
pub fn run(cmd: &mut Command) -> Result<String, CmdError> {
    run_with_input(cmd, None)
}

/// Runs `cmd` with `input` on its stdin; returns its stdout when it exits
/// with 0.
pub fn run_with_input(cmd: &mut Command, input: Option<&str>) -> Result<String, CmdError> {
    let line = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let spawn_err = |source| CmdError::Spawn {
        cmd: line.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that exits early closes its stdin; its status says why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(CmdError::Failed {
            cmd: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
