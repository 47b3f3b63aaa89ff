//! Requests between our client and our server over real TLS on loopback:
//! CBOR and JSON bodies, error codes, roles, multiplexing, slow handlers,
//! observations.

mod wire_support;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::ResponseType;
use smol::stream::StreamExt;
use wire_support::*;
use wren_agent::wire::identity::Fingerprint;
use wren_agent::wire::{ClientError, JSON, Method, Role};
use wren_model::Job;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn cbor_and_json_bodies_round_trip() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    let client = client(&rt, pki.material(Role::Cli), &[addr]);
    rt.block_on(async {
        state.tick.bump();
        let (job, index): (Job, _) = client.get("/v1/test/hello").await.unwrap();
        assert_eq!(job, hello_job());
        assert_eq!(index, Some(2));

        let json = client
            .request_as(Method::Get, "/v1/test/hello", &[], 60, JSON)
            .await
            .unwrap();
        assert_eq!(json.content_format, Some(JSON));
        let back: Job = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(back, hello_job());

        let mut sent = hello_job();
        sent.id = "echo".into();
        let (echo, _): (Job, _) = client
            .send(Method::Put, "/v1/test/job", &sent)
            .await
            .unwrap();
        assert_eq!(echo, sent);

        // JSON in, CBOR out.
        let body = serde_json::to_vec(&sent).unwrap();
        let resp = client
            .request_as(Method::Put, "/v1/test/job", &body, JSON, 60)
            .await
            .unwrap();
        assert_eq!(resp.code, ResponseType::Changed);
        assert_eq!(resp.decode::<Job>().unwrap(), sent);
    });
}

#[test]
fn errors_map_to_codes_with_a_body_that_says_why() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    let cli = client(&rt, pki.material(Role::Cli), &[addr]);
    let agent = client(&rt, pki.material(Role::Client), &[addr]);
    rt.block_on(async {
        let api = |r: Result<(Job, Option<u64>), ClientError>| match r {
            Err(ClientError::Api(e)) => e,
            other => panic!("expected an api error, got {other:?}"),
        };
        let e = api(cli.get("/v1/test/nothing").await);
        assert_eq!(e.code, ResponseType::NotFound);
        assert!(e.message.contains("/v1/test/nothing"), "{e}");

        let e = api(cli.get("/v1/test/server-only").await);
        assert_eq!(e.code, ResponseType::Forbidden);
        assert!(e.message.contains("cli"), "{e}");

        // A client agent may not PUT jobs.
        let e = api(agent.send(Method::Put, "/v1/test/job", &hello_job()).await);
        assert_eq!(e.code, ResponseType::Forbidden);

        let e = api(cli.send(Method::Post, "/v1/test/job", &hello_job()).await);
        assert_eq!(e.code, ResponseType::MethodNotAllowed);

        // Well-formed CBOR of the wrong shape: 4.00, connection kept.
        let e = api(cli
            .send(Method::Put, "/v1/test/job", &vec![1u32, 2, 3])
            .await);
        assert_eq!(e.code, ResponseType::BadRequest);
        assert!(e.message.contains("invalid request body"), "{e}");
        let e = api(cli.send(Method::Put, "/v1/test/job", &Job::default()).await);
        assert_eq!(e.message, "job has no id");

        // The error body comes as JSON when JSON was asked for.
        let resp = cli
            .request_as(Method::Get, "/v1/test/nothing", &[], 60, JSON)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["code"], "4.04");

        // A response larger than the client accepts becomes a 5.00 that says so.
        let e = api(cli.get("/v1/test/big/10000000").await);
        assert_eq!(e.code, ResponseType::InternalServerError);
        assert!(e.message.contains("Max-Message-Size"), "{e}");
    });
    assert_eq!(server.stats().aborted, 0);
}

#[test]
fn handlers_learn_the_peer_from_its_certificate() {
    let rt = Runtime::new(2);
    let pki = Pki::new("eu-1");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state, quick_settings());
    let addr = server.local_addr().unwrap();
    for role in Role::ALL {
        let material = pki.material(role);
        let expected = Fingerprint::of(&material.chain[0]).to_string();
        let client = client(&rt, material, &[addr]);
        let (who, _): (WhoAmI, _) = rt.block_on(client.get("/v1/test/whoami")).unwrap();
        assert_eq!(who.role, role.as_str());
        assert_eq!(who.region, "eu-1");
        assert_eq!(who.fingerprint, expected);
    }
}

#[test]
fn a_slow_handler_blocks_neither_its_connection_nor_others() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    let a = client(&rt, pki.material(Role::Cli), &[addr]);
    let b = client(&rt, pki.material(Role::Cli), &[addr]);
    rt.block_on(async {
        let slow = {
            let a = a.clone();
            rt.ex
                .spawn(async move { a.get::<Tick>("/v1/test/slow").await })
        };
        // Many requests on the same connection and on another one finish
        // while the slow one waits.
        let mut fast = Vec::new();
        for i in 0..50 {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            fast.push(
                rt.ex
                    .spawn(async move { c.get::<Job>("/v1/test/hello").await }),
            );
        }
        for f in fast {
            let (job, _) = within(LIMIT, f).await.expect("fast request stuck").unwrap();
            assert_eq!(job.id, "hello");
        }
        assert!(!slow.is_finished());
        state.gate.bump();
        let (tick, _) = within(LIMIT, slow)
            .await
            .expect("slow request stuck")
            .unwrap();
        assert_eq!(tick.value, 1);
    });
}

#[test]
fn observations_notify_on_every_new_index_and_stop_when_dropped() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    let client = client(&rt, pki.material(Role::Client), &[addr]);
    rt.block_on(async {
        let mut obs = client.observe("/v1/test/tick");
        let first = within(LIMIT, obs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(first.decode::<Tick>().unwrap().value, 1);
        for want in 2..=6 {
            state.tick.bump();
            let n = within(LIMIT, obs.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(n.index, Some(want));
            assert_eq!(n.decode::<Tick>().unwrap(), Tick { value: want });
        }
        // Several bumps between reads: the newest value arrives, never an old one.
        state.tick.bump();
        state.tick.bump();
        let mut seen = 6;
        while seen < 8 {
            let n = within(LIMIT, obs.next()).await.unwrap().unwrap().unwrap();
            let v = n.decode::<Tick>().unwrap().value;
            assert!(v > seen, "{v} after {seen}");
            seen = v;
        }
        // Dropping the stream deregisters: the server stops watching.
        assert!(*state.watching.lock().unwrap() >= 1);
        drop(obs);
        assert!(
            eventually(LIMIT, || *state.watching.lock().unwrap() == 0).await,
            "server still watching after deregistration"
        );
        // And the connection is still good.
        let (job, _) = client.get::<Job>("/v1/test/hello").await.unwrap();
        assert_eq!(job.id, "hello");
    });
}

#[test]
fn observing_from_an_index_waits_for_a_newer_one() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let client = client(
        &rt,
        pki.material(Role::Cli),
        &[server.local_addr().unwrap()],
    );
    rt.block_on(async {
        state.tick.bump();
        let mut obs = client.observe("/v1/test/tick?index=2");
        state.tick.bump();
        let n = within(LIMIT, obs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(n.index, Some(3));
        // A route that is not observable answers once and the stream ends.
        let mut once = client.observe("/v1/test/hello");
        let r = within(LIMIT, once.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(r.decode::<Job>().unwrap().id, "hello");
        assert!(within(LIMIT, once.next()).await.unwrap().is_none());
        // An error ends it too.
        let mut missing = client.observe("/v1/test/none");
        let r = within(LIMIT, missing.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r.code, ResponseType::NotFound);
        assert!(within(LIMIT, missing.next()).await.unwrap().is_none());
    });
}

#[test]
fn one_connection_carries_many_concurrent_requests() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let client = client(
        &rt,
        pki.material(Role::Cli),
        &[server.local_addr().unwrap()],
    );
    rt.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let c = client.clone();
                rt.ex.spawn(async move {
                    let mut job = hello_job();
                    job.id = format!("job-{i}");
                    let (back, _): (Job, _) =
                        c.send(Method::Put, "/v1/test/job", &job).await.unwrap();
                    assert_eq!(back.id, job.id);
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await;
            }
        };
        within(LIMIT, all).await.expect("requests stuck");
    });
    assert_eq!(server.stats().accepted, 1);
    assert_eq!(state.calls(), 100);
}

#[test]
fn observation_is_a_stream() {
    let rt = Runtime::new(1);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let client = client(
        &rt,
        pki.material(Role::Cli),
        &[server.local_addr().unwrap()],
    );
    rt.block_on(async {
        let obs = client.observe("/v1/test/tick");
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bumper = {
            let (state, done) = (state.clone(), done.clone());
            async move {
                // Bump while the server is waiting on the observer's behalf.
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if *state.watching.lock().unwrap() > 0 {
                        state.tick.bump();
                    }
                    smol::Timer::after(Duration::from_millis(5)).await;
                }
            }
        };
        rt.ex.spawn(bumper).detach();
        let values: Vec<u64> = within(
            LIMIT,
            obs.take(4)
                .map(|r| r.unwrap().decode::<Tick>().unwrap().value)
                .collect(),
        )
        .await
        .expect("stream stuck");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(values.first(), Some(&1));
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    });
}

#[test]
fn large_bodies_cross_in_both_directions() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state, quick_settings());
    let client = client(
        &rt,
        pki.material(Role::Cli),
        &[server.local_addr().unwrap()],
    );
    rt.block_on(async {
        for size in [100, 70_000, 1_000_000, 3_000_000] {
            let (job, _): (Job, _) = client.get(&format!("/v1/test/big/{size}")).await.unwrap();
            assert_eq!(job.meta["pad"].len(), size);
            let (echo, _): (Job, _) = client
                .send(Method::Put, "/v1/test/job", &job)
                .await
                .unwrap();
            assert_eq!(echo, job);
        }
    });
    assert_eq!(server.stats().aborted, 0);
}
