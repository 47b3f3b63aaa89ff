//! Where the CLI and agents find servers and their TLS material, like
//! Nomad's CLI environment: a flag wins, then an environment variable,
//! then a file in the default directory
//! `${XDG_CONFIG_HOME:-$HOME/.config}/wren/` (where the dev agent leaves
//! its CA and a CLI certificate, so a newcomer's CLI needs no flags).
//!
//! | what | flag | env | default file |
//! | --- | --- | --- | --- |
//! | servers | `--address` | `WREN_ADDR` | `address` (else `127.0.0.1:5684`) |
//! | CA | `--ca-cert` | `WREN_CACERT` | `ca.pem` |
//! | certificate | `--client-cert` | `WREN_CLIENT_CERT` | `cli.pem` |
//! | key | `--client-key` | `WREN_CLIENT_KEY` | `cli-key.pem` |
//!
//! Addresses are `coaps+tcp://host:port`, `host:port` or `host` (port
//! 5684); several may be given, separated by commas or whitespace.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::wire::tls::{TlsError, TlsMaterial};

use super::ClientSettings;

/// The IANA port of `coaps+tcp`.
pub const DEFAULT_PORT: u16 = 5684;
/// The URI scheme of CoAP over TLS.
pub const SCHEME: &str = "coaps+tcp";

/// A server address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Why client configuration is incomplete or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An address that does not parse.
    #[error("invalid server address {0:?}: use coaps+tcp://host:port, host:port or host")]
    Address(String),
    /// No servers in a list.
    #[error("no server address given")]
    NoAddress,
    /// A TLS file is given nowhere.
    #[error("no {what}: pass {flag}, set {env}, or put it at {}", default.display())]
    Missing {
        /// What is missing.
        what: &'static str,
        /// The flag that gives it.
        flag: &'static str,
        /// The environment variable that gives it.
        env: &'static str,
        /// The default file.
        default: PathBuf,
    },
    /// Reading the default address file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS material does not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl FromStr for Address {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Address, ConfigError> {
        let bad = || ConfigError::Address(s.to_owned());
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest,
            Some(_) => return Err(bad()),
            None => s,
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            };
            (host, port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address.
            (rest, DEFAULT_PORT)
        } else if let Some((host, port)) = rest.split_once(':') {
            (host, port.parse().map_err(|_| bad())?)
        } else {
            (rest, DEFAULT_PORT)
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Address {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{SCHEME}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{SCHEME}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses a list of addresses separated by commas or whitespace.
pub fn parse_addresses(s: &str) -> Result<Vec<Address>, ConfigError> {
    let list = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Address>, _>>()?;
    if list.is_empty() {
        return Err(ConfigError::NoAddress);
    }
    Ok(list)
}

/// What a client needs: servers, TLS material, timeouts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Servers, tried in order.
    pub addresses: Vec<Address>,
    /// CA, certificate and key.
    pub tls: TlsMaterial,
    /// Timeouts and backoff.
    pub settings: ClientSettings,
}

/// The connection flags every API command takes (see `api_command!`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiFlags {
    /// `--address`.
    pub address: Option<String>,
    /// `--ca-cert`.
    pub ca_cert: Option<PathBuf>,
    /// `--client-cert`.
    pub client_cert: Option<PathBuf>,
    /// `--client-key`.
    pub client_key: Option<PathBuf>,
}

/// The default directory, `${XDG_CONFIG_HOME:-$HOME/.config}/wren`.
pub fn default_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("wren"))
}

impl ApiFlags {
    /// Resolves against the process environment and default directory,
    /// and loads the TLS material.
    pub fn resolve(&self) -> Result<ClientConfig, ConfigError> {
        self.resolve_with(&|k| std::env::var(k).ok())
    }

    /// Like [`ApiFlags::resolve`] with an injected environment.
    pub fn resolve_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClientConfig, ConfigError> {
        let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let dir = default_dir(env).unwrap_or_else(|| PathBuf::from(".config/wren"));
        let addresses = match self.address.clone().or_else(|| env_nonempty("WREN_ADDR")) {
            Some(a) => parse_addresses(&a)?,
            None => {
                let file = dir.join("address");
                match std::fs::read_to_string(&file) {
                    Ok(text) => parse_addresses(&text)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![Address {
                        host: "127.0.0.1".to_owned(),
                        port: DEFAULT_PORT,
                    }],
                    Err(source) => return Err(ConfigError::Io { path: file, source }),
                }
            }
        };
        let pick = |flag_val: &Option<PathBuf>, what, flag, var, file: &str| {
            if let Some(p) = flag_val {
                return Ok(p.clone());
            }
            if let Some(p) = env_nonempty(var) {
                return Ok(PathBuf::from(p));
            }
            let default = dir.join(file);
            if default.exists() {
                Ok(default)
            } else {
                Err(ConfigError::Missing {
                    what,
                    flag,
                    env: var,
                    default,
                })
            }
        };
        let ca = pick(
            &self.ca_cert,
            "CA certificate",
            "--ca-cert",
            "WREN_CACERT",
            "ca.pem",
        )?;
        let cert = pick(
            &self.client_cert,
            "client certificate",
            "--client-cert",
            "WREN_CLIENT_CERT",
            "cli.pem",
        )?;
        let key = pick(
            &self.client_key,
            "client key",
            "--client-key",
            "WREN_CLIENT_KEY",
            "cli-key.pem",
        )?;
        Ok(ClientConfig {
            addresses,
            tls: TlsMaterial::load(&ca, &cert, &key)?,
            settings: ClientSettings::default(),
        })
    }
}

/// Declares an argh (sub)command struct that also takes the connection
/// flags `--address`, `--ca-cert`, `--client-cert` and `--client-key`
/// (argh has no flattening), with an `api_flags()` method returning them:
///
/// ```ignore
/// crate::wire::api_command! {
///     /// Show a job's status.
///     #[argh(subcommand, name = "status")]
///     pub struct StatusCmd {
///         /// the job id
///         #[argh(positional)]
///         id: String,
///     }
/// }
/// // ... let client = Client::new(cmd.api_flags().resolve()?, ex)?;
/// ```
#[allow(unused_macros)]
macro_rules! api_command {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($fields:tt)* }
    ) => {
        #[derive(argh::FromArgs, Debug)]
        $(#[$meta])*
        $vis struct $name {
            $($fields)*
            /// server addresses, coaps+tcp://host:port, comma separated (env WREN_ADDR)
            #[argh(option)]
            address: Option<String>,
            /// the region's CA certificate, PEM (env WREN_CACERT)
            #[argh(option)]
            ca_cert: Option<std::path::PathBuf>,
            /// the client certificate, PEM (env WREN_CLIENT_CERT)
            #[argh(option)]
            client_cert: Option<std::path::PathBuf>,
            /// the client certificate's key, PEM (env WREN_CLIENT_KEY)
            #[argh(option)]
            client_key: Option<std::path::PathBuf>,
        }

        impl $name {
            /// The connection flags given.
            #[allow(dead_code)]
            $vis fn api_flags(&self) -> $crate::wire::ApiFlags {
                $crate::wire::ApiFlags {
                    address: self.address.clone(),
                    ca_cert: self.ca_cert.clone(),
                    client_cert: self.client_cert.clone(),
                    client_key: self.client_key.clone(),
                }
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use api_command;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::path::Path;

    use super::*;
    use crate::wire::identity::Role;
    use crate::wire::pki::{CertRequest, create_ca, create_cert};

    #[test]
    fn addresses_parse_in_every_spelling() {
        let a = |s: &str| s.parse::<Address>().map(|a| (a.host, a.port));
        assert_eq!(
            a("coaps+tcp://10.0.0.1:5700").unwrap(),
            ("10.0.0.1".into(), 5700)
        );
        assert_eq!(a("COAPS+TCP://srv/").unwrap(), ("srv".into(), DEFAULT_PORT));
        assert_eq!(a("srv:1").unwrap(), ("srv".into(), 1));
        assert_eq!(a("[::1]:9").unwrap(), ("::1".into(), 9));
        assert_eq!(a("[::1]").unwrap(), ("::1".into(), DEFAULT_PORT));
        assert_eq!(a("fe80::1").unwrap(), ("fe80::1".into(), DEFAULT_PORT));
        for bad in [
            "https://srv:4646",
            "srv:0",
            "srv:x",
            "",
            "coaps+tcp://",
            "srv/v1",
            "[::1",
        ] {
            assert!(a(bad).is_err(), "{bad}");
        }
        let list = parse_addresses("a:1, b\n c:3").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].to_string(), "coaps+tcp://b:5684");
        assert!(matches!(
            parse_addresses(" , "),
            Err(ConfigError::NoAddress)
        ));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn flags_beat_env_beat_default_dir() {
        let root = std::env::temp_dir().join(format!("wren-cfg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("xdg/wren");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = create_ca(30).unwrap();
        let cli = create_cert(&ca, &CertRequest::new(Role::Cli, "global")).unwrap();
        write(&dir, "ca.pem", &ca.cert);
        write(&dir, "cli.pem", &cli.cert);
        write(&dir, "cli-key.pem", &cli.key);
        write(&dir, "address", "coaps+tcp://10.1.1.1:5684\n10.1.1.2\n");
        let other_ca = write(&root, "other-ca.pem", &ca.cert);

        let mut env: HashMap<String, String> = HashMap::new();
        env.insert(
            "XDG_CONFIG_HOME".into(),
            root.join("xdg").display().to_string(),
        );
        fn get(env: &HashMap<String, String>) -> impl Fn(&str) -> Option<String> + use<> {
            let env = env.clone();
            move |k: &str| env.get(k).cloned()
        }

        // Nothing given: everything from the default directory.
        let cfg = ApiFlags::default().resolve_with(&get(&env)).unwrap();
        assert_eq!(cfg.addresses.len(), 2);
        assert_eq!(cfg.tls.identity().unwrap(), (Role::Cli, "global".into()));

        // The environment wins over the directory; flags over both.
        env.insert("WREN_ADDR".into(), "envhost:1".into());
        env.insert("WREN_CACERT".into(), other_ca.display().to_string());
        let cfg = ApiFlags::default().resolve_with(&get(&env)).unwrap();
        assert_eq!(cfg.addresses[0].host, "envhost");
        let flags = ApiFlags {
            address: Some("flaghost".into()),
            ..Default::default()
        };
        let cfg = flags.resolve_with(&get(&env)).unwrap();
        assert_eq!(cfg.addresses[0].host, "flaghost");

        // A missing file names all three ways to give it.
        std::fs::remove_file(dir.join("cli-key.pem")).unwrap();
        let err = ApiFlags::default().resolve_with(&get(&env)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--client-key") && msg.contains("WREN_CLIENT_KEY"),
            "{msg}"
        );
        assert!(msg.contains("cli-key.pem"), "{msg}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    api_command! {
        /// Show a job.
        #[argh(subcommand, name = "status")]
        struct StatusCmd {
            /// the job id
            #[argh(positional)]
            id: String,
        }
    }

    #[test]
    fn api_commands_take_the_connection_flags() {
        use argh::FromArgs;
        let cmd = StatusCmd::from_args(
            &["status"],
            &[
                "web",
                "--address",
                "a:1,b:2",
                "--ca-cert",
                "ca.pem",
                "--client-key",
                "k.pem",
            ],
        )
        .unwrap();
        assert_eq!(cmd.id, "web");
        assert_eq!(
            cmd.api_flags(),
            ApiFlags {
                address: Some("a:1,b:2".into()),
                ca_cert: Some("ca.pem".into()),
                client_cert: None,
                client_key: Some("k.pem".into()),
            }
        );
    }

    #[test]
    fn home_config_is_the_fallback_directory() {
        let env = |k: &str| (k == "HOME").then(|| "/home/ada".to_owned());
        assert_eq!(
            default_dir(&env),
            Some(PathBuf::from("/home/ada/.config/wren"))
        );
        assert_eq!(default_dir(&|_| None), None);
    }
}
