//! The `exec` driver: a program confined by cgroups, Landlock, namespaces
//! and an unprivileged user (see [`crate::policy`] for what and why).
//!
//! ```hcl
//! task "web" {
//!   driver = "exec"
//!   config {
//!     command    = "local/server"      # absolute, task-dir relative, or on PATH
//!     args       = ["--port", "8080"]
//!     work_dir   = "local"             # default: the task dir
//!     pids_limit = 64                  # default: the policy's
//!   }
//! }
//! ```

use std::sync::Arc;

use wren_model::{DriverInfo, Task};

use crate::config::Config;
use crate::driver::{ConfigError, Driver, DriverError, Started, TaskSpec};
use crate::isolation::{Request, isolate};
use crate::runtime::{LaunchPlan, Runtime};

const KEYS: &[&str] = &["command", "args", "work_dir", "pids_limit"];

/// The exec driver's view of a task's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The working directory (absolute, or relative to the task dir).
    pub work_dir: Option<String>,
    /// `pids.max`, when not the policy's default.
    pub pids_limit: Option<u32>,
}

impl ExecConfig {
    /// Parses and checks `task.config` for `driver` (exec and raw_exec
    /// share the shape; raw_exec has no `pids_limit`).
    pub fn parse(driver: &'static str, task: &Task) -> Result<ExecConfig, ConfigError> {
        let keys: &[&str] = if driver == "exec" { KEYS } else { &KEYS[..3] };
        let c = Config::new(driver, &task.config, keys)?;
        let pids_limit = c.int("pids_limit", 1, 1 << 22)?.map(|n| n as u32);
        Ok(ExecConfig {
            command: c.required_string("command")?,
            args: c.strings("args")?,
            work_dir: c.string("work_dir")?,
            pids_limit,
        })
    }
}

/// Runs isolated programs.
#[derive(Debug)]
pub struct ExecDriver {
    rt: Arc<Runtime>,
}

impl ExecDriver {
    /// An exec driver on the shared runtime.
    pub fn new(rt: Arc<Runtime>) -> ExecDriver {
        ExecDriver { rt }
    }
}

impl Driver for ExecDriver {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn fingerprint(&self) -> DriverInfo {
        let caps = &self.rt.caps;
        let mut attributes = caps.attributes();
        let missing = caps.missing_layers(false);
        let (healthy, description) = if !caps.root {
            (
                false,
                "the agent must run as root to isolate tasks".to_owned(),
            )
        } else if caps.cgroups.version().is_none() {
            (false, crate::policy::Layer::Cgroups.describe().to_owned())
        } else if missing.is_empty() {
            (true, "healthy".to_owned())
        } else {
            let refuse = self.rt.config.policy.on_missing == crate::policy::OnMissing::Refuse
                && missing.iter().any(|l| l.is_essential());
            let list = missing
                .iter()
                .map(|l| l.describe())
                .collect::<Vec<_>>()
                .join("; ");
            (!refuse, format!("isolation degraded: {list}"))
        };
        attributes.insert(
            "isolation".to_owned(),
            if missing.is_empty() {
                "full"
            } else {
                "degraded"
            }
            .to_owned(),
        );
        DriverInfo {
            detected: true,
            healthy,
            health_description: description,
            attributes,
        }
    }

    fn validate_config(&self, task: &Task) -> Result<(), ConfigError> {
        ExecConfig::parse("exec", task).map(drop)
    }

    fn start(&self, spec: &TaskSpec) -> Result<Started, DriverError> {
        let config = ExecConfig::parse("exec", &spec.task)?;
        let isolated = isolate(
            &self.rt,
            Request {
                spec,
                command: config.command,
                work_dir: config.work_dir,
                pids_limit: config
                    .pids_limit
                    .unwrap_or(self.rt.config.policy.pids_limit),
                memory_max: None,
                read_only_files: Vec::new(),
                extra_devices: Vec::new(),
            },
        )?;
        self.rt.launch(
            "exec",
            spec,
            LaunchPlan {
                program: isolated.program,
                args: config.args,
                env: isolated.env,
                sandbox: isolated.sandbox,
                limits: isolated.limits,
                pid_ns: isolated.pid_ns,
                uid_lease: isolated.uid_lease,
                monitor: false,
                events: isolated.events,
            },
        )
    }
}
