//! Small real network programs for checking what a fault did, before (or
//! instead of) asking wren: a TCP echo server living in a namespace, a
//! timed echo round trip from another namespace, and reachability.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// How often echo threads look up to see whether to stop.
const POLL: Duration = Duration::from_millis(20);

/// A TCP echo server inside a namespace; stops on drop.
#[derive(Debug)]
pub struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    /// Listens on `ip:port` (port 0: any) inside `ns`.
    pub fn start(ns: &Netns, ip: Ipv4Addr, port: u16) -> std::io::Result<Echo> {
        let listener = ns
            .run_in(|| TcpListener::bind((ip, port)))
            .map_err(std::io::Error::other)??;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("echo-{addr}"))
            .spawn(move || serve(&listener, &flag))?;
        Ok(Echo {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, stop: &Arc<AtomicBool>) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let stop = Arc::clone(stop);
                conns.push(std::thread::spawn(move || echo(stream, &stop)));
            }
            // Nothing to accept: look again shortly (the listener is
            // non-blocking so that a stop is noticed).
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

fn echo(mut stream: TcpStream, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut buf = [0u8; 16 << 10];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if buf.get(..n).is_none_or(|b| stream.write_all(b).is_err()) {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Connects from inside `from` to `to` (at most `timeout` to connect).
pub fn connect(from: &Netns, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    from.run_in(|| TcpStream::connect_timeout(&to, timeout))
        .map_err(std::io::Error::other)?
}

/// Sends a few bytes on `stream` and waits (at most `timeout`) for them to
/// come back; returns how long that took.
pub fn echo_once(stream: &mut TcpStream, timeout: Duration) -> std::io::Result<Duration> {
    let msg = *b"wren-echo";
    let mut back = [0u8; 9];
    stream.set_read_timeout(Some(timeout))?;
    let start = Instant::now();
    stream.write_all(&msg)?;
    stream.read_exact(&mut back)?;
    if back != msg {
        return Err(std::io::Error::other("echo came back different"));
    }
    Ok(start.elapsed())
}

/// Connects and does one echo round trip, each step within `timeout`;
/// returns the round trip's duration.
pub fn round_trip(from: &Netns, to: SocketAddr, timeout: Duration) -> std::io::Result<Duration> {
    let mut s = connect(from, to, timeout)?;
    echo_once(&mut s, timeout)
}
