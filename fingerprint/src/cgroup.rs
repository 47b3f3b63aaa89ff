//! Which cgroup hierarchy the node has (v1, v2 or the hybrid of both) and
//! where each controller the exec driver uses can be used, from the mount
//! table, `/proc/cgroups`, the v2 root's `cgroup.controllers` and
//! `/proc/cmdline` (to say why a controller is off).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::mounts::Mount;
use crate::read::Ctx;

const AREA: &str = "cgroup";

/// Controllers that get a `cgroup.controller.<name>` attribute even when
/// the kernel does not list them.
const KEY_CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "devices", "memory", "pids"];

/// Names that may appear among a v1 cgroup mount's options.
const V1_CONTROLLERS: [&str; 14] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// No cgroup file system mounted.
    None,
    /// Only v1 hierarchies.
    V1,
    /// Only the unified hierarchy.
    V2,
    /// v1 controllers plus a unified hierarchy (systemd's hybrid mode).
    Hybrid,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::None => "none",
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::Hybrid => "hybrid",
        }
    }
}

/// Where one controller can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    V1,
    V2,
    Off,
}

impl Place {
    pub fn name(self) -> &'static str {
        match self {
            Place::V1 => "v1",
            Place::V2 => "v2",
            Place::Off => "off",
        }
    }
}

/// What the drivers need to know about cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroups {
    pub version: Version,
    pub controllers: BTreeMap<String, Place>,
    /// Why the memory controller is off, when it is.
    pub memory_off: Option<String>,
}

impl Cgroups {
    pub fn place(&self, controller: &str) -> Place {
        self.controllers
            .get(controller)
            .copied()
            .unwrap_or(Place::Off)
    }
}

/// `/proc/cgroups`: controller name to (hierarchy id, enabled).
fn parse_proc_cgroups(text: &str) -> BTreeMap<String, (u32, bool)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (name, hierarchy, enabled) = (f.first()?, f.get(1)?.parse().ok()?, f.get(3)?);
            if !is_controller_name(name) {
                return None;
            }
            Some(((*name).to_owned(), (hierarchy, *enabled == "1")))
        })
        .collect()
}

/// Whether `s` can name a controller: the kernel's are short words of
/// `[a-z0-9_]` (`cpu`, `net_cls`, `perf_event`). Anything else read from
/// `/proc/cgroups` or `cgroup.controllers` is a damaged file, and must not
/// become an attribute.
fn is_controller_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why the kernel command line turned `controller` off, if it did.
fn disabled_by_cmdline(cmdline: &str, controller: &str) -> Option<String> {
    let mut verdict = None;
    for arg in cmdline.split_whitespace() {
        if let Some(list) = arg.strip_prefix("cgroup_disable=")
            && list.split(',').any(|c| c == controller)
        {
            verdict = Some(arg.to_owned());
        }
        if let Some(list) = arg.strip_prefix("cgroup_enable=")
            && list.split(',').any(|c| c == controller)
        {
            verdict = None;
        }
    }
    verdict
}

fn v2_mount(mounts: &[Mount]) -> Option<&Mount> {
    let v2: Vec<&Mount> = mounts.iter().filter(|m| m.fstype == "cgroup2").collect();
    v2.iter()
        .find(|m| m.point == Path::new("/sys/fs/cgroup"))
        .or_else(|| {
            v2.iter()
                .find(|m| m.point == Path::new("/sys/fs/cgroup/unified"))
        })
        .or_else(|| v2.first())
        .copied()
}

/// Reads the cgroup facts into `attrs`.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    mounts: &[Mount],
    attrs: &mut BTreeMap<String, String>,
) -> Cgroups {
    let mut v1: BTreeMap<String, PathBuf> = BTreeMap::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        for opt in &m.options {
            if V1_CONTROLLERS.contains(&opt.as_str()) {
                v1.entry(opt.clone()).or_insert_with(|| m.point.clone());
            }
        }
    }
    let v2 = v2_mount(mounts);
    let version = match (v1.is_empty(), v2.is_some()) {
        (true, false) => Version::None,
        (true, true) => Version::V2,
        (false, false) => Version::V1,
        (false, true) => Version::Hybrid,
    };

    let proc_cgroups = ctx
        .read(AREA, &ctx.roots.proc("cgroups"))
        .map(|t| parse_proc_cgroups(&t));
    let v2_controllers: BTreeSet<String> = match v2 {
        Some(m) => {
            let file = ctx.roots.map(&m.point).join("cgroup.controllers");
            match ctx.read(AREA, &file) {
                Some(t) => t
                    .split_whitespace()
                    .filter(|n| is_controller_name(n))
                    .map(str::to_owned)
                    .collect(),
                None => {
                    ctx.warn(AREA, format!("{} is missing or unreadable", file.display()));
                    BTreeSet::new()
                }
            }
        }
        None => BTreeSet::new(),
    };
    let enabled = |name: &str| match &proc_cgroups {
        Some(table) => table.get(name).is_some_and(|(_, on)| *on),
        None => true,
    };

    let mut names: BTreeSet<String> = KEY_CONTROLLERS.iter().map(|s| (*s).to_owned()).collect();
    names.extend(v1.keys().cloned());
    names.extend(v2_controllers.iter().cloned());
    if let Some(table) = &proc_cgroups {
        names.extend(table.keys().cloned());
    }
    let mut controllers = BTreeMap::new();
    for name in names {
        let place = if v1.contains_key(&name) && enabled(&name) {
            Place::V1
        } else if v2_controllers.contains(&name) {
            Place::V2
        } else if v2.is_some() && matches!(name.as_str(), "devices" | "freezer") && enabled(&name) {
            // Built into v2 itself: device access by BPF programs, freezing by cgroup.freeze.
            Place::V2
        } else {
            Place::Off
        };
        controllers.insert(name, place);
    }

    let memory_off = (controllers.get("memory") == Some(&Place::Off)).then(|| {
        let cmdline = ctx
            .read(AREA, &ctx.roots.proc("cmdline"))
            .unwrap_or_default();
        match disabled_by_cmdline(&cmdline, "memory") {
            Some(arg) => {
                format!("memory cgroup controller is off ({arg} on the kernel command line)")
            }
            None => "memory cgroup controller is off".to_owned(),
        }
    });

    attrs.insert("cgroup.version".into(), version.name().into());
    let mountpoint = match version {
        Version::V2 => v2.map(|m| m.point.clone()),
        Version::V1 | Version::Hybrid => v1
            .get("cpu")
            .or_else(|| v1.values().next())
            .and_then(|p| p.parent().map(Path::to_path_buf)),
        Version::None => None,
    };
    if let Some(mp) = mountpoint {
        let mp = mp.to_string_lossy().into_owned();
        attrs.insert("cgroup.mountpoint".into(), mp.clone());
        attrs.insert("unique.cgroup.mountpoint".into(), mp);
        let nomad = if version == Version::V2 { "v2" } else { "v1" };
        attrs.insert("unique.cgroup.version".into(), nomad.into());
    }
    let usable: Vec<&str> = controllers
        .iter()
        .filter(|(_, p)| **p != Place::Off)
        .map(|(n, _)| n.as_str())
        .collect();
    attrs.insert("cgroup.controllers".into(), usable.join(","));
    for (name, place) in &controllers {
        attrs.insert(format!("cgroup.controller.{name}"), place.name().into());
    }
    if version == Version::None {
        ctx.warn(AREA, "no cgroup file system is mounted".to_owned());
    }
    Cgroups {
        version,
        controllers,
        memory_off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_disable_and_reenable() {
        assert_eq!(
            disabled_by_cmdline("console=ttyS0 cgroup_disable=memory quiet", "memory").as_deref(),
            Some("cgroup_disable=memory")
        );
        assert_eq!(
            disabled_by_cmdline("cgroup_disable=memory cgroup_enable=memory", "memory"),
            None
        );
        assert_eq!(
            disabled_by_cmdline("cgroup_disable=cpuset,memory", "memory").as_deref(),
            Some("cgroup_disable=cpuset,memory")
        );
        assert_eq!(disabled_by_cmdline("quiet", "memory"), None);
    }

    fn tree(tag: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wren-fp-cg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run(dir: &Path, mounts: &str) -> (Cgroups, BTreeMap<String, String>, usize) {
        let roots = crate::Roots::under(dir);
        let mut ctx = Ctx::new(&roots);
        let mut attrs = BTreeMap::new();
        let cg = fingerprint(&mut ctx, &crate::mounts::parse(mounts), &mut attrs);
        (cg, attrs, ctx.into_warnings().len())
    }

    #[test]
    fn pure_v1_with_combined_mounts() {
        let dir = tree(
            "v1",
            &[(
                "proc/cgroups",
                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\ncpuacct\t2\t1\t1\nmemory\t3\t1\t1\npids\t4\t1\t1\ncpuset\t0\t1\t1\n",
            )],
        );
        let (cg, attrs, warnings) = run(
            &dir,
            "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
             cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
             cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n",
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(warnings, 0);
        assert_eq!(cg.version, Version::V1);
        assert_eq!(attrs["cgroup.mountpoint"], "/sys/fs/cgroup");
        assert_eq!(attrs["unique.cgroup.version"], "v1");
        assert_eq!(attrs["cgroup.controllers"], "cpu,cpuacct,memory,pids");
        assert_eq!(cg.place("memory"), Place::V1);
        // Enabled in the kernel but mounted nowhere: not usable.
        assert_eq!(cg.place("cpuset"), Place::Off);
        assert_eq!(cg.place("devices"), Place::Off);
        assert_eq!(cg.memory_off, None);
    }

    #[test]
    fn v2_without_proc_cgroups() {
        let dir = tree(
            "v2",
            &[("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n")],
        );
        let (cg, attrs, warnings) = run(&dir, "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(warnings, 0);
        assert_eq!(cg.version, Version::V2);
        assert_eq!(attrs["cgroup.controller.memory"], "v2");
        // Device control is built into v2 (BPF programs).
        assert_eq!(attrs["cgroup.controller.devices"], "v2");
        assert_eq!(attrs["cgroup.controller.cpuset"], "off");
    }

    #[test]
    fn damaged_controller_lists_name_no_controllers() {
        // The case proptest found in fingerprint/tests/garble.rs: bytes that
        // split_whitespace keeps together, control characters among them.
        let dir = tree(
            "v2-junk",
            &[
                (
                    "sys/fs/cgroup/cgroup.controllers",
                    "\u{10}Ud\u{7}\u{14} memory Cpu pids/x \u{fffd}{\n",
                ),
                (
                    "proc/cgroups",
                    "#subsys_name hierarchy num_cgroups enabled\nme\u{1}m 0 1 1\npids 0 1 1\n",
                ),
            ],
        );
        let (cg, attrs, _) = run(&dir, "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cg.place("memory"), Place::V2);
        assert_eq!(cg.place("pids"), Place::Off);
        assert_eq!(attrs["cgroup.controllers"], "memory");
        for (k, v) in &attrs {
            assert!(!k.chars().any(char::is_control), "{k:?}");
            assert!(!v.chars().any(char::is_control), "{k}={v:?}");
        }
    }

    #[test]
    fn proc_cgroups_table() {
        let t = parse_proc_cgroups(
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t97\t1\nmemory\t0\t97\t0\njunk\n",
        );
        assert_eq!(t.get("cpuset"), Some(&(0, true)));
        assert_eq!(t.get("memory"), Some(&(0, false)));
        assert_eq!(t.len(), 2);
    }
}
