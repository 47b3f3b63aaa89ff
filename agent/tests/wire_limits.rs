//! Liveness and limits: idle connections are pinged and closed when no
//! Pong comes, live ones survive many idle periods, handshakes that never
//! finish time out, and the connection and in-flight limits hold.

mod wire_support;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, RequestType};
use smol::Async;
use wire_support::*;
use wren_agent::wire::frame::{Frame, Token, signal_code};
use wren_agent::wire::signal::Signal;
use wren_agent::wire::{Role, Settings};

const LIMIT: Duration = Duration::from_secs(20);

fn get(path: &str, token: u64) -> Frame {
    let mut f = Frame::new(
        u8::from(MessageClass::Request(RequestType::Get)),
        Token::from_u64(token),
    );
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        f.options.push(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    f
}

#[test]
fn a_silent_peer_is_pinged_then_closed() {
    let rt = Runtime::new(1);
    let pki = Pki::new("global");
    let server = start_server(&rt, &pki, Arc::new(TestState::default()), quick_settings());
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut raw = Raw::connect(addr, &pki.ca.cert, Some(&pki.material(Role::Cli)))
            .await
            .unwrap();
        raw.send_csm().await.unwrap();
        let mut pinged = false;
        loop {
            match raw.next(LIMIT).await {
                Seen::Frame(f) if f.code == signal_code::PING => pinged = true,
                Seen::Frame(f) => assert_eq!(f.code, signal_code::CSM, "{f:?}"),
                Seen::Closed => break,
                Seen::Timeout => panic!("never closed"),
            }
        }
        assert!(pinged, "closed without a Ping first");
        assert!(eventually(LIMIT, || server.stats().unresponsive == 1).await);
    });
}

#[test]
fn a_peer_that_answers_pings_stays_connected() {
    let rt = Runtime::new(1);
    let pki = Pki::new("global");
    let server = start_server(&rt, &pki, Arc::new(TestState::default()), quick_settings());
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut raw = Raw::connect(addr, &pki.ca.cert, Some(&pki.material(Role::Cli)))
            .await
            .unwrap();
        raw.send_csm().await.unwrap();
        let mut pings = 0;
        while pings < 3 {
            match raw.next(LIMIT).await {
                Seen::Frame(f) if f.code == signal_code::PING => {
                    pings += 1;
                    let pong = Signal::Pong { custody: false }.to_frame(f.token);
                    raw.send_frame(&pong).await.unwrap();
                }
                Seen::Frame(f) => assert_eq!(f.code, signal_code::CSM),
                other => panic!("after {pings} pings: {other:?}"),
            }
        }
        raw.send_frame(&get("/v1/test/hello", 9)).await.unwrap();
        match raw.next_message(LIMIT).await {
            Seen::Frame(f) => {
                assert_eq!(f.code, 0x45);
                assert_eq!(f.token, Token::from_u64(9));
            }
            other => panic!("{other:?}"),
        }
        // Our own pings get pongs with the same token.
        let ping = Signal::Ping { custody: false }.to_frame(Token::new(&[0xAB, 0xCD]).unwrap());
        raw.send_frame(&ping).await.unwrap();
        loop {
            match raw.next(LIMIT).await {
                Seen::Frame(f) if f.code == signal_code::PONG => {
                    assert_eq!(f.token.as_bytes(), [0xAB, 0xCD]);
                    break;
                }
                Seen::Frame(f) if f.code == signal_code::PING => {
                    let pong = Signal::Pong { custody: false }.to_frame(f.token);
                    raw.send_frame(&pong).await.unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
    });
    assert_eq!(server.stats().unresponsive, 0);
}

#[test]
fn our_client_keeps_an_idle_connection_alive() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let server = start_server(&rt, &pki, Arc::new(TestState::default()), quick_settings());
    let addr = server.local_addr().unwrap();
    let mut config = wren_agent::wire::ClientConfig {
        addresses: vec![addr.to_string().parse().unwrap()],
        tls: pki.material(Role::Cli),
        settings: Default::default(),
    };
    // The client waits longer than the server, so the server does the pinging.
    config.settings.link = Settings {
        idle_timeout: Duration::from_secs(60),
        ..quick_settings()
    };
    let client = wren_agent::wire::Client::new(config, rt.ex.clone()).unwrap();
    rt.block_on(async {
        client
            .get::<wren_model::Job>("/v1/test/hello")
            .await
            .unwrap();
        // Several idle periods pass: the server pings, the client answers.
        assert!(eventually(LIMIT, || server.stats().pings >= 3).await);
        client
            .get::<wren_model::Job>("/v1/test/hello")
            .await
            .unwrap();
    });
    let stats = server.stats();
    assert_eq!(stats.accepted, 1, "the client reconnected: {stats:?}");
    assert_eq!(stats.unresponsive, 0);
}

#[test]
fn a_handshake_that_never_finishes_times_out() {
    let rt = Runtime::new(1);
    let pki = Pki::new("global");
    let server = start_server(&rt, &pki, Arc::new(TestState::default()), quick_settings());
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let tcp = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
        assert!(eventually(LIMIT, || server.stats().rejected_handshakes == 1).await);
        let mut byte = [0u8; 1];
        use smol::io::AsyncReadExt;
        let n = within(LIMIT, (&tcp).read(&mut byte))
            .await
            .expect("still open");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    });
}

#[test]
fn connection_and_in_flight_limits_hold() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let settings = Settings {
        max_connections: 2,
        max_in_flight: 3,
        ..quick_settings()
    };
    let server = start_server(&rt, &pki, state.clone(), settings);
    let addr = server.local_addr().unwrap();
    let material = pki.material(Role::Cli);
    rt.block_on(async {
        let mut a = Raw::connect(addr, &pki.ca.cert, Some(&material))
            .await
            .unwrap();
        a.send_csm().await.unwrap();
        // Three slow requests fill the connection; the fourth gets 5.03.
        for t in 1..=3 {
            a.send_frame(&get("/v1/test/slow", t)).await.unwrap();
        }
        assert!(eventually(LIMIT, || state.calls() == 3).await);
        a.send_frame(&get("/v1/test/hello", 4)).await.unwrap();
        match a.next_message(LIMIT).await {
            Seen::Frame(f) => {
                assert_eq!(f.code, 0xA3, "{f:?}");
                assert_eq!(f.token, Token::from_u64(4));
            }
            other => panic!("{other:?}"),
        }

        let mut b = Raw::connect(addr, &pki.ca.cert, Some(&material))
            .await
            .unwrap();
        b.send_csm().await.unwrap();
        assert!(matches!(b.next(LIMIT).await, Seen::Frame(f) if f.code == signal_code::CSM));
        // A third connection is closed at once.
        let third = Raw::connect(addr, &pki.ca.cert, Some(&material)).await;
        if let Ok(mut c) = third {
            let _ = c.send_csm().await;
            assert_eq!(c.next(LIMIT).await, Seen::Closed);
        }
        assert_eq!(server.stats().over_limit, 1);

        // The slow requests finish once the gate opens.
        state.gate.bump();
        let mut done = 0;
        while done < 3 {
            match a.next_message(LIMIT).await {
                Seen::Frame(f) => {
                    assert_eq!(f.code, 0x45);
                    done += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    });
}

#[test]
fn shutdown_releases_every_connection() {
    let rt = Runtime::new(1);
    let pki = Pki::new("global");
    let server = start_server(&rt, &pki, Arc::new(TestState::default()), quick_settings());
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut raw = Raw::connect(addr, &pki.ca.cert, Some(&pki.material(Role::Cli)))
            .await
            .unwrap();
        raw.send_csm().await.unwrap();
        assert!(matches!(raw.next(LIMIT).await, Seen::Frame(f) if f.code == signal_code::CSM));
        server.shutdown();
        match raw.next_message(LIMIT).await {
            Seen::Frame(f) => {
                assert_eq!(f.code, signal_code::RELEASE, "{f:?}");
                let release = Signal::from_frame(&f).unwrap();
                assert!(matches!(release, Signal::Release { .. }));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(raw.next(LIMIT).await, Seen::Closed);
        // And nothing is accepted any more.
        assert!(eventually(LIMIT, || server.stats().active == 0).await);
    });
}
