//! What this node can isolate with: cgroup hierarchies and controllers,
//! the Landlock ABI, which namespaces may be created, whether we are root.
//! Probed once when drivers are built (and again on fingerprint); tests
//! construct a [`HostCaps`] by hand to exercise every policy branch.

use std::collections::BTreeMap;

use nix::sched::CloneFlags;

use crate::cgroup::{Hierarchies, Version};
use crate::policy::Layer;

/// Isolation features of the node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCaps {
    /// Cgroup hierarchies.
    pub cgroups: Hierarchies,
    /// Why the cgroup hierarchies could not be read, if they could not.
    pub cgroups_error: Option<String>,
    /// Landlock ABI, when the kernel enforces Landlock.
    pub landlock_abi: Option<u32>,
    /// Why there is no Landlock (`ENOSYS`, `EOPNOTSUPP`, ...).
    pub landlock_error: Option<String>,
    /// A private PID namespace can be created.
    pub pid_ns: bool,
    /// A private mount namespace can be created.
    pub mount_ns: bool,
    /// A private IPC namespace can be created.
    pub ipc_ns: bool,
    /// Running as root (needed to switch users, mount, and write cgroups).
    pub root: bool,
}

impl HostCaps {
    /// Probes the running kernel. Namespaces are tried for real, in a
    /// short-lived thread (unsharing affects only that thread), because
    /// seccomp filters, containers and qemu-user can forbid them even where
    /// the kernel has them.
    pub fn detect() -> HostCaps {
        let (cgroups, cgroups_error) = match Hierarchies::detect() {
            Ok(h) => (h, None),
            Err(e) => (Hierarchies::default(), Some(e.to_string())),
        };
        let (landlock_abi, landlock_error) = match crate::landlock::abi() {
            Ok(abi) if abi > 0 => (Some(abi), None),
            Ok(_) => (None, Some("landlock reports abi 0".to_owned())),
            Err(e) => (None, Some(format!("landlock unavailable: {}", e.desc()))),
        };
        HostCaps {
            cgroups,
            cgroups_error,
            landlock_abi,
            landlock_error,
            pid_ns: can_unshare(CloneFlags::CLONE_NEWPID),
            mount_ns: can_unshare(CloneFlags::CLONE_NEWNS),
            ipc_ns: can_unshare(CloneFlags::CLONE_NEWIPC),
            root: nix::unistd::geteuid().is_root(),
        }
    }

    /// Layers missing for a fully isolated exec task. `cores` says whether
    /// the task pins cores (only then is cpuset needed).
    pub fn missing_layers(&self, cores: bool) -> Vec<Layer> {
        let mut missing = Vec::new();
        let v = self.cgroups.version();
        if v.is_none() {
            missing.push(Layer::Cgroups);
        } else {
            for (controller, layer) in [
                ("memory", Layer::Memory),
                ("cpu", Layer::Cpu),
                ("pids", Layer::Pids),
            ] {
                if !self.cgroups.has(controller) {
                    missing.push(layer);
                }
            }
            if cores && !self.cgroups.has("cpuset") {
                missing.push(Layer::Cpuset);
            }
            if !self.cgroups.has("devices") {
                missing.push(Layer::DeviceCgroup);
            }
        }
        match self.landlock_abi {
            None => missing.push(Layer::Landlock),
            Some(abi) if abi < crate::landlock::LATEST_ABI => missing.push(Layer::LandlockPartial),
            Some(_) => {}
        }
        if !self.pid_ns {
            missing.push(Layer::PidNamespace);
        }
        if !self.mount_ns {
            missing.push(Layer::MountNamespace);
        }
        if !self.ipc_ns {
            missing.push(Layer::IpcNamespace);
        }
        missing
    }

    /// Facts for driver attributes, named like the fingerprinter's.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let version = match self.cgroups.version() {
            Some(Version::V1) => "1",
            Some(Version::V2) => "2",
            None => "none",
        };
        a.insert("cgroup.version".to_owned(), version.to_owned());
        let controllers: Vec<&str> = crate::cgroup::CONTROLLERS
            .iter()
            .copied()
            .filter(|c| self.cgroups.has(c))
            .collect();
        a.insert("cgroup.controllers".to_owned(), controllers.join(","));
        a.insert(
            "landlock.abi".to_owned(),
            self.landlock_abi
                .map(|v| v.to_string())
                .unwrap_or_else(|| "0".to_owned()),
        );
        a.insert("namespaces.pid".to_owned(), self.pid_ns.to_string());
        a.insert("namespaces.mount".to_owned(), self.mount_ns.to_string());
        a.insert("namespaces.ipc".to_owned(), self.ipc_ns.to_string());
        a
    }
}

fn can_unshare(flags: CloneFlags) -> bool {
    std::thread::Builder::new()
        .name("wren-ns-probe".to_owned())
        .spawn(move || nix::sched::unshare(flags).is_ok())
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn full() -> HostCaps {
        let mut cgroups = Hierarchies::default();
        for c in crate::cgroup::CONTROLLERS {
            cgroups
                .v1
                .insert(c.to_string(), PathBuf::from(format!("/sys/fs/cgroup/{c}")));
        }
        HostCaps {
            cgroups,
            landlock_abi: Some(6),
            pid_ns: true,
            mount_ns: true,
            ipc_ns: true,
            root: true,
            ..HostCaps::default()
        }
    }

    #[test]
    fn a_fully_equipped_node_misses_nothing() {
        assert_eq!(full().missing_layers(true), vec![]);
    }

    #[test]
    fn a_pi_without_memory_cgroup_and_an_old_kernel() {
        let mut caps = full();
        caps.cgroups.v1.remove("memory");
        caps.landlock_abi = Some(3);
        caps.pid_ns = false;
        assert_eq!(
            caps.missing_layers(false),
            vec![Layer::Memory, Layer::LandlockPartial, Layer::PidNamespace]
        );
    }

    #[test]
    fn v2_device_rules_need_the_bpf_program() {
        let mut caps = full();
        caps.cgroups.v1.clear();
        caps.cgroups.v2 = Some(PathBuf::from("/sys/fs/cgroup"));
        caps.cgroups.v2_controllers = ["cpu", "memory", "pids"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            caps.missing_layers(true),
            vec![Layer::Cpuset, Layer::DeviceCgroup]
        );
        assert_eq!(caps.attributes()["cgroup.version"], "2");
    }

    #[test]
    fn qemu_user_has_no_landlock() {
        let mut caps = full();
        caps.landlock_abi = None;
        assert!(caps.missing_layers(false).contains(&Layer::Landlock));
        assert_eq!(caps.attributes()["landlock.abi"], "0");
    }
}
