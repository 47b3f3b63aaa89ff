//! The agent's configuration: an HCL file in Nomad's shape, then `WREN_*`
//! environment variables, then flags, each layer overriding the one before.
//!
//! ```hcl
//! data_dir   = "/var/lib/wren"
//! region     = "global"
//! datacenter = "dc1"
//! name       = "pi-01"
//! bind_addr  = "0.0.0.0"
//! ports { rpc = 5684 }
//! advertise { rpc = "10.0.0.5:5684" }
//! sled_cache_mb = 4
//!
//! server {
//!   enabled          = true
//!   bootstrap_expect = 3
//!   retry_join       = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
//!   raft_multiplier  = 1
//! }
//!
//! client {
//!   enabled    = true
//!   servers    = ["10.0.0.1:5684"]
//!   node_pool  = "default"
//!   node_class = "sensor"
//!   meta { rack = "r1" }
//!   reserved { cpu = 100  memory = 64  disk = 512  reserved_ports = "22" }
//! }
//!
//! plugin "raw_exec" { config { enabled = true } }
//! plugin "qemu"     { config { emulators = ["qemu-system-aarch64"] } }
//!
//! tls {
//!   ca_file   = "/etc/wren/wren-agent-ca.pem"
//!   cert_file = "/etc/wren/global-server-wren.pem"
//!   key_file  = "/etc/wren/global-server-wren-key.pem"
//! }
//! ```
//!
//! Errors name `file:line:col`. A bad file changes nothing: the agent does
//! not start.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use wren_model::hcl::{self, Ctx, Reader, Source, block_span, no_labels, one_label};
use wren_model::{Duration, Value};

/// The default CoAP-over-TLS port (RFC 8323's coaps+tcp).
pub const DEFAULT_PORT: u16 = 5684;

/// Everything the agent is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Where state lives: the Raft log and snapshots, the client's local db,
    /// alloc dirs.
    pub data_dir: Option<PathBuf>,
    /// The region this agent belongs to.
    pub region: String,
    /// The datacenter this agent is in.
    pub datacenter: String,
    /// The agent's name (default: the hostname).
    pub name: Option<String>,
    /// Address to listen on.
    pub bind_addr: IpAddr,
    /// The port for CoAP over TLS.
    pub port: u16,
    /// Address other agents reach this one at (default: bind address and port,
    /// or the first non-loopback address when binding to all).
    pub advertise: Option<SocketAddr>,
    /// sled's page cache, in MiB (its own default of 1 GiB is wrong for a Pi).
    pub sled_cache_mb: u64,
    /// Server mode.
    pub server: ServerConfig,
    /// Client mode.
    pub client: ClientConfig,
    /// Driver plugin configuration by driver name, kept as written for the
    /// driver to interpret.
    pub plugins: BTreeMap<String, Value>,
    /// Certificates.
    pub tls: TlsConfig,
}

/// `server { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Run a server.
    pub enabled: bool,
    /// How many servers to wait for before bootstrapping the region.
    pub bootstrap_expect: u32,
    /// Servers to join (`host` or `host:port`), retried until one answers.
    pub retry_join: Vec<String>,
    /// Scales every Raft timing, for slow links (1 = LAN timings).
    pub raft_multiplier: u32,
    /// Scheduler workers on this server (default: one per core).
    pub num_schedulers: Option<usize>,
    /// Extra time a client gets beyond its heartbeat TTL.
    pub heartbeat_grace: Duration,
    /// The shortest heartbeat TTL handed out.
    pub min_heartbeat_ttl: Duration,
    /// Heartbeats per second the leader aims to receive in total; TTLs grow
    /// with the number of clients to stay under it.
    pub max_heartbeats_per_second: u32,
    /// What a new leader gives every node to check in before it is marked
    /// down (Nomad's `failover_heartbeat_ttl`).
    pub failover_heartbeat_ttl: Duration,
}

/// `client { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Run a client.
    pub enabled: bool,
    /// Servers to register with (`host` or `host:port`).
    pub servers: Vec<String>,
    /// The node pool this node joins.
    pub node_pool: String,
    /// Operator-chosen class.
    pub node_class: String,
    /// Node metadata (`${meta.*}` in constraints).
    pub meta: BTreeMap<String, String>,
    /// Resources held back for the system.
    pub reserved: Reserved,
    /// Where allocation directories go (default `<data_dir>/alloc`).
    pub alloc_dir: Option<PathBuf>,
    /// Terminal allocations kept on disk before the oldest are collected.
    pub gc_max_allocs: u32,
    /// How often the node is re-fingerprinted (hot-plugged devices).
    pub fingerprint_interval: Duration,
}

/// `client { reserved { ... } }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reserved {
    /// MHz.
    pub cpu: u32,
    /// MB.
    pub memory_mb: u64,
    /// MB.
    pub disk_mb: u64,
    /// Host ports, as `22,80,8000-8100`.
    pub ports: String,
}

/// `tls { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// The region CA certificate.
    pub ca_file: Option<PathBuf>,
    /// This agent's certificate.
    pub cert_file: Option<PathBuf>,
    /// Its key.
    pub key_file: Option<PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            data_dir: None,
            region: "global".into(),
            datacenter: "dc1".into(),
            name: None,
            bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_PORT,
            advertise: None,
            sled_cache_mb: 4,
            server: ServerConfig {
                enabled: false,
                bootstrap_expect: 0,
                retry_join: Vec::new(),
                raft_multiplier: 1,
                num_schedulers: None,
                heartbeat_grace: Duration::from_secs(10),
                min_heartbeat_ttl: Duration::from_secs(10),
                max_heartbeats_per_second: 50,
                failover_heartbeat_ttl: Duration::from_mins(5),
            },
            client: ClientConfig {
                enabled: false,
                servers: Vec::new(),
                node_pool: "default".into(),
                node_class: String::new(),
                meta: BTreeMap::new(),
                reserved: Reserved::default(),
                alloc_dir: None,
                gc_max_allocs: 50,
                fingerprint_interval: Duration::from_secs(30),
            },
            plugins: BTreeMap::new(),
            tls: TlsConfig::default(),
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file has errors (each names `file:line:col`).
    #[error("{0}")]
    File(#[from] hcl::Errors),
    /// An environment variable holds a value of the wrong shape.
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The combination does not make sense.
    #[error("{0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Applies a configuration file on top of this configuration: only what
    /// the file sets changes.
    pub fn apply_file(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        let src = Source::new(file, text);
        let body = hcl::parse_body(&src)?;
        let mut ctx = Ctx::new(&src);
        let mut r = Reader::new(&body, "agent", "the agent configuration", 0..0);
        if let Some(d) = r.string(&mut ctx, "data_dir") {
            self.data_dir = Some(d.into());
        }
        if let Some(v) = r.string(&mut ctx, "region") {
            self.region = v;
        }
        if let Some(v) = r.string(&mut ctx, "datacenter") {
            self.datacenter = v;
        }
        if let Some(v) = r.string(&mut ctx, "name") {
            self.name = Some(v);
        }
        if let Some((v, span)) = r.value(&mut ctx, "bind_addr") {
            match v.as_str().map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => self.bind_addr = ip,
                _ => ctx.error(&span, format!("bind_addr {v} is not an IP address")),
            }
        }
        if let Some(v) = r.int(&mut ctx, "sled_cache_mb", 1, 1 << 20) {
            self.sled_cache_mb = v as u64;
        }
        if let Some(b) = r.block(&mut ctx, "ports") {
            no_labels(&mut ctx, b);
            let mut pr = Reader::new(&b.body, "agent.ports", "ports", block_span(b));
            if let Some(p) = pr.int(&mut ctx, "rpc", 1, 65535) {
                self.port = p as u16;
            }
            pr.finish(&mut ctx);
        }
        if let Some(b) = r.block(&mut ctx, "advertise") {
            no_labels(&mut ctx, b);
            let mut ar = Reader::new(&b.body, "agent.advertise", "advertise", block_span(b));
            if let Some((v, span)) = ar.value(&mut ctx, "rpc") {
                match v.as_str().map(str::parse::<SocketAddr>) {
                    Some(Ok(a)) => self.advertise = Some(a),
                    _ => ctx.error(
                        &span,
                        format!("advertise.rpc {v} is not an ip:port address"),
                    ),
                }
            }
            ar.finish(&mut ctx);
        }
        if let Some(b) = r.block(&mut ctx, "server") {
            self.server.apply(&mut ctx, b);
        }
        if let Some(b) = r.block(&mut ctx, "client") {
            self.client.apply(&mut ctx, b);
        }
        for b in r.blocks("plugin") {
            let Some(name) = one_label(&mut ctx, b, "plugin") else {
                continue;
            };
            let mut pr = Reader::new(
                &b.body,
                format!("agent.plugin[{name}]"),
                format!("plugin {name:?}"),
                block_span(b),
            );
            let config = match pr.block(&mut ctx, "config") {
                Some(c) => {
                    no_labels(&mut ctx, c);
                    plugin_config(&mut ctx, &c.body)
                }
                None => Value::empty_map(),
            };
            pr.finish(&mut ctx);
            self.plugins.insert(name, config);
        }
        if let Some(b) = r.block(&mut ctx, "tls") {
            no_labels(&mut ctx, b);
            let mut tr = Reader::new(&b.body, "agent.tls", "tls", block_span(b));
            if let Some(v) = tr.string(&mut ctx, "ca_file") {
                self.tls.ca_file = Some(v.into());
            }
            if let Some(v) = tr.string(&mut ctx, "cert_file") {
                self.tls.cert_file = Some(v.into());
            }
            if let Some(v) = tr.string(&mut ctx, "key_file") {
                self.tls.key_file = Some(v.into());
            }
            tr.finish(&mut ctx);
        }
        r.finish(&mut ctx);
        if ctx.errors.is_empty() {
            Ok(())
        } else {
            ctx.errors.sort_by_key(|e| (e.line, e.col));
            Err(hcl::Errors(ctx.errors).into())
        }
    }

    /// Applies `WREN_*` environment variables, read through `get` so tests
    /// need not touch the process environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                value,
                reason: e.to_string(),
            })
        }
        fn list(value: &str) -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }
        if let Some(v) = get("WREN_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = get("WREN_REGION") {
            self.region = v;
        }
        if let Some(v) = get("WREN_DATACENTER") {
            self.datacenter = v;
        }
        if let Some(v) = get("WREN_NAME") {
            self.name = Some(v);
        }
        if let Some(v) = get("WREN_BIND_ADDR") {
            self.bind_addr = parse("WREN_BIND_ADDR", v)?;
        }
        if let Some(v) = get("WREN_PORT") {
            self.port = parse("WREN_PORT", v)?;
        }
        if let Some(v) = get("WREN_ADVERTISE") {
            self.advertise = Some(parse("WREN_ADVERTISE", v)?);
        }
        if let Some(v) = get("WREN_SLED_CACHE_MB") {
            self.sled_cache_mb = parse("WREN_SLED_CACHE_MB", v)?;
        }
        if let Some(v) = get("WREN_SERVER") {
            self.server.enabled = parse("WREN_SERVER", v)?;
        }
        if let Some(v) = get("WREN_BOOTSTRAP_EXPECT") {
            self.server.bootstrap_expect = parse("WREN_BOOTSTRAP_EXPECT", v)?;
        }
        if let Some(v) = get("WREN_RETRY_JOIN") {
            self.server.retry_join = list(&v);
        }
        if let Some(v) = get("WREN_RAFT_MULTIPLIER") {
            self.server.raft_multiplier = parse("WREN_RAFT_MULTIPLIER", v)?;
        }
        if let Some(v) = get("WREN_CLIENT") {
            self.client.enabled = parse("WREN_CLIENT", v)?;
        }
        if let Some(v) = get("WREN_SERVERS") {
            self.client.servers = list(&v);
        }
        if let Some(v) = get("WREN_NODE_POOL") {
            self.client.node_pool = v;
        }
        if let Some(v) = get("WREN_NODE_CLASS") {
            self.client.node_class = v;
        }
        if let Some(v) = get("WREN_TLS_CA_FILE") {
            self.tls.ca_file = Some(v.into());
        }
        if let Some(v) = get("WREN_TLS_CERT_FILE") {
            self.tls.cert_file = Some(v.into());
        }
        if let Some(v) = get("WREN_TLS_KEY_FILE") {
            self.tls.key_file = Some(v.into());
        }
        Ok(())
    }

    /// Checks that the combination makes sense for a non-dev agent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !self.server.enabled && !self.client.enabled {
            return bad(
                "neither server nor client mode is enabled (server { enabled = true } or client { enabled = true })",
            );
        }
        if self.data_dir.is_none() {
            return bad("data_dir is required (or run with --dev)");
        }
        if self.server.enabled && self.server.bootstrap_expect == 0 {
            return bad("server.bootstrap_expect must be at least 1");
        }
        if self.server.raft_multiplier == 0 || self.server.raft_multiplier > 10 {
            return bad("server.raft_multiplier must be between 1 and 10");
        }
        if self.client.enabled && !self.server.enabled && self.client.servers.is_empty() {
            return bad("client.servers must name at least one server");
        }
        if self.tls.ca_file.is_none() || self.tls.cert_file.is_none() || self.tls.key_file.is_none()
        {
            return bad(
                "tls { ca_file, cert_file, key_file } are required: every agent speaks mutual TLS",
            );
        }
        Ok(())
    }
}

impl ServerConfig {
    fn apply(&mut self, ctx: &mut Ctx<'_>, b: &hcl_edit::structure::Block) {
        no_labels(ctx, b);
        let mut r = Reader::new(&b.body, "agent.server", "server", block_span(b));
        if let Some(v) = r.bool(ctx, "enabled") {
            self.enabled = v;
        }
        if let Some(v) = r.int(ctx, "bootstrap_expect", 0, 9) {
            self.bootstrap_expect = v as u32;
        }
        if let Some(v) = r.string_list(ctx, "retry_join") {
            self.retry_join = v;
        }
        if let Some(v) = r.int(ctx, "raft_multiplier", 1, 10) {
            self.raft_multiplier = v as u32;
        }
        if let Some(v) = r.int(ctx, "num_schedulers", 0, 256) {
            self.num_schedulers = Some(v as usize);
        }
        if let Some(v) = r.duration(ctx, "heartbeat_grace") {
            self.heartbeat_grace = v;
        }
        if let Some(v) = r.duration(ctx, "min_heartbeat_ttl") {
            self.min_heartbeat_ttl = v;
        }
        if let Some(v) = r.int(ctx, "max_heartbeats_per_second", 1, 100_000) {
            self.max_heartbeats_per_second = v as u32;
        }
        if let Some(v) = r.duration(ctx, "failover_heartbeat_ttl") {
            self.failover_heartbeat_ttl = v;
        }
        r.finish(ctx);
    }
}

impl ClientConfig {
    fn apply(&mut self, ctx: &mut Ctx<'_>, b: &hcl_edit::structure::Block) {
        no_labels(ctx, b);
        let mut r = Reader::new(&b.body, "agent.client", "client", block_span(b));
        if let Some(v) = r.bool(ctx, "enabled") {
            self.enabled = v;
        }
        if let Some(v) = r.string_list(ctx, "servers") {
            self.servers = v;
        }
        if let Some(v) = r.string(ctx, "node_pool") {
            self.node_pool = v;
        }
        if let Some(v) = r.string(ctx, "node_class") {
            self.node_class = v;
        }
        let meta = r.string_map(ctx, "meta");
        self.meta.extend(meta);
        if let Some(v) = r.string(ctx, "alloc_dir") {
            self.alloc_dir = Some(v.into());
        }
        if let Some(v) = r.int(ctx, "gc_max_allocs", 0, 100_000) {
            self.gc_max_allocs = v as u32;
        }
        if let Some(v) = r.duration(ctx, "fingerprint_interval") {
            self.fingerprint_interval = v;
        }
        if let Some(rb) = r.block(ctx, "reserved") {
            no_labels(ctx, rb);
            let mut rr = Reader::new(
                &rb.body,
                "agent.client.reserved",
                "reserved",
                block_span(rb),
            );
            if let Some(v) = rr.int(ctx, "cpu", 0, i64::from(u32::MAX)) {
                self.reserved.cpu = v as u32;
            }
            if let Some(v) = rr.int(ctx, "memory", 0, i64::MAX) {
                self.reserved.memory_mb = v as u64;
            }
            if let Some(v) = rr.int(ctx, "disk", 0, i64::MAX) {
                self.reserved.disk_mb = v as u64;
            }
            if let Some(v) = rr.string(ctx, "reserved_ports") {
                self.reserved.ports = v;
            }
            rr.finish(ctx);
        }
        r.finish(ctx);
    }
}

/// A plugin's `config { ... }` as a value tree (attributes only, and nested
/// blocks as maps), for the driver to read.
fn plugin_config(ctx: &mut Ctx<'_>, body: &hcl_edit::structure::Body) -> Value {
    let mut map = BTreeMap::new();
    for s in body.iter() {
        match s {
            hcl_edit::structure::Structure::Attribute(a) => match ctx.scope.eval(ctx.src, &a.value)
            {
                Ok(v) => {
                    map.insert(a.key.as_str().to_owned(), v);
                }
                Err(e) => ctx.error(&e.span, format!("{}: {}", a.key.as_str(), e.message)),
            },
            hcl_edit::structure::Structure::Block(b) => {
                map.insert(b.ident.as_str().to_owned(), plugin_config(ctx, &b.body));
            }
        }
    }
    Value::Map(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
data_dir   = "/var/lib/wren"
region     = "eu"
datacenter = "edge-1"
name       = "pi-01"
bind_addr  = "10.0.0.5"
sled_cache_mb = 8
ports { rpc = 6000 }
advertise { rpc = "10.0.0.5:6000" }

server {
  enabled          = true
  bootstrap_expect = 3
  retry_join       = ["10.0.0.1", "10.0.0.2:6000"]
  raft_multiplier  = 5
  heartbeat_grace  = "30s"
}

client {
  enabled    = true
  servers    = ["10.0.0.1"]
  node_pool  = "sensors"
  node_class = "pi4"
  meta {
    rack = "r1"
  }
  reserved {
    cpu            = 200
    memory         = 128
    reserved_ports = "22,8000-8010"
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

tls {
  ca_file   = "/etc/wren/ca.pem"
  cert_file = "/etc/wren/server.pem"
  key_file  = "/etc/wren/server-key.pem"
}
"#;

    #[test]
    fn a_full_file() {
        let mut c = AgentConfig::default();
        c.apply_file("agent.hcl", FULL).unwrap();
        assert_eq!(c.data_dir, Some("/var/lib/wren".into()));
        assert_eq!((c.region.as_str(), c.datacenter.as_str()), ("eu", "edge-1"));
        assert_eq!(c.port, 6000);
        assert_eq!(c.advertise, Some("10.0.0.5:6000".parse().unwrap()));
        assert_eq!(c.sled_cache_mb, 8);
        assert!(c.server.enabled && c.client.enabled);
        assert_eq!(c.server.bootstrap_expect, 3);
        assert_eq!(c.server.raft_multiplier, 5);
        assert_eq!(c.server.heartbeat_grace, Duration::from_secs(30));
        assert_eq!(c.client.node_pool, "sensors");
        assert_eq!(c.client.meta["rack"], "r1");
        assert_eq!(c.client.reserved.memory_mb, 128);
        assert_eq!(
            c.plugins["raw_exec"]
                .get("enabled")
                .and_then(Value::as_bool),
            Some(true)
        );
        c.validate().unwrap();
    }

    #[test]
    fn errors_name_the_line() {
        let mut c = AgentConfig::default();
        let before = c.clone();
        let err = c
            .apply_file("agent.hcl", "server {\n  enabled = true\n  bootstrap_expect = \"three\"\n}\nclient {\n  servrs = []\n}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.hcl:3:22: bootstrap_expect must be a whole number"),
            "{err}"
        );
        assert!(
            err.contains("agent.hcl:6:3: unknown attribute \"servrs\" in client"),
            "{err}"
        );
        // Nothing from the bad file took effect beyond what was already read;
        // the agent refuses to start on any error, so this only documents it.
        assert_eq!(before.region, c.region);
    }

    #[test]
    fn env_overrides_file_and_rejects_bad_values() {
        let mut c = AgentConfig::default();
        c.apply_file("agent.hcl", FULL).unwrap();
        let env: BTreeMap<&str, &str> = [
            ("WREN_REGION", "us"),
            ("WREN_SERVERS", "a:1, b:2"),
            ("WREN_BOOTSTRAP_EXPECT", "5"),
        ]
        .into();
        c.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.region, "us");
        assert_eq!(c.client.servers, vec!["a:1", "b:2"]);
        assert_eq!(c.server.bootstrap_expect, 5);
        let err = c
            .apply_env(|k| (k == "WREN_PORT").then(|| "http".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("WREN_PORT"), "{err}");
    }

    #[test]
    fn validation_explains_what_is_missing() {
        let c = AgentConfig::default();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("neither server nor client")
        );
        let mut c = AgentConfig::default();
        c.client.enabled = true;
        c.data_dir = Some("/tmp/x".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("client.servers")
        );
    }
}
