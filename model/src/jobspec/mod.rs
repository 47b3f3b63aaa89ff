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
mod group;
mod placement;
mod task;

use std::collections::BTreeMap;

use crate::hcl::Source;
use crate::job::Job;

/// One problem in a job file, with its position.
pub type JobspecError = crate::hcl::Error;

/// Every problem found in a job file, in file order.
pub type JobspecErrors = crate::hcl::Errors;

/// Inputs to a job file beyond its text.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Values for `variable` blocks (`-var name=value`), as strings; they are
    /// converted to the variable's declared type.
    pub vars: BTreeMap<String, String>,
}

/// Where each part of a parsed job file is, by validation path (such as
/// `job.group[web].task[api].config.image_path`), for errors found after
/// parsing — a driver rejecting a config key, a server refusing a job.
#[derive(Debug, Clone)]
pub struct Locations {
    file: String,
    text: String,
    spans: std::collections::HashMap<String, std::ops::Range<usize>>,
}

impl Locations {
    /// An error at `path` (or its nearest located ancestor).
    pub fn error(&self, path: &str, message: impl Into<String>) -> JobspecError {
        let mut p = path;
        let offset = loop {
            if let Some(s) = self.spans.get(p) {
                break s.start;
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => break 0,
            }
        };
        let (line, col) = Source::new(&self.file, &self.text).position(offset);
        JobspecError {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// Parses a job file with no variables set.
pub fn parse(file: &str, text: &str) -> Result<Job, JobspecErrors> {
    parse_with(file, text, &Options::default())
}

/// Parses a job file.
pub fn parse_with(file: &str, text: &str, options: &Options) -> Result<Job, JobspecErrors> {
    parse_located(file, text, options).map(|(job, _)| job)
}

/// Parses a job file and says where each of its parts is.
pub fn parse_located(
    file: &str,
    text: &str,
    options: &Options,
) -> Result<(Job, Locations), JobspecErrors> {
    let source = Source::new(file, text);
    let (job, spans) = decode::decode(&source, options)?;
    Ok((
        job,
        Locations {
            file: file.to_owned(),
            text: text.to_owned(),
            spans,
        },
    ))
}
