//! The node: a client machine as the servers see it, with the facts the
//! fingerprinter found and the state the servers keep.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// A node's id (a UUID chosen by the client and kept in its data dir).
pub type NodeId = String;

string_enum! {
    /// Liveness as the servers see it.
    pub enum NodeStatus ("node status") {
        /// Registered, first heartbeat not yet seen.
        Initializing = 0, "initializing";
        /// Heartbeating and schedulable.
        Ready = 1, "ready";
        /// Missed its heartbeat TTL.
        Down = 2, "down";
        /// Missed its TTL while some of its allocations tolerate disconnects.
        Disconnected = 3, "disconnected";
    }
}

string_enum! {
    /// Whether new allocations may be placed on the node.
    pub enum Eligibility ("scheduling eligibility") {
        /// New work may be placed.
        Eligible = 0, "eligible";
        /// No new work (existing work stays unless draining).
        Ineligible = 1, "ineligible";
    }
}

/// A client machine.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Node {
    /// Stable id.
    #[n(0)]
    pub id: NodeId,
    /// What the client proves itself with: the SHA-256 fingerprint (hex) of
    /// the TLS certificate it registered with. Servers fill it in from the
    /// connection, never from the request body; requests about this node
    /// from a client must come over a connection with the same certificate.
    #[n(1)]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret_id: String,
    /// Human name, by default the hostname.
    #[n(2)]
    pub name: String,
    /// Its datacenter.
    #[n(3)]
    pub datacenter: String,
    /// Its node pool; default `default`.
    #[n(4)]
    pub node_pool: String,
    /// Operator-chosen class, for constraints and grouping.
    #[n(5)]
    pub node_class: String,
    /// Hash of everything feasibility depends on, so identical nodes are
    /// checked once (see [`Node::compute_class`]).
    #[n(6)]
    pub computed_class: String,
    /// Where the client listens for log and exec streams (`host:port`).
    #[n(7)]
    pub address: String,
    /// Fingerprinted facts: `cpu.arch`, `kernel.version`, `driver.qemu`, ...
    /// (without the `attr.` prefix constraints use).
    #[n(8)]
    pub attributes: BTreeMap<String, String>,
    /// Operator metadata from the client config (`${meta.*}`).
    #[n(9)]
    pub meta: BTreeMap<String, String>,
    /// Total capacity.
    #[n(10)]
    pub resources: NodeResources,
    /// Capacity held back for the OS and the agent.
    #[n(11)]
    pub reserved: NodeReserved,
    /// Task drivers by name.
    #[n(12)]
    pub drivers: BTreeMap<String, DriverInfo>,
    /// Liveness.
    #[n(13)]
    pub status: NodeStatus,
    /// Why the status changed.
    #[n(14)]
    pub status_description: String,
    /// Unix nanoseconds of the last status change.
    #[n(15)]
    pub status_updated_at: i64,
    /// Whether new work may be placed.
    #[n(16)]
    pub eligibility: Eligibility,
    /// Present while the node is draining.
    #[n(17)]
    pub drain: Option<DrainStrategy>,
    /// Raft index that created the node.
    #[n(18)]
    pub create_index: u64,
    /// Raft index of its last change.
    #[n(19)]
    pub modify_index: u64,
    /// The wren version the client runs.
    #[n(20)]
    pub agent_version: String,
}

impl Node {
    /// Whether new allocations may be placed here at all.
    pub fn is_schedulable(&self) -> bool {
        self.status == NodeStatus::Ready
            && self.eligibility == Eligibility::Eligible
            && self.drain.is_none()
    }

    /// A stable hash of the fields feasibility depends on, excluding
    /// `unique.*` attributes and meta keys, so nodes that differ only in
    /// identity share a class (Nomad's computed node class).
    pub fn compute_class(&self) -> String {
        let mut h = Fnv::default();
        h.field(&self.datacenter);
        h.field(&self.node_pool);
        h.field(&self.node_class);
        for (k, v) in &self.attributes {
            if !k.starts_with("unique.") {
                h.field(k);
                h.field(v);
            }
        }
        for (k, v) in &self.meta {
            if !k.starts_with("unique.") {
                h.field(k);
                h.field(v);
            }
        }
        for (name, d) in &self.drivers {
            h.field(name);
            h.field(if d.detected && d.healthy { "1" } else { "0" });
            for (k, v) in &d.attributes {
                h.field(k);
                h.field(v);
            }
        }
        for dev in &self.resources.devices {
            h.field(&dev.vendor);
            h.field(&dev.device_type);
            h.field(&dev.name);
            for (k, v) in &dev.attributes {
                h.field(k);
                h.field(v);
            }
        }
        format!("v1:{:016x}", h.0)
    }

    /// Capacity left for allocations after the reservation.
    pub fn allocatable(&self) -> Capacity {
        Capacity {
            cpu: self.resources.cpu.saturating_sub(self.reserved.cpu),
            cores: self
                .resources
                .cores
                .saturating_sub(self.reserved.cores.len() as u32),
            memory_mb: self
                .resources
                .memory_mb
                .saturating_sub(self.reserved.memory_mb),
            disk_mb: self.resources.disk_mb.saturating_sub(self.reserved.disk_mb),
        }
    }
}

/// Scalar capacity along the dimensions the scheduler packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// MHz.
    pub cpu: u32,
    /// Whole cores.
    pub cores: u32,
    /// Megabytes of memory.
    pub memory_mb: u64,
    /// Megabytes of disk.
    pub disk_mb: u64,
}

/// FNV-1a, 64 bit: tiny, stable across versions and platforms.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn field(&mut self, s: &str) {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A node's total capacity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NodeResources {
    /// Total compute in MHz (cores x frequency), `cpu.totalcompute`.
    #[n(0)]
    pub cpu: u32,
    /// Usable cores.
    #[n(1)]
    pub cores: u32,
    /// Memory in MB.
    #[n(2)]
    pub memory_mb: u64,
    /// Disk for allocation directories in MB.
    #[n(3)]
    pub disk_mb: u64,
    /// Devices: GPUs, serial ports, cameras, buses.
    #[n(4)]
    pub devices: Vec<NodeDeviceResource>,
    /// Host networks (interface, address).
    #[n(5)]
    pub networks: Vec<NodeNetwork>,
    /// Range dynamic ports are drawn from; default 20000-32000.
    #[n(6)]
    pub min_dynamic_port: u16,
    /// Upper end of the dynamic port range.
    #[n(7)]
    pub max_dynamic_port: u16,
}

/// A host network interface with an address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NodeNetwork {
    /// Interface name.
    #[n(0)]
    pub device: String,
    /// Its address.
    #[n(1)]
    pub ip: String,
    /// The named host network it belongs to (`default` unless configured).
    #[n(2)]
    pub host_network: String,
}

/// Capacity the scheduler never hands out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NodeReserved {
    /// MHz.
    #[n(0)]
    pub cpu: u32,
    /// Core ids kept for the system.
    #[n(1)]
    pub cores: Vec<u32>,
    /// Megabytes of memory.
    #[n(2)]
    pub memory_mb: u64,
    /// Megabytes of disk.
    #[n(3)]
    pub disk_mb: u64,
    /// Host ports never handed out, as `22,80,8000-8100`.
    #[n(4)]
    pub ports: String,
}

/// A group of identical devices, named `vendor/type/name`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NodeDeviceResource {
    /// `nvidia`, `amd`, `intel`, `usb`, `linux`, ...
    #[n(0)]
    pub vendor: String,
    /// `gpu`, `serial`, `camera`, `i2c`, `spi`, `gpio`, ...
    #[n(1)]
    pub device_type: String,
    /// Model name, e.g. `Tesla T4` or `FT232R`.
    #[n(2)]
    pub name: String,
    /// Attributes shared by the instances (`memory`, `driver_version`, ...).
    #[n(3)]
    pub attributes: BTreeMap<String, String>,
    /// The individual devices.
    #[n(4)]
    pub instances: Vec<NodeDevice>,
}

impl NodeDeviceResource {
    /// The full `vendor/type/name` id.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.vendor, self.device_type, self.name)
    }

    /// Whether a requested name (`type`, `vendor/type` or
    /// `vendor/type/name`) names this group.
    pub fn matches(&self, requested: &str) -> bool {
        let parts: Vec<&str> = requested.split('/').collect();
        match parts.as_slice() {
            [t] => *t == self.device_type,
            [v, t] => *v == self.vendor && *t == self.device_type,
            [v, t, n] => *v == self.vendor && *t == self.device_type && *n == self.name,
            _ => false,
        }
    }
}

/// One device instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct NodeDevice {
    /// Stable id on this node (a GPU UUID, a USB serial number, a bus path).
    #[n(0)]
    pub id: String,
    /// Whether it may be handed out.
    #[n(1)]
    pub healthy: bool,
    /// Why not, when unhealthy.
    #[n(2)]
    pub health_description: String,
    /// PCI bus id or USB path, where there is one.
    #[n(3)]
    pub locality: String,
    /// Device nodes a task is given access to (e.g. `/dev/ttyUSB0`).
    #[n(4)]
    pub paths: Vec<String>,
    /// Per-instance attributes (e.g. `serial`, `usb.vendor_id`).
    #[n(5)]
    pub attributes: BTreeMap<String, String>,
}

/// A task driver as fingerprinted on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DriverInfo {
    /// Present on this node.
    #[n(0)]
    pub detected: bool,
    /// Usable right now.
    #[n(1)]
    pub healthy: bool,
    /// Why not, or what it is degraded by.
    #[n(2)]
    pub health_description: String,
    /// Driver attributes (`driver.qemu.version` is `version` here).
    #[n(3)]
    pub attributes: BTreeMap<String, String>,
}

/// A drain in progress.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct DrainStrategy {
    /// How long allocations get to migrate; zero with `force` means now.
    #[n(0)]
    pub deadline: Duration,
    /// Leave system jobs' allocations running.
    #[n(1)]
    pub ignore_system_jobs: bool,
    /// Unix nanoseconds after which remaining allocations are stopped;
    /// 0 means no deadline.
    #[n(2)]
    pub force_deadline: i64,
    /// Unix nanoseconds when the drain started.
    #[n(3)]
    pub started_at: i64,
}
