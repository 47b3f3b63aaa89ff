//! On the machine running the tests, the fingerprint agrees with what
//! `/proc`, `/sys`, `lscpu`, `uname`, `ip`, `df`, `unshare` and QEMU say,
//! each read here independently of the crate's own parsers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use common::{TempDir, dump, skip_or_fail};
use wren_fingerprint::{Fingerprint, Fingerprinter};

/// Runs a program with the C locale; `None` when it is not installed or fails.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn lscpu() -> Option<BTreeMap<String, String>> {
    let text = run("lscpu", &[])?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

fn count_cpu_list(list: &str) -> u32 {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

fn host() -> (Fingerprint, TempDir) {
    let data = TempDir::new("host");
    let fp = Fingerprinter::host(data.path()).fingerprint();
    (fp, data)
}

#[test]
fn cpu_matches_lscpu_and_cpuinfo() {
    let (fp, _data) = host();
    let Some(lscpu) = lscpu() else {
        return skip_or_fail("lscpu is not installed");
    };
    let text = dump(&fp);
    let online = &lscpu["On-line CPU(s) list"];
    assert_eq!(
        fp.attr("cpu.numcores"),
        Some(count_cpu_list(online).to_string().as_str()),
        "{text}"
    );
    assert_eq!(fp.resources.cores, count_cpu_list(online));
    assert_eq!(
        fp.attr("kernel.arch"),
        lscpu.get("Architecture").map(String::as_str),
        "{text}"
    );
    assert_eq!(
        fp.attr("cpu.modelname"),
        lscpu.get("Model name").map(String::as_str),
        "{text}"
    );
    assert_eq!(
        fp.attr("cpu.vendor"),
        lscpu.get("Vendor ID").map(String::as_str),
        "{text}"
    );
    let ours: BTreeSet<&str> = fp.attr("cpu.flags").unwrap_or("").split(',').collect();
    let theirs: BTreeSet<&str> = lscpu
        .get("Flags")
        .map_or("", String::as_str)
        .split_whitespace()
        .collect();
    assert_eq!(ours, theirs);

    // Frequency: lscpu's maximum when cpufreq exists, else cpuinfo's current MHz.
    let mhz: u64 = fp.attr("cpu.frequency").unwrap().parse().unwrap();
    match lscpu.get("CPU max MHz") {
        Some(max) => assert_eq!(mhz, max.parse::<f64>().unwrap() as u64, "{text}"),
        None => {
            let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap();
            let max = cpuinfo
                .lines()
                .filter(|l| l.starts_with("cpu MHz"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
                .fold(0.0f64, f64::max);
            assert!((mhz as f64 - max).abs() <= 1.0, "{mhz} vs cpuinfo {max}");
        }
    }
    let total: u32 = fp.attr("cpu.totalcompute").unwrap().parse().unwrap();
    assert_eq!(total, fp.resources.cpu);
    assert!(total >= mhz as u32 && total <= mhz as u32 * fp.resources.cores);
}

#[test]
fn kernel_os_and_memory_match_uname_and_proc() {
    let (fp, _data) = host();
    let text = dump(&fp);
    let Some(release) = run("uname", &["-r"]) else {
        return skip_or_fail("uname is not installed");
    };
    assert_eq!(fp.attr("kernel.release"), Some(release.trim()), "{text}");
    let short = release.trim().split(['-', '+']).next().unwrap();
    assert_eq!(fp.attr("kernel.version"), Some(short));
    let machine = run("uname", &["-m"]).unwrap();
    assert_eq!(fp.attr("kernel.arch"), Some(machine.trim()));
    let sysname = run("uname", &["-s"]).unwrap().trim().to_lowercase();
    assert_eq!(fp.attr("kernel.name"), Some(sysname.as_str()));
    let nodename = run("uname", &["-n"]).unwrap();
    assert_eq!(fp.attr("unique.hostname"), Some(nodename.trim()));
    let go_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    assert_eq!(fp.attr("cpu.arch"), Some(go_arch));

    let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        fp.attr("memory.totalbytes"),
        Some((kb * 1024).to_string().as_str())
    );
    assert_eq!(fp.resources.memory_mb, kb / 1024);

    let os_release = fs::read_to_string("/etc/os-release").unwrap();
    let id = os_release
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches('"'));
    assert_eq!(fp.attr("os.name"), id);

    // Whatever else a machine lacks, these areas must read cleanly on Linux.
    let core: Vec<_> = fp
        .warnings
        .iter()
        .filter(|w| {
            matches!(
                w.area.as_str(),
                "cpu" | "os" | "memory" | "cgroup" | "mounts"
            )
        })
        .collect();
    assert!(core.is_empty(), "{core:?}");
}

#[test]
fn cgroups_match_the_hierarchy_on_disk() {
    let (fp, _data) = host();
    let cg = Path::new("/sys/fs/cgroup");
    let expected = if cg.join("cgroup.controllers").exists() {
        "v2"
    } else if cg.join("unified/cgroup.controllers").exists() {
        "hybrid"
    } else if cg.join("cpu").exists() || cg.join("cpu,cpuacct").exists() {
        "v1"
    } else {
        return skip_or_fail("no cgroup file system under /sys/fs/cgroup");
    };
    assert_eq!(fp.attr("cgroup.version"), Some(expected), "{}", dump(&fp));
    let memory = if cg.join("memory/memory.limit_in_bytes").exists() {
        "v1"
    } else if fs::read_to_string(cg.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
    {
        "v2"
    } else {
        "off"
    };
    assert_eq!(fp.attr("cgroup.controller.memory"), Some(memory));
}

#[test]
fn network_and_storage_match_ip_and_df() {
    let (fp, data) = host();
    let text = dump(&fp);
    match run("ip", &["-4", "route", "show", "default"]) {
        Some(route) if route.contains(" dev ") => {
            let dev = route
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap();
            let addrs = run("ip", &["-4", "-o", "addr", "show", "dev", dev]).unwrap();
            let first = addrs
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .unwrap();
            assert_eq!(fp.attr("unique.network.ip-address"), Some(first), "{text}");
            assert!(
                fp.resources
                    .networks
                    .iter()
                    .any(|n| n.device == dev && n.ip == first)
            );
        }
        Some(_) => eprintln!("no IPv4 default route; address not compared"),
        None => skip_or_fail("ip (iproute2) is not installed"),
    }
    let dir = data.path().to_str().unwrap();
    match run("df", &["-B1", "--output=size", dir]) {
        Some(out) => {
            let size = out.lines().nth(1).unwrap().trim();
            assert_eq!(fp.attr("unique.storage.bytestotal"), Some(size), "{text}");
        }
        None => skip_or_fail("df is not installed"),
    }
}

#[test]
fn isolation_matches_unshare_kvm_and_qemu() {
    let (fp, _data) = host();
    let text = dump(&fp);
    match Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "true"])
        .status()
    {
        Ok(status) => {
            let can = if status.success() { "true" } else { "false" };
            assert_eq!(fp.attr("namespaces.pid"), Some(can), "{text}");
            assert_eq!(fp.attr("namespaces.mount"), Some(can), "{text}");
        }
        Err(_) => skip_or_fail("unshare (util-linux) is not installed"),
    }
    let kvm = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !kvm {
        assert_eq!(fp.attr("kvm.usable"), Some("false"));
    }
    let arch = std::env::consts::ARCH;
    let emulator = format!("qemu-system-{arch}");
    match run(&emulator, &["--version"]) {
        Some(out) => {
            let version = out
                .split("QEMU emulator version ")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .unwrap();
            assert_eq!(fp.attr("driver.qemu.version"), Some(version), "{text}");
            assert!(fp.drivers["qemu"].healthy);
        }
        None => eprintln!("{emulator} is not installed; qemu not compared"),
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        // CI runs as root with cgroups and namespaces (DESIGN.md).
        assert!(
            fp.drivers["exec"].healthy,
            "{}",
            fp.drivers["exec"].health_description
        );
    }
}

#[test]
fn devices_match_sysfs() {
    let (fp, _data) = host();
    // GPUs: PCI display functions from the three vendors.
    let mut gpus = 0;
    for e in fs::read_dir("/sys/bus/pci/devices")
        .into_iter()
        .flatten()
        .flatten()
    {
        let class = fs::read_to_string(e.path().join("class")).unwrap_or_default();
        let vendor = fs::read_to_string(e.path().join("vendor")).unwrap_or_default();
        if class.starts_with("0x03") && ["0x10de", "0x1002", "0x8086"].contains(&vendor.trim()) {
            gpus += 1;
        }
    }
    let ours = fp
        .resources
        .devices
        .iter()
        .filter(|d| d.device_type == "gpu" && !d.attributes.contains_key("soc"))
        .map(|d| d.instances.len())
        .sum::<usize>();
    assert_eq!(ours, gpus);

    // Serial ports: ttys with a device and a real UART (or no type at all).
    let mut ttys = BTreeSet::new();
    for e in fs::read_dir("/sys/class/tty")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let real_uart = fs::read_to_string(p.join("type")).map_or(true, |t| t.trim() != "0");
        let virtual_terminal = name
            .strip_prefix("tty")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if p.join("device").exists() && real_uart && !virtual_terminal {
            ttys.insert(name);
        }
    }
    let ours: BTreeSet<String> = fp
        .resources
        .devices
        .iter()
        .filter(|d| d.device_type == "serial")
        .flat_map(|d| d.instances.iter().map(|i| i.attributes["tty"].clone()))
        .collect();
    assert_eq!(ours, ttys);
}

#[test]
fn refingerprinting_gives_the_same_answer() {
    let data = TempDir::new("again");
    let mut fingerprinter = Fingerprinter::host(data.path());
    let strip = |mut fp: Fingerprint| {
        fp.attributes.remove("unique.storage.bytesfree");
        fp.resources.disk_mb = 0;
        fp
    };
    let (first, second) = (fingerprinter.fingerprint(), fingerprinter.fingerprint());
    assert!(!second.changed_since(&first));
    assert_eq!(strip(first), strip(second));
}
