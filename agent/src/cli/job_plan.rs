//! `wren job plan FILE`: a dry run of `job run`. The servers schedule the
//! job against their current state without changing it; this prints how
//! the job differs from its current version, what would change per group,
//! where new allocations would go, and why placements would fail.
//!
//! Exit codes follow Nomad's: 0 when no allocations would be created or
//! destroyed, 1 when some would, 255 on errors.

use std::process::ExitCode;
use std::sync::Arc;

use smol::Executor;
use wren_model::DesiredUpdates;

use crate::api::{JobPlanRequest, JobPlanResponse};
use crate::wire::{Client, Method};

crate::wire::api_command! {
    /// Show what submitting a job would do, without doing it.
    #[argh(subcommand, name = "plan")]
    pub struct PlanCmd {
        /// print the servers' answer as JSON
        #[argh(switch)]
        json: bool,
        /// set a variable: --var name=value (repeatable)
        #[argh(option)]
        var: Vec<String>,
        /// read from any server without a consistency check
        #[argh(switch)]
        stale: bool,
        /// the job file ("-" reads standard input)
        #[argh(positional)]
        file: String,
    }
}

impl PlanCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Some(job) = super::job::load_job(&self.file, &self.var)? else {
            return Ok(ExitCode::from(255));
        };
        let config = self.api_flags().resolve()?;
        let ex = Arc::new(Executor::new());
        let client = Client::new(config, ex.clone())?;
        let mut path = format!("/v1/job/{}/plan", job.id);
        if self.stale {
            path.push_str("?stale");
        }
        let job_id = job.id.clone();
        let request = JobPlanRequest { job };
        let (resp, _): (JobPlanResponse, _) =
            smol::block_on(ex.run(client.send(Method::Post, &path, &request)))?;
        if self.json {
            println!("{}", wren_model::codec::to_json_pretty(&resp));
        } else {
            print!("{}", render(&job_id, &self.file, &resp));
        }
        Ok(if changes_allocations(&resp) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Whether the plan creates or destroys allocations.
fn changes_allocations(resp: &JobPlanResponse) -> bool {
    resp.annotations.as_ref().is_some_and(|a| {
        a.desired_tg_updates
            .values()
            .any(|u| u.place + u.stop + u.destructive_update + u.migrate + u.canary > 0)
    })
}

/// One group's changes, as Nomad words them.
fn group_line(u: &DesiredUpdates) -> String {
    let parts: Vec<String> = [
        (u.place, "create"),
        (u.stop, "destroy"),
        (u.in_place_update, "in-place update"),
        (u.destructive_update, "create/destroy update"),
        (u.migrate, "migrate"),
        (u.canary, "canary"),
        (u.reconnect, "reconnect"),
        (u.ignore, "ignore"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The human-readable answer.
fn render(job_id: &str, file: &str, resp: &JobPlanResponse) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let header = if resp.job_modify_index == 0 {
        "+"
    } else if resp.diff.is_empty() {
        ""
    } else {
        "+/-"
    };
    let _ = writeln!(
        out,
        "{header}{}Job: {job_id:?}",
        if header.is_empty() { "" } else { " " }
    );
    if resp.job_modify_index != 0 {
        for line in &resp.diff {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(a) = &resp.annotations
        && !a.desired_tg_updates.is_empty()
    {
        out.push_str("\nTask groups:\n");
        for (group, u) in &a.desired_tg_updates {
            let _ = writeln!(out, "  {group}: {}", group_line(u));
        }
    }
    out.push_str("\nScheduler dry-run:\n");
    if resp.failed_tg_allocs.is_empty() {
        out.push_str("- All tasks successfully allocated.\n");
    } else {
        out.push_str("- WARNING: Failed to place all allocations.\n");
        for (group, m) in &resp.failed_tg_allocs {
            let n = m.coalesced_failures.saturating_add(1);
            let _ = writeln!(
                out,
                "  Task group {group:?} (failed to place {n} allocation{}):\n    * {}",
                if n == 1 { "" } else { "s" },
                m.explain()
            );
        }
    }
    if !resp.placements.is_empty() {
        out.push_str("\nNew allocations by node:\n");
        for (node, n) in &resp.placements {
            let _ = writeln!(out, "  {node}: {n}");
        }
    }
    let _ = writeln!(
        out,
        "\nJob Modify Index: {}\nTo submit the job with version verification run:\n\nwren job run --check-index {} {file}\n\n\
         When running the job with the check-index flag, the job will only be run if the\n\
         job modify index given matches the server-side version. If the index has\n\
         changed, another user has modified the job and the plan's results are\n\
         potentially invalid.",
        resp.job_modify_index, resp.job_modify_index
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use wren_model::{AllocMetric, PlanAnnotations};

    use super::*;

    #[test]
    fn a_plan_reads_like_nomads() {
        let mut failed = AllocMetric {
            nodes_evaluated: 3,
            coalesced_failures: 1,
            ..AllocMetric::default()
        };
        failed.dimension_exhausted.insert("memory".into(), 3);
        let resp = JobPlanResponse {
            annotations: Some(PlanAnnotations {
                desired_tg_updates: BTreeMap::from([(
                    "web".to_owned(),
                    DesiredUpdates {
                        place: 2,
                        in_place_update: 1,
                        ..DesiredUpdates::default()
                    },
                )]),
                ..PlanAnnotations::default()
            }),
            failed_tg_allocs: BTreeMap::from([("web".to_owned(), failed)]),
            job_modify_index: 7,
            diff: vec!["~ task_groups[web].count: 1 => 3".into()],
            placements: BTreeMap::from([("pi-1".to_owned(), 1)]),
        };
        let text = render("web", "web.hcl", &resp);
        assert!(
            text.starts_with("+/- Job: \"web\"\n  ~ task_groups[web].count: 1 => 3\n"),
            "{text}"
        );
        assert!(
            text.contains("  web: 2 create, 1 in-place update\n"),
            "{text}"
        );
        assert!(text.contains("failed to place 2 allocations"), "{text}");
        assert!(text.contains("* memory exhausted on 3 nodes"), "{text}");
        assert!(text.contains("  pi-1: 1\n"), "{text}");
        assert!(
            text.contains("wren job run --check-index 7 web.hcl"),
            "{text}"
        );
        assert!(changes_allocations(&resp));
        let unchanged = JobPlanResponse {
            job_modify_index: 7,
            ..JobPlanResponse::default()
        };
        assert!(render("web", "web.hcl", &unchanged).starts_with("Job: \"web\"\n"));
        assert!(!changes_allocations(&unchanged));
    }
}
