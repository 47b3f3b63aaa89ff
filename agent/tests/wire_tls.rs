//! Mutual TLS: a peer without a valid certificate of the region's CA, with
//! a certificate of another region, or with one naming no role never gets
//! a CoAP message through; clients accept only their region's servers.

mod wire_support;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, RequestType};
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use wire_support::*;
use wren_agent::wire::frame::{Frame, Token};
use wren_agent::wire::pki::{CertRequest, create_cert};
use wren_agent::wire::{ClientError, Role, TlsMaterial};
use wren_model::Job;

const LIMIT: Duration = Duration::from_secs(20);

fn hello_frame() -> Frame {
    let mut f = Frame::new(
        u8::from(MessageClass::Request(RequestType::Get)),
        Token::from_u64(1),
    );
    for seg in ["v1", "test", "hello"] {
        f.options.push(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    f
}

/// Connects raw with `material`, sends a CSM and a request, and returns
/// whether any frame at all came back before the connection ended.
async fn anything_gets_through(
    addr: std::net::SocketAddr,
    ca: &str,
    material: Option<&TlsMaterial>,
) -> bool {
    let Ok(mut raw) = Raw::connect(addr, ca, material).await else {
        return false;
    };
    // TLS 1.3 clients finish before the server has judged their
    // certificate, so the writes may well succeed; nothing must come back.
    let _ = raw.send_csm().await;
    let _ = raw.send_frame(&hello_frame()).await;
    match raw.next(LIMIT).await {
        Seen::Frame(_) => {
            // Through: the server's CSM came; wait for the answer too.
            match raw.next_message(LIMIT).await {
                Seen::Frame(f) => assert_eq!(f.code, 0x45, "{f:?}"),
                other => panic!("no answer after the CSM: {other:?}"),
            }
            true
        }
        Seen::Closed => false,
        Seen::Timeout => panic!("server neither answered nor closed"),
    }
}

fn material(ca_pem: &str, cert_pem: &str, key_pem: &str) -> TlsMaterial {
    TlsMaterial::from_pem(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes()).unwrap()
}

#[test]
fn peers_without_a_valid_certificate_of_this_region_get_nothing_through() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    let ca = pki.ca.cert.clone();

    // Another CA's certificate, same role and region.
    let other = Pki::new("global");
    let foreign = other.pair(Role::Cli);
    let foreign = material(&ca, &foreign.cert, &foreign.key);

    // This CA, but another region.
    let eu = create_cert(&pki.ca, &CertRequest::new(Role::Cli, "eu")).unwrap();
    let eu = material(&ca, &eu.cert, &eu.key);

    // This CA, but no role in the SAN.
    let key = KeyPair::generate().unwrap();
    let ca_key = KeyPair::from_pem(&pki.ca.key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&pki.ca.cert, &ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["workstation.example".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let roleless = params.signed_by(&key, &issuer).unwrap();
    let roleless = material(&ca, &roleless.pem(), &key.serialize_pem());

    rt.block_on(async {
        assert!(
            !anything_gets_through(addr, &ca, None).await,
            "no certificate"
        );
        assert!(
            !anything_gets_through(addr, &ca, Some(&foreign)).await,
            "other CA"
        );
        assert!(
            !anything_gets_through(addr, &ca, Some(&eu)).await,
            "other region"
        );
        assert!(
            !anything_gets_through(addr, &ca, Some(&roleless)).await,
            "no role"
        );
        // The control: a proper certificate gets its CSM and answer.
        let good = pki.material(Role::Cli);
        assert!(
            anything_gets_through(addr, &ca, Some(&good)).await,
            "valid certificate"
        );
        assert!(
            eventually(LIMIT, || server.stats().rejected_handshakes == 4).await,
            "{:?}",
            server.stats()
        );
    });
    assert_eq!(state.calls(), 1, "only the valid peer reached a handler");
}

#[test]
fn our_client_refuses_servers_of_another_ca_or_region() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();

    // Same CA, but the CLI belongs to region eu: server.global.wren is not
    // the name it expects.
    let eu = create_cert(&pki.ca, &CertRequest::new(Role::Cli, "eu")).unwrap();
    let eu_cli = client(&rt, material(&pki.ca.cert, &eu.cert, &eu.key), &[addr]);
    // A CLI of another CA does not trust this server at all.
    let stranger = client(&rt, Pki::new("global").material(Role::Cli), &[addr]);

    rt.block_on(async {
        for c in [&eu_cli, &stranger] {
            match c.get::<Job>("/v1/test/hello").await {
                Err(ClientError::AllFailed(errors)) => {
                    let text = format!("{errors:?}");
                    assert!(text.contains("tls handshake"), "{text}");
                }
                other => panic!("expected a refused handshake, got {other:?}"),
            }
        }
    });
    assert_eq!(state.calls(), 0);
}
