//! The qemu task config and the command line it becomes. Pure: paths are
//! checked against the allowlists here, and read (image format) by the
//! driver.
//!
//! ```hcl
//! config {
//!   image_path        = "local/disk.qcow2"   # or kernel + initrd + append
//!   accelerator       = "tcg"                # or "kvm"
//!   emulator          = "qemu-system-aarch64"
//!   machine_type      = "virt"
//!   graceful_shutdown = true                 # QMP system_powerdown on stop
//!   port_map { http = 80 }                   # host port of label "http" -> guest 80
//!   args              = ["-device", "virtio-rng-pci"]   # flags must be allow-listed
//! }
//! ```

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use wren_model::{AllocatedPort, Task};

use crate::config::Config;
use crate::driver::ConfigError;

const KEYS: &[&str] = &[
    "image_path",
    "kernel",
    "initrd",
    "append",
    "accelerator",
    "emulator",
    "machine_type",
    "graceful_shutdown",
    "port_map",
    "args",
    "drive_interface",
];

/// What the client allows qemu tasks (from the client config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuOptions {
    /// Directories absolute `image_path`, `kernel` and `initrd` may be in.
    /// Relative paths are always in the task dir.
    pub image_paths: Vec<PathBuf>,
    /// Flags `args` may use (`-device`, `-object`, ...). Empty: no `args`.
    pub args_allowlist: Vec<String>,
}

/// `tcg` (emulation, always works) or `kvm` (needs `/dev/kvm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    /// Emulation.
    Tcg,
    /// Hardware virtualization.
    Kvm,
}

/// A file the guest boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFile {
    /// As written in the config.
    pub written: String,
    /// Outside the task dir (then read-only to qemu: a shared image).
    pub external: bool,
}

/// A parsed qemu task config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// A disk image.
    pub image: Option<GuestFile>,
    /// A kernel to boot directly.
    pub kernel: Option<GuestFile>,
    /// Its initrd.
    pub initrd: Option<GuestFile>,
    /// Its command line.
    pub append: Option<String>,
    /// The accelerator.
    pub accelerator: Accelerator,
    /// `qemu-system-<arch>`, a name looked up in PATH.
    pub emulator: String,
    /// `-M`.
    pub machine_type: Option<String>,
    /// Power down over QMP on stop.
    pub graceful_shutdown: bool,
    /// Port label to guest port.
    pub port_map: BTreeMap<String, u16>,
    /// Extra arguments (allow-listed).
    pub args: Vec<String>,
    /// `if=` of the image drive.
    pub drive_interface: String,
}

/// The emulator for this host's architecture.
pub fn host_emulator() -> String {
    format!("qemu-system-{}", std::env::consts::ARCH)
}

impl QemuConfig {
    /// Parses and checks `task.config`.
    pub fn parse(task: &Task, opts: &QemuOptions) -> Result<QemuConfig, ConfigError> {
        let c = Config::new("qemu", &task.config, KEYS)?;
        let file = |key: &str| -> Result<Option<GuestFile>, ConfigError> {
            let Some(written) = c.string(key)? else {
                return Ok(None);
            };
            let p = Path::new(&written);
            if p.components().any(|c| c == Component::ParentDir) {
                return Err(c.err(key, "must not contain .."));
            }
            let external = p.is_absolute();
            if external
                && !opts
                    .image_paths
                    .iter()
                    .any(|allowed| p.starts_with(allowed))
            {
                let allowed: Vec<String> = opts
                    .image_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(c.err(
                    key,
                    format!(
                        "{written} is outside the task dir and the client's image_paths ({})",
                        allowed.join(", ")
                    ),
                ));
            }
            Ok(Some(GuestFile { written, external }))
        };
        let image = file("image_path")?;
        let kernel = file("kernel")?;
        let initrd = file("initrd")?;
        let append = c.string("append")?;
        if image.is_none() && kernel.is_none() {
            return Err(c.err("image_path", "either image_path or kernel is required"));
        }
        if kernel.is_none() && (initrd.is_some() || append.is_some()) {
            return Err(c.err("kernel", "initrd and append need a kernel"));
        }
        let accelerator = match c.string("accelerator")?.as_deref() {
            None | Some("tcg") => Accelerator::Tcg,
            Some("kvm") => Accelerator::Kvm,
            Some(other) => {
                return Err(c.err("accelerator", format!("{other:?} is neither tcg nor kvm")));
            }
        };
        let emulator = c.string("emulator")?.unwrap_or_else(host_emulator);
        let arch = emulator.strip_prefix("qemu-system-").unwrap_or_default();
        if arch.is_empty()
            || !arch
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(c.err(
                "emulator",
                format!("{emulator:?} is not a qemu-system-<arch> name"),
            ));
        }
        let machine_type = c.string("machine_type")?;
        if let Some(m) = &machine_type
            && (m.is_empty()
                || !m
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.,=".contains(ch)))
        {
            return Err(c.err("machine_type", format!("{m:?} is not a machine type")));
        }
        let drive_interface = c
            .string("drive_interface")?
            .unwrap_or_else(|| "ide".to_owned());
        if ![
            "ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none",
        ]
        .contains(&drive_interface.as_str())
        {
            return Err(c.err(
                "drive_interface",
                format!("{drive_interface:?} is not a qemu drive interface"),
            ));
        }
        let port_map = c
            .int_map("port_map", 1, 65535)?
            .into_iter()
            .map(|(k, v)| (k, v as u16))
            .collect();
        let args = c.strings("args")?;
        check_args(&args, &opts.args_allowlist).map_err(|m| c.err("args", m))?;
        Ok(QemuConfig {
            image,
            kernel,
            initrd,
            append,
            accelerator,
            emulator,
            machine_type,
            graceful_shutdown: c.bool("graceful_shutdown")?.unwrap_or(false),
            port_map,
            args,
            drive_interface,
        })
    }

    /// The machine type to use: the configured one, or `virt` for ARM
    /// emulators (which have no default board).
    pub fn machine(&self) -> Option<String> {
        self.machine_type.clone().or_else(|| {
            let arm = self.emulator.ends_with("aarch64") || self.emulator.ends_with("-arm");
            arm.then(|| "virt".to_owned())
        })
    }
}

/// Every flag in `args` must be allow-listed; values follow their flag.
fn check_args(args: &[String], allowlist: &[String]) -> Result<(), String> {
    let mut after_flag = false;
    for a in args {
        if a.starts_with('-') {
            if !allowlist.iter().any(|f| f == a) {
                return Err(if allowlist.is_empty() {
                    format!("{a} is not allowed: this client allows no extra qemu arguments")
                } else {
                    format!("{a} is not allowed (allowed: {})", allowlist.join(", "))
                });
            }
            after_flag = true;
        } else if !after_flag {
            return Err(format!("{a:?} does not follow a flag"));
        } else {
            after_flag = false;
        }
    }
    Ok(())
}

/// Inputs resolved by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Absolute image path and its format (`qcow2` or `raw`).
    pub image: Option<(PathBuf, &'static str)>,
    /// Absolute kernel path.
    pub kernel: Option<PathBuf>,
    /// Absolute initrd path.
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB.
    pub memory_mb: u64,
    /// Guest cpus.
    pub cpus: u32,
}

/// The arguments after the emulator.
pub fn argv(
    cfg: &QemuConfig,
    r: &Resolved,
    ports: &[AllocatedPort],
) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    if let Some(m) = cfg.machine() {
        push(&["-machine", &m]);
    }
    match cfg.accelerator {
        // Cap the translation cache (default: up to 1 GiB on 64-bit hosts).
        Accelerator::Tcg => push(&["-accel", "tcg,tb-size=64"]),
        Accelerator::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
    }
    if cfg.accelerator == Accelerator::Tcg
        && cfg.machine().as_deref() == Some("virt")
        && cfg.emulator.ends_with("aarch64")
    {
        push(&["-cpu", "max"]);
    }
    push(&[
        "-m",
        &format!("{}M", r.memory_mb),
        "-smp",
        &r.cpus.to_string(),
    ]);
    // The serial console is the task's stdout, hence its log.
    push(&["-serial", "stdio"]);
    if let Some((image, format)) = &r.image {
        let mut drive = format!(
            "file={},format={format},if={}",
            qemu_escape(image),
            cfg.drive_interface
        );
        if cfg.image.as_ref().is_some_and(|i| i.external) {
            // A shared image is never written: writes go to a temporary overlay.
            drive.push_str(",snapshot=on");
        }
        push(&["-drive", &drive]);
    }
    if let Some(k) = &r.kernel {
        push(&["-kernel", &k.to_string_lossy()]);
    }
    if let Some(i) = &r.initrd {
        push(&["-initrd", &i.to_string_lossy()]);
    }
    if let Some(ap) = &cfg.append {
        push(&["-append", ap]);
    }
    let mut netdev = "user,id=user.0".to_owned();
    for (label, guest) in &cfg.port_map {
        let port = ports
            .iter()
            .find(|p| &p.label == label)
            .ok_or_else(|| format!("port_map label {label:?} is not a port of the allocation"))?;
        for proto in ["tcp", "udp"] {
            netdev.push_str(&format!(
                ",hostfwd={proto}:{}:{}-:{guest}",
                port.host_ip, port.value
            ));
        }
    }
    push(&["-netdev", &netdev, "-device", "virtio-net,netdev=user.0"]);
    if cfg.graceful_shutdown {
        // The shim hands qemu the monitor socket, already listening, as fd
        // 3: it lives in the task's root-only state directory, where the
        // task can neither replace it nor point it at another socket.
        push(&["-chardev", "socket,id=wren-qmp,fd=3,server=on,wait=off"]);
        push(&["-mon", "chardev=wren-qmp,mode=control"]);
    }
    a.extend(cfg.args.iter().cloned());
    Ok(a)
}

/// QEMU option values escape commas by doubling them.
fn qemu_escape(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::Value;

    fn task(pairs: &[(&str, Value)]) -> Task {
        Task {
            name: "vm".into(),
            driver: "qemu".into(),
            config: Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
            ..Task::default()
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn kernel_boot_with_ports_and_monitor() {
        let t = task(&[
            ("kernel", s("/var/lib/images/vmlinuz")),
            ("initrd", s("local/initrd.gz")),
            ("append", s("console=ttyS0")),
            ("graceful_shutdown", Value::Bool(true)),
            ("emulator", s("qemu-system-x86_64")),
            (
                "port_map",
                Value::Map([("http".to_string(), Value::Int(80))].into()),
            ),
        ]);
        let opts = QemuOptions {
            image_paths: vec!["/var/lib/images".into()],
            ..QemuOptions::default()
        };
        let cfg = QemuConfig::parse(&t, &opts).unwrap();
        assert!(cfg.kernel.as_ref().unwrap().external);
        assert!(!cfg.initrd.as_ref().unwrap().external);
        let r = Resolved {
            image: None,
            kernel: Some("/var/lib/images/vmlinuz".into()),
            initrd: Some("/t/local/initrd.gz".into()),
            memory_mb: 128,
            cpus: 1,
        };
        let ports = [AllocatedPort {
            label: "http".into(),
            value: 25000,
            to: 0,
            host_ip: "127.0.0.1".into(),
        }];
        let a = argv(&cfg, &r, &ports).unwrap().join(" ");
        assert!(a.contains("-accel tcg,tb-size=64"), "{a}");
        assert!(a.contains("-m 128M -smp 1"), "{a}");
        assert!(a.contains("-serial stdio"), "{a}");
        assert!(
            a.contains(
                "-kernel /var/lib/images/vmlinuz -initrd /t/local/initrd.gz -append console=ttyS0"
            ),
            "{a}"
        );
        assert!(
            a.contains("hostfwd=tcp:127.0.0.1:25000-:80,hostfwd=udp:127.0.0.1:25000-:80"),
            "{a}"
        );
        assert!(
            a.contains("-chardev socket,id=wren-qmp,fd=3,server=on,wait=off -mon chardev=wren-qmp,mode=control"),
            "{a}"
        );
        assert!(!a.contains("-machine"), "{a}");
    }

    #[test]
    fn arm_gets_the_virt_board_and_shared_images_a_snapshot() {
        let t = task(&[
            ("image_path", s("/srv/img/a,b.qcow2")),
            ("emulator", s("qemu-system-aarch64")),
        ]);
        let opts = QemuOptions {
            image_paths: vec!["/srv/img".into()],
            ..QemuOptions::default()
        };
        let cfg = QemuConfig::parse(&t, &opts).unwrap();
        let r = Resolved {
            image: Some(("/srv/img/a,b.qcow2".into(), "qcow2")),
            kernel: None,
            initrd: None,
            memory_mb: 512,
            cpus: 2,
        };
        let a = argv(&cfg, &r, &[]).unwrap().join(" ");
        assert!(a.contains("-machine virt"), "{a}");
        assert!(a.contains("-cpu max"), "{a}");
        assert!(
            a.contains("file=/srv/img/a,,b.qcow2,format=qcow2,if=ide,snapshot=on"),
            "{a}"
        );
    }

    #[test]
    fn bad_configs_are_clear_errors() {
        let opts = QemuOptions {
            args_allowlist: vec!["-device".into()],
            ..QemuOptions::default()
        };
        let cases: Vec<(Task, &str)> = vec![
            (task(&[]), "image_path"),
            (task(&[("image_path", s("/etc/shadow"))]), "image_path"),
            (task(&[("image_path", s("local/../../x"))]), "image_path"),
            (
                task(&[("image_path", s("a.img")), ("accelerator", s("hvf"))]),
                "accelerator",
            ),
            (
                task(&[("image_path", s("a.img")), ("emulator", s("/bin/sh"))]),
                "emulator",
            ),
            (
                task(&[
                    ("image_path", s("a.img")),
                    (
                        "args",
                        Value::List(vec![s("-drive"), s("file=/etc/shadow")]),
                    ),
                ]),
                "args",
            ),
            (
                task(&[
                    ("image_path", s("a.img")),
                    ("args", Value::List(vec![s("stray")])),
                ]),
                "args",
            ),
            (
                task(&[("image_path", s("a.img")), ("initrd", s("i"))]),
                "kernel",
            ),
            (
                task(&[("image_path", s("a.img")), ("bogus", s("x"))]),
                "bogus",
            ),
        ];
        for (t, key) in cases {
            let e = QemuConfig::parse(&t, &opts).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        let ok = task(&[
            ("image_path", s("a.img")),
            ("args", Value::List(vec![s("-device"), s("virtio-rng-pci")])),
        ]);
        assert!(QemuConfig::parse(&ok, &opts).is_ok());
    }

    #[test]
    fn unknown_port_labels_fail() {
        let t = task(&[
            ("image_path", s("a.img")),
            (
                "port_map",
                Value::Map([("db".to_string(), Value::Int(5432))].into()),
            ),
        ]);
        let cfg = QemuConfig::parse(&t, &QemuOptions::default()).unwrap();
        let r = Resolved {
            image: Some(("/t/a.img".into(), "raw")),
            kernel: None,
            initrd: None,
            memory_mb: 64,
            cpus: 1,
        };
        assert!(argv(&cfg, &r, &[]).unwrap_err().contains("db"));
    }
}
