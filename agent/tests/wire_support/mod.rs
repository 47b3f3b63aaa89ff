//! Shared by the wire tests: an executor with worker threads, a PKI made
//! in memory, a server with test resources registered on a real router,
//! and a raw TLS connection for speaking (and mangling) frames by hand.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_rustls::TlsConnector;
use minicbor::{Decode, Encode};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Executor};
use wren_agent::wire::frame::{self, Frame, FrameLimits, Token};
use wren_agent::wire::pki::{CertPem, CertRequest, create_ca, create_cert};
use wren_agent::wire::signal::Signal;
use wren_agent::wire::{
    ApiError, Client, ClientConfig, ClientSettings, Method, Request, Roles, Router, Server,
    Settings, TlsMaterial,
};
use wren_model::Job;

/// An executor driven by worker threads, stopped on drop.
pub struct Runtime {
    pub ex: Arc<Executor<'static>>,
    stop: Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Runtime {
    pub fn new(threads: usize) -> Runtime {
        let ex = Arc::new(Executor::new());
        let (stop, rx) = smol::channel::bounded::<()>(1);
        let threads = (0..threads)
            .map(|_| {
                let ex = ex.clone();
                let rx = rx.clone();
                std::thread::spawn(move || {
                    smol::block_on(ex.run(async {
                        let _ = rx.recv().await;
                    }))
                })
            })
            .collect();
        Runtime { ex, stop, threads }
    }

    pub fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        smol::block_on(self.ex.run(f))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    check()
}

/// Runs `f` with a deadline; `None` when it passed.
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            smol::Timer::after(limit).await;
            None
        })
        .await
}

/// A CA and certificates of one region, in memory.
pub struct Pki {
    pub ca: CertPem,
    pub region: String,
}

impl Pki {
    pub fn new(region: &str) -> Pki {
        Pki {
            ca: create_ca(30).expect("ca"),
            region: region.to_owned(),
        }
    }

    pub fn pair(&self, role: wren_agent::wire::Role) -> CertPem {
        create_cert(&self.ca, &CertRequest::new(role, self.region.clone())).expect("cert")
    }

    pub fn material(&self, role: wren_agent::wire::Role) -> TlsMaterial {
        let pair = self.pair(role);
        TlsMaterial::from_pem(
            self.ca.cert.as_bytes(),
            pair.cert.as_bytes(),
            pair.key.as_bytes(),
        )
        .expect("material")
    }
}

/// A value to watch: a counter with async waits for it to pass an index.
pub struct Watch {
    inner: Mutex<(u64, Vec<Sender<()>>)>,
}

impl Watch {
    pub fn starting_at(v: u64) -> Watch {
        Watch {
            inner: Mutex::new((v, Vec::new())),
        }
    }

    pub fn get(&self) -> u64 {
        self.inner.lock().unwrap().0
    }

    pub fn bump(&self) -> u64 {
        let mut g = self.inner.lock().unwrap();
        g.0 += 1;
        g.1.clear();
        g.0
    }

    /// Waits until the value is above `min`; returns it.
    pub async fn wait_above(&self, min: u64) -> u64 {
        loop {
            let rx = {
                let mut g = self.inner.lock().unwrap();
                if g.0 > min {
                    return g.0;
                }
                let (tx, rx) = smol::channel::bounded::<()>(1);
                g.1.push(tx);
                rx
            };
            let _ = rx.recv().await;
        }
    }
}

/// What `/v1/test/tick` returns.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct Tick {
    #[n(0)]
    pub value: u64,
}

/// What `/v1/test/whoami` returns.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
pub struct WhoAmI {
    #[n(0)]
    pub role: String,
    #[n(1)]
    pub region: String,
    #[n(2)]
    pub fingerprint: String,
}

/// State behind the test resources.
pub struct TestState {
    /// The watched index; starts at 1, as a state index does.
    pub tick: Watch,
    /// Opens the gate of `/v1/test/slow` when bumped.
    pub gate: Watch,
    /// Handler calls, by any route.
    pub calls: Mutex<u64>,
    /// Observation handler calls in progress.
    pub watching: Mutex<i64>,
}

impl Default for TestState {
    fn default() -> TestState {
        TestState {
            tick: Watch::starting_at(1),
            gate: Watch::starting_at(0),
            calls: Mutex::default(),
            watching: Mutex::default(),
        }
    }
}

impl TestState {
    pub fn calls(&self) -> u64 {
        *self.calls.lock().unwrap()
    }
    fn called(&self) {
        *self.calls.lock().unwrap() += 1;
    }
}

struct Watching(Arc<TestState>);
impl Drop for Watching {
    fn drop(&mut self) {
        *self.0.watching.lock().unwrap() -= 1;
    }
}

/// The job `/v1/test/hello` returns.
pub fn hello_job() -> Job {
    Job {
        id: "hello".into(),
        name: "hello from wren".into(),
        region: "global".into(),
        datacenters: vec!["dc1".into()],
        priority: 50,
        ..Job::default()
    }
}

/// Test resources on a real router.
pub fn test_router(state: Arc<TestState>) -> Router {
    let mut r = Router::new();
    let s = state.clone();
    r.route(
        Method::Get,
        "/v1/test/hello",
        Roles::ANY,
        move |req: Request| {
            let s = s.clone();
            async move {
                s.called();
                Ok(req.reply(&hello_job()).with_index(s.tick.get()))
            }
        },
    );
    let s = state.clone();
    r.route(
        Method::Put,
        "/v1/test/job",
        Roles::CLI | Roles::SERVER,
        move |req: Request| {
            let s = s.clone();
            async move {
                s.called();
                let job: Job = req.decode()?;
                if job.id.is_empty() {
                    return Err(ApiError::bad_request("job has no id"));
                }
                Ok(req.reply_with(coap_lite::ResponseType::Changed, &job))
            }
        },
    );
    let s = state.clone();
    r.observable("/v1/test/tick", Roles::ANY, move |req: Request| {
        let s = s.clone();
        async move {
            s.called();
            *s.watching.lock().unwrap() += 1;
            let _w = Watching(s.clone());
            let value = if req.min_index == 0 {
                s.tick.get()
            } else {
                s.tick.wait_above(req.min_index).await
            };
            Ok(req.reply(&Tick { value }).with_index(value))
        }
    });
    let s = state.clone();
    r.route(
        Method::Get,
        "/v1/test/whoami",
        Roles::ANY,
        move |req: Request| {
            let s = s.clone();
            async move {
                s.called();
                let who = WhoAmI {
                    role: req.peer.role.to_string(),
                    region: req.peer.region.clone(),
                    fingerprint: req.peer.fingerprint.to_string(),
                };
                Ok(req.reply(&who))
            }
        },
    );
    let s = state.clone();
    r.route(
        Method::Get,
        "/v1/test/slow",
        Roles::ANY,
        move |req: Request| {
            let s = s.clone();
            async move {
                s.called();
                let v = s.gate.wait_above(0).await;
                Ok(req.reply(&Tick { value: v }))
            }
        },
    );
    let s = state.clone();
    r.route(
        Method::Get,
        "/v1/test/server-only",
        Roles::SERVER,
        move |req: Request| {
            let s = s.clone();
            async move {
                s.called();
                Ok(req.reply(&Tick { value: 0 }))
            }
        },
    );
    let s = state;
    r.route(
        Method::Get,
        "/v1/test/big/:n",
        Roles::ANY,
        move |req: Request| {
            let s = s.clone();
            async move {
                s.called();
                let n: usize = req
                    .param("n")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| ApiError::bad_request("n must be a number"))?;
                let mut job = hello_job();
                job.meta.insert("pad".into(), "x".repeat(n));
                Ok(req.reply(&job))
            }
        },
    );
    r
}

/// Settings with short timeouts, so timeout tests finish quickly.
pub fn quick_settings() -> Settings {
    Settings {
        idle_timeout: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(1500),
        write_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

/// Binds a server on 127.0.0.1 with an OS-chosen port and runs it.
pub fn start_server(
    rt: &Runtime,
    pki: &Pki,
    state: Arc<TestState>,
    settings: Settings,
) -> Arc<Server> {
    start_server_with(
        rt,
        &pki.material(wren_agent::wire::Role::Server),
        state,
        settings,
    )
}

/// Like [`start_server`] with given TLS material.
pub fn start_server_with(
    rt: &Runtime,
    material: &TlsMaterial,
    state: Arc<TestState>,
    settings: Settings,
) -> Arc<Server> {
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        material,
        test_router(state),
        settings,
        rt.ex.clone(),
    )
    .expect("bind");
    let server = Arc::new(server);
    let s = server.clone();
    rt.ex.spawn(async move { s.run().await }).detach();
    server
}

/// A client of `addrs` with the given certificate.
pub fn client(rt: &Runtime, material: TlsMaterial, addrs: &[SocketAddr]) -> Client {
    let config = ClientConfig {
        addresses: addrs
            .iter()
            .map(|a| a.to_string().parse().unwrap())
            .collect(),
        tls: material,
        settings: ClientSettings {
            request_timeout: Duration::from_secs(20),
            ..ClientSettings::default()
        },
    };
    Client::new(config, rt.ex.clone()).expect("client")
}

/// What a raw connection saw.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Frame(Frame),
    Closed,
    Timeout,
}

/// A TLS connection that speaks frames by hand.
pub struct Raw {
    stream: futures_rustls::client::TlsStream<Async<std::net::TcpStream>>,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects with `material` (or no client certificate at all), trusting
    /// `ca_pem`.
    pub async fn connect(
        addr: SocketAddr,
        ca_pem: &str,
        material: Option<&TlsMaterial>,
    ) -> std::io::Result<Raw> {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match material {
            Some(m) => builder
                .with_client_auth_cert(m.chain.clone(), m.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"coap".to_vec()];
        let tcp = Async::<std::net::TcpStream>::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        Ok(Raw {
            stream,
            buf: Vec::new(),
        })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    pub async fn send_frame(&mut self, f: &Frame) -> std::io::Result<()> {
        self.send(&f.to_bytes().unwrap()).await
    }

    pub async fn send_csm(&mut self) -> std::io::Result<()> {
        let csm = Signal::Csm {
            max_message_size: Some(1 << 20),
            block_wise: false,
        };
        self.send_frame(&csm.to_frame(Token::EMPTY)).await
    }

    /// The next frame, or the end of the stream, or nothing in `limit`.
    pub async fn next(&mut self, limit: Duration) -> Seen {
        let deadline = Instant::now() + limit;
        let limits = FrameLimits {
            max_message_size: 16 << 20,
            max_options: 1000,
        };
        loop {
            if let Ok(Some((f, used))) = frame::decode(&self.buf, &limits) {
                self.buf.drain(..used);
                return Seen::Frame(f);
            }
            let mut chunk = [0u8; 4096];
            let read = async { Some(self.stream.read(&mut chunk).await) }
                .or(async {
                    smol::Timer::at(deadline).await;
                    None
                })
                .await;
            match read {
                None => return Seen::Timeout,
                Some(Ok(0)) | Some(Err(_)) => return Seen::Closed,
                Some(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Skips the server's CSM and any Pings (answering them), returning the
    /// next other frame or the end.
    pub async fn next_message(&mut self, limit: Duration) -> Seen {
        loop {
            match self.next(limit).await {
                Seen::Frame(f) if f.code == frame::signal_code::CSM => continue,
                Seen::Frame(f) if f.code == frame::signal_code::PING => {
                    let pong = Signal::Pong { custody: false }.to_frame(f.token);
                    if self.send_frame(&pong).await.is_err() {
                        return Seen::Closed;
                    }
                }
                other => return other,
            }
        }
    }

    /// Waits for an Abort or the end of the stream, answering nothing.
    /// Returns the Abort's diagnostic if one came.
    pub async fn expect_abort(&mut self, limit: Duration) -> Result<Option<String>, String> {
        let deadline = Instant::now() + limit;
        let mut diagnostic = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Seen::Frame(f) if f.code == frame::signal_code::ABORT => {
                    diagnostic = Some(String::from_utf8_lossy(&f.payload).into_owned());
                }
                Seen::Frame(f) if frame::is_signal(f.code) => {}
                Seen::Frame(f) => return Err(format!("unexpected frame {f:?}")),
                Seen::Closed => return Ok(diagnostic),
                Seen::Timeout => return Err("connection still open".to_owned()),
            }
        }
    }
}

/// Requires a capability in CI; elsewhere a missing one skips the test.
/// Returns whether to run.
pub fn require(have: bool, why: &str) -> bool {
    if have {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("required in CI: {why}");
    }
    eprintln!("skipping: {why}");
    false
}
