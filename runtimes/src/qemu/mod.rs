//! The `qemu` driver: a virtual machine as a task. QEMU runs confined like
//! an exec task (its cgroup, an unprivileged user, Landlock limiting it to
//! its task dir and the allow-listed images), its serial console is the
//! task's stdout and so its log, and a graceful stop presses the ACPI power
//! button over QMP before `kill_timeout` runs out.

pub mod args;
pub mod qmp;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wren_model::{DriverInfo, Task};

use crate::driver::{
    BoxFuture, ConfigError, Driver, DriverError, ExitResult, Started, TaskHandle, TaskSpec,
};
use crate::isolation::{Request, isolate, resolve_program};
use crate::runtime::{LaunchPlan, Runtime};
pub use args::{QemuConfig, QemuOptions};

/// How long the monitor may take to answer.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);

/// Guest memory when the task asks for none.
const DEFAULT_GUEST_MB: u64 = 256;

/// Runs virtual machines.
#[derive(Debug)]
pub struct QemuDriver {
    rt: Arc<Runtime>,
    opts: QemuOptions,
}

impl QemuDriver {
    /// A qemu driver with the client's allowlists.
    pub fn new(rt: Arc<Runtime>, opts: QemuOptions) -> QemuDriver {
        QemuDriver { rt, opts }
    }
}

fn search_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
}

/// `QEMU emulator version 10.0.2 (...)` -> `10.0.2`.
fn parse_version(text: &str) -> Option<String> {
    let rest = text.split("version ").nth(1)?;
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!v.is_empty()).then_some(v)
}

impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo::default();
        let emulator = args::host_emulator();
        let Ok(program) = resolve_program(&emulator, Path::new("/"), &search_path()) else {
            info.health_description = format!("{emulator} not found in PATH");
            return info;
        };
        info.detected = true;
        let version = std::process::Command::new(&program)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()
            .and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let mut emulators: Vec<String> = search_path()
            .split(':')
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("qemu-system-"))
            .collect();
        emulators.sort();
        emulators.dedup();
        info.attributes
            .insert("version".to_owned(), version.clone().unwrap_or_default());
        info.attributes.insert("kvm".to_owned(), kvm.to_string());
        info.attributes
            .insert("emulators".to_owned(), emulators.join(","));
        info.healthy =
            version.is_some() && self.rt.caps.root && self.rt.caps.cgroups.version().is_some();
        info.health_description = match (&version, self.rt.caps.root) {
            (None, _) => format!("{} --version did not answer", program.display()),
            (_, false) => "the agent must run as root to isolate tasks".to_owned(),
            _ if !info.healthy => "no usable cgroup hierarchy".to_owned(),
            _ => "healthy".to_owned(),
        };
        info
    }

    fn validate_config(&self, task: &Task) -> Result<(), ConfigError> {
        QemuConfig::parse(task, &self.opts).map(drop)
    }

    fn start(&self, spec: &TaskSpec) -> Result<Started, DriverError> {
        let cfg = QemuConfig::parse(&spec.task, &self.opts)?;
        let setup = |message: String| DriverError::Setup {
            task: spec.task.name.clone(),
            message,
        };
        let locate = |f: &Option<args::GuestFile>| -> Result<Option<PathBuf>, DriverError> {
            let Some(f) = f else { return Ok(None) };
            let path = if f.external {
                PathBuf::from(&f.written)
            } else {
                spec.task_dir.join(&f.written)
            };
            if !path.is_file() {
                return Err(setup(format!("{} is not a file", path.display())));
            }
            Ok(Some(path))
        };
        let image = locate(&cfg.image)?;
        let kernel = locate(&cfg.kernel)?;
        let initrd = locate(&cfg.initrd)?;
        let image = match image {
            Some(p) => Some((p.clone(), image_format(&p).map_err(setup)?)),
            None => None,
        };
        let external: Vec<PathBuf> = [
            (&cfg.image, image.as_ref().map(|i| i.0.clone())),
            (&cfg.kernel, kernel.clone()),
            (&cfg.initrd, initrd.clone()),
        ]
        .into_iter()
        .filter(|(f, _)| f.as_ref().is_some_and(|f| f.external))
        .filter_map(|(_, p)| p)
        .collect();
        let r = &spec.resources;
        let memory_mb = [r.memory_mb, spec.task.resources.memory_mb, DEFAULT_GUEST_MB]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_GUEST_MB);
        let cpus = if !r.cores.is_empty() {
            r.cores.len() as u32
        } else {
            spec.task.resources.cores.max(1)
        };
        let resolved = args::Resolved {
            image,
            kernel,
            initrd,
            memory_mb,
            cpus,
        };
        let argv = args::argv(&cfg, &resolved, &spec.ports).map_err(setup)?;
        let hard_mb = [r.memory_max_mb, spec.task.resources.memory_max_mb]
            .into_iter()
            .find(|m| *m > 0);
        let memory_max = match hard_mb {
            Some(mb) => mb.saturating_mul(1 << 20),
            None => memory_mb
                .saturating_mul(1 << 20)
                .saturating_add(crate::policy::QEMU_OVERHEAD_BYTES),
        };
        let kvm = cfg.accelerator == args::Accelerator::Kvm;
        let isolated = isolate(
            &self.rt,
            Request {
                spec,
                command: cfg.emulator.clone(),
                work_dir: None,
                pids_limit: self.rt.config.policy.pids_limit,
                memory_max: Some(memory_max),
                read_only_files: external,
                extra_devices: if kvm {
                    vec![PathBuf::from("/dev/kvm")]
                } else {
                    Vec::new()
                },
            },
        )?;
        self.rt.launch(
            "qemu",
            spec,
            LaunchPlan {
                program: isolated.program,
                args: argv,
                env: isolated.env,
                sandbox: isolated.sandbox,
                limits: isolated.limits,
                pid_ns: isolated.pid_ns,
                uid_lease: isolated.uid_lease,
                monitor: cfg.graceful_shutdown,
                events: isolated.events,
            },
        )
    }

    /// With `graceful_shutdown`, presses the power button over QMP and
    /// gives the guest `kill_timeout` to power off; otherwise (or when the
    /// monitor does not answer) sends `kill_signal` as any task.
    fn stop(
        &self,
        handle: &TaskHandle,
        kill_signal: &str,
        kill_timeout: Duration,
    ) -> BoxFuture<Result<ExitResult, DriverError>> {
        let handle = handle.clone();
        let signal = crate::supervise::parse_signal(kill_signal);
        Box::pin(async move {
            let signal = signal?;
            if let Some(socket) = &handle.qmp_socket
                && crate::supervise::shim_alive(&handle)
                && qmp::powerdown(Path::new(socket), QMP_TIMEOUT).is_ok()
            {
                return crate::supervise::stop_after(handle, kill_timeout).await;
            }
            crate::supervise::stop(handle, signal, kill_timeout).await
        })
    }
}

/// `qcow2` when the file starts with qcow2's magic, else `raw`.
fn image_format(path: &Path) -> Result<&'static str, String> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    match f.read_exact(&mut magic) {
        Ok(()) if magic == *b"QFI\xfb" => Ok("qcow2"),
        _ => Ok("raw"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_formats_by_magic() {
        let dir = std::env::temp_dir().join(format!("wren-qemu-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let qcow = dir.join("a.img");
        std::fs::write(&qcow, b"QFI\xfb\x00\x00\x00\x03rest").unwrap();
        let raw = dir.join("b.qcow2");
        std::fs::write(&raw, [0u8; 512]).unwrap();
        let tiny = dir.join("c");
        std::fs::write(&tiny, b"QF").unwrap();
        assert_eq!(image_format(&qcow), Ok("qcow2"));
        assert_eq!(image_format(&raw), Ok("raw"), "the name does not decide");
        assert_eq!(image_format(&tiny), Ok("raw"));
        assert!(image_format(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\n").as_deref(),
            Some("10.0.2")
        );
        assert_eq!(parse_version("garbage"), None);
    }
}
