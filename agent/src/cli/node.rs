//! `wren node ...`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use argh::FromArgs;
use wren_fingerprint::{Fingerprint, Fingerprinter};

/// Work with nodes.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "node")]
pub struct NodeCmd {
    #[argh(subcommand)]
    command: NodeSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum NodeSub {
    Fingerprint(FingerprintCmd),
    Status(StatusCmd),
}

/// Show what this machine looks like to the scheduler: attributes,
/// resources, drivers and devices.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "fingerprint")]
struct FingerprintCmd {
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,

    /// read a fixture tree (proc/, sys/, dev/, etc/, probes.json) instead
    /// of this machine
    #[argh(option)]
    root: Option<PathBuf>,

    /// the data dir whose file system is the node's disk (default
    /// /var/lib/wren)
    #[argh(option, default = "PathBuf::from(\"/var/lib/wren\")")]
    data_dir: PathBuf,
}

impl NodeCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            NodeSub::Fingerprint(cmd) => cmd.run(),
            NodeSub::Status(cmd) if cmd.self_ => status_self(&cmd),
            NodeSub::Status(cmd) => status_by_id(&cmd),
        }
    }
}

crate::wire::api_command! {
    /// Show a node: with --self, the client agent at --address as it sees
    /// itself (its node, its connection to the servers, its allocations),
    /// which works while no server is reachable.
    #[argh(subcommand, name = "status")]
    struct StatusCmd {
        /// show the node of the agent at --address, as that agent sees it
        #[argh(switch, long = "self")]
        self_: bool,
        /// print JSON
        #[argh(switch)]
        json: bool,
        /// the node id (without --self)
        #[argh(positional)]
        id: Option<String>,
    }
}

/// `node status ID`: the node as the servers see it.
fn status_by_id(cmd: &StatusCmd) -> anyhow::Result<ExitCode> {
    let Some(id) = cmd.id.clone() else {
        anyhow::bail!("give a node id, or --self for the agent at --address");
    };
    let config = cmd.api_flags().resolve()?;
    let ex = std::sync::Arc::new(smol::Executor::new());
    let node: wren_model::Node = smol::block_on(ex.run(async {
        let client = crate::wire::Client::new(config, ex.clone())?;
        let (node, _) = client.get(&format!("/v1/node/{id}")).await?;
        anyhow::Ok(node)
    }))?;
    if cmd.json {
        println!("{}", wren_model::codec::to_json_pretty(&node));
    } else {
        print!("{}", node_text(&node));
    }
    Ok(ExitCode::SUCCESS)
}

/// `node status --self`: asks the agent itself (a client agent answers with
/// its own view even when the servers are out of reach).
fn status_self(cmd: &StatusCmd) -> anyhow::Result<ExitCode> {
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
    columns(&mut out, &rows);
    out
}

impl FingerprintCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let mut fingerprinter = match &self.root {
            Some(root) => Fingerprinter::fixture(root, &self.data_dir)
                .with_context(|| format!("loading fixture {}", root.display()))?,
            None => Fingerprinter::host(&self.data_dir),
        };
        let fp = fingerprinter.fingerprint();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&fp)?);
        } else {
            print!("{}", table(&fp));
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// At most three paths, then how many more (a Jetson GPU has two dozen).
fn short_paths(paths: &[String]) -> String {
    const SHOWN: usize = 3;
    if paths.len() <= SHOWN + 1 {
        return paths.join(",");
    }
    let shown: Vec<&str> = paths.iter().take(SHOWN).map(String::as_str).collect();
    format!("{},... (+{} more)", shown.join(","), paths.len() - SHOWN)
}

/// Rows padded into columns.
fn columns(out: &mut String, rows: &[Vec<String>]) {
    let mut widths = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) if *max < w => *max = w,
                Some(_) => {}
                None => widths.push(w),
            }
        }
    }
    for row in rows {
        let mut line = String::from("  ");
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The human-readable form: attributes, resources, drivers, devices and
/// warnings, each as aligned columns.
fn table(fp: &Fingerprint) -> String {
    let mut out = String::new();
    let r = &fp.resources;

    out.push_str("Resources\n");
    let networks: Vec<String> = r
        .networks
        .iter()
        .map(|n| format!("{} {}", n.device, n.ip))
        .collect();
    columns(
        &mut out,
        &[
            vec!["CPU".into(), format!("{} MHz ({} cores)", r.cpu, r.cores)],
            vec!["Memory".into(), format!("{} MiB", r.memory_mb)],
            vec!["Disk".into(), format!("{} MiB free", r.disk_mb)],
            vec![
                "Networks".into(),
                if networks.is_empty() {
                    "none".into()
                } else {
                    networks.join(", ")
                },
            ],
        ],
    );

    out.push_str("\nDrivers\n");
    let mut rows = vec![vec![
        "NAME".into(),
        "DETECTED".into(),
        "HEALTHY".into(),
        "DESCRIPTION".into(),
    ]];
    for (name, d) in &fp.drivers {
        rows.push(vec![
            name.clone(),
            yes_no(d.detected).into(),
            yes_no(d.healthy).into(),
            d.health_description.clone(),
        ]);
    }
    columns(&mut out, &rows);

    out.push_str("\nDevices\n");
    if r.devices.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut rows = vec![vec![
            "DEVICE".into(),
            "ID".into(),
            "HEALTHY".into(),
            "PATHS".into(),
        ]];
        for g in &r.devices {
            for i in &g.instances {
                let healthy = if i.healthy {
                    "yes".to_owned()
                } else {
                    format!("no ({})", i.health_description)
                };
                rows.push(vec![g.id(), i.id.clone(), healthy, short_paths(&i.paths)]);
            }
        }
        columns(&mut out, &rows);
    }

    out.push_str("\nAttributes\n");
    let rows: Vec<Vec<String>> = fp
        .attributes
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    columns(&mut out, &rows);

    if !fp.warnings.is_empty() {
        out.push_str("\nWarnings\n");
        for w in &fp.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn pi4() -> Fingerprint {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fingerprint/testdata/pi4");
        Fingerprinter::fixture(&root, "/var/lib/wren")
            .unwrap()
            .fingerprint()
    }

    #[test]
    fn table_shows_resources_drivers_devices_and_attributes() {
        let t = table(&pi4());
        assert!(t.contains("CPU       6000 MHz (4 cores)"), "{t}");
        assert!(t.contains("usb/serial/FT232R USB UART"), "{t}");
        assert!(t.contains("/dev/ttyUSB0"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.trim_start().starts_with("cgroup.controller.memory")
                    && l.ends_with("off")),
            "{t}"
        );
        assert!(
            t.lines().any(|l| l.trim_start().starts_with("exec ")),
            "{t}"
        );
    }

    #[test]
    fn argh_parses_the_flags() {
        let cmd =
            NodeCmd::from_args(&["node"], &["fingerprint", "--json", "--root", "/x"]).unwrap();
        let NodeSub::Fingerprint(f) = cmd.command else {
            panic!("parsed as another subcommand")
        };
        assert!(f.json);
        assert_eq!(f.root.as_deref(), Some(Path::new("/x")));
        assert_eq!(f.data_dir, Path::new("/var/lib/wren"));
        let cmd = NodeCmd::from_args(&["node"], &["status", "--self", "--json"]).unwrap();
        let NodeSub::Status(s) = cmd.command else {
            panic!("parsed as another subcommand")
        };
        assert!(s.self_ && s.json && s.id.is_none());
    }
}
