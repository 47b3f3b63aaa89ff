//! Discrete and PCI GPUs: every PCI function of class 0x03 (display) from
//! NVIDIA (0x10de), AMD (0x1002) or Intel (0x8086).
//!
//! NVIDIA GPUs driven by NVIDIA's kernel module are described by
//! `/proc/driver/nvidia/gpus/<bus id>/information` (model, UUID, minor)
//! and handed out as `/dev/nvidia<minor>` plus the shared control nodes.
//! The others are described by sysfs (driver, ids, AMD's VRAM size and
//! product name) and handed out as their DRM nodes (`/dev/dri/cardN`,
//! `/dev/dri/renderDN`, and `/dev/kfd` for AMD compute).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Found, device_name, instance};
use crate::read::{Ctx, clean};

const AREA: &str = "gpu";
const NVIDIA: u32 = 0x10de;
const AMD: u32 = 0x1002;
const INTEL: u32 = 0x8086;
/// Nodes every NVIDIA task needs besides its GPU's own.
const NVIDIA_SHARED: [&str; 4] = [
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
];

/// `Key: value` lines of NVIDIA's per-GPU `information` file.
fn parse_colon_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), clean(v)))
        .collect()
}

/// The driver version in `/proc/driver/nvidia/version`
/// (`NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  ...`).
pub(crate) fn nvidia_driver_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    let after = line.split_once("Module")?.1;
    after
        .split_whitespace()
        .find(|t| {
            t.starts_with(|c: char| c.is_ascii_digit())
                && t.contains('.')
                && t.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(str::to_owned)
}

pub(crate) fn find(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    let pci = ctx.roots.sys("bus/pci/devices");
    let mut nvidia_version: Option<Option<String>> = None;
    for (bdf, dir) in ctx.device_dirs(AREA, &pci) {
        let Some(class) = ctx.hex(AREA, &dir.join("class")) else {
            continue;
        };
        if class >> 16 != 0x03 {
            continue;
        }
        let Some(vendor) = ctx.hex(AREA, &dir.join("vendor")) else {
            continue;
        };
        let vendor_name = match vendor {
            NVIDIA => "nvidia",
            AMD => "amd",
            INTEL => "intel",
            _ => continue,
        };
        let device = ctx.hex(AREA, &dir.join("device")).unwrap_or(0);
        let mut attributes = BTreeMap::new();
        attributes.insert("pci.vendor_id".to_owned(), format!("{vendor:04x}"));
        attributes.insert("pci.device_id".to_owned(), format!("{device:04x}"));
        let driver = ctx.link_name(AREA, &dir.join("driver"));
        if let Some(d) = &driver {
            attributes.insert("driver".to_owned(), d.clone());
        }
        let info_path = ctx
            .roots
            .proc(&format!("driver/nvidia/gpus/{bdf}/information"));
        let info = if vendor == NVIDIA {
            ctx.read(AREA, &info_path).map(|t| parse_colon_lines(&t))
        } else {
            None
        };
        let found = match info {
            Some(info) => {
                let version = nvidia_version
                    .get_or_insert_with(|| {
                        ctx.read(AREA, &ctx.roots.proc("driver/nvidia/version"))
                            .and_then(|t| nvidia_driver_version(&t))
                    })
                    .clone();
                let drm_nodes = drm_nodes(ctx, &dir);
                nvidia(ctx, &bdf, &info, version, attributes, device, drm_nodes)
            }
            None => drm(
                ctx,
                &dir,
                &bdf,
                vendor_name,
                driver.as_deref(),
                attributes,
                device,
            ),
        };
        out.push(found);
    }
}

/// The DRM nodes (`card*`, `renderD*`) of a PCI function.
fn drm_nodes(ctx: &mut Ctx<'_>, dir: &Path) -> Vec<String> {
    ctx.list(AREA, &dir.join("drm"))
        .into_iter()
        .filter(|n| n.starts_with("card") || n.starts_with("renderD"))
        .collect()
}

fn nvidia(
    ctx: &mut Ctx<'_>,
    bdf: &str,
    info: &BTreeMap<String, String>,
    version: Option<String>,
    mut attributes: BTreeMap<String, String>,
    device: u32,
    drm_nodes: Vec<String>,
) -> Found {
    if let Some(v) = version {
        attributes.insert("driver_version".to_owned(), v);
    }
    let minor = info.get("Device Minor").and_then(|m| m.parse::<u32>().ok());
    let mut paths = Vec::new();
    if let Some(m) = minor {
        paths.push(format!("/dev/nvidia{m}"));
    }
    paths.extend(
        NVIDIA_SHARED
            .iter()
            .filter(|p| ctx.dev_exists(p))
            .map(|p| (*p).to_owned()),
    );
    // nvidia-drm's nodes, for EGL and Vulkan.
    paths.extend(drm_nodes.iter().map(|n| format!("/dev/dri/{n}")));
    let id = info
        .get("GPU UUID")
        .filter(|u| !u.is_empty())
        .cloned()
        .unwrap_or_else(|| bdf.to_owned());
    let mut inst = instance(ctx, id, bdf.to_owned(), paths);
    if minor.is_none() {
        inst.healthy = false;
        inst.health_description = "no device minor in the driver's information file".into();
    }
    if info
        .get("GPU Excluded")
        .is_some_and(|e| e.eq_ignore_ascii_case("yes"))
    {
        inst.healthy = false;
        inst.health_description = "excluded by the NVIDIA driver".into();
    }
    inst.attributes.insert("pci.bus_id".into(), bdf.to_owned());
    for (key, attr) in [
        ("Video BIOS", "vbios"),
        ("Bus Type", "bus_type"),
        ("GPU UUID", "uuid"),
    ] {
        if let Some(v) = info.get(key).filter(|v| !v.is_empty()) {
            inst.attributes.insert(attr.into(), v.clone());
        }
    }
    let name = info
        .get("Model")
        .filter(|m| !m.is_empty())
        .map(|m| device_name(m))
        .unwrap_or_else(|| format!("0x{device:04x}"));
    Found {
        vendor: "nvidia".into(),
        device_type: "gpu",
        name,
        attributes,
        instance: inst,
    }
}

fn drm(
    ctx: &mut Ctx<'_>,
    dir: &Path,
    bdf: &str,
    vendor: &str,
    driver: Option<&str>,
    mut attributes: BTreeMap<String, String>,
    device: u32,
) -> Found {
    let nodes = drm_nodes(ctx, dir);
    let mut paths: Vec<String> = nodes.iter().map(|n| format!("/dev/dri/{n}")).collect();
    if vendor == "amd" && ctx.dev_exists("/dev/kfd") {
        paths.push("/dev/kfd".into());
    }
    if let Some(bytes) = ctx
        .attr(AREA, &dir.join("mem_info_vram_total"))
        .and_then(|s| s.parse::<u64>().ok())
    {
        attributes.insert("memory".into(), (bytes / (1024 * 1024)).to_string());
    }
    let product = ctx.attr(AREA, &dir.join("product_name"));
    let name = product.map_or_else(|| format!("0x{device:04x}"), |p| device_name(&p));
    let mut inst = instance(ctx, bdf.to_owned(), bdf.to_owned(), paths);
    if driver.is_none() {
        inst.healthy = false;
        inst.health_description = "no kernel driver is bound".into();
    } else if nodes.is_empty() {
        inst.healthy = false;
        inst.health_description = "no DRM device nodes".into();
    }
    inst.attributes.insert("pci.bus_id".into(), bdf.to_owned());
    Found {
        vendor: vendor.to_owned(),
        device_type: "gpu",
        name,
        attributes,
        instance: inst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_versions() {
        assert_eq!(
            nvidia_driver_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\nGCC version:  gcc 12\n").as_deref(),
            Some("535.183.01")
        );
        assert_eq!(
            nvidia_driver_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build\n").as_deref(),
            Some("550.54.14")
        );
        assert_eq!(nvidia_driver_version("junk"), None);
    }
}
