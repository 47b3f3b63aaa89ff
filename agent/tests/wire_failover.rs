//! The client against several servers: failover on connection errors,
//! no redialling before a failed server's backoff ends, and observations
//! that move to another server and resume after the last index seen.

mod wire_support;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wire_support::*;
use wren_agent::wire::{Client, ClientConfig, ClientError, ClientSettings, Role};
use wren_model::Job;

const LIMIT: Duration = Duration::from_secs(30);

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener that accepts TCP and hangs up at once (so TLS fails),
/// counting the attempts.
fn hang_up_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            c.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, count)
}

fn client_with(rt: &Runtime, pki: &Pki, addrs: &[SocketAddr], settings: ClientSettings) -> Client {
    let config = ClientConfig {
        addresses: addrs
            .iter()
            .map(|a| a.to_string().parse().unwrap())
            .collect(),
        tls: pki.material(Role::Cli),
        settings,
    };
    Client::new(config, rt.ex.clone()).unwrap()
}

#[test]
fn requests_fail_over_past_dead_servers() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let a = start_server(&rt, &pki, state.clone(), quick_settings());
    let b = start_server(&rt, &pki, state.clone(), quick_settings());
    let addrs = [
        dead_addr(),
        a.local_addr().unwrap(),
        b.local_addr().unwrap(),
    ];
    let settings = ClientSettings {
        link: quick_settings(),
        ..ClientSettings::default()
    };
    let client = client_with(&rt, &pki, &addrs, settings);
    rt.block_on(async {
        let (job, _) = client.get::<Job>("/v1/test/hello").await.unwrap();
        assert_eq!(job.id, "hello");
        assert_eq!(a.stats().requests, 1);

        // A goes away: its connection is released, and the next request
        // lands on B.
        a.shutdown();
        assert!(eventually(LIMIT, || a.stats().active == 0).await);
        drop(a);
        let (job, _) = client.get::<Job>("/v1/test/hello").await.unwrap();
        assert_eq!(job.id, "hello");
        assert_eq!(b.stats().requests, 1);
    });
}

#[test]
fn a_failed_server_is_not_redialled_before_its_backoff_ends() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let live = start_server(&rt, &pki, state.clone(), quick_settings());
    let (flaky, attempts) = hang_up_server();
    let settings = ClientSettings {
        link: quick_settings(),
        backoff_min: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        ..ClientSettings::default()
    };
    let client = client_with(&rt, &pki, &[flaky, live.local_addr().unwrap()], settings);
    rt.block_on(async {
        client.get::<Job>("/v1/test/hello").await.unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        client.get::<Job>("/v1/test/hello").await.unwrap();

        live.shutdown();
        assert!(eventually(LIMIT, || live.stats().active == 0).await);
        match client.get::<Job>("/v1/test/hello").await {
            Err(ClientError::AllFailed(errors)) => {
                assert!(
                    errors
                        .iter()
                        .any(|e| matches!(e, ClientError::BackingOff { .. })),
                    "{errors:?}"
                );
            }
            other => panic!("expected every server to fail, got {other:?}"),
        }
    });
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "redialled during backoff"
    );
}

#[test]
fn observations_move_to_another_server_and_resume_after_the_last_index() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let a = start_server(&rt, &pki, state.clone(), quick_settings());
    let b = start_server(&rt, &pki, state.clone(), quick_settings());
    let settings = ClientSettings {
        link: quick_settings(),
        ..ClientSettings::default()
    };
    let client = client_with(
        &rt,
        &pki,
        &[a.local_addr().unwrap(), b.local_addr().unwrap()],
        settings,
    );
    rt.block_on(async {
        let mut obs = client.observe("/v1/test/tick");
        let first = within(LIMIT, obs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(first.decode::<Tick>().unwrap().value, 1);
        state.tick.bump();
        let second = within(LIMIT, obs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(second.index, Some(2));

        a.shutdown();
        drop(a);
        match within(LIMIT, obs.next()).await.unwrap() {
            Some(Err(ClientError::Interrupted { .. })) => {}
            other => panic!("expected an interruption, got {other:?}"),
        }
        // Re-registered on B from index 2: the next item is 3, not 2 again.
        assert!(eventually(LIMIT, || *state.watching.lock().unwrap() > 0).await);
        state.tick.bump();
        let next = loop {
            match within(LIMIT, obs.next()).await.unwrap().unwrap() {
                Ok(n) => break n,
                // B may need a moment while A's address is still tried.
                Err(ClientError::AllFailed(_)) => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(next.index, Some(3));
        assert!(b.stats().requests >= 1);
    });
}
