//! Who is on the other end: the role and region a certificate names in
//! its SAN (`server.<region>.wren`, `client.<region>.wren`,
//! `cli.<region>.wren`, as Nomad does with `server.<region>.nomad`), and
//! the certificate's SHA-256 fingerprint.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;

/// The domain role names live under.
pub const DOMAIN: &str = "wren";

/// What a certificate lets its holder be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A server agent: Raft, workers, the API.
    Server,
    /// A client agent: runs allocations on its node.
    Client,
    /// A person's command line.
    Cli,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Server, Role::Client, Role::Cli];

    /// The role's name as in SANs and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Cli => "cli",
        }
    }

    /// The SAN DNS name for this role in `region`: `server.global.wren`.
    pub fn dns_name(self, region: &str) -> String {
        format!("{}.{region}.{DOMAIN}", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Role, IdentityError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

/// A certificate's SHA-256 fingerprint (of its DER encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        // SHA-256 digests are 32 bytes.
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The authenticated peer of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The role its certificate names.
    pub role: Role,
    /// The region its certificate names.
    pub region: String,
    /// Its certificate's fingerprint; the agent binds a client node to it.
    pub fingerprint: Fingerprint,
    /// Its address.
    pub addr: SocketAddr,
}

/// Why a certificate does not identify a wren agent or CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a parsable X.509 certificate.
    #[error("certificate does not parse: {0}")]
    Parse(String),
    /// No SAN of the form `<role>.<region>.wren`.
    #[error("certificate names no wren role (expected a SAN like server.<region>.wren)")]
    NoRole,
    /// SANs naming different roles or regions.
    #[error("certificate names more than one wren role or region: {0} and {1}")]
    Ambiguous(String, String),
    /// A role name that is not server, client or cli.
    #[error("unknown role {0:?} (expected server, client or cli)")]
    UnknownRole(String),
    /// A region name that is not a DNS label.
    #[error("invalid region {0:?}: use lowercase letters, digits and '-'")]
    BadRegion(String),
}

/// Checks that a region is a lowercase DNS label.
pub fn check_region(region: &str) -> Result<(), IdentityError> {
    let ok = !region.is_empty()
        && region.len() <= 63
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadRegion(region.to_owned()))
    }
}

/// Parses a role name `<role>.<region>.wren`.
pub fn parse_role_name(name: &str) -> Option<(Role, String)> {
    let mut parts = name.split('.');
    let (role, region, domain) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || domain != DOMAIN {
        return None;
    }
    let role = role.parse().ok()?;
    check_region(region).ok()?;
    Some((role, region.to_owned()))
}

/// The role and region a DER certificate names.
pub fn identity_of(der: &[u8]) -> Result<(Role, String), IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?
        .ok_or(IdentityError::NoRole)?;
    let mut found: Option<(Role, String)> = None;
    for name in &san.value.general_names {
        let GeneralName::DNSName(dns) = name else {
            continue;
        };
        let Some(id) = parse_role_name(dns) else {
            continue;
        };
        match &found {
            None => found = Some(id),
            Some(prev) if *prev == id => {}
            Some(prev) => {
                return Err(IdentityError::Ambiguous(
                    prev.0.dns_name(&prev.1),
                    id.0.dns_name(&id.1),
                ));
            }
        }
    }
    found.ok_or(IdentityError::NoRole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_parse_strictly() {
        assert_eq!(
            parse_role_name("server.global.wren"),
            Some((Role::Server, "global".into()))
        );
        assert_eq!(
            parse_role_name("cli.eu-west-1.wren"),
            Some((Role::Cli, "eu-west-1".into()))
        );
        for bad in [
            "server.global.nomad",
            "admin.global.wren",
            "server.Global.wren",
            "server..wren",
            "a.server.global.wren",
            "localhost",
        ] {
            assert_eq!(parse_role_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            identity_of(&[0x30, 0x03, 0x01, 0x01]),
            Err(IdentityError::Parse(_))
        ));
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        let f = Fingerprint::of(b"abc");
        assert_eq!(
            f.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
