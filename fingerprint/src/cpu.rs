//! CPU facts from `/proc/cpuinfo` and `/sys/devices/system/cpu`: the
//! architecture, model, vendor, online cores, frequency and total compute,
//! and the feature flags (x86 `flags`, ARM `Features` hwcaps, RISC-V `isa`).

use std::collections::BTreeMap;

use crate::read::{Ctx, clean};

const AREA: &str = "cpu";

/// What the rest of the fingerprint needs from the CPU facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cpu {
    /// Online logical CPUs.
    pub cores: u32,
    /// Sum of each online CPU's (maximum) frequency, in MHz.
    pub total_mhz: u32,
}

/// One `processor` block of `/proc/cpuinfo`.
type Block = BTreeMap<String, String>;

/// Splits cpuinfo into per-processor blocks plus the trailing lines some
/// kernels add after the last processor (`Hardware`, `Model`, ...).
fn parse_cpuinfo(text: &str) -> (Vec<Block>, Block) {
    let mut blocks = Vec::new();
    let mut tail = Block::new();
    let mut current = Block::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            if line.trim().is_empty() && !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        };
        let key = key.trim().to_owned();
        if key == "processor" && current.contains_key("processor") {
            blocks.push(std::mem::take(&mut current));
        }
        current.insert(key, value.trim().to_owned());
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    // Blocks without a `processor` line are machine-wide trailers.
    let (procs, trailers): (Vec<Block>, Vec<Block>) = blocks
        .into_iter()
        .partition(|b| b.contains_key("processor"));
    for t in trailers {
        tail.extend(t);
    }
    (procs, tail)
}

/// Parses a CPU list such as `0-3,6,8-9` into the CPU numbers.
pub(crate) fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

/// Go's name for an architecture (Nomad's `cpu.arch` is Go's `GOARCH`),
/// from Rust's or `uname -m`'s spelling.
pub(crate) fn go_arch(arch: &str) -> String {
    match arch {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" | "aarch64_be" => "arm64",
        "x86" | "i386" | "i486" | "i586" | "i686" => "386",
        a if a == "arm" || a.starts_with("armv") => "arm",
        "powerpc64le" | "ppc64le" => "ppc64le",
        "powerpc64" | "ppc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" => "mips64",
        "riscv64" | "riscv64gc" => "riscv64",
        other => other,
    }
    .to_owned()
}

/// ARM's `CPU implementer` codes, as lscpu names them.
fn arm_vendor(implementer: u32) -> Option<&'static str> {
    Some(match implementer {
        0x41 => "ARM",
        0x42 => "Broadcom",
        0x43 => "Cavium",
        0x46 => "Fujitsu",
        0x48 => "HiSilicon",
        0x4e => "NVIDIA",
        0x50 => "APM",
        0x51 => "Qualcomm",
        0x53 => "Samsung",
        0x56 => "Marvell",
        0x61 => "Apple",
        0x69 => "Intel",
        0xc0 => "Ampere",
        _ => return None,
    })
}

/// Model names of the cores found on edge boards, by implementer and part.
fn arm_model(implementer: u32, part: u32) -> Option<&'static str> {
    Some(match (implementer, part) {
        (0x41, 0xb76) => "ARM1176",
        (0x41, 0xc07) => "Cortex-A7",
        (0x41, 0xc08) => "Cortex-A8",
        (0x41, 0xc09) => "Cortex-A9",
        (0x41, 0xc0f) => "Cortex-A15",
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd04) => "Cortex-A35",
        (0x41, 0xd05) => "Cortex-A55",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd09) => "Cortex-A73",
        (0x41, 0xd0a) => "Cortex-A75",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd0d) => "Cortex-A77",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd41) => "Cortex-A78",
        (0x41, 0xd42) => "Cortex-A78AE",
        (0x41, 0xd44) => "Cortex-X1",
        (0x41, 0xd46) => "Cortex-A510",
        (0x41, 0xd47) => "Cortex-A710",
        (0x41, 0xd48) => "Cortex-X2",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4b) => "Cortex-A78C",
        (0x41, 0xd4f) => "Neoverse-V2",
        (0x4e, 0x004) => "Carmel",
        (0xc0, 0xac3) => "Ampere-1",
        _ => return None,
    })
}

fn hex_field(block: &Block, key: &str) -> Option<u32> {
    let v = block.get(key)?;
    u32::from_str_radix(v.strip_prefix("0x").unwrap_or(v), 16).ok()
}

/// Reads the CPU facts into `attrs` (`cpu.*`).
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    binary_arch: &str,
    attrs: &mut BTreeMap<String, String>,
) -> Cpu {
    if !binary_arch.is_empty() {
        attrs.insert("cpu.arch".into(), go_arch(binary_arch));
    }
    let path = ctx.roots.proc("cpuinfo");
    let text = ctx
        .read_required(AREA, &path, crate::read::LARGE)
        .unwrap_or_default();
    let (procs, tail) = parse_cpuinfo(&text);
    if procs.is_empty() && !text.is_empty() {
        ctx.warn(AREA, format!("{}: no processor entries", path.display()));
    }
    let first = procs.first().cloned().unwrap_or_default();

    let implementer = hex_field(&first, "CPU implementer");
    let part = hex_field(&first, "CPU part");
    // ARM cores by implementer and part first, as lscpu names them (32-bit
    // kernels also print a generic "ARMv7 Processor rev 4 (v7l)").
    let model = implementer
        .zip(part)
        .and_then(|(i, p)| arm_model(i, p))
        .map(str::to_owned)
        .or_else(|| {
            ["model name", "cpu model", "Processor", "uarch"]
                .iter()
                .find_map(|k| first.get(*k).map(|s| clean(s)).filter(|s| !s.is_empty()))
        })
        .or_else(|| tail.get("Hardware").map(|s| clean(s)));
    match model {
        Some(m) => {
            attrs.insert("cpu.modelname".into(), m);
        }
        None if !procs.is_empty() => {
            ctx.warn(AREA, format!("{}: no CPU model name", path.display()))
        }
        None => {}
    }
    let vendor = first
        .get("vendor_id")
        .map(|s| clean(s))
        .or_else(|| implementer.and_then(arm_vendor).map(str::to_owned));
    if let Some(v) = vendor.filter(|v| !v.is_empty()) {
        attrs.insert("cpu.vendor".into(), v);
    }
    let flags = first
        .get("flags")
        .or_else(|| first.get("Features"))
        .or_else(|| first.get("isa"));
    if let Some(flags) = flags {
        let list: Vec<&str> = flags.split_whitespace().collect();
        if !list.is_empty() {
            attrs.insert("cpu.flags".into(), clean(&list.join(",")));
        }
    }

    // Online CPUs: the sysfs list, else the processor entries.
    let online_path = ctx.roots.sys("devices/system/cpu/online");
    let online = match ctx.read(AREA, &online_path) {
        Some(s) => match parse_cpu_list(&s) {
            Some(list) if !list.is_empty() => list,
            _ => {
                ctx.warn(
                    AREA,
                    format!(
                        "{}: {:?} is not a CPU list",
                        online_path.display(),
                        clean(&s)
                    ),
                );
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let online: Vec<u32> = if online.is_empty() {
        procs
            .iter()
            .filter_map(|b| b.get("processor").and_then(|p| p.parse().ok()))
            .collect()
    } else {
        online
    };
    let cores = u32::try_from(online.len()).unwrap_or(u32::MAX);
    if cores == 0 {
        ctx.warn(AREA, "no online CPUs found".to_owned());
        return Cpu::default();
    }
    attrs.insert("cpu.numcores".into(), cores.to_string());

    // Each CPU's maximum frequency from cpufreq, else what cpuinfo says.
    let mut per_cpu = Vec::with_capacity(online.len());
    for cpu in &online {
        let max = ctx.roots.sys(&format!(
            "devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq"
        ));
        let khz = ctx.attr(AREA, &max).and_then(|s| s.parse::<u64>().ok());
        let mhz = match khz {
            Some(k) => Some(k / 1000),
            None => procs
                .iter()
                .find(|b| b.get("processor").and_then(|p| p.parse::<u32>().ok()) == Some(*cpu))
                .or(procs.first())
                .and_then(|b| b.get("cpu MHz"))
                .and_then(|m| m.parse::<f64>().ok())
                .filter(|m| m.is_finite() && *m > 0.0 && *m < 1.0e6)
                .map(|m| m.round() as u64),
        };
        if let Some(m) = mhz.filter(|m| *m > 0) {
            per_cpu.push(m);
        }
    }
    if per_cpu.len() != online.len() {
        ctx.warn(
            AREA,
            "CPU frequency unknown (no cpufreq and no \"cpu MHz\" in cpuinfo)".to_owned(),
        );
        return Cpu {
            cores,
            total_mhz: 0,
        };
    }
    let max = per_cpu.iter().copied().max().unwrap_or(0);
    let total = u32::try_from(per_cpu.iter().sum::<u64>()).unwrap_or(u32::MAX);
    attrs.insert("cpu.frequency".into(), max.to_string());
    attrs.insert("cpu.totalcompute".into(), total.to_string());
    Cpu {
        cores,
        total_mhz: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3\n"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn arm_cpuinfo_with_trailer() {
        let text = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n\
                    CPU implementer\t: 0x41\nCPU part\t: 0xd08\n\nprocessor\t: 1\nCPU part\t: 0xd08\n\n\
                    Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        let (procs, tail) = parse_cpuinfo(text);
        assert_eq!(procs.len(), 2);
        assert_eq!(tail.get("Hardware").map(String::as_str), Some("BCM2835"));
        assert_eq!(arm_model(0x41, 0xd08), Some("Cortex-A72"));
    }

    #[test]
    fn armv7_kernel_names_the_core_like_lscpu() {
        let dir = std::env::temp_dir().join(format!("wren-fp-cpu-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        let block = |n: u32| {
            format!(
                "processor\t: {n}\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n\
                 Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\n\
                 CPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd03\nCPU revision\t: 4\n\n"
            )
        };
        let text = format!(
            "{}{}Hardware\t: BCM2835\nRevision\t: a02082\n",
            block(0),
            block(1)
        );
        std::fs::write(dir.join("proc/cpuinfo"), text).unwrap();
        let roots = crate::Roots::under(&dir);
        let mut ctx = Ctx::new(&roots);
        let mut attrs = BTreeMap::new();
        let cpu = fingerprint(&mut ctx, "arm", &mut attrs);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(attrs["cpu.arch"], "arm");
        assert_eq!(attrs["cpu.modelname"], "Cortex-A53");
        assert_eq!(attrs["cpu.vendor"], "ARM");
        assert_eq!(attrs["cpu.numcores"], "2");
        assert!(attrs["cpu.flags"].starts_with("half,thumb,"));
        // No cpufreq and no "cpu MHz": cores are known, compute is not.
        assert_eq!(
            cpu,
            Cpu {
                cores: 2,
                total_mhz: 0
            }
        );
        assert!(!attrs.contains_key("cpu.totalcompute"));
        assert_eq!(ctx.into_warnings().len(), 1);
    }

    #[test]
    fn go_arch_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("armv7l"), "arm");
        assert_eq!(go_arch("arm"), "arm");
        assert_eq!(go_arch("i686"), "386");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }
}
