//! One multiplexed client connection to one server: tokens match
//! responses (and notifications) to whoever is waiting for them.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coap_lite::CoapOption;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::channel::{Receiver, Sender, TrySendError};
use smol::future::FutureExt;
use smol::{Async, Executor};

use super::ClientError;
use crate::wire::frame::{Frame, Token, is_request, is_response};
use crate::wire::link::{self, Dispatch, LinkState, Settings};

/// Notifications buffered per observation before it is dropped (the
/// observer then re-registers and catches up from its last index).
const OBSERVE_BUFFER: usize = 16;

enum Waiter {
    Once(Sender<Frame>),
    Observe(Sender<Frame>),
}

#[derive(Default)]
struct Pending {
    map: HashMap<Token, Waiter>,
    closed: bool,
}

type Shared = Arc<Mutex<Pending>>;

fn lock(p: &Shared) -> MutexGuard<'_, Pending> {
    // A panic while holding this lock leaves a consistent map (every
    // operation is a single insert or remove), so poisoning is ignored.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

struct ClientDispatch {
    pending: Shared,
}

impl Dispatch for ClientDispatch {
    fn message(&mut self, f: Frame) -> Result<Option<Frame>, String> {
        if is_request(f.code) {
            // Servers do not call clients (yet): say so rather than hang.
            let mut reply = Frame::new(0xA1, f.token);
            reply.payload = b"this peer serves no requests".to_vec();
            return Ok(Some(reply));
        }
        if !is_response(f.code) {
            return Ok(None);
        }
        let mut p = lock(&self.pending);
        let token = f.token;
        match p.map.get(&token) {
            None => {}
            Some(Waiter::Once(_)) => {
                if let Some(Waiter::Once(tx)) = p.map.remove(&token) {
                    let _ = tx.try_send(f);
                }
            }
            Some(Waiter::Observe(tx)) => {
                let last = f.options.get(CoapOption::Observe).is_none();
                match tx.try_send(f) {
                    Ok(()) if !last => {}
                    // Final response, observer gone, or observer too slow:
                    // forget the token; a slow observer re-registers.
                    _ => {
                        p.map.remove(&token);
                    }
                }
            }
        }
        Ok(None)
    }
}

async fn timed_out<T>(timeout: Duration, what: &str) -> Result<T, String> {
    smol::Timer::after(timeout).await;
    Err(format!("{what} timed out after {timeout:?}"))
}

/// A connection, ready for requests once `connect` returns.
pub(crate) struct Conn {
    pub addr: SocketAddr,
    out: Sender<Frame>,
    pending: Shared,
    state: Arc<LinkState>,
    next_token: AtomicU64,
    closed: Arc<AtomicBool>,
    /// Closing it ends the connection with a Release.
    _stop: Sender<()>,
}

impl Conn {
    /// Dials, runs the TLS handshake and waits for the server's CSM.
    pub async fn connect(
        addr: SocketAddr,
        connector: &TlsConnector,
        server_name: &ServerName<'static>,
        settings: &Settings,
        ex: &Executor<'static>,
    ) -> Result<Conn, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let timeout = settings.handshake_timeout;
        let tcp = async {
            Async::<TcpStream>::connect(addr)
                .await
                .map_err(|e| e.to_string())
        }
        .or(timed_out(timeout, "connect"))
        .await
        .map_err(unreachable)?;
        let _ = tcp.get_ref().set_nodelay(true);
        let tls = async {
            connector
                .connect(server_name.clone(), tcp)
                .await
                .map_err(|e| format!("tls handshake: {e}"))
        }
        .or(timed_out(timeout, "tls handshake"))
        .await
        .map_err(unreachable)?;

        let (state, out_tx, out_rx) = link::queue(settings, None);
        let pending: Shared = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let task = {
            let settings = settings.clone();
            let state = state.clone();
            let pending = pending.clone();
            let closed = closed.clone();
            let out_tx = out_tx.clone();
            async move {
                let mut dispatch = ClientDispatch {
                    pending: pending.clone(),
                };
                let stop = async {
                    let _ = stop_rx.recv().await;
                };
                link::run(tls, &settings, &state, out_rx, out_tx, stop, &mut dispatch).await;
                closed.store(true, Ordering::Relaxed);
                state.wake_csm_waiters();
                let mut p = lock(&pending);
                p.closed = true;
                // Dropping the senders tells every waiter the connection is gone.
                p.map.clear();
            }
        };
        // Detached: it ends by itself when the connection does, and the
        // connection ends when this `Conn` is dropped (via `_stop`).
        ex.spawn(task).detach();

        let csm = async {
            let _ = state.csm_rx.recv().await;
            Ok(())
        }
        .or(timed_out(timeout, "waiting for the server's CSM"))
        .await;
        if let Err(reason) = csm {
            return Err(unreachable(reason));
        }
        if !state.csm_seen.load(Ordering::Relaxed) {
            return Err(unreachable(
                "connection closed before the server's CSM".to_owned(),
            ));
        }
        Ok(Conn {
            addr,
            out: out_tx,
            pending,
            state,
            next_token: AtomicU64::new(1),
            closed,
            _stop: stop_tx,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn lost(&self, sent: bool) -> ClientError {
        ClientError::ConnectionLost {
            addr: self.addr.to_string(),
            sent,
        }
    }

    /// Registers a waiter under a fresh token and queues the frame.
    async fn start(
        &self,
        mut frame: Frame,
        waiter: impl FnOnce(Sender<Frame>) -> Waiter,
        buffer: usize,
    ) -> Result<(Token, Receiver<Frame>), ClientError> {
        frame.token = Token::from_u64(self.next_token.fetch_add(1, Ordering::Relaxed));
        if !self.state.fits(&frame) {
            return Err(ClientError::TooLarge {
                len: frame.encoded_len(),
                max: self.state.peer_max_message_size.load(Ordering::Relaxed),
            });
        }
        let (tx, rx) = smol::channel::bounded(buffer);
        {
            let mut p = lock(&self.pending);
            if p.closed {
                return Err(self.lost(false));
            }
            p.map.insert(frame.token, waiter(tx));
        }
        let token = frame.token;
        if self.out.send(frame).await.is_err() {
            self.forget(token);
            return Err(self.lost(false));
        }
        Ok((token, rx))
    }

    fn forget(&self, token: Token) {
        lock(&self.pending).map.remove(&token);
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, frame: Frame, timeout: Duration) -> Result<Frame, ClientError> {
        let (token, rx) = self.start(frame, Waiter::Once, 1).await?;
        let result = async { rx.recv().await.map_err(|_| self.lost(true)) }
            .or(async {
                smol::Timer::after(timeout).await;
                Err(ClientError::Timeout {
                    addr: self.addr.to_string(),
                    after: timeout,
                })
            })
            .await;
        self.forget(token);
        result
    }

    /// Registers an observation; notifications arrive on the receiver,
    /// which closes after the final response or when the connection ends.
    pub async fn observe(&self, frame: Frame) -> Result<(Token, Receiver<Frame>), ClientError> {
        self.start(frame, Waiter::Observe, OBSERVE_BUFFER).await
    }

    /// Ends an observation: forgets the token and sends the
    /// deregistration (`Observe: 1`, same token and URI) without waiting.
    pub fn deregister(&self, token: Token, mut register: Frame) {
        self.forget(token);
        register.token = token;
        // Without `index=` the server answers at once instead of running
        // a blocking query whose answer nobody waits for.
        let query: Vec<Vec<u8>> = register
            .options
            .get_all(CoapOption::UriQuery)
            .filter(|q| !q.starts_with(b"index="))
            .map(<[u8]>::to_vec)
            .collect();
        register.options.remove(CoapOption::UriQuery);
        for q in query {
            register.options.push(CoapOption::UriQuery, q);
        }
        register.options.remove(CoapOption::Observe);
        register.options.push_uint(CoapOption::Observe, 1);
        match self.out.try_send(register) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            // The queue is full: the server ends the observation with the
            // connection instead; nothing more to do here.
            Err(TrySendError::Full(_)) => {}
        }
    }
}
