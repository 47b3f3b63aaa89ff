//! `wren job status [ID]`: every job with its status, or one job with its
//! allocation summary, latest deployment and allocations.

use std::process::ExitCode;

use wren_model::{Deployment, Job};

use super::format::{self, ago, columns, kv, short};
use super::remote::{self, Kind, Remote, with_query};
use crate::api::{AllocStub, JobListStub, JobSummary};

crate::wire::api_command! {
    /// List jobs, or show one job's status and allocations.
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
        /// the job id, or a unique prefix of it
        #[argh(positional)]
        id: Option<String>,
    }
}

/// Finds a job by id, or by a unique id prefix.
pub fn find_job(remote: &Remote, id: &str, stale: bool) -> anyhow::Result<Job> {
    const JOBS: Kind = Kind {
        one: "/v1/job",
        list: "/v1/jobs",
        noun: "job",
        plural: "jobs",
    };
    remote.find(&JOBS, id, stale, |s: &JobListStub| &s.id)
}

/// One job's status, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
struct JobStatus {
    job: Job,
    summary: JobSummary,
    latest_deployment: Option<Deployment>,
    allocations: Vec<AllocStub>,
}

impl StatusCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        match &self.id {
            None => self.list(&remote),
            Some(id) => self.one(&remote, id),
        }
    }

    fn list(&self, remote: &Remote) -> anyhow::Result<ExitCode> {
        let jobs: Vec<JobListStub> =
            remote.get(&with_query("/v1/jobs", &[remote::stale(self.stale)]))?;
        if self.json {
            format::print_json(&jobs);
            return Ok(ExitCode::SUCCESS);
        }
        if jobs.is_empty() {
            println!("No running jobs");
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows = vec![
            ["ID", "Type", "Priority", "Status", "Submit Date"]
                .map(String::from)
                .to_vec(),
        ];
        for j in &jobs {
            rows.push(vec![
                j.id.clone(),
                j.job_type.to_string(),
                j.priority.to_string(),
                if j.stop {
                    "dead (stopped)".to_owned()
                } else {
                    j.status.to_string()
                },
                format::time(j.submit_time),
            ]);
        }
        print!("{}", columns(&rows));
        Ok(ExitCode::SUCCESS)
    }

    fn one(&self, remote: &Remote, id: &str) -> anyhow::Result<ExitCode> {
        let job = find_job(remote, id, self.stale)?;
        let q = [remote::stale(self.stale)];
        let summary: JobSummary =
            remote.get(&with_query(&format!("/v1/job/{}/summary", job.id), &q))?;
        let latest_deployment: Option<Deployment> =
            remote.get(&with_query(&format!("/v1/job/{}/deployment", job.id), &q))?;
        let mut allocations: Vec<AllocStub> =
            remote.get(&with_query(&format!("/v1/job/{}/allocations", job.id), &q))?;
        allocations.sort_by_key(|a| std::cmp::Reverse(a.create_time));
        let status = JobStatus {
            job,
            summary,
            latest_deployment,
            allocations,
        };
        if self.json {
            format::print_json(&status);
        } else {
            print!(
                "{}",
                describe(&status, self.verbose, crate::ids::now_nanos())
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn describe(s: &JobStatus, verbose: bool, now: i64) -> String {
    let j = &s.job;
    let mut out = kv(&[
        ("ID", j.id.clone()),
        ("Name", j.name.clone()),
        ("Submit Date", format::time(j.submit_time)),
        ("Type", j.job_type.to_string()),
        ("Priority", j.priority.to_string()),
        ("Datacenters", j.datacenters.join(",")),
        ("Node Pool", j.node_pool.clone()),
        (
            "Status",
            if j.stop {
                format!("{} (stopped)", j.status)
            } else {
                j.status.to_string()
            },
        ),
        ("Version", j.version.to_string()),
        ("Periodic", j.periodic.is_some().to_string()),
        ("Parameterized", j.parameterized.is_some().to_string()),
    ]);
    out.push_str("\nSummary\n");
    let mut rows = vec![
        [
            "Task Group",
            "Queued",
            "Starting",
            "Running",
            "Failed",
            "Complete",
            "Lost",
            "Unknown",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (g, c) in &s.summary.groups {
        rows.push(vec![
            g.clone(),
            c.queued.to_string(),
            c.starting.to_string(),
            c.running.to_string(),
            c.failed.to_string(),
            c.complete.to_string(),
            c.lost.to_string(),
            c.unknown.to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    if let Some(d) = &s.latest_deployment {
        out.push_str("\nLatest Deployment\n");
        out.push_str(&kv(&[
            ("ID", short(&d.id, verbose)),
            ("Status", d.status.to_string()),
            ("Description", d.status_description.clone()),
        ]));
    }
    out.push_str("\nAllocations\n");
    if s.allocations.is_empty() {
        out.push_str("No allocations placed\n");
    } else {
        let mut rows = vec![
            [
                "ID",
                "Node ID",
                "Task Group",
                "Version",
                "Desired",
                "Status",
                "Created",
                "Modified",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for a in &s.allocations {
            rows.push(vec![
                short(&a.id, verbose),
                short(&a.node_id, verbose),
                a.task_group.clone(),
                a.job_version.to_string(),
                a.desired_status.to_string(),
                a.client_status.to_string(),
                ago(a.create_time, now),
                ago(a.modify_time, now),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::GroupSummary;

    #[test]
    fn one_job_reads_like_nomads_status() {
        let now = 1_700_000_100 * 1_000_000_000;
        let s = JobStatus {
            job: Job {
                id: "web".into(),
                name: "web".into(),
                datacenters: vec!["dc1".into()],
                node_pool: "default".into(),
                priority: 50,
                submit_time: 1_700_000_000 * 1_000_000_000,
                ..Job::default()
            },
            summary: JobSummary {
                job_id: "web".into(),
                groups: BTreeMap::from([(
                    "cache".to_owned(),
                    GroupSummary {
                        running: 2,
                        ..GroupSummary::default()
                    },
                )]),
            },
            latest_deployment: None,
            allocations: vec![AllocStub {
                id: "0123456789".into(),
                node_id: "abcdefghij".into(),
                task_group: "cache".into(),
                create_time: now - 30 * 1_000_000_000,
                modify_time: now - 5 * 1_000_000_000,
                ..AllocStub::default()
            }],
        };
        let text = describe(&s, false, now);
        assert!(text.starts_with("ID            = web\n"), "{text}");
        assert!(
            text.contains("Submit Date   = 2023-11-14T22:13:20Z"),
            "{text}"
        );
        assert!(text.contains("cache       0       0         2"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("01234567  abcdefgh  cache")
                    && l.ends_with("30s ago  5s ago")),
            "{text}"
        );
    }
}
