//! `wren eval status ID` and `wren eval list`, and the monitor that `job
//! run` and `job stop` use to watch an evaluation (an observation of
//! `/v1/eval/<id>`) until it finishes, printing what it placed or why it
//! could not.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argh::FromArgs;
use smol::future::FutureExt as _;
use wren_model::{AllocMetric, EvalStatus, Evaluation, TriggeredBy};

use super::format::{self, columns, kv, short};
use super::remote::{self, Kind, Remote, with_query};
use crate::api::AllocStub;
use crate::wire::ClientError;

/// Work with evaluations.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "eval")]
pub struct EvalCmd {
    #[argh(subcommand)]
    command: EvalSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum EvalSub {
    Status(StatusCmd),
    List(ListCmd),
}

crate::wire::api_command! {
    /// Show an evaluation: its status, what triggered it, what it placed
    /// and why placements failed.
    #[argh(subcommand, name = "status")]
    pub struct StatusCmd {
        /// print JSON
        #[argh(switch)]
        json: bool,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// answer from any server, possibly behind the leader
        #[argh(switch)]
        stale: bool,
        /// watch the evaluation until it finishes
        #[argh(switch)]
        monitor: bool,
        /// the evaluation id, or a unique prefix of it
        #[argh(positional)]
        id: String,
    }
}

crate::wire::api_command! {
    /// List evaluations, newest first.
    #[argh(subcommand, name = "list")]
    pub struct ListCmd {
        /// print JSON
        #[argh(switch)]
        json: bool,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// answer from any server, possibly behind the leader
        #[argh(switch)]
        stale: bool,
        /// only this job's evaluations
        #[argh(option)]
        job: Option<String>,
    }
}

impl EvalCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            EvalSub::Status(cmd) => cmd.run(),
            EvalSub::List(cmd) => cmd.run(),
        }
    }
}

/// Finds an evaluation by id or unique id prefix.
pub fn find_eval(remote: &Remote, id: &str, stale: bool) -> anyhow::Result<Evaluation> {
    const EVALS: Kind = Kind {
        one: "/v1/eval",
        list: "/v1/evals",
        noun: "evaluation",
        plural: "evaluations",
    };
    remote.find(&EVALS, id, stale, |e: &Evaluation| &e.id)
}

impl StatusCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let eval = find_eval(&remote, &self.id, self.stale)?;
        if self.monitor {
            return monitor(&remote, &eval.id, None, self.verbose);
        }
        if self.json {
            format::print_json(&eval);
            return Ok(ExitCode::SUCCESS);
        }
        let allocs: Vec<AllocStub> = remote.get(&with_query(
            &format!("/v1/eval/{}/allocations", eval.id),
            &[remote::stale(self.stale)],
        ))?;
        print!("{}", describe(&eval, &allocs, self.verbose));
        Ok(ExitCode::SUCCESS)
    }
}

impl ListCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let evals: Vec<Evaluation> = remote.get(&with_query(
            "/v1/evals",
            &[remote::stale(self.stale), ("job", self.job.as_deref())],
        ))?;
        if self.json {
            format::print_json(&evals);
            return Ok(ExitCode::SUCCESS);
        }
        if evals.is_empty() {
            println!("No evals found");
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows = vec![
            [
                "ID",
                "Priority",
                "Triggered By",
                "Job ID",
                "Node ID",
                "Status",
                "Placement Failures",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for e in &evals {
            rows.push(vec![
                short(&e.id, self.verbose),
                e.priority.to_string(),
                e.triggered_by.to_string(),
                e.job_id.clone(),
                e.node_id
                    .as_deref()
                    .map_or_else(|| "<none>".to_owned(), |n| short(n, self.verbose)),
                e.status.to_string(),
                (!e.failed_tg_allocs.is_empty()).to_string(),
            ]);
        }
        print!("{}", columns(&rows));
        Ok(ExitCode::SUCCESS)
    }
}

/// `eval status`'s text.
pub fn describe(eval: &Evaluation, allocs: &[AllocStub], verbose: bool) -> String {
    let mut out = kv(&[
        ("ID", short(&eval.id, verbose)),
        ("Create Time", format::time(eval.create_time)),
        ("Modify Time", format::time(eval.modify_time)),
        ("Status", eval.status.to_string()),
        (
            "Status Description",
            if eval.status_description.is_empty() {
                eval.status.to_string()
            } else {
                eval.status_description.clone()
            },
        ),
        ("Type", eval.job_type.to_string()),
        ("TriggeredBy", eval.triggered_by.to_string()),
        ("Job ID", eval.job_id.clone()),
        ("Priority", eval.priority.to_string()),
        (
            "Placement Failures",
            (!eval.failed_tg_allocs.is_empty()).to_string(),
        ),
    ]);
    if !allocs.is_empty() {
        out.push_str("\nAllocations\n");
        let mut rows = vec![
            ["ID", "Node ID", "Task Group", "Desired", "Status"]
                .map(String::from)
                .to_vec(),
        ];
        for a in allocs {
            rows.push(vec![
                short(&a.id, verbose),
                short(&a.node_id, verbose),
                a.task_group.clone(),
                a.desired_status.to_string(),
                a.client_status.to_string(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if !eval.failed_tg_allocs.is_empty() {
        out.push_str("\nFailed Placements\n");
        out.push_str(&failures(eval, verbose));
    }
    out
}

/// Why each group's placements failed, in Nomad's words.
pub fn failures(eval: &Evaluation, verbose: bool) -> String {
    let mut out = String::new();
    for (group, m) in &eval.failed_tg_allocs {
        let n = m.coalesced_failures.saturating_add(1);
        let _ = writeln!(
            out,
            "    Task Group {group:?} (failed to place {n} allocation{}):",
            if n == 1 { "" } else { "s" }
        );
        for line in metric_lines(m) {
            let _ = writeln!(out, "      * {line}");
        }
    }
    if let Some(b) = &eval.blocked_eval {
        let _ = writeln!(
            out,
            "    Evaluation {:?} waiting for additional capacity to place remainder",
            short(b, verbose)
        );
    }
    out
}

/// The lines explaining one group's failed placements.
pub fn metric_lines(m: &AllocMetric) -> Vec<String> {
    let mut lines = Vec::new();
    if m.nodes_evaluated == 0 {
        lines.push("No nodes were eligible for evaluation".to_owned());
    }
    for (dc, n) in &m.nodes_available {
        if *n == 0 {
            lines.push(format!("No nodes are available in datacenter {dc:?}"));
        }
    }
    for (class, n) in &m.class_filtered {
        lines.push(format!("Class {class:?}: {n} nodes excluded by filter"));
    }
    for (why, n) in &m.constraint_filtered {
        lines.push(format!("Constraint {why:?}: {n} nodes excluded by filter"));
    }
    if m.nodes_exhausted > 0 {
        lines.push(format!(
            "Resources exhausted on {} nodes",
            m.nodes_exhausted
        ));
    }
    for (class, n) in &m.class_exhausted {
        lines.push(format!("Class {class:?} exhausted on {n} nodes"));
    }
    for (dim, n) in &m.dimension_exhausted {
        lines.push(format!("Dimension {dim:?} exhausted on {n} nodes"));
    }
    if lines.is_empty() {
        lines.push(m.explain());
    }
    lines
}

/// How long `job run` and `job stop` watch an evaluation by default.
pub const DEFAULT_MONITOR_TIMEOUT: Duration = Duration::from_secs(120);

fn stamp() -> String {
    format::time(crate::ids::now_nanos())
}

/// Watches evaluation `id` until it finishes (complete, blocked, failed or
/// canceled), printing Nomad's monitor lines; gives up after `timeout`
/// (default [`DEFAULT_MONITOR_TIMEOUT`]). Exit code 0 when everything was
/// placed, 2 when placements failed or the evaluation failed.
pub fn monitor(
    remote: &Remote,
    id: &str,
    timeout: Option<Duration>,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let timeout = timeout.unwrap_or(DEFAULT_MONITOR_TIMEOUT);
    println!(
        "==> {}: Monitoring evaluation {:?}",
        stamp(),
        short(id, verbose)
    );
    let deadline = Instant::now() + timeout;
    let path = format!("/v1/eval/{id}");
    let last = remote.run(async {
        let mut obs = remote.client().observe(&path);
        let mut seen: Option<Evaluation> = None;
        loop {
            let next = async { Some(obs.next().await) };
            let timer = async {
                smol::Timer::at(deadline).await;
                None
            };
            let eval = match next.or(timer).await {
                None => return Ok::<_, anyhow::Error>(seen),
                Some(None) => anyhow::bail!("the server ended the watch of evaluation {id:?}"),
                Some(Some(Err(ClientError::Interrupted { .. }))) => continue,
                Some(Some(Err(ClientError::AllFailed(e)))) if !e.is_empty() => {
                    // Every server down right now: the observation retries.
                    continue;
                }
                Some(Some(Err(e))) => {
                    return Err(anyhow::Error::new(e))
                        .with_context(|| format!("watching evaluation {id:?}"));
                }
                Some(Some(Ok(resp))) => {
                    if let Some(e) = resp.as_error() {
                        return Err(anyhow::Error::new(ClientError::Api(e)))
                            .with_context(|| format!("watching evaluation {id:?}"));
                    }
                    resp.decode::<Evaluation>()
                        .with_context(|| format!("evaluation {id:?}"))?
                }
            };
            progress(remote, seen.as_ref(), &eval, verbose).await?;
            let done = eval.status.is_terminal() || eval.status == EvalStatus::Blocked;
            seen = Some(eval);
            if done {
                return Ok(seen);
            }
        }
    })?;
    let Some(eval) = last.filter(|e| e.status.is_terminal() || e.status == EvalStatus::Blocked)
    else {
        anyhow::bail!(
            "evaluation {id:?} is still pending after {}: no scheduler has finished it (are the \
             servers' schedulers running?). The change itself is committed; follow it with \
             `wren eval status {id}`",
            wren_model::Duration::from(timeout)
        );
    };
    let placed_all = eval.failed_tg_allocs.is_empty() && eval.status != EvalStatus::Failed;
    if placed_all {
        println!(
            "==> {}: Evaluation {:?} finished with status {:?}",
            stamp(),
            short(&eval.id, verbose),
            eval.status.to_string()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if eval.failed_tg_allocs.is_empty() {
        println!(
            "==> {}: Evaluation {:?} finished with status {:?}: {}",
            stamp(),
            short(&eval.id, verbose),
            eval.status.to_string(),
            eval.status_description
        );
    } else {
        println!(
            "==> {}: Evaluation {:?} finished with status {:?} but failed to place all allocations:",
            stamp(),
            short(&eval.id, verbose),
            eval.status.to_string()
        );
        print!("{}", failures(&eval, verbose));
    }
    Ok(ExitCode::from(2))
}

/// Prints what changed between two sightings of an evaluation.
async fn progress(
    remote: &Remote,
    before: Option<&Evaluation>,
    now: &Evaluation,
    verbose: bool,
) -> anyhow::Result<()> {
    if before.is_none() {
        let trigger = match (now.triggered_by, &now.node_id) {
            (TriggeredBy::NodeUpdate | TriggeredBy::NodeDrain, Some(node)) => {
                format!("node {:?}", short(node, verbose))
            }
            _ => format!("job {:?}", now.job_id),
        };
        println!("    {}: Evaluation triggered by {trigger}", stamp());
    }
    if let Some(d) = &now.deployment_id
        && before.is_none_or(|b| b.deployment_id.as_ref() != Some(d))
    {
        println!(
            "    {}: Evaluation within deployment: {:?}",
            stamp(),
            short(d, verbose)
        );
    }
    let finished = now.status.is_terminal() || now.status == EvalStatus::Blocked;
    if finished {
        let (allocs, _) = remote
            .client()
            .get::<Vec<AllocStub>>(&format!("/v1/eval/{}/allocations", now.id))
            .await
            .with_context(|| format!("allocations of evaluation {:?}", now.id))?;
        for a in allocs {
            let verb = if a.create_time == a.modify_time {
                "created"
            } else {
                "modified"
            };
            println!(
                "    {}: Allocation {:?} {verb}: node {:?}, group {:?}",
                stamp(),
                short(&a.id, verbose),
                short(&a.node_id, verbose),
                a.task_group
            );
        }
    }
    if let Some(b) = before
        && b.status != now.status
    {
        println!(
            "    {}: Evaluation status changed: {:?} -> {:?}",
            stamp(),
            b.status.to_string(),
            now.status.to_string()
        );
    } else if before.is_none() && now.status != EvalStatus::Pending {
        println!(
            "    {}: Evaluation status changed: \"pending\" -> {:?}",
            stamp(),
            now.status.to_string()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use wren_model::VecMap;

    use super::*;

    #[test]
    fn placement_failures_read_like_nomads() {
        let eval = Evaluation {
            id: "0123456789abcdef".into(),
            job_id: "web".into(),
            status: EvalStatus::Complete,
            blocked_eval: Some("fedcba9876543210".into()),
            failed_tg_allocs: BTreeMap::from([(
                "cache".to_owned(),
                AllocMetric {
                    nodes_evaluated: 3,
                    nodes_exhausted: 2,
                    coalesced_failures: 2,
                    constraint_filtered: VecMap::from([("${attr.cpu.arch} = arm64".to_owned(), 1)]),
                    dimension_exhausted: VecMap::from([("memory".to_owned(), 2)]),
                    ..AllocMetric::default()
                },
            )]),
            ..Evaluation::default()
        };
        let text = failures(&eval, false);
        assert_eq!(
            text,
            "    Task Group \"cache\" (failed to place 3 allocations):\n\
             \x20     * Constraint \"${attr.cpu.arch} = arm64\": 1 nodes excluded by filter\n\
             \x20     * Resources exhausted on 2 nodes\n\
             \x20     * Dimension \"memory\" exhausted on 2 nodes\n\
             \x20   Evaluation \"fedcba98\" waiting for additional capacity to place remainder\n"
        );
        let d = describe(&eval, &[], false);
        assert!(d.contains("Placement Failures = true"), "{d}");
        assert!(d.contains("Failed Placements"), "{d}");
    }

    #[test]
    fn no_nodes_at_all_is_said_plainly() {
        let m = AllocMetric::default();
        assert_eq!(metric_lines(&m), ["No nodes were eligible for evaluation"]);
    }
}
