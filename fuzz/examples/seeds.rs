//! Writes seed inputs for the fuzz targets into `fuzz/seeds/<target>/`:
//! valid frames, a valid connection script, and a valid CBOR encoding of
//! every decoded type, so the fuzzers start from the real shapes.
//!
//! `cargo run --example seeds` (from `fuzz/`).

use std::path::Path;

use coap_lite::{CoapOption, MessageClass, RequestType};
use wren_agent::wire::frame::{Frame, Token};
use wren_agent::wire::signal::Signal;
use wren_model::codec::to_cbor;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn request(method: RequestType, path: &str, body: Vec<u8>, token: u64) -> Frame {
    let mut f = Frame::new(
        u8::from(MessageClass::Request(method)),
        Token::from_u64(token),
    );
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        f.options.push(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    f.options.push(CoapOption::UriQuery, b"index=7".to_vec());
    if !body.is_empty() {
        f.options.push_uint(CoapOption::ContentFormat, 60);
    }
    f.options.push_uint(CoapOption::Accept, 50);
    f.payload = body;
    f
}

fn job() -> wren_model::Job {
    let task = wren_model::Task {
        name: "web".into(),
        driver: "exec".into(),
        ..Default::default()
    };
    let group = wren_model::TaskGroup {
        name: "web".into(),
        count: 3,
        tasks: vec![task],
        ..Default::default()
    };
    wren_model::Job {
        id: "web".into(),
        name: "web".into(),
        region: "global".into(),
        datacenters: vec!["dc1".into()],
        task_groups: vec![group],
        ..Default::default()
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let job_cbor = to_cbor(&job());

    let mut frames = vec![
        Signal::Csm {
            max_message_size: Some(1 << 20),
            block_wise: true,
        }
        .to_frame(Token::EMPTY),
        Signal::Ping { custody: false }.to_frame(Token::from_u64(1)),
        Signal::abort("bad").to_frame(Token::EMPTY),
        request(RequestType::Get, "/v1/job/web", Vec::new(), 2),
        request(RequestType::Put, "/v1/jobs", job_cbor.clone(), 3),
    ];
    let mut observe = request(RequestType::Get, "/v1/node/n1/allocs", Vec::new(), 4);
    observe.options.push_uint(CoapOption::Observe, 0);
    frames.push(observe);
    let mut resp = Frame::new(0x45, Token::from_u64(4));
    resp.options.push_uint(CoapOption::Observe, 3);
    resp.options.push_uint(CoapOption::ContentFormat, 60);
    resp.options.push_uint(65000u16, 42);
    resp.payload = job_cbor.clone();
    frames.push(resp);

    let mut script = vec![7u8];
    for (i, f) in frames.iter().enumerate() {
        let bytes = f.to_bytes().unwrap();
        write(&root.join("frame"), &format!("frame-{i}"), &bytes);
        script.extend_from_slice(&bytes);
    }
    write(&root.join("link"), "session", &script);

    // The order of `decoders!` in fuzz_targets/cbor.rs.
    let values: Vec<Vec<u8>> = vec![
        job_cbor,
        to_cbor(&wren_model::Node::default()),
        to_cbor(&wren_model::Allocation::default()),
        to_cbor(&wren_model::Evaluation::default()),
        to_cbor(&wren_model::Plan::default()),
        to_cbor(&wren_model::PlanResult::default()),
        to_cbor(&wren_model::Deployment::default()),
        to_cbor(&wren_agent::wire::ErrorBody {
            error: "no such job".into(),
            code: "4.04".into(),
        }),
    ];
    for (i, v) in values.iter().enumerate() {
        let mut bytes = vec![i as u8];
        bytes.extend_from_slice(v);
        write(&root.join("cbor"), &format!("type-{i}"), &bytes);
    }
    println!("seeds written to {}", root.display());
}
