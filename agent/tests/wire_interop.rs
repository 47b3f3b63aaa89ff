//! Interop with a CoAP implementation nobody here wrote: Debian's
//! `coap-client-gnutls` (libcoap 4.3, GnuTLS) talks `coaps+tcp://` to our
//! server with a CLI certificate made by `wren tls cert create --cli`. It
//! reads a resource as JSON and as CBOR, observes one and receives its
//! notifications, and is refused without a client certificate.
//!
//! Needs `coap-client-gnutls` (package libcoap3-bin): skipped without it,
//! except under `CI=true`, where its absence fails the test.

mod wire_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wire_support::*;
use wren_agent::wire::TlsMaterial;
use wren_model::Job;

const CLIENT: &str = "coap-client-gnutls";
const LIMIT: Duration = Duration::from_secs(30);

fn have_client() -> bool {
    Command::new(CLIENT)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A fresh directory with a CA, a server and a CLI certificate made by
/// the `wren` binary itself.
fn wren_tls_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wren-interop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wren = env!("CARGO_BIN_EXE_wren");
    for args in [
        &["tls", "ca", "create"][..],
        &["tls", "cert", "create", "--server"],
        &["tls", "cert", "create", "--cli"],
    ] {
        let out = Command::new(wren)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "wren {args:?}: {out:?}");
    }
    dir
}

fn coap(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(CLIENT);
    c.current_dir(dir).args(["-B", "20"]).args(args);
    c
}

fn uri(port: u16, path: &str) -> String {
    format!("coaps+tcp://127.0.0.1:{port}{path}")
}

const CERT_ARGS: [&str; 6] = [
    "-c",
    "global-cli-wren.pem",
    "-j",
    "global-cli-wren-key.pem",
    "-C",
    "wren-agent-ca.pem",
];

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn coap_client_gnutls_reads_observes_and_is_refused_without_a_certificate() {
    if !require(
        have_client(),
        "coap-client-gnutls is not installed (apt-get install libcoap3-bin)",
    ) {
        return;
    }
    let dir = wren_tls_dir("main");
    let rt = Runtime::new(2);
    let material = TlsMaterial::load(
        &dir.join("wren-agent-ca.pem"),
        &dir.join("global-server-wren.pem"),
        &dir.join("global-server-wren-key.pem"),
    )
    .unwrap();
    let state = Arc::new(TestState::default());
    let server = start_server_with(&rt, &material, state.clone(), quick_settings());
    let port = server.local_addr().unwrap().port();

    // JSON, for people and stock tools.
    let out = coap(&dir, &CERT_ARGS)
        .args(["-m", "get", "-A", "50", &uri(port, "/v1/test/hello")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let job: Job = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(job, hello_job());

    // CBOR, the default.
    let cbor_file = dir.join("hello.cbor");
    let out = coap(&dir, &CERT_ARGS)
        .args(["-m", "get", "-A", "60", "-o"])
        .arg(&cbor_file)
        .arg(uri(port, "/v1/test/hello"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(&cbor_file).unwrap();
    let job: Job = wren_model::codec::from_cbor(&bytes).unwrap();
    assert_eq!(job, hello_job());

    // Observe: every bump of the index arrives as a notification.
    let child = coap(&dir, &CERT_ARGS)
        .args([
            "-m",
            "get",
            "-A",
            "50",
            "-w",
            "-s",
            "60",
            &uri(port, "/v1/test/tick"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !line.trim().is_empty() && tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut values = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while values.len() < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("notifications stopped after {values:?}"));
        let tick: Tick = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        values.push(tick.value);
        if values.len() < 4 {
            state.tick.bump();
        }
    }
    assert_eq!(values, [1, 2, 3, 4]);
    drop(child);
    // Its connection (and the observation with it) ends.
    rt.block_on(async {
        assert!(eventually(LIMIT, || server.stats().active == 0).await);
    });

    // Without a client certificate: refused in the handshake, no handler runs.
    let calls = state.calls();
    let rejected = server.stats().rejected_handshakes;
    let out = coap(&dir, &["-C", "wren-agent-ca.pem"])
        .args(["-m", "get", "-A", "50", &uri(port, "/v1/test/hello")])
        .output()
        .unwrap();
    // libcoap logs to stdout; what must not be there is the resource.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hello"), "got data: {text}");
    assert!(text.contains("Certificate is required"), "{text}");
    rt.block_on(async {
        assert!(
            eventually(LIMIT, || server.stats().rejected_handshakes > rejected).await,
            "{:?}",
            server.stats()
        );
    });
    assert_eq!(state.calls(), calls);
    let _ = std::fs::remove_dir_all(&dir);
}
