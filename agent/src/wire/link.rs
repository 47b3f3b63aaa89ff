//! One CoAP-over-TLS connection, either side: the reader that turns bytes
//! into frames, the writer that drains the outgoing queue, the CSM
//! exchange, Ping/Pong liveness and the rules for closing.
//!
//! Both halves run in one task (`zip`), so they share a waker and neither
//! can starve the other. Requests and responses are handed to a
//! `Dispatch`; it must not block (the server spawns a task per request),
//! so a slow handler never stops the connection. Anything malformed ends
//! the connection with an Abort that says why.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smol::channel::{Receiver, Sender, TrySendError};
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{
    self, DEFAULT_MAX_MESSAGE_SIZE, Frame, FrameLimits, Token, code_str, is_response, is_signal,
};
use super::signal::Signal;

/// Read space kept while a connection is idle.
const IDLE_READ_BUFFER: usize = 1024;
/// Write buffer capacity kept between writes.
const IDLE_WRITE_BUFFER: usize = 2048;

/// Limits and timeouts of a connection.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What we accept; our CSM advertises `max_message_size`.
    pub limits: FrameLimits,
    /// Send a Ping after this long without receiving anything.
    pub idle_timeout: Duration,
    /// Close when nothing arrives this long after a Ping.
    pub pong_timeout: Duration,
    /// Time for TCP connect (client), the TLS handshake and the peer's CSM.
    pub handshake_timeout: Duration,
    /// Close when a write makes no progress for this long.
    pub write_timeout: Duration,
    /// Requests (and observations) in progress per connection; more get
    /// 5.03 Service Unavailable.
    pub max_in_flight: usize,
    /// Connections a server holds at once; more are closed on accept.
    pub max_connections: usize,
    /// Frames queued for writing before senders wait.
    pub queue_len: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            limits: FrameLimits::default(),
            idle_timeout: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(45),
            max_in_flight: 128,
            max_connections: 4096,
            queue_len: 8,
        }
    }
}

/// What the two sides of one connection share.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// The peer's Max-Message-Size (1152 until its CSM says otherwise).
    pub peer_max_message_size: AtomicU32,
    /// Set once the peer's CSM has arrived.
    pub csm_seen: AtomicBool,
    /// Told (by closing) when the peer's first CSM arrives.
    csm_tx: Sender<()>,
    /// Waits for the peer's first CSM.
    pub csm_rx: Receiver<()>,
    /// Counts the Pings we send, when someone wants to know.
    pings: Option<Arc<AtomicU64>>,
}

impl LinkState {
    pub fn new(pings: Option<Arc<AtomicU64>>) -> LinkState {
        let (csm_tx, csm_rx) = smol::channel::bounded(1);
        LinkState {
            peer_max_message_size: AtomicU32::new(DEFAULT_MAX_MESSAGE_SIZE),
            csm_seen: AtomicBool::new(false),
            csm_tx,
            csm_rx,
            pings,
        }
    }

    /// Wakes everyone waiting for the peer's CSM: it arrived, or the
    /// connection ended without it (then `csm_seen` stays false).
    pub fn wake_csm_waiters(&self) {
        self.csm_tx.close();
    }

    /// Whether a frame fits what the peer accepts.
    pub fn fits(&self, f: &Frame) -> bool {
        f.encoded_len() <= self.peer_max_message_size.load(Ordering::Relaxed) as usize
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEnd {
    /// The peer closed the stream.
    Closed,
    /// The peer sent Release.
    Released,
    /// The peer sent Abort.
    AbortedByPeer(String),
    /// We sent Abort because the peer broke the protocol.
    Aborted(String),
    /// No Pong (nor anything else) arrived after a Ping.
    Unresponsive,
    /// We were asked to stop (server shutdown, client dropped).
    Shutdown,
    /// Reading or writing failed.
    Io(String),
}

/// Receives requests and responses from the reader.
pub(crate) trait Dispatch {
    /// A request or response arrived. Returns a frame to send at once
    /// (an immediate error response), or an Abort diagnostic.
    fn message(&mut self, frame: Frame) -> Result<Option<Frame>, String>;
}

enum Control {
    Send(Frame),
    Close(Option<Frame>),
}

enum Wake {
    Read(std::io::Result<usize>),
    Timeout,
    Stop,
}

/// Runs a connection until it ends. Our CSM is written first; frames from
/// `outgoing` follow. `stop` ends the connection with a Release when it
/// yields or closes.
pub(crate) async fn run<S, D>(
    stream: S,
    settings: &Settings,
    state: &LinkState,
    outgoing: Receiver<Frame>,
    out_tx: Sender<Frame>,
    stop: impl Future<Output = ()>,
    dispatch: &mut D,
) -> LinkEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Dispatch,
{
    let (mut rd, mut wr) = smol::io::split(stream);
    let (ctl_tx, ctl_rx) = smol::channel::bounded::<Control>(8);
    let (writer_done_tx, writer_done_rx) = smol::channel::bounded::<()>(1);
    let csm = Signal::Csm {
        max_message_size: Some(settings.limits.max_message_size),
        block_wise: false,
    }
    .to_frame(Token::EMPTY);

    let reader = async {
        let end = read_loop(
            &mut rd,
            settings,
            state,
            &ctl_tx,
            &out_tx,
            stop,
            &writer_done_rx,
            dispatch,
        )
        .await;
        let close = match &end {
            LinkEnd::Aborted(why) => Some(Signal::abort(why.clone()).to_frame(Token::EMPTY)),
            LinkEnd::Shutdown => Some(
                Signal::Release {
                    alternative_address: None,
                    hold_off: None,
                    diagnostic: "shutting down".to_owned(),
                }
                .to_frame(Token::EMPTY),
            ),
            _ => None,
        };
        // The writer may already be gone; then there is nobody to tell.
        let _ = ctl_tx.try_send(Control::Close(close));
        ctl_tx.close();
        end
    };
    let writer = async {
        let end = write_loop(&mut wr, settings, state, csm, &ctl_rx, &outgoing).await;
        drop(writer_done_tx);
        end
    };
    let (read_end, write_end) = smol::future::zip(reader, writer).await;
    match (read_end, write_end) {
        (LinkEnd::Shutdown, Err(e)) => LinkEnd::Io(e),
        (end, _) => end,
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_loop<R: AsyncRead + Unpin, D: Dispatch>(
    rd: &mut R,
    settings: &Settings,
    state: &LinkState,
    ctl: &Sender<Control>,
    out: &Sender<Frame>,
    stop: impl Future<Output = ()>,
    writer_done: &Receiver<()>,
    dispatch: &mut D,
) -> LinkEnd {
    let limits = settings.limits;
    let mut stop = std::pin::pin!(stop);
    // `buf[start..end]` holds received bytes not yet decoded; the rest of
    // `buf` is zeroed space to read into, reused so reads never re-zero it.
    let mut buf: Vec<u8> = Vec::new();
    let (mut start, mut end) = (0usize, 0usize);
    let mut last_rx = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut ping_token = 0u64;
    loop {
        // Decode every whole frame received.
        loop {
            let rest = buf.get(start..end).unwrap_or(&[]);
            match frame::decode(rest, &limits) {
                Ok(Some((f, used))) => {
                    start += used;
                    if let Some(over) = handle(f, state, ctl, out, writer_done, dispatch).await {
                        return over;
                    }
                }
                Ok(None) => break,
                Err(e) => return LinkEnd::Aborted(e.to_string()),
            }
        }
        if start == end {
            (start, end) = (0, 0);
            if buf.len() > IDLE_READ_BUFFER {
                // Give back what a large message took: idle connections
                // are what a server has most of.
                buf = Vec::new();
            }
        }

        // Read at least what the frame in progress still needs.
        let pending = buf.get(start..end).unwrap_or(&[]);
        let want = match frame::frame_len(pending, &limits) {
            Ok(Some(total)) => total.saturating_sub(pending.len()).clamp(1024, 64 * 1024),
            Ok(None) => IDLE_READ_BUFFER,
            Err(e) => return LinkEnd::Aborted(e.to_string()),
        };
        if buf.len() - end < want {
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            if buf.len() - end < want {
                buf.resize(end + want, 0);
            }
        }
        let have = end;
        let deadline = match ping_sent {
            Some(sent) => sent + settings.pong_timeout,
            None => last_rx + settings.idle_timeout,
        };
        let wake = async { Wake::Read(rd.read(buf.get_mut(have..).unwrap_or(&mut [])).await) }
            .or(async {
                smol::Timer::at(deadline).await;
                Wake::Timeout
            })
            .or(async {
                stop.as_mut().await;
                Wake::Stop
            })
            .or(async {
                let _ = writer_done.recv().await;
                Wake::Stop
            })
            .await;
        match wake {
            Wake::Read(Ok(0)) => return LinkEnd::Closed,
            Wake::Read(Ok(n)) => {
                end = have + n;
                last_rx = Instant::now();
                // Any bytes prove the peer is there.
                ping_sent = None;
            }
            Wake::Read(Err(e)) => return LinkEnd::Io(e.to_string()),
            Wake::Timeout => {
                if ping_sent.is_some() {
                    return LinkEnd::Unresponsive;
                }
                ping_token += 1;
                let ping = Signal::Ping { custody: false }.to_frame(Token::from_u64(ping_token));
                if ctl.try_send(Control::Send(ping)).is_err() {
                    return LinkEnd::Unresponsive;
                }
                ping_sent = Some(Instant::now());
                if let Some(p) = &state.pings {
                    p.fetch_add(1, Ordering::Relaxed);
                }
            }
            Wake::Stop => return LinkEnd::Shutdown,
        }
    }
}

/// Handles one frame; `Some` ends the connection.
async fn handle<D: Dispatch>(
    f: Frame,
    state: &LinkState,
    ctl: &Sender<Control>,
    out: &Sender<Frame>,
    writer_done: &Receiver<()>,
    dispatch: &mut D,
) -> Option<LinkEnd> {
    let first = !state.csm_seen.load(Ordering::Relaxed);
    if first && f.code != frame::signal_code::CSM {
        return Some(LinkEnd::Aborted(format!(
            "first message must be a CSM, got {}",
            code_str(f.code)
        )));
    }
    if is_signal(f.code) {
        let signal = match Signal::from_frame(&f) {
            Ok(s) => s,
            Err(e) => return Some(LinkEnd::Aborted(e.to_string())),
        };
        match signal {
            Signal::Csm {
                max_message_size, ..
            } => {
                if let Some(m) = max_message_size {
                    state.peer_max_message_size.store(m, Ordering::Relaxed);
                }
                if first {
                    state.csm_seen.store(true, Ordering::Relaxed);
                    state.wake_csm_waiters();
                }
            }
            Signal::Ping { .. } => {
                let pong = Signal::Pong { custody: false }.to_frame(f.token);
                match ctl.try_send(Control::Send(pong)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        return Some(LinkEnd::Aborted("too many pings unanswered".to_owned()));
                    }
                    Err(TrySendError::Closed(_)) => return Some(LinkEnd::Closed),
                }
            }
            Signal::Pong { .. } => {}
            Signal::Release { .. } => return Some(LinkEnd::Released),
            Signal::Abort { diagnostic, .. } => return Some(LinkEnd::AbortedByPeer(diagnostic)),
        }
        return None;
    }
    if f.code == 0 {
        // Empty messages are always allowed and always ignored.
        return None;
    }
    if !frame::is_request(f.code) && !is_response(f.code) {
        return Some(LinkEnd::Aborted(format!(
            "code {} is neither a request nor a response",
            code_str(f.code)
        )));
    }
    match dispatch.message(f) {
        Ok(Some(reply)) => {
            // The queue may be full behind a stalled writer; stop waiting
            // when the writer gives up.
            let sent = async { out.send(reply).await.is_ok() }
                .or(async {
                    let _ = writer_done.recv().await;
                    false
                })
                .await;
            if sent { None } else { Some(LinkEnd::Shutdown) }
        }
        Ok(None) => None,
        Err(why) => Some(LinkEnd::Aborted(why)),
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: &mut W,
    settings: &Settings,
    state: &LinkState,
    csm: Frame,
    ctl: &Receiver<Control>,
    out: &Receiver<Frame>,
) -> Result<(), String> {
    let mut buf = Vec::new();
    csm.encode(&mut buf).map_err(|e| e.to_string())?;
    write_timed(wr, &buf, settings.write_timeout).await?;
    loop {
        buf.clear();
        if buf.capacity() > IDLE_WRITE_BUFFER {
            buf = Vec::new();
        }
        // Control frames first: a Pong must not wait behind responses.
        let next = async { ctl.recv().await.ok() }
            .or(async { out.recv().await.ok().map(Control::Send) })
            .await;
        let mut closing = None;
        match next {
            Some(Control::Send(f)) => push(&mut buf, f, state),
            Some(Control::Close(f)) => closing = Some(f),
            // The reader is gone and nothing more will be sent.
            None => closing = Some(None),
        }
        // Batch whatever else is ready into one write.
        while closing.is_none() && buf.len() < 64 * 1024 {
            if let Ok(c) = ctl.try_recv() {
                match c {
                    Control::Send(f) => push(&mut buf, f, state),
                    Control::Close(f) => closing = Some(f),
                }
            } else if let Ok(f) = out.try_recv() {
                push(&mut buf, f, state);
            } else {
                break;
            }
        }
        if let Some(last) = closing {
            if let Some(f) = last {
                let _ = f.encode(&mut buf);
            }
            if !buf.is_empty() {
                write_timed(wr, &buf, settings.write_timeout).await?;
            }
            // Best effort: send TLS close_notify.
            let _ = async { wr.close().await.map_err(|e| e.to_string()) }
                .or(async {
                    smol::Timer::after(settings.write_timeout).await;
                    Err("close timed out".to_owned())
                })
                .await;
            return Ok(());
        }
        write_timed(wr, &buf, settings.write_timeout).await?;
    }
}

/// Encodes a frame, replacing a response the peer could not receive by a
/// 5.00 that says so (the handler side checks first; this is the backstop).
fn push(buf: &mut Vec<u8>, f: Frame, state: &LinkState) {
    if state.fits(&f) {
        if f.encode(buf).is_ok() {
            return;
        }
    } else if !is_response(f.code) {
        // A request that does not fit is refused before it is queued.
        return;
    }
    let mut err = Frame::new(0xA0, f.token);
    err.payload = format!(
        "response of {} bytes exceeds the peer's Max-Message-Size of {}",
        f.encoded_len(),
        state.peer_max_message_size.load(Ordering::Relaxed)
    )
    .into_bytes();
    let _ = err.encode(buf);
}

async fn write_timed<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    async {
        wr.write_all(bytes).await.map_err(|e| e.to_string())?;
        wr.flush().await.map_err(|e| e.to_string())
    }
    .or(async {
        smol::Timer::after(timeout).await;
        Err(format!(
            "write of {} bytes did not finish within {timeout:?}",
            bytes.len()
        ))
    })
    .await
}

/// An `Arc`'d state with a fresh outgoing queue.
pub(crate) fn queue(
    settings: &Settings,
    pings: Option<Arc<AtomicU64>>,
) -> (Arc<LinkState>, Sender<Frame>, Receiver<Frame>) {
    let (tx, rx) = smol::channel::bounded(settings.queue_len.max(1));
    (Arc::new(LinkState::new(pings)), tx, rx)
}
