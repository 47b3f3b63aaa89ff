//! Cameras: video4linux capture devices, as `usb/camera/<name>` for USB
//! (UVC) cameras and `linux/camera/<name>` for cameras on a board's own
//! interfaces (CSI), grouped by model. All `/dev/videoN` nodes of one
//! physical camera (a UVC camera has a capture and a metadata node) are
//! one instance. Memory-to-memory devices (codecs, ISPs, scalers), which
//! video4linux lists next to cameras, are left out by name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Found, dev_node, device_name, instance, usb};
use crate::read::Ctx;

const AREA: &str = "camera";

/// Name fragments of video4linux devices that are not cameras.
const NOT_CAMERAS: [&str; 12] = [
    "codec",
    "isp",
    "m2m",
    "scaler",
    "deinterlace",
    "hevc",
    "-dec",
    "-enc",
    "jpeg",
    "rpivid",
    "vpu",
    "nvdec",
];

fn is_camera(name: &str) -> bool {
    let lower = name.to_lowercase();
    !NOT_CAMERAS.iter().any(|n| lower.contains(n))
}

struct Node {
    index: u32,
    name: String,
    path: String,
}

pub(crate) fn find(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    let class = ctx.roots.sys("class/video4linux");
    let entries: Vec<(String, PathBuf)> = ctx
        .device_dirs(AREA, &class)
        .into_iter()
        .filter(|(n, _)| n.starts_with("video"))
        .collect();
    if entries.is_empty() {
        return;
    }
    let Some(sys_root) = ctx.canonical(AREA, &ctx.roots.sys.clone()) else {
        return;
    };
    // Nodes by the physical device they belong to.
    let mut by_device: BTreeMap<PathBuf, Vec<Node>> = BTreeMap::new();
    for (entry_name, entry) in entries {
        let Some(name) = ctx.attr(AREA, &entry.join("name")) else {
            ctx.warn(AREA, format!("{} has no name; left out", entry.display()));
            continue;
        };
        if !is_camera(&name) {
            continue;
        }
        let Some(dev_dir) = ctx.canonical(AREA, &entry.join("device")) else {
            continue;
        };
        let index = ctx
            .attr(AREA, &entry.join("index"))
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let path = dev_node(ctx, &entry, &entry_name);
        by_device
            .entry(dev_dir)
            .or_default()
            .push(Node { index, name, path });
    }
    for (dev_dir, mut nodes) in by_device {
        nodes.sort_by(|a, b| (a.index, &a.path).cmp(&(b.index, &b.path)));
        let Some(first) = nodes.first() else {
            continue;
        };
        let name = device_name(&first.name);
        let paths: Vec<String> = nodes.iter().map(|n| n.path.clone()).collect();
        let driver = ctx.link_name(AREA, &dev_dir.join("driver"));
        let mut attributes = BTreeMap::new();
        if let Some(d) = driver {
            attributes.insert("driver".to_owned(), d);
        }
        let dir_name = dev_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let found = match usb::find(ctx, &sys_root, &dev_dir) {
            Some(u) => {
                let id = u.serial.clone().unwrap_or_else(|| u.port.clone());
                let mut inst = instance(ctx, id, u.port.clone(), paths);
                if let Some(s) = &u.serial {
                    inst.attributes.insert("serial".into(), s.clone());
                }
                inst.attributes.insert("usb.port".into(), u.port.clone());
                attributes.extend(u.model_attributes());
                Found {
                    vendor: "usb".into(),
                    device_type: "camera",
                    name,
                    attributes,
                    instance: inst,
                }
            }
            None => Found {
                vendor: "linux".into(),
                device_type: "camera",
                name,
                attributes,
                instance: instance(ctx, dir_name.clone(), dir_name, paths),
            },
        };
        out.push(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_are_not_cameras() {
        for n in [
            "bcm2835-codec-decode",
            "bcm2835-isp-capture0",
            "rpivid",
            "bcm2835-codec-image_fx",
        ] {
            assert!(!is_camera(n), "{n}");
        }
        for n in [
            "HD Pro Webcam C920",
            "unicam-image",
            "mmal service 16.1",
            "vi-output, imx219 9-0010",
        ] {
            assert!(is_camera(n), "{n}");
        }
    }
}
