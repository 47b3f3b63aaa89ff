//! The scheduling machinery of real `wren agent` processes, each in its
//! own network namespace. The test plays the client agents: it registers
//! nodes, heartbeats and reads their allocations over the real client
//! protocol with a client certificate per node, using a stock CoAP client
//! (`coap-client-gnutls`, JSON bodies) from the operator's namespace.
//!
//! Jobs go in through the servers' internal write path with a server
//! certificate (what a follower does with a registration it forwards), so
//! these tests depend on no job endpoint.
//!
//! Needs root, network namespaces and `coap-client-gnutls` (libcoap3-bin);
//! skipped without them unless `CI=true`. The test with three servers also
//! needs a region that forms from `bootstrap_expect`/`retry_join`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use wren_model::{EvalStatus, Evaluation, Job, TriggeredBy};
use wren_state::{Command as StateCommand, RegisterJob};
use wren_tests::cluster::{CertPair, Cluster, ClusterSpec, Role};
use wren_tests::{eventually, require, require_netns};

const COAP: &str = "coap-client-gnutls";
const LONG: Duration = Duration::from_secs(90);

fn have_coap() -> Result<(), String> {
    match Command::new(COAP).arg("-h").arg("x").output() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{COAP} cannot run ({e}); install libcoap3-bin")),
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Requests from the operator's namespace with one certificate.
#[derive(Clone)]
struct Coap {
    ns: PathBuf,
    ca: PathBuf,
    cert: CertPair,
    tmp: PathBuf,
}

impl Coap {
    fn new(cluster: &Cluster, cert: CertPair) -> Coap {
        Coap {
            ns: cluster.net().ns(cluster.operator()).path(),
            ca: cluster.pki().ca.cert.clone(),
            cert,
            tmp: cluster.dir().path().to_owned(),
        }
    }

    /// Sends a request; the answer's body, or what went wrong.
    fn call(
        &self,
        method: &str,
        addr: SocketAddr,
        path: &str,
        body: Option<(&[u8], u16)>,
    ) -> Result<Vec<u8>, String> {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns.display()))
            .args(["--", COAP, "-B", "15", "-m", method, "-A", "50"])
            .arg("-c")
            .arg(&self.cert.cert)
            .arg("-j")
            .arg(&self.cert.key)
            .arg("-C")
            .arg(&self.ca);
        if let Some((bytes, format)) = body {
            let file = self
                .tmp
                .join(format!("body-{}", SEQ.fetch_add(1, Ordering::Relaxed)));
            std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
            c.arg("-t").arg(format.to_string()).arg("-f").arg(&file);
        }
        c.arg(format!("coaps+tcp://{addr}{path}"));
        let out = c.output().map_err(|e| format!("{COAP}: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && v.get("error").is_some()
            && v.get("code").is_some()
        {
            return Err(format!("{method} {path}: {text}"));
        }
        if !out.status.success() || out.stdout.is_empty() {
            return Err(format!(
                "{method} {path}: exit {:?}, stdout {text:?}, stderr {:?}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out.stdout)
    }

    fn json(
        &self,
        method: &str,
        addr: SocketAddr,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let out = self.call(method, addr, path, bytes.as_deref().map(|b| (b, 50)))?;
        serde_json::from_slice(&out)
            .map_err(|e| format!("{path}: {e}: {}", String::from_utf8_lossy(&out)))
    }
}

/// A node the test plays the client agent of: registered with its own
/// client certificate and heartbeating from a thread until stopped.
struct Node {
    id: String,
    coap: Coap,
    stop: Arc<AtomicBool>,
    beats: Option<JoinHandle<()>>,
}

impl Node {
    fn start(cluster: &Cluster, servers: &[SocketAddr], id: &str, cpu: u32, memory: u64) -> Node {
        let cert = cluster
            .pki()
            .issue(Role::Client, id, &[])
            .expect("client certificate");
        let coap = Coap::new(cluster, cert);
        let node = json!({
            "node": {
                "id": id, "name": id, "datacenter": "dc1", "node_pool": "default",
                "status": "ready",
                "attributes": {"cpu.arch": "x86_64"},
                "resources": {"cpu": cpu, "memory_mb": memory, "disk_mb": 100000},
                "drivers": {"raw_exec": {"detected": true, "healthy": true}},
            }
        });
        let reply = eventually("the node registers", LONG, || {
            servers
                .iter()
                .map(|s| coap.json("post", *s, "/v1/client/register", Some(&node)))
                .find(Result::is_ok)
                .unwrap_or_else(|| Err("no server took the registration".into()))
        })
        .expect("registered");
        assert!(
            reply["heartbeat_ttl"].is_string() || reply["heartbeat_ttl"].is_number(),
            "{reply}"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s, servers, node_id) =
            (coap.clone(), stop.clone(), servers.to_vec(), id.to_owned());
        let beats = std::thread::spawn(move || {
            let body = json!({ "node_id": node_id });
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                // Any server will do: followers forward to the leader.
                let server = servers[i % servers.len()];
                if let Err(e) = c.json("post", server, "/v1/client/heartbeat", Some(&body)) {
                    eprintln!("node {node_id}: heartbeat via {server}: {e}");
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Node {
            id: id.to_owned(),
            coap,
            stop,
            beats: Some(beats),
        }
    }

    fn go_silent(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.beats.take() {
            let _ = t.join();
        }
    }

    /// The node's allocations as it watches them.
    fn allocs(&self, server: SocketAddr) -> Result<Vec<Value>, String> {
        let v = self.coap.json(
            "get",
            server,
            &format!("/v1/client/allocs?node={}", self.id),
            None,
        )?;
        Ok(v["allocs"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.go_silent();
    }
}

/// The leader's address, from any server.
fn leader(cluster: &Cluster, coap: &Coap) -> Result<SocketAddr, String> {
    for s in cluster.server_addrs() {
        if let Ok(v) = coap.json("get", s, "/v1/status/leader", None)
            && let Some(addr) = v["leader"].as_str()
        {
            return addr.parse().map_err(|e| format!("leader {addr}: {e}"));
        }
    }
    Err("no server knows a leader".into())
}

/// Registers `job` with its evaluation on the leader, as the servers'
/// internal write path carries a forwarded registration.
fn register(cluster: &Cluster, server_cert: &Coap, job: Job) {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let eval = Evaluation {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        priority: job.priority,
        job_type: job.job_type,
        triggered_by: TriggeredBy::JobRegister,
        job_id: job.id.clone(),
        status: EvalStatus::Pending,
        ..Evaluation::default()
    };
    let command = StateCommand::RegisterJob(RegisterJob {
        job,
        eval: Some(eval),
        enforce_index: None,
    });
    let bytes = wren_model::codec::to_cbor(&command);
    eventually("the job registers", LONG, || {
        let at = leader(cluster, server_cert)?;
        server_cert.call("post", at, "/v1/internal/write", Some((&bytes, 60)))
    })
    .expect("registered");
}

fn service(id: &str, count: u32, cpu: u32, memory: u64) -> Job {
    let hcl = format!(
        r#"job "{id}" {{
  datacenters = ["dc1"]
  group "g" {{
    count = {count}
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = {cpu}
        memory = {memory}
      }}
    }}
  }}
}}
"#
    );
    wren_model::jobspec::parse("test.hcl", &hcl).expect("jobspec")
}

fn live(allocs: &[Value]) -> Vec<&Value> {
    allocs
        .iter()
        .filter(|a| {
            a["desired_status"] == "run"
                && !matches!(
                    a["client_status"].as_str(),
                    Some("complete" | "failed" | "lost")
                )
        })
        .collect()
}

fn cpu_of(alloc: &Value) -> u64 {
    alloc["resources"]["tasks"].as_object().map_or(0, |t| {
        t.values().map(|r| r["cpu"].as_u64().unwrap_or(0)).sum()
    })
}

fn server_cert(cluster: &Cluster) -> Coap {
    let s1 = cluster.servers()[0];
    Coap::new(cluster, cluster.agent(s1).cert.clone())
}

fn quick_heartbeats(spec: ClusterSpec, single: bool) -> ClusterSpec {
    spec.customize(move |f| {
        if let Some(s) = f.server.as_mut() {
            if single {
                // One server bootstraps itself.
                s.retry_join.clear();
            }
            s.extra.push_str(
                "min_heartbeat_ttl = \"1s\"\nheartbeat_grace = \"1s\"\nnum_schedulers = 2\n",
            );
        }
    })
}

#[test]
fn a_silent_node_is_marked_down_and_its_allocation_moves_to_a_spare() {
    let name = "a_silent_node_is_marked_down_and_its_allocation_moves_to_a_spare";
    if !require_netns(name) || !require(name, have_coap()) {
        return;
    }
    let spec = quick_heartbeats(ClusterSpec::new(1, 0), true);
    let cluster = Cluster::start(name, &spec).expect("region starts");
    let servers = cluster.server_addrs();
    let operator = server_cert(&cluster);
    let mut a = Node::start(&cluster, &servers, "a", 1000, 1024);
    let b = Node::start(&cluster, &servers, "b", 1000, 1024);
    // Room for one allocation per node.
    register(&cluster, &operator, service("web", 2, 600, 256));
    let s = servers[0];
    let on_a = eventually("one allocation on each node", LONG, || {
        let (x, y) = (a.allocs(s)?, b.allocs(s)?);
        match (live(&x).as_slice(), live(&y).len()) {
            ([one], 1) => Ok(one["id"].as_str().unwrap_or_default().to_owned()),
            _ => Err(format!("a: {x:?}, b: {y:?}")),
        }
    })
    .expect("placed");
    let c = Node::start(&cluster, &servers, "c", 1000, 1024);
    a.go_silent();
    eventually("a's allocation lost and replaced on c", LONG, || {
        let lost = a
            .allocs(s)?
            .into_iter()
            .find(|x| x["id"] == on_a.as_str())
            .ok_or("a's allocation is gone")?;
        let on_c = c.allocs(s)?;
        let replaced = live(&on_c)
            .iter()
            .any(|x| x["previous_allocation"] == on_a.as_str());
        if lost["client_status"] == "lost" && replaced {
            Ok(())
        } else {
            Err(format!("a's: {lost}, c: {on_c:?}"))
        }
    })
    .expect("replaced");
}

#[test]
fn workers_on_three_servers_race_for_scarce_capacity_without_over_committing() {
    let name = "workers_on_three_servers_race_for_scarce_capacity_without_over_committing";
    if !require_netns(name) || !require(name, have_coap()) {
        return;
    }
    let spec = quick_heartbeats(ClusterSpec::new(3, 0), false);
    let cluster = Cluster::start(name, &spec).expect("region starts");
    let operator = server_cert(&cluster);
    let formed = eventually("a leader", Duration::from_secs(30), || {
        leader(&cluster, &operator)
    });
    if !require(
        name,
        formed.map(|_| ()).map_err(|e| {
            format!(
                "the three servers formed no region ({e}): this wren has no multi-server bootstrap"
            )
        }),
    ) {
        return;
    }
    let servers = cluster.server_addrs();
    // Eight nodes with room for two allocations each, eight jobs of two:
    // every slot is needed, and the six workers plan concurrently.
    let nodes: Vec<Node> = (0..8)
        .map(|i| Node::start(&cluster, &servers, &format!("n{i}"), 1000, 1024))
        .collect();
    std::thread::scope(|s| {
        for i in 0..8 {
            let (cluster, operator) = (&cluster, &operator);
            s.spawn(move || register(cluster, operator, service(&format!("job{i}"), 2, 500, 256)));
        }
    });
    let per_node = eventually("all sixteen placed", LONG, || {
        let mut per_node = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            let allocs = n.allocs(servers[i % servers.len()])?;
            let cpu: u64 = live(&allocs).iter().map(|a| cpu_of(a)).sum();
            per_node.insert(n.id.clone(), (live(&allocs).len(), cpu));
        }
        let placed: usize = per_node.values().map(|(n, _)| n).sum();
        if placed == 16 {
            Ok(per_node)
        } else {
            Err(format!("{per_node:?}"))
        }
    })
    .expect("placed");
    for (node, (count, cpu)) in per_node {
        assert!(
            cpu <= 1000,
            "node {node} over-committed: {count} allocations, {cpu} MHz"
        );
        assert_eq!(count, 2, "node {node}");
    }
}
