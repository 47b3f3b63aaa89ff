//! The node, server and operator commands against a real dev agent:
//! `node status`, `node drain`, `node eligibility` (with the evaluations
//! they create), `server members`, `operator raft list-peers` and
//! `operator snapshot save|restore`. The node comes from a snapshot made
//! with `wren-state` and restored through the CLI, so that these tests do
//! not depend on a client agent registering one.

mod cli_support;

use std::collections::BTreeMap;
use std::time::Duration;

use cli_support::{DevAgent, can_run, uuid_after};
use wren_model::{
    Allocation, ClientStatus, DesiredStatus, Eligibility, EvalStatus, Evaluation, Job, JobType,
    Node, NodeStatus, PlanResult, Task, TaskGroup, TriggeredBy,
};
use wren_state::{ApplyPlan, Command, Proposal, RegisterJob, State, UpsertNode};
use wren_tests::eventually;

const NODE: &str = "6a1f0c2e-0000-4000-8000-000000000001";

/// A state with one ready node and a service job with one allocation on
/// it, as snapshot bytes.
fn state_with_a_node() -> Vec<u8> {
    let mut s = State::default();
    let mut apply = |index: u64, command: Command| {
        s.apply(
            index,
            Proposal {
                issued_at: 1_700_000_000_000_000_000 + index as i64,
                command,
            },
        )
        .unwrap();
    };
    apply(
        1,
        Command::UpsertNode(UpsertNode {
            node: Node {
                id: NODE.into(),
                secret_id: "fingerprint".into(),
                name: "edge-1".into(),
                datacenter: "dc1".into(),
                node_pool: "default".into(),
                address: "10.1.0.7:5684".into(),
                status: NodeStatus::Ready,
                eligibility: Eligibility::Eligible,
                attributes: BTreeMap::from([("cpu.arch".to_owned(), "arm64".to_owned())]),
                ..Node::default()
            },
            evals: Vec::new(),
        }),
    );
    let job = Job {
        id: "sensor".into(),
        name: "sensor".into(),
        region: "global".into(),
        datacenters: vec!["dc1".into()],
        node_pool: "default".into(),
        job_type: JobType::Service,
        priority: 50,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count: 1,
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    apply(
        2,
        Command::RegisterJob(RegisterJob {
            job,
            eval: Some(Evaluation {
                id: "e0000000-0000-4000-8000-000000000001".into(),
                job_id: "sensor".into(),
                priority: 50,
                triggered_by: TriggeredBy::JobRegister,
                status: EvalStatus::Complete,
                ..Evaluation::default()
            }),
            enforce_index: None,
        }),
    );
    let alloc = Allocation {
        id: "a0000000-0000-4000-8000-000000000001".into(),
        eval_id: "e0000000-0000-4000-8000-000000000001".into(),
        name: "sensor.g[0]".into(),
        node_id: NODE.into(),
        node_name: "edge-1".into(),
        job_id: "sensor".into(),
        job_version: 0,
        task_group: "g".into(),
        desired_status: DesiredStatus::Run,
        client_status: ClientStatus::Running,
        ..Allocation::default()
    };
    apply(
        3,
        Command::ApplyPlan(ApplyPlan {
            result: PlanResult {
                node_allocation: BTreeMap::from([(NODE.to_owned(), vec![alloc])]),
                ..PlanResult::default()
            },
            evals: Vec::new(),
        }),
    );
    s.save().unwrap()
}

#[test]
fn node_drain_and_eligibility_change_the_node_with_the_evaluations_nomad_makes() {
    let test = "node_drain_and_eligibility_change_the_node_with_the_evaluations_nomad_makes";
    if !can_run(test) {
        return;
    }
    let dev = DevAgent::start(test);
    let snap = dev.dir.join("with-node.snap");
    std::fs::write(&snap, state_with_a_node()).unwrap();
    let out = dev.ok(&["operator", "snapshot", "restore", snap.to_str().unwrap()]);
    assert!(out.starts_with("Snapshot restored (index "), "{out}");

    // node status: the list, then one node by prefix.
    let list = dev.ok(&["node", "status"]);
    assert!(list.starts_with("ID        Node Pool  DC   Name"), "{list}");
    let row = list
        .lines()
        .find(|l| l.starts_with("6a1f0c2e"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("edge-1"), "{row}");
    assert!(row.ends_with("false  eligible     ready"), "{row}");
    let one = dev.ok(&["node", "status", "6a1f"]);
    assert!(one.contains("Name               = edge-1"), "{one}");
    assert!(one.contains("Drain              = false"), "{one}");
    assert!(
        one.lines().any(|l| l.starts_with("a0000000  sensor  g")),
        "{one}"
    );
    let n = dev.json(&["node", "status", "--json", NODE]);
    assert!(
        !n.to_string().contains("fingerprint"),
        "the node's secret is shown: {n}"
    );
    assert_eq!(n["allocations"][0]["job_id"], "sensor");

    // Drain: ineligible, draining, one node-drain evaluation for the job
    // running there.
    let out = dev.ok(&["node", "drain", "--enable", "--deadline", "30m", "6a1f"]);
    assert!(
        out.starts_with("Node \"6a1f0c2e\" drain strategy set\n"),
        "{out}"
    );
    let eval = uuid_after(&out, "Evaluation ID: ").unwrap_or_else(|| panic!("{out}"));
    let e = dev.json(&["eval", "status", "--json", &eval]);
    assert_eq!(e["triggered_by"], "node-drain");
    assert_eq!(e["job_id"], "sensor");
    assert_eq!(e["node_id"], NODE);
    let stubs = dev.json(&["node", "status", "--json"]);
    let stub = stubs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == NODE)
        .unwrap();
    assert_eq!(
        (&stub["drain"], &stub["eligibility"]),
        (&true.into(), &"ineligible".into())
    );
    let one = dev.ok(&["node", "status", NODE]);
    assert!(
        one.contains("Drain              = true; forced at "),
        "{one}"
    );

    // A draining node cannot be made eligible.
    let err = dev.fails(&["node", "eligibility", "--enable", NODE]);
    assert!(err.contains("4.09") && err.contains("draining"), "{err}");

    // The scheduler handles the drain's evaluation (the allocation is
    // migrated off the node); then the drain ends and the node is eligible
    // again, with an evaluation for every job still running there.
    eventually(
        "the drain's evaluation to finish",
        Duration::from_secs(60),
        || {
            let e = dev.json(&["eval", "status", "--json", &eval]);
            if e["status"] == "complete" {
                Ok(())
            } else {
                Err(format!("{e}"))
            }
        },
    )
    .unwrap();
    let still_running = dev.json(&["node", "status", "--json", NODE])["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["desired_status"] == "run");
    let out = dev.ok(&["node", "drain", "--disable", NODE]);
    assert!(
        out.starts_with("Node \"6a1f0c2e\" drain strategy unset\n"),
        "{out}"
    );
    assert_eq!(
        uuid_after(&out, "Evaluation ID: ").is_some(),
        still_running,
        "{out}"
    );
    let n = dev.json(&["node", "status", "--json", NODE]);
    assert_eq!(n["node"]["drain"], serde_json::Value::Null);
    assert_eq!(n["node"]["eligibility"], "eligible");

    // Eligibility on its own.
    let out = dev.ok(&["node", "eligibility", "--disable", NODE]);
    assert_eq!(
        out,
        "Node \"6a1f0c2e\" scheduling eligibility set: ineligible for scheduling\n"
    );
    let out = dev.ok(&["node", "eligibility", "--enable", NODE]);
    assert!(
        out.starts_with("Node \"6a1f0c2e\" scheduling eligibility set: eligible for scheduling\n"),
        "{out}"
    );
    let err = dev.fails(&["node", "drain", "--enable", "--disable", NODE]);
    assert!(
        err.contains("exactly one of --enable or --disable"),
        "{err}"
    );
    let err = dev.fails(&["node", "status", "ffff"]);
    assert!(err.contains("no node with id or prefix"), "{err}");
}

#[test]
fn server_and_operator_commands_describe_a_one_server_region() {
    let test = "server_and_operator_commands_describe_a_one_server_region";
    if !can_run(test) {
        return;
    }
    let dev = DevAgent::start(test);
    let members = dev.ok(&["server", "members"]);
    let mut lines = members.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft",
            "ID",
            "Build",
            "Datacenter",
            "Region"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[1..5],
        ["127.0.0.1", "5684", "alive", "true"],
        "{members}"
    );
    assert_eq!(
        row[6..],
        [wren_model::VERSION, "dc1", "global"],
        "{members}"
    );

    let peers = dev.ok(&["operator", "raft", "list-peers"]);
    assert!(peers.starts_with("Node"), "{peers}");
    assert!(peers.contains("127.0.0.1:5684  leader  true"), "{peers}");
    let json = dev.json(&["operator", "raft", "list-peers", "-json", "-stale"]);
    assert_eq!(json["peers"].as_array().unwrap().len(), 1);
    assert!(json["committed"].as_u64().unwrap() >= 1);

    // Snapshot round trip through the CLI: save, change, restore.
    let job = dev.file("a.hcl", &cli_support::job("keep", "1"));
    dev.ok(&["job", "run", "--detach", job.to_str().unwrap()]);
    let snap = dev.dir.join("saved.snap");
    let out = dev.ok(&["operator", "snapshot", "save", snap.to_str().unwrap()]);
    assert!(out.starts_with("State file written to "), "{out}");
    let saved = State::load(&std::fs::read(&snap).unwrap()).unwrap();
    assert!(saved.job("keep").is_some());
    dev.ok(&["job", "stop", "--purge", "--detach", "keep"]);
    assert_eq!(dev.ok(&["job", "status"]), "No running jobs\n");
    dev.ok(&["operator", "snapshot", "restore", snap.to_str().unwrap()]);
    assert_eq!(dev.json(&["job", "inspect", "keep"])["meta"]["v"], "1");

    // A file that is not a snapshot is refused and changes nothing.
    let junk = dev.file("junk.snap", "not a snapshot");
    let err = dev.fails(&["operator", "snapshot", "restore", junk.to_str().unwrap()]);
    assert!(err.contains("not a usable snapshot"), "{err}");
    assert_eq!(dev.json(&["job", "inspect", "keep"])["meta"]["v"], "1");
    let err = dev.fails(&["operator", "raft", "remove-peer", "--peer-id", "12345"]);
    assert!(err.contains("4.04"), "{err}");
}
