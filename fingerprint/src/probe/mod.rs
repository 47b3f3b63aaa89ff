//! The facts that come from syscalls rather than files: Landlock's ABI,
//! whether namespaces can be created, whether `/dev/kvm` answers, which
//! QEMU emulators are on `PATH`, the interface addresses, the data dir's
//! file system and who we run as.
//!
//! They sit behind [`Probes`] so that a fixture tree can say what its
//! machine would answer ([`FixtureProbes`], read from `probes.json`) while
//! the product asks the running kernel ([`HostProbes`]).

mod fixture;
mod host;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use fixture::{Answer, FixtureError, FixtureProbes, ProbeAnswers, RecordedEmulator};
pub use host::HostProbes;

/// Why a probe could not say yes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// A syscall failed.
    #[error("{call} failed: {errno}")]
    Syscall {
        /// The call, e.g. `landlock_create_ruleset`.
        call: &'static str,
        /// The error number.
        errno: nix::errno::Errno,
    },
    /// A file or device could not be opened.
    #[error("cannot open {path}: {reason}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// A program could not be run or did not finish.
    #[error("cannot run {path} --version: {reason}")]
    Run {
        /// The program.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A program ran but its output made no sense.
    #[error("{path} --version printed no version: {output:?}")]
    NoVersion {
        /// The program.
        path: PathBuf,
        /// The first line it printed.
        output: String,
    },
    /// `/dev/kvm` answered with an API version other than 12.
    #[error("/dev/kvm reports API version {0}, expected 12")]
    KvmApi(i32),
    /// The fixture's recorded answer was a failure.
    #[error("{0}")]
    Recorded(String),
    /// The fixture has no answer for this probe.
    #[error("the fixture's probes.json has no answer for {0}")]
    NotRecorded(String),
}

/// A namespace kind the exec driver puts tasks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// `CLONE_NEWPID`.
    Pid,
    /// `CLONE_NEWNS`.
    Mount,
    /// `CLONE_NEWIPC`.
    Ipc,
}

impl Namespace {
    /// Every kind, in attribute order.
    pub const ALL: [Namespace; 3] = [Namespace::Ipc, Namespace::Mount, Namespace::Pid];

    /// The name used in attributes and `probes.json`.
    pub fn name(self) -> &'static str {
        match self {
            Namespace::Pid => "pid",
            Namespace::Mount => "mount",
            Namespace::Ipc => "ipc",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `qemu-system-*` program found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emulator {
    /// Its file name, e.g. `qemu-system-aarch64`.
    pub name: String,
    /// Where it was found.
    pub path: PathBuf,
}

/// An address with its prefix length, e.g. `192.168.1.20/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNet {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl From<IpNet> for String {
    fn from(n: IpNet) -> String {
        n.to_string()
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;
    fn try_from(s: String) -> Result<IpNet, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s.as_str(), ""));
        let addr: IpAddr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?
        };
        Ok(IpNet { addr, prefix })
    }
}

/// A network interface and its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Its addresses.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

/// Size of the file system holding the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Total bytes.
    pub total_bytes: u64,
    /// Bytes available to unprivileged writers (what `df` calls Available).
    pub free_bytes: u64,
}

/// The syscall-level questions the fingerprinter asks. [`HostProbes`]
/// asks the running kernel; [`FixtureProbes`] replays what a recorded
/// machine answered. Implementations may cache answers that cannot change
/// while the machine runs, which is why the methods take `&mut self`.
pub trait Probes: fmt::Debug + Send {
    /// The architecture this binary was built for, in Rust's spelling
    /// (`x86_64`, `aarch64`, `arm`, ...; `powerpc64le` for little-endian
    /// powerpc64).
    fn binary_arch(&self) -> String;
    /// The kernel's machine name (`uname -m`: `x86_64`, `aarch64`,
    /// `armv7l`), used where `/proc/sys/kernel/arch` (Linux 6.1+) is absent.
    fn kernel_arch(&self) -> String;
    /// Whether we run with effective uid 0.
    fn is_root(&self) -> bool;
    /// Landlock's ABI version (`landlock_create_ruleset` with
    /// `LANDLOCK_CREATE_RULESET_VERSION`); an error says why there is none.
    fn landlock_abi(&mut self) -> Result<u32, ProbeError>;
    /// Whether a process in a new namespace of this kind can be created.
    fn namespace(&mut self, kind: Namespace) -> Result<(), ProbeError>;
    /// Opens the KVM device (`/dev/kvm` as mapped under the roots) and
    /// asks its API version.
    fn kvm(&mut self, device: &Path) -> Result<i32, ProbeError>;
    /// `qemu-system-*` programs on `PATH`, first one of each name, sorted.
    fn qemu_emulators(&mut self) -> Vec<Emulator>;
    /// The QEMU version one emulator reports, e.g. `10.0.2`.
    fn qemu_version(&mut self, emulator: &Emulator) -> Result<String, ProbeError>;
    /// Network interfaces with their addresses.
    fn interfaces(&mut self) -> Result<Vec<Interface>, ProbeError>;
    /// The file system holding `dir` (or its nearest existing ancestor).
    fn storage(&mut self, dir: &Path) -> Result<Storage, ProbeError>;
}

/// Parses `QEMU emulator version 10.0.2 (Debian ...)` into `10.0.2`.
pub(crate) fn parse_qemu_version(output: &str) -> Option<String> {
    let line = output
        .lines()
        .find(|l| l.contains("QEMU emulator version"))?;
    let rest = line.split("QEMU emulator version").nth(1)?.trim_start();
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.');
    (!version.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_version_lines() {
        assert_eq!(
            parse_qemu_version(
                "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright"
            ),
            Some("10.0.2".into())
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.15\n"),
            Some("7.2.15".into())
        );
        assert_eq!(parse_qemu_version("QEMU emulator version \n"), None);
        assert_eq!(parse_qemu_version("garbage"), None);
    }

    #[test]
    fn ipnet_round_trips_and_rejects_junk() {
        let n = IpNet::try_from("192.168.1.20/24".to_owned()).unwrap();
        assert_eq!(n.prefix, 24);
        assert_eq!(n.to_string(), "192.168.1.20/24");
        assert_eq!(IpNet::try_from("fe80::1".to_owned()).unwrap().prefix, 128);
        assert!(IpNet::try_from("10.0.0.1/33".to_owned()).is_err());
        assert!(IpNet::try_from("nonsense/8".to_owned()).is_err());
    }
}
