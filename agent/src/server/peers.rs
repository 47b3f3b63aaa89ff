//! Connections from this server to the other servers of its region, one
//! multiplexed wire client per address, made on first use and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smol::Executor;

use crate::wire::{Address, Client, ClientConfig, ClientError, ClientSettings, TlsMaterial};

/// Clients to other servers, by `host:port`.
#[derive(Clone)]
pub struct Peers {
    tls: TlsMaterial,
    ex: Arc<Executor<'static>>,
    settings: ClientSettings,
    clients: Arc<Mutex<HashMap<String, Client>>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

impl Peers {
    /// Peers reached with this server's own certificate (role `server`).
    pub fn new(tls: TlsMaterial, ex: Arc<Executor<'static>>) -> Peers {
        let settings = ClientSettings {
            // Server-to-server calls carry their own deadlines; keep the
            // reconnect backoff short so a restarted peer is found quickly.
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            ..ClientSettings::default()
        };
        Peers {
            tls,
            ex,
            settings,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The client for `addr` (`host:port`).
    pub fn get(&self, addr: &str) -> Result<Client, ClientError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let address: Address =
            addr.parse()
                .map_err(|e: crate::wire::ConfigError| ClientError::Unreachable {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })?;
        let client = Client::new(
            ClientConfig {
                addresses: vec![address],
                tls: self.tls.clone(),
                settings: self.settings.clone(),
            },
            self.ex.clone(),
        )?;
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}
