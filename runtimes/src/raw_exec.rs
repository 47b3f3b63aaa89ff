//! The `raw_exec` driver: a program with no isolation at all, as the
//! agent's user (or the task's `user`). Off unless the client enables it.
//! It still gets a cgroup — for accounting, and so that stop kills the
//! whole process tree — and the same shim, logs and reattach as `exec`.

use std::sync::Arc;

use wren_model::{DriverInfo, Task};

use crate::driver::{ConfigError, Driver, DriverError, Started, TaskSpec};
use crate::exec::ExecConfig;
use crate::isolation::{accounting_only, resolve_program};
use crate::runtime::{LaunchPlan, Runtime};
use crate::shim::spec::{Ids, Sandbox};

/// Runs unisolated programs, when enabled.
#[derive(Debug)]
pub struct RawExecDriver {
    rt: Arc<Runtime>,
    enabled: bool,
}

impl RawExecDriver {
    /// A raw_exec driver; `enabled` comes from the client config.
    pub fn new(rt: Arc<Runtime>, enabled: bool) -> RawExecDriver {
        RawExecDriver { rt, enabled }
    }
}

impl Driver for RawExecDriver {
    fn name(&self) -> &'static str {
        "raw_exec"
    }

    fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo::default();
        if !self.enabled {
            info.health_description = "disabled (enable raw_exec in the client config)".to_owned();
            return info;
        }
        info.detected = true;
        info.healthy = self.rt.caps.cgroups.version().is_some();
        info.health_description = if info.healthy {
            "healthy".to_owned()
        } else {
            "no usable cgroup hierarchy".to_owned()
        };
        info.attributes = self.rt.caps.attributes();
        info
    }

    fn validate_config(&self, task: &Task) -> Result<(), ConfigError> {
        ExecConfig::parse("raw_exec", task).map(drop)
    }

    fn start(&self, spec: &TaskSpec) -> Result<Started, DriverError> {
        if !self.enabled {
            return Err(DriverError::Disabled("raw_exec"));
        }
        let config = ExecConfig::parse("raw_exec", &spec.task)?;
        let setup = |message: String| DriverError::Setup {
            task: spec.task.name.clone(),
            message,
        };
        let mut env = spec.env.clone();
        env.entry("PATH".to_owned()).or_insert_with(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
        });
        let path = env.get("PATH").cloned().unwrap_or_default();
        let program = resolve_program(&config.command, &spec.task_dir, &path).map_err(setup)?;
        let work_dir = match &config.work_dir {
            Some(w) => spec.task_dir.join(w),
            None => spec.task_dir.clone(),
        };
        std::fs::create_dir_all(&work_dir).map_err(|source| DriverError::Io {
            op: "create",
            path: work_dir.clone(),
            source,
        })?;
        let ids = if spec.user().is_empty() {
            None
        } else {
            let u = crate::users::resolve(spec.user()).map_err(|e| setup(e.to_string()))?;
            Some(Ids {
                uid: u.uid,
                gid: u.gid,
                groups: vec![u.gid],
            })
        };
        let sandbox = Sandbox {
            ids,
            work_dir: work_dir.to_string_lossy().into_owned(),
            ..Sandbox::default()
        };
        self.rt.launch(
            "raw_exec",
            spec,
            LaunchPlan {
                program: program.to_string_lossy().into_owned(),
                args: config.args,
                env,
                sandbox,
                limits: accounting_only(),
                pid_ns: false,
                uid_lease: None,
                monitor: false,
                events: Vec::new(),
            },
        )
    }
}
