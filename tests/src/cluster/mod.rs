//! A wren region under test: N servers and M clients, each a `wren agent`
//! process in its own namespace on one [`Net`], plus an operator namespace
//! from which the CLI talks to them.
//!
//! [`Cluster::prepare`] makes the net, the region's CA and certificates
//! (through the real `wren tls` CLI, [`pki`]), and one config file per
//! agent ([`config`]); [`Cluster::start_all`] starts the agents
//! (`wren agent --config FILE`, see [`agent_args`]). After that a test
//! kills, restarts and partitions agents through [`Cluster`] and
//! [`Cluster::net`], and runs CLI commands with [`Cluster::cli`].
//!
//! Everything lives in one [`TestDir`]: `pki/`, and per agent
//! `<name>/agent.hcl`, `<name>/data/`, and `logs/<name>.stdout|stderr`.
//!
//! ```no_run
//! use std::time::Duration;
//! use wren_tests::cluster::{Cluster, ClusterSpec};
//! use wren_tests::eventually;
//!
//! let spec = ClusterSpec::new(3, 0).customize(|f| {
//!     if let Some(s) = f.server.as_mut() {
//!         s.extra.push_str("heartbeat_grace = \"5s\"\n");
//!     }
//! });
//! let mut cluster = Cluster::start("leader_partitioned_away", &spec).unwrap();
//! let cli = cluster.cli().timeout(Duration::from_secs(5));
//! let _peers = eventually("a leader", Duration::from_secs(30), || {
//!     cli.json(["operator", "raft", "list-peers", "--json"])
//! })
//! .unwrap();
//! let servers = cluster.servers();
//! let old = servers[0];
//! let others: Vec<_> = servers[1..].iter().map(|&a| cluster.agent(a).host).collect();
//! cluster.net().partition(&[cluster.agent(old).host], &others).unwrap();
//! cluster.net().heal().unwrap();
//! cluster.kill(old).unwrap();
//! cluster.restart(old).unwrap();
//! ```

pub mod cli;
pub mod config;
pub mod pki;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use cli::{Cli, CliError, CliOutput};
pub use config::{AgentFile, ClientBlock, ServerBlock, TlsFiles};
pub use pki::{CertPair, Pki, PkiError, Role};

use crate::bin::{self, BinError};
use crate::impair::Backend;
use crate::net::{HostId, Net, NetError};
use crate::process::{Proc, ProcError, ProcSpec};
use crate::testdir::TestDir;

/// The CoAP-over-TLS port every agent listens on (each has its own
/// address, so they can share it).
pub const RPC_PORT: u16 = 5684;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The `wren` binary is missing.
    #[error(transparent)]
    Bin(#[from] BinError),
    /// The net could not be built or changed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Certificates could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// An agent process could not be started, stopped or signalled.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Changes an agent's config before it is written.
pub type Customize = Arc<dyn Fn(&mut AgentFile) + Send + Sync>;

/// What region to build.
#[derive(Clone)]
pub struct ClusterSpec {
    /// Region name.
    pub region: String,
    /// Datacenter of every agent.
    pub datacenter: String,
    /// Server agents (`s1`, `s2`, ...).
    pub servers: usize,
    /// Client agents (`c1`, `c2`, ...).
    pub clients: usize,
    /// Raft timing multiplier.
    pub raft_multiplier: u32,
    /// Enable the raw_exec driver on clients.
    pub raw_exec: bool,
    /// How delay and loss are applied.
    pub backend: Backend,
    /// Applied to every agent's config, in order.
    pub customize: Vec<Customize>,
}

impl fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("region", &self.region)
            .field("datacenter", &self.datacenter)
            .field("servers", &self.servers)
            .field("clients", &self.clients)
            .field("raft_multiplier", &self.raft_multiplier)
            .field("raw_exec", &self.raw_exec)
            .field("backend", &self.backend)
            .field("customize", &self.customize.len())
            .finish()
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            region: "global".into(),
            datacenter: "dc1".into(),
            servers: 3,
            clients: 0,
            raft_multiplier: 1,
            raw_exec: true,
            backend: Backend::Auto,
            customize: Vec::new(),
        }
    }
}

impl ClusterSpec {
    /// `servers` servers and `clients` clients, otherwise defaults.
    pub fn new(servers: usize, clients: usize) -> ClusterSpec {
        ClusterSpec {
            servers,
            clients,
            ..ClusterSpec::default()
        }
    }

    /// Adds a config change applied to every agent.
    pub fn customize(mut self, f: impl Fn(&mut AgentFile) + Send + Sync + 'static) -> Self {
        self.customize.push(Arc::new(f));
        self
    }
}

/// A server or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Server mode.
    Server,
    /// Client mode.
    Client,
}

/// An agent of the cluster (index into [`Cluster::agents`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(pub usize);

/// One `wren agent`.
#[derive(Debug)]
pub struct Agent {
    /// Its name (`s1`, `c2`).
    pub name: String,
    /// Server or client.
    pub kind: Kind,
    /// Its host on the net.
    pub host: HostId,
    /// Its RPC address.
    pub addr: SocketAddr,
    /// Its config file.
    pub config_path: PathBuf,
    /// Its config.
    pub config: AgentFile,
    /// Its certificate.
    pub cert: CertPair,
    spec: ProcSpec,
    proc: Option<Proc>,
}

impl Agent {
    /// The process, once started.
    pub fn proc(&self) -> Option<&Proc> {
        self.proc.as_ref()
    }

    /// The process, once started.
    pub fn proc_mut(&mut self) -> Option<&mut Proc> {
        self.proc.as_mut()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

/// The arguments that start an agent from its config file.
pub fn agent_args(config: &Path) -> Vec<OsString> {
    vec!["agent".into(), "--config".into(), config.into()]
}

/// A region under test. Dropping it kills the agents (printing their log
/// tails if the test panicked), deletes the namespaces, and removes the
/// directory unless the test failed.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order.
    agents: Vec<Agent>,
    net: Net,
    operator: HostId,
    pki: Pki,
    cli_cert: CertPair,
    bin: PathBuf,
    logs: PathBuf,
    dir: TestDir,
}

impl Cluster {
    /// Prepares and starts every agent. `test` names the directory.
    pub fn start(test: &str, spec: &ClusterSpec) -> Result<Cluster, ClusterError> {
        let mut c = Cluster::prepare(test, spec)?;
        c.start_all()?;
        Ok(c)
    }

    /// Builds the net, certificates and config files; starts nothing.
    pub fn prepare(test: &str, spec: &ClusterSpec) -> Result<Cluster, ClusterError> {
        let bin = bin::wren()?.to_owned();
        let dir = TestDir::new(test).map_err(io(&crate::testdir::root()))?;
        let logs = dir.subdir("logs").map_err(io(dir.path()))?;
        let names: Vec<(String, Kind)> = (1..=spec.servers)
            .map(|i| (format!("s{i}"), Kind::Server))
            .chain((1..=spec.clients).map(|i| (format!("c{i}"), Kind::Client)))
            .collect();
        let mut net = Net::builder(test).backend(spec.backend).build()?;
        let mut hosts = BTreeMap::new();
        for (name, _) in &names {
            hosts.insert(name.clone(), net.add_host(name)?);
        }
        let operator = net.add_host("operator")?;
        let pki = Pki::create(&bin, &dir.join("pki"), &spec.region)?;
        let cli_cert = pki.issue(Role::Cli, "operator", &[])?;
        let server_addrs: Vec<String> = names
            .iter()
            .filter(|(_, k)| *k == Kind::Server)
            .map(|(n, _)| SocketAddr::new(IpAddr::V4(net.ip(hosts[n])), RPC_PORT).to_string())
            .collect();
        let mut agents = Vec::new();
        for (name, kind) in names {
            let host = hosts[&name];
            let ip = IpAddr::V4(net.ip(host));
            let role = match kind {
                Kind::Server => Role::Server,
                Kind::Client => Role::Client,
            };
            let cert = pki.issue(role, &name, &[ip])?;
            let home = dir.subdir(&name).map_err(io(dir.path()))?;
            let addr = SocketAddr::new(ip, RPC_PORT);
            let mut config = AgentFile {
                name: name.clone(),
                region: spec.region.clone(),
                datacenter: spec.datacenter.clone(),
                data_dir: home.join("data"),
                bind_addr: ip,
                port: RPC_PORT,
                advertise: addr,
                server: (kind == Kind::Server).then(|| ServerBlock {
                    bootstrap_expect: spec.servers as u32,
                    retry_join: server_addrs.clone(),
                    raft_multiplier: spec.raft_multiplier,
                    extra: String::new(),
                }),
                client: (kind == Kind::Client).then(|| ClientBlock {
                    servers: server_addrs.clone(),
                    ..ClientBlock::default()
                }),
                raw_exec: kind == Kind::Client && spec.raw_exec,
                tls: TlsFiles {
                    ca_file: pki.ca.cert.clone(),
                    cert_file: cert.cert.clone(),
                    key_file: cert.key.clone(),
                },
                extra: String::new(),
            };
            for f in &spec.customize {
                f(&mut config);
            }
            let config_path = home.join("agent.hcl");
            std::fs::write(&config_path, config.render()).map_err(io(&config_path))?;
            let spec = ProcSpec::new(&name, &bin)
                .args(agent_args(&config_path))
                .cwd(&home)
                .netns(net.ns(host));
            agents.push(Agent {
                name,
                kind,
                host,
                addr,
                config_path,
                config,
                cert,
                spec,
                proc: None,
            });
        }
        Ok(Cluster {
            agents,
            net,
            operator,
            pki,
            cli_cert,
            bin,
            logs,
            dir,
        })
    }

    /// Starts every agent not yet started.
    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        for i in 0..self.agents.len() {
            if self.agents[i].proc.is_none() {
                self.start_agent(AgentId(i))?;
            }
        }
        Ok(())
    }

    /// Starts one agent (again, after a kill: same config, same data dir).
    pub fn start_agent(&mut self, id: AgentId) -> Result<(), ClusterError> {
        let logs = self.logs.clone();
        let a = self.agent_mut(id);
        match &mut a.proc {
            Some(p) => p.restart()?,
            None => a.proc = Some(Proc::start(a.spec.clone(), &logs)?),
        }
        Ok(())
    }

    /// Changes how an agent is started (from its next start on): another
    /// binary, a wrapper such as `qemu-aarch64-static -L /`, environment.
    pub fn respec(&mut self, id: AgentId, f: impl FnOnce(ProcSpec) -> ProcSpec) {
        let a = self.agent_mut(id);
        a.spec = f(a.spec.clone());
        if let Some(p) = a.proc.as_mut() {
            p.set_spec(a.spec.clone());
        }
    }

    /// SIGKILLs an agent.
    pub fn kill(&mut self, id: AgentId) -> Result<(), ClusterError> {
        if let Some(p) = self.agent_mut(id).proc.as_mut() {
            p.kill()?;
        }
        Ok(())
    }

    /// SIGTERMs an agent, SIGKILL after `grace`.
    pub fn terminate(&mut self, id: AgentId, grace: Duration) -> Result<(), ClusterError> {
        if let Some(p) = self.agent_mut(id).proc.as_mut() {
            p.terminate(grace)?;
        }
        Ok(())
    }

    /// Kills (if running) and starts an agent with the same config and data.
    pub fn restart(&mut self, id: AgentId) -> Result<(), ClusterError> {
        self.start_agent(id)
    }

    /// Every agent.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// One agent.
    ///
    /// Panics when `id` is not from this cluster (a test invariant).
    pub fn agent(&self, id: AgentId) -> &Agent {
        self.agents
            .get(id.0)
            .expect("an AgentId is only used with the Cluster that made it")
    }

    /// One agent, mutably (same invariant as [`Cluster::agent`]).
    pub fn agent_mut(&mut self, id: AgentId) -> &mut Agent {
        self.agents
            .get_mut(id.0)
            .expect("an AgentId is only used with the Cluster that made it")
    }

    /// The agent with this name.
    pub fn find(&self, name: &str) -> Option<AgentId> {
        self.agents.iter().position(|a| a.name == name).map(AgentId)
    }

    /// The servers.
    pub fn servers(&self) -> Vec<AgentId> {
        self.of_kind(Kind::Server)
    }

    /// The clients.
    pub fn clients(&self) -> Vec<AgentId> {
        self.of_kind(Kind::Client)
    }

    fn of_kind(&self, kind: Kind) -> Vec<AgentId> {
        (0..self.agents.len())
            .map(AgentId)
            .filter(|&i| self.agent(i).kind == kind)
            .collect()
    }

    /// The servers' RPC addresses.
    pub fn server_addrs(&self) -> Vec<SocketAddr> {
        self.servers().iter().map(|&i| self.agent(i).addr).collect()
    }

    /// The net (to cut, partition, impair).
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The operator's host (where [`Cluster::cli`] runs).
    pub fn operator(&self) -> HostId {
        self.operator
    }

    /// The CLI, from the operator namespace, pointed at every server.
    pub fn cli(&self) -> Cli {
        self.cli_to(&self.servers())
    }

    /// The CLI pointed at these agents only.
    pub fn cli_to(&self, agents: &[AgentId]) -> Cli {
        let addrs: Vec<SocketAddr> = agents.iter().map(|&i| self.agent(i).addr).collect();
        Cli::new(&self.bin, Some(self.net.ns(self.operator)))
            .servers(&addrs)
            .tls(&self.pki.ca.cert, &self.cli_cert.cert, &self.cli_cert.key)
    }

    /// The CA and certificate issuer.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The CLI's certificate.
    pub fn cli_cert(&self) -> &CertPair {
        &self.cli_cert
    }

    /// The test directory.
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }

    /// The `wren` binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}
