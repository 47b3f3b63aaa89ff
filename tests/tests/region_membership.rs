//! Forming a region: servers that know only one address find each other,
//! the one with the lowest Raft id bootstraps exactly once, a later server
//! joins as a voter through the leader, a dead one is removed with
//! `operator raft remove-peer`, and restarting every server never
//! bootstraps again.

mod region_support;

use std::time::Duration;

use region_support::{can_run, name, peers, wait_for_leader};
use serde_json::Value;
use wren_tests::cluster::{AgentId, Cluster, ClusterSpec};
use wren_tests::eventually;

fn voters(p: &Value) -> Vec<String> {
    let mut v: Vec<String> = p["peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["voter"] == true)
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn servers_that_know_one_address_form_one_region_and_later_servers_join_as_voters() {
    let test = "servers_that_know_one_address_form_one_region_and_later_servers_join_as_voters";
    if !can_run(test) {
        return;
    }
    // Four servers; each knows only s1's address and waits for three.
    let spec = ClusterSpec::new(4, 0).customize(|f| {
        if let Some(s) = f.server.as_mut() {
            s.bootstrap_expect = 3;
            s.retry_join.truncate(1);
        }
    });
    let mut cluster = Cluster::prepare(test, &spec).unwrap();
    let servers = cluster.servers();
    let (first, fourth) = (&servers[..3], servers[3]);
    for &s in first {
        cluster.start_agent(s).unwrap();
    }
    let leader = wait_for_leader(&cluster, first, Duration::from_secs(60));
    let cli = cluster.cli_to(first).timeout(Duration::from_secs(20));
    assert_eq!(voters(&peers(&cli, false).unwrap()), ["s1", "s2", "s3"]);

    // `server members`: every server alive, one leader.
    let members = cli.json(["server", "members", "--json"]).unwrap();
    let list = members.as_array().unwrap();
    assert_eq!(list.len(), 3, "{members}");
    assert!(list.iter().all(|m| m["status"] == "alive"), "{members}");
    let leaders: Vec<&Value> = list.iter().filter(|m| m["leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "{members}");
    assert_eq!(leaders[0]["name"], name(&cluster, leader));

    // A fourth server joins as a voter through the leader.
    cluster.start_agent(fourth).unwrap();
    eventually("s4 a voter", Duration::from_secs(60), || {
        let v = voters(&peers(&cli, false).map_err(|e| e.to_string())?);
        if v == ["s1", "s2", "s3", "s4"] {
            Ok(())
        } else {
            Err(format!("voters {v:?}"))
        }
    })
    .unwrap();

    // It dies for good: the operator removes it, and `server members`
    // stops listing it once it is out of the configuration.
    cluster.kill(fourth).unwrap();
    let addr = cluster.agent(fourth).addr.to_string();
    cli.run(["operator", "raft", "remove-peer", "--peer-address", &addr])
        .unwrap();
    assert_eq!(voters(&peers(&cli, false).unwrap()), ["s1", "s2", "s3"]);

    // Every server killed and restarted: the region comes back from disk
    // and nobody bootstraps again.
    for &s in first {
        cluster.kill(s).unwrap();
    }
    for &s in first {
        cluster.restart(s).unwrap();
    }
    wait_for_leader(&cluster, first, Duration::from_secs(60));
    assert_eq!(voters(&peers(&cli, false).unwrap()), ["s1", "s2", "s3"]);
    let bootstraps: usize = servers
        .iter()
        .filter_map(|&s| cluster.agent(s).proc())
        .map(|p| p.stderr().matches("bootstrapped the region").count())
        .sum();
    assert_eq!(
        bootstraps, 1,
        "the region was bootstrapped {bootstraps} times"
    );
    let lowest: Vec<AgentId> = first
        .iter()
        .copied()
        .filter(|&s| {
            cluster
                .agent(s)
                .proc()
                .is_some_and(|p| p.stderr().contains("bootstrapped the region"))
        })
        .collect();
    let p = peers(&cli, false).unwrap();
    let min_id = p["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .min()
        .unwrap();
    let by_name = |n: &str| {
        p["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .and_then(|p| p["id"].as_u64())
    };
    assert_eq!(
        by_name(name(&cluster, lowest[0])),
        Some(min_id),
        "the server with the lowest raft id bootstraps"
    );
}
