//! Serial ports: USB serial adapters (`ttyUSB*`, `ttyACM*`) as
//! `usb/serial/<product>` grouped by model, and a board's own UARTs
//! (`ttyAMA0`, `ttyS0`, ...) as `linux/serial/<tty>`. Virtual terminals,
//! pseudo terminals and 8250 placeholder ports without a UART are left
//! out; the kernel console is reported but unhealthy, so it is never
//! handed to a task.

use std::collections::{BTreeMap, BTreeSet};

use super::{Found, dev_node, device_name, instance, usb};
use crate::read::Ctx;

const AREA: &str = "serial";

fn is_virtual(name: &str) -> bool {
    let numbered_vt = name
        .strip_prefix("tty")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    numbered_vt
        || matches!(name, "tty" | "console" | "ptmx" | "ttyprintk")
        || name.starts_with("pty")
        || name.starts_with("ttyp")
}

/// `/dev/serial/by-id` links by the tty they point to.
fn by_id(ctx: &mut Ctx<'_>) -> BTreeMap<String, String> {
    let dir = ctx.roots.dev("serial/by-id");
    let mut out = BTreeMap::new();
    for link in ctx.list(AREA, &dir) {
        if let Some(target) = ctx.link_name(AREA, &dir.join(&link)) {
            out.entry(target)
                .or_insert_with(|| format!("/dev/serial/by-id/{link}"));
        }
    }
    out
}

struct Port {
    tty: String,
    node: String,
    driver: Option<String>,
    usb: Option<usb::Usb>,
    locality: String,
}

pub(crate) fn find(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    let class = ctx.roots.sys("class/tty");
    let entries = ctx.device_dirs(AREA, &class);
    if entries.is_empty() {
        return;
    }
    let Some(sys_root) = ctx.canonical(AREA, &ctx.roots.sys.clone()) else {
        return;
    };
    let consoles: BTreeSet<String> = ctx
        .read(AREA, &class.join("console/active"))
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let links = by_id(ctx);

    let mut ports = Vec::new();
    for (name, entry) in entries.into_iter().filter(|(n, _)| !is_virtual(n)) {
        let device = entry.join("device");
        if device.symlink_metadata().is_err() {
            continue;
        }
        if ctx.attr(AREA, &entry.join("type")).as_deref() == Some("0") {
            continue;
        }
        let Some(dev_dir) = ctx.canonical(AREA, &device) else {
            continue;
        };
        let driver = ctx.link_name(AREA, &device.join("driver"));
        let node = dev_node(ctx, &entry, &name);
        let usb = usb::find(ctx, &sys_root, &dev_dir);
        let locality = match &usb {
            Some(u) => u.port.clone(),
            None => dev_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        ports.push(Port {
            tty: name,
            node,
            driver,
            usb,
            locality,
        });
    }

    // Ports per adapter (a dual-port FT2232 has two), and adapters per
    // serial number (cheap CP2102s all say 0001).
    let mut per_usb: BTreeMap<std::path::PathBuf, usize> = BTreeMap::new();
    let mut per_serial: BTreeMap<&str, BTreeSet<&std::path::Path>> = BTreeMap::new();
    for p in &ports {
        if let Some(u) = &p.usb {
            *per_usb.entry(u.dir.clone()).or_default() += 1;
            if let Some(s) = &u.serial {
                per_serial
                    .entry(s.as_str())
                    .or_default()
                    .insert(u.dir.as_path());
            }
        }
    }
    let shared_serials: BTreeSet<String> = per_serial
        .into_iter()
        .filter(|(_, dirs)| dirs.len() > 1)
        .map(|(s, _)| s.to_owned())
        .collect();
    for p in ports {
        let mut inst = instance(ctx, String::new(), p.locality.clone(), vec![p.node.clone()]);
        if consoles.contains(&p.tty) {
            inst.healthy = false;
            inst.health_description = "the kernel console".into();
        }
        inst.attributes.insert("tty".into(), p.tty.clone());
        if let Some(link) = links.get(&p.tty) {
            inst.attributes.insert("by_id".into(), link.clone());
        }
        let mut attributes = BTreeMap::new();
        if let Some(d) = &p.driver {
            attributes.insert("driver".into(), d.clone());
        }
        let found = match p.usb {
            Some(u) => {
                let multi_port = per_usb.get(&u.dir).copied().unwrap_or(1) > 1;
                let iface = u.interface.clone().unwrap_or_else(|| u.port.clone());
                let iface_num = iface.rsplit(':').next().unwrap_or(&iface).to_owned();
                inst.id = match &u.serial {
                    // Not unique: say which USB port it is in.
                    Some(s) if shared_serials.contains(s) => format!("{s}@{iface}"),
                    Some(s) if multi_port => format!("{s}:{iface_num}"),
                    Some(s) => s.clone(),
                    None => iface,
                };
                if let Some(s) = &u.serial {
                    inst.attributes.insert("serial".into(), s.clone());
                }
                inst.attributes.insert("usb.port".into(), u.port.clone());
                attributes.extend(u.model_attributes());
                Found {
                    vendor: "usb".into(),
                    device_type: "serial",
                    name: device_name(&u.model_name()),
                    attributes,
                    instance: inst,
                }
            }
            None => {
                inst.id = p.tty.clone();
                Found {
                    vendor: "linux".into(),
                    device_type: "serial",
                    name: device_name(&p.tty),
                    attributes,
                    instance: inst,
                }
            }
        };
        out.push(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_ttys() {
        for v in ["tty", "tty0", "tty63", "console", "ptmx", "ptyp0", "ttyp0"] {
            assert!(is_virtual(v), "{v}");
        }
        for r in ["ttyS0", "ttyUSB0", "ttyACM0", "ttyAMA0", "ttyTHS1"] {
            assert!(!is_virtual(r), "{r}");
        }
    }
}
