//! wren-fingerprint: what a node is, as facts the scheduler can place
//! against.
//!
//! A [`Fingerprinter`] reads procfs, sysfs, `/dev` and `/etc` under
//! injectable [`Roots`] and asks a few syscall-level [`Probes`], and
//! returns a [`Fingerprint`]: node attributes (Nomad's names, without the
//! `attr.` prefix constraints use), capacity and devices as
//! [`NodeResources`], task drivers as [`DriverInfo`], and [`Warning`]s for
//! whatever could not be established. A missing, junk or unreadable file
//! costs the facts that depended on it and a warning, never a panic and
//! never the rest of the fingerprint. Keep the [`Fingerprinter`] and call
//! it again to notice hot-plugged devices; it caches only what cannot
//! change meanwhile.
//!
//! Deliberately not here: agent configuration (reserved resources, which
//! drivers are *enabled*, host network names, the dynamic port range
//! beyond Nomad's default), talking to servers, and scheduling policy.
//! sysinfo is used only where it reads the running machine better than
//! files under a root would (the interfaces' addresses); everything a
//! fixture must control is read under the roots, so fixture runs never
//! depend on the build machine. NVIDIA's NVML is not linked: a discrete
//! NVIDIA GPU's memory size is therefore not reported.
//!
//! # Attributes
//!
//! | attribute | meaning |
//! | --- | --- |
//! | `cpu.arch` | this binary's architecture in Go's spelling, as Nomad: `amd64`, `arm64`, `arm`, `386`, `riscv64` |
//! | `cpu.modelname`, `cpu.vendor` | from cpuinfo; ARM cores by implementer and part (`Cortex-A72`, `ARM`) |
//! | `cpu.numcores` | online logical CPUs |
//! | `cpu.frequency` | highest CPU maximum frequency, MHz (cpufreq, else cpuinfo's `cpu MHz`) |
//! | `cpu.totalcompute` | sum over online CPUs of their frequency, MHz (= cores x frequency unless big.LITTLE) |
//! | `cpu.flags` | comma-separated x86 `flags`, ARM `Features` (hwcaps) or RISC-V `isa`, for `set_contains` |
//! | `memory.totalbytes` | `MemTotal` |
//! | `kernel.name` | `linux` |
//! | `kernel.version` | release up to the first `-` or `+` (`6.1.0`), as Nomad |
//! | `kernel.release` | the full release (`6.1.0-28-amd64`) |
//! | `kernel.arch` | `uname -m` (`x86_64`, `aarch64`) |
//! | `os.name`, `os.version`, `os.pretty_name` | os-release `ID`, `VERSION_ID` (Debian's point release from `debian_version`, as Nomad), `PRETTY_NAME` |
//! | `unique.hostname` | the hostname |
//! | `unique.network.ip-address` | first address of the default route's interface |
//! | `unique.storage.volume`, `.bytestotal`, `.bytesfree` | the data dir's file system |
//! | `board.model`, `board.vendor` | device tree `model` and the vendor prefix of its first `compatible`; DMI `product_name` and `sys_vendor` |
//! | `board.compatible`, `board.soc` | first and last device tree `compatible` (`raspberrypi,4-model-b`, `brcm,bcm2711`) |
//! | `unique.board.serial` | device tree `serial-number` or DMI `product_serial` |
//!
//! Isolation facts, read by the exec driver and the scheduler:
//!
//! | attribute | values |
//! | --- | --- |
//! | `cgroup.version` | `v1`, `v2`, `hybrid` (v1 controllers plus a unified hierarchy) or `none` |
//! | `cgroup.mountpoint` | the v2 mount, or the directory holding the v1 hierarchies |
//! | `cgroup.controllers` | comma-separated controllers that can be used |
//! | `cgroup.controller.<name>` | `v1`, `v2` or `off`; always present for `cpu`, `cpuset`, `devices`, `memory`, `pids`; `cgroup.controller.memory` = `off` is the "memory controller is off" fact |
//! | `unique.cgroup.version`, `unique.cgroup.mountpoint` | Nomad's spellings (`v1` for hybrid) |
//! | `landlock.abi` | Landlock ABI version, `0` when unavailable |
//! | `namespaces.pid`, `namespaces.mount`, `namespaces.ipc` | `true` when a process can be created in a new one |
//! | `kvm.usable` | `true` when `/dev/kvm` opens and reports API version 12 |
//! | `driver.exec`, `driver.raw_exec`, `driver.qemu` | `1` when detected (health is in [`Fingerprint::drivers`]) |
//! | `driver.qemu.version`, `.emulators`, `.accelerators` | e.g. `10.0.2`; `aarch64,x86_64`; `kvm,tcg` |
//!
//! # Devices
//!
//! Device groups are named `vendor/type/name`; a job may ask by type
//! (`device "serial"`), by vendor and type (`device "usb/serial"`) or by
//! the full name. Interchangeable hardware is grouped by model; a bus or
//! chip is its own group, named as the kernel names it:
//!
//! | group | instances, paths |
//! | --- | --- |
//! | `nvidia/gpu/<model>` | discrete NVIDIA GPU (`Tesla T4`); id = GPU UUID; `/dev/nvidiaN`, `/dev/nvidiactl`, `/dev/nvidia-uvm*`, `/dev/nvidia-modeset` |
//! | `nvidia/gpu/<codename>` | Jetson integrated GPU (`ga10b`); `/dev/nvmap`, `/dev/nvhost-*`, `/dev/nvgpu/igpu0/*` |
//! | `amd/gpu/<product or 0xdevice>`, `intel/gpu/<...>` | PCI GPU; id = PCI bus id; `/dev/dri/cardN`, `/dev/dri/renderDN` (`/dev/kfd` for AMD) |
//! | `usb/serial/<product>` | USB serial adapter (`FT232R USB UART`); id = USB serial number; `/dev/ttyUSB0` |
//! | `linux/serial/<tty>` | a board's own UART (`ttyS0`); the kernel console is unhealthy |
//! | `usb/camera/<name>`, `linux/camera/<name>` | video4linux camera; all its `/dev/videoN` nodes |
//! | `linux/i2c/i2c-N`, `linux/spi/spidevB.C`, `linux/gpio/gpiochipN` | buses and GPIO chips; `/dev/i2c-N`, ... |
//!
//! Attributes shared by a group (`usb.vendor_id`, `usb.product_id`,
//! `manufacturer`, `product`, `driver`, `driver_version`, `memory` in MiB,
//! `architecture`, `compute_capability`, `label`, `lines`, `adapter`, ...)
//! are on the group; per-device ones (`serial`, `usb.port`, `by_id`, `tty`,
//! `pci.bus_id`, `uuid`) on the instance. An instance whose `/dev` node is
//! missing is reported unhealthy.
//!
//! # Fixtures
//!
//! `testdata/` holds trees of real machines cut down to the files read
//! here, each with a `probes.json` (see [`probe::ProbeAnswers`]);
//! `wren node fingerprint --root DIR` reads one.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod board;
mod cgroup;
mod cpu;
mod devices;
mod drivers;
mod fingerprinter;
mod isolation;
mod mounts;
mod network;
mod os;
pub mod probe;
mod read;
mod roots;
mod storage;
mod sys;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use wren_model::{DriverInfo, NodeDeviceResource, NodeResources};

pub use fingerprinter::Fingerprinter;
pub use probe::{FixtureProbes, HostProbes, Probes};
pub use read::ReadError;
pub use roots::Roots;

/// What a node is: the result of one [`Fingerprinter::fingerprint`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Node attributes without the `attr.` prefix (`cpu.arch`,
    /// `kernel.version`, `driver.qemu`, ...). See the crate docs.
    pub attributes: BTreeMap<String, String>,
    /// Capacity, devices and host networks.
    pub resources: NodeResources,
    /// Task drivers by name.
    pub drivers: BTreeMap<String, DriverInfo>,
    /// What could not be established, and why.
    pub warnings: Vec<Warning>,
}

impl Fingerprint {
    /// The device group with this `vendor/type/name`.
    pub fn device(&self, id: &str) -> Option<&NodeDeviceResource> {
        self.resources.devices.iter().find(|d| d.id() == id)
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Whether the node changed in a way the servers should hear about:
    /// anything but the free space on the data dir's file system
    /// ([`Fingerprint::VOLATILE`] and `resources.disk_mb`), which moves
    /// with every write, and the warnings.
    pub fn changed_since(&self, earlier: &Fingerprint) -> bool {
        let stable = |fp: &Fingerprint| {
            let mut attributes = fp.attributes.clone();
            for k in Fingerprint::VOLATILE {
                attributes.remove(*k);
            }
            let mut resources = fp.resources.clone();
            resources.disk_mb = 0;
            (attributes, resources, fp.drivers.clone())
        };
        stable(self) != stable(earlier)
    }

    /// Attributes that change without the node changing.
    pub const VOLATILE: &'static [&'static str] = &["unique.storage.bytesfree"];
}

/// A fact that could not be established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// What part of the fingerprint it concerns (`cpu`, `cgroup`, `gpu`,
    /// `serial`, ...).
    pub area: String,
    /// What went wrong, with the path or probe involved.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.area, self.message)
    }
}
