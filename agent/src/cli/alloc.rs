//! `wren alloc status|logs|stop|signal|restart|exec`.
//!
//! `status` and `stop` ask the servers. `logs`, `signal`, `restart` and
//! `exec` ask the servers where the allocation runs (its node's advertised
//! address), then talk to that client agent directly; `--node ADDR` skips
//! the servers (useful when they are out of reach). Allocation ids may be
//! shortened to a unique prefix, as with Nomad.

use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use argh::FromArgs;
use smol::Executor;
use wren_model::{Allocation, TaskState};

use crate::api::{
    AllocDetail, AllocStub, EvalResponse, ExecRequest, ExecResponse, LogChunk, RestartRequest,
    SignalRequest,
};
use crate::wire::{Address, ApiFlags, Client, ClientError, Method, api_command};

/// Work with allocations.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "alloc")]
pub struct AllocCmd {
    #[argh(subcommand)]
    command: AllocSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum AllocSub {
    Status(StatusCmd),
    Logs(LogsCmd),
    Stop(StopCmd),
    Signal(SignalCmd),
    Restart(RestartCmd),
    Exec(ExecCmd),
}

api_command! {
    /// Show an allocation: its status, tasks and their recent events.
    #[argh(subcommand, name = "status")]
    struct StatusCmd {
        /// print JSON
        #[argh(switch)]
        json: bool,
        /// the allocation id (or a unique prefix)
        #[argh(positional)]
        id: String,
    }
}

api_command! {
    /// Print a task's output (stdout unless --stderr).
    #[argh(subcommand, name = "logs")]
    struct LogsCmd {
        /// keep printing as the task writes
        #[argh(switch, short = 'f')]
        follow: bool,
        /// print stderr instead of stdout
        #[argh(switch)]
        stderr: bool,
        /// the client agent's address (default: asked of the servers)
        #[argh(option)]
        node: Option<String>,
        /// the allocation id (or a unique prefix)
        #[argh(positional)]
        id: String,
        /// the task (needed when the group has several)
        #[argh(positional)]
        task: Option<String>,
    }
}

api_command! {
    /// Stop an allocation; the scheduler replaces it where its job says so.
    #[argh(subcommand, name = "stop")]
    struct StopCmd {
        /// the allocation id (or a unique prefix)
        #[argh(positional)]
        id: String,
    }
}

api_command! {
    /// Send a signal to an allocation's tasks (or one task).
    #[argh(subcommand, name = "signal")]
    struct SignalCmd {
        /// the signal (default SIGKILL, as Nomad's)
        #[argh(option, short = 's', default = "String::from(\"SIGKILL\")")]
        signal: String,
        /// the client agent's address (default: asked of the servers)
        #[argh(option)]
        node: Option<String>,
        /// the allocation id (or a unique prefix)
        #[argh(positional)]
        id: String,
        /// the task (default: every task)
        #[argh(positional)]
        task: Option<String>,
    }
}

api_command! {
    /// Restart an allocation's running tasks (or one task) in place.
    #[argh(subcommand, name = "restart")]
    struct RestartCmd {
        /// the client agent's address (default: asked of the servers)
        #[argh(option)]
        node: Option<String>,
        /// the allocation id (or a unique prefix)
        #[argh(positional)]
        id: String,
        /// the task (default: every running task)
        #[argh(positional)]
        task: Option<String>,
    }
}

api_command! {
    /// Run a command in a task's environment (raw_exec tasks) and print its
    /// output: wren alloc exec ID -- CMD ARGS...
    #[argh(subcommand, name = "exec")]
    struct ExecCmd {
        /// the task (needed when the group has several)
        #[argh(option)]
        task: Option<String>,
        /// the client agent's address (default: asked of the servers)
        #[argh(option)]
        node: Option<String>,
        /// the allocation id (or a unique prefix)
        #[argh(positional)]
        id: String,
        /// the command and its arguments
        #[argh(positional, greedy)]
        command: Vec<String>,
    }
}

/// Runs `f` on a fresh executor driven by this thread.
fn run<T, F: Future<Output = anyhow::Result<T>>>(
    f: impl FnOnce(Arc<Executor<'static>>) -> F,
) -> anyhow::Result<T> {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(f(ex.clone())))
}

fn servers(flags: &ApiFlags, ex: &Arc<Executor<'static>>) -> anyhow::Result<Client> {
    let config = flags.resolve()?;
    Ok(Client::new(config, ex.clone())?)
}

/// A client of the agent at `addr`, with the CLI's certificate.
fn node_client(
    flags: &ApiFlags,
    addr: &str,
    ex: &Arc<Executor<'static>>,
) -> anyhow::Result<Client> {
    let mut config = flags.resolve()?;
    config.addresses = vec![
        addr.parse::<Address>()
            .with_context(|| format!("node address {addr}"))?,
    ];
    Ok(Client::to_node(config, ex.clone())?)
}

/// The allocation `id` names, exactly or as a unique prefix.
async fn find(client: &Client, id: &str) -> anyhow::Result<AllocDetail> {
    match client.get::<AllocDetail>(&format!("/v1/alloc/{id}")).await {
        Ok((d, _)) => return Ok(d),
        Err(ClientError::Api(e)) if e.code == coap_lite::ResponseType::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let (stubs, _): (Vec<AllocStub>, _) = client.get("/v1/allocs").await?;
    let matches: Vec<&AllocStub> = stubs.iter().filter(|a| a.id.starts_with(id)).collect();
    match matches.as_slice() {
        [one] => Ok(client
            .get::<AllocDetail>(&format!("/v1/alloc/{}", one.id))
            .await?
            .0),
        [] => bail!("no allocation with id or prefix {id}"),
        many => {
            let ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
            bail!(
                "prefix {id} matches several allocations: {}",
                ids.join(", ")
            )
        }
    }
}

/// The node agent and the full allocation id, from `--node` or the servers.
async fn locate(
    flags: &ApiFlags,
    node: Option<&str>,
    id: &str,
    ex: &Arc<Executor<'static>>,
) -> anyhow::Result<(Client, String, Option<AllocDetail>)> {
    if let Some(addr) = node {
        return Ok((node_client(flags, addr, ex)?, id.to_owned(), None));
    }
    let detail = find(&servers(flags, ex)?, id).await?;
    if detail.node_address.is_empty() {
        bail!(
            "allocation {} is on node {}, whose address is unknown",
            detail.alloc.id,
            detail.alloc.node_id
        );
    }
    let client = node_client(flags, &detail.node_address, ex)?;
    Ok((client, detail.alloc.id.clone(), Some(detail)))
}

/// The task to use: the one given, else the group's only task.
fn pick_task(detail: Option<&AllocDetail>, task: Option<String>) -> anyhow::Result<String> {
    if let Some(t) = task {
        return Ok(t);
    }
    let Some(d) = detail else {
        bail!("name the task (with --node the group's tasks are not known)");
    };
    let names: Vec<&str> = match &d.job {
        Some(job) => job
            .group(&d.alloc.task_group)
            .map(|g| g.tasks.iter().map(|t| t.name.as_str()).collect())
            .unwrap_or_default(),
        None => d.alloc.task_states.keys().map(String::as_str).collect(),
    };
    match names.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => bail!("allocation {} has no tasks", d.alloc.id),
        many => bail!(
            "allocation {} has several tasks; name one of: {}",
            d.alloc.id,
            many.join(", ")
        ),
    }
}

impl AllocCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            AllocSub::Status(c) => c.run(),
            AllocSub::Logs(c) => c.run(),
            AllocSub::Stop(c) => c.run(),
            AllocSub::Signal(c) => c.run(),
            AllocSub::Restart(c) => c.run(),
            AllocSub::Exec(c) => c.run(),
        }
    }
}

impl StatusCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let flags = self.api_flags();
        let detail = run(|ex| async move { find(&servers(&flags, &ex)?, &self.id).await })?;
        if self.json {
            println!("{}", wren_model::codec::to_json_pretty(&detail));
        } else {
            print!("{}", status_text(&detail));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Unix nanoseconds as `2024-05-01T12:00:00Z` (UTC), `-` for zero.
pub fn fmt_time(nanos: i64) -> String {
    if nanos <= 0 {
        return "-".to_owned();
    }
    let secs = nanos / 1_000_000_000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn task_text(out: &mut String, name: &str, s: &TaskState) {
    use std::fmt::Write as _;
    let failed = if s.failed { " (failed)" } else { "" };
    let _ = writeln!(out, "\nTask {name:?} is {:?}{failed}", s.state.as_str());
    let _ = writeln!(
        out,
        "Restarts = {}  Started = {}  Finished = {}",
        s.restarts,
        fmt_time(s.started_at),
        fmt_time(s.finished_at)
    );
    let _ = writeln!(out, "Recent Events:");
    let _ = writeln!(out, "{:<22}  {:<18}  Description", "Time", "Type");
    for e in s.events.iter().rev() {
        let _ = writeln!(
            out,
            "{:<22}  {:<18}  {}",
            fmt_time(e.time),
            e.kind,
            e.message
        );
    }
}

/// The human-readable `alloc status`.
pub fn status_text(d: &AllocDetail) -> String {
    use std::fmt::Write as _;
    let a: &Allocation = &d.alloc;
    let mut out = String::new();
    let rows = [
        ("ID", a.id.clone()),
        ("Name", a.name.clone()),
        ("Node ID", a.node_id.clone()),
        ("Node Name", a.node_name.clone()),
        ("Node Address", d.node_address.clone()),
        ("Job ID", a.job_id.clone()),
        ("Job Version", a.job_version.to_string()),
        ("Client Status", a.client_status.as_str().to_owned()),
        ("Client Description", a.client_description.clone()),
        ("Desired Status", a.desired_status.as_str().to_owned()),
        ("Desired Description", a.desired_description.clone()),
        ("Created", fmt_time(a.create_time)),
        ("Modified", fmt_time(a.modify_time)),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<19} = {v}");
    }
    for (name, s) in &a.task_states {
        task_text(&mut out, name, s);
    }
    out
}

impl LogsCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let flags = self.api_flags();
        run(|ex| async move {
            let (node, id, detail) = locate(&flags, self.node.as_deref(), &self.id, &ex).await?;
            let task = pick_task(detail.as_ref(), self.task.clone())?;
            let kind = if self.stderr { "stderr" } else { "stdout" };
            let path = format!("/v1/client/fs/logs/{id}/{task}?type={kind}");
            let mut out = std::io::stdout().lock();
            if self.follow {
                let mut obs = node.observe(&format!("{path}&offset=0"));
                let mut next = 0u64;
                while let Some(item) = obs.next().await {
                    let Ok(resp) = item else { continue };
                    if let Some(e) = resp.as_error() {
                        bail!("{e}");
                    }
                    let chunk: LogChunk = resp.decode()?;
                    // After a failover the stream may repeat what was printed.
                    let skip = next.saturating_sub(chunk.offset);
                    let data = chunk
                        .data
                        .get(usize::try_from(skip).unwrap_or(usize::MAX)..);
                    if let Some(d) = data {
                        out.write_all(d)?;
                        out.flush()?;
                    }
                    next = next.max(chunk.offset + chunk.data.len() as u64);
                    if chunk.eof {
                        break;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut offset = 0u64;
            loop {
                let (chunk, _): (LogChunk, _) =
                    node.get(&format!("{path}&offset={offset}")).await?;
                out.write_all(&chunk.data)?;
                if chunk.data.is_empty() {
                    break;
                }
                offset = chunk.offset + chunk.data.len() as u64;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        })
    }
}

impl StopCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let flags = self.api_flags();
        run(|ex| async move {
            let client = servers(&flags, &ex)?;
            let detail = find(&client, &self.id).await?;
            let reply = client
                .request(
                    Method::Post,
                    &format!("/v1/alloc/{}/stop", detail.alloc.id),
                    &[],
                )
                .await?;
            if let Some(e) = reply.as_error() {
                bail!("{e}");
            }
            let resp: EvalResponse = reply.decode()?;
            match resp.eval_id {
                Some(eval) => println!(
                    "Allocation {} stopping (evaluation {eval})",
                    detail.alloc.id
                ),
                None => println!("Allocation {} stopping", detail.alloc.id),
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}

async fn post_to_node<B: minicbor::Encode<()>>(
    node: &Client,
    path: &str,
    body: &B,
) -> anyhow::Result<()> {
    let bytes = wren_model::codec::to_cbor(body);
    let resp = node.request(Method::Post, path, &bytes).await?;
    if let Some(e) = resp.as_error() {
        bail!("{e}");
    }
    Ok(())
}

impl SignalCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let flags = self.api_flags();
        run(|ex| async move {
            let (node, id, _) = locate(&flags, self.node.as_deref(), &self.id, &ex).await?;
            let body = SignalRequest {
                task: self.task.clone(),
                signal: self.signal.clone(),
            };
            post_to_node(&node, &format!("/v1/client/alloc/{id}/signal"), &body).await?;
            Ok(ExitCode::SUCCESS)
        })
    }
}

impl RestartCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let flags = self.api_flags();
        run(|ex| async move {
            let (node, id, _) = locate(&flags, self.node.as_deref(), &self.id, &ex).await?;
            let body = RestartRequest {
                task: self.task.clone(),
            };
            post_to_node(&node, &format!("/v1/client/alloc/{id}/restart"), &body).await?;
            Ok(ExitCode::SUCCESS)
        })
    }
}

impl ExecCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        if self.command.is_empty() {
            bail!("give the command to run: wren alloc exec ID -- CMD ARGS...");
        }
        let flags = self.api_flags();
        let resp = run(|ex| async move {
            let (node, id, detail) = locate(&flags, self.node.as_deref(), &self.id, &ex).await?;
            let task = pick_task(detail.as_ref(), self.task.clone())?;
            let body = ExecRequest {
                task,
                command: self.command.clone(),
            };
            let (resp, _): (ExecResponse, _) = node
                .send(Method::Post, &format!("/v1/client/alloc/{id}/exec"), &body)
                .await?;
            Ok(resp)
        })?;
        std::io::stdout().write_all(&resp.stdout)?;
        std::io::stderr().write_all(&resp.stderr)?;
        Ok(ExitCode::from(u8::try_from(resp.exit_code).unwrap_or(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(fmt_time(0), "-");
        assert_eq!(fmt_time(1_000_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(fmt_time(1_714_564_800_000_000_000), "2024-05-01T12:00:00Z");
        assert_eq!(fmt_time(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn flags_parse() {
        let c = AllocCmd::from_args(&["alloc"], &["logs", "-f", "--stderr", "abc", "web"]).unwrap();
        let AllocSub::Logs(l) = c.command else {
            panic!("logs")
        };
        assert!(l.follow && l.stderr);
        assert_eq!(l.task.as_deref(), Some("web"));
        let c = AllocCmd::from_args(
            &["alloc"],
            &["exec", "--task", "web", "abc", "--", "ls", "-l"],
        )
        .unwrap();
        let AllocSub::Exec(e) = c.command else {
            panic!("exec")
        };
        assert_eq!(e.command, ["ls", "-l"]);
        let c = AllocCmd::from_args(&["alloc"], &["signal", "-s", "SIGHUP", "abc"]).unwrap();
        let AllocSub::Signal(s) = c.command else {
            panic!("signal")
        };
        assert_eq!(s.signal, "SIGHUP");
    }
}
