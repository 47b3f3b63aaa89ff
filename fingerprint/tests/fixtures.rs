//! Each fixture tree yields the attributes, resources, drivers and devices
//! its machine has.

mod common;

use common::{dump, fingerprint_fixture};
use wren_fingerprint::Fingerprint;
use wren_model::NodeDeviceResource;

fn assert_attrs(fp: &Fingerprint, expected: &[(&str, &str)]) {
    for (k, v) in expected {
        assert_eq!(fp.attr(k), Some(*v), "attribute {k}\n{}", dump(fp));
    }
}

fn assert_absent(fp: &Fingerprint, names: &[&str]) {
    for k in names {
        assert_eq!(
            fp.attr(k),
            None,
            "attribute {k} should be absent\n{}",
            dump(fp)
        );
    }
}

fn device<'a>(fp: &'a Fingerprint, id: &str) -> &'a NodeDeviceResource {
    fp.device(id).unwrap_or_else(|| {
        let ids: Vec<String> = fp.resources.devices.iter().map(|d| d.id()).collect();
        panic!("no device group {id}; have {ids:?}")
    })
}

fn device_ids(fp: &Fingerprint) -> Vec<String> {
    fp.resources.devices.iter().map(|d| d.id()).collect()
}

#[test]
fn raspberry_pi_4_with_memory_cgroup_off() {
    let fp = fingerprint_fixture("pi4");
    assert!(fp.warnings.is_empty(), "{}", dump(&fp));
    assert_attrs(
        &fp,
        &[
            ("cpu.arch", "arm64"),
            ("cpu.modelname", "Cortex-A72"),
            ("cpu.vendor", "ARM"),
            ("cpu.numcores", "4"),
            ("cpu.frequency", "1500"),
            ("cpu.totalcompute", "6000"),
            ("cpu.flags", "fp,asimd,evtstrm,crc32,cpuid"),
            ("memory.totalbytes", "3977654272"),
            ("kernel.name", "linux"),
            ("kernel.version", "6.6.51"),
            ("kernel.release", "6.6.51+rpt-rpi-v8"),
            ("kernel.arch", "aarch64"),
            ("os.name", "debian"),
            ("os.version", "12.8"),
            ("unique.hostname", "pi4-sensor-01"),
            ("unique.network.ip-address", "192.168.1.50"),
            ("unique.storage.volume", "/dev/mmcblk0p2"),
            ("unique.storage.bytestotal", "31109353472"),
            ("unique.storage.bytesfree", "24003321856"),
            ("board.model", "Raspberry Pi 4 Model B Rev 1.4"),
            ("board.vendor", "raspberrypi"),
            ("board.soc", "brcm,bcm2711"),
            ("unique.board.serial", "10000000a1b2c3d4"),
            ("cgroup.version", "v2"),
            ("cgroup.mountpoint", "/sys/fs/cgroup"),
            ("cgroup.controller.memory", "off"),
            ("cgroup.controller.cpu", "v2"),
            ("cgroup.controller.pids", "v2"),
            ("cgroup.controller.cpuset", "v2"),
            ("cgroup.controller.devices", "v2"),
            ("cgroup.controllers", "cpu,cpuset,devices,freezer,io,pids"),
            ("unique.cgroup.version", "v2"),
            ("landlock.abi", "0"),
            ("namespaces.pid", "true"),
            ("namespaces.mount", "true"),
            ("kvm.usable", "true"),
            ("driver.exec", "1"),
            ("driver.raw_exec", "1"),
        ],
    );
    assert_absent(&fp, &["driver.qemu", "driver.qemu.version"]);

    let r = &fp.resources;
    assert_eq!(
        (r.cpu, r.cores, r.memory_mb, r.disk_mb),
        (6000, 4, 3793, 22891)
    );
    assert_eq!(r.networks.len(), 1);
    assert_eq!(
        (r.networks[0].device.as_str(), r.networks[0].ip.as_str()),
        ("eth0", "192.168.1.50")
    );

    // The exec driver runs, but says what it cannot enforce and why.
    let exec = &fp.drivers["exec"];
    assert!(exec.detected && exec.healthy);
    assert!(
        exec.health_description.contains("cgroup_disable=memory"),
        "{}",
        exec.health_description
    );
    assert!(
        exec.health_description.contains("no Landlock"),
        "{}",
        exec.health_description
    );

    assert_eq!(
        device_ids(&fp),
        [
            "linux/gpio/gpiochip0",
            "linux/gpio/gpiochip1",
            "linux/i2c/i2c-1",
            "linux/i2c/i2c-20",
            "linux/spi/spidev0.0",
            "linux/spi/spidev0.1",
            "usb/camera/HD Pro Webcam C920",
            "usb/serial/FT232R USB UART",
        ]
    );
    let ftdi = device(&fp, "usb/serial/FT232R USB UART");
    assert!(ftdi.matches("serial") && ftdi.matches("usb/serial"));
    assert_eq!(ftdi.attributes["usb.vendor_id"], "0403");
    assert_eq!(ftdi.attributes["usb.product_id"], "6001");
    assert_eq!(ftdi.attributes["manufacturer"], "FTDI");
    assert_eq!(ftdi.attributes["driver"], "ftdi_sio");
    let inst = &ftdi.instances[0];
    assert_eq!(inst.id, "A50285BI");
    assert!(inst.healthy);
    assert_eq!(inst.paths, ["/dev/ttyUSB0"]);
    assert_eq!(inst.locality, "1-1.3");
    assert_eq!(
        inst.attributes["by_id"],
        "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    );

    let cam = device(&fp, "usb/camera/HD Pro Webcam C920");
    assert_eq!(cam.attributes["driver"], "uvcvideo");
    assert_eq!(
        cam.instances.len(),
        1,
        "codec and ISP nodes are not cameras"
    );
    assert_eq!(cam.instances[0].paths, ["/dev/video0", "/dev/video1"]);
    assert_eq!(cam.instances[0].id, "8A1C2E3F");

    let i2c = device(&fp, "linux/i2c/i2c-1");
    assert_eq!(i2c.attributes["adapter"], "bcm2835 (i2c@7e804000)");
    assert_eq!(i2c.instances[0].paths, ["/dev/i2c-1"]);
    assert_eq!(i2c.instances[0].locality, "fe804000.i2c");

    let spi = device(&fp, "linux/spi/spidev0.1");
    assert_eq!(
        (
            spi.attributes["bus"].as_str(),
            spi.attributes["chip_select"].as_str()
        ),
        ("0", "1")
    );
    assert_eq!(spi.instances[0].locality, "spi0.1");

    let gpio = device(&fp, "linux/gpio/gpiochip0");
    assert_eq!(gpio.attributes["label"], "pinctrl-bcm2711");
    assert_eq!(gpio.attributes["lines"], "58");
    assert_eq!(gpio.instances[0].paths, ["/dev/gpiochip0"]);
    assert_eq!(
        device(&fp, "linux/gpio/gpiochip1").attributes["label"],
        "raspberrypi-exp-gpio"
    );
}

#[test]
fn jetson_agx_orin_with_tegra_gpu() {
    let fp = fingerprint_fixture("jetson-agx-orin");
    assert!(fp.warnings.is_empty(), "{}", dump(&fp));
    assert_attrs(
        &fp,
        &[
            ("cpu.arch", "arm64"),
            ("cpu.modelname", "Cortex-A78AE"),
            ("cpu.numcores", "12"),
            ("cpu.frequency", "2201"),
            ("cpu.totalcompute", "26412"),
            ("kernel.version", "5.10.120"),
            ("kernel.release", "5.10.120-tegra"),
            // Linux 5.10 has no /proc/sys/kernel/arch: the uname probe answers.
            ("kernel.arch", "aarch64"),
            ("os.name", "ubuntu"),
            ("os.version", "20.04"),
            ("board.model", "Jetson AGX Orin Developer Kit"),
            ("board.vendor", "nvidia"),
            ("board.soc", "nvidia,tegra234"),
            ("cgroup.version", "hybrid"),
            ("cgroup.mountpoint", "/sys/fs/cgroup"),
            ("cgroup.controller.memory", "v1"),
            ("cgroup.controller.cpu", "v1"),
            ("unique.cgroup.version", "v1"),
            ("kvm.usable", "false"),
            ("driver.qemu", "1"),
            ("driver.qemu.version", "4.2.1"),
            ("driver.qemu.emulators", "aarch64,arm"),
            ("driver.qemu.accelerators", "tcg"),
            ("unique.network.ip-address", "10.0.0.31"),
        ],
    );
    assert_eq!(fp.drivers["qemu"].attributes["version"], "4.2.1");

    let gpu = device(&fp, "nvidia/gpu/ga10b");
    assert!(gpu.matches("gpu") && gpu.matches("nvidia/gpu"));
    assert_eq!(gpu.attributes["soc"], "tegra234");
    assert_eq!(gpu.attributes["architecture"], "ampere");
    assert_eq!(gpu.attributes["compute_capability"], "8.7");
    assert_eq!(gpu.attributes["integrated"], "true");
    assert_eq!(gpu.attributes["l4t_version"], "35.4.1");
    assert_eq!(gpu.attributes["memory"], "61890");
    let inst = &gpu.instances[0];
    assert!(inst.healthy, "{}", inst.health_description);
    assert_eq!(inst.id, "17000000.ga10b");
    for p in [
        "/dev/nvmap",
        "/dev/nvhost-ctrl-gpu",
        "/dev/nvhost-gpu",
        "/dev/nvgpu/igpu0/ctrl",
    ] {
        assert!(
            inst.paths.iter().any(|x| x == p),
            "{p} missing from {:?}",
            inst.paths
        );
    }
    // Engines that are not the GPU stay out.
    assert!(
        !inst
            .paths
            .iter()
            .any(|p| p.contains("nvdla") || p.contains("msenc"))
    );

    let cam = device(&fp, "linux/camera/vi-output, imx219 9-0010");
    assert_eq!(cam.instances[0].paths, ["/dev/video0"]);
    let ths = device(&fp, "linux/serial/ttyTHS0");
    assert!(ths.instances[0].healthy);
    assert_eq!(ths.attributes["driver"], "serial-tegra");
    let tcu = device(&fp, "linux/serial/ttyTCU0");
    assert!(!tcu.instances[0].healthy, "the console is never handed out");
    assert_eq!(
        device(&fp, "linux/gpio/gpiochip1").attributes["label"],
        "tegra234-gpio-aon"
    );
    assert!(fp.device("linux/i2c/i2c-7").is_some());
}

#[test]
fn x86_with_nvidia_and_intel_gpus_and_usb_serial() {
    let fp = fingerprint_fixture("x86-nvidia");
    assert!(fp.warnings.is_empty(), "{}", dump(&fp));
    assert_attrs(
        &fp,
        &[
            ("cpu.arch", "amd64"),
            ("cpu.modelname", "12th Gen Intel(R) Core(TM) i7-12700TE"),
            ("cpu.vendor", "GenuineIntel"),
            ("cpu.numcores", "20"),
            ("cpu.frequency", "4600"),
            // 16 P-core threads at 4600 plus 4 E-cores at 3400.
            ("cpu.totalcompute", "87200"),
            ("kernel.version", "5.15.0"),
            ("kernel.release", "5.15.0-105-generic"),
            ("kernel.arch", "x86_64"),
            ("os.name", "ubuntu"),
            ("os.version", "22.04"),
            ("board.vendor", "OnLogic"),
            ("board.model", "Karbon 803"),
            ("cgroup.version", "v2"),
            ("cgroup.controller.memory", "v2"),
            ("landlock.abi", "1"),
            ("kvm.usable", "true"),
            ("driver.qemu.version", "6.2.0"),
            ("driver.qemu.accelerators", "kvm,tcg"),
            ("unique.network.ip-address", "10.20.0.15"),
            ("unique.storage.volume", "/dev/sda1"),
        ],
    );
    // A DMI placeholder is not a serial number.
    assert_absent(&fp, &["unique.board.serial", "board.soc"]);
    assert!(
        fp.attr("cpu.flags")
            .unwrap_or("")
            .split(',')
            .any(|f| f == "avx2")
    );
    assert_eq!(fp.drivers["exec"].health_description, "healthy");

    let nv = device(&fp, "nvidia/gpu/NVIDIA RTX A2000");
    assert_eq!(nv.attributes["driver_version"], "535.183.01");
    assert_eq!(nv.attributes["pci.device_id"], "2531");
    let inst = &nv.instances[0];
    assert_eq!(inst.id, "GPU-5f3e2d1c-0b9a-4c8d-8e7f-6a5b4c3d2e1f");
    assert_eq!(inst.locality, "0000:01:00.0");
    assert!(inst.healthy);
    assert_eq!(
        inst.paths,
        [
            "/dev/nvidia0",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools",
            "/dev/nvidia-modeset",
            "/dev/dri/card1",
            "/dev/dri/renderD129"
        ]
    );
    let intel = device(&fp, "intel/gpu/0x4680");
    assert_eq!(intel.attributes["driver"], "i915");
    assert_eq!(
        intel.instances[0].paths,
        ["/dev/dri/card0", "/dev/dri/renderD128"]
    );

    // Two identical CP2102s with the same serial: one group, told apart by port.
    let cp = device(&fp, "usb/serial/CP2102 USB to UART Bridge Controller");
    let ids: Vec<&str> = cp.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["0001@1-2:1.0", "0001@1-3:1.0"]);
    assert_eq!(cp.attributes["driver"], "cp210x");
    // No product string: the group is named by its ids.
    let uno = device(&fp, "usb/serial/2341:0043");
    assert_eq!(uno.attributes["driver"], "cdc_acm");
    assert_eq!(uno.instances[0].paths, ["/dev/ttyACM0"]);
    // ttyS0 has a UART; ttyS1-3 are placeholders (type 0).
    assert!(fp.device("linux/serial/ttyS0").is_some());
    assert!(fp.device("linux/serial/ttyS1").is_none());
    // The Matrox-less board has no other display devices; audio and NIC are not GPUs.
    assert_eq!(
        fp.resources
            .devices
            .iter()
            .filter(|d| d.device_type == "gpu")
            .count(),
        2
    );
}

#[test]
fn build_machine_capture() {
    let fp = fingerprint_fixture("build-machine");
    assert!(fp.warnings.is_empty(), "{}", dump(&fp));
    assert_attrs(
        &fp,
        &[
            ("cpu.arch", "amd64"),
            ("cpu.modelname", "AMD EPYC"),
            ("cpu.vendor", "AuthenticAMD"),
            ("cpu.numcores", "2"),
            ("cpu.frequency", "2596"),
            ("cpu.totalcompute", "5192"),
            ("kernel.version", "6.18.44"),
            ("os.name", "debian"),
            ("cgroup.version", "hybrid"),
            ("cgroup.controller.memory", "v1"),
            ("cgroup.controller.hugetlb", "v2"),
            ("landlock.abi", "7"),
            ("kvm.usable", "true"),
            ("driver.qemu.version", "10.0.2"),
        ],
    );
    assert_absent(&fp, &["board.model", "board.vendor"]);
    // The only serial port is the kernel console.
    assert_eq!(device_ids(&fp), ["linux/serial/ttyS0"]);
    assert!(!device(&fp, "linux/serial/ttyS0").instances[0].healthy);
}

#[test]
fn garbled_tree_gives_a_partial_fingerprint_with_warnings() {
    let fp = fingerprint_fixture("garbled");
    let text = dump(&fp);
    // What could be read is there.
    assert_eq!(fp.attr("cpu.arch"), Some("arm64"), "{text}");
    assert_eq!(fp.attr("board.vendor"), Some("nvidia"), "{text}");
    assert_eq!(fp.attr("cgroup.version"), Some("none"), "{text}");
    // What could not be read is absent, and each problem is explained.
    assert_absent(
        &fp,
        &[
            "cpu.numcores",
            "memory.totalbytes",
            "kernel.name",
            "kernel.version",
            "unique.hostname",
            "os.name",
        ],
    );
    for needle in [
        "no processor entries",
        "is not a CPU list",
        "ostype is missing",
        "osrelease is not a regular file",
        "hostname: Too many levels of symbolic links",
        "os-release: Too many levels of symbolic links",
        "no MemTotal",
        "getifaddrs failed",
        "0xzzzz",
        "ttyUSB0: Too many levels of symbolic links",
        "i2c-1 is not a directory",
        "video0 has no name",
        "no answer for storage",
    ] {
        assert!(
            fp.warnings.iter().any(|w| w.message.contains(needle)),
            "no warning about {needle:?}\n{text}"
        );
    }
    // Junk compatible entries are dropped, not turned into attributes.
    assert_eq!(fp.attr("board.soc"), Some("nvidia,tegra999"));
    assert!(fp.drivers.get("qemu").is_some_and(|q| !q.healthy));
    let (cpu, cores, mem) = (fp.resources.cpu, fp.resources.cores, fp.resources.memory_mb);
    assert_eq!((cpu, cores, mem), (0, 0, 0));
}

/// An AMD card added to a copy of the x86 box: VRAM and product name from
/// amdgpu's sysfs files, `/dev/kfd` for compute; and a second one with no
/// driver bound, which is reported but unhealthy.
#[test]
fn amd_gpus_come_from_pci_and_drm() {
    use std::fs;
    use std::os::unix::fs::symlink;

    let dir = common::TempDir::new("amd");
    let root = dir.path();
    common::copy_tree(&common::fixture("x86-nvidia"), root);
    let write = |rel: &str, s: &str| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    };
    for (bdf, bound) in [("0000:04:00.0", true), ("0000:05:00.0", false)] {
        let dev = format!("sys/devices/pci0000:00/0000:00:06.0/{bdf}");
        write(&format!("{dev}/class"), "0x030000\n");
        write(&format!("{dev}/vendor"), "0x1002\n");
        write(&format!("{dev}/device"), "0x6422\n");
        write(&format!("{dev}/mem_info_vram_total"), "4278190080\n");
        write(&format!("{dev}/product_name"), "AMD Radeon PRO W6400\n");
        symlink(
            format!("../../../{}", dev.trim_start_matches("sys/")),
            root.join(format!("sys/bus/pci/devices/{bdf}")),
        )
        .unwrap();
        if bound {
            fs::create_dir_all(root.join("sys/bus/pci/drivers/amdgpu")).unwrap();
            symlink(
                "../../../../bus/pci/drivers/amdgpu",
                root.join(format!("{dev}/driver")),
            )
            .unwrap();
            for n in ["card2", "renderD130"] {
                fs::create_dir_all(root.join(format!("{dev}/drm/{n}"))).unwrap();
                write(&format!("dev/dri/{n}"), "");
            }
        }
    }
    write("dev/kfd", "");

    let fp = wren_fingerprint::Fingerprinter::fixture(root, "/var/lib/wren")
        .unwrap()
        .fingerprint();
    assert!(fp.warnings.is_empty(), "{}", dump(&fp));
    let amd = device(&fp, "amd/gpu/AMD Radeon PRO W6400");
    assert_eq!(amd.attributes["memory"], "4080");
    assert_eq!(amd.attributes["pci.device_id"], "6422");
    assert!(
        !amd.attributes.contains_key("driver"),
        "not shared by both cards"
    );
    let [bound, unbound] = &amd.instances[..] else {
        panic!("{:?}", amd.instances)
    };
    assert_eq!(bound.id, "0000:04:00.0");
    assert!(bound.healthy);
    assert_eq!(
        bound.paths,
        ["/dev/dri/card2", "/dev/dri/renderD130", "/dev/kfd"]
    );
    assert_eq!(unbound.id, "0000:05:00.0");
    assert!(!unbound.healthy);
    assert_eq!(unbound.health_description, "no kernel driver is bound");
}

/// Git drops empty directories, so a fixture that relies on one works in
/// the tree it was made in and breaks in a fresh clone. Each needs a
/// `.gitkeep`.
#[test]
fn no_fixture_directory_is_empty() {
    fn walk(dir: &std::path::Path, empty: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut any = false;
        for e in entries.flatten() {
            any = true;
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, empty);
            }
        }
        if !any {
            empty.push(dir.to_path_buf());
        }
    }
    let mut empty = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"),
        &mut empty,
    );
    assert!(empty.is_empty(), "add a .gitkeep to: {empty:#?}");
}
