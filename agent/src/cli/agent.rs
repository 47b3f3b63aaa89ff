//! `wren agent`: run an agent (server, client, or both with `--dev`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use argh::FromArgs;

use crate::config::AgentConfig;

/// Run a wren agent: a server, a client, or both (--dev).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "agent")]
pub struct AgentCmd {
    /// a configuration file (repeatable; later files override earlier ones)
    #[argh(option)]
    config: Vec<PathBuf>,
    /// run a server and a client in one process with generated certificates,
    /// raw_exec enabled, and the CLI's defaults written to ~/.config/wren
    #[argh(switch)]
    dev: bool,
    /// where state is kept
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// run in server mode
    #[argh(switch)]
    server: bool,
    /// run in client mode
    #[argh(switch)]
    client: bool,
    /// servers to wait for before bootstrapping the region
    #[argh(option)]
    bootstrap_expect: Option<u32>,
    /// a server to join (repeatable)
    #[argh(option)]
    retry_join: Vec<String>,
    /// a server for the client to register with (repeatable)
    #[argh(option)]
    servers: Vec<String>,
    /// the agent's name
    #[argh(option)]
    name: Option<String>,
    /// the region
    #[argh(option)]
    region: Option<String>,
    /// the datacenter
    #[argh(option)]
    dc: Option<String>,
    /// the address to listen on
    #[argh(option)]
    bind: Option<std::net::IpAddr>,
    /// the port to listen on (default 5684)
    #[argh(option)]
    port: Option<u16>,
}

impl AgentCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut config = AgentConfig::default();
        for file in &self.config {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            config.apply_file(&file.display().to_string(), &text)?;
        }
        config.apply_env(|k| std::env::var(k).ok())?;
        self.apply_flags(&mut config);
        if self.dev {
            let cli_dir = crate::dev::prepare(&mut config)?;
            eprintln!(
                "wren agent: dev mode, data in {}; the CLI's CA and certificate are in {}",
                config
                    .data_dir
                    .as_deref()
                    .unwrap_or(std::path::Path::new("?"))
                    .display(),
                cli_dir.display()
            );
        } else {
            config.validate()?;
        }
        crate::agent::run(config)?;
        Ok(ExitCode::SUCCESS)
    }

    fn apply_flags(&self, c: &mut AgentConfig) {
        if let Some(d) = &self.data_dir {
            c.data_dir = Some(d.clone());
        }
        if self.server {
            c.server.enabled = true;
        }
        if self.client {
            c.client.enabled = true;
        }
        if let Some(n) = self.bootstrap_expect {
            c.server.bootstrap_expect = n;
        }
        if !self.retry_join.is_empty() {
            c.server.retry_join = self.retry_join.clone();
        }
        if !self.servers.is_empty() {
            c.client.servers = self.servers.clone();
        }
        if let Some(v) = &self.name {
            c.name = Some(v.clone());
        }
        if let Some(v) = &self.region {
            c.region = v.clone();
        }
        if let Some(v) = &self.dc {
            c.datacenter = v.clone();
        }
        if let Some(v) = self.bind {
            c.bind_addr = v;
        }
        if let Some(v) = self.port {
            c.port = v;
        }
    }
}
