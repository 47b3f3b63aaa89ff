//! The wire on loopback: requests per second and p50/p99 latency of a
//! small CBOR request over one connection and over 100 concurrent
//! connections, and the server's memory per idle connection (RSS delta
//! over 1,000 idle connections).
//!
//! `cargo bench -p wren-agent --bench wire` (release profile). The server
//! runs in a child process (this binary, re-executed) so its RSS is its
//! own; each side's executor has 2 threads. Every figure is the median of
//! five rounds.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use minicbor::{Decode, Encode};
use serde::{Deserialize, Serialize};
use smol::Executor;
use wren_agent::wire::pki::{CertRequest, create_ca, create_cert};
use wren_agent::wire::{
    Client, ClientConfig, ClientSettings, Method, Request, Role, Roles, Router, Server, Settings,
    TlsMaterial,
};

const ROUNDS: usize = 5;
const ONE_CONN_REQUESTS: usize = 10_000;
const CONNS: usize = 100;
const PER_CONN_REQUESTS: usize = 200;
const IDLE_CONNS: usize = 1000;

/// The request and response body: small, like a heartbeat.
#[derive(Debug, Clone, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
struct Beat {
    #[n(0)]
    node: String,
    #[n(1)]
    seq: u64,
    #[n(2)]
    status: String,
}

/// What `/v1/bench/stats` returns.
#[derive(Debug, Clone, Encode, Decode, Serialize, Deserialize)]
#[cbor(map)]
struct Active {
    #[n(0)]
    connections: u64,
}

fn threads(ex: &Arc<Executor<'static>>, n: usize) -> smol::channel::Sender<()> {
    let (stop, rx) = smol::channel::bounded::<()>(1);
    for _ in 0..n {
        let (ex, rx) = (ex.clone(), rx.clone());
        std::thread::spawn(move || {
            smol::block_on(ex.run(async {
                let _ = rx.recv().await;
            }))
        });
    }
    stop
}

fn material(dir: &Path, name: &str) -> TlsMaterial {
    TlsMaterial::load(
        &dir.join("ca.pem"),
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}-key.pem")),
    )
    .expect("tls material")
}

/// The child: serve until stdin closes.
fn serve(dir: &Path) {
    let ex = Arc::new(Executor::new());
    let _stop = threads(&ex, 2);
    let server_slot: Arc<OnceLock<Arc<Server>>> = Arc::new(OnceLock::new());
    let mut router = Router::new();
    router.route(
        Method::Put,
        "/v1/bench/echo",
        Roles::ANY,
        |req: Request| async move {
            let beat: Beat = req.decode()?;
            Ok(req.reply(&beat))
        },
    );
    let slot = server_slot.clone();
    router.route(
        Method::Get,
        "/v1/bench/stats",
        Roles::ANY,
        move |req: Request| {
            let slot = slot.clone();
            async move {
                let connections = slot.get().map_or(0, |s| s.stats().active);
                Ok(req.reply(&Active { connections }))
            }
        },
    );
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        &material(dir, "server"),
        router,
        Settings::default(),
        ex.clone(),
    )
    .expect("bind");
    let server = Arc::new(server);
    let _ = server_slot.set(server.clone());
    println!("{}", server.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let s = server.clone();
    ex.spawn(async move { s.run().await }).detach();
    // Parent closes our stdin when done.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// A server in a child process.
struct Child {
    proc: std::process::Child,
    addr: SocketAddr,
    pid: u32,
}

fn spawn_server(dir: &Path) -> Child {
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .env("WREN_BENCH_SERVE", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server child");
    let mut line = String::new();
    BufReader::new(proc.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().expect("server address");
    let pid = proc.id();
    Child { proc, addr, pid }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.proc.stdin.take());
        let _ = self.proc.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn client(ex: &Arc<Executor<'static>>, dir: &Path, addr: SocketAddr) -> Client {
    let config = ClientConfig {
        addresses: vec![addr.to_string().parse().unwrap()],
        tls: material(dir, "cli"),
        settings: ClientSettings::default(),
    };
    Client::new(config, ex.clone()).expect("client")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Round {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn run_requests(clients: &[Client], per_client: usize, ex: &Arc<Executor<'static>>) -> Round {
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.clone();
            ex.spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for seq in 0..per_client as u64 {
                    let beat = Beat {
                        node: format!("node-{i}"),
                        seq,
                        status: "ready".into(),
                    };
                    let t = Instant::now();
                    let (back, _): (Beat, _) =
                        c.send(Method::Put, "/v1/bench/echo", &beat).await.unwrap();
                    lat.push(t.elapsed());
                    assert_eq!(back.seq, seq);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await);
    }
    let elapsed = start.elapsed();
    all.sort();
    Round {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

fn report(name: &str, rounds: Vec<Round>) {
    let rps = median(rounds.iter().map(|r| r.rps).collect());
    let p50 = median(rounds.iter().map(|r| r.p50).collect());
    let p99 = median(rounds.iter().map(|r| r.p99).collect());
    println!(
        "{name:<28} {rps:>10.0} req/s   p50 {:>8.1} us   p99 {:>8.1} us",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

fn main() {
    if let Ok(dir) = std::env::var("WREN_BENCH_SERVE") {
        serve(Path::new(&dir));
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("wren-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = create_ca(2).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.cert).unwrap();
    for (name, role) in [("server", Role::Server), ("cli", Role::Cli)] {
        let pair = create_cert(&ca, &CertRequest::new(role, "global")).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), &pair.cert).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), &pair.key).unwrap();
    }

    let child = spawn_server(&dir);
    let addr = child.addr;
    let pid = child.pid;
    let ex = Arc::new(Executor::new());
    let _stop = threads(&ex, 2);
    println!(
        "wire benchmark: loopback, server in pid {pid}, 2+2 executor threads, median of {ROUNDS} rounds"
    );

    smol::block_on(ex.run(async {
        // One connection.
        let one = client(&ex, &dir, addr);
        run_requests(std::slice::from_ref(&one), 500, &ex).await;
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            rounds.push(run_requests(std::slice::from_ref(&one), ONE_CONN_REQUESTS, &ex).await);
        }
        report("1 connection", rounds);

        // 100 connections at once.
        let many: Vec<Client> = (0..CONNS).map(|_| client(&ex, &dir, addr)).collect();
        run_requests(&many, 10, &ex).await;
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            rounds.push(run_requests(&many, PER_CONN_REQUESTS, &ex).await);
        }
        report(&format!("{CONNS} connections"), rounds);
        drop(many);
        drop(one);

        // Memory per idle connection: a fresh server per round (a used
        // allocator would hand freed memory back out and hide the cost),
        // warmed up by one connection, then 1,000 more left idle.
        drop(child);
        let mut per_conn = Vec::new();
        let mut end_rss = 0;
        for _ in 0..ROUNDS {
            let server = spawn_server(&dir);
            let probe = client(&ex, &dir, server.addr);
            let active = |c: Client| async move {
                let (a, _): (Active, _) = c.get("/v1/bench/stats").await.unwrap();
                a.connections
            };
            assert_eq!(active(probe.clone()).await, 1);
            let before = rss_kib(server.pid);
            let idle: Vec<Client> = (0..IDLE_CONNS).map(|_| client(&ex, &dir, server.addr)).collect();
            for chunk in idle.chunks(50) {
                let opens: Vec<_> = chunk
                    .iter()
                    .map(|c| {
                        let c = c.clone();
                        ex.spawn(async move { c.get::<Active>("/v1/bench/stats").await.unwrap() })
                    })
                    .collect();
                for o in opens {
                    o.await;
                }
            }
            assert_eq!(active(probe.clone()).await, IDLE_CONNS as u64 + 1);
            let after = rss_kib(server.pid);
            end_rss = after;
            per_conn.push((after.saturating_sub(before)) as f64 * 1024.0 / IDLE_CONNS as f64);
        }
        println!(
            "{:<28} {:>10.0} bytes of server RSS per idle connection (rounds: {:?}, RSS with them {} KiB)",
            format!("{IDLE_CONNS} idle connections"),
            median(per_conn.clone()),
            per_conn.iter().map(|b| b.round() as u64).collect::<Vec<_>>(),
            end_rss,
        );
    }));

    let _ = std::fs::remove_dir_all(&dir);
}
