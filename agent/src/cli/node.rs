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
    Status(super::node_status::StatusCmd),
    Drain(super::node_drain::DrainCmd),
    Eligibility(super::node_eligibility::EligibilityCmd),
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
            NodeSub::Status(cmd) => cmd.run(),
            NodeSub::Drain(cmd) => cmd.run(),
            NodeSub::Eligibility(cmd) => cmd.run(),
        }
    }
}

impl FingerprintCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let mut fingerprinter = match &self.root {
            Some(root) => Fingerprinter::fixture(root, &self.data_dir)
                .with_context(|| format!("loading fixture {}", root.display()))?,
            None => match version_cache() {
                Some(file) => Fingerprinter::host_with_cache(&self.data_dir, file),
                None => Fingerprinter::host(&self.data_dir),
            },
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

/// Where `wren node fingerprint` keeps emulator versions between runs:
/// `${XDG_CACHE_HOME:-$HOME/.cache}/wren/qemu-versions`.
fn version_cache() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("wren").join("qemu-versions"))
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
            panic!("parsed as another subcommand");
        };
        assert!(f.json);
        assert_eq!(f.root.as_deref(), Some(Path::new("/x")));
        assert_eq!(f.data_dir, Path::new("/var/lib/wren"));
    }
}
