//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, never
//! built into the agent). Each takes arbitrary bytes and must return
//! without panicking, however hostile the bytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use smol::io::{AsyncRead, AsyncWrite};
use wren_model::codec::{Limits, check_limits};

use super::frame::{self, Frame, FrameLimits, is_request, is_response, is_signal};
use super::link::{self, Dispatch, LinkState, Settings};
use super::request;
use super::response::{ApiError, Response};
use super::signal::Signal;

/// Decodes one frame; whatever decodes must re-encode to a frame that
/// decodes the same, and must survive every parser above the framing.
pub fn frame(data: &[u8]) {
    let limits = FrameLimits::default();
    let Ok(Some((f, used))) = frame::decode(data, &limits) else {
        return;
    };
    assert!(used <= data.len());
    let bytes = f.to_bytes().expect("a decoded frame re-encodes");
    let (back, n) = frame::decode(&bytes, &limits)
        .expect("a re-encoded frame decodes")
        .expect("a re-encoded frame is complete");
    assert_eq!(n, bytes.len());
    assert_eq!(back, f);
    inspect(&f);
}

fn inspect(f: &Frame) {
    if is_signal(f.code) {
        if let Ok(s) = Signal::from_frame(f) {
            let again = Signal::from_frame(&s.to_frame(f.token)).expect("a signal round-trips");
            assert_eq!(again, s);
        }
    } else if is_request(f.code) {
        if let Ok(p) = request::parse(f)
            && !f.payload.is_empty()
            && p.content_format != Some(super::response::JSON)
        {
            let _ = check_limits(&f.payload, Limits::default());
        }
    } else if is_response(f.code)
        && let Ok(r) = Response::from_frame(f)
    {
        let _ = r.as_error();
    }
}

/// Feeds the bytes to a connection's reader as a peer would send them
/// (the first byte picks how the stream is cut into reads), with a
/// dispatcher that validates requests as the server does. The connection
/// must end (Abort, close or end of input) without panicking.
pub fn link(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let settings = Settings::default();
    let stream = Script {
        input,
        pos: 0,
        chunk: usize::from(cut % 64) + 1,
        written: 0,
    };
    let (state, out_tx, out_rx) = link::queue(&settings, None);
    let mut dispatch = Validate { state: &state };
    let stop = std::future::pending::<()>();
    smol::block_on(link::run(
        stream,
        &settings,
        &state,
        out_rx,
        out_tx,
        stop,
        &mut dispatch,
    ));
}

struct Validate<'a> {
    state: &'a LinkState,
}

impl Dispatch for Validate<'_> {
    fn message(&mut self, f: Frame) -> Result<Option<Frame>, String> {
        if !is_request(f.code) {
            return Ok(None);
        }
        let json = match request::parse(&f) {
            Ok(p) => p.accept == Some(super::response::JSON),
            Err((e, json)) => {
                let reply = Response::error(&e, json).to_frame(f.token, None);
                return Ok(Some(super::server::fit(reply, self.state, json)));
            }
        };
        if !f.payload.is_empty() {
            check_limits(&f.payload, Limits::default()).map_err(|e| e.to_string())?;
        }
        let e = ApiError::not_found("fuzzing");
        Ok(Some(Response::error(&e, json).to_frame(f.token, None)))
    }
}

/// A peer that sends a fixed script in small reads and swallows writes.
struct Script<'a> {
    input: &'a [u8],
    pos: usize,
    chunk: usize,
    written: usize,
}

impl AsyncRead for Script<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let rest = self.input.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(self.chunk).min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Script<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
