//! The running kernel's answers.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

use super::{
    Emulator, Interface, IpNet, Namespace, ProbeError, Probes, Storage, parse_qemu_version,
};
use crate::sys;

/// How long `qemu-system-* --version` may take before it is killed.
const QEMU_TIMEOUT: Duration = Duration::from_secs(5);
/// Most output read from `--version`.
const QEMU_OUTPUT_LIMIT: u64 = 64 * 1024;

/// Identifies a file's contents cheaply: if none of these changed, the
/// program is the same and its version need not be asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

/// A `PATH` directory and its modification time (seconds, nanoseconds).
type DirStamp = (PathBuf, Option<(i64, i64)>);

/// Asks the running kernel. Landlock's ABI (fixed until reboot) and each
/// emulator's version (until the binary changes) are cached, so a kept
/// [`HostProbes`] makes re-fingerprinting cheap.
#[derive(Default)]
pub struct HostProbes {
    landlock: Option<Result<u32, ProbeError>>,
    /// The last `PATH` scan, valid while no `PATH` directory's
    /// modification time changes (adding or removing a program changes it).
    emulators: Option<(Vec<DirStamp>, Vec<Emulator>)>,
    versions: HashMap<PathBuf, (FileStamp, Result<String, ProbeError>)>,
    networks: Option<sysinfo::Networks>,
    /// Where emulator versions are kept across processes, if anywhere.
    version_file: Option<PathBuf>,
}

impl fmt::Debug for HostProbes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostProbes")
            .field("landlock", &self.landlock)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl HostProbes {
    /// Probes with empty caches.
    pub fn new() -> HostProbes {
        HostProbes::default()
    }

    /// Probes that also keep emulator versions in `file`, so that a new
    /// process (an agent restart, `wren node fingerprint`) does not start
    /// QEMU again (about 20 ms) to learn what it already knew. An entry is
    /// used only while the binary's device, inode, size and modification
    /// time are unchanged; a missing or unreadable file is an empty cache.
    pub fn with_version_file(file: impl Into<PathBuf>) -> HostProbes {
        let file = file.into();
        let mut probes = HostProbes {
            version_file: Some(file.clone()),
            ..HostProbes::default()
        };
        if let Ok(text) = fs::read_to_string(&file) {
            for (path, stamp, version) in text.lines().filter_map(parse_version_line) {
                probes.versions.insert(path, (stamp, Ok(version)));
            }
        }
        probes
    }

    fn save_versions(&self) {
        let Some(file) = &self.version_file else {
            return;
        };
        let mut text = String::new();
        for (path, (s, version)) in &self.versions {
            if let (Ok(v), Some(p)) = (version, path.to_str())
                && !p.contains('\t')
                && !p.contains('\n')
            {
                text.push_str(&format!(
                    "{p}\t{}\t{}\t{}\t{}\t{}\t{v}\n",
                    s.dev, s.ino, s.size, s.mtime, s.mtime_nsec
                ));
            }
        }
        // A cache: failing to write it costs the next process 20 ms, nothing
        // more, so errors are ignored. Write-then-rename keeps it whole.
        let tmp = file.with_extension("tmp");
        if let Some(dir) = file.parent() {
            let _ = fs::create_dir_all(dir);
        }
        if fs::write(&tmp, text).is_ok() {
            let _ = fs::rename(&tmp, file);
        }
    }
}

/// One line of the version file: path, dev, ino, size, mtime, mtime_nsec,
/// version, tab-separated. Anything else is skipped.
fn parse_version_line(line: &str) -> Option<(PathBuf, FileStamp, String)> {
    let mut f = line.split('\t');
    let path = PathBuf::from(f.next()?);
    let stamp = FileStamp {
        dev: f.next()?.parse().ok()?,
        ino: f.next()?.parse().ok()?,
        size: f.next()?.parse().ok()?,
        mtime: f.next()?.parse().ok()?,
        mtime_nsec: f.next()?.parse().ok()?,
    };
    let version = f.next()?.to_owned();
    if version.is_empty() || f.next().is_some() {
        return None;
    }
    Some((path, stamp, version))
}

impl Probes for HostProbes {
    fn binary_arch(&self) -> String {
        let arch = std::env::consts::ARCH;
        if arch == "powerpc64" && cfg!(target_endian = "little") {
            return "powerpc64le".to_owned();
        }
        arch.to_owned()
    }

    fn kernel_arch(&self) -> String {
        nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn landlock_abi(&mut self) -> Result<u32, ProbeError> {
        self.landlock
            .get_or_insert_with(|| {
                sys::landlock_abi().map_err(|errno| ProbeError::Syscall {
                    call: "landlock_create_ruleset",
                    errno,
                })
            })
            .clone()
    }

    fn namespace(&mut self, kind: Namespace) -> Result<(), ProbeError> {
        let flags = match kind {
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
        };
        sys::can_clone(flags).map_err(|errno| ProbeError::Syscall {
            call: "clone",
            errno,
        })
    }

    fn kvm(&mut self, device: &Path) -> Result<i32, ProbeError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(device)
            .map_err(|e| ProbeError::Open {
                path: device.to_path_buf(),
                reason: e.to_string(),
            })?;
        let version = sys::kvm_api_version(&file).map_err(|errno| ProbeError::Syscall {
            call: "ioctl(KVM_GET_API_VERSION)",
            errno,
        })?;
        if version != 12 {
            return Err(ProbeError::KvmApi(version));
        }
        Ok(version)
    }

    fn qemu_emulators(&mut self) -> Vec<Emulator> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let stamps: Vec<DirStamp> = std::env::split_paths(&path)
            .map(|dir| {
                let mtime = fs::metadata(&dir).ok().map(|m| (m.mtime(), m.mtime_nsec()));
                (dir, mtime)
            })
            .collect();
        if let Some((cached, found)) = &self.emulators
            && *cached == stamps
        {
            return found.clone();
        }
        let found = emulators_on(stamps.iter().map(|(dir, _)| dir.clone()));
        self.emulators = Some((stamps, found.clone()));
        found
    }

    fn qemu_version(&mut self, emulator: &Emulator) -> Result<String, ProbeError> {
        let stamp = FileStamp::of(&emulator.path);
        if let (Some(stamp), Some((cached, version))) = (stamp, self.versions.get(&emulator.path))
            && stamp == *cached
        {
            return version.clone();
        }
        let version = run_version(&emulator.path);
        if let Some(stamp) = stamp {
            self.versions
                .insert(emulator.path.clone(), (stamp, version.clone()));
            if version.is_ok() {
                self.save_versions();
            }
        }
        version
    }

    fn interfaces(&mut self) -> Result<Vec<Interface>, ProbeError> {
        let networks = match &mut self.networks {
            Some(n) => {
                n.refresh(true);
                n
            }
            None => {
                let n =
                    sysinfo::Networks::new_with_refreshed_list().map_err(|e| ProbeError::Run {
                        path: "getifaddrs".into(),
                        reason: e.to_string(),
                    })?;
                self.networks.insert(n)
            }
        };
        let mut out: Vec<Interface> = networks
            .iter()
            .map(|(name, data)| Interface {
                name: name.to_string_lossy().into_owned(),
                addresses: data
                    .ip_networks()
                    .iter()
                    .map(|n| IpNet {
                        addr: n.addr,
                        prefix: n.prefix,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        for i in &mut out {
            i.addresses.sort();
        }
        Ok(out)
    }

    fn storage(&mut self, dir: &Path) -> Result<Storage, ProbeError> {
        let existing = dir
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        let st = nix::sys::statvfs::statvfs(existing).map_err(|errno| ProbeError::Syscall {
            call: "statvfs",
            errno,
        })?;
        // The counts are 32 bits wide on 32-bit targets (armv7): multiply
        // in 64 bits, or a disk over 4 GiB saturates.
        let frag = st.fragment_size() as u64;
        Ok(Storage {
            total_bytes: (st.blocks() as u64).saturating_mul(frag),
            free_bytes: (st.blocks_available() as u64).saturating_mul(frag),
        })
    }
}

/// The first executable `qemu-system-*` of each name along `dirs`.
fn emulators_on(dirs: impl Iterator<Item = PathBuf>) -> Vec<Emulator> {
    let mut found: Vec<Emulator> = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("qemu-system-") || found.iter().any(|e| e.name == name) {
                continue;
            }
            let path = dir.join(&name);
            let executable = fs::metadata(&path)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if executable {
                found.push(Emulator { name, path });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Runs `path --version` with a deadline and parses the version.
fn run_version(path: &Path) -> Result<String, ProbeError> {
    let run_err = |reason: String| ProbeError::Run {
        path: path.to_path_buf(),
        reason,
    };
    let deadline = Instant::now() + QEMU_TIMEOUT;
    let mut child = loop {
        let spawned = Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => break child,
            // Being written right now (a package upgrade): try again shortly.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(run_err(e.to_string())),
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(run_err(format!("no answer within {QEMU_TIMEOUT:?}")));
            }
            Err(e) => return Err(run_err(e.to_string())),
        }
    };
    let mut output = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut buf = Vec::new();
        stdout
            .take(QEMU_OUTPUT_LIMIT)
            .read_to_end(&mut buf)
            .map_err(|e| run_err(e.to_string()))?;
        output = String::from_utf8_lossy(&buf).into_owned();
    }
    if !status.success() {
        return Err(run_err(format!("exited with {status}")));
    }
    parse_qemu_version(&output).ok_or_else(|| ProbeError::NoVersion {
        path: path.to_path_buf(),
        output: output
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulators_are_found_once_per_name_in_path_order() {
        let base = std::env::temp_dir().join(format!("wren-fp-emu-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        for (dir, name, mode) in [
            (&a, "qemu-system-aarch64", 0o755),
            (&b, "qemu-system-aarch64", 0o755),
            (&b, "qemu-system-x86_64", 0o755),
            (&b, "qemu-system-riscv64", 0o644),
            (&b, "qemu-img", 0o755),
        ] {
            let p = dir.join(name);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let found = emulators_on([a.clone(), b.clone(), base.join("missing")].into_iter());
        fs::remove_dir_all(&base).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|e| (e.name.as_str(), e.path.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("qemu-system-aarch64", a.join("qemu-system-aarch64")),
                ("qemu-system-x86_64", b.join("qemu-system-x86_64")),
            ]
        );
    }

    #[test]
    fn version_of_a_script_that_prints_qemu_banner() {
        let dir = std::env::temp_dir().join(format!("wren-fp-qv-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let good = dir.join("qemu-system-good");
        fs::write(
            &good,
            "#!/bin/sh\necho 'QEMU emulator version 9.1.0 (v9.1.0)'\n",
        )
        .unwrap();
        let bad = dir.join("qemu-system-bad");
        fs::write(&bad, "#!/bin/sh\necho nonsense\n").unwrap();
        let failing = dir.join("qemu-system-failing");
        fs::write(&failing, "#!/bin/sh\nexit 3\n").unwrap();
        for p in [&good, &bad, &failing] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut probes = HostProbes::new();
        let emu = |p: &PathBuf| Emulator {
            name: p.file_name().unwrap().to_string_lossy().into_owned(),
            path: p.clone(),
        };
        assert_eq!(probes.qemu_version(&emu(&good)), Ok("9.1.0".to_owned()));
        // Cached: the same answer again without running it.
        assert_eq!(probes.qemu_version(&emu(&good)), Ok("9.1.0".to_owned()));
        assert!(matches!(
            probes.qemu_version(&emu(&bad)),
            Err(ProbeError::NoVersion { .. })
        ));
        assert!(matches!(
            probes.qemu_version(&emu(&failing)),
            Err(ProbeError::Run { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn versions_persist_across_processes_until_the_binary_changes() {
        let dir = std::env::temp_dir().join(format!("wren-fp-qvf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let counter = dir.join("runs");
        let qemu = dir.join("qemu-system-counted");
        // Each run appends to `runs`, so the test sees how often QEMU was asked.
        fs::write(
            &qemu,
            format!(
                "#!/bin/sh\necho x >> {}\necho 'QEMU emulator version 10.0.2'\n",
                counter.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&qemu, fs::Permissions::from_mode(0o755)).unwrap();
        let cache = dir.join("cache/qemu-versions");
        let emu = Emulator {
            name: "qemu-system-counted".into(),
            path: qemu.clone(),
        };
        let runs = || fs::read_to_string(&counter).map_or(0, |t| t.lines().count());

        let mut first = HostProbes::with_version_file(&cache);
        assert_eq!(first.qemu_version(&emu), Ok("10.0.2".to_owned()));
        assert_eq!(runs(), 1);
        // A new process (new probes) reads the file instead of running QEMU.
        let mut second = HostProbes::with_version_file(&cache);
        assert_eq!(second.qemu_version(&emu), Ok("10.0.2".to_owned()));
        assert_eq!(runs(), 1);
        // An upgraded binary is asked again.
        fs::write(
            &qemu,
            "#!/bin/sh\necho 'QEMU emulator version 10.1.0 (upgraded)'\n",
        )
        .unwrap();
        let mut third = HostProbes::with_version_file(&cache);
        assert_eq!(third.qemu_version(&emu), Ok("10.1.0".to_owned()));
        // A garbled cache file is an empty cache, not an error.
        fs::write(&cache, "garbage\n\t\t\n/x\t1\t2\n").unwrap();
        let mut fourth = HostProbes::with_version_file(&cache);
        assert_eq!(fourth.qemu_version(&emu), Ok("10.1.0".to_owned()));
        fs::remove_dir_all(&dir).unwrap();
    }
}
