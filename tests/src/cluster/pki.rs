//! A test region's certificates, made by the real CLI as an operator
//! would: `wren tls ca create`, then `wren tls cert create --server |
//! --client | --cli --region R --ca CA --key KEY [--additional-ipaddress
//! IP]...`. Every `wren tls` invocation the harness makes is in this file,
//! so a change of the CLI's spelling is a change here only.
//!
//! The CLI writes into its working directory and never overwrites, so each
//! certificate is made in a fresh directory of its own and found there by
//! shape (the `*-key.pem` file and the other `*.pem`), not by a guessed
//! name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{self, CmdError};

/// What a certificate is for (the role in its SAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `server.<region>.wren`.
    Server,
    /// `client.<region>.wren`.
    Client,
    /// `cli.<region>.wren`.
    Cli,
}

impl Role {
    fn flag(self) -> &'static str {
        match self {
            Role::Server => "--server",
            Role::Client => "--client",
            Role::Cli => "--cli",
        }
    }
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The CLI failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// A directory could not be made or read.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The CLI succeeded but the files are not there.
    #[error("`wren tls` left no {what} in {dir}")]
    Missing {
        /// What was expected.
        what: &'static str,
        /// Where.
        dir: PathBuf,
    },
}

/// A certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM key.
    pub key: PathBuf,
}

/// A region's CA, able to issue certificates.
#[derive(Debug, Clone)]
pub struct Pki {
    bin: PathBuf,
    dir: PathBuf,
    region: String,
    /// The CA certificate (every agent's and CLI's `ca_file`).
    pub ca: CertPair,
}

impl Pki {
    /// Makes a CA under `dir/ca` with `wren tls ca create`.
    pub fn create(bin: &Path, dir: &Path, region: &str) -> Result<Pki, PkiError> {
        let ca_dir = fresh_dir(&dir.join("ca"))?;
        cmd::run(
            Command::new(bin)
                .args(["tls", "ca", "create"])
                .current_dir(&ca_dir),
        )?;
        Ok(Pki {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            region: region.to_owned(),
            ca: find_pair(&ca_dir, "CA certificate")?,
        })
    }

    /// Issues a certificate for `role` under `dir/<name>`, valid also for
    /// the given IP addresses.
    pub fn issue(&self, role: Role, name: &str, ips: &[IpAddr]) -> Result<CertPair, PkiError> {
        let out = fresh_dir(&self.dir.join(name))?;
        let mut c = Command::new(&self.bin);
        c.args([
            "tls",
            "cert",
            "create",
            role.flag(),
            "--region",
            &self.region,
        ])
        .arg("--ca")
        .arg(&self.ca.cert)
        .arg("--key")
        .arg(&self.ca.key)
        .current_dir(&out);
        for ip in ips {
            c.arg("--additional-ipaddress").arg(ip.to_string());
        }
        cmd::run(&mut c)?;
        find_pair(&out, "certificate")
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }
}

fn fresh_dir(path: &Path) -> Result<PathBuf, PkiError> {
    std::fs::create_dir_all(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(path.to_owned())
}

/// The one `*-key.pem` and the one other `*.pem` in `dir`.
fn find_pair(dir: &Path, what: &'static str) -> Result<CertPair, PkiError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (mut cert, mut key) = (None, None);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("-key.pem") {
            key = Some(e.path());
        } else if name.ends_with(".pem") {
            cert = Some(e.path());
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(CertPair { cert, key }),
        _ => Err(PkiError::Missing {
            what,
            dir: dir.to_owned(),
        }),
    }
}
