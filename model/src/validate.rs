//! Semantic validation of a whole job, as Nomad does on registration.
//!
//! Errors carry a path such as `job.group[web].task[api].resources.memory`
//! so that the jobspec parser can map them back to `file:line:col`, and so
//! that servers can validate jobs that arrive over the wire with the same
//! rules.

use std::collections::BTreeSet;
use std::fmt;

use crate::constraint::{Affinity, Constraint, ConstraintError, Spread};
use crate::defaults::{
    MIN_MEMORY_MB, PRIORITY_RANGE, RESCHEDULE_MIN_DELAY, RESCHEDULE_MIN_INTERVAL,
};
use crate::duration::Duration;
use crate::group::{DelayFunction, ReschedulePolicy, RestartMode, RestartPolicy, TaskGroup};
use crate::job::{Job, JobType};
use crate::task::{LifecycleHook, Task};
use crate::value::Value;

/// The drivers wren has.
pub const DRIVERS: &[&str] = &["exec", "raw_exec", "qemu"];

/// Signals a task may be stopped with.
pub const SIGNALS: &[&str] = &[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGALRM",
    "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGWINCH", "SIGPWR",
];

/// Smallest restart interval Nomad accepts.
const RESTART_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// One thing wrong with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where, e.g. `job.group[web].count`.
    pub path: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks a job; returns every problem found, or an empty list.
pub fn validate_job(job: &Job) -> Vec<ValidationError> {
    let mut v = Validator { errors: Vec::new() };
    v.job(job);
    v.errors
}

/// Checks that a job, group or task name is usable: it names directories,
/// environment variables and URLs.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > 128 {
        return Err(format!(
            "{kind} name {name:?} is longer than 128 characters"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{kind} name {name:?} contains whitespace or control characters"
        ));
    }
    if name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Err(format!(
            "{kind} name {name:?} must not contain slashes or be . or .."
        ));
    }
    Ok(())
}

/// The part of a constraint, affinity or spread an error is about.
fn part_path(block: &str, e: &ConstraintError) -> String {
    let part = match e {
        ConstraintError::MissingAttribute(_) => return block.to_owned(),
        ConstraintError::NotAllowed { .. } => "operator",
        ConstraintError::BadAffinityWeight(_) | ConstraintError::BadSpreadWeight(_) => "weight",
        _ => "value",
    };
    format!("{block}.{part}")
}

struct Validator {
    errors: Vec<ValidationError>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn job(&mut self, job: &Job) {
        if let Err(e) = check_name("job", &job.id) {
            self.err("job", e);
        }
        if job.name.is_empty() {
            self.err("job.name", "job name is empty");
        }
        if job.region.is_empty() {
            self.err("job.region", "region is empty");
        }
        if job.datacenters.is_empty() {
            self.err("job.datacenters", "no datacenters given");
        }
        if job.datacenters.iter().any(String::is_empty) {
            self.err("job.datacenters", "a datacenter name is empty");
        }
        if job.node_pool.is_empty() {
            self.err("job.node_pool", "node pool is empty");
        }
        if !PRIORITY_RANGE.contains(&job.priority) {
            self.err(
                "job.priority",
                format!(
                    "priority {} must be between {} and {}",
                    job.priority,
                    PRIORITY_RANGE.start(),
                    PRIORITY_RANGE.end()
                ),
            );
        }
        self.placement(
            "job",
            job.job_type,
            &job.constraints,
            &job.affinities,
            &job.spreads,
            true,
        );
        if job.task_groups.is_empty() {
            self.err("job", "job has no groups");
        }
        let mut names = BTreeSet::new();
        for g in &job.task_groups {
            if !names.insert(g.name.as_str()) {
                self.err(
                    format!("job.group[{}]", g.name),
                    format!("group {:?} is defined twice", g.name),
                );
            }
            self.group(job, g);
        }
        if let Some(p) = &job.periodic {
            if !job.job_type.is_batch() {
                self.err(
                    "job.periodic",
                    "periodic is only allowed for batch and sysbatch jobs",
                );
            }
            if p.crons.is_empty() {
                self.err("job.periodic", "periodic needs a cron expression");
            }
            for c in &p.crons {
                if let Err(e) = crate::cron::Schedule::parse(c) {
                    self.err("job.periodic.crons", e.to_string());
                }
            }
        }
        if let Some(p) = &job.parameterized {
            if !job.job_type.is_batch() {
                self.err(
                    "job.parameterized",
                    "parameterized is only allowed for batch and sysbatch jobs",
                );
            }
            for k in &p.meta_required {
                if p.meta_optional.contains(k) {
                    self.err(
                        "job.parameterized",
                        format!("meta key {k:?} is both required and optional"),
                    );
                }
            }
        }
    }

    fn placement(
        &mut self,
        path: &str,
        job_type: JobType,
        constraints: &[Constraint],
        affinities: &[Affinity],
        spreads: &[Spread],
        distinct_allowed: bool,
    ) {
        for (i, c) in constraints.iter().enumerate() {
            let p = format!("{path}.constraint[{i}]");
            if let Err(e) = c.validate() {
                self.err(part_path(&p, &e), e.to_string());
            }
            if !distinct_allowed && c.operator.is_distinct() {
                self.err(
                    &p,
                    format!("operator {} is not allowed on a task", c.operator),
                );
            }
        }
        for (i, a) in affinities.iter().enumerate() {
            let p = format!("{path}.affinity[{i}]");
            if job_type == JobType::System || job_type == JobType::Sysbatch {
                self.err(&p, "system jobs may not have affinities");
            }
            if let Err(e) = a.validate() {
                self.err(part_path(&p, &e), e.to_string());
            }
        }
        for (i, s) in spreads.iter().enumerate() {
            let p = format!("{path}.spread[{i}]");
            if job_type == JobType::System || job_type == JobType::Sysbatch {
                self.err(&p, "system jobs may not have spreads");
            }
            if let Err(e) = s.validate() {
                self.err(part_path(&p, &e), e.to_string());
            }
        }
    }

    fn group(&mut self, job: &Job, g: &TaskGroup) {
        let path = format!("job.group[{}]", g.name);
        if let Err(e) = check_name("group", &g.name) {
            self.err(&path, e);
        }
        if job.job_type.is_system() && g.count > 1 {
            self.err(
                format!("{path}.count"),
                format!(
                    "{} jobs run one allocation per node; count must be 0 or 1",
                    job.job_type
                ),
            );
        }
        self.placement(
            &path,
            job.job_type,
            &g.constraints,
            &g.affinities,
            &g.spreads,
            true,
        );
        self.restart(&format!("{path}.restart"), &g.restart);
        match (&g.reschedule, job.job_type.is_system()) {
            (Some(_), true) => self.err(
                format!("{path}.reschedule"),
                "system jobs are never rescheduled",
            ),
            (Some(r), false) => self.reschedule(&format!("{path}.reschedule"), r),
            (None, _) => {}
        }
        if let Some(u) = &g.update {
            let p = format!("{path}.update");
            if !matches!(job.job_type, JobType::Service | JobType::System) {
                self.err(
                    &p,
                    format!("{} jobs do not take an update block", job.job_type),
                );
            }
            if u.max_parallel > 0 {
                if u.min_healthy_time >= u.healthy_deadline {
                    self.err(&p, "min_healthy_time must be less than healthy_deadline");
                }
                if !u.progress_deadline.is_zero() && u.healthy_deadline > u.progress_deadline {
                    self.err(&p, "healthy_deadline must not exceed progress_deadline");
                }
                if u.stagger.is_zero() {
                    self.err(&p, "stagger must be greater than zero");
                }
            }
            if u.canary > 0 && job.job_type == JobType::System {
                self.err(&p, "system jobs do not support canaries");
            }
        }
        if let Some(m) = &g.migrate {
            let p = format!("{path}.migrate");
            if job.job_type != JobType::Service {
                self.err(
                    &p,
                    format!("{} jobs do not take a migrate block", job.job_type),
                );
            }
            if m.min_healthy_time >= m.healthy_deadline {
                self.err(&p, "min_healthy_time must be less than healthy_deadline");
            }
        }
        if let Some(d) = &g.disconnect
            && !d.lost_after.is_zero()
            && d.stop_on_client_after.is_some()
        {
            self.err(
                format!("{path}.disconnect"),
                "lost_after and stop_on_client_after cannot both be set",
            );
        }
        if g.networks.len() > 1 {
            self.err(
                format!("{path}.network"),
                "only one network block is allowed per group",
            );
        }
        let mut labels = BTreeSet::new();
        let mut statics = BTreeSet::new();
        for n in &g.networks {
            for p in n.reserved_ports.iter().chain(&n.dynamic_ports) {
                let pp = format!("{path}.network.port[{}]", p.label);
                if p.label.is_empty()
                    || !p
                        .label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.err(
                        &pp,
                        format!(
                            "port label {:?} may use only letters, digits, - and _",
                            p.label
                        ),
                    );
                }
                if !labels.insert(p.label.as_str()) {
                    self.err(&pp, format!("port label {:?} is used twice", p.label));
                }
            }
            for p in &n.reserved_ports {
                let pp = format!("{path}.network.port[{}]", p.label);
                if p.value == 0 {
                    self.err(&pp, "static port must be between 1 and 65535");
                } else if !statics.insert(p.value) {
                    self.err(&pp, format!("static port {} is reserved twice", p.value));
                }
            }
        }
        if g.ephemeral_disk.size_mb == 0 {
            self.err(
                format!("{path}.ephemeral_disk"),
                "ephemeral disk size must be greater than zero",
            );
        }
        if g.tasks.is_empty() {
            self.err(&path, "group has no tasks");
        }
        let mut names = BTreeSet::new();
        let mut leaders = 0;
        for t in &g.tasks {
            if !names.insert(t.name.as_str()) {
                self.err(
                    format!("{path}.task[{}]", t.name),
                    format!("task {:?} is defined twice", t.name),
                );
            }
            if t.leader {
                leaders += 1;
            }
            // Nomad's rule: each task's log storage must fit the disk.
            let log_mb = u64::from(t.logs.max_files) * u64::from(t.logs.max_file_size_mb);
            if !t.logs.disabled
                && log_mb >= g.ephemeral_disk.size_mb
                && g.ephemeral_disk.size_mb > 0
            {
                self.err(
                    format!("{path}.task[{}].logs", t.name),
                    format!(
                        "log storage ({log_mb} MB) must be less than the ephemeral disk ({} MB)",
                        g.ephemeral_disk.size_mb
                    ),
                );
            }
            self.task(job, &path, t);
        }
        if leaders > 1 {
            self.err(&path, "only one task may be the leader");
        }
        if !g.tasks.is_empty() && g.tasks.iter().all(|t| !t.is_main()) {
            self.err(
                &path,
                "group needs at least one task without a lifecycle block",
            );
        }
    }

    fn restart(&mut self, path: &str, r: &RestartPolicy) {
        if r.attempts == 0 && r.mode != RestartMode::Fail {
            self.err(
                path,
                "restart with 0 attempts is only allowed with mode \"fail\"",
            );
        }
        if r.interval < RESTART_MIN_INTERVAL {
            self.err(
                path,
                format!(
                    "interval {} must be at least {RESTART_MIN_INTERVAL}",
                    r.interval
                ),
            );
        }
        let needed = r.delay.as_nanos().saturating_mul(u64::from(r.attempts));
        if needed > r.interval.as_nanos() {
            self.err(
                path,
                format!(
                    "cannot restart {} times in an interval of {} with a delay of {}",
                    r.attempts, r.interval, r.delay
                ),
            );
        }
    }

    fn reschedule(&mut self, path: &str, r: &ReschedulePolicy) {
        if r.attempts == 0 && !r.unlimited {
            return; // rescheduling disabled
        }
        if r.attempts > 0 && r.unlimited {
            self.err(path, "attempts and unlimited = true are ambiguous together");
        }
        if r.delay < RESCHEDULE_MIN_DELAY {
            self.err(
                path,
                format!("delay {} must be at least {RESCHEDULE_MIN_DELAY}", r.delay),
            );
        }
        if r.delay_function != DelayFunction::Constant {
            if r.max_delay < RESCHEDULE_MIN_DELAY {
                self.err(
                    path,
                    format!(
                        "max_delay {} must be at least {RESCHEDULE_MIN_DELAY}",
                        r.max_delay
                    ),
                );
            }
            if r.max_delay < r.delay {
                self.err(path, "max_delay must not be less than delay");
            }
        }
        if !r.unlimited {
            if r.interval < RESCHEDULE_MIN_INTERVAL {
                self.err(
                    path,
                    format!(
                        "interval {} must be at least {RESCHEDULE_MIN_INTERVAL}",
                        r.interval
                    ),
                );
            } else if r.delay_function == DelayFunction::Constant {
                let needed = r.delay.as_nanos().saturating_mul(u64::from(r.attempts));
                if needed > r.interval.as_nanos() {
                    self.err(
                        path,
                        format!(
                            "can only make {} attempts in {} with a delay of {}",
                            r.interval.as_nanos() / r.delay.as_nanos().max(1),
                            r.interval,
                            r.delay
                        ),
                    );
                }
            }
        }
    }

    fn task(&mut self, job: &Job, group_path: &str, t: &Task) {
        let path = format!("{group_path}.task[{}]", t.name);
        if let Err(e) = check_name("task", &t.name) {
            self.err(&path, e);
        }
        if t.driver.is_empty() {
            self.err(&path, format!("task {:?} has no driver", t.name));
        } else if !DRIVERS.contains(&t.driver.as_str()) {
            self.err(
                format!("{path}.driver"),
                format!(
                    "driver {:?} is not available in wren (drivers: {})",
                    t.driver,
                    DRIVERS.join(", ")
                ),
            );
        }
        if !matches!(t.config, Value::Map(_)) {
            self.err(format!("{path}.config"), "config must be a block");
        }
        self.placement(
            &path,
            job.job_type,
            &t.constraints,
            &t.affinities,
            &[],
            false,
        );
        let r = &t.resources;
        let rp = format!("{path}.resources");
        if r.cores > 0 && r.cpu > 0 {
            self.err(&rp, "set either cpu or cores, not both");
        }
        if r.cores == 0 && r.cpu == 0 {
            self.err(format!("{rp}.cpu"), "cpu must be at least 1 MHz");
        }
        if r.memory_mb < MIN_MEMORY_MB {
            self.err(
                format!("{rp}.memory"),
                format!("memory must be at least {MIN_MEMORY_MB} MB"),
            );
        }
        if r.memory_max_mb != 0 && r.memory_max_mb < r.memory_mb {
            self.err(
                format!("{rp}.memory_max"),
                "memory_max must not be less than memory",
            );
        }
        for (i, d) in r.devices.iter().enumerate() {
            let dp = format!("{rp}.device[{i}]");
            let parts: Vec<&str> = d.name.split('/').collect();
            if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                self.err(
                    &dp,
                    format!(
                        "device name {:?} must be type, vendor/type or vendor/type/name",
                        d.name
                    ),
                );
            }
            if d.count == 0 {
                self.err(&dp, "device count must be at least 1");
            }
            for (j, c) in d.constraints.iter().enumerate() {
                if let Err(e) = c.validate() {
                    self.err(
                        part_path(&format!("{dp}.constraint[{j}]"), &e),
                        e.to_string(),
                    );
                }
                if c.operator.is_distinct() {
                    self.err(
                        format!("{dp}.constraint[{j}]"),
                        "distinct operators are not allowed on devices",
                    );
                }
            }
            for (j, a) in d.affinities.iter().enumerate() {
                if let Err(e) = a.validate() {
                    self.err(part_path(&format!("{dp}.affinity[{j}]"), &e), e.to_string());
                }
            }
        }
        if let Some(l) = &t.lifecycle
            && l.sidecar
            && l.hook == LifecycleHook::Poststop
        {
            self.err(
                format!("{path}.lifecycle"),
                "poststop tasks cannot be sidecars",
            );
        }
        if !SIGNALS.contains(&t.kill_signal.as_str()) {
            self.err(
                format!("{path}.kill_signal"),
                format!(
                    "unknown signal {:?} (use a name like SIGTERM)",
                    t.kill_signal
                ),
            );
        }
        if !t.logs.disabled && (t.logs.max_files == 0 || t.logs.max_file_size_mb == 0) {
            self.err(
                format!("{path}.logs"),
                "max_files and max_file_size must be at least 1",
            );
        }
        if let Some(r) = &t.restart {
            self.restart(&format!("{path}.restart"), r);
        }
        for k in t.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                self.err(
                    format!("{path}.env"),
                    format!("environment variable name {k:?} is invalid"),
                );
            }
        }
    }
}
