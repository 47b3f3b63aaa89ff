//! A client agent as the region tests run it: its own network namespace,
//! started from its config file (`wren agent --config FILE`), with its
//! client certificate. Its servers are out of reach here (none exist at
//! the address it is given), which is also the start of a node that boots
//! without a network: it must come up anyway and answer for its own node.

use std::net::SocketAddr;
use std::time::Duration;

use wren_tests::cluster::{Cluster, ClusterSpec};
use wren_tests::{eventually, require_netns};

#[test]
fn a_client_agent_runs_in_its_own_namespace_from_its_config_without_servers() {
    let name = "a_client_agent_runs_in_its_own_namespace_from_its_config_without_servers";
    if !require_netns(name) {
        return;
    }
    let spec = ClusterSpec::new(0, 1).customize(|f| {
        if let Some(c) = f.client.as_mut() {
            // An address on the test's net where nothing listens.
            c.servers = vec!["10.99.0.250:5684".into()];
            c.meta.insert("rack".into(), "r9".into());
        }
    });
    let cluster = Cluster::start(name, &spec).unwrap();
    let c1 = cluster.clients()[0];
    let addr: SocketAddr = cluster.agent(c1).addr;
    let cli = cluster.cli_to(&[c1]).timeout(Duration::from_secs(10));
    // It answers at once; its first attempt at the servers takes a
    // connect timeout to fail.
    let v = eventually(
        "the client agent to answer, having tried its servers",
        Duration::from_secs(90),
        || {
            let v = cli
                .json(["node", "status", "--self", "--json"])
                .map_err(|e| e.to_string())?;
            if v["last_error"].is_null() {
                return Err(format!(
                    "no attempt at the servers yet: {}",
                    v["last_error"]
                ));
            }
            Ok(v)
        },
    )
    .unwrap();
    assert_eq!(v["node"]["name"], "c1");
    assert_eq!(v["node"]["address"], addr.to_string().as_str());
    assert_eq!(v["node"]["datacenter"], "dc1");
    assert_eq!(v["node"]["meta"]["rack"], "r9");
    assert_eq!(v["node"]["drivers"]["raw_exec"]["detected"], true);
    assert_eq!(v["connected"], false);
    assert!(
        v["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("10.99.0.250")),
        "{v}"
    );
}
