//! The harness's network faults, checked with real sockets: hosts reach
//! each other over the bridge; a cut link, a partition and an isolated
//! host stop traffic exactly where they should and heal; delay and loss
//! show up in what a host sends; namespaces go away on drop (panics
//! included) and stale ones of dead test processes are swept.
//!
//! "Blocked" is checked with one short attempt (a healthy veth answers in
//! well under a millisecond, so a slow machine can only make a blocked
//! check pass more easily, never fail it), "reachable" by polling with a
//! generous deadline.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use wren_tests::impair::{Backend, Impairment};
use wren_tests::net::{HostId, Net, NetError};
use wren_tests::probe::{self, Echo};
use wren_tests::{eventually, netns, require_netns};

const PORT: u16 = 7000;
const BLOCKED: Duration = Duration::from_millis(300);
const PATIENCE: Duration = Duration::from_secs(30);

fn echo_on(net: &Net, id: HostId) -> Echo {
    Echo::start(net.ns(id), net.ip(id), PORT).expect("echo server starts")
}

fn reaches(net: &Net, from: HostId, to: SocketAddr) -> bool {
    probe::round_trip(net.ns(from), to, BLOCKED).is_ok()
}

fn eventually_reaches(net: &Net, from: HostId, to: SocketAddr) {
    eventually(
        &format!("{} to reach {to}", net.host(from).name()),
        PATIENCE,
        || probe::round_trip(net.ns(from), to, Duration::from_secs(2)),
    )
    .unwrap();
}

#[test]
fn hosts_reach_each_other_over_the_bridge() {
    if !require_netns("hosts_reach_each_other_over_the_bridge") {
        return;
    }
    let net = Net::new("reach", &["a", "b", "c"]).unwrap();
    let ids: Vec<HostId> = net.ids().collect();
    let echoes: Vec<Echo> = ids.iter().map(|&h| echo_on(&net, h)).collect();
    for &from in &ids {
        for e in &echoes {
            eventually_reaches(&net, from, e.addr());
        }
    }
    // Each host has its address on eth0 and nothing else but loopback.
    let a = net.find("a").unwrap();
    let addrs = net.ns(a).ip(["-4", "-o", "addr"]).unwrap();
    assert!(addrs.contains(&format!("{}/24", net.ip(a))), "{addrs}");
    assert_eq!(addrs.lines().count(), 2, "{addrs}");
}

#[test]
fn a_cut_link_blocks_everything_until_restored() {
    if !require_netns("a_cut_link_blocks_everything_until_restored") {
        return;
    }
    let net = Net::new("cut", &["a", "b"]).unwrap();
    let (a, b) = (HostId(0), HostId(1));
    let (ea, eb) = (echo_on(&net, a), echo_on(&net, b));
    eventually_reaches(&net, a, eb.addr());
    net.cut(a).unwrap();
    assert!(!reaches(&net, a, eb.addr()));
    assert!(!reaches(&net, b, ea.addr()));
    let carrier = net.ns(a).ip(["link", "show", "eth0"]).unwrap();
    assert!(carrier.contains("NO-CARRIER"), "{carrier}");
    net.restore(a).unwrap();
    eventually_reaches(&net, a, eb.addr());
    eventually_reaches(&net, b, ea.addr());
}

#[test]
fn a_partition_separates_two_groups_and_nobody_else() {
    if !require_netns("a_partition_separates_two_groups_and_nobody_else") {
        return;
    }
    let net = Net::new("part", &["a", "b", "c", "d"]).unwrap();
    let [a, b, c, d] = [0, 1, 2, 3].map(HostId);
    let e: Vec<Echo> = [a, b, c, d].iter().map(|&h| echo_on(&net, h)).collect();
    for &h in &[a, b, c, d] {
        for x in &e {
            eventually_reaches(&net, h, x.addr());
        }
    }
    net.partition(&[a, b], &[c]).unwrap();
    // Within a group and to the outsider: fine.
    assert!(reaches(&net, a, e[1].addr()));
    assert!(reaches(&net, d, e[0].addr()));
    assert!(reaches(&net, d, e[2].addr()));
    assert!(reaches(&net, c, e[3].addr()));
    // Across: nothing, in either direction.
    for (from, to) in [(a, 2), (b, 2), (c, 0), (c, 1)] {
        assert!(!reaches(&net, from, e[to].addr()), "{from:?} reached {to}");
    }
    net.heal_partitions().unwrap();
    eventually_reaches(&net, a, e[2].addr());
    eventually_reaches(&net, c, e[1].addr());

    net.isolate(d).unwrap();
    for x in &e[..3] {
        assert!(!reaches(&net, d, x.addr()));
    }
    assert!(!reaches(&net, a, e[3].addr()));
    assert!(reaches(&net, a, e[2].addr()));
    net.heal().unwrap();
    eventually_reaches(&net, d, e[0].addr());
}

#[test]
fn a_partition_stalls_an_open_connection_silently_and_healing_resumes_it() {
    if !require_netns("a_partition_stalls_an_open_connection_silently_and_healing_resumes_it") {
        return;
    }
    let net = Net::new("stall", &["a", "b"]).unwrap();
    let (a, b) = (HostId(0), HostId(1));
    let eb = echo_on(&net, b);
    eventually_reaches(&net, a, eb.addr());
    let mut conn = probe::connect(net.ns(a), eb.addr(), PATIENCE).unwrap();
    probe::echo_once(&mut conn, PATIENCE).unwrap();
    net.partition(&[a], &[b]).unwrap();
    // No RST, no ICMP: the write succeeds and the answer just does not come.
    let err = probe::echo_once(&mut conn, BLOCKED).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    net.heal().unwrap();
    // TCP retransmits; the stalled echo arrives on the same connection.
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut back = [0u8; 9];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"wren-echo");
}

/// One host's outgoing delay, both ways round: a round trip started by
/// the delayed host and one answered by it each take at least the delay.
fn check_delay(net: &Net) {
    let (a, b) = (HostId(0), HostId(1));
    let (ea, eb) = (echo_on(net, a), echo_on(net, b));
    eventually_reaches(net, a, eb.addr());
    let delay = Duration::from_millis(300);
    net.impair(a, Impairment::delay(delay)).unwrap();
    for (from, to) in [(a, eb.addr()), (b, ea.addr())] {
        let mut conn = eventually("a connection under delay", PATIENCE, || {
            probe::connect(net.ns(from), to, Duration::from_secs(5))
        })
        .unwrap();
        let rtt = probe::echo_once(&mut conn, Duration::from_secs(10)).unwrap();
        assert!(rtt >= delay, "round trip {rtt:?} under a {delay:?} delay");
    }
    net.clear_impairment(a).unwrap();
    eventually_reaches(net, a, eb.addr());
    // The fastest of a few round trips is far below the delay again.
    let mut conn = probe::connect(net.ns(a), eb.addr(), PATIENCE).unwrap();
    let best = (0..5)
        .map(|_| probe::echo_once(&mut conn, PATIENCE).unwrap())
        .min()
        .unwrap();
    assert!(
        best < delay,
        "round trip {best:?} after the delay was cleared"
    );
}

#[test]
fn relay_delay_applies_to_what_the_host_sends() {
    if !require_netns("relay_delay_applies_to_what_the_host_sends") {
        return;
    }
    let net = Net::builder("rdelay")
        .hosts(&["a", "b"])
        .backend(Backend::Relay)
        .build()
        .unwrap();
    check_delay(&net);
}

#[test]
fn netem_delay_where_the_kernel_has_netem() {
    if !require_netns("netem_delay_where_the_kernel_has_netem") {
        return;
    }
    match Net::builder("ndelay")
        .hosts(&["a", "b"])
        .backend(Backend::Netem)
        .build()
    {
        Ok(net) => check_delay(&net),
        // This kernel lacks sch_netem: asking for it must say so plainly
        // (and Auto must then fall back to the relay).
        Err(NetError::NetemUnavailable) => {
            eprintln!("this kernel has no sch_netem; checking the fallback instead");
            let auto = Net::new("nauto", &[]).unwrap();
            assert_eq!(auto.backend(), Backend::Relay);
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn loss_drops_about_the_asked_share_and_tcp_still_delivers() {
    if !require_netns("loss_drops_about_the_asked_share_and_tcp_still_delivers") {
        return;
    }
    let net = Net::builder("loss")
        .hosts(&["a", "b"])
        .backend(Backend::Relay)
        .build()
        .unwrap();
    let (a, b) = (HostId(0), HostId(1));
    let eb = echo_on(&net, b);
    // A round trip first, so ARP is resolved before frames get lost.
    eventually_reaches(&net, a, eb.addr());

    let rx = net
        .ns(b)
        .run_in(|| UdpSocket::bind((net.ip(b), PORT + 1)))
        .unwrap()
        .unwrap();
    setsockopt(&rx, sockopt::RcvBufForce, &(8 << 20)).unwrap();
    rx.set_read_timeout(Some(PATIENCE)).unwrap();
    let tx = net
        .ns(a)
        .run_in(|| UdpSocket::bind((net.ip(a), 0)))
        .unwrap()
        .unwrap();
    let to = rx.local_addr().unwrap();

    let (n, p) = (1000u32, 0.3);
    net.impair(a, Impairment::loss(p)).unwrap();
    for i in 0..n {
        tx.send_to(&i.to_be_bytes(), to).unwrap();
    }
    // Then end markers until one gets through: the link keeps order, so
    // every datagram that survived arrives before the first marker.
    let done = std::sync::atomic::AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tx.send_to(b"end", to).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut got = 0u32;
        let mut buf = [0u8; 16];
        loop {
            let len = rx.recv(&mut buf).expect("an end marker arrives");
            if buf.get(..len) == Some(&b"end"[..]) {
                break;
            }
            got += 1;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        got
    });
    // Binomial(1000, 0.7): mean 700, sigma 14.5; six sigma either side.
    assert!(
        (613..=787).contains(&got),
        "{got} of {n} arrived with {p} loss"
    );
    let stats = net.relay_stats(a).unwrap();
    assert!(
        stats.dropped >= u64::from(n - got),
        "{stats:?}, {got} arrived"
    );

    // TCP gets a payload through intact despite loss (by retransmitting).
    net.impair(a, Impairment::loss(0.1)).unwrap();
    let payload: Vec<u8> = (0..64u32 << 10).map(|i| (i % 251) as u8).collect();
    let mut conn = eventually("a connection under loss", PATIENCE, || {
        probe::connect(net.ns(a), eb.addr(), Duration::from_secs(5))
    })
    .unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let writer = {
        let mut w = conn.try_clone().unwrap();
        let data = payload.clone();
        std::thread::spawn(move || std::io::Write::write_all(&mut w, &data))
    };
    let mut back = vec![0u8; payload.len()];
    conn.read_exact(&mut back).unwrap();
    writer.join().unwrap().unwrap();
    assert!(back == payload, "the echoed payload differs");
}

#[test]
fn namespaces_are_deleted_when_a_test_panics() {
    if !require_netns("namespaces_are_deleted_when_a_test_panics") {
        return;
    }
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let net = Net::new("panic", &["a", "b"]).unwrap();
        let mut n = names.lock().unwrap();
        n.push(net.switch().name().to_owned());
        n.extend(net.ids().map(|h| net.ns(h).name().to_owned()));
        drop(n);
        panic!("on purpose");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 3);
    let list = wren_tests::cmd::run(Command::new("ip").args(["netns", "list"])).unwrap();
    for n in &names {
        assert!(!list.contains(n.as_str()), "{n} survived:\n{list}");
    }
}

#[test]
fn stale_namespaces_of_dead_test_processes_are_swept_with_their_processes() {
    if !require_netns("stale_namespaces_of_dead_test_processes_are_swept_with_their_processes") {
        return;
    }
    // Owner "4294967295x1" cannot be a live process.
    let name = format!("{}4294967295x1-{}-stale", netns::PREFIX, std::process::id());
    wren_tests::cmd::run(Command::new("ip").args(["netns", "add", &name])).unwrap();
    let mut sleeper = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{name}"))
        .args(["--", "sleep", "600"])
        .spawn()
        .unwrap();
    eventually("the sleeper to be inside", PATIENCE, || {
        let pids = wren_tests::cmd::run(Command::new("ip").args(["netns", "pids", &name]))
            .map_err(|e| e.to_string())?;
        if pids.trim().is_empty() {
            Err("no process inside yet".to_owned())
        } else {
            Ok(())
        }
    })
    .unwrap();
    let swept = netns::sweep_stale();
    assert!(swept.contains(&name), "{swept:?}");
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the sleeper was killed, not finished");
    assert!(!std::path::Path::new("/run/netns").join(&name).exists());
}

#[test]
fn faults_combine_and_heal_undoes_them_all() {
    if !require_netns("faults_combine_and_heal_undoes_them_all") {
        return;
    }
    let net = Net::builder("combo")
        .hosts(&["a", "b", "c"])
        .backend(Backend::Relay)
        .build()
        .unwrap();
    let [a, b, c] = [0, 1, 2].map(HostId);
    let e: Vec<Echo> = [a, b, c].iter().map(|&h| echo_on(&net, h)).collect();
    eventually_reaches(&net, a, e[1].addr());
    eventually_reaches(&net, b, e[2].addr());
    // a is slow and lossy, then also unplugged; b and c are partitioned.
    net.impair(
        a,
        Impairment::delay(Duration::from_millis(50)).with_loss(0.2),
    )
    .unwrap();
    net.cut(a).unwrap();
    net.partition(&[b], &[c]).unwrap();
    assert!(!reaches(&net, b, e[0].addr()));
    assert!(!reaches(&net, b, e[2].addr()));
    // Plugged back in, a is reachable again, still through its relay.
    net.restore(a).unwrap();
    eventually_reaches(&net, b, e[0].addr());
    assert!(net.relay_stats(a).is_some_and(|s| s.forwarded > 0));
    net.heal().unwrap();
    assert!(net.relay_stats(a).is_none());
    for &from in &[a, b, c] {
        for x in &e {
            eventually_reaches(&net, from, x.addr());
        }
    }
    // Healing twice is harmless.
    net.heal().unwrap();
}
