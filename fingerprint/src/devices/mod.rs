//! Devices a task can be given, as Nomad device groups named
//! `vendor/type/name`, each with instances carrying the `/dev` nodes a
//! runtime hands the task.
//!
//! Interchangeable hardware (GPUs, USB serial adapters, cameras) is
//! grouped by model, so two identical adapters are one group with two
//! instances; a bus or chip (i2c, spi, gpio, a board's own UART) is its
//! own group named after its kernel name, because `i2c-1` and `i2c-20`
//! are not interchangeable. See the crate docs for the naming table.

mod bus;
mod camera;
mod gpu;
mod tegra;
mod tty;
mod usb;

use std::collections::BTreeMap;
use std::path::Path;

use wren_model::{NodeDevice, NodeDeviceResource};

use crate::board::Board;
use crate::read::{Ctx, clean};

/// One device instance as a finder reports it, before grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub vendor: String,
    pub device_type: &'static str,
    pub name: String,
    /// Attributes every instance of the group shares.
    pub attributes: BTreeMap<String, String>,
    pub instance: NodeDevice,
}

/// A device group name: cleaned, without `/` (which separates the parts
/// of `vendor/type/name`), never empty.
pub(crate) fn device_name(s: &str) -> String {
    let c = clean(s).replace('/', "-");
    if c.is_empty() {
        "unknown".to_owned()
    } else {
        c
    }
}

/// The `/dev` node of a class device, from its `uevent`'s `DEVNAME`
/// (falling back to the entry's own name), as the machine names it.
pub(crate) fn dev_node(ctx: &mut Ctx<'_>, class_dir: &Path, fallback: &str) -> String {
    let devname = ctx
        .read("devices", &class_dir.join("uevent"))
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME="))
                .map(clean)
        })
        .filter(|d| !d.is_empty() && !d.split('/').any(|p| p == ".." || p.is_empty()));
    format!("/dev/{}", devname.as_deref().unwrap_or(fallback))
}

/// A healthy instance whose nodes all exist, or an unhealthy one naming
/// the missing node.
pub(crate) fn instance(
    ctx: &Ctx<'_>,
    id: String,
    locality: String,
    paths: Vec<String>,
) -> NodeDevice {
    let missing = paths.iter().find(|p| !ctx.dev_exists(p));
    NodeDevice {
        id,
        healthy: missing.is_none(),
        health_description: missing
            .map(|p| format!("device node {p} is missing"))
            .unwrap_or_default(),
        locality,
        paths,
        attributes: BTreeMap::new(),
    }
}

/// Groups found instances by `vendor/type/name`. A group keeps the
/// attributes all its instances agree on; colliding instance ids get a
/// `-2`, `-3`, ... suffix.
pub(crate) fn group(found: Vec<Found>) -> Vec<NodeDeviceResource> {
    let mut groups: BTreeMap<(String, String, String), NodeDeviceResource> = BTreeMap::new();
    for f in found {
        let key = (f.vendor.clone(), f.device_type.to_owned(), f.name.clone());
        match groups.get_mut(&key) {
            Some(g) => {
                g.attributes.retain(|k, v| f.attributes.get(k) == Some(v));
                g.instances.push(f.instance);
            }
            None => {
                groups.insert(
                    key,
                    NodeDeviceResource {
                        vendor: f.vendor,
                        device_type: f.device_type.to_owned(),
                        name: f.name,
                        attributes: f.attributes,
                        instances: vec![f.instance],
                    },
                );
            }
        }
    }
    let mut out: Vec<NodeDeviceResource> = groups.into_values().collect();
    for g in &mut out {
        g.instances
            .sort_by(|a, b| (&a.id, &a.locality).cmp(&(&b.id, &b.locality)));
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for inst in &mut g.instances {
            let n = seen.entry(inst.id.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                inst.id = format!("{}-{n}", inst.id);
            }
        }
    }
    out
}

/// Finds every device under the roots. `memory_mib` is the system's
/// memory, which an integrated GPU shares.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    board: &Board,
    memory_mib: u64,
) -> Vec<NodeDeviceResource> {
    let mut found = Vec::new();
    gpu::find(ctx, &mut found);
    tegra::find(ctx, board, memory_mib, &mut found);
    tty::find(ctx, &mut found);
    camera::find(ctx, &mut found);
    bus::find(ctx, &mut found);
    group(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, id: &str, attrs: &[(&str, &str)]) -> Found {
        Found {
            vendor: "usb".into(),
            device_type: "serial",
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            instance: NodeDevice {
                id: id.into(),
                ..NodeDevice::default()
            },
        }
    }

    #[test]
    fn grouping_keeps_shared_attributes_and_unique_ids() {
        let groups = group(vec![
            f(
                "FT232R USB UART",
                "A1",
                &[("usb.vendor_id", "0403"), ("x", "1")],
            ),
            f(
                "FT232R USB UART",
                "A1",
                &[("usb.vendor_id", "0403"), ("x", "2")],
            ),
            f("CP2102", "0001", &[]),
        ]);
        assert_eq!(groups.len(), 2);
        let ft = groups.iter().find(|g| g.name == "FT232R USB UART").unwrap();
        assert_eq!(ft.attributes.len(), 1);
        let ids: Vec<&str> = ft.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["A1", "A1-2"]);
        assert_eq!(device_name("a/b\0"), "a-b");
        assert_eq!(device_name(" "), "unknown");
    }
}
