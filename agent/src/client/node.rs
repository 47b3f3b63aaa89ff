//! The node this client registers: the fingerprint (re-read every
//! `client.fingerprint_interval`, so a hot-plugged sensor shows up), the
//! drivers as this client runs them (raw_exec only when enabled), the
//! reserved resources and meta from the config, and the id kept in the
//! local database. Also the hand-off of devices: an allocation's device
//! instance ids become the node's device paths.

use wren_fingerprint::Fingerprint;
use wren_model::{AllocatedDevice, Node, NodeReserved, NodeStatus, Value};
use wren_runtimes::Drivers;
use wren_runtimes::qemu::QemuOptions;

use crate::config::AgentConfig;

/// How this client's drivers are configured (`plugin "<name>" { config
/// { ... } }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    /// `plugin "raw_exec" { config { enabled = true } }`.
    pub raw_exec_enabled: bool,
    /// `plugin "qemu" { config { image_paths, args_allowlist } }`.
    pub qemu: QemuOptions,
    /// `plugin "qemu" { config { emulators = [...] } }`: the emulators
    /// tasks may ask for (empty: any).
    pub qemu_emulators: Vec<String>,
}

fn strings(driver: &str, key: &str, v: &Value) -> Result<Vec<String>, String> {
    let items = v
        .as_list()
        .ok_or_else(|| format!("plugin {driver:?}: {key} must be a list of strings"))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("plugin {driver:?}: {key} must be a list of strings"))
        })
        .collect()
}

impl PluginConfig {
    /// Reads the agent config's plugin blocks; unknown drivers and keys are
    /// errors, so a typo does not silently leave a driver off.
    pub fn from_config(config: &AgentConfig) -> Result<PluginConfig, String> {
        let mut out = PluginConfig::default();
        for (name, value) in &config.plugins {
            let map = value
                .as_map()
                .ok_or_else(|| format!("plugin {name:?}: config must be a block"))?;
            match name.as_str() {
                "raw_exec" => {
                    for (k, v) in map {
                        match k.as_str() {
                            "enabled" => {
                                out.raw_exec_enabled = v.as_bool().ok_or_else(|| {
                                    "plugin \"raw_exec\": enabled must be true or false".to_owned()
                                })?;
                            }
                            other => {
                                return Err(format!(
                                    "plugin \"raw_exec\": unknown option {other:?} (known: enabled)"
                                ));
                            }
                        }
                    }
                }
                "qemu" => {
                    for (k, v) in map {
                        match k.as_str() {
                            "image_paths" => {
                                out.qemu.image_paths =
                                    strings("qemu", k, v)?.into_iter().map(Into::into).collect();
                            }
                            "args_allowlist" => out.qemu.args_allowlist = strings("qemu", k, v)?,
                            "emulators" => out.qemu_emulators = strings("qemu", k, v)?,
                            other => {
                                return Err(format!(
                                    "plugin \"qemu\": unknown option {other:?} (known: image_paths, args_allowlist, emulators)"
                                ));
                            }
                        }
                    }
                }
                "exec" => {
                    if let Some(k) = map.keys().next() {
                        return Err(format!("plugin \"exec\": unknown option {k:?}"));
                    }
                }
                other => {
                    return Err(format!(
                        "plugin {other:?}: no such driver (exec, raw_exec, qemu)"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The node as registered: the fingerprint, this client's drivers, the
/// config's reservation and meta.
pub fn build(
    config: &AgentConfig,
    id: &str,
    address: &str,
    fp: &Fingerprint,
    drivers: &Drivers,
) -> Node {
    let mut attributes = fp.attributes.clone();
    attributes.insert("wren.version".to_owned(), wren_model::VERSION.to_owned());
    let mut driver_infos = fp.drivers.clone();
    for (name, d) in drivers {
        let info = d.fingerprint();
        let key = format!("driver.{name}");
        if info.detected {
            attributes.insert(key, "1".to_owned());
        } else {
            attributes.remove(&key);
        }
        driver_infos.insert((*name).to_owned(), info);
    }
    let r = &config.client.reserved;
    let mut node = Node {
        id: id.to_owned(),
        name: config.name.clone().unwrap_or_else(crate::agent::hostname),
        datacenter: config.datacenter.clone(),
        node_pool: config.client.node_pool.clone(),
        node_class: config.client.node_class.clone(),
        address: address.to_owned(),
        attributes,
        meta: config.client.meta.clone(),
        resources: fp.resources.clone(),
        reserved: NodeReserved {
            cpu: r.cpu,
            cores: Vec::new(),
            memory_mb: r.memory_mb,
            disk_mb: r.disk_mb,
            ports: r.ports.clone(),
        },
        drivers: driver_infos,
        status: NodeStatus::Initializing,
        agent_version: wren_model::VERSION.to_owned(),
        ..Node::default()
    };
    node.computed_class = node.compute_class();
    node
}

/// The node as re-fingerprinted, keeping the disk capacity `current` was
/// first fingerprinted with. The data dir's free space moves with every
/// write (this client's allocations, logs and state included, which the
/// servers already count as usage); taken again at some later
/// registration it would count that usage twice and shrink the node under
/// allocations placed against the larger figure. Nomad's storage
/// fingerprint is static too: free space of the alloc dir at start.
pub fn refreshed(current: &Node, mut fresh: Node) -> Node {
    fresh.resources.disk_mb = current.resources.disk_mb;
    fresh
}

/// Whether two registrations differ in anything the servers care about
/// (the free disk space moves with every write and does not count).
pub fn changed(old: &Node, new: &Node) -> bool {
    let strip = |n: &Node| {
        let mut n = n.clone();
        n.resources.disk_mb = 0;
        for k in Fingerprint::VOLATILE {
            n.attributes.remove(*k);
        }
        n
    };
    strip(old) != strip(new)
}

/// The device nodes of the instances an allocation was given, in order:
/// each `vendor/type/name` group's instance ids looked up on this node.
pub fn device_paths(node: &Node, devices: &[AllocatedDevice]) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for d in devices {
        let group = node
            .resources
            .devices
            .iter()
            .find(|g| g.vendor == d.vendor && g.device_type == d.device_type && g.name == d.name)
            .ok_or_else(|| {
                format!(
                    "device {}/{}/{} is not on this node any more",
                    d.vendor, d.device_type, d.name
                )
            })?;
        for id in &d.device_ids {
            let instance = group
                .instances
                .iter()
                .find(|i| &i.id == id)
                .ok_or_else(|| {
                    format!(
                        "device {} instance {id} is not on this node any more",
                        group.id()
                    )
                })?;
            for p in &instance.paths {
                if !paths.contains(p) {
                    paths.push(p.clone());
                }
            }
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{NodeDevice, NodeDeviceResource};

    fn node_with_serial() -> Node {
        let mut n = Node::default();
        n.resources.devices.push(NodeDeviceResource {
            vendor: "usb".into(),
            device_type: "serial".into(),
            name: "FT232R".into(),
            instances: vec![
                NodeDevice {
                    id: "A1".into(),
                    healthy: true,
                    paths: vec!["/dev/ttyUSB0".into()],
                    ..NodeDevice::default()
                },
                NodeDevice {
                    id: "B2".into(),
                    healthy: true,
                    paths: vec!["/dev/ttyUSB1".into()],
                    ..NodeDevice::default()
                },
            ],
            ..NodeDeviceResource::default()
        });
        n
    }

    #[test]
    fn allocated_device_ids_become_paths() {
        let n = node_with_serial();
        let want = |ids: &[&str]| AllocatedDevice {
            vendor: "usb".into(),
            device_type: "serial".into(),
            name: "FT232R".into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            device_paths(&n, &[want(&["B2", "A1"])]).unwrap(),
            ["/dev/ttyUSB1", "/dev/ttyUSB0"]
        );
        let err = device_paths(&n, &[want(&["C3"])]).unwrap_err();
        assert!(err.contains("C3"), "{err}");
        let mut other = want(&["A1"]);
        other.name = "CP2102".into();
        assert!(device_paths(&n, &[other]).is_err());
    }

    #[test]
    fn plugin_blocks_are_read_and_typos_refused() {
        let mut c = AgentConfig::default();
        c.apply_file(
            "agent.hcl",
            r#"
plugin "raw_exec" {
  config {
    enabled = true
  }
}
plugin "qemu" {
  config {
    image_paths    = ["/srv/images"]
    args_allowlist = ["-device"]
    emulators      = ["qemu-system-aarch64"]
  }
}
"#,
        )
        .unwrap();
        let p = PluginConfig::from_config(&c).unwrap();
        assert!(p.raw_exec_enabled);
        assert_eq!(
            p.qemu.image_paths,
            [std::path::PathBuf::from("/srv/images")]
        );
        assert_eq!(p.qemu.args_allowlist, ["-device"]);
        assert_eq!(p.qemu_emulators, ["qemu-system-aarch64"]);

        let mut c = AgentConfig::default();
        c.apply_file(
            "a.hcl",
            "plugin \"raw_exec\" {\n config {\n enabld = true\n }\n}\n",
        )
        .unwrap();
        let err = PluginConfig::from_config(&c).unwrap_err();
        assert!(err.contains("enabld"), "{err}");
        let mut c = AgentConfig::default();
        c.apply_file("a.hcl", "plugin \"docker\" {\n config {}\n}\n")
            .unwrap();
        assert!(PluginConfig::from_config(&c).is_err());
    }

    #[test]
    fn free_disk_space_is_not_a_change() {
        let mut a = Node::default();
        a.resources.disk_mb = 100;
        a.attributes
            .insert("unique.storage.bytesfree".into(), "1".into());
        let mut b = a.clone();
        b.resources.disk_mb = 99;
        b.attributes
            .insert("unique.storage.bytesfree".into(), "2".into());
        assert!(!changed(&a, &b));
        b.meta.insert("rack".into(), "r2".into());
        assert!(changed(&a, &b));
    }

    #[test]
    fn the_disk_capacity_is_the_first_fingerprint() {
        let mut first = Node::default();
        first.resources.disk_mb = 1800;
        let mut later = first.clone();
        later.resources.disk_mb = 1500;
        later.meta.insert("rack".into(), "r2".into());
        let node = refreshed(&first, later);
        assert_eq!(node.resources.disk_mb, 1800, "capacity kept");
        assert_eq!(
            node.meta.get("rack").map(String::as_str),
            Some("r2"),
            "the rest is fresh"
        );
    }
}
