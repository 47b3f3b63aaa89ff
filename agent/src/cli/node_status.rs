//! `wren node status [ID]`: every node, or one node with its resources,
//! drivers, drain and allocations.

use std::process::ExitCode;

use wren_model::Node;

use super::format::{self, ago, columns, kv, short};
use super::remote::{self, Kind, Remote, with_query};
use crate::api::{AllocStub, NodeStub};

crate::wire::api_command! {
    /// List nodes, or show one node; with --self, the client agent at
    /// --address as it sees itself (works while no server is reachable).
    #[argh(subcommand, name = "status")]
    pub struct StatusCmd {
        /// show the node of the agent at --address, as that agent sees it
        #[argh(switch, long = "self")]
        pub self_: bool,
        /// print JSON
        #[argh(switch)]
        pub json: bool,
        /// show full ids
        #[argh(switch)]
        verbose: bool,
        /// answer from any server, possibly behind the leader
        #[argh(switch)]
        stale: bool,
        /// the node id, or a unique prefix of it
        #[argh(positional)]
        pub id: Option<String>,
    }
}

/// Finds a node by id or unique id prefix.
pub fn find_node(remote: &Remote, id: &str, stale: bool) -> anyhow::Result<Node> {
    const NODES: Kind = Kind {
        one: "/v1/node",
        list: "/v1/nodes",
        noun: "node",
        plural: "nodes",
    };
    remote.find(&NODES, id, stale, |s: &NodeStub| &s.id)
}

/// One node, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
struct NodeStatus {
    node: Node,
    allocations: Vec<AllocStub>,
}

impl StatusCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.self_ {
            return super::node_self::status_self(&self);
        }
        let remote = Remote::connect(&self.api_flags())?;
        match &self.id {
            None => self.list(&remote),
            Some(id) => self.one(&remote, id),
        }
    }

    fn list(&self, remote: &Remote) -> anyhow::Result<ExitCode> {
        let nodes: Vec<NodeStub> =
            remote.get(&with_query("/v1/nodes", &[remote::stale(self.stale)]))?;
        if self.json {
            format::print_json(&nodes);
            return Ok(ExitCode::SUCCESS);
        }
        if nodes.is_empty() {
            println!("No nodes registered");
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", node_table(&nodes, self.verbose));
        Ok(ExitCode::SUCCESS)
    }

    fn one(&self, remote: &Remote, id: &str) -> anyhow::Result<ExitCode> {
        let node = find_node(remote, id, self.stale)?;
        let mut allocations: Vec<AllocStub> = remote.get(&with_query(
            &format!("/v1/node/{}/allocations", node.id),
            &[remote::stale(self.stale)],
        ))?;
        allocations.sort_by_key(|a| std::cmp::Reverse(a.create_time));
        let s = NodeStatus { node, allocations };
        if self.json {
            format::print_json(&s);
        } else {
            print!("{}", describe(&s, self.verbose, crate::ids::now_nanos()));
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn node_table(nodes: &[NodeStub], verbose: bool) -> String {
    let mut rows = vec![
        [
            "ID",
            "Node Pool",
            "DC",
            "Name",
            "Class",
            "Address",
            "Version",
            "Drain",
            "Eligibility",
            "Status",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for n in nodes {
        rows.push(vec![
            short(&n.id, verbose),
            n.node_pool.clone(),
            n.datacenter.clone(),
            n.name.clone(),
            if n.node_class.is_empty() {
                "<none>".to_owned()
            } else {
                n.node_class.clone()
            },
            n.address.clone(),
            n.version.clone(),
            n.drain.to_string(),
            n.eligibility.to_string(),
            n.status.to_string(),
        ]);
    }
    columns(&rows)
}

fn describe(s: &NodeStatus, verbose: bool, now: i64) -> String {
    let n = &s.node;
    let drain = match &n.drain {
        None => "false".to_owned(),
        Some(d) if d.force_deadline > 0 => {
            format!("true; forced at {}", format::time(d.force_deadline))
        }
        Some(_) => "true; no deadline".to_owned(),
    };
    let drivers: Vec<String> = n
        .drivers
        .iter()
        .filter(|(_, d)| d.detected)
        .map(|(name, d)| {
            if d.healthy {
                name.clone()
            } else {
                format!("{name} (unhealthy)")
            }
        })
        .collect();
    let r = &n.resources;
    let mut out = kv(&[
        ("ID", short(&n.id, verbose)),
        ("Name", n.name.clone()),
        ("Node Pool", n.node_pool.clone()),
        (
            "Class",
            if n.node_class.is_empty() {
                "<none>".to_owned()
            } else {
                n.node_class.clone()
            },
        ),
        ("DC", n.datacenter.clone()),
        ("Address", n.address.clone()),
        ("Drain", drain),
        ("Eligibility", n.eligibility.to_string()),
        ("Status", n.status.to_string()),
        ("Status Description", n.status_description.clone()),
        ("Version", n.agent_version.clone()),
        (
            "Drivers",
            if drivers.is_empty() {
                "<none>".to_owned()
            } else {
                drivers.join(",")
            },
        ),
        (
            "Resources",
            format!(
                "{} MHz ({} cores), {} MiB memory, {} MiB disk",
                r.cpu, r.cores, r.memory_mb, r.disk_mb
            ),
        ),
    ]);
    out.push_str("\nAllocations\n");
    if s.allocations.is_empty() {
        out.push_str("No allocations placed\n");
        return out;
    }
    let mut rows = vec![
        [
            "ID",
            "Job ID",
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
            a.job_id.clone(),
            a.task_group.clone(),
            a.job_version.to_string(),
            a.desired_status.to_string(),
            a.client_status.to_string(),
            ago(a.create_time, now),
            ago(a.modify_time, now),
        ]);
    }
    out.push_str(&columns(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_list_has_nomads_columns() {
        let t = node_table(
            &[NodeStub {
                id: "0123456789".into(),
                name: "pi-01".into(),
                node_pool: "default".into(),
                datacenter: "dc1".into(),
                ..NodeStub::default()
            }],
            false,
        );
        let mut lines = t.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("ID        Node Pool  DC   Name")
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("01234567  default    dc1  pi-01  <none>"),
            "{t}"
        );
        assert!(row.ends_with("false  eligible     initializing"), "{t}");
    }
}
