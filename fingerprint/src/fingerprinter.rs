//! One fingerprint pass, and the [`Fingerprinter`] that is kept between
//! passes so that re-fingerprinting (to notice a hot-plugged sensor) is
//! cheap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wren_model::NodeResources;

use crate::probe::{FixtureError, FixtureProbes, HostProbes, Probes};
use crate::read::Ctx;
use crate::{Fingerprint, Roots};
use crate::{board, cgroup, cpu, devices, drivers, isolation, mounts, network, os, storage};

const MIB: u64 = 1024 * 1024;
/// Nomad's default dynamic port range, until agent configuration says otherwise.
const MIN_DYNAMIC_PORT: u16 = 20000;
const MAX_DYNAMIC_PORT: u16 = 32000;

/// Reads a machine's facts; keep one and call [`Fingerprinter::fingerprint`]
/// periodically. Between calls it caches only what cannot change while
/// the machine runs (Landlock's ABI) or is costly and keyed on what would
/// change it (each QEMU binary's version, keyed on its inode, size and
/// modification time); files and devices are read afresh every time.
#[derive(Debug)]
pub struct Fingerprinter {
    roots: Roots,
    probes: Box<dyn Probes>,
    data_dir: PathBuf,
}

impl Fingerprinter {
    /// A fingerprinter reading under `roots` and asking `probes`;
    /// `data_dir` is where allocations will live (its file system is the
    /// node's disk), as the machine names it.
    pub fn new(
        roots: Roots,
        probes: Box<dyn Probes>,
        data_dir: impl Into<PathBuf>,
    ) -> Fingerprinter {
        Fingerprinter {
            roots,
            probes,
            data_dir: data_dir.into(),
        }
    }

    /// The running machine.
    pub fn host(data_dir: impl Into<PathBuf>) -> Fingerprinter {
        Fingerprinter::new(Roots::default(), Box::new(HostProbes::new()), data_dir)
    }

    /// This machine, keeping emulator versions in `version_file` across
    /// processes (see [`HostProbes::with_version_file`]): what the agent
    /// uses, so a restart fingerprints without starting QEMU.
    pub fn host_with_cache(
        data_dir: impl Into<PathBuf>,
        version_file: impl Into<PathBuf>,
    ) -> Fingerprinter {
        Fingerprinter::new(
            Roots::default(),
            Box::new(HostProbes::with_version_file(version_file)),
            data_dir,
        )
    }

    /// A fixture tree at `dir` (`proc/`, `sys/`, `dev/`, `etc/` and
    /// `probes.json`), as if it were a machine.
    pub fn fixture(
        dir: &Path,
        data_dir: impl Into<PathBuf>,
    ) -> Result<Fingerprinter, FixtureError> {
        let probes = FixtureProbes::load(&dir.join("probes.json"))?;
        Ok(Fingerprinter::new(
            Roots::under(dir),
            Box::new(probes),
            data_dir,
        ))
    }

    /// Where it reads.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// The data dir whose file system is measured.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Reads everything once. Never fails: what cannot be established is
    /// left out and explained in [`Fingerprint::warnings`].
    pub fn fingerprint(&mut self) -> Fingerprint {
        let mut ctx = Ctx::new(&self.roots);
        let probes = self.probes.as_mut();
        let mut attributes = BTreeMap::new();

        let cpu = cpu::fingerprint(&mut ctx, &probes.binary_arch(), &mut attributes);
        os::fingerprint(&mut ctx, &probes.kernel_arch(), &mut attributes);
        let memory = os::memory(&mut ctx, &mut attributes);
        let board = board::fingerprint(&mut ctx, &mut attributes);
        let mounts = mounts::read(&mut ctx);

        let interfaces = probes.interfaces().unwrap_or_else(|e| {
            ctx.warn("network", format!("cannot list interfaces: {e}"));
            Vec::new()
        });
        let networks = network::fingerprint(&mut ctx, &interfaces, &mut attributes);
        let disk_mb =
            storage::fingerprint(&mut ctx, probes, &mounts, &self.data_dir, &mut attributes);

        let cgroups = cgroup::fingerprint(&mut ctx, &mounts, &mut attributes);
        let iso = isolation::fingerprint(&mut ctx, probes, &mut attributes);
        let drivers = drivers::fingerprint(&mut ctx, probes, &cgroups, &iso, &mut attributes);
        let devices = devices::fingerprint(&mut ctx, &board, memory / MIB);

        Fingerprint {
            attributes,
            resources: NodeResources {
                cpu: cpu.total_mhz,
                cores: cpu.cores,
                memory_mb: memory / MIB,
                disk_mb,
                devices,
                networks,
                min_dynamic_port: MIN_DYNAMIC_PORT,
                max_dynamic_port: MAX_DYNAMIC_PORT,
            },
            drivers,
            warnings: ctx.into_warnings(),
        }
    }
}
