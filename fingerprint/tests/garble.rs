//! Garbled trees: files replaced by FIFOs, endless or huge files, junk,
//! directories, loops and unreadable files give a partial fingerprint with
//! warnings; never a panic, never a hang. A proptest garbles random files
//! of every fixture.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::{TempDir, copy_tree, files_under, fixture};
use proptest::prelude::*;
use wren_fingerprint::{Fingerprint, Fingerprinter};

/// Fingerprints `root` on another thread and fails if it takes longer than
/// a generous deadline (a blocking read would otherwise hang the suite).
fn fingerprint_within_deadline(root: &Path) -> Fingerprint {
    let (tx, rx) = mpsc::channel();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        let fp = Fingerprinter::fixture(&root, "/var/lib/wren").map(|mut f| f.fingerprint());
        let _ = tx.send(fp.map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(fp)) => fp,
        Ok(Err(e)) => panic!("fixture did not load: {e}"),
        Err(_) => panic!("fingerprint did not finish: a read blocked or panicked"),
    }
}

fn replace(path: &Path) {
    if let Ok(m) = fs::symlink_metadata(path) {
        if m.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
    }
}

fn has_warning(fp: &Fingerprint, needle: &str) -> bool {
    fp.warnings.iter().any(|w| w.message.contains(needle))
}

#[test]
fn hostile_files_do_not_block_or_exhaust() {
    let dir = TempDir::new("hostile");
    let root = dir.path();
    copy_tree(&fixture("pi4"), root);
    // A FIFO where cpuinfo should be: opening it for reading would block.
    replace(&root.join("proc/cpuinfo"));
    nix::unistd::mkfifo(
        &root.join("proc/cpuinfo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    // An endless file where meminfo should be.
    replace(&root.join("proc/meminfo"));
    symlink("/dev/zero", root.join("proc/meminfo")).unwrap();
    // A mount table larger than any kernel writes.
    fs::write(root.join("proc/self/mounts"), vec![b'x'; 9 << 20]).unwrap();
    // Not UTF-8.
    fs::write(
        root.join("sys/devices/system/cpu/online"),
        [0xff, 0xfe, b'0', b'-', 0xc3],
    )
    .unwrap();
    // A device's driver link pointing at itself, a class entry looping to its directory.
    let ttyusb = root.join("sys/class/tty/ttyUSB0/device/driver");
    replace(&ttyusb);
    symlink("driver", &ttyusb).unwrap();
    symlink(".", root.join("sys/class/tty/ttyLOOP")).unwrap();
    // os-release unreadable (root reads it anyway; others get EACCES).
    fs::set_permissions(
        root.join("etc/os-release"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    let fp = fingerprint_within_deadline(root);
    assert!(
        has_warning(&fp, "cpuinfo is not a regular file"),
        "{:?}",
        fp.warnings
    );
    assert!(
        has_warning(&fp, "meminfo is not a regular file"),
        "{:?}",
        fp.warnings
    );
    assert!(
        has_warning(&fp, "mounts is larger than"),
        "{:?}",
        fp.warnings
    );
    assert!(has_warning(&fp, "is not a CPU list"), "{:?}", fp.warnings);
    assert_eq!(fp.attr("memory.totalbytes"), None);
    // Without a mount table there is no cgroup hierarchy to speak of.
    assert_eq!(fp.attr("cgroup.version"), Some("none"));
    if nix::unistd::geteuid().is_root() {
        assert_eq!(fp.attr("os.name"), Some("debian"));
    } else {
        assert!(has_warning(&fp, "os-release"), "{:?}", fp.warnings);
    }
    // The rest of the machine is still there, including the adapter.
    assert_eq!(fp.attr("kernel.release"), Some("6.6.51+rpt-rpi-v8"));
    assert_eq!(
        fp.attr("board.model"),
        Some("Raspberry Pi 4 Model B Rev 1.4")
    );
    let ftdi = fp
        .device("usb/serial/FT232R USB UART")
        .expect("adapter still found");
    assert!(!ftdi.attributes.contains_key("driver"));
    assert!(fp.device("linux/i2c/i2c-1").is_some());
}

/// Ways to break one file.
#[derive(Debug, Clone)]
enum Garble {
    Delete,
    Empty,
    Junk(Vec<u8>),
    Directory,
    SelfLoop,
    Dangling,
}

fn garble_strategy() -> impl Strategy<Value = Garble> {
    prop_oneof![
        Just(Garble::Delete),
        Just(Garble::Empty),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Garble::Junk),
        Just(Garble::Directory),
        Just(Garble::SelfLoop),
        Just(Garble::Dangling),
    ]
}

fn apply(root: &Path, rel: &Path, garble: &Garble) {
    let path = root.join(rel);
    if fs::symlink_metadata(&path).is_err() {
        return; // already removed with a garbled parent
    }
    replace(&path);
    match garble {
        Garble::Delete => {}
        Garble::Empty => fs::write(&path, b"").unwrap(),
        Garble::Junk(bytes) => fs::write(&path, bytes).unwrap(),
        Garble::Directory => fs::create_dir(&path).unwrap(),
        Garble::SelfLoop => symlink(path.file_name().unwrap(), &path).unwrap(),
        Garble::Dangling => symlink("does-not-exist", &path).unwrap(),
    }
}

/// Properties every fingerprint keeps, however broken its input.
fn assert_well_formed(fp: &Fingerprint) {
    for (k, v) in &fp.attributes {
        assert!(!k.is_empty());
        assert!(!v.chars().any(char::is_control), "{k}={v:?}");
    }
    for group in &fp.resources.devices {
        assert!(
            !group.name.is_empty() && !group.name.contains('/'),
            "{}",
            group.id()
        );
        let mut ids: Vec<&str> = group.instances.iter().map(|i| i.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            group.instances.len(),
            "duplicate ids in {}",
            group.id()
        );
        for inst in &group.instances {
            for p in &inst.paths {
                assert!(
                    p.starts_with("/dev/") && !p.split('/').any(|c| c == ".."),
                    "{p}"
                );
            }
        }
    }
    for w in &fp.warnings {
        assert!(!w.area.is_empty() && !w.message.is_empty());
    }
    // It still encodes for the wire and for people.
    let cbor = wren_model::codec::to_cbor(&fp.resources);
    let back: wren_model::NodeResources = wren_model::codec::from_cbor(&cbor).unwrap();
    assert_eq!(back, fp.resources);
    serde_json::to_string(fp).unwrap();
}

const FIXTURES: [&str; 4] = ["pi4", "jetson-agx-orin", "x86-nvidia", "build-machine"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_garbling_never_panics(
        which in 0..FIXTURES.len(),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), garble_strategy()), 1..8),
    ) {
        let name = FIXTURES[which];
        let dir = TempDir::new("prop");
        copy_tree(&fixture(name), dir.path());
        let files: Vec<PathBuf> = files_under(dir.path())
            .into_iter()
            .filter(|p| p != Path::new("probes.json"))
            .collect();
        for (index, garble) in &picks {
            let file: &PathBuf = index.get(&files);
            apply(dir.path(), file, garble);
        }
        let fp = fingerprint_within_deadline(dir.path());
        assert_well_formed(&fp);
        // The same broken tree gives the same answer twice.
        let again = fingerprint_within_deadline(dir.path());
        prop_assert_eq!(fp, again);
    }
}

#[test]
fn clean_fixtures_are_well_formed() {
    for name in FIXTURES.iter().chain(&["garbled"]) {
        assert_well_formed(&fingerprint_within_deadline(&fixture(name)));
    }
}
