//! Hostile input against a live server, deterministic (seeded): random
//! bytes, known-bad frames and CBOR, and mutated valid requests. Every bad
//! input ends its connection with an Abort or a close, never a panic or a
//! hang, and the server keeps serving a well-behaved client throughout.
//! The long-running search for new cases is the fuzz targets' job (see
//! `fuzz/`).

mod wire_support;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, RequestType};
use wire_support::*;
use wren_agent::wire::frame::{Frame, Token, signal_code};
use wren_agent::wire::{Method, Role};
use wren_model::Job;

const LIMIT: Duration = Duration::from_secs(20);

/// xorshift64*: small, seeded, good enough to vary inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn request(method: RequestType, path: &str, body: Vec<u8>) -> Frame {
    let mut f = Frame::new(u8::from(MessageClass::Request(method)), Token::from_u64(7));
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        f.options.push(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    if !body.is_empty() {
        f.options.push_uint(CoapOption::ContentFormat, 60);
    }
    f.payload = body;
    f
}

/// Bytes after a valid CSM that break the protocol, and why.
fn known_bad() -> Vec<(&'static str, Vec<u8>)> {
    let csm_code = signal_code::CSM;
    let job = wren_model::codec::to_cbor(&hello_job());
    let put = |body: Vec<u8>| {
        request(RequestType::Put, "/v1/test/job", body)
            .to_bytes()
            .unwrap()
    };
    let mut deep = vec![0x81u8; 200];
    deep.push(0x00);
    let mut cases = vec![
        (
            "token longer than 8",
            vec![0x09, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        ),
        (
            "length beyond max message size",
            vec![0xF0, 0x7F, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        ("option delta nibble 15", vec![0x20, 0x01, 0xF1, 0x00]),
        ("option past the end", vec![0x20, 0x01, 0xB5, b'v']),
        ("payload marker without payload", vec![0x10, 0x01, 0xFF]),
        (
            "option number past 65535",
            vec![0x60, 0x01, 0xE0, 0xFF, 0xFF, 0xE0, 0xFF, 0xFF],
        ),
        ("unknown signalling code", vec![0x00, 0xE6]),
        ("code of class 1", vec![0x00, 0x21]),
        (
            "csm with unknown critical option",
            vec![0x10, csm_code, 0x90],
        ),
        ("malformed cbor body", put(job[..job.len() / 2].to_vec())),
        ("cbor nested too deep", put(deep)),
        (
            "cbor declaring a huge array",
            put(vec![0x9A, 0xFF, 0xFF, 0xFF, 0xFF]),
        ),
    ];
    let mut many = request(RequestType::Get, "/v1/test/hello", Vec::new());
    for _ in 0..70 {
        many.options.push(CoapOption::UriQuery, b"a".to_vec());
    }
    cases.push(("too many options", many.to_bytes().unwrap()));
    cases
}

#[test]
fn bad_input_gets_an_abort_and_the_server_serves_on() {
    let rt = Runtime::new(2);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    let ca = pki.ca.cert.clone();
    let hostile = pki.material(Role::Cli);
    let good = client(&rt, pki.material(Role::Cli), &[addr]);
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);

    rt.block_on(async {
        let check_good = || async {
            let (job, _) = within(LIMIT, good.get::<Job>("/v1/test/hello"))
                .await
                .expect("good client stuck")
                .expect("good client failed");
            assert_eq!(job.id, "hello");
        };
        check_good().await;

        // Known-bad frames after a valid CSM: an Abort, then the close.
        let cases = known_bad();
        for (why, bytes) in &cases {
            let mut raw = Raw::connect(addr, &ca, Some(&hostile)).await.unwrap();
            raw.send_csm().await.unwrap();
            let _ = raw.send(bytes).await;
            let diagnostic = raw
                .expect_abort(LIMIT)
                .await
                .unwrap_or_else(|e| panic!("{why}: {e}"));
            assert!(
                diagnostic.is_some_and(|d| !d.is_empty()),
                "{why}: no Abort diagnostic"
            );
            check_good().await;
        }
        let aborted = server.stats().aborted;
        assert!(aborted >= cases.len() as u64, "{:?}", server.stats());

        // Random bytes instead of a CSM: Abort or close, never an answer.
        for i in 0..40 {
            let mut raw = Raw::connect(addr, &ca, Some(&hostile)).await.unwrap();
            let len = 1 + rng.below(if i % 4 == 0 { 3000 } else { 40 });
            let _ = raw.send(&rng.bytes(len)).await;
            if let Err(e) = raw.expect_abort(LIMIT).await {
                panic!("random input {i}: {e}");
            }
        }
        check_good().await;

        // Mutated valid requests after a CSM: an answer, or Abort/close.
        let job = wren_model::codec::to_cbor(&hello_job());
        let valid = request(RequestType::Put, "/v1/test/job", job)
            .to_bytes()
            .unwrap();
        for i in 0..60 {
            let mut bytes = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            if i % 5 == 0 {
                bytes.truncate(rng.below(bytes.len()));
            }
            let mut raw = Raw::connect(addr, &ca, Some(&hostile)).await.unwrap();
            raw.send_csm().await.unwrap();
            let _ = raw.send(&bytes).await;
            // Pings go unanswered: a peer stuck mid-frame cannot answer
            // them either, and the server must give up on it.
            loop {
                match raw.next(LIMIT).await {
                    Seen::Frame(f) if f.code == signal_code::CSM || f.code == signal_code::PING => {
                    }
                    Seen::Frame(f) if f.code == signal_code::ABORT => break,
                    Seen::Frame(f) => {
                        assert!(f.code >> 5 >= 2, "mutation {i}: odd reply {f:?}");
                        break;
                    }
                    Seen::Closed => break,
                    Seen::Timeout => panic!("mutation {i}: no answer and no close"),
                }
            }
        }
        check_good().await;
    });
    assert!(server.stats().active <= 2, "{:?}", server.stats());
}

#[test]
fn a_request_before_the_csm_is_refused() {
    let rt = Runtime::new(1);
    let pki = Pki::new("global");
    let state = Arc::new(TestState::default());
    let server = start_server(&rt, &pki, state.clone(), quick_settings());
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut raw = Raw::connect(addr, &pki.ca.cert, Some(&pki.material(Role::Cli)))
            .await
            .unwrap();
        let get = request(RequestType::Get, "/v1/test/hello", Vec::new());
        raw.send_frame(&get).await.unwrap();
        let diagnostic = raw.expect_abort(LIMIT).await.unwrap().unwrap();
        assert!(diagnostic.contains("CSM"), "{diagnostic}");
    });
    assert_eq!(state.calls(), 0);
    let _ = Method::Get;
}
