//! The jobspec: Nomad-style HCL job files to [`Job`](crate::Job).
//!
//! The file is parsed with `hcl-edit` (which keeps byte spans), evaluated
//! (input `variable`s, `locals`, string templates, heredocs), and decoded
//! block by block with Nomad's defaults applied as Nomad's `Canonicalize`
//! and `Merge` would: a group's `update` starts from the job's, a task's
//! `restart` from its group's, and so on. The result is checked with
//! [`validate_job`](crate::validate::validate_job), whose error paths are
//! mapped back to spans, so every error names `file:line:col` and the
//! offending name. A bad file yields errors and no job.
//!
//! Interpolations that only the client can resolve — `${attr.*}`,
//! `${node.*}`, `${meta.*}`, `${device.*}`, `${env.*}` and `${NOMAD_*}` /
//! `${WREN_*}` — are kept verbatim for the scheduler and the task runner.
//!
//! Supported: job / group / task; type, datacenters, region, priority,
//! node_pool, all_at_once, meta, env, count; constraint (every operator and
//! Nomad's shorthands), affinity, spread with targets; resources with
//! cpu / cores / memory / memory_max and `device` blocks; restart,
//! reschedule, update, migrate, disconnect, lifecycle, kill_timeout,
//! kill_signal, logs, leader, shutdown_delay, ephemeral_disk, periodic,
//! parameterized, network ports, and the driver `config` block as a free
//! value tree. Blocks wren does not implement (service, template,
//! artifact, vault, volume, ...) are rejected by name rather than ignored.

mod decode;
mod eval;
mod group;
mod placement;
mod reader;
mod source;
mod task;

use std::collections::BTreeMap;
use std::fmt;

use crate::job::Job;

pub use source::Source;

/// One problem in a job file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobspecError {
    /// The file name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, naming the offending attribute, block or value.
    pub message: String,
}

impl fmt::Display for JobspecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every problem found in a job file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobspecErrors(pub Vec<JobspecError>);

impl JobspecErrors {
    /// The first error (there is always at least one).
    pub fn first(&self) -> Option<&JobspecError> {
        self.0.first()
    }
}

impl fmt::Display for JobspecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JobspecErrors {}

/// Inputs to a job file beyond its text.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Values for `variable` blocks (`-var name=value`), as strings; they are
    /// converted to the variable's declared type.
    pub vars: BTreeMap<String, String>,
}

/// Parses a job file with no variables set.
pub fn parse(file: &str, text: &str) -> Result<Job, JobspecErrors> {
    parse_with(file, text, &Options::default())
}

/// Parses a job file.
pub fn parse_with(file: &str, text: &str, options: &Options) -> Result<Job, JobspecErrors> {
    let source = Source::new(file, text);
    decode::decode(&source, options)
}
