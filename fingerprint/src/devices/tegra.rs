//! The integrated GPU of NVIDIA Tegra SoCs (Jetson boards). Found from the
//! device tree's root `compatible` (`nvidia,tegra234`, ...), the GPU's
//! platform device and its `/dev/nvhost-*`, `/dev/nvmap` and
//! `/dev/nvgpu/igpu0/*` nodes; the L4T release from
//! `/etc/nv_tegra_release` is its driver version. It shares system memory,
//! so its `memory` is the system's.

use std::collections::BTreeMap;

use super::{Found, instance};
use crate::board::Board;
use crate::read::Ctx;

const AREA: &str = "tegra";

/// Device nodes a CUDA task on a Jetson needs, where present.
const NODES: [&str; 14] = [
    "/dev/nvmap",
    "/dev/nvhost-ctrl",
    "/dev/nvhost-ctrl-gpu",
    "/dev/nvhost-gpu",
    "/dev/nvhost-as-gpu",
    "/dev/nvhost-dbg-gpu",
    "/dev/nvhost-prof-gpu",
    "/dev/nvhost-tsg-gpu",
    "/dev/nvhost-sched-gpu",
    "/dev/nvhost-ctxsw-gpu",
    "/dev/nvhost-power-gpu",
    "/dev/nvhost-nvsched-gpu",
    "/dev/nvhost-prof-ctx-gpu",
    "/dev/nvhost-prof-dev-gpu",
];

/// What each SoC's GPU is: (soc, gpu, architecture, CUDA compute capability).
const SOCS: [(&str, &str, &str, &str); 4] = [
    ("tegra210", "gm20b", "maxwell", "5.3"),
    ("tegra186", "gp10b", "pascal", "6.2"),
    ("tegra194", "gv11b", "volta", "7.2"),
    ("tegra234", "ga10b", "ampere", "8.7"),
];

/// `# R35 (release), REVISION: 4.1, ...` gives `35.4.1`.
pub(crate) fn l4t_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with("# R"))?;
    let major: String = line
        .trim_start()
        .strip_prefix("# R")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let revision: String = line
        .split("REVISION:")
        .nth(1)?
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!major.is_empty() && !revision.is_empty())
        .then(|| format!("{major}.{}", revision.trim_end_matches('.')))
}

pub(crate) fn find(ctx: &mut Ctx<'_>, board: &Board, memory_mib: u64, out: &mut Vec<Found>) {
    let Some(compat) = board.compatible_with("nvidia,tegra") else {
        return;
    };
    let soc = compat.trim_start_matches("nvidia,").to_owned();
    let known = SOCS.iter().find(|(s, ..)| *s == soc);
    let gpu = known.map_or("gpu", |(_, g, ..)| g);

    let platform = ctx.roots.sys("bus/platform/devices");
    let platform_dev = ctx
        .list(AREA, &platform)
        .into_iter()
        .find(|n| n.ends_with(&format!(".{gpu}")) || n.ends_with(".gpu"));
    let mut paths: Vec<String> = NODES
        .iter()
        .filter(|p| ctx.dev_exists(p))
        .map(|p| (*p).to_owned())
        .collect();
    let igpu = ctx.roots.dev("nvgpu/igpu0");
    paths.extend(
        ctx.list(AREA, &igpu)
            .into_iter()
            .map(|n| format!("/dev/nvgpu/igpu0/{n}")),
    );
    let has_gpu_node = paths
        .iter()
        .any(|p| p.ends_with("-gpu") || p.starts_with("/dev/nvgpu/"));
    if platform_dev.is_none() && paths.is_empty() {
        return;
    }

    let mut attributes = BTreeMap::new();
    attributes.insert("soc".to_owned(), soc.clone());
    attributes.insert("integrated".to_owned(), "true".to_owned());
    if let Some((_, _, arch, cc)) = known {
        attributes.insert("architecture".to_owned(), (*arch).to_owned());
        attributes.insert("compute_capability".to_owned(), (*cc).to_owned());
    }
    if memory_mib > 0 {
        attributes.insert("memory".to_owned(), memory_mib.to_string());
    }
    let release = ctx.roots.etc("nv_tegra_release");
    if let Some(text) = ctx.read(AREA, &release) {
        match l4t_version(&text) {
            Some(v) => {
                attributes.insert("driver_version".to_owned(), format!("L4T {v}"));
                attributes.insert("l4t_version".to_owned(), v);
            }
            None => ctx.warn(AREA, format!("{}: no L4T release line", release.display())),
        }
    }

    let locality = platform_dev.clone().unwrap_or_default();
    let id = platform_dev.unwrap_or_else(|| "igpu0".to_owned());
    let mut inst = instance(ctx, id, locality, paths);
    if !has_gpu_node {
        inst.healthy = false;
        inst.health_description = "no GPU device nodes (is the nvgpu driver loaded?)".into();
    }
    out.push(Found {
        vendor: "nvidia".into(),
        device_type: "gpu",
        name: gpu.to_owned(),
        attributes,
        instance: inst,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l4t_release_lines() {
        assert_eq!(
            l4t_version("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n").as_deref(),
            Some("35.4.1")
        );
        assert_eq!(
            l4t_version("# R32 (release), REVISION: 7.4, GCID: 1\n").as_deref(),
            Some("32.7.4")
        );
        assert_eq!(l4t_version("nonsense"), None);
    }
}
