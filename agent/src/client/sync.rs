//! Talking to the servers: registration, heartbeats within the TTL they
//! hand out, the watch on this node's allocations, batched status updates,
//! and re-fingerprinting.
//!
//! - **Heartbeat**: register once (and again whenever the node changes or
//!   a server no longer knows it), then heartbeat at about half the TTL.
//!   Each answer names every server of the region; the client keeps them
//!   (locally too) and fails over between them (the wire client does).
//!   While no server answers, the client keeps its tasks running and
//!   restarting per policy, and stops the allocations whose group says
//!   `disconnect { stop_on_client_after }`.
//! - **Watch**: a CoAP observation of `/v1/client/allocs?node=ID`; every
//!   notification is reconciled (new allocations start, changed ones are
//!   told, unwanted ones stop).
//! - **Updates**: every change of an allocation's state is queued in the
//!   local database (one per allocation, the newest) and sent in batches;
//!   a queued update is dropped only once a server acknowledged it, so
//!   nothing is lost while servers are unreachable, and on reconnect the
//!   queue is pushed first.

use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use smol::future::FutureExt as _;

use super::{Core, node};
use crate::api::{
    AllocUpdateRequest, ClientAllocs, HeartbeatRequest, HeartbeatResponse, IndexResponse,
    NodeRegisterRequest,
};
use crate::ids::{now_nanos, random_u64};
use crate::wire::{Address, Client, ClientConfig, ClientError, ClientSettings, Method};

/// The TTL assumed before a server hands one out.
const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Most updates in one request.
const MAX_BATCH: usize = 64;
/// Longest pause between attempts while no server answers.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Wake-ups between the client's loops.
#[derive(Debug, Default)]
pub struct Events {
    /// Register (again) now: the node changed, or a server forgot it.
    pub register: Event,
    /// Registered: the watch may start.
    pub registered: Event,
    /// Look for garbage to collect.
    pub gc: Event,
    /// The server list changed: reconnect the watch.
    pub servers: Event,
}

fn settings() -> ClientSettings {
    ClientSettings {
        request_timeout: Duration::from_secs(15),
        backoff_min: Duration::from_millis(100),
        backoff_max: MAX_RETRY,
        ..ClientSettings::default()
    }
}

impl Core {
    /// A client of the region's servers: the configured ones, then those
    /// learned from heartbeats.
    pub fn servers_client(&self) -> Result<Client, String> {
        let mut names: Vec<String> = self.config.client.servers.clone();
        for s in self.ctx.db.servers().unwrap_or_default() {
            if !names.contains(&s) {
                names.push(s);
            }
        }
        if self.config.server.enabled && names.is_empty() {
            names.push(format!("127.0.0.1:{}", self.config.port));
        }
        let mut addresses = Vec::new();
        let mut bad = Vec::new();
        for n in &names {
            match n.parse::<Address>() {
                Ok(a) if !addresses.contains(&a) => addresses.push(a),
                Ok(_) => {}
                Err(e) => bad.push(e.to_string()),
            }
        }
        if addresses.is_empty() {
            return Err(if bad.is_empty() {
                "no server address is configured (client.servers)".to_owned()
            } else {
                bad.join("; ")
            });
        }
        Client::new(
            ClientConfig {
                addresses,
                tls: self.tls.clone(),
                settings: settings(),
            },
            self.ctx.ex.clone(),
        )
        .map_err(|e| e.to_string())
    }

    fn contact(&self, resp: &HeartbeatResponse) -> bool {
        let now = now_nanos();
        let mut servers_changed = false;
        let mut reconnected = false;
        self.update_status(|s| {
            reconnected = !s.connected;
            s.registered = true;
            s.connected = true;
            s.last_contact = now;
            s.heartbeat_ttl = resp.heartbeat_ttl;
            s.last_error = None;
            if !resp.servers.is_empty() && s.servers != resp.servers {
                s.servers = resp.servers.clone();
                servers_changed = true;
            }
        });
        let db = &self.ctx.db;
        if servers_changed && db.set_servers(&resp.servers).is_ok() {
            self.events.servers.notify(usize::MAX);
        }
        // Flushed by the caller (crash-safe) but not fsynced on every
        // heartbeat: a power cut can only make the recorded contact older.
        let _ = db.set_last_contact(now);
        if reconnected {
            eprintln!("wren client: connected to the servers");
            let _ = self.ctx.updated.try_send(());
        }
        reconnected
    }

    fn lost_contact(&self, error: String) {
        let mut first = false;
        self.update_status(|s| {
            first = s.connected || s.last_error.is_none();
            s.connected = false;
            s.last_error = Some(error.clone());
        });
        if first {
            eprintln!("wren client: no server answers: {error}");
        }
        let last = self.status().last_contact;
        if last > 0 {
            let away = u64::try_from(now_nanos().saturating_sub(last)).unwrap_or(0);
            self.disconnected_for(Duration::from_nanos(away));
        }
    }
}

/// Sleeps `d`, or less if `event` fires first.
async fn sleep_or(d: Duration, event: &Event) {
    let listener = event.listen();
    async {
        smol::Timer::after(d).await;
    }
    .or(async {
        listener.await;
    })
    .await;
}

/// About half the TTL, with 10% jitter either way.
fn heartbeat_pause(ttl: Duration) -> Duration {
    let half = ttl / 2;
    let spread = u64::try_from(half.as_millis() / 5).unwrap_or(0).max(1);
    let jitter = random_u64() % spread;
    (half.saturating_sub(Duration::from_millis(spread / 2)) + Duration::from_millis(jitter))
        .max(Duration::from_millis(200))
}

/// Registers and heartbeats for as long as the client runs.
pub async fn heartbeat_loop(core: Arc<Core>) {
    let mut client: Option<Client> = None;
    let mut registered = false;
    let mut retry = Duration::from_millis(200);
    let mut registered_node = None;
    loop {
        if client.is_none() {
            match core.servers_client() {
                Ok(c) => client = Some(c),
                Err(e) => {
                    core.lost_contact(e);
                    sleep_or(MAX_RETRY, &core.events.servers).await;
                    continue;
                }
            }
        }
        let Some(c) = client.clone() else { continue };
        let node = core.node();
        let must_register = !registered
            || registered_node
                .as_ref()
                .is_none_or(|old| node::changed(old, &node));
        let result: Result<(HeartbeatResponse, _), ClientError> = if must_register {
            c.send(
                Method::Post,
                "/v1/client/register",
                &NodeRegisterRequest { node: node.clone() },
            )
            .await
        } else {
            c.send(
                Method::Post,
                "/v1/client/heartbeat",
                &HeartbeatRequest {
                    node_id: core.node_id.clone(),
                },
            )
            .await
        };
        match result {
            Ok((resp, _)) => {
                retry = Duration::from_millis(200);
                let servers_before = core.status().servers;
                core.contact(&resp);
                let _ = core.ctx.db.durable_soft_async().await;
                if must_register {
                    registered = true;
                    registered_node = Some(node);
                    // After `contact` marked the status registered, which
                    // is what the watch checks when woken.
                    core.events.registered.notify(usize::MAX);
                }
                if core.status().servers != servers_before {
                    client = None;
                }
                if must_register {
                    // A node registers as initializing and turns ready at
                    // its first heartbeat: send it now, not half a TTL
                    // later, so a fresh node takes work at once.
                    continue;
                }
                let ttl = if resp.heartbeat_ttl.is_zero() {
                    DEFAULT_TTL
                } else {
                    resp.heartbeat_ttl.to_std()
                };
                sleep_or(heartbeat_pause(ttl), &core.events.register).await;
            }
            Err(ClientError::Api(e)) if e.code == coap_lite::ResponseType::NotFound => {
                // The servers do not know this node (any more): register.
                registered = false;
                core.update_status(|s| s.last_error = Some(e.to_string()));
                smol::Timer::after(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
            Err(e) => {
                core.lost_contact(e.to_string());
                smol::Timer::after(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// Watches this node's allocations and reconciles every notification.
pub async fn watch_loop(core: Arc<Core>) {
    let path = format!("/v1/client/allocs?node={}", core.node_id);
    loop {
        while !core.status().registered {
            let l = core.events.registered.listen();
            if core.status().registered {
                break;
            }
            l.await;
        }
        let client = match core.servers_client() {
            Ok(c) => c,
            Err(_) => {
                smol::Timer::after(MAX_RETRY).await;
                continue;
            }
        };
        let mut obs = client.observe(&path);
        loop {
            let changed = core.events.servers.listen();
            let item = async { Some(obs.next().await) }
                .or(async {
                    changed.await;
                    None
                })
                .await;
            let Some(item) = item else {
                // New server list: observe through it.
                break;
            };
            match item {
                None => break,
                Some(Ok(resp)) => {
                    if let Some(e) = resp.as_error() {
                        if e.code == coap_lite::ResponseType::NotFound {
                            core.events.register.notify(1);
                        }
                        core.update_status(|s| s.last_error = Some(e.to_string()));
                        break;
                    }
                    match resp.decode::<ClientAllocs>() {
                        Ok(ca) => {
                            if !core.reconcile(ca).await {
                                // Out of step: observe afresh, which
                                // starts with every allocation whole.
                                break;
                            }
                        }
                        Err(e) => {
                            eprintln!("wren client: undecodable allocations from a server: {e}");
                            break;
                        }
                    }
                }
                // The observation re-registers by itself.
                Some(Err(_)) => {}
            }
        }
        smol::Timer::after(Duration::from_secs(1)).await;
    }
}

/// Sends queued status updates in batches, until every one is acknowledged.
pub async fn push_loop(core: Arc<Core>, wake: smol::channel::Receiver<()>) {
    let mut retry = Duration::from_millis(200);
    let mut client: Option<Client> = None;
    let mut servers = core.status().servers;
    loop {
        let _ = async {
            let _ = wake.recv().await;
        }
        .or(async {
            smol::Timer::after(retry.max(Duration::from_secs(1))).await;
        })
        .await;
        // Let a burst of changes coalesce into one request.
        smol::Timer::after(Duration::from_millis(20)).await;
        while wake.try_recv().is_ok() {}
        if !core.status().registered {
            continue;
        }
        loop {
            let pending = match core.ctx.db.pending_updates() {
                Ok(p) if p.is_empty() => break,
                Ok(p) => p,
                Err(e) => {
                    eprintln!("wren client: reading queued updates: {e}");
                    break;
                }
            };
            let now_servers = core.status().servers;
            if client.is_none() || now_servers != servers {
                servers = now_servers;
                client = core.servers_client().ok();
            }
            let Some(c) = client.clone() else { break };
            let batch: Vec<_> = pending.into_iter().take(MAX_BATCH).collect();
            let req = AllocUpdateRequest {
                node_id: core.node_id.clone(),
                updates: batch.iter().map(|p| p.update.clone()).collect(),
            };
            match c
                .send::<_, IndexResponse>(Method::Post, "/v1/client/allocs", &req)
                .await
            {
                Ok(_) => {
                    retry = Duration::from_millis(200);
                    for p in &batch {
                        let _ = core.ctx.db.ack_update(&p.update.alloc_id, p.seq);
                    }
                    let _ = core.ctx.db.durable_soft_async().await;
                    core.events.gc.notify(1);
                }
                Err(e) => {
                    core.update_status(|s| s.last_error = Some(e.to_string()));
                    retry = (retry * 2).min(MAX_RETRY);
                    break;
                }
            }
        }
    }
}

/// Fingerprints the node again every `fingerprint_interval`; a change
/// (a plugged-in sensor, a driver turning unhealthy) is registered.
pub async fn fingerprint_loop(core: Arc<Core>) {
    let every = core
        .config
        .client
        .fingerprint_interval
        .to_std()
        .max(Duration::from_secs(1));
    loop {
        smol::Timer::after(every).await;
        let f = core.fingerprinter();
        let drivers = core.ctx.drivers.clone();
        let config = core.config.clone();
        let id = core.node_id.clone();
        let address = core.node().address;
        let fresh = smol::unblock(move || {
            let fp = f.lock().unwrap_or_else(|e| e.into_inner()).fingerprint();
            node::build(&config, &id, &address, &fp, &drivers)
        })
        .await;
        let current = core.node();
        let fresh = node::refreshed(&current, fresh);
        let changed = node::changed(&current, &fresh);
        core.set_node(fresh);
        if changed {
            core.events.register.notify(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_at_about_half_the_ttl() {
        for _ in 0..100 {
            let p = heartbeat_pause(Duration::from_secs(10));
            assert!(
                p >= Duration::from_millis(4500) && p <= Duration::from_millis(5500),
                "{p:?}"
            );
        }
        assert_eq!(
            heartbeat_pause(Duration::from_millis(10)),
            Duration::from_millis(200)
        );
    }
}
