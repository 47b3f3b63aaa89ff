//! One task's life on the client: start it through its driver, wait for it
//! (a pidfd in the reactor: no thread per task), restart it per policy,
//! and stop it when told — recording every step as a task event and
//! reporting its state to the allocation runner.
//!
//! The driver's handle is written to the local database (durably) as soon
//! as the task runs, so an agent that is killed and started again finds
//! the task through [`wren_runtimes::Driver::recover`] and waits on it
//! again: same process, no restart, no event. A handle whose shim is gone
//! without an exit status (the node rebooted) means the task is started
//! afresh, without counting against its restart policy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use wren_model::{
    Allocation, Job, RestartPolicy, Task, TaskEvent, TaskState, TaskStatus, Text, defaults,
};
use wren_runtimes::{Driver, DriverError, ExitResult, Recovered, TaskHandle, TaskSpec};

use super::Ctx;
use super::alloc_runner::AllocShared;
use super::allocdir::AllocDir;
use super::env::{self, TaskEnvInput};
use super::localdb::RestartTracker;
use super::restart::{self, Decision, Ending};
use crate::ids::{now_nanos, random_u64};

/// Task events kept per task (the newest), as Nomad keeps.
pub const MAX_EVENTS: usize = 10;

/// What the allocation runner asks of a task runner.
#[derive(Debug)]
pub enum TaskCmd {
    /// Stop the task for good: wait `delay` (its shutdown delay), then its
    /// kill signal, then after its kill timeout kill its whole cgroup.
    Kill {
        /// Why, for the `Killing` event.
        reason: String,
        /// The shutdown delay.
        delay: Duration,
    },
    /// Stop the task and start it again (not counted by the policy).
    Restart {
        /// Why.
        reason: String,
    },
    /// A new version of the allocation (an in-place update): later starts
    /// use it; the running task is left alone.
    Update {
        /// The allocation.
        alloc: Arc<Allocation>,
        /// Its job version.
        job: Arc<Job>,
    },
}

/// A task runner's report: its state changed.
#[derive(Debug, Clone)]
pub struct TaskUpdate {
    /// The task.
    pub task: String,
    /// Its state.
    pub state: TaskState,
    /// Its restart window.
    pub tracker: RestartTracker,
}

/// Appends an event, keeping the newest [`MAX_EVENTS`].
pub fn push_event(state: &mut TaskState, event: TaskEvent) {
    state.events.push(event);
    let extra = state.events.len().saturating_sub(MAX_EVENTS);
    state.events.drain(..extra);
}

/// An event of `kind` now: the drivers' own constructor.
pub use wren_runtimes::driver::event;

/// Runs one task.
pub struct TaskRunner {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) shared: Arc<AllocShared>,
    pub(crate) alloc: Arc<Allocation>,
    pub(crate) job: Arc<Job>,
    pub(crate) name: String,
    pub(crate) dir: AllocDir,
    pub(crate) state: TaskState,
    pub(crate) tracker: RestartTracker,
    pub(crate) cmds: Receiver<TaskCmd>,
    pub(crate) out: Sender<TaskUpdate>,
}

impl std::fmt::Debug for TaskRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRunner")
            .field("alloc", &self.alloc.id)
            .field("task", &self.name)
            .finish_non_exhaustive()
    }
}

enum Woke {
    Exited(Result<ExitResult, DriverError>),
    Cmd(Option<TaskCmd>),
}

enum Stopped {
    /// Killed for good.
    Killed,
    /// Ended; the policy decides.
    Ended(Ending),
    /// Restart without counting.
    Restart,
}

impl TaskRunner {
    fn task(&self) -> Option<&Task> {
        self.job.group(&self.alloc.task_group)?.task(&self.name)
    }

    fn policy(&self) -> RestartPolicy {
        let group = self.job.group(&self.alloc.task_group);
        self.task()
            .and_then(|t| t.restart.clone())
            .or_else(|| group.map(|g| g.restart.clone()))
            .unwrap_or_else(|| defaults::restart(self.job.job_type))
    }

    /// Whether the task is meant to run to completion.
    fn finishes(&self) -> bool {
        self.job.job_type.is_batch()
            || self
                .task()
                .and_then(|t| t.lifecycle.as_ref())
                .is_some_and(|l| !l.sidecar)
    }

    fn driver(&self, name: &str) -> Option<&dyn Driver> {
        self.ctx.drivers.get(name).map(|d| d.as_ref())
    }

    async fn report(&self) {
        let _ = self
            .out
            .send(TaskUpdate {
                task: self.name.clone(),
                state: self.state.clone(),
                tracker: self.tracker,
            })
            .await;
    }

    fn note(&mut self, e: TaskEvent) {
        push_event(&mut self.state, e);
    }

    /// Runs until the task is dead for good.
    pub async fn run(mut self) {
        let mut handle: Option<TaskHandle> = None;
        let mut pending_exit: Option<ExitResult> = None;
        if let Ok(Some(h)) = self.ctx.db.handle(&self.alloc.id, &self.name) {
            match self.driver(&h.driver).map(|d| d.recover(&h)) {
                Some(Ok(Recovered::Running)) => {
                    self.shared.set_handle(&self.name, Some(h.clone()));
                    handle = Some(h);
                    // Reported even when unchanged: the allocation runner
                    // waits for a first report from each task it started.
                    self.state.state = TaskStatus::Running;
                    self.report().await;
                }
                Some(Ok(Recovered::Exited(exit))) => {
                    handle = Some(h);
                    pending_exit = Some(exit);
                }
                Some(Ok(Recovered::Lost { reason })) => {
                    self.note(event(
                        "Restarting",
                        format!("the task was lost while the agent was away ({reason}); starting it again"),
                    ));
                    self.finish_handle(h).await;
                }
                Some(Err(e)) => {
                    self.note(event("Driver Failure", format!("recovering the task: {e}")));
                    self.finish_handle(h).await;
                }
                None => {
                    self.note(event(
                        "Driver Failure",
                        format!("driver {} is not available on this client", h.driver),
                    ));
                    let _ = self.ctx.db.remove_handle(&self.alloc.id, &self.name);
                }
            }
        }
        loop {
            let current = match handle.take() {
                Some(h) => h,
                None => {
                    if let Some(cmd) = self.drain_commands() {
                        self.killed_before_start(&cmd);
                        break;
                    }
                    match self.start().await {
                        Ok(h) => h,
                        Err((message, recoverable)) => {
                            self.note(event("Driver Failure", message));
                            if self.after_end(Ending::StartFailed { recoverable }).await {
                                continue;
                            }
                            break;
                        }
                    }
                }
            };
            let outcome = match pending_exit.take() {
                Some(exit) => self.ended(&current, Ok(exit)).await,
                None => self.watch(&current).await,
            };
            match outcome {
                Stopped::Killed => break,
                Stopped::Restart => continue,
                Stopped::Ended(ending) => {
                    if !self.after_end(ending).await {
                        break;
                    }
                }
            }
        }
        if self.state.state != TaskStatus::Dead {
            self.state.state = TaskStatus::Dead;
        }
        if self.state.finished_at == 0 {
            self.state.finished_at = now_nanos();
        }
        self.shared.forget_env(&self.name);
        self.report().await;
    }

    /// A kill that arrived before the task (re)started: it is dead without
    /// having run again.
    fn killed_before_start(&mut self, cmd: &TaskCmd) {
        if let TaskCmd::Kill { reason, .. } = cmd {
            self.note(event("Killed", reason.clone()));
        }
    }

    /// Takes queued commands: applies updates, returns a kill.
    fn drain_commands(&mut self) -> Option<TaskCmd> {
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                TaskCmd::Update { alloc, job } => {
                    self.alloc = alloc;
                    self.job = job;
                }
                kill @ TaskCmd::Kill { .. } => return Some(kill),
                TaskCmd::Restart { .. } => {}
            }
        }
        None
    }

    /// Waits for the task to end or for a command.
    async fn watch(&mut self, h: &TaskHandle) -> Stopped {
        loop {
            let Some(driver) = self.driver(&h.driver) else {
                return self
                    .ended(
                        h,
                        Err(DriverError::NotRunning(format!(
                            "driver {} is gone",
                            h.driver
                        ))),
                    )
                    .await;
            };
            let wait = driver.wait(h);
            let cmds = self.cmds.clone();
            let woke = async { Woke::Exited(wait.await) }
                .or(async { Woke::Cmd(cmds.recv().await.ok()) })
                .await;
            match woke {
                Woke::Exited(result) => return self.ended(h, result).await,
                Woke::Cmd(None) => {
                    // The allocation runner is gone (the agent is stopping):
                    // leave the task running for the next agent.
                    std::future::pending::<()>().await;
                }
                Woke::Cmd(Some(TaskCmd::Update { alloc, job })) => {
                    self.alloc = alloc;
                    self.job = job;
                }
                Woke::Cmd(Some(TaskCmd::Kill { reason, delay })) => {
                    if !delay.is_zero() {
                        smol::Timer::after(delay).await;
                    }
                    self.note(event("Killing", reason));
                    self.report().await;
                    let exit = self.stop(h).await;
                    self.note(event("Killed", exit_message(&exit)));
                    self.finish_handle(h.clone()).await;
                    return Stopped::Killed;
                }
                Woke::Cmd(Some(TaskCmd::Restart { reason })) => {
                    self.note(event("Restart Signaled", reason));
                    self.report().await;
                    let exit = self.stop(h).await;
                    self.note(event("Terminated", exit_message(&exit)));
                    self.finish_handle(h.clone()).await;
                    self.state.restarts = self.state.restarts.saturating_add(1);
                    self.state.last_restart = now_nanos();
                    return Stopped::Restart;
                }
            }
        }
    }

    /// Stops the task with its kill signal and timeout.
    async fn stop(&self, h: &TaskHandle) -> Result<ExitResult, DriverError> {
        let task = self.task();
        let signal = task
            .map(|t| t.kill_signal.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| defaults::KILL_SIGNAL.to_owned());
        let timeout = task
            .map(|t| t.kill_timeout)
            .filter(|d| !d.is_zero())
            .unwrap_or(defaults::KILL_TIMEOUT)
            .to_std();
        match self.driver(&h.driver) {
            Some(d) => d.stop(h, &signal, timeout).await,
            None => Err(DriverError::NotRunning(self.name.clone())),
        }
    }

    /// Records how the task ended.
    async fn ended(&mut self, h: &TaskHandle, result: Result<ExitResult, DriverError>) -> Stopped {
        let ending = match &result {
            Ok(exit) => {
                self.note(exit.event());
                if exit.successful() {
                    Ending::Success
                } else {
                    Ending::Failure
                }
            }
            Err(e) => {
                self.note(event(
                    "Driver Failure",
                    format!("lost track of the task: {e}"),
                ));
                Ending::Failure
            }
        };
        self.finish_handle(h.clone()).await;
        Stopped::Ended(ending)
    }

    /// Applies the restart policy after an ending; true when the task is to
    /// be started again (after the delay, unless killed meanwhile).
    async fn after_end(&mut self, ending: Ending) -> bool {
        let now = now_nanos();
        let (policy, finishes) = (self.policy(), self.finishes());
        let decision = restart::decide(
            &policy,
            &mut self.tracker,
            ending,
            finishes,
            now,
            random_u64(),
        );
        match decision {
            Decision::Stop { failed, reason } => {
                self.note(event("Not Restarting", reason));
                self.state.failed = failed;
                self.state.state = TaskStatus::Dead;
                self.state.finished_at = now;
                false
            }
            Decision::Restart { delay, reason } => {
                self.note(event(
                    "Restarting",
                    format!("{reason}: task restarting in {}", restart::humanize(delay)),
                ));
                self.state.state = TaskStatus::Pending;
                self.state.restarts = self.state.restarts.saturating_add(1);
                self.state.last_restart = now;
                self.report().await;
                // Wait out the delay, unless told to stop meanwhile.
                let deadline = std::time::Instant::now() + delay;
                loop {
                    let cmds = self.cmds.clone();
                    let got = async { Some(cmds.recv().await.ok()) }
                        .or(async {
                            smol::Timer::at(deadline).await;
                            None
                        })
                        .await;
                    match got {
                        None => return true,
                        Some(None) => std::future::pending::<()>().await,
                        Some(Some(TaskCmd::Update { alloc, job })) => {
                            self.alloc = alloc;
                            self.job = job;
                        }
                        Some(Some(TaskCmd::Restart { .. })) => return true,
                        Some(Some(cmd @ TaskCmd::Kill { .. })) => {
                            self.killed_before_start(&cmd);
                            self.state.state = TaskStatus::Dead;
                            return false;
                        }
                    }
                }
            }
        }
    }

    /// Destroys what is left of a run and forgets its handle.
    async fn finish_handle(&mut self, h: TaskHandle) {
        self.shared.set_handle(&self.name, None);
        let drivers = self.ctx.drivers.clone();
        let destroyed = smol::unblock(move || match drivers.get(h.driver.as_str()) {
            Some(d) => d.destroy(&h),
            None => Ok(()),
        })
        .await;
        if let Err(e) = destroyed {
            self.note(event("Driver Failure", format!("cleaning up: {e}")));
        }
        let forgotten = match self.ctx.db.remove_handle(&self.alloc.id, &self.name) {
            Ok(()) => self.ctx.db.durable_async().await,
            Err(e) => Err(e),
        };
        if let Err(e) = forgotten {
            eprintln!("wren client: {e}");
        }
    }

    /// Starts the task; returns its handle, or why not and whether trying
    /// again may help.
    async fn start(&mut self) -> Result<TaskHandle, (String, bool)> {
        let spec = self.spec()?;
        let Some(driver) = self.driver(&spec.task.driver) else {
            return Err((
                format!(
                    "driver {:?} is not available on this client",
                    spec.task.driver
                ),
                false,
            ));
        };
        if let Err(e) = driver.validate_config(&spec.task) {
            return Err((e.to_string(), false));
        }
        self.note(event(
            "Task Setup",
            "building task directory and environment",
        ));
        self.shared.set_task_view(
            &self.name,
            spec.env.clone(),
            spec.task_dir.clone(),
            spec.task.user.clone(),
            spec.task.driver.clone(),
        );
        let drivers = self.ctx.drivers.clone();
        let started = smol::unblock(move || match drivers.get(spec.task.driver.as_str()) {
            Some(d) => d.start(&spec),
            None => Err(DriverError::NotRunning(spec.task.name.clone())),
        })
        .await
        .map_err(|e| {
            let recoverable = !matches!(
                e,
                DriverError::Config(_) | DriverError::Disabled(_) | DriverError::Refused { .. }
            );
            (e.to_string(), recoverable)
        })?;
        let h = started.handle;
        let kept = match self.ctx.db.put_handle(&h) {
            Ok(()) => self.ctx.db.durable_async().await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            // Without a durable handle a restarted agent would not find the
            // task: stop it rather than run it untracked.
            let drivers = self.ctx.drivers.clone();
            let h2 = h.clone();
            let _ = smol::unblock(move || match drivers.get(h2.driver.as_str()) {
                Some(d) => d.destroy(&h2),
                None => Ok(()),
            })
            .await;
            return Err((format!("recording the task handle: {e}"), true));
        }
        for e in started.events {
            self.note(e);
        }
        self.note(event("Started", "task started by client"));
        let now = now_nanos();
        self.state.state = TaskStatus::Running;
        self.state.started_at = now;
        self.state.finished_at = 0;
        self.shared.set_handle(&self.name, Some(h.clone()));
        self.report().await;
        Ok(h)
    }

    /// Everything the driver needs, from the allocation, the job and the
    /// node as it is now.
    fn spec(&self) -> Result<TaskSpec, (String, bool)> {
        let Some(task) = self.task().cloned() else {
            return Err((
                format!(
                    "task {} is not in group {} of job {} version {}",
                    self.name, self.alloc.task_group, self.job.id, self.job.version
                ),
                false,
            ));
        };
        let facts = self.ctx.facts();
        let resources = self
            .alloc
            .resources
            .tasks
            .get(&self.name)
            .cloned()
            .unwrap_or_else(|| wren_model::AllocatedTaskResources {
                cpu: task.resources.cpu,
                memory_mb: task.resources.memory_mb,
                memory_max_mb: task.resources.memory_max_mb,
                ..Default::default()
            });
        let devices =
            super::node::device_paths(&facts.node, &resources.devices).map_err(|m| (m, true))?;
        let task_dir = self
            .dir
            .build_task(&self.name)
            .map_err(|e| (e.to_string(), true))?;
        let env = env::task_env(&TaskEnvInput {
            alloc: &self.alloc,
            job: &self.job,
            task: &task,
            resources: &resources,
            alloc_dir: &self.dir.root,
            task_dir: &task_dir,
            devices: &devices,
            facts: &facts,
        });
        let task = env::interpolated_task(&task, &env, &facts);
        if task.driver == "qemu" {
            self.ctx.check_qemu(&task).map_err(|m| (m, false))?;
        }
        Ok(TaskSpec {
            alloc_id: self.alloc.id.clone(),
            logs: task.logs.clone(),
            task,
            resources,
            ports: self.alloc.resources.ports.clone(),
            alloc_dir: self.dir.root.clone(),
            task_dir,
            env,
            devices: devices.into_iter().map(PathBuf::from).collect(),
            user: String::new(),
        })
    }
}

fn exit_message(exit: &Result<ExitResult, DriverError>) -> Text {
    match exit {
        Ok(e) => e.event().message,
        Err(e) => e.to_string().into(),
    }
}

/// A task that has not run yet.
pub fn pending_state() -> TaskState {
    TaskState {
        state: TaskStatus::Pending,
        ..TaskState::default()
    }
}

/// The environment a task sees, for `alloc exec`.
#[derive(Debug, Clone, Default)]
pub struct TaskView {
    /// The task's driver.
    pub driver: String,
    /// Its environment.
    pub env: BTreeMap<String, String>,
    /// Its directory.
    pub task_dir: PathBuf,
    /// The user it runs as (empty: the driver's default).
    pub user: String,
    /// The running task's handle.
    pub handle: Option<TaskHandle>,
}
