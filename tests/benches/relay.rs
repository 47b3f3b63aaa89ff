//! What the packet relay costs compared with the plain bridge: echo round
//! trip (median of 2000 on one connection) and bulk TCP throughput (32 MiB,
//! median of 5), between two hosts of a net, first over the bridge, then
//! with one host behind a relay that delays and drops nothing. Needs root;
//! run with `cargo bench -p wren-tests --bench relay`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use wren_tests::impair::{Backend, Impairment};
use wren_tests::net::{HostId, Net};
use wren_tests::probe::{self, Echo};

const PATIENCE: Duration = Duration::from_secs(30);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn measure(net: &Net, echo: &Echo) -> (Duration, f64) {
    let a = HostId(0);
    let mut conn = probe::connect(net.ns(a), echo.addr(), PATIENCE).expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let rtts: Vec<Duration> = (0..2000)
        .map(|_| probe::echo_once(&mut conn, PATIENCE).expect("echo"))
        .collect();
    let total = 32usize << 20;
    let chunk = vec![7u8; 64 << 10];
    let mut rates = Vec::new();
    for _ in 0..5 {
        let mut c = probe::connect(net.ns(a), echo.addr(), PATIENCE).expect("connect");
        c.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut w = c.try_clone().expect("clone");
        let c2 = chunk.clone();
        let start = Instant::now();
        let writer = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < total {
                w.write_all(&c2).expect("write");
                sent += c2.len();
            }
        });
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0;
        while got < total {
            got += c.read(&mut buf).expect("read");
        }
        writer.join().expect("writer");
        // Echoed back: every byte crossed the link twice.
        rates.push(Duration::from_secs_f64(start.elapsed().as_secs_f64()));
    }
    let t = median(rates).as_secs_f64();
    (median(rtts), 2.0 * total as f64 / t / f64::from(1 << 20))
}

fn main() {
    if let Err(reason) = wren_tests::capability::netns() {
        println!("relay benchmark skipped: {reason}");
        return;
    }
    let net = Net::builder("bench")
        .hosts(&["a", "b"])
        .backend(Backend::Relay)
        .build()
        .expect("net");
    let b = HostId(1);
    let echo = Echo::start(net.ns(b), net.ip(b), 7100).expect("echo");
    wren_tests::eventually("b to answer", PATIENCE, || {
        probe::round_trip(net.ns(HostId(0)), echo.addr(), PATIENCE)
    })
    .expect("reachable");
    let (rtt_bridge, mib_bridge) = measure(&net, &echo);
    net.impair(HostId(0), Impairment::default()).expect("relay");
    let (rtt_relay, mib_relay) = measure(&net, &echo);
    println!("| path | echo round trip (median) | TCP throughput (median, MiB/s) |");
    println!("| --- | --- | --- |");
    println!(
        "| bridge | {:.0} us | {mib_bridge:.0} |",
        rtt_bridge.as_secs_f64() * 1e6
    );
    println!(
        "| relay, no impairment | {:.0} us | {mib_relay:.0} |",
        rtt_relay.as_secs_f64() * 1e6
    );
}
