//! Agent configuration files in the shape `wren agent --config FILE` reads
//! (see the module doc of `agent/src/config.rs`): one struct per file,
//! rendered to HCL. Settings the harness does not model go in as raw HCL
//! (`extra`, `server_extra`, `client_extra`), so a test can try a new
//! option without changing the harness.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// `server { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    /// Servers to wait for before bootstrapping.
    pub bootstrap_expect: u32,
    /// Servers to join, `ip:port`.
    pub retry_join: Vec<String>,
    /// Scales Raft timings (1 = LAN).
    pub raft_multiplier: u32,
    /// Raw HCL lines inside the block.
    pub extra: String,
}

/// `client { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientBlock {
    /// Servers to register with, `ip:port`.
    pub servers: Vec<String>,
    /// Node class.
    pub node_class: Option<String>,
    /// Node metadata.
    pub meta: BTreeMap<String, String>,
    /// Raw HCL lines inside the block.
    pub extra: String,
}

/// `tls { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The region CA.
    pub ca_file: PathBuf,
    /// This agent's certificate.
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
}

/// One agent's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFile {
    /// The agent's name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Datacenter.
    pub datacenter: String,
    /// Where it keeps its state.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub bind_addr: IpAddr,
    /// The CoAP-over-TLS port.
    pub port: u16,
    /// The address others reach it at.
    pub advertise: SocketAddr,
    /// Server mode.
    pub server: Option<ServerBlock>,
    /// Client mode.
    pub client: Option<ClientBlock>,
    /// `plugin "raw_exec" { config { enabled = true } }`.
    pub raw_exec: bool,
    /// Certificates.
    pub tls: TlsFiles,
    /// Raw HCL appended at the top level.
    pub extra: String,
}

impl AgentFile {
    /// The HCL text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "name       = {}", quote(&self.name));
        let _ = writeln!(s, "region     = {}", quote(&self.region));
        let _ = writeln!(s, "datacenter = {}", quote(&self.datacenter));
        let _ = writeln!(
            s,
            "data_dir   = {}",
            quote(&self.data_dir.to_string_lossy())
        );
        let _ = writeln!(s, "bind_addr  = {}", quote(&self.bind_addr.to_string()));
        let _ = writeln!(s, "ports {{ rpc = {} }}", self.port);
        let _ = writeln!(
            s,
            "advertise {{ rpc = {} }}",
            quote(&self.advertise.to_string())
        );
        if let Some(server) = &self.server {
            let _ = writeln!(s, "\nserver {{");
            let _ = writeln!(s, "  enabled          = true");
            let _ = writeln!(s, "  bootstrap_expect = {}", server.bootstrap_expect);
            let _ = writeln!(s, "  retry_join       = {}", list(&server.retry_join));
            let _ = writeln!(s, "  raft_multiplier  = {}", server.raft_multiplier);
            indent(&mut s, &server.extra);
            let _ = writeln!(s, "}}");
        }
        if let Some(client) = &self.client {
            let _ = writeln!(s, "\nclient {{");
            let _ = writeln!(s, "  enabled = true");
            let _ = writeln!(s, "  servers = {}", list(&client.servers));
            if let Some(class) = &client.node_class {
                let _ = writeln!(s, "  node_class = {}", quote(class));
            }
            if !client.meta.is_empty() {
                let pairs: Vec<String> = client
                    .meta
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                let _ = writeln!(s, "  meta = {{ {} }}", pairs.join(", "));
            }
            indent(&mut s, &client.extra);
            let _ = writeln!(s, "}}");
        }
        if self.raw_exec {
            let _ = writeln!(
                s,
                "\nplugin \"raw_exec\" {{\n  config {{\n    enabled = true\n  }}\n}}"
            );
        }
        let _ = writeln!(s, "\ntls {{");
        let _ = writeln!(
            s,
            "  ca_file   = {}",
            quote(&self.tls.ca_file.to_string_lossy())
        );
        let _ = writeln!(
            s,
            "  cert_file = {}",
            quote(&self.tls.cert_file.to_string_lossy())
        );
        let _ = writeln!(
            s,
            "  key_file  = {}",
            quote(&self.tls.key_file.to_string_lossy())
        );
        let _ = writeln!(s, "}}");
        if !self.extra.is_empty() {
            s.push('\n');
            s.push_str(&self.extra);
            if !self.extra.ends_with('\n') {
                s.push('\n');
            }
        }
        s
    }
}

fn indent(s: &mut String, lines: &str) {
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(s, "  {}", l.trim());
    }
}

/// An HCL string literal: quotes, backslashes and control characters
/// escaped, and `${` / `%{` doubled so nothing is interpolated.
pub fn quote(v: &str) -> String {
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                q.push(c);
                q.push(c);
            }
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", inner.join(", "))
}
