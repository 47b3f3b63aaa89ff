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
            // Server-to-server calls carry their own deadlines. Raft's
            // votes and heartbeats go through these clients, and a call to
            // a peer in backoff waits the backoff out: it must stay below
            // the shortest election timeout (300 ms), or a candidate whose
            // client still backs off from a peer that was down (restarted
            // since) loses whole elections to it. With 2 s, failovers took
            // 3 to 7 s instead of 1. A redial to a dead peer every 250 ms
            // is one refused connection or SYN.
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(250),
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
