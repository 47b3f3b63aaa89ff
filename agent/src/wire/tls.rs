//! rustls configurations for mutual TLS 1.3 with ALPN `coap`, using the
//! `ring` provider.
//!
//! A server requires a client certificate chaining to the region's CA and
//! naming a role in the server's region; the check runs inside the TLS
//! handshake, so a peer without one never gets a byte of CoAP read. A
//! client accepts only a certificate naming `server.<region>.wren`, where
//! the region is the one its own certificate names: servers are
//! recognised by role, not by address, as Nomad's `verify_server_hostname`
//! does, so dialling a bare IP works and a client certificate of the same
//! CA cannot pose as a server.
//!
//! A client agent listens too, with its client certificate, for the
//! endpoints of its own node (logs, signals, exec); the CLI reaches it with
//! [`node_client_config`], which accepts `client.<region>.wren` as well as
//! `server.<region>.wren` (a dev agent is both, with a server certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use super::identity::{IdentityError, Role, identity_of};

/// The ALPN protocol id of CoAP over TLS (RFC 8323 §4.1).
pub const ALPN: &[u8] = b"coap";

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file did not read or parse.
    #[error("{path}: {message}")]
    Pem {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The certificate does not name a wren role.
    #[error("certificate {path}: {source}")]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// What was wrong.
        source: IdentityError,
    },
    /// A certificate of the wrong role for this use.
    #[error("certificate {path} is a {found} certificate; {needed}")]
    WrongRole {
        /// The certificate file.
        path: PathBuf,
        /// The role it names.
        found: Role,
        /// What was needed.
        needed: &'static str,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(String),
}

/// A CA bundle, a certificate chain and its key.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Trusted CAs (the region's).
    pub roots: Vec<CertificateDer<'static>>,
    /// Our certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// Our private key.
    pub key: PrivateKeyDer<'static>,
    /// Where the certificate came from, for messages.
    pub cert_path: PathBuf,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> TlsMaterial {
        TlsMaterial {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            cert_path: self.cert_path.clone(),
        }
    }
}

fn pem_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn certs_from(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no CERTIFICATE in file"));
    }
    Ok(certs)
}

impl TlsMaterial {
    /// Builds material from PEM text.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<TlsMaterial, TlsError> {
        let mem = Path::new("<memory>");
        Ok(TlsMaterial {
            roots: certs_from(ca, mem)?,
            chain: certs_from(cert, mem)?,
            key: PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_err(mem, e))?,
            cert_path: mem.to_owned(),
        })
    }

    /// Reads material from PEM files; errors name the file.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| pem_err(p, e));
        Ok(TlsMaterial {
            roots: certs_from(&read(ca)?, ca)?,
            chain: certs_from(&read(cert)?, cert)?,
            key: PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| pem_err(key, e))?,
            cert_path: cert.to_owned(),
        })
    }

    /// The role and region our own certificate names.
    pub fn identity(&self) -> Result<(Role, String), TlsError> {
        let leaf = self
            .chain
            .first()
            .ok_or_else(|| pem_err(&self.cert_path, "no certificate"))?;
        identity_of(leaf).map_err(|source| TlsError::Identity {
            path: self.cert_path.clone(),
            source,
        })
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in &self.roots {
            roots
                .add(ca.clone())
                .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
        }
        Ok(roots)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: our certificate must be a server certificate, or a
/// client certificate (a client agent serving its own node's endpoints);
/// peers must present a certificate of our CA naming a role in our region.
/// Returns the config and the region.
pub fn server_config(material: &TlsMaterial) -> Result<(Arc<ServerConfig>, String), TlsError> {
    let (role, region) = material.identity()?;
    if role == Role::Cli {
        return Err(TlsError::WrongRole {
            path: material.cert_path.clone(),
            found: role,
            needed: "serving needs a server or client certificate",
        });
    }
    let provider = provider();
    let inner = WebPkiClientVerifier::builder_with_provider(
        Arc::new(material.root_store()?),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(RegionVerifier {
        inner,
        region: region.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // Every connection runs the full verification: no resumption of a
    // session whose certificate may have expired since.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok((Arc::new(config), region))
}

/// The client side: present our certificate, trust only our CA, and
/// accept only `server.<region>.wren`. Returns the config and the server
/// name to verify.
pub fn client_config(
    material: &TlsMaterial,
) -> Result<(Arc<ClientConfig>, ServerName<'static>), TlsError> {
    let (_, region) = material.identity()?;
    let server_name = ServerName::try_from(Role::Server.dns_name(&region))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(material.root_store()?)
        .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok((Arc::new(config), server_name))
}

/// The side that dials a node's own endpoints (the CLI reading logs): like
/// [`client_config`], but the agent may present `client.<region>.wren`
/// (a client agent) or `server.<region>.wren` (a dev agent, a server that is
/// also a client). A CLI certificate never passes.
pub fn node_client_config(
    material: &TlsMaterial,
) -> Result<(Arc<ClientConfig>, ServerName<'static>), TlsError> {
    let (_, region) = material.identity()?;
    let name = |role: Role| {
        ServerName::try_from(role.dns_name(&region)).map_err(|e| TlsError::Config(e.to_string()))
    };
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(
        Arc::new(material.root_store()?),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(AnyOfNames {
        inner,
        names: vec![name(Role::Client)?, name(Role::Server)?],
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok((Arc::new(config), name(Role::Client)?))
}

/// WebPKI server verification that accepts any of a few names (whatever
/// name the connection was opened with).
#[derive(Debug)]
struct AnyOfNames {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for AnyOfNames {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = rustls::Error::General("no name to verify".to_owned());
        for name in &self.names {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// WebPKI client verification plus: the certificate names a role in our
/// region.
#[derive(Debug)]
struct RegionVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    region: String,
}

#[derive(Debug, thiserror::Error)]
#[error("client certificate is for region {found:?}, this server is in {expected:?}")]
struct OtherRegion {
    found: String,
    expected: String,
}

impl ClientCertVerifier for RegionVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let other = |e: Box<dyn std::error::Error + Send + Sync>| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::from(e),
            )))
        };
        let (_, region) = identity_of(end_entity).map_err(|e| other(Box::new(e)))?;
        if region != self.region {
            return Err(other(Box::new(OtherRegion {
                found: region,
                expected: self.region.clone(),
            })));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::pki::{CertRequest, create_ca, create_cert};

    fn material(role: Role, region: &str) -> TlsMaterial {
        let ca = create_ca(30).unwrap();
        let pair = create_cert(&ca, &CertRequest::new(role, region)).unwrap();
        TlsMaterial::from_pem(
            ca.cert.as_bytes(),
            pair.cert.as_bytes(),
            pair.key.as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn server_and_client_certificates_serve_cli_ones_do_not() {
        assert!(server_config(&material(Role::Server, "global")).is_ok());
        assert!(server_config(&material(Role::Client, "global")).is_ok());
        assert!(matches!(
            server_config(&material(Role::Cli, "global")),
            Err(TlsError::WrongRole { .. })
        ));
    }

    #[test]
    fn clients_verify_the_server_role_name_of_their_region() {
        let (_, name) = client_config(&material(Role::Cli, "eu-1")).unwrap();
        assert_eq!(name.to_str(), "server.eu-1.wren");
    }

    #[test]
    fn bad_pem_names_the_problem() {
        let err = TlsMaterial::from_pem(b"nope", b"nope", b"nope").unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }
}
