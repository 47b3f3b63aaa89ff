//! A recorded machine's answers, read from a fixture's `probes.json`.
//!
//! Every probe is recorded either as its value or as `{"error": "why"}`:
//!
//! ```json
//! {
//!   "binary_arch": "aarch64",
//!   "kernel_arch": "aarch64",
//!   "root": true,
//!   "landlock_abi": {"error": "landlock_create_ruleset failed: EOPNOTSUPP"},
//!   "namespaces": {"pid": true, "mount": true, "ipc": true},
//!   "kvm": 12,
//!   "qemu": [{"name": "qemu-system-aarch64", "path": "/usr/bin/qemu-system-aarch64",
//!             "version": "7.2.15"}],
//!   "interfaces": [{"name": "eth0", "addresses": ["192.168.1.23/24"]}],
//!   "storage": {"total_bytes": 31104958464, "free_bytes": 24003321856}
//! }
//! ```
//!
//! A probe left out answers with [`ProbeError::NotRecorded`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Emulator, Interface, Namespace, ProbeError, Probes, Storage};
use crate::read::{SMALL, read_bounded};

/// Why a fixture's `probes.json` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] crate::read::ReadError),
    /// The file is missing.
    #[error("{0} is missing")]
    Missing(PathBuf),
    /// The file is not the JSON described in the crate docs.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
}

/// One recorded answer: the value, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer<T> {
    /// The probe failed; the text says why.
    Error {
        /// Why.
        error: String,
    },
    /// The probe's value.
    Value(T),
}

impl<T: Clone> Answer<T> {
    fn get(&self) -> Result<T, ProbeError> {
        match self {
            Answer::Value(v) => Ok(v.clone()),
            Answer::Error { error } => Err(ProbeError::Recorded(error.clone())),
        }
    }
}

impl<T> From<Result<T, ProbeError>> for Answer<T> {
    fn from(r: Result<T, ProbeError>) -> Answer<T> {
        match r {
            Ok(v) => Answer::Value(v),
            Err(e) => Answer::Error {
                error: e.to_string(),
            },
        }
    }
}

/// A recorded QEMU emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEmulator {
    /// File name, `qemu-system-*`.
    pub name: String,
    /// Where it was.
    pub path: PathBuf,
    /// What `--version` said, when it was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Answer<String>>,
}

/// The contents of `probes.json`: what one machine's probes answered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeAnswers {
    /// [`Probes::binary_arch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_arch: Option<String>,
    /// [`Probes::kernel_arch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_arch: Option<String>,
    /// [`Probes::is_root`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<bool>,
    /// [`Probes::landlock_abi`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<Answer<u32>>,
    /// [`Probes::namespace`], by [`Namespace::name`]; `false` without a
    /// reason is allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, Answer<bool>>,
    /// [`Probes::kvm`]: the API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm: Option<Answer<i32>>,
    /// [`Probes::qemu_emulators`] and [`Probes::qemu_version`].
    #[serde(default)]
    pub qemu: Vec<RecordedEmulator>,
    /// [`Probes::interfaces`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Answer<Vec<Interface>>>,
    /// [`Probes::storage`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Answer<Storage>>,
}

impl ProbeAnswers {
    /// Asks `probes` everything and records the answers, e.g. to capture
    /// this machine as a fixture.
    pub fn record(probes: &mut dyn Probes, kvm_device: &Path, data_dir: &Path) -> ProbeAnswers {
        let mut namespaces = BTreeMap::new();
        for kind in Namespace::ALL {
            namespaces.insert(
                kind.name().to_owned(),
                probes.namespace(kind).map(|()| true).into(),
            );
        }
        let qemu = probes
            .qemu_emulators()
            .into_iter()
            .map(|e| RecordedEmulator {
                version: Some(probes.qemu_version(&e).into()),
                name: e.name,
                path: e.path,
            })
            .collect();
        ProbeAnswers {
            binary_arch: Some(probes.binary_arch()),
            kernel_arch: Some(probes.kernel_arch()),
            root: Some(probes.is_root()),
            landlock_abi: Some(probes.landlock_abi().into()),
            namespaces,
            kvm: Some(probes.kvm(kvm_device).into()),
            qemu,
            interfaces: Some(probes.interfaces().into()),
            storage: Some(probes.storage(data_dir).into()),
        }
    }
}

/// Replays a fixture's `probes.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FixtureProbes {
    answers: ProbeAnswers,
}

impl FixtureProbes {
    /// Replays `answers`.
    pub fn new(answers: ProbeAnswers) -> FixtureProbes {
        FixtureProbes { answers }
    }

    /// Loads `probes.json` from `path`.
    pub fn load(path: &Path) -> Result<FixtureProbes, FixtureError> {
        let text =
            read_bounded(path, SMALL)?.ok_or_else(|| FixtureError::Missing(path.to_path_buf()))?;
        let answers = serde_json::from_str(&text).map_err(|source| FixtureError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FixtureProbes { answers })
    }

    /// The recorded answers.
    pub fn answers(&self) -> &ProbeAnswers {
        &self.answers
    }
}

fn recorded<T: Clone>(answer: &Option<Answer<T>>, what: &str) -> Result<T, ProbeError> {
    answer
        .as_ref()
        .ok_or_else(|| ProbeError::NotRecorded(what.to_owned()))?
        .get()
}

impl Probes for FixtureProbes {
    fn binary_arch(&self) -> String {
        self.answers.binary_arch.clone().unwrap_or_default()
    }

    fn kernel_arch(&self) -> String {
        self.answers.kernel_arch.clone().unwrap_or_default()
    }

    fn is_root(&self) -> bool {
        self.answers.root.unwrap_or(false)
    }

    fn landlock_abi(&mut self) -> Result<u32, ProbeError> {
        recorded(&self.answers.landlock_abi, "landlock_abi")
    }

    fn namespace(&mut self, kind: Namespace) -> Result<(), ProbeError> {
        let answer = self.answers.namespaces.get(kind.name()).cloned();
        match recorded(&answer, &format!("namespaces.{kind}"))? {
            true => Ok(()),
            false => Err(ProbeError::Recorded(format!(
                "cannot create a {kind} namespace"
            ))),
        }
    }

    fn kvm(&mut self, _device: &Path) -> Result<i32, ProbeError> {
        recorded(&self.answers.kvm, "kvm")
    }

    fn qemu_emulators(&mut self) -> Vec<Emulator> {
        let mut found: Vec<Emulator> = self
            .answers
            .qemu
            .iter()
            .map(|e| Emulator {
                name: e.name.clone(),
                path: e.path.clone(),
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        found
    }

    fn qemu_version(&mut self, emulator: &Emulator) -> Result<String, ProbeError> {
        let e = self.answers.qemu.iter().find(|e| e.name == emulator.name);
        recorded(
            &e.and_then(|e| e.version.clone()),
            &format!("{} --version", emulator.name),
        )
    }

    fn interfaces(&mut self) -> Result<Vec<Interface>, ProbeError> {
        recorded(&self.answers.interfaces, "interfaces")
    }

    fn storage(&mut self, _dir: &Path) -> Result<Storage, ProbeError> {
        recorded(&self.answers.storage, "storage")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_values_and_errors() {
        let json = r#"{
            "binary_arch": "aarch64", "root": true,
            "landlock_abi": {"error": "landlock_create_ruleset failed: EOPNOTSUPP"},
            "namespaces": {"pid": true, "mount": false},
            "kvm": 12,
            "qemu": [{"name": "qemu-system-aarch64", "path": "/usr/bin/qemu-system-aarch64", "version": "7.2.15"}],
            "interfaces": [{"name": "eth0", "addresses": ["192.168.1.23/24"]}],
            "storage": {"total_bytes": 100, "free_bytes": 40}
        }"#;
        let mut p = FixtureProbes::new(serde_json::from_str(json).unwrap());
        assert_eq!(p.binary_arch(), "aarch64");
        assert!(p.is_root());
        assert!(
            matches!(p.landlock_abi(), Err(ProbeError::Recorded(r)) if r.contains("EOPNOTSUPP"))
        );
        assert_eq!(p.namespace(Namespace::Pid), Ok(()));
        assert!(p.namespace(Namespace::Mount).is_err());
        assert!(matches!(
            p.namespace(Namespace::Ipc),
            Err(ProbeError::NotRecorded(_))
        ));
        assert_eq!(p.kvm(Path::new("/dev/kvm")), Ok(12));
        let emus = p.qemu_emulators();
        assert_eq!(emus.len(), 1);
        assert_eq!(p.qemu_version(&emus[0]), Ok("7.2.15".into()));
        assert_eq!(p.interfaces().unwrap()[0].addresses[0].prefix, 24);
        assert_eq!(p.storage(Path::new("/x")).unwrap().free_bytes, 40);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<ProbeAnswers>(r#"{"landlock": 3}"#).is_err());
    }
}
