//! `wren agent --dev`: a server and a client in one process, with a data
//! dir, a region CA and certificates made on the spot, raw_exec enabled —
//! and the CA plus a CLI certificate left where the CLI looks by default,
//! so `wren job run` in another terminal needs no flags.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use wren_model::Value;

use crate::config::AgentConfig;
use crate::wire::Role;
use crate::wire::pki::{self, CertPem, CertRequest};

/// Fills `config` in for dev mode: everything on loopback, one server
/// bootstrapping itself, a client of it, raw_exec on, certificates under
/// `<data_dir>/tls` (made once, reused on restart). Returns the directory
/// the CLI's defaults were written to.
pub fn prepare(config: &mut AgentConfig) -> anyhow::Result<PathBuf> {
    let data_dir = match &config.data_dir {
        Some(d) => d.clone(),
        None => {
            let base = std::env::temp_dir().join(format!("wren-dev-{}", std::process::id()));
            config.data_dir = Some(base.clone());
            base
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    config.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.server.enabled = true;
    config.server.bootstrap_expect = 1;
    config.server.retry_join.clear();
    config.client.enabled = true;
    config.client.servers = vec![format!("127.0.0.1:{}", config.port)];
    let mut raw_exec = std::collections::BTreeMap::new();
    raw_exec.insert("enabled".to_owned(), Value::Bool(true));
    config
        .plugins
        .entry("raw_exec".to_owned())
        .or_insert(Value::Map(raw_exec));

    let tls = data_dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
    let ca = load_or(&tls, "ca", || pki::create_ca(3650))?;
    let mut server_req = CertRequest::new(Role::Server, &config.region);
    server_req
        .ip_addresses
        .push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let server = load_or(&tls, "server", || pki::create_cert(&ca, &server_req))?;
    let client = load_or(&tls, "client", || {
        pki::create_cert(&ca, &CertRequest::new(Role::Client, &config.region))
    })?;
    let cli = load_or(&tls, "cli", || {
        pki::create_cert(&ca, &CertRequest::new(Role::Cli, &config.region))
    })?;
    let _ = (server, client);
    config.tls.ca_file = Some(tls.join("ca.pem"));
    config.tls.cert_file = Some(tls.join("server.pem"));
    config.tls.key_file = Some(tls.join("server-key.pem"));

    // Where the CLI looks when no flags or environment say otherwise.
    let cli_dir = crate::wire::client::default_dir(&|k| std::env::var(k).ok())
        .context("no HOME or XDG_CONFIG_HOME to leave the CLI's certificate in")?;
    std::fs::create_dir_all(&cli_dir).with_context(|| format!("creating {}", cli_dir.display()))?;
    let put = |name: &str, bytes: &[u8]| {
        let path = cli_dir.join(name);
        crate::agent::write_atomic(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))
    };
    put("ca.pem", ca.cert.as_bytes())?;
    put("cli.pem", cli.cert.as_bytes())?;
    put("cli-key.pem", cli.key.as_bytes())?;
    std::fs::set_permissions(
        cli_dir.join("cli-key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .context("restricting the CLI key")?;
    put("address", format!("127.0.0.1:{}\n", config.port).as_bytes())?;
    Ok(cli_dir)
}

/// The client certificate of a dev agent (its client part connects to its
/// own server with it).
pub fn client_tls(data_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let tls = data_dir.join("tls");
    (
        tls.join("ca.pem"),
        tls.join("client.pem"),
        tls.join("client-key.pem"),
    )
}

fn load_or(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> Result<CertPem, pki::PkiError>,
) -> anyhow::Result<CertPem> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    if cert.exists() && key.exists() {
        return pki::read_pair(&cert, &key).with_context(|| format!("reading {}", cert.display()));
    }
    let pair = make().with_context(|| format!("making the dev {name} certificate"))?;
    let _ = std::fs::remove_file(&cert);
    let _ = std::fs::remove_file(&key);
    pki::write_pair(
        dir,
        &pair,
        &format!("{name}.pem"),
        &format!("{name}-key.pem"),
    )
    .with_context(|| format!("writing {}", cert.display()))?;
    Ok(pair)
}
