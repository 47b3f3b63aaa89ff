//! The client side, for the CLI and for agents: a list of servers, one
//! multiplexed connection per server, failover to the next server on
//! connection errors, and reconnection with exponential backoff.
//!
//! A request that could not be sent is retried on the next server; one
//! that was sent when its connection died is retried only when its method
//! is idempotent (GET, PUT, DELETE, FETCH). Every server is tried at most
//! once per request, so with every server down a request fails at once
//! with each server's error; a server that failed is not dialled again
//! before its backoff ends (200 ms doubling to 30 s).
//!
//! Observations survive failover: after a connection ends the stream
//! yields an error item, then re-registers on the next reachable server
//! with `?index=` the last index it saw, so nothing is delivered twice.

mod config;
mod conn;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use coap_lite::CoapOption;
use futures_rustls::TlsConnector;
use minicbor::{Decode, Encode};
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use smol::channel::{Receiver, Sender};
use smol::{Executor, Task};

pub(crate) use config::api_command;
pub use config::{
    Address, ApiFlags, ClientConfig, ConfigError, DEFAULT_PORT, SCHEME, default_dir,
    parse_addresses,
};
use conn::Conn;

use super::frame::{Frame, Token};
use super::link::Settings;
use super::request::{self, Method, split_uri};
use super::response::{ApiError, CBOR, Response};
use super::tls::{TlsError, client_config, node_client_config};

/// Client timeouts and backoff.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Connection limits and timeouts (connect, handshake, ping).
    pub link: Settings,
    /// How long a request waits for its response.
    pub request_timeout: Duration,
    /// First reconnection delay after a server fails.
    pub backoff_min: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings {
            link: Settings::default(),
            request_timeout: Duration::from_secs(60),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, resolving or the TLS handshake failed.
    #[error("{addr}: {reason}")]
    Unreachable {
        /// The server.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The server failed recently and is not dialled again yet.
    #[error("{addr}: failed recently, next attempt in {remaining:?}")]
    BackingOff {
        /// The server.
        addr: String,
        /// Time until the next attempt.
        remaining: Duration,
    },
    /// The connection ended; `sent` says whether the request had been sent.
    #[error("{addr}: connection lost")]
    ConnectionLost {
        /// The server.
        addr: String,
        /// Whether the request went out before the connection ended.
        sent: bool,
    },
    /// No response in time.
    #[error("{addr}: no response within {after:?}")]
    Timeout {
        /// The server.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// The request is larger than the server accepts.
    #[error("request of {len} bytes exceeds the server's Max-Message-Size of {max}")]
    TooLarge {
        /// The request's size.
        len: usize,
        /// The server's limit.
        max: u32,
    },
    /// A response that does not parse.
    #[error("malformed response: {0}")]
    BadResponse(String),
    /// An observation lost its registration (connection ended, or the
    /// observer fell behind); it re-registers by itself.
    #[error("{addr}: observation interrupted, re-registering")]
    Interrupted {
        /// The server.
        addr: String,
    },
    /// Every server failed.
    #[error("no server answered: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<ClientError>),
    /// The server answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next: Option<Instant>,
}

struct Slot {
    addr: Address,
    conn: smol::lock::Mutex<Option<Arc<Conn>>>,
    backoff: Mutex<Backoff>,
}

impl Slot {
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        // Plain data; a poisoned lock still holds a usable value.
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    slots: Vec<Slot>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    settings: ClientSettings,
    ex: Arc<Executor<'static>>,
    current: AtomicUsize,
}

/// A client of a region's servers. Cheap to clone; clones share
/// connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<String> = self
            .inner
            .slots
            .iter()
            .map(|s| s.addr.to_string())
            .collect();
        f.debug_struct("Client").field("servers", &addrs).finish()
    }
}

fn idempotent(m: Method) -> bool {
    matches!(
        m,
        Method::Get | Method::Put | Method::Delete | Method::Fetch
    )
}

impl Client {
    /// A client for `config`; connection tasks run on `ex`. Nothing is
    /// dialled until the first request.
    pub fn new(config: ClientConfig, ex: Arc<Executor<'static>>) -> Result<Client, ClientError> {
        let (tls, server_name) = client_config(&config.tls)?;
        Client::with_tls(config, tls, server_name, ex)
    }

    /// A client of one node's own endpoints (logs, signals, exec): the agent
    /// at the address may present a client or a server certificate of the
    /// region (see [`node_client_config`]).
    pub fn to_node(
        config: ClientConfig,
        ex: Arc<Executor<'static>>,
    ) -> Result<Client, ClientError> {
        let (tls, server_name) = node_client_config(&config.tls)?;
        Client::with_tls(config, tls, server_name, ex)
    }

    fn with_tls(
        config: ClientConfig,
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        ex: Arc<Executor<'static>>,
    ) -> Result<Client, ClientError> {
        if config.addresses.is_empty() {
            return Err(ClientError::AllFailed(Vec::new()));
        }
        let slots = config
            .addresses
            .into_iter()
            .map(|addr| Slot {
                addr,
                conn: smol::lock::Mutex::new(None),
                backoff: Mutex::new(Backoff::default()),
            })
            .collect();
        Ok(Client {
            inner: Arc::new(Inner {
                slots,
                connector: TlsConnector::from(tls),
                server_name,
                settings: config.settings,
                ex,
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// Sends `method path` with a CBOR body (or none when empty) and
    /// returns the response, whatever its code.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Response, ClientError> {
        self.request_as(method, path, body, CBOR, CBOR).await
    }

    /// Like [`Client::request`], but a request that went out is never sent
    /// again, whatever its method (a DELETE is otherwise re-sent to the
    /// next server when its connection breaks): for changes that must not
    /// take effect twice, such as stopping and purging a job, whose second
    /// effect could undo a write made in between.
    pub async fn request_once(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let frame = request::build(method, path, body, CBOR, CBOR);
        let reply = self.inner.exchange(frame, false).await?;
        Response::from_frame(&reply).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Like [`Client::request`] with explicit Content-Format and Accept.
    pub async fn request_as(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
        content_format: u16,
        accept: u16,
    ) -> Result<Response, ClientError> {
        let frame = request::build(method, path, body, content_format, accept);
        let reply = self.inner.exchange(frame, idempotent(method)).await?;
        Response::from_frame(&reply).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// GETs and decodes a value; an error code becomes [`ClientError::Api`].
    /// Returns the value and the index it reflects.
    pub async fn get<T>(&self, path: &str) -> Result<(T, Option<u64>), ClientError>
    where
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        decoded(self.request(Method::Get, path, &[]).await?)
    }

    /// Sends a value as CBOR and decodes the reply's value.
    pub async fn send<B, T>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<(T, Option<u64>), ClientError>
    where
        B: Encode<()>,
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        let bytes = wren_model::codec::to_cbor(body);
        decoded(self.request(method, path, &bytes).await?)
    }

    /// Observes `path` (which may carry a query, and `?index=N` to start
    /// after index N). The stream yields each notification, an error item
    /// when the registration is lost (it then re-registers by itself), and
    /// ends after a final response (an error code, or a resource that
    /// cannot be observed). Dropping it deregisters.
    pub fn observe(&self, path: &str) -> Observation {
        let (tx, rx) = smol::channel::bounded(1);
        let task = self
            .inner
            .ex
            .spawn(observe_loop(self.inner.clone(), path.to_owned(), tx));
        Observation {
            rx: Box::pin(rx),
            _task: task,
        }
    }
}

fn decoded<T>(resp: Response) -> Result<(T, Option<u64>), ClientError>
where
    T: for<'b> Decode<'b, ()> + DeserializeOwned,
{
    if let Some(e) = resp.as_error() {
        return Err(ClientError::Api(e));
    }
    let value = resp
        .decode()
        .map_err(|e| ClientError::BadResponse(e.to_string()))?;
    Ok((value, resp.index))
}

async fn resolve(addr: &Address) -> Result<Vec<SocketAddr>, ClientError> {
    if let Ok(ip) = addr.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, addr.port)]);
    }
    // Host names go through the system resolver on smol's blocking pool.
    smol::net::resolve((addr.host.as_str(), addr.port))
        .await
        .map_err(|e| ClientError::Unreachable {
            addr: addr.to_string(),
            reason: format!("resolving: {e}"),
        })
}

impl Inner {
    /// The live connection to server `i`, dialling it when needed.
    async fn conn_for(&self, i: usize) -> Result<Arc<Conn>, ClientError> {
        let Some(slot) = self.slots.get(i) else {
            return Err(ClientError::AllFailed(Vec::new()));
        };
        let mut guard = slot.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *guard = None;
        if let Some(next) = slot.backoff().next {
            let now = Instant::now();
            if now < next {
                return Err(ClientError::BackingOff {
                    addr: slot.addr.to_string(),
                    remaining: next - now,
                });
            }
        }
        let mut last = None;
        match resolve(&slot.addr).await {
            Ok(addrs) => {
                for a in addrs {
                    let s = &self.settings.link;
                    match Conn::connect(a, &self.connector, &self.server_name, s, &self.ex).await {
                        Ok(c) => {
                            let c = Arc::new(c);
                            *guard = Some(c.clone());
                            *slot.backoff() = Backoff::default();
                            return Ok(c);
                        }
                        Err(e) => last = Some(e),
                    }
                }
            }
            Err(e) => last = Some(e),
        }
        let mut b = slot.backoff();
        let delay = self
            .settings
            .backoff_min
            .saturating_mul(1 << b.failures.min(16))
            .min(self.settings.backoff_max);
        b.failures = b.failures.saturating_add(1);
        b.next = Some(Instant::now() + delay);
        Err(last.unwrap_or_else(|| ClientError::Unreachable {
            addr: slot.addr.to_string(),
            reason: "resolved to no address".to_owned(),
        }))
    }

    /// Runs `attempt` against each server in turn, starting with the one
    /// that last worked, until one succeeds or says not to go on.
    async fn failover<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, (ClientError, bool)>>,
    {
        let deadline = Instant::now() + self.settings.request_timeout;
        let n = self.slots.len();
        loop {
            let start = self.current.load(Ordering::Relaxed);
            let mut errors = Vec::new();
            let mut tried = false;
            let mut earliest: Option<Instant> = None;
            for k in 0..n {
                let i = (start + k) % n;
                let conn = match self.conn_for(i).await {
                    Ok(c) => c,
                    Err(e) => {
                        if let ClientError::BackingOff { remaining, .. } = &e {
                            let at = Instant::now() + *remaining;
                            earliest = Some(earliest.map_or(at, |x| x.min(at)));
                        } else {
                            tried = true;
                        }
                        errors.push(e);
                        continue;
                    }
                };
                tried = true;
                match attempt(conn).await {
                    Ok(v) => {
                        self.current.store(i, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err((e, true)) => errors.push(e),
                    Err((e, false)) => return Err(e),
                }
            }
            // Every server is waiting out its backoff: wait for the first.
            match earliest {
                Some(at) if !tried && at < deadline => smol::Timer::at(at).await,
                _ => return Err(ClientError::AllFailed(errors)),
            };
        }
    }

    /// One request with failover.
    async fn exchange(&self, frame: Frame, idempotent: bool) -> Result<Frame, ClientError> {
        let timeout = self.settings.request_timeout;
        self.failover(|conn| {
            let frame = frame.clone();
            async move {
                conn.request(frame, timeout).await.map_err(|e| {
                    let go_on = match &e {
                        ClientError::ConnectionLost { sent, .. } => !sent || idempotent,
                        _ => false,
                    };
                    (e, go_on)
                })
            }
        })
        .await
    }
}

/// A stream of notifications from [`Client::observe`].
pub struct Observation {
    rx: Pin<Box<Receiver<Result<Response, ClientError>>>>,
    _task: Task<()>,
}

impl std::fmt::Debug for Observation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observation").finish_non_exhaustive()
    }
}

impl Observation {
    /// The next notification; `None` after the final one.
    pub async fn next(&mut self) -> Option<Result<Response, ClientError>> {
        self.rx.recv().await.ok()
    }
}

impl smol::stream::Stream for Observation {
    type Item = Result<Response, ClientError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// Deregisters an observation when dropped while still registered.
struct Registration {
    conn: Arc<Conn>,
    token: Token,
    frame: Frame,
    armed: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.armed && !self.conn.is_closed() {
            self.conn.deregister(self.token, self.frame.clone());
        }
    }
}

async fn observe_loop(inner: Arc<Inner>, path: String, tx: Sender<Result<Response, ClientError>>) {
    let (segments, query) = split_uri(&path);
    let mut last: Option<u64> = None;
    let mut rest = Vec::new();
    for q in query {
        match q.strip_prefix("index=") {
            Some(v) => last = v.parse().ok(),
            None => rest.push(q),
        }
    }
    let mut pause = inner.settings.backoff_min;
    loop {
        let mut query = rest.clone();
        if let Some(i) = last {
            query.push(format!("index={i}"));
        }
        let uri = format!("/{}?{}", segments.join("/"), query.join("&"));
        let mut reg = request::build(Method::Get, &uri, &[], CBOR, CBOR);
        reg.options.push_uint(CoapOption::Observe, 0);
        let opened = inner
            .failover(|conn| {
                let reg = reg.clone();
                async move {
                    match conn.observe(reg).await {
                        Ok((token, rx)) => Ok((conn, token, rx)),
                        Err(e) => Err((e, true)),
                    }
                }
            })
            .await;
        let (conn, token, rx) = match opened {
            Ok(o) => o,
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                smol::Timer::after(pause).await;
                pause = (pause * 2).min(inner.settings.backoff_max);
                continue;
            }
        };
        let addr = conn.addr.to_string();
        let mut registration = Registration {
            conn,
            token,
            frame: reg,
            armed: true,
        };
        let mut delivered = false;
        loop {
            let Ok(frame) = rx.recv().await else {
                if tx
                    .send(Err(ClientError::Interrupted { addr }))
                    .await
                    .is_err()
                {
                    return;
                }
                if !delivered {
                    // Lost before anything arrived: do not redial in a loop.
                    drop(registration);
                    smol::Timer::after(pause).await;
                    pause = (pause * 2).min(inner.settings.backoff_max);
                }
                break;
            };
            delivered = true;
            let is_final = frame.options.get(CoapOption::Observe).is_none();
            if is_final {
                registration.armed = false;
            }
            let item =
                Response::from_frame(&frame).map_err(|e| ClientError::BadResponse(e.to_string()));
            if let Ok(Response { index: Some(i), .. }) = &item {
                last = Some(last.map_or(*i, |l| l.max(*i)));
            }
            pause = inner.settings.backoff_min;
            if tx.send(item).await.is_err() || is_final {
                return;
            }
        }
    }
}
