//! The task: one process (or VM) run by a driver.

use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::constraint::{Affinity, Constraint};
use crate::duration::Duration;
use crate::group::RestartPolicy;
use crate::value::Value;

/// A unit of work inside a group.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Task {
    /// Unique within the group.
    #[n(0)]
    pub name: String,
    /// `exec`, `raw_exec` or `qemu`.
    #[n(1)]
    pub driver: String,
    /// The user to run as; empty means the driver's choice (exec: a
    /// dynamic unprivileged uid).
    #[n(2)]
    pub user: String,
    /// The driver's own options, kept as written.
    #[n(3)]
    pub config: Value,
    /// Environment variables set for the task.
    #[n(4)]
    pub env: BTreeMap<String, String>,
    /// Hard requirements.
    #[n(5)]
    pub constraints: Vec<Constraint>,
    /// Soft preferences.
    #[n(6)]
    pub affinities: Vec<Affinity>,
    /// What the task needs from its node.
    #[n(7)]
    pub resources: Resources,
    /// Free-form metadata.
    #[n(8)]
    pub meta: BTreeMap<String, String>,
    /// How long between the kill signal and SIGKILL. Default 5s.
    #[n(9)]
    pub kill_timeout: Duration,
    /// The signal that asks the task to stop. Default `SIGINT`, as in Nomad.
    #[n(10)]
    pub kill_signal: String,
    /// Rotation of stdout and stderr.
    #[n(11)]
    pub logs: LogConfig,
    /// When the task runs relative to the main tasks.
    #[n(12)]
    pub lifecycle: Option<Lifecycle>,
    /// Overrides the group's restart policy.
    #[n(13)]
    pub restart: Option<RestartPolicy>,
    /// When the leader task exits, the other tasks are stopped.
    #[n(14)]
    pub leader: bool,
    /// Delay between deregistration and the kill signal.
    #[n(15)]
    pub shutdown_delay: Duration,
}

impl Task {
    /// Whether this is a main task (no lifecycle hook).
    pub fn is_main(&self) -> bool {
        self.lifecycle.is_none()
    }
}

/// What a task asks of its node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Resources {
    /// CPU shares in MHz. Default 100. Exclusive with `cores`.
    #[n(0)]
    pub cpu: u32,
    /// Whole cores reserved for the task; also a hard CPU quota.
    #[n(1)]
    pub cores: u32,
    /// Memory in MB the scheduler reserves and the task is limited to.
    /// Default 300.
    #[n(2)]
    pub memory_mb: u64,
    /// A higher hard limit the task may burst to; 0 means `memory_mb`.
    #[n(3)]
    pub memory_max_mb: u64,
    /// Devices requested by name.
    #[n(4)]
    pub devices: Vec<RequestedDevice>,
}

/// A request for `count` instances of a device, named `type`,
/// `vendor/type` or `vendor/type/name` (e.g. `nvidia/gpu`, `usb/serial`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct RequestedDevice {
    /// The device name pattern.
    #[n(0)]
    pub name: String,
    /// Instances wanted. Default 1.
    #[n(1)]
    pub count: u32,
    /// Requirements on the device's attributes (`${device.attr.memory}`).
    #[n(2)]
    pub constraints: Vec<Constraint>,
    /// Preferences among devices.
    #[n(3)]
    pub affinities: Vec<Affinity>,
}

impl RequestedDevice {
    /// Splits the name into `(vendor, type, name)`; a one-part name is the
    /// type, two parts are vendor and type.
    pub fn id_parts(&self) -> (Option<&str>, &str, Option<&str>) {
        let parts: Vec<&str> = self.name.split('/').collect();
        match parts.as_slice() {
            [t] => (None, t, None),
            [v, t] => (Some(v), t, None),
            [v, t, n] => (Some(v), t, Some(n)),
            _ => (None, self.name.as_str(), None),
        }
    }
}

string_enum! {
    /// Lifecycle hook points.
    pub enum LifecycleHook ("lifecycle hook") {
        /// Before the main tasks.
        Prestart = 0, "prestart";
        /// After the main tasks have started.
        Poststart = 1, "poststart";
        /// After the main tasks have finished.
        Poststop = 2, "poststop";
    }
}

/// Makes a task run around the main tasks instead of with them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct Lifecycle {
    /// When it runs.
    #[n(0)]
    pub hook: LifecycleHook,
    /// Keep it running alongside the main tasks (prestart and poststart).
    #[n(1)]
    pub sidecar: bool,
}

/// Rotation of the task's stdout and stderr files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
#[cfg_attr(test, derive(arbitrary::Arbitrary))]
#[cbor(map)]
#[serde(default)]
pub struct LogConfig {
    /// Files kept per stream. Default 10.
    #[n(0)]
    pub max_files: u32,
    /// Megabytes per file before rotating. Default 10.
    #[n(1)]
    pub max_file_size_mb: u32,
    /// Discard output instead of keeping it.
    #[n(2)]
    pub disabled: bool,
}
