//! The client node's own endpoints, for the CLI (and servers), on the
//! agent's listener:
//!
//! - `GET /v1/client/fs/logs/<alloc>/<task>?type=stdout|stderr&offset=N`:
//!   a [`LogChunk`] of the task's log from `offset`; observable, so
//!   `alloc logs -f` gets each new piece as a notification (the index is
//!   the stream offset plus one). The last chunk of a task that is dead for
//!   good has `eof` set and ends the observation.
//! - `POST /v1/client/alloc/<id>/signal`, `.../restart`: a signal to one
//!   task or all, a restart of one running task or all (not counted by the
//!   restart policy).
//! - `POST /v1/client/alloc/<id>/exec`: a command run as the task runs,
//!   where the driver allows it: raw_exec (the task's user, directory,
//!   environment and cgroup). Sandboxed drivers (exec, qemu) refuse with a
//!   clear error: entering a task's sandbox is not offered by the runtimes.
//! - `GET /v1/client/node`: the node as this client sees it, answerable
//!   while no server is.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::ResponseType;
use wren_model::TaskStatus;
use wren_runtimes::logs::Rotation;

use super::Core;
use super::alloc_runner::{AllocMsg, AllocShared};
use super::logs::{MAX_CHUNK, Stream};
use crate::api::{
    AllocStub, ClientNodeStatus, ExecRequest, ExecResponse, LogChunk, RestartRequest, SignalRequest,
};
use crate::wire::{ApiError, HandlerResult, Method, Request, Response, Roles, Router};

/// How long a follow (observation) waits for new output before answering
/// anyway.
const FOLLOW_WAIT: Duration = Duration::from_secs(300);
/// How often a follow looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Longest an exec'd command may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(300);
/// Most output kept per stream of an exec'd command.
const EXEC_OUTPUT: u64 = 1 << 20;

/// Registers the endpoints on `router`.
pub fn register(core: &Arc<Core>, router: &mut Router) {
    let roles = Roles::CLI | Roles::SERVER;
    let c = core.clone();
    router.observable("/v1/client/fs/logs/:alloc/:task", roles, move |req| {
        logs(c.clone(), req)
    });
    let c = core.clone();
    router.route(
        Method::Post,
        "/v1/client/alloc/:id/signal",
        roles,
        move |req| signal(c.clone(), req),
    );
    let c = core.clone();
    router.route(
        Method::Post,
        "/v1/client/alloc/:id/restart",
        roles,
        move |req| restart(c.clone(), req),
    );
    let c = core.clone();
    router.route(
        Method::Post,
        "/v1/client/alloc/:id/exec",
        roles,
        move |req| exec(c.clone(), req),
    );
    let c = core.clone();
    router.route(Method::Get, "/v1/client/node", roles, move |req| {
        node(c.clone(), req)
    });
}

fn alloc_of(core: &Core, req: &Request, param: &str) -> Result<Arc<AllocShared>, ApiError> {
    let id = req.param(param).unwrap_or_default();
    core.alloc(id)
        .ok_or_else(|| ApiError::not_found(format!("allocation {id} is not on this node")))
}

async fn logs(core: Arc<Core>, req: Request) -> HandlerResult {
    let shared = alloc_of(&core, &req, "alloc")?;
    let task_name = req.param("task").unwrap_or_default().to_owned();
    let kind = match req.query("type").unwrap_or("stdout") {
        k @ ("stdout" | "stderr") => k,
        other => {
            return Err(ApiError::bad_request(format!(
                "type={other}: use stdout or stderr"
            )));
        }
    };
    let view = shared.view();
    let Some(task) = view
        .job
        .group(&view.alloc.task_group)
        .and_then(|g| g.task(&task_name))
        .cloned()
    else {
        return Err(ApiError::not_found(format!(
            "allocation {} has no task {task_name}",
            shared.id
        )));
    };
    let offset = if req.min_index > 0 {
        req.min_index - 1
    } else {
        match req.query("offset") {
            None | Some("") => 0,
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("offset={v}: not a whole number")))?,
        }
    };
    let rotation = Rotation::from_config(&task.logs);
    let stream = Stream::new(
        &view.dir.join("alloc").join("logs"),
        &task_name,
        kind,
        rotation.max_file_bytes,
    );
    // A plain read answers at once; a follow (observation after the first
    // answer) waits for output.
    let wait = req.observe && req.min_index > 0;
    let deadline = Instant::now() + FOLLOW_WAIT;
    loop {
        // The state is read before the file: output written before the task
        // died is then in the read.
        let dead = shared.with_view(|v| {
            v.state
                .tasks
                .get(&task_name)
                .is_some_and(|s| s.state == TaskStatus::Dead)
        });
        let s = stream.clone();
        let piece = smol::unblock(move || s.read(offset, MAX_CHUNK))
            .await
            .map_err(|e| ApiError::internal(format!("reading the log of {task_name}: {e}")))?;
        let next = piece.offset + piece.data.len() as u64;
        let eof = dead && next >= piece.end;
        if !piece.data.is_empty() || eof || !wait || Instant::now() >= deadline {
            let chunk = LogChunk {
                offset: piece.offset,
                data: piece.data,
                eof,
            };
            let resp = req.reply(&chunk);
            // Without an index the observation ends: nothing more will come.
            return Ok(if eof { resp } else { resp.with_index(next + 1) });
        }
        smol::Timer::after(FOLLOW_POLL).await;
    }
}

async fn signal(core: Arc<Core>, req: Request) -> HandlerResult {
    let shared = alloc_of(&core, &req, "id")?;
    let body: SignalRequest = req.decode()?;
    let view = shared.view();
    let targets: Vec<_> = view
        .tasks
        .iter()
        .filter(|(name, _)| body.task.as_ref().is_none_or(|t| t == *name))
        .filter_map(|(name, t)| t.handle.clone().map(|h| (name.clone(), h)))
        .collect();
    if targets.is_empty() {
        return Err(ApiError::conflict(match &body.task {
            Some(t) => format!("task {t} of allocation {} is not running", shared.id),
            None => format!("no task of allocation {} is running", shared.id),
        }));
    }
    for (name, handle) in targets {
        let driver = core
            .ctx
            .drivers
            .get(handle.driver.as_str())
            .ok_or_else(|| ApiError::internal(format!("driver {} is gone", handle.driver)))?;
        driver.signal(&handle, &body.signal).map_err(|e| match e {
            wren_runtimes::DriverError::BadSignal(_) => ApiError::bad_request(e.to_string()),
            wren_runtimes::DriverError::NotRunning(_) => ApiError::conflict(e.to_string()),
            other => ApiError::internal(format!("signalling {name}: {other}")),
        })?;
    }
    Ok(Response::empty(ResponseType::Changed))
}

async fn restart(core: Arc<Core>, req: Request) -> HandlerResult {
    let shared = alloc_of(&core, &req, "id")?;
    let body: RestartRequest = if req.body.is_empty() {
        RestartRequest::default()
    } else {
        req.decode()?
    };
    let (reply, answer) = smol::channel::bounded(1);
    shared
        .tx
        .send(AllocMsg::Restart {
            task: body.task,
            reply,
        })
        .await
        .map_err(|_| ApiError::conflict(format!("allocation {} has finished", shared.id)))?;
    match answer.recv().await {
        Ok(Ok(())) => Ok(Response::empty(ResponseType::Changed)),
        Ok(Err(message)) => Err(ApiError::conflict(message)),
        Err(_) => Err(ApiError::conflict(format!(
            "allocation {} has finished",
            shared.id
        ))),
    }
}

async fn exec(core: Arc<Core>, req: Request) -> HandlerResult {
    let shared = alloc_of(&core, &req, "id")?;
    let body: ExecRequest = req.decode()?;
    let Some((program, args)) = body.command.split_first() else {
        return Err(ApiError::bad_request("exec needs a command"));
    };
    let view = shared.view();
    let task = view.tasks.get(&body.task).ok_or_else(|| {
        ApiError::not_found(format!(
            "allocation {} has no running task {}",
            shared.id, body.task
        ))
    })?;
    let Some(handle) = task.handle.clone() else {
        return Err(ApiError::conflict(format!(
            "task {} of allocation {} is not running",
            body.task, shared.id
        )));
    };
    if task.driver != "raw_exec" {
        return Err(ApiError::new(
            ResponseType::NotImplemented,
            format!(
                "task {} runs under the {} driver, whose sandbox cannot be entered by alloc exec; only raw_exec tasks support exec",
                body.task, task.driver
            ),
        ));
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(&task.env)
        .current_dir(&task.task_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if !task.user.is_empty() {
        let user = wren_runtimes::users::resolve(&task.user)
            .map_err(|e| ApiError::internal(format!("task user {}: {e}", task.user)))?;
        std::os::unix::process::CommandExt::uid(&mut cmd, user.uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, user.gid);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::bad_request(format!("running {program}: {e}")))?;
    // Accounted with the task: the command joins its cgroup.
    for procs in handle.cgroup.procs_files() {
        let _ = std::fs::write(procs, child.id().to_string());
    }
    let pid = child.id();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let stdout = smol::unblock(move || capture(out));
    let stderr = smol::unblock(move || capture(err));
    let waited = smol::future::FutureExt::or(
        async { Some(smol::unblock(move || child.wait()).await) },
        async {
            smol::Timer::after(EXEC_TIMEOUT).await;
            None
        },
    )
    .await;
    let status = match waited {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(ApiError::internal(format!("waiting for {program}: {e}"))),
        None => {
            if let Ok(p) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return Err(ApiError::new(
                ResponseType::GatewayTimeout,
                format!(
                    "{program} did not finish within {}s",
                    EXEC_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(req.reply(&ExecResponse {
        exit_code,
        stdout: stdout.await,
        stderr: stderr.await,
    }))
}

/// The first [`EXEC_OUTPUT`] bytes of a pipe; the rest is drained so the
/// command never blocks on a full pipe.
fn capture<R: Read>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = (&mut p).take(EXEC_OUTPUT).read_to_end(&mut buf);
        let _ = std::io::copy(&mut p, &mut std::io::sink());
    }
    buf
}

async fn node(core: Arc<Core>, req: Request) -> HandlerResult {
    let status = core.status();
    let node = core.node();
    let mut allocs: Vec<AllocStub> = core
        .allocs()
        .iter()
        .map(|s| {
            s.with_view(|v| {
                let mut stub = AllocStub::from(v.alloc.as_ref());
                stub.client_status = v.state.client_status;
                stub.modify_time = v.state.modify_time.max(stub.modify_time);
                stub
            })
        })
        .collect();
    allocs.sort_by_key(|a| std::cmp::Reverse(a.create_time));
    let pending = core.ctx.db.pending_updates().map(|p| p.len()).unwrap_or(0);
    Ok(req.reply(&ClientNodeStatus {
        node,
        connected: status.connected,
        last_contact: status.last_contact,
        heartbeat_ttl: status.heartbeat_ttl,
        servers: status.servers,
        last_error: status.last_error,
        allocs,
        pending_updates: u32::try_from(pending).unwrap_or(u32::MAX),
    }))
}
