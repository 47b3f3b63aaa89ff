//! A kept Fingerprinter notices a sensor plugged in and pulled out between
//! two passes.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{TempDir, copy_tree, fixture};
use wren_fingerprint::Fingerprinter;

const USB: &str =
    "sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1";

fn write(root: &Path, rel: &str, contents: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, contents).unwrap();
}

/// Plugs a second FT232R into port 1-1.2, as the kernel would show it.
fn plug_ftdi(root: &Path) {
    let dev = format!("{USB}/1-1.2");
    for (file, value) in [
        ("idVendor", "0403\n"),
        ("idProduct", "6001\n"),
        ("serial", "FT9XYZ12\n"),
        ("manufacturer", "FTDI\n"),
        ("product", "FT232R USB UART\n"),
    ] {
        write(root, &format!("{dev}/{file}"), value);
    }
    let port = format!("{dev}/1-1.2:1.0/ttyUSB1");
    write(
        root,
        &format!("{port}/tty/ttyUSB1/uevent"),
        "MAJOR=188\nMINOR=1\nDEVNAME=ttyUSB1\n",
    );
    symlink(
        "../../../ttyUSB1",
        root.join(format!("{port}/tty/ttyUSB1/device")),
    )
    .unwrap();
    symlink(
        "../../../../../../../../../../../../bus/usb-serial/drivers/ftdi_sio",
        root.join(format!("{port}/driver")),
    )
    .unwrap();
    symlink(
        format!(
            "../../{}/1-1.2:1.0/ttyUSB1/tty/ttyUSB1",
            dev.trim_start_matches("sys/")
        ),
        root.join("sys/class/tty/ttyUSB1"),
    )
    .unwrap();
    write(root, "dev/ttyUSB1", "");
}

fn unplug_ftdi(root: &Path) {
    fs::remove_file(root.join("sys/class/tty/ttyUSB1")).unwrap();
    fs::remove_dir_all(root.join(format!("{USB}/1-1.2"))).unwrap();
    fs::remove_file(root.join("dev/ttyUSB1")).unwrap();
}

fn serial_ids(fp: &wren_fingerprint::Fingerprint) -> Vec<String> {
    fp.device("usb/serial/FT232R USB UART")
        .map(|g| g.instances.iter().map(|i| i.id.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn plugged_and_unplugged_sensors_are_noticed() {
    let dir = TempDir::new("hotplug");
    copy_tree(&fixture("pi4"), dir.path());
    let mut fingerprinter = Fingerprinter::fixture(dir.path(), "/var/lib/wren").unwrap();

    let before = fingerprinter.fingerprint();
    assert_eq!(serial_ids(&before), ["A50285BI"]);
    assert!(!fingerprinter.fingerprint().changed_since(&before));

    plug_ftdi(dir.path());
    let plugged = fingerprinter.fingerprint();
    assert!(plugged.warnings.is_empty(), "{:?}", plugged.warnings);
    assert_eq!(serial_ids(&plugged), ["A50285BI", "FT9XYZ12"]);
    assert!(plugged.changed_since(&before));
    let new = plugged.device("usb/serial/FT232R USB UART").unwrap();
    assert_eq!(new.instances[1].paths, ["/dev/ttyUSB1"]);
    assert_eq!(new.instances[1].locality, "1-1.2");

    // The camera is pulled out at the same time.
    for v in ["video0", "video1"] {
        fs::remove_file(dir.path().join("sys/class/video4linux").join(v)).unwrap();
    }
    unplug_ftdi(dir.path());
    let after = fingerprinter.fingerprint();
    assert_eq!(serial_ids(&after), ["A50285BI"]);
    assert!(after.device("usb/camera/HD Pro Webcam C920").is_none());
    assert_eq!(after.attributes, before.attributes);
}

#[test]
fn a_node_missing_from_dev_makes_the_device_unhealthy() {
    let dir = TempDir::new("devnode");
    copy_tree(&fixture("pi4"), dir.path());
    fs::remove_file(dir.path().join("dev/ttyUSB0")).unwrap();
    let fp = Fingerprinter::fixture(dir.path(), "/var/lib/wren")
        .unwrap()
        .fingerprint();
    let inst = &fp.device("usb/serial/FT232R USB UART").unwrap().instances[0];
    assert!(!inst.healthy);
    assert_eq!(
        inst.health_description,
        "device node /dev/ttyUSB0 is missing"
    );
}
