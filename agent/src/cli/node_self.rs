//! `wren node status --self`: the client agent at `--address` as it sees
//! itself (its node, its connection to the servers, its allocations); it
//! answers while no server is reachable.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use super::format::columns;
use super::node_status::StatusCmd;

/// `node status --self`: asks the agent itself (a client agent answers with
/// its own view even when the servers are out of reach).
pub fn status_self(cmd: &StatusCmd) -> anyhow::Result<ExitCode> {
    if cmd.id.is_some() {
        anyhow::bail!("--self takes no node id: it shows the agent at --address");
    }
    let config = cmd.api_flags().resolve()?;
    let ex = std::sync::Arc::new(smol::Executor::new());
    let status: crate::api::ClientNodeStatus = smol::block_on(ex.run(async {
        let client = crate::wire::Client::to_node(config, ex.clone())?;
        let (status, _) = client.get("/v1/client/node").await?;
        anyhow::Ok(status)
    }))
    .context("asking the agent for its node (is it running in client mode?)")?;
    if cmd.json {
        println!("{}", wren_model::codec::to_json_pretty(&status));
    } else {
        print!("{}", self_text(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn node_text(n: &wren_model::Node) -> String {
    let mut out = String::new();
    let drivers: Vec<&str> = n
        .drivers
        .iter()
        .filter(|(_, d)| d.detected && d.healthy)
        .map(|(k, _)| k.as_str())
        .collect();
    let rows = [
        ("ID", n.id.clone()),
        ("Name", n.name.clone()),
        ("Address", n.address.clone()),
        ("Datacenter", n.datacenter.clone()),
        ("Node Pool", n.node_pool.clone()),
        ("Class", n.node_class.clone()),
        ("Status", n.status.as_str().to_owned()),
        ("Eligibility", n.eligibility.as_str().to_owned()),
        ("Drivers", drivers.join(",")),
        (
            "CPU",
            format!("{} MHz ({} reserved)", n.resources.cpu, n.reserved.cpu),
        ),
        (
            "Memory",
            format!(
                "{} MiB ({} reserved)",
                n.resources.memory_mb, n.reserved.memory_mb
            ),
        ),
        ("Devices", n.resources.devices.len().to_string()),
        ("Version", n.agent_version.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<12} = {v}");
    }
    out
}

fn self_text(s: &crate::api::ClientNodeStatus) -> String {
    let mut out = node_text(&s.node);
    let _ = writeln!(
        out,
        "{:<12} = {}",
        "Servers",
        if s.connected {
            format!("connected ({})", s.servers.join(", "))
        } else {
            match &s.last_error {
                Some(e) => format!("not connected: {e}"),
                None => "not connected".to_owned(),
            }
        }
    );
    let _ = writeln!(
        out,
        "{:<12} = {}",
        "Last Contact",
        super::alloc::fmt_time(s.last_contact)
    );
    let _ = writeln!(out, "{:<12} = {}", "Queued", s.pending_updates);
    out.push_str("\nAllocations\n");
    let mut rows = vec![vec![
        "ID".to_owned(),
        "Job".to_owned(),
        "Group".to_owned(),
        "Desired".to_owned(),
        "Status".to_owned(),
    ]];
    for a in &s.allocs {
        rows.push(vec![
            a.id.get(..8).unwrap_or(&a.id).to_owned(),
            a.job_id.clone(),
            a.task_group.clone(),
            a.desired_status.as_str().to_owned(),
            a.client_status.as_str().to_owned(),
        ]);
    }
    out.push_str(&columns(&rows));
    out
}
