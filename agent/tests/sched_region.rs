//! The scheduling machinery on a real region: three servers in this
//! process, Raft and the workers' calls going over the wire with mutual
//! TLS, nodes registered and heartbeating through the client protocol
//! with client certificates.

mod sched_support;

use std::collections::BTreeSet;
use std::time::Duration;

use sched_support::{Region, eventually, node, service, usage};
use wren_agent::api::{
    AllocIndexStub, AllocUpdateRequest, ClientAllocUpdate, ClientAllocs, IndexResponse,
    JobPlanRequest, JobPlanResponse,
};
use wren_agent::wire::{ClientError, Method, Role};
use wren_model::{ClientStatus, EvalStatus, NodeStatus};

const LONG: Duration = Duration::from_secs(60);

fn live(state: &wren_state::State, job: &str) -> usize {
    state
        .allocs_by_job(job)
        .filter(|a| !a.is_terminal())
        .count()
}

#[test]
fn workers_racing_for_scarce_capacity_never_over_commit_and_place_everything() {
    // One worker per server: the two on followers dequeue, and submit
    // their plans, through the wire.
    let region = Region::start("race", 3, |c| c.server.num_schedulers = Some(1));
    // Eight nodes with room for exactly two allocations each; eight jobs
    // of two allocations: every slot is needed, and workers planning on
    // the same snapshot pick the same free nodes.
    let nodes: Vec<_> = (0..8)
        .map(|i| region.add_node(node(&format!("n{i}"), 1000, 1024)))
        .collect();
    let jobs: Vec<String> = (0..8).map(|i| format!("job{i}")).collect();
    let servers = region.running();
    std::thread::scope(|s| {
        for (i, id) in jobs.iter().enumerate() {
            let region = &region;
            let via = servers[i % servers.len()];
            s.spawn(move || region.register_job(via, service(id, 2, 500, 256)));
        }
    });
    let state = region.wait_for("all 16 allocations placed", LONG, |s| {
        let placed: usize = jobs.iter().map(|j| live(s, j)).sum();
        let settled = s
            .evals()
            .all(|e| e.status.is_terminal() || e.status == EvalStatus::Blocked);
        (placed == 16 && settled).then(|| s.clone())
    });
    for (node, (cpu, mem)) in usage(&state) {
        assert!(
            cpu <= 1000 && mem <= 1024,
            "node {node} over-committed: {cpu} MHz, {mem} MB"
        );
    }
    // Every node carries two: nothing was placed twice.
    assert_eq!(usage(&state).len(), 8);
    let stats: Vec<_> = region
        .running()
        .into_iter()
        .map(|i| region.srv(i).server.sched.plan_stats())
        .collect();
    eprintln!("plan applier stats per server: {stats:?}");

    // The clients run what they were given.
    for n in &nodes {
        let mine: Vec<_> = state.allocs_by_node(&n.id).map(|a| (**a).clone()).collect();
        n.report(&region.rt, &mine, ClientStatus::Running)
            .expect("updates accepted");
    }
    region.wait_for("every allocation running", LONG, |s| {
        s.allocs()
            .all(|a| a.client_status == ClientStatus::Running)
            .then_some(())
    });
}

#[test]
fn a_node_that_misses_its_ttl_is_marked_down_and_its_allocations_replaced() {
    let region = Region::start("ttl", 3, |c| {
        c.server.num_schedulers = Some(1);
        c.server.min_heartbeat_ttl = wren_model::Duration::from_millis(500);
        c.server.heartbeat_grace = wren_model::Duration::from_millis(500);
    });
    // Room for one allocation per node.
    let mut a = region.add_node(node("a", 1000, 1024));
    let _b = region.add_node(node("b", 1000, 1024));
    region.register_job(region.follower(), service("web", 2, 600, 256));
    let state = region.wait_for("two placed", LONG, |s| {
        (live(s, "web") == 2).then(|| s.clone())
    });
    let on_a: Vec<String> = state
        .allocs_by_node("a")
        .filter(|x| !x.is_terminal())
        .map(|x| x.id.clone())
        .collect();
    assert_eq!(on_a.len(), 1);
    // A spare node joins; then `a` goes silent.
    let _c = region.add_node(node("c", 1000, 1024));
    a.stop_heartbeats();
    let state = region.wait_for("a down and its allocation replaced on c", LONG, |s| {
        let down = s.node("a").is_some_and(|n| n.status == NodeStatus::Down);
        let on_c = s.allocs_by_node("c").any(|x| !x.is_terminal());
        (down && on_c && live(s, "web") == 2).then(|| s.clone())
    });
    let old = state.alloc(&on_a[0]).expect("the lost allocation is kept");
    assert_eq!(old.client_status, ClientStatus::Lost);
    let replacement = old
        .next_allocation
        .as_deref()
        .expect("linked to its replacement");
    assert_eq!(
        state.alloc(replacement).map(|x| x.node_id.as_str()),
        Some("c")
    );
}

#[test]
fn a_silent_node_whose_allocations_tolerate_it_is_disconnected_then_reconnects() {
    let region = Region::start("disconnect", 3, |c| {
        c.server.num_schedulers = Some(1);
        c.server.min_heartbeat_ttl = wren_model::Duration::from_millis(500);
        c.server.heartbeat_grace = wren_model::Duration::from_millis(500);
    });
    let mut a = region.add_node(node("a", 1000, 1024));
    let mut job = service("web", 1, 600, 256);
    job.task_groups[0].disconnect = Some(wren_model::DisconnectStrategy {
        lost_after: wren_model::Duration::from_hours(1),
        ..wren_model::DisconnectStrategy::default()
    });
    region.register_job(region.follower(), job);
    let state = region.wait_for("placed", LONG, |s| (live(s, "web") == 1).then(|| s.clone()));
    let placed: Vec<_> = state.allocs_by_node("a").map(|x| (**x).clone()).collect();
    a.report(&region.rt, &placed, ClientStatus::Running)
        .expect("reported");
    a.stop_heartbeats();
    region.wait_for("a disconnected, its allocation unknown", LONG, |s| {
        let disconnected = s
            .node("a")
            .is_some_and(|n| n.status == NodeStatus::Disconnected);
        let unknown = s
            .allocs_by_node("a")
            .any(|x| x.client_status == ClientStatus::Unknown && x.disconnected_at.is_some());
        (disconnected && unknown).then_some(())
    });
    // Back before `lost_after`: ready again, and the reconnect is settled
    // once the client reports its allocation running.
    a.resume_heartbeats(&region.rt);
    region.wait_for("a ready", LONG, |s| {
        s.node("a")
            .is_some_and(|n| n.status == NodeStatus::Ready)
            .then_some(())
    });
    a.report(&region.rt, &placed, ClientStatus::Running)
        .expect("reported");
    let state = region.wait_for("the reconnect settled", LONG, |s| {
        let settled = s
            .allocs_by_node("a")
            .all(|x| x.client_status == ClientStatus::Running && x.disconnected_at.is_none());
        // The follow-up evaluation for `lost_after` stays pending until
        // its time (an hour away), as Nomad's does; everything else is done.
        let evals_done = s
            .evals_by_job("web")
            .all(|e| e.status.is_terminal() || e.wait_until > wren_agent::ids::now_nanos());
        (settled && evals_done).then(|| s.clone())
    });
    assert_eq!(live(&state, "web"), 1, "no replacement was made");
    assert_eq!(state.allocs_by_job("web").count(), 1);
}

#[test]
fn blocked_evaluations_are_placed_when_a_node_joins() {
    let region = Region::start("blocked", 3, |c| c.server.num_schedulers = Some(1));
    let _a = region.add_node(node("a", 1000, 1024));
    region.register_job(region.follower(), service("web", 3, 600, 256));
    let blocked = region.wait_for("one placed, the rest blocked", LONG, |s| {
        let b = s
            .evals_by_job("web")
            .find(|e| e.status == EvalStatus::Blocked)?
            .id
            .clone();
        (live(s, "web") == 1).then_some(b)
    });
    let explained = region
        .state()
        .eval(&blocked)
        .map(|e| e.queued_allocations.clone());
    assert_eq!(explained.and_then(|q| q.get("g").copied()), Some(2));
    let _b = region.add_node(node("b", 1000, 1024));
    let _c = region.add_node(node("c", 1000, 1024));
    let state = region.wait_for("all three placed", LONG, |s| {
        (live(s, "web") == 3).then(|| s.clone())
    });
    let nodes: BTreeSet<&str> = state
        .allocs_by_job("web")
        .map(|x| x.node_id.as_str())
        .collect();
    assert_eq!(nodes.len(), 3);
    assert!(
        state.evals_by_job("web").all(|e| e.status.is_terminal()),
        "the blocked evaluation finished"
    );
}

#[test]
fn a_new_leader_rebuilds_the_broker_from_the_state() {
    let mut region = Region::start("failover", 3, |c| {
        c.server.num_schedulers = Some(1);
        // The new leader gives nodes this long to check in.
        c.server.failover_heartbeat_ttl = wren_model::Duration::from_secs(30);
    });
    let _a = region.add_node(node("a", 1000, 1024));
    region.register_job(region.follower(), service("web", 2, 600, 256));
    region.wait_for("one placed, one blocked", LONG, |s| {
        let blocked = s
            .evals_by_job("web")
            .any(|e| e.status == EvalStatus::Blocked);
        (live(s, "web") == 1 && blocked).then_some(())
    });
    let old = region.leader();
    region.stop(old);
    let new = region.leader();
    assert_ne!(old, new);
    // A job registered now, and the old blocked evaluation once capacity
    // arrives, are scheduled by the new leader's broker.
    region.register_job(new, service("api", 1, 300, 128));
    let _b = region.add_node(node("b", 1000, 1024));
    region.wait_for("everything placed under the new leader", LONG, |s| {
        (live(s, "web") == 2 && live(s, "api") == 1).then_some(())
    });
}

#[test]
fn a_client_asking_since_an_index_gets_only_what_changed_whole() {
    let region = Region::start("delta", 3, |c| c.server.num_schedulers = Some(1));
    let a = region.add_node(node("a", 1000, 1024));
    region.register_job(region.follower(), service("web", 1, 100, 64));
    region.wait_for("web placed", LONG, |s| (live(s, "web") == 1).then_some(()));
    let (all, _): (ClientAllocs, _) = region
        .rt
        .block_on(a.client.get("/v1/client/allocs?node=a"))
        .expect("a reads its allocations");
    assert_eq!(all.allocs.len(), 1, "without an index, everything whole");
    assert!(all.unchanged.is_empty());
    let web = all.allocs[0].clone();

    region.register_job(region.follower(), service("api", 1, 100, 64));
    let since = format!("/v1/client/allocs?node=a&index={}", all.index);
    let delta = eventually("api placed on a", LONG, || {
        let (d, _): (ClientAllocs, _) = region.rt.block_on(a.client.get(&since)).ok()?;
        (d.allocs.iter().any(|x| x.job_id == "api")).then_some(d)
    });
    assert!(
        delta.allocs.iter().all(|x| x.job_id == "api"),
        "only what changed comes whole: {:?}",
        delta.allocs.iter().map(|x| &x.job_id).collect::<Vec<_>>()
    );
    assert_eq!(delta.jobs.len(), 1, "with its job version only");
    assert_eq!(delta.jobs[0].id, "api");
    assert_eq!(
        delta.unchanged,
        vec![AllocIndexStub::of(&web)],
        "the rest as stubs"
    );

    // Once the client has finished web's allocation, a first answer sends
    // it as a stub: what a client finished never comes whole again.
    let done = AllocUpdateRequest {
        node_id: "a".into(),
        updates: vec![ClientAllocUpdate {
            alloc_id: web.id.clone(),
            client_status: ClientStatus::Complete,
            ..ClientAllocUpdate::default()
        }],
    };
    region
        .rt
        .block_on(
            a.client
                .send::<_, IndexResponse>(Method::Post, "/v1/client/allocs", &done),
        )
        .expect("a reports its allocation complete");
    let first = eventually("web's completion committed", LONG, || {
        let (f, _): (ClientAllocs, _) = region
            .rt
            .block_on(a.client.get("/v1/client/allocs?node=a"))
            .ok()?;
        f.unchanged.iter().any(|x| x.id == web.id).then_some(f)
    });
    assert!(first.allocs.iter().all(|x| x.job_id == "api"));
    assert_eq!(first.unchanged.len(), 1);
    assert_eq!(first.unchanged[0].client_status, ClientStatus::Complete);
}

#[test]
fn clients_watch_their_own_allocations_and_no_one_elses() {
    let region = Region::start("watch", 3, |c| c.server.num_schedulers = Some(1));
    let a = region.add_node(node("a", 1000, 1024));
    let b = region.add_node(node("b", 1000, 1024));
    // The node's observation starts before anything is placed.
    let mut watch = a.client.observe("/v1/client/allocs?node=a");
    let first: ClientAllocs = region
        .rt
        .block_on(watch.next())
        .expect("a first answer")
        .expect("readable")
        .decode()
        .expect("decodes");
    assert!(first.allocs.is_empty());
    region.register_job(region.follower(), service("web", 2, 600, 256));
    let seen = eventually("a notified of its allocation", LONG, || {
        let resp = region.rt.block_on(watch.next())?.ok()?;
        let body: ClientAllocs = resp.decode().ok()?;
        (!body.allocs.is_empty()).then_some(body)
    });
    assert!(seen.allocs.iter().all(|x| x.node_id == "a"));
    assert_eq!(seen.jobs.len(), 1, "the job version it runs comes along");
    assert_eq!(seen.jobs[0].id, "web");

    // Node b's certificate cannot read or report for node a.
    let err = region
        .rt
        .block_on(b.client.get::<ClientAllocs>("/v1/client/allocs?node=a"))
        .expect_err("forbidden");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == coap_lite::ResponseType::Forbidden),
        "{err}"
    );
    let theirs: Vec<_> = region
        .state()
        .allocs_by_node("a")
        .map(|x| (**x).clone())
        .collect();
    let as_a = AllocUpdateRequest {
        node_id: "a".into(),
        updates: theirs
            .iter()
            .map(|x| ClientAllocUpdate {
                alloc_id: x.id.clone(),
                client_status: ClientStatus::Failed,
                ..ClientAllocUpdate::default()
            })
            .collect(),
    };
    let err = region
        .rt
        .block_on(
            b.client
                .send::<_, IndexResponse>(Method::Post, "/v1/client/allocs", &as_a),
        )
        .expect_err("b may not report for node a");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == coap_lite::ResponseType::Forbidden),
        "{err}"
    );
    // Reported as b's own, a's allocations are skipped.
    let index = b
        .report(&region.rt, &theirs, ClientStatus::Failed)
        .expect("accepted");
    let state = region.wait_for("the report applied", LONG, |s| {
        (s.index() >= index).then(|| s.clone())
    });
    assert!(
        state
            .allocs_by_node("a")
            .all(|x| x.client_status != ClientStatus::Failed),
        "a's allocations are untouched"
    );
    // A different certificate cannot take over node a by registering it.
    let intruder = region.client(Role::Client);
    let err = region
        .rt
        .block_on(intruder.send::<_, wren_agent::api::HeartbeatResponse>(
            Method::Post,
            "/v1/client/register",
            &wren_agent::api::NodeRegisterRequest {
                node: node("a", 1, 1),
            },
        ))
        .expect_err("forbidden");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == coap_lite::ResponseType::Forbidden),
        "{err}"
    );
}

#[test]
fn job_plan_is_a_dry_run_that_explains_failures() {
    let region = Region::start("plan", 1, |c| c.server.num_schedulers = Some(1));
    let _a = region.add_node(node("a", 1000, 1024));
    let cli = region.client(Role::Cli);
    let plan = |count: u32| -> JobPlanResponse {
        region
            .rt
            .block_on(cli.send(
                Method::Post,
                "/v1/job/web/plan",
                &JobPlanRequest {
                    job: service("web", count, 600, 256),
                },
            ))
            .expect("plan answers")
            .0
    };
    let first = plan(2);
    assert_eq!(first.job_modify_index, 0, "a new job");
    assert_eq!(first.diff, vec!["+ job \"web\"".to_owned()]);
    assert_eq!(first.placements.get("a"), Some(&1));
    let why = first
        .failed_tg_allocs
        .get("g")
        .expect("one does not fit")
        .explain();
    assert!(why.contains("cpu exhausted on 1 node"), "{why}");
    let state = region.state();
    assert!(state.job("web").is_none(), "nothing was registered");
    assert_eq!(state.evals().count(), 0, "nothing was evaluated");

    region.register_job(0, service("web", 1, 600, 256));
    region.wait_for("placed", LONG, |s| (live(s, "web") == 1).then_some(()));
    let again = plan(2);
    assert!(again.job_modify_index > 0);
    assert_eq!(
        again.diff,
        vec!["~ task_groups[g].count: 1 => 2".to_owned()]
    );
    let updates = again.annotations.expect("annotations").desired_tg_updates;
    let g = updates.get("g").expect("group g");
    assert_eq!((g.place, g.stop, g.destructive_update), (1, 0, 0), "{g:?}");
    assert_eq!(
        g.ignore + g.in_place_update,
        1,
        "the running one stays: {g:?}"
    );
    assert_eq!(
        again.failed_tg_allocs.len(),
        1,
        "still no room for the second"
    );
}
