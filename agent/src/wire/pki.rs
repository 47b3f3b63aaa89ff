//! The region's certificate authority and the certificates it issues, as
//! `wren tls` (like `nomad tls`) writes them and the dev agent makes them
//! in code.
//!
//! Keys are ECDSA P-256. Server certificates carry `server.<region>.wren`,
//! `localhost` and `127.0.0.1` and may be used both to serve and to dial
//! other servers; client agent certificates carry `client.<region>.wren`
//! and the CLI's `cli.<region>.wren`. Extra names and addresses can be
//! added to any of them.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::identity::{IdentityError, Role, check_region};

/// Default CA lifetime, as Nomad's.
pub const DEFAULT_CA_DAYS: u32 = 1825;
/// Default certificate lifetime, as Nomad's.
pub const DEFAULT_CERT_DAYS: u32 = 365;
/// The CA certificate's file name.
pub const CA_CERT_FILE: &str = "wren-agent-ca.pem";
/// The CA key's file name.
pub const CA_KEY_FILE: &str = "wren-agent-ca-key.pem";

/// Why a CA or certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or the key.
    #[error("generating {what}: {source}")]
    Generate {
        /// What was being made.
        what: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// The CA certificate and key do not belong together.
    #[error("the CA key does not match the CA certificate")]
    KeyMismatch,
    /// The CA certificate does not parse or is not a CA.
    #[error("invalid CA certificate: {0}")]
    BadCa(String),
    /// A bad region name.
    #[error(transparent)]
    Region(#[from] IdentityError),
    /// A lifetime of zero days, or one too long to represent.
    #[error("invalid lifetime of {0} days")]
    BadDays(u32),
    /// A file already exists; nothing is overwritten.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPem {
    /// The certificate.
    pub cert: String,
    /// The PKCS#8 private key.
    pub key: String,
}

impl std::fmt::Debug for CertPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    /// The role it grants.
    pub role: Role,
    /// The region it belongs to.
    pub region: String,
    /// Lifetime in days.
    pub days: u32,
    /// Extra DNS names.
    pub dns_names: Vec<String>,
    /// Extra IP addresses.
    pub ip_addresses: Vec<IpAddr>,
}

impl CertRequest {
    /// A request with the default lifetime and no extra names.
    pub fn new(role: Role, region: impl Into<String>) -> CertRequest {
        CertRequest {
            role,
            region: region.into(),
            days: DEFAULT_CERT_DAYS,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// The file names `wren tls cert create` writes: `<region>-<role>-wren.pem`
    /// and `<region>-<role>-wren-key.pem`.
    pub fn file_names(&self) -> (String, String) {
        let base = format!("{}-{}-wren", self.region, self.role);
        (format!("{base}.pem"), format!("{base}-key.pem"))
    }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_owned(),
        source,
    }
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), PkiError> {
    if days == 0 || days > 100 * 366 {
        return Err(PkiError::BadDays(days));
    }
    let now = OffsetDateTime::now_utc();
    // A minute of slack for clocks that disagree a little.
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(())
}

/// Makes a new self-signed CA for a region (or several, as Nomad allows).
pub fn create_ca(days: u32) -> Result<CertPem, PkiError> {
    let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
    let mut params = CertificateParams::default();
    validity(&mut params, days)?;
    let id = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
    let short: String = id
        .as_ref()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("wren agent CA {short}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "wren");
    // No intermediates: the CA signs agent and CLI certificates directly.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(gen_err("the CA certificate"))?;
    Ok(CertPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Issues a certificate signed by `ca`.
pub fn create_cert(ca: &CertPem, req: &CertRequest) -> Result<CertPem, PkiError> {
    check_region(&req.region)?;
    let ca_key = KeyPair::from_pem(&ca.key).map_err(gen_err("the CA key"))?;
    check_ca(&ca.cert, &ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, &ca_key).map_err(gen_err("the CA"))?;

    let role_name = req.role.dns_name(&req.region);
    let mut sans = vec![SanType::DnsName(
        role_name
            .clone()
            .try_into()
            .map_err(gen_err("the role name"))?,
    )];
    let mut dns = req.dns_names.clone();
    let mut ips = req.ip_addresses.clone();
    if req.role == Role::Server {
        dns.insert(0, "localhost".to_owned());
        ips.insert(0, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    for name in dns {
        let san = SanType::DnsName(name.clone().try_into().map_err(gen_err(&name))?);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    for ip in ips {
        let san = SanType::IpAddress(ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }

    let mut params = CertificateParams::default();
    validity(&mut params, req.days)?;
    params.subject_alt_names = sans;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, role_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "wren");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match req.role {
        // Servers serve, and dial each other for Raft and plan forwarding.
        Role::Server | Role::Client => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Cli => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;

    let key = KeyPair::generate().map_err(gen_err("the certificate key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(gen_err("the certificate"))?;
    Ok(CertPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Checks that `cert_pem` is a CA certificate whose public key is `key`'s.
fn check_ca(cert_pem: &str, key: &KeyPair) -> Result<(), PkiError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| PkiError::BadCa(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::BadCa(e.to_string()))?;
    if !cert.is_ca() {
        return Err(PkiError::BadCa("it is not a CA certificate".to_owned()));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::KeyMismatch);
    }
    Ok(())
}

/// Reads a certificate and key pair from PEM files.
pub fn read_pair(cert: &Path, key: &Path) -> Result<CertPem, PkiError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| PkiError::Io {
            path: p.to_owned(),
            source,
        })
    };
    Ok(CertPem {
        cert: read(cert)?,
        key: read(key)?,
    })
}

/// Writes a pair as two new files in `dir` (the key readable by its owner
/// only); refuses to overwrite either. Returns the two paths.
pub fn write_pair(
    dir: &Path,
    pair: &CertPem,
    cert_name: &str,
    key_name: &str,
) -> Result<(PathBuf, PathBuf), PkiError> {
    let cert_path = dir.join(cert_name);
    let key_path = dir.join(key_name);
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    write_new(&key_path, pair.key.as_bytes(), 0o600)?;
    write_new(&cert_path, pair.cert.as_bytes(), 0o644)?;
    Ok((cert_path, key_path))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;
    use crate::wire::identity::identity_of;

    #[test]
    fn issued_certificates_name_their_role_and_region() {
        let ca = create_ca(30).unwrap();
        for role in Role::ALL {
            let mut req = CertRequest::new(role, "eu-1");
            req.dns_names.push("node1.example".into());
            let pair = create_cert(&ca, &req).unwrap();
            let der = CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap();
            assert_eq!(identity_of(&der).unwrap(), (role, "eu-1".to_owned()));
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            let names: Vec<String> = cert
                .subject_alternative_name()
                .unwrap()
                .unwrap()
                .value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect();
            let has_localhost = names.iter().any(|n| n.contains("localhost"));
            assert_eq!(has_localhost, role == Role::Server, "{names:?}");
            assert!(names.iter().any(|n| n.contains("node1.example")));
        }
        assert_eq!(
            CertRequest::new(Role::Cli, "global").file_names(),
            (
                "global-cli-wren.pem".into(),
                "global-cli-wren-key.pem".into()
            )
        );
    }

    #[test]
    fn mismatched_ca_key_and_bad_input_refused() {
        let a = create_ca(30).unwrap();
        let b = create_ca(30).unwrap();
        let mixed = CertPem {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(
            create_cert(&mixed, &CertRequest::new(Role::Server, "global")),
            Err(PkiError::KeyMismatch)
        ));
        assert!(matches!(
            create_cert(&a, &CertRequest::new(Role::Server, "Not A Region")),
            Err(PkiError::Region(_))
        ));
        assert!(matches!(create_ca(0), Err(PkiError::BadDays(0))));
        // A leaf is not a CA.
        let leaf = create_cert(&a, &CertRequest::new(Role::Server, "global")).unwrap();
        assert!(matches!(
            create_cert(&leaf, &CertRequest::new(Role::Server, "global")),
            Err(PkiError::BadCa(_))
        ));
    }

    #[test]
    fn write_pair_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("wren-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = create_ca(30).unwrap();
        let (c, k) = write_pair(&dir, &ca, CA_CERT_FILE, CA_KEY_FILE).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_pair(&c, &k).unwrap(), ca);
        assert!(matches!(
            write_pair(&dir, &ca, CA_CERT_FILE, CA_KEY_FILE),
            Err(PkiError::Exists(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
