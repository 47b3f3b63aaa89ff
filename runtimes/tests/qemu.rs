//! The qemu driver boots the test VM (`images/test-vm/build`: a Debian
//! kernel and busybox initramfs variants) with tcg. Two VMs, run in
//! parallel: one prints a marker and powers off by itself; one stays up
//! until a graceful stop presses its power button over QMP.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use wren_model::Value;
use wren_runtimes::qemu::{QemuDriver, QemuOptions};
use wren_runtimes::{Driver, ExitResult, TaskHandle};

/// Builds (or finds) the test VM; `None` when this machine cannot run it
/// (panics instead under `CI=true`).
fn test_vm() -> Option<PathBuf> {
    let skip = |why: String| {
        if in_ci() {
            panic!("CI=true and {why}");
        }
        eprintln!("skipping: {why}");
        None
    };
    if std::env::consts::ARCH != "x86_64" {
        return skip(format!(
            "the qemu test boots an x86_64 guest, this is {}",
            std::env::consts::ARCH
        ));
    }
    let probe_root = TempDir::new("qemu-probe");
    let probe_rt = runtime(&probe_root.0, wren_runtimes::host::HostCaps::detect());
    if QemuDriver::new(probe_rt, QemuOptions::default())
        .fingerprint()
        .attributes
        .get("version")
        .is_none_or(|v| v.is_empty())
    {
        return skip("qemu-system-x86_64 is not installed".to_owned());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/test-vm/build");
    let out = std::process::Command::new(&script)
        .output()
        .expect("run images/test-vm/build");
    if !out.status.success() {
        return skip(format!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    Some(PathBuf::from(dir))
}

fn copy_readable(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn config(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn wait_with_timeout(driver: &QemuDriver, handle: &TaskHandle, timeout: Duration) -> ExitResult {
    let wait = driver.wait(handle);
    block_on(futures_lite::future::or(
        async { Some(wait.await) },
        async {
            async_io::Timer::after(timeout).await;
            None
        },
    ))
    .expect("the VM did not finish in time")
    .unwrap()
}

#[test]
fn qemu_boots_a_kernel_and_its_console_lands_in_the_task_log() {
    let Some(caps) = isolation_caps() else { return };
    let Some(vm) = test_vm() else { return };
    let tmp = TempDir::new("qemu-marker");
    let driver = QemuDriver::new(runtime(&tmp.0, caps), QemuOptions::default());
    let mut spec = spec(&tmp.0, &alloc_id("vm"), "marker", "qemu", Value::Null);
    // The Nomad way: the images are artifacts in the task dir.
    copy_readable(&vm.join("vmlinuz"), &spec.task_dir.join("local/vmlinuz"));
    copy_readable(
        &vm.join("marker.cpio.gz"),
        &spec.task_dir.join("local/initrd.gz"),
    );
    spec.task.config = config(&[
        ("kernel", s("local/vmlinuz")),
        ("initrd", s("local/initrd.gz")),
        ("append", s("console=ttyS0 panic=-1 quiet")),
        ("accelerator", s("tcg")),
    ]);
    spec.resources.memory_mb = 128;
    driver.validate_config(&spec.task).unwrap();
    let started = driver.start(&spec).unwrap();
    let exit = wait_with_timeout(&driver, &started.handle, Duration::from_secs(180));
    let log = std::fs::read_to_string(stdout_log(&spec)).unwrap();
    driver.destroy(&started.handle).unwrap();
    assert!(exit.successful(), "{exit:?}\n{log}");
    assert!(log.contains("WREN-VM-MARKER kernel="), "{log}");
}

#[test]
fn qemu_graceful_shutdown_powers_off_a_guest_that_stays_up() {
    let Some(caps) = isolation_caps() else { return };
    let Some(vm) = test_vm() else { return };
    let tmp = TempDir::new("qemu-stayup");
    // Shared images outside the task dir: allowed by the client's
    // image_paths, read-only to the VM (Landlock).
    let images = tmp.0.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::set_permissions(&images, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_readable(&vm.join("vmlinuz"), &images.join("vmlinuz"));
    copy_readable(&vm.join("stayup.cpio.gz"), &images.join("stayup.cpio.gz"));
    let opts = QemuOptions {
        image_paths: vec![images.clone()],
        ..QemuOptions::default()
    };
    let driver = QemuDriver::new(runtime(&tmp.0, caps), opts);
    let mut spec = spec(&tmp.0, &alloc_id("vm"), "stayup", "qemu", Value::Null);
    spec.task.config = config(&[
        ("kernel", s(&images.join("vmlinuz").to_string_lossy())),
        (
            "initrd",
            s(&images.join("stayup.cpio.gz").to_string_lossy()),
        ),
        ("append", s("console=ttyS0 panic=-1 quiet")),
        ("graceful_shutdown", Value::Bool(true)),
    ]);
    spec.resources.memory_mb = 128;
    let started = driver.start(&spec).unwrap();
    // The monitor lives in the root-only state directory, not where the
    // task could replace it.
    let socket = started.handle.qmp_socket.clone().expect("a monitor socket");
    assert!(socket.starts_with(&started.handle.state_dir), "{socket}");
    let log = stdout_log(&spec);
    wait_for_text(&log, "WREN-VM-READY", Duration::from_secs(180));
    let kill_timeout = Duration::from_secs(120);
    let t0 = Instant::now();
    let exit = block_on(driver.stop(&started.handle, "SIGINT", kill_timeout)).unwrap();
    let took = t0.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    driver.destroy(&started.handle).unwrap();
    // Powered off by the guest, not killed by the timeout.
    assert!(exit.successful(), "{exit:?}\n{text}");
    assert!(took < kill_timeout, "{took:?}");
    assert!(
        text.contains("WREN-VM-POWERDOWN shutting down cleanly"),
        "{text}"
    );
}

#[test]
fn qemu_config_is_validated_before_anything_starts() {
    let tmp = TempDir::new("qemu-validate");
    let driver = QemuDriver::new(
        runtime(&tmp.0, wren_runtimes::host::HostCaps::default()),
        QemuOptions::default(),
    );
    let mut spec = spec(
        &tmp.0,
        &alloc_id("vm"),
        "bad",
        "qemu",
        config(&[("image_path", s("/etc/shadow"))]),
    );
    let err = driver.validate_config(&spec.task).unwrap_err();
    assert_eq!(err.key, "image_path");
    assert!(driver.start(&spec).is_err());
    spec.task.config = config(&[
        ("image_path", s("disk.img")),
        ("args", Value::List(vec![s("-device"), s("vfio-pci")])),
    ]);
    let err = driver.validate_config(&spec.task).unwrap_err();
    assert!(
        err.message.contains("allows no extra qemu arguments"),
        "{err}"
    );
}
