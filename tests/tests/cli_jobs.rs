//! The job and evaluation commands against a real dev agent: `job run`
//! (watching the evaluation, or `--detach`), `job status`, `job inspect`,
//! `job stop [--purge]`, `eval status` and `eval list`, in Nomad's output
//! shape and with `--json` (and Nomad's `-json` spelling).

mod cli_support;

use std::time::Duration;

use cli_support::{DevAgent, can_run, job, uuid_after};
use wren_tests::eventually;

#[test]
fn job_run_watches_its_evaluation_and_says_why_when_it_does_not_finish() {
    let test = "job_run_watches_its_evaluation_and_says_why_when_it_does_not_finish";
    if !can_run(test) {
        return;
    }
    let dev = DevAgent::start(test);
    let file = dev.file("web.hcl", &job("web", "1"));
    let file = file.to_str().unwrap();

    let o = dev
        .cli
        .output(["job", "run", "--timeout", "3s", file])
        .unwrap();
    assert!(o.stdout.contains("==> "), "{}", o.stdout);
    assert!(o.stdout.contains("Monitoring evaluation"), "{}", o.stdout);
    assert!(
        o.stdout.contains("Evaluation triggered by job \"web\""),
        "{}",
        o.stdout
    );
    match o.status.code() {
        // A scheduler finished it: placements, or why there were none.
        Some(0) => assert!(
            o.stdout.contains("finished with status \"complete\""),
            "{}",
            o.stdout
        ),
        Some(2) => assert!(
            o.stdout.contains("failed to place") || o.stdout.contains("finished with status"),
            "{}",
            o.stdout
        ),
        // No scheduler took it: a clear message naming the evaluation.
        _ => {
            assert!(
                o.stderr.contains("is still pending after 3s"),
                "{}",
                o.stderr
            );
            assert!(o.stderr.contains("wren eval status"), "{}", o.stderr);
        }
    }

    // --detach returns at once with the evaluation's id.
    let v2 = dev.file("web2.hcl", &job("web", "2"));
    let out = dev.ok(&["job", "run", "--detach", v2.to_str().unwrap()]);
    assert!(out.starts_with("Job registration successful\n"), "{out}");
    let eval = uuid_after(&out, "Evaluation ID: ").unwrap_or_else(|| panic!("{out}"));

    // eval status, by id and by prefix, in text and JSON.
    let text = dev.ok(&["eval", "status", &eval[..8]]);
    assert!(
        text.contains(&format!("ID                 = {}", &eval[..8])),
        "{text}"
    );
    assert!(text.contains("TriggeredBy        = job-register"), "{text}");
    assert!(text.contains("Job ID             = web"), "{text}");
    let j = dev.json(&["eval", "status", "-json", &eval]);
    assert_eq!(j["id"], eval.as_str());
    assert_eq!(j["job_id"], "web");
    assert_eq!(j["triggered_by"], "job-register");
    // eval list: newest first, both registrations' evaluations among the
    // job's (the scheduler may add its own, e.g. a blocked evaluation
    // while the dev agent's node is still registering).
    let list = dev.json(&["eval", "list", "--json", "--job", "web"]);
    let list = list.as_array().unwrap();
    assert!(list.len() >= 2, "{list:?}");
    assert!(list.iter().any(|e| e["id"] == eval.as_str()), "{list:?}");
    let created: Vec<u64> = list
        .iter()
        .map(|e| e["create_index"].as_u64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let table = dev.ok(&["eval", "list"]);
    assert!(
        table.starts_with("ID        Priority  Triggered By"),
        "{table}"
    );
    let err = dev.fails(&["eval", "status", "no-such-eval"]);
    assert!(err.contains("no evaluation with id or prefix"), "{err}");
}

#[test]
fn job_status_inspect_and_stop_show_what_the_servers_hold() {
    let test = "job_status_inspect_and_stop_show_what_the_servers_hold";
    if !can_run(test) {
        return;
    }
    let dev = DevAgent::start(test);
    assert_eq!(dev.ok(&["job", "status"]), "No running jobs\n");
    for v in ["a", "b"] {
        let f = dev.file(&format!("api-{v}.hcl"), &job("api", v));
        dev.ok(&["job", "run", "-detach", f.to_str().unwrap()]);
    }
    // Registering the same job again changes nothing and says so.
    let f = dev.file("api-b-again.hcl", &job("api", "b"));
    let o = dev
        .cli
        .output(["job", "run", "--detach", f.to_str().unwrap()])
        .unwrap();
    assert!(o.status.success(), "{}", o.stderr);
    assert!(
        o.stderr.contains("is unchanged: version 1 stays current"),
        "{}",
        o.stderr
    );

    // The dev agent's own node runs the job: wait for it to be placed and
    // running, so the status below describes a settled job.
    eventually("api to run", Duration::from_secs(60), || {
        let s = dev.json(&["job", "status", "--json", "api"]);
        let g = &s["summary"]["groups"]["g"];
        if s["job"]["version"] == 1 && g["running"] == 1 && g["queued"] == 0 {
            Ok(())
        } else {
            Err(format!("{s}"))
        }
    })
    .unwrap();
    let list = dev.ok(&["job", "status"]);
    let mut lines = list.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["ID", "Type", "Priority", "Status", "Submit", "Date"])
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("api  service  50        running"),
        "{list}"
    );
    let stubs = dev.json(&["job", "status", "--json"]);
    assert_eq!(stubs[0]["id"], "api");
    assert_eq!(stubs[0]["version"], 1);

    let one = dev.ok(&["job", "status", "ap"]);
    assert!(one.starts_with("ID            = api\n"), "{one}");
    assert!(one.contains("Version       = 1\n"), "{one}");
    assert!(one.contains("\nSummary\nTask Group  Queued"), "{one}");
    assert!(one.contains("\ng           0"), "{one}");
    assert!(one.contains("\nAllocations\nID"), "{one}");
    let s = dev.json(&["job", "status", "--json", "api"]);
    assert_eq!(s["job"]["meta"]["v"], "b");
    assert_eq!(s["summary"]["job_id"], "api");

    let current = dev.json(&["job", "inspect", "api"]);
    assert_eq!(
        (current["version"].as_u64(), &current["meta"]["v"]),
        (Some(1), &"b".into())
    );
    let first = dev.json(&["job", "inspect", "--version", "0", "api"]);
    assert_eq!(first["meta"]["v"], "a");
    // Consistent and stale reads agree on a one-server region.
    assert_eq!(dev.json(&["job", "inspect", "--stale", "api"]), current);

    // Stop: the job stays, stopped, with a new version.
    let out = dev.ok(&["job", "stop", "--detach", "api"]);
    assert!(uuid_after(&format!("x{out}"), "x").is_some(), "{out}");
    let one = dev.ok(&["job", "status", "api"]);
    assert!(one.contains("(stopped)"), "{one}");
    assert_eq!(dev.json(&["job", "inspect", "api"])["stop"], true);

    // A prefix is not enough to stop a job without --yes.
    let err = dev.fails(&["job", "stop", "--detach", "ap"]);
    assert!(err.contains("pass --yes"), "{err}");

    // Purge: gone, and stopping it again says so.
    dev.ok(&["job", "stop", "--purge", "--detach", "api"]);
    let err = dev.fails(&["job", "status", "api"]);
    assert!(err.contains("no job with id or prefix \"api\""), "{err}");
    let err = dev.fails(&["job", "stop", "--detach", "api"]);
    assert!(err.contains("4.04"), "{err}");
    assert_eq!(dev.ok(&["job", "status"]), "No running jobs\n");
}

#[test]
fn job_files_with_errors_never_reach_the_server() {
    let test = "job_files_with_errors_never_reach_the_server";
    if !can_run(test) {
        return;
    }
    let dev = DevAgent::start(test);
    let f = dev.file(
        "bad.hcl",
        "job \"bad\" {\n  group \"g\" {\n    count = -1\n  }\n}\n",
    );
    let o = dev.cli.output(["job", "run", f.to_str().unwrap()]).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stderr.contains("bad.hcl:"), "{}", o.stderr);
    assert_eq!(dev.ok(&["job", "status"]), "No running jobs\n");
}
