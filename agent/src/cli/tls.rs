//! `wren tls ca create` and `wren tls cert create`, like `nomad tls`:
//! a region CA and the server, client and CLI certificates it signs, as
//! PEM files in the current directory. Existing files are never
//! overwritten.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use argh::FromArgs;

use crate::wire::Role;
use crate::wire::pki::{
    self, CA_CERT_FILE, CA_KEY_FILE, CertRequest, DEFAULT_CA_DAYS, DEFAULT_CERT_DAYS,
};

/// Create a certificate authority and the certificates it signs.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "tls")]
pub struct TlsCmd {
    #[argh(subcommand)]
    command: TlsSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum TlsSub {
    Ca(CaCmd),
    Cert(CertCmd),
}

/// Work with the certificate authority.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ca")]
struct CaCmd {
    #[argh(subcommand)]
    command: CaSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum CaSub {
    Create(CaCreateCmd),
}

/// Create a CA: writes wren-agent-ca.pem and wren-agent-ca-key.pem.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create")]
struct CaCreateCmd {
    /// days the CA is valid (default 1825)
    #[argh(option, default = "DEFAULT_CA_DAYS")]
    days: u32,
}

/// Work with certificates.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cert")]
struct CertCmd {
    #[argh(subcommand)]
    command: CertSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum CertSub {
    Create(CertCreateCmd),
}

/// Create a certificate signed by the CA: writes <region>-<role>-wren.pem
/// and <region>-<role>-wren-key.pem.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create")]
struct CertCreateCmd {
    /// a server certificate (server.<region>.wren, localhost, 127.0.0.1)
    #[argh(switch)]
    server: bool,
    /// a client agent certificate (client.<region>.wren)
    #[argh(switch)]
    client: bool,
    /// a command-line certificate (cli.<region>.wren)
    #[argh(switch)]
    cli: bool,
    /// the region (default global)
    #[argh(option, default = "String::from(\"global\")")]
    region: String,
    /// the CA certificate (default wren-agent-ca.pem)
    #[argh(option, default = "PathBuf::from(CA_CERT_FILE)")]
    ca: PathBuf,
    /// the CA key (default wren-agent-ca-key.pem)
    #[argh(option, default = "PathBuf::from(CA_KEY_FILE)")]
    key: PathBuf,
    /// days the certificate is valid (default 365)
    #[argh(option, default = "DEFAULT_CERT_DAYS")]
    days: u32,
    /// another DNS name for the certificate (repeatable)
    #[argh(option)]
    additional_dnsname: Vec<String>,
    /// another IP address for the certificate (repeatable)
    #[argh(option)]
    additional_ipaddress: Vec<IpAddr>,
}

impl TlsCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        // Relative to the working directory, so messages show bare file names.
        let dir = Path::new("");
        match self.command {
            TlsSub::Ca(CaCmd {
                command: CaSub::Create(cmd),
            }) => {
                let ca = pki::create_ca(cmd.days)?;
                let (cert, key) = pki::write_pair(dir, &ca, CA_CERT_FILE, CA_KEY_FILE)?;
                println!("==> CA certificate saved to: {}", cert.display());
                println!("==> CA certificate key saved to: {}", key.display());
            }
            TlsSub::Cert(CertCmd {
                command: CertSub::Create(cmd),
            }) => {
                let role = match (cmd.server, cmd.client, cmd.cli) {
                    (true, false, false) => Role::Server,
                    (false, true, false) => Role::Client,
                    (false, false, true) => Role::Cli,
                    _ => anyhow::bail!("give exactly one of --server, --client or --cli"),
                };
                let ca = pki::read_pair(&cmd.ca, &cmd.key)
                    .context("reading the CA (create one with `wren tls ca create`)")?;
                let req = CertRequest {
                    role,
                    region: cmd.region,
                    days: cmd.days,
                    dns_names: cmd.additional_dnsname,
                    ip_addresses: cmd.additional_ipaddress,
                };
                let pair = pki::create_cert(&ca, &req)?;
                let (cert_name, key_name) = req.file_names();
                let (cert, key) = pki::write_pair(dir, &pair, &cert_name, &key_name)?;
                println!(
                    "==> Using CA file {} and CA key {}",
                    cmd.ca.display(),
                    cmd.key.display()
                );
                println!("==> {role} certificate saved to: {}", cert.display());
                println!("==> {role} certificate key saved to: {}", key.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
