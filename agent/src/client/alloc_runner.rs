//! One allocation's life on the client: its directory, a task runner per
//! task in lifecycle order, its status from its tasks' states, and its
//! stop.
//!
//! Order, as Nomad's:
//!
//! 1. `prestart` tasks start first; the main tasks wait until every
//!    non-sidecar prestart task has exited successfully and every
//!    prestart sidecar is running;
//! 2. the main tasks start; once each has started, `poststart` tasks
//!    start;
//! 3. when every main task is dead, when a `leader` task is dead, when a
//!    task failed for good, or when the allocation is stopped, the rest is
//!    stopped: leaders first, then main and poststart tasks, then prestart
//!    sidecars (each after its `shutdown_delay`, with its kill signal, and
//!    after its `kill_timeout` its whole cgroup);
//! 4. then the `poststop` tasks run to completion.
//!
//! Everything is decided from the tasks' recorded states, so an allocation
//! restored after an agent restart or a reboot carries on where it was: a
//! prestart task that completed is not run again.
//!
//! The runner persists its [`AllocState`] and queues a status update for
//! the servers on every change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use wren_model::{
    Allocation, ClientStatus, Job, LifecycleHook, Task, TaskState, TaskStatus, VecMap,
};
use wren_runtimes::TaskHandle;

use super::Ctx;
use super::allocdir::AllocDir;
use super::localdb::AllocState;
use super::task_runner::{self, TaskCmd, TaskRunner, TaskUpdate, TaskView, event, push_event};
use crate::api::ClientAllocUpdate;
use crate::ids::now_nanos;

/// What the client asks of an allocation runner.
#[derive(Debug)]
pub enum AllocMsg {
    /// The servers changed the allocation (desired status, job version).
    Update {
        /// The allocation.
        alloc: Arc<Allocation>,
        /// Its job version.
        job: Arc<Job>,
    },
    /// Stop every task.
    Stop {
        /// Why.
        reason: String,
        /// Stopped by the client itself (no server said so).
        local: bool,
    },
    /// Restart one task, or every running task.
    Restart {
        /// The task, or all.
        task: Option<String>,
        /// The answer: an error for a person, when nothing could be done.
        reply: Sender<Result<(), String>>,
    },
}

/// What the rest of the client sees of a runner: the allocation, its state
/// and its tasks' handles and environments.
#[derive(Debug)]
pub struct AllocShared {
    /// The allocation id.
    pub id: String,
    /// Commands to the runner.
    pub tx: Sender<AllocMsg>,
    view: Mutex<View>,
}

/// A snapshot of a runner.
#[derive(Debug, Clone)]
pub struct View {
    /// The allocation as the servers last sent it.
    pub alloc: Arc<Allocation>,
    /// Its job version.
    pub job: Arc<Job>,
    /// The client's view.
    pub state: AllocState,
    /// Per task: driver, environment, directory, handle.
    pub tasks: BTreeMap<String, TaskView>,
    /// The allocation directory.
    pub dir: PathBuf,
}

impl AllocShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        // Plain data; a poisoned lock still holds a usable value.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the current view.
    pub fn view(&self) -> View {
        self.lock().clone()
    }

    /// Reads the current view without copying it: the client's loops look
    /// at every allocation on each pass, and a copy would clone each one's
    /// task states and environments every time.
    pub fn with_view<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        f(&self.lock())
    }

    /// Whether every task has finished.
    pub fn finished(&self) -> bool {
        self.lock().state.finished_at > 0
    }

    pub(crate) fn set_handle(&self, task: &str, handle: Option<TaskHandle>) {
        self.lock().tasks.entry(task.to_owned()).or_default().handle = handle;
    }

    /// Forgets a task's environment once the task is dead for good: only
    /// `alloc exec` into a running task reads it, and it is some fifty
    /// strings per task, kept until the allocation is collected.
    pub(crate) fn forget_env(&self, task: &str) {
        if let Some(t) = self.lock().tasks.get_mut(task) {
            t.env = BTreeMap::new();
        }
    }

    pub(crate) fn set_task_view(
        &self,
        task: &str,
        env: BTreeMap<String, String>,
        task_dir: PathBuf,
        user: String,
        driver: String,
    ) {
        let mut v = self.lock();
        let t = v.tasks.entry(task.to_owned()).or_default();
        t.env = env;
        t.task_dir = task_dir;
        t.user = user;
        t.driver = driver;
    }
}

/// Where a task sits in the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prestart { sidecar: bool },
    Main,
    Poststart,
    Poststop,
}

fn phase(task: &Task) -> Phase {
    match &task.lifecycle {
        None => Phase::Main,
        Some(l) => match l.hook {
            LifecycleHook::Prestart => Phase::Prestart { sidecar: l.sidecar },
            LifecycleHook::Poststart => Phase::Poststart,
            LifecycleHook::Poststop => Phase::Poststop,
        },
    }
}

/// The allocation's status from its tasks', as Nomad computes it: failed
/// if any task failed, running if any runs, complete when all are dead.
pub fn client_status(tasks: &VecMap<String, TaskState>, names: &[String]) -> ClientStatus {
    let states: Vec<Option<&TaskState>> = names.iter().map(|n| tasks.get(n)).collect();
    if states.iter().flatten().any(|s| s.failed) {
        ClientStatus::Failed
    } else if states
        .iter()
        .flatten()
        .any(|s| s.state == TaskStatus::Running)
    {
        ClientStatus::Running
    } else if !states.is_empty()
        && states
            .iter()
            .all(|s| s.is_some_and(|s| s.state == TaskStatus::Dead))
    {
        ClientStatus::Complete
    } else {
        ClientStatus::Pending
    }
}

struct Live {
    cmd: Sender<TaskCmd>,
    _task: smol::Task<()>,
    kill_sent: bool,
    /// The task runner has reported since it was spawned (its first start
    /// attempt, or finding the task again, is over).
    reported: bool,
}

/// Runs one allocation.
pub struct AllocRunner {
    ctx: Arc<Ctx>,
    shared: Arc<AllocShared>,
    alloc: Arc<Allocation>,
    job: Arc<Job>,
    dir: AllocDir,
    state: AllocState,
    live: BTreeMap<String, Live>,
    rx: Receiver<AllocMsg>,
    updates_tx: Sender<TaskUpdate>,
    updates_rx: Receiver<TaskUpdate>,
    /// Why the tasks are being stopped, once they are.
    teardown: Option<String>,
    /// The allocation's place among those starting at once (see
    /// [`super::STARTS_AT_ONCE`]), until its first starts are over.
    admitted: Option<smol::lock::SemaphoreGuardArc>,
}

impl std::fmt::Debug for AllocRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllocRunner")
            .field("alloc", &self.alloc.id)
            .finish_non_exhaustive()
    }
}

impl AllocRunner {
    /// A runner for `alloc`, starting from `state` (a new allocation's is
    /// the default). Returns the runner and what the client keeps of it.
    pub fn new(
        ctx: Arc<Ctx>,
        alloc: Arc<Allocation>,
        job: Arc<Job>,
        dir: AllocDir,
        state: AllocState,
    ) -> (AllocRunner, Arc<AllocShared>) {
        let (tx, rx) = smol::channel::unbounded();
        // One slot: an unbounded channel keeps a block of 31 updates (about
        // 6 KiB) for as long as the runner lives; task runners wait to send.
        let (updates_tx, updates_rx) = smol::channel::bounded(1);
        let shared = Arc::new(AllocShared {
            id: alloc.id.clone(),
            tx,
            view: Mutex::new(View {
                alloc: alloc.clone(),
                job: job.clone(),
                state: state.clone(),
                tasks: BTreeMap::new(),
                dir: dir.root.clone(),
            }),
        });
        let runner = AllocRunner {
            ctx,
            shared: shared.clone(),
            alloc,
            job,
            dir,
            state,
            live: BTreeMap::new(),
            rx,
            updates_tx,
            updates_rx,
            teardown: None,
            admitted: None,
        };
        (runner, shared)
    }

    fn tasks(&self) -> Vec<Task> {
        self.job
            .group(&self.alloc.task_group)
            .map(|g| g.tasks.clone())
            .unwrap_or_default()
    }

    fn task_state(&self, name: &str) -> Option<&TaskState> {
        self.state.tasks.get(name)
    }

    fn is_dead(&self, name: &str) -> bool {
        self.task_state(name)
            .is_some_and(|s| s.state == TaskStatus::Dead)
    }

    /// Whether the allocation had finished before this runner was made.
    pub fn finished(&self) -> bool {
        self.state.finished_at > 0
    }

    /// Runs until every task is dead and the final state is recorded.
    /// `admitted` is its place among the allocations starting at once,
    /// given back once the first starts are over.
    pub async fn run(mut self, admitted: Option<smol::lock::SemaphoreGuardArc>) {
        if self.finished() {
            return;
        }
        self.admitted = admitted;
        let names: Vec<String> = self.tasks().iter().map(|t| t.name.clone()).collect();
        for n in &names {
            self.state
                .tasks
                .entry(n.clone())
                .or_insert_with(task_runner::pending_state);
        }
        if self.job.group(&self.alloc.task_group).is_none() {
            self.fail_all(&format!(
                "group {} is not in job {} version {}",
                self.alloc.task_group, self.job.id, self.job.version
            ));
        } else if let Err(e) = self.dir.build() {
            self.fail_all(&format!("building the allocation directory: {e}"));
        } else if self.alloc.desired_status != wren_model::DesiredStatus::Run {
            self.teardown = Some(self.alloc.desired_description.clone());
        }
        if self.state.stopped_locally.is_some() && self.teardown.is_none() {
            self.teardown = self.state.stopped_locally.clone();
        }
        self.advance();
        self.commit().await;
        self.release_start();
        loop {
            if self.done() {
                break;
            }
            let rx = self.rx.clone();
            let urx = self.updates_rx.clone();
            let msg = async { Either::Msg(rx.recv().await.ok()) }
                .or(async { Either::Task(urx.recv().await.ok()) })
                .await;
            match msg {
                Either::Msg(Some(m)) => self.on_msg(m),
                // The client dropped the runner: the agent is stopping.
                Either::Msg(None) => return,
                Either::Task(Some(u)) => self.on_task(u),
                Either::Task(None) => {}
            }
            self.advance();
            self.commit().await;
            self.release_start();
        }
        self.state.finished_at = now_nanos();
        self.commit().await;
    }

    /// Gives back the allocation's place among those starting once every
    /// task it started has reported.
    fn release_start(&mut self) {
        if self.admitted.is_some() && self.live.values().all(|l| l.reported) {
            self.admitted = None;
        }
    }

    fn done(&self) -> bool {
        self.live.is_empty()
            && self
                .state
                .tasks
                .values()
                .all(|s| s.state == TaskStatus::Dead)
    }

    fn on_msg(&mut self, msg: AllocMsg) {
        match msg {
            AllocMsg::Update { alloc, job } => {
                let stop = alloc.desired_status != wren_model::DesiredStatus::Run;
                let reason = if alloc.desired_description.is_empty() {
                    "allocation stopped by the servers".to_owned()
                } else {
                    alloc.desired_description.clone()
                };
                self.alloc = alloc.clone();
                self.job = job.clone();
                {
                    let mut v = self.shared.lock();
                    v.alloc = alloc.clone();
                    v.job = job.clone();
                }
                for l in self.live.values() {
                    let _ = l.cmd.try_send(TaskCmd::Update {
                        alloc: alloc.clone(),
                        job: job.clone(),
                    });
                }
                if stop && self.teardown.is_none() {
                    self.teardown = Some(reason);
                }
            }
            AllocMsg::Stop { reason, local } => {
                if local {
                    self.state.stopped_locally = Some(reason.clone());
                }
                if self.teardown.is_none() {
                    self.teardown = Some(reason);
                }
            }
            AllocMsg::Restart { task, reply } => {
                let targets: Vec<String> = match &task {
                    Some(t) => vec![t.clone()],
                    None => self.live.keys().cloned().collect(),
                };
                let mut sent = 0;
                for t in &targets {
                    if let Some(l) = self.live.get(t).filter(|l| !l.kill_sent) {
                        let _ = l.cmd.try_send(TaskCmd::Restart {
                            reason: "User requested restart".to_owned(),
                        });
                        sent += 1;
                    }
                }
                let answer = if sent > 0 {
                    Ok(())
                } else {
                    Err(match task {
                        Some(t) => format!("task {t} is not running"),
                        None => "no task is running".to_owned(),
                    })
                };
                let _ = reply.try_send(answer);
            }
        }
    }

    fn on_task(&mut self, u: TaskUpdate) {
        let finished = u.state.state == TaskStatus::Dead;
        self.state.tasks.insert(u.task.clone(), u.state);
        self.state.trackers.insert(u.task.clone(), u.tracker);
        if let Some(l) = self.live.get_mut(&u.task) {
            l.reported = true;
        }
        if finished {
            // The runner reports Dead last; its future then ends.
            self.live.remove(&u.task);
        }
    }

    /// Every task dead and failed, without having run.
    fn fail_all(&mut self, message: &str) {
        for s in self.state.tasks.values_mut() {
            push_event(s, event("Setup Failure", message));
            s.state = TaskStatus::Dead;
            s.failed = true;
            s.finished_at = now_nanos();
        }
        self.teardown = Some(message.to_owned());
    }

    fn spawn(&mut self, name: &str) {
        if self.live.contains_key(name) || self.is_dead(name) {
            return;
        }
        let (cmd, cmds) = smol::channel::unbounded();
        let mut state = self
            .task_state(name)
            .cloned()
            .unwrap_or_else(task_runner::pending_state);
        if state.events.is_empty() {
            push_event(&mut state, event("Received", "task received by client"));
        }
        let runner = TaskRunner {
            ctx: self.ctx.clone(),
            shared: self.shared.clone(),
            alloc: self.alloc.clone(),
            job: self.job.clone(),
            name: name.to_owned(),
            dir: self.dir.clone(),
            tracker: self.state.trackers.get(name).copied().unwrap_or_default(),
            state,
            cmds,
            out: self.updates_tx.clone(),
        };
        let task = self.ctx.ex.spawn(runner.run());
        self.live.insert(
            name.to_owned(),
            Live {
                cmd,
                _task: task,
                kill_sent: false,
                reported: false,
            },
        );
    }

    fn kill(&mut self, task: &Task, reason: &str) {
        let group_delay = self
            .job
            .group(&self.alloc.task_group)
            .and_then(|g| g.shutdown_delay)
            .unwrap_or_default();
        let delay = task.shutdown_delay.to_std().max(group_delay.to_std());
        if let Some(l) = self.live.get_mut(&task.name) {
            if !l.kill_sent {
                l.kill_sent = true;
                let _ = l.cmd.try_send(TaskCmd::Kill {
                    reason: reason.to_owned(),
                    delay,
                });
            }
        } else if !self.is_dead(&task.name) {
            // Never started (or between runs): dead without running.
            let s = self
                .state
                .tasks
                .entry(task.name.clone())
                .or_insert_with(task_runner::pending_state);
            push_event(s, event("Killed", reason));
            s.state = TaskStatus::Dead;
            s.finished_at = now_nanos();
        }
    }

    /// Starts and stops tasks as the lifecycle says, from the states.
    fn advance(&mut self) {
        let tasks = self.tasks();
        if self.teardown.is_none() {
            let failed = tasks
                .iter()
                .find(|t| self.task_state(&t.name).is_some_and(|s| s.failed));
            let leader_dead = tasks
                .iter()
                .find(|t| t.leader && self.is_dead(&t.name) && phase(t) != Phase::Poststop);
            let mains: Vec<&Task> = tasks.iter().filter(|t| phase(t) == Phase::Main).collect();
            let mains_dead = !mains.is_empty() && mains.iter().all(|t| self.is_dead(&t.name));
            self.teardown = if let Some(t) = failed {
                Some(format!("task {} failed", t.name))
            } else if let Some(t) = leader_dead {
                Some(format!("leader task {} is dead", t.name))
            } else if mains_dead {
                Some("main tasks are dead".to_owned())
            } else {
                None
            };
        }
        match self.teardown.clone() {
            None => self.start_phases(&tasks),
            Some(reason) => self.stop_phases(&tasks, &reason),
        }
    }

    fn start_phases(&mut self, tasks: &[Task]) {
        let mut prestart_ready = true;
        for t in tasks {
            if let Phase::Prestart { sidecar } = phase(t) {
                self.spawn(&t.name);
                let s = self.task_state(&t.name);
                let ready = if sidecar {
                    s.is_some_and(|s| s.state == TaskStatus::Running)
                } else {
                    s.is_some_and(|s| s.state == TaskStatus::Dead && !s.failed)
                };
                prestart_ready &= ready;
            }
        }
        if !prestart_ready {
            return;
        }
        let mut mains_started = true;
        for t in tasks.iter().filter(|t| phase(t) == Phase::Main) {
            self.spawn(&t.name);
            mains_started &= self.task_state(&t.name).is_some_and(|s| s.started_at > 0);
        }
        if mains_started {
            for t in tasks.iter().filter(|t| phase(t) == Phase::Poststart) {
                self.spawn(&t.name);
            }
        }
    }

    fn stop_phases(&mut self, tasks: &[Task], reason: &str) {
        let stages: [&dyn Fn(&Task) -> bool; 3] = [
            &|t: &Task| t.leader && phase(t) != Phase::Poststop,
            &|t: &Task| matches!(phase(t), Phase::Main | Phase::Poststart),
            &|t: &Task| matches!(phase(t), Phase::Prestart { .. }),
        ];
        for in_stage in stages {
            let stage: Vec<&Task> = tasks.iter().filter(|t| in_stage(t)).collect();
            for t in &stage {
                self.kill(t, reason);
            }
            if stage.iter().any(|t| !self.is_dead(&t.name)) {
                return;
            }
        }
        for t in tasks.iter().filter(|t| phase(t) == Phase::Poststop) {
            self.spawn(&t.name);
        }
    }

    /// Persists the state and queues an update when something changed.
    async fn commit(&mut self) {
        let names: Vec<String> = self.tasks().iter().map(|t| t.name.clone()).collect();
        let status = client_status(&self.state.tasks, &names);
        let description = match &self.teardown {
            Some(reason) if !reason.is_empty() => reason.clone(),
            _ => describe(status).to_owned(),
        };
        let changed = {
            let v = self.shared.lock();
            v.state != self.state
                || self.state.client_status != status
                || self.state.description != description
        };
        if !changed {
            return;
        }
        self.state.client_status = status;
        self.state.description = description;
        self.state.modify_time = now_nanos();
        // Under the view's lock, so a resend never queues an older state
        // over this one.
        {
            let mut view = self.shared.lock();
            view.state = self.state.clone();
            let update = update_of(&self.alloc.id, &self.state);
            self.ctx.record(&self.alloc.id, &self.state, &update);
        }
        if let Err(e) = self.ctx.db.durable_async().await {
            eprintln!("wren client: allocation {}: {e}", self.alloc.id);
        }
        self.ctx.wake_sender();
    }
}

/// The update that reports `state`.
pub fn update_of(alloc_id: &str, state: &AllocState) -> ClientAllocUpdate {
    ClientAllocUpdate {
        alloc_id: alloc_id.to_owned(),
        client_status: state.client_status,
        client_description: state.description.clone(),
        task_states: state.tasks.clone(),
        deployment_status: None,
        modify_time: state.modify_time,
    }
}

impl AllocShared {
    /// Queues the current state again (the servers' copy differs: they
    /// marked the allocation unknown while the node was away, or lost an
    /// update).
    pub fn resend(&self, ctx: &Ctx) {
        let view = self.lock();
        let update = update_of(&self.id, &view.state);
        if let Err(e) = ctx
            .db
            .queue_update(&update)
            .and_then(|_| ctx.db.durable_soft())
        {
            eprintln!("wren client: queueing allocation {}: {e}", self.id);
        }
        ctx.wake_sender();
    }
}

fn describe(status: ClientStatus) -> &'static str {
    match status {
        ClientStatus::Pending => "No tasks have started",
        ClientStatus::Running => "Tasks are running",
        ClientStatus::Complete => "All tasks have completed",
        ClientStatus::Failed => "Failed tasks",
        ClientStatus::Lost => "Lost",
        ClientStatus::Unknown => "Unknown",
    }
}

enum Either {
    Msg(Option<AllocMsg>),
    Task(Option<TaskUpdate>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: TaskStatus, failed: bool) -> TaskState {
        TaskState {
            state,
            failed,
            ..TaskState::default()
        }
    }

    #[test]
    fn status_follows_the_tasks() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let mut m = VecMap::new();
        assert_eq!(client_status(&m, &names), ClientStatus::Pending);
        m.insert("a".to_owned(), st(TaskStatus::Running, false));
        assert_eq!(client_status(&m, &names), ClientStatus::Running);
        m.insert("a".to_owned(), st(TaskStatus::Dead, false));
        assert_eq!(client_status(&m, &names), ClientStatus::Pending);
        m.insert("b".to_owned(), st(TaskStatus::Dead, false));
        assert_eq!(client_status(&m, &names), ClientStatus::Complete);
        m.insert("b".to_owned(), st(TaskStatus::Running, true));
        assert_eq!(client_status(&m, &names), ClientStatus::Failed);
    }
}
