//! The wire: CBOR over CoAP over TLS, the only place wren opens sockets.
//!
//! CoAP runs over TCP with TLS 1.3 as RFC 8323 defines it (`coaps+tcp`,
//! port 5684, ALPN `coap`): [`frame`] is the length-prefixed framing,
//! [`options`] the RFC 7252 option encoding, [`signal`] the CSM, Ping,
//! Pong, Release and Abort messages. [`link`] runs one connection (CSM
//! exchange, liveness, bounded reads, Abort on malformed input), for the
//! [`Server`] and for the [`Client`]. Every peer authenticates with a
//! certificate of the region's CA ([`tls`]) whose SAN names its role
//! ([`identity`]); [`pki`] makes the CA and certificates. Requests are
//! routed by method and path under `/v1/` with the roles allowed
//! ([`Router`]) to handlers that take a [`Request`] and return a
//! [`Response`]; GETs on observable routes can be observed (RFC 7641) as
//! blocking queries ([`observe`]).
//!
//! Deliberately absent: DTLS and UDP (rustls has no DTLS), block-wise
//! transfer (messages go whole up to Max-Message-Size, 4 MiB by default;
//! stock clients advertise 8 MiB), proxying, and any resource of its own:
//! the agent registers those.

pub mod client;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod identity;
pub mod link;
pub mod observe;
pub mod options;
pub mod pki;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod signal;
pub mod tls;

#[allow(unused_imports)]
pub(crate) use client::api_command;
pub use client::{
    Address, ApiFlags, Client, ClientConfig, ClientError, ClientSettings, ConfigError,
    DEFAULT_PORT, Observation,
};
pub use identity::{Fingerprint, Peer, Role};
pub use link::Settings;
pub use request::{Method, Request};
pub use response::{ApiError, CBOR, ErrorBody, JSON, Response};
pub use router::{HandlerResult, Roles, Router};
pub use server::{Server, ServerError, ServerStats};
pub use tls::{TlsError, TlsMaterial};
