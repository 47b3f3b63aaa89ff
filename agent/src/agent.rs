//! Running the agent: one executor with a few threads, the wire listener,
//! server mode and client mode on it, and a clean stop on SIGINT/SIGTERM.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use smol::Executor;

use crate::config::AgentConfig;
use crate::server::{self, Server};
use crate::wire::{self, Router, Settings, TlsMaterial};

/// This machine's host name, or `wren` when it has none.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wren".to_owned())
}

/// Writes a file so that a crash leaves the old or the new contents, never
/// a mix: write a temporary file, fsync it, rename it over, fsync the dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The address other agents should use to reach this one.
pub fn advertise_addr(config: &AgentConfig) -> SocketAddr {
    if let Some(a) = config.advertise {
        return a;
    }
    if !config.bind_addr.is_unspecified() {
        return SocketAddr::new(config.bind_addr, config.port);
    }
    // Bound to every address: advertise the one the default route uses
    // (connecting a UDP socket sends nothing).
    let ip = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, config.port)
}

/// Threads in smol's `unblock` pool. The `blocking` crate (1.7) grows its
/// pool under a burst and never retires an idle thread while the pool is
/// within its limit (500 by default): starting a few hundred allocations at
/// once left ~500 idle threads, ~70 MiB of stacks and arenas, in the client
/// for good (scripts/bench-footprint). The agent's blocking work is short
/// (an fsync, starting a shim, removing an alloc dir, an `alloc exec` with
/// a timeout), so a few threads suffice; extra work queues.
/// `BLOCKING_MAX_THREADS` in the environment still wins.
const BLOCKING_THREADS: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(15);

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(config: AgentConfig) -> anyhow::Result<()> {
    if std::env::var_os("BLOCKING_MAX_THREADS").is_none() {
        blocking::set_max_blocking_threads(BLOCKING_THREADS);
    }
    crate::memory::tune_heap();
    let data_dir: PathBuf = config.data_dir.clone().context("data_dir is required")?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;

    // Signals are taken by one thread with sigwait; every other thread
    // inherits the mask, so none is interrupted.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .context("blocking SIGINT and SIGTERM")?;

    let threads = if config.server.enabled {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 4)
    } else {
        1
    };
    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut workers = Vec::new();
    for i in 0..threads {
        let ex = ex.clone();
        let stop = stop_rx.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("wren-{i}"))
                .spawn(move || smol::block_on(ex.run(async { stop.recv().await.ok() })))
                .context("starting an executor thread")?,
        );
    }
    let (signal_tx, signal_rx) = smol::channel::bounded::<Signal>(1);
    std::thread::Builder::new()
        .name("wren-signals".into())
        .spawn(move || {
            while let Ok(sig) = signals.wait() {
                if signal_tx.try_send(sig).is_err() {
                    // A second signal while stopping: stop now.
                    std::process::exit(130);
                }
            }
        })
        .context("starting the signal thread")?;

    let result = smol::block_on(ex.run(serve(config, data_dir, ex.clone(), signal_rx)));
    stop_tx.close();
    for w in workers {
        let _ = w.join();
    }
    result
}

async fn serve(
    config: AgentConfig,
    data_dir: PathBuf,
    ex: Arc<Executor<'static>>,
    signals: smol::channel::Receiver<Signal>,
) -> anyhow::Result<()> {
    let tls = {
        let t = &config.tls;
        let (Some(ca), Some(cert), Some(key)) = (&t.ca_file, &t.cert_file, &t.key_file) else {
            anyhow::bail!("tls {{ ca_file, cert_file, key_file }} are required");
        };
        TlsMaterial::load(ca, cert, key).context("loading the agent's TLS material")?
    };
    let advertise = advertise_addr(&config);
    let mut router = Router::new();
    let server = if config.server.enabled {
        let s = Server::open(
            &config,
            &data_dir,
            advertise.to_string(),
            &tls,
            ex.clone(),
            &mut router,
        )
        .await
        .context("starting server mode")?;
        Some(s)
    } else {
        None
    };
    let client = crate::client::start_mode(&config, &data_dir, &tls, &ex, &mut router).await?;
    let bind = SocketAddr::new(config.bind_addr, config.port);
    let listener = wire::Server::bind(bind, &tls, router, Settings::default(), ex.clone())
        .with_context(|| format!("listening on {bind}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    if let Some(c) = &client {
        c.start(crate::client::advertised(advertise, local));
    }
    eprintln!(
        "wren agent: {} listening on coaps+tcp://{local} (advertised as {advertise}), region {}, datacenter {}",
        modes(&config),
        config.region,
        config.datacenter
    );
    let listener = Arc::new(listener);
    let serving = ex.spawn({
        let l = listener.clone();
        async move { l.run().await }
    });
    if let Some(s) = &server {
        server::bootstrap::spawn(s, &config);
    }
    let _trimmer = crate::memory::spawn_trimmer(&ex);

    let sig = signals.recv().await.ok();
    eprintln!(
        "wren agent: {} received, stopping",
        sig.map_or("signal", |s| s.as_str())
    );
    if let Some(c) = &client {
        c.stop();
    }
    listener.shutdown();
    serving.await;
    if let Some(s) = server {
        s.sched.stop();
        let _ = s.core.node.shutdown().await;
    }
    Ok(())
}

fn modes(config: &AgentConfig) -> &'static str {
    match (config.server.enabled, config.client.enabled) {
        (true, true) => "server and client",
        (true, false) => "server",
        (false, true) => "client",
        (false, false) => "nothing",
    }
}
