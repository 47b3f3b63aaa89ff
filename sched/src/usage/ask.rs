//! What a task group asks of one node, prepared once per group: cpu,
//! memory, disk, exclusive cores, device instances (with their device
//! constraints and affinities) and ports.

use wren_model::{NodeDeviceResource, TaskGroup};

use crate::constraint::Check;

/// A request for device instances, prepared once per group.
#[derive(Debug)]
pub(crate) struct DeviceAsk {
    pub(crate) name: String,
    pub(crate) count: u32,
    pub(crate) constraints: Vec<Check>,
    pub(crate) affinities: Vec<Check>,
}

impl DeviceAsk {
    /// Whether a device group is the kind asked for and passes the
    /// constraints (not whether instances are free).
    pub(crate) fn accepts(&self, dev: &NodeDeviceResource) -> bool {
        dev.matches(&self.name) && self.constraints.iter().all(|c| c.device_matches(dev))
    }

    pub(crate) fn affinity(&self, dev: &NodeDeviceResource) -> f64 {
        let total: f64 = self
            .affinities
            .iter()
            .map(|a| f64::from(a.weight).abs())
            .sum();
        if total == 0.0 {
            return 0.0;
        }
        let got: f64 = self
            .affinities
            .iter()
            .filter(|a| a.device_matches(dev))
            .map(|a| f64::from(a.weight))
            .sum();
        got / total
    }
}

/// One task's needs.
#[derive(Debug)]
pub(crate) struct TaskAsk {
    pub(crate) name: String,
    pub(crate) cpu: u64,
    pub(crate) cores: u32,
    pub(crate) memory_mb: u64,
    pub(crate) memory_max_mb: u64,
    pub(crate) devices: Vec<DeviceAsk>,
}

/// A port the group wants: fixed (`value` set) or dynamic.
#[derive(Debug)]
pub(crate) struct PortAsk {
    pub(crate) label: String,
    pub(crate) value: Option<u16>,
    pub(crate) to: u16,
    pub(crate) host_network: String,
}

/// Everything a group asks of one node.
#[derive(Debug)]
pub(crate) struct Ask {
    pub(crate) tasks: Vec<TaskAsk>,
    pub(crate) disk_mb: u64,
    pub(crate) ports: Vec<PortAsk>,
    /// Sum of cpu over tasks without exclusive cores.
    pub(crate) shared_cpu: u64,
    pub(crate) cores: u32,
    pub(crate) memory_mb: u64,
    /// Only cpu, memory and disk: no cores, devices or ports to pick.
    pub(crate) simple: bool,
}

impl Ask {
    /// Prepares a group's ask.
    pub(crate) fn new(tg: &TaskGroup) -> Ask {
        let tasks: Vec<TaskAsk> = tg
            .tasks
            .iter()
            .map(|t| TaskAsk {
                name: t.name.clone(),
                cpu: u64::from(t.resources.cpu),
                cores: t.resources.cores,
                memory_mb: t.resources.memory_mb,
                memory_max_mb: t.resources.memory_max_mb,
                devices: t
                    .resources
                    .devices
                    .iter()
                    .map(|d| DeviceAsk {
                        name: d.name.clone(),
                        count: d.count.max(1),
                        constraints: d.constraints.iter().map(Check::constraint).collect(),
                        affinities: d.affinities.iter().map(Check::affinity).collect(),
                    })
                    .collect(),
            })
            .collect();
        let mut ports = Vec::new();
        for net in &tg.networks {
            for p in &net.reserved_ports {
                ports.push(PortAsk {
                    label: p.label.clone(),
                    value: Some(p.value),
                    to: p.to,
                    host_network: p.host_network.clone(),
                });
            }
            for p in &net.dynamic_ports {
                ports.push(PortAsk {
                    label: p.label.clone(),
                    value: None,
                    to: p.to,
                    host_network: p.host_network.clone(),
                });
            }
        }
        Ask {
            simple: ports.is_empty() && tasks.iter().all(|t| t.cores == 0 && t.devices.is_empty()),
            shared_cpu: tasks.iter().filter(|t| t.cores == 0).map(|t| t.cpu).sum(),
            cores: tasks.iter().map(|t| t.cores).sum(),
            memory_mb: tasks.iter().map(|t| t.memory_mb).sum(),
            disk_mb: tg.ephemeral_disk.size_mb,
            tasks,
            ports,
        }
    }

    /// Every device ask, flattened, in task order (the index used by
    /// [`super::Exhausted::Device`]).
    pub(crate) fn device_asks(&self) -> impl Iterator<Item = &DeviceAsk> {
        self.tasks.iter().flat_map(|t| t.devices.iter())
    }
}
