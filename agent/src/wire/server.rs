//! The CoAP-over-TLS server: accepts connections, runs the mutual TLS
//! handshake, learns each peer's [`Peer`] from its certificate, and routes
//! its requests to handlers, each in its own task on the agent's executor.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use coap_lite::ResponseType;
use futures_rustls::TlsAcceptor;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, Executor, Task};
use wren_model::codec::{Limits, check_limits};

use super::frame::{Frame, Token, is_request};
use super::identity::{Fingerprint, Peer, identity_of};
use super::link::{self, Dispatch, LinkEnd, LinkState, Settings};
use super::observe;
use super::request::{self, Request};
use super::response::{ApiError, Response};
use super::router::{Found, Router};
use super::tls::{TlsError, TlsMaterial, server_config};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the address failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Counters, for tests and for the agent's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// Connections whose TLS handshake failed (no or bad certificate,
    /// another region, timeout).
    pub rejected_handshakes: u64,
    /// Connections closed at once because the limit was reached.
    pub over_limit: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections we aborted for breaking the protocol.
    pub aborted: u64,
    /// Connections closed for not answering a Ping.
    pub unresponsive: u64,
    /// Pings sent to idle peers.
    pub pings: u64,
    /// Requests received.
    pub requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    rejected_handshakes: AtomicU64,
    over_limit: AtomicU64,
    active: AtomicU64,
    aborted: AtomicU64,
    unresponsive: AtomicU64,
    requests: AtomicU64,
    pings: Arc<AtomicU64>,
}

struct Shared {
    acceptor: TlsAcceptor,
    router: Arc<Router>,
    settings: Settings,
    ex: Arc<Executor<'static>>,
    counters: Counters,
    shutdown: Receiver<()>,
}

/// A bound server. Share it in an `Arc` to read [`Server::stats`] or call
/// [`Server::shutdown`] while [`Server::run`] accepts.
pub struct Server {
    listener: Async<TcpListener>,
    region: String,
    shared: Arc<Shared>,
    shutdown_tx: Sender<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr().ok())
            .field("region", &self.region)
            .finish()
    }
}

impl Server {
    /// Binds `addr` with a server certificate; peers must present a
    /// certificate of the same CA naming a role in the same region.
    /// Connection tasks are spawned on `ex`.
    pub fn bind(
        addr: SocketAddr,
        tls: &TlsMaterial,
        router: Router,
        settings: Settings,
        ex: Arc<Executor<'static>>,
    ) -> Result<Server, ServerError> {
        let (config, region) = server_config(tls)?;
        let bind_err = |source| ServerError::Bind { addr, source };
        let listener = Async::new(TcpListener::bind(addr).map_err(bind_err)?).map_err(bind_err)?;
        let (shutdown_tx, shutdown) = smol::channel::bounded(1);
        Ok(Server {
            listener,
            region,
            shared: Arc::new(Shared {
                acceptor: TlsAcceptor::from(config),
                router: Arc::new(router),
                settings,
                ex,
                counters: Counters::default(),
                shutdown,
            }),
            shutdown_tx,
        })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// The region this server serves.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            accepted: get(&c.accepted),
            rejected_handshakes: get(&c.rejected_handshakes),
            over_limit: get(&c.over_limit),
            active: get(&c.active),
            aborted: get(&c.aborted),
            unresponsive: get(&c.unresponsive),
            pings: get(&c.pings),
            requests: get(&c.requests),
        }
    }

    /// Stops accepting, and asks every connection to close with a Release.
    pub fn shutdown(&self) {
        self.shutdown_tx.close();
    }

    /// Accepts connections until [`Server::shutdown`].
    pub async fn run(&self) {
        let shared = &self.shared;
        loop {
            let next = async { Some(self.listener.accept().await) }
                .or(async {
                    let _ = shared.shutdown.recv().await;
                    None
                })
                .await;
            let (stream, addr) = match next {
                None => return,
                Some(Ok(accepted)) => accepted,
                Some(Err(_)) => {
                    // Out of descriptors or a connection reset before
                    // accept: wait a moment rather than spin.
                    smol::Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
            };
            shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let active = shared.counters.active.fetch_add(1, Ordering::Relaxed);
            let guard = ActiveGuard(self.shared.clone());
            if active as usize >= shared.settings.max_connections {
                shared.counters.over_limit.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                drop(guard);
                continue;
            }
            let _ = stream.get_ref().set_nodelay(true);
            let conn = serve(stream, addr, self.shared.clone(), guard);
            shared.ex.spawn(conn).detach();
        }
    }
}

struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.counters.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    stream: Async<TcpStream>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    _guard: ActiveGuard,
) {
    let settings = &shared.settings;
    let handshake = async { shared.acceptor.accept(stream).await.ok() }.or(async {
        smol::Timer::after(settings.handshake_timeout).await;
        None
    });
    let peer = handshake.await.and_then(|tls| {
        let leaf = tls.get_ref().1.peer_certificates()?.first()?;
        // The verifier already checked this; a failure here is refused too.
        let (role, region) = identity_of(leaf).ok()?;
        let peer = Peer {
            role,
            region,
            fingerprint: Fingerprint::of(leaf),
            addr,
        };
        Some((tls, peer))
    });
    let Some((tls, peer)) = peer else {
        shared
            .counters
            .rejected_handshakes
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let (state, out_tx, out_rx) = link::queue(settings, Some(shared.counters.pings.clone()));
    let mut dispatch = ServerDispatch {
        shared: shared.clone(),
        peer: Arc::new(peer),
        state: state.clone(),
        out: out_tx.clone(),
        tasks: HashMap::new(),
    };
    let stop = async {
        let _ = shared.shutdown.recv().await;
    };
    let end = link::run(tls, settings, &state, out_rx, out_tx, stop, &mut dispatch).await;
    match end {
        LinkEnd::Aborted(_) => {
            shared.counters.aborted.fetch_add(1, Ordering::Relaxed);
        }
        LinkEnd::Unresponsive => {
            shared.counters.unresponsive.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

struct ServerDispatch {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    state: Arc<LinkState>,
    out: Sender<Frame>,
    /// Requests and observations in progress, by token. Dropping a task
    /// cancels it.
    tasks: HashMap<Token, Task<()>>,
}

impl Dispatch for ServerDispatch {
    fn message(&mut self, f: Frame) -> Result<Option<Frame>, String> {
        if !is_request(f.code) {
            // A server sends no requests, so a response answers nothing.
            return Ok(None);
        }
        let shared = &self.shared;
        shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        let token = f.token;
        // A new request on a token ends whatever that token was doing:
        // this is how `Observe: 1` (and re-registration) cancel.
        self.tasks.remove(&token);
        let parsed = match request::parse(&f) {
            Ok(p) => p,
            Err((e, json)) => return Ok(Some(self.error(token, &e, json))),
        };
        let json = parsed.accept == Some(super::response::JSON);
        // Every CBOR body must be well formed and within the bounds before
        // any handler sees it; a peer that sends broken CBOR is broken or
        // hostile, and loses the connection. (Well-formed CBOR of the
        // wrong shape is the handler's 4.00.)
        if !f.payload.is_empty()
            && parsed.content_format != Some(super::response::JSON)
            && let Err(e) = check_limits(&f.payload, Limits::default())
        {
            return Err(format!("malformed cbor body: {e}"));
        }
        self.tasks.retain(|_, t| !t.is_finished());
        if self.tasks.len() >= shared.settings.max_in_flight {
            let e = ApiError::unavailable(format!(
                "more than {} requests in progress on this connection",
                shared.settings.max_in_flight
            ));
            return Ok(Some(self.error(token, &e, json)));
        }
        let (route, params) = match shared
            .router
            .find(parsed.method, &parsed.path, self.peer.role)
        {
            Found::Route(r, p) => (r, p),
            Found::Error(e) => return Ok(Some(self.error(token, &e, json))),
        };
        let observe = parsed.observe == Some(0) && route.observable;
        let req = Request {
            method: parsed.method,
            path: parsed.path,
            params,
            query: parsed.query,
            content_format: parsed.content_format,
            accept: parsed.accept,
            body: f.payload,
            peer: self.peer.clone(),
            min_index: parsed.min_index,
            observe,
        };
        let handler = route.handler.clone();
        let out = self.out.clone();
        let state = self.state.clone();
        let task = if observe {
            shared
                .ex
                .spawn(observe::run(handler, req, token, out, state))
        } else {
            shared.ex.spawn(async move {
                let resp = match handler.call(req).await {
                    Ok(r) => r,
                    Err(e) => Response::error(&e, json),
                };
                let _ = out
                    .send(fit(resp.to_frame(token, None), &state, json))
                    .await;
            })
        };
        self.tasks.insert(token, task);
        Ok(None)
    }
}

impl ServerDispatch {
    fn error(&self, token: Token, e: &ApiError, json: bool) -> Frame {
        fit(
            Response::error(e, json).to_frame(token, None),
            &self.state,
            json,
        )
    }
}

/// Replaces a response too large for the peer with a 5.00 that says so.
pub(crate) fn fit(frame: Frame, state: &LinkState, json: bool) -> Frame {
    if state.fits(&frame) {
        return frame;
    }
    let max = state.peer_max_message_size.load(Ordering::Relaxed);
    let e = ApiError::new(
        ResponseType::InternalServerError,
        format!(
            "response of {} bytes exceeds the client's Max-Message-Size of {max}",
            frame.encoded_len()
        ),
    );
    Response::error(&e, json).to_frame(frame.token, None)
}
