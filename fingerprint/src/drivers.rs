//! The task drivers this node can run, in Nomad's shape: a
//! [`DriverInfo`] per driver and `driver.<name>` = `1` attributes for the
//! detected ones, with the driver's own attributes as
//! `driver.<name>.<key>`.
//!
//! * `exec` is detected on Linux; it is healthy when we run as root, a
//!   cgroup hierarchy is mounted and PID and mount namespaces can be
//!   created. What it would run without (a memory controller switched
//!   off, no Landlock, no IPC namespace) is named in its health
//!   description, never silently dropped.
//! * `raw_exec` is detected on Linux and always healthy; whether it is
//!   *enabled* is agent configuration, not a machine fact.
//! * `qemu` is detected when a `qemu-system-*` is on `PATH`; its version
//!   is that of the emulator for the kernel's architecture (else the
//!   first one), its attributes list the emulators and the accelerators
//!   (`kvm` when `/dev/kvm` is usable, always `tcg`).

use std::collections::BTreeMap;

use wren_model::DriverInfo;

use crate::cgroup::{Cgroups, Place, Version};
use crate::isolation::Isolation;
use crate::probe::{Emulator, Namespace, Probes};
use crate::read::Ctx;

/// `qemu-system-<suffix>` for a `uname -m` architecture.
fn qemu_suffix(kernel_arch: &str) -> &str {
    match kernel_arch {
        "x86_64" => "x86_64",
        "aarch64" | "arm64" => "aarch64",
        a if a.starts_with("armv") || a == "arm" => "arm",
        "i386" | "i486" | "i586" | "i686" => "i386",
        other => other,
    }
}

fn exec(cgroups: &Cgroups, iso: &Isolation, root: bool) -> DriverInfo {
    let mut blockers = Vec::new();
    if !root {
        blockers.push("the exec driver must run as root".to_owned());
    }
    if cgroups.version == Version::None {
        blockers.push("no cgroup hierarchy is mounted".to_owned());
    }
    for kind in [Namespace::Pid, Namespace::Mount] {
        if let Some(Err(e)) = iso.namespaces.get(&kind) {
            blockers.push(format!("cannot create {kind} namespaces: {e}"));
        }
    }
    let mut degraded = Vec::new();
    if cgroups.version != Version::None {
        if let Some(reason) = &cgroups.memory_off {
            degraded.push(format!("{reason}: memory limits are not enforced"));
        }
        for c in ["cpu", "pids", "devices"] {
            if cgroups.place(c) == Place::Off {
                degraded.push(format!("{c} cgroup controller is off"));
            }
        }
    }
    if let Err(e) = &iso.landlock {
        degraded.push(format!(
            "no Landlock ({e}): tasks get no file system sandbox"
        ));
    }
    if let Some(Err(e)) = iso.namespaces.get(&Namespace::Ipc) {
        degraded.push(format!("cannot create ipc namespaces: {e}"));
    }
    let healthy = blockers.is_empty();
    let mut description = blockers;
    description.extend(degraded);
    DriverInfo {
        detected: true,
        healthy,
        health_description: if healthy && description.is_empty() {
            "healthy".into()
        } else {
            description.join("; ")
        },
        attributes: BTreeMap::new(),
    }
}

fn qemu(
    ctx: &mut Ctx<'_>,
    probes: &mut dyn Probes,
    kernel_arch: &str,
    kvm: bool,
) -> Option<DriverInfo> {
    let emulators = probes.qemu_emulators();
    let wanted = format!("qemu-system-{}", qemu_suffix(kernel_arch));
    let chosen: &Emulator = emulators
        .iter()
        .find(|e| e.name == wanted)
        .or_else(|| emulators.first())?;
    let mut attributes = BTreeMap::new();
    let names: Vec<&str> = emulators
        .iter()
        .map(|e| e.name.strip_prefix("qemu-system-").unwrap_or(&e.name))
        .collect();
    attributes.insert("emulators".to_owned(), names.join(","));
    attributes.insert(
        "accelerators".to_owned(),
        if kvm { "kvm,tcg" } else { "tcg" }.to_owned(),
    );
    let (healthy, health_description) = match probes.qemu_version(chosen) {
        Ok(v) => {
            attributes.insert("version".to_owned(), v);
            (true, "healthy".to_owned())
        }
        Err(e) => {
            ctx.warn("qemu", e.to_string());
            (false, e.to_string())
        }
    };
    Some(DriverInfo {
        detected: true,
        healthy,
        health_description,
        attributes,
    })
}

/// Builds the drivers and adds their `driver.*` attributes.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    probes: &mut dyn Probes,
    cgroups: &Cgroups,
    iso: &Isolation,
    attrs: &mut BTreeMap<String, String>,
) -> BTreeMap<String, DriverInfo> {
    let mut drivers = BTreeMap::new();
    let linux = attrs.get("kernel.name").is_some_and(|k| k == "linux");
    if linux {
        drivers.insert("exec".to_owned(), exec(cgroups, iso, probes.is_root()));
        drivers.insert(
            "raw_exec".to_owned(),
            DriverInfo {
                detected: true,
                healthy: true,
                health_description: "healthy".into(),
                attributes: BTreeMap::new(),
            },
        );
    }
    let kernel_arch = attrs.get("kernel.arch").cloned().unwrap_or_default();
    if let Some(q) = qemu(ctx, probes, &kernel_arch, iso.kvm.is_ok()) {
        drivers.insert("qemu".to_owned(), q);
    }
    for (name, info) in &drivers {
        if info.detected {
            attrs.insert(format!("driver.{name}"), "1".into());
            for (k, v) in &info.attributes {
                attrs.insert(format!("driver.{name}.{k}"), v.clone());
            }
        }
    }
    drivers
}
