//! Forming the region. A single-server region (`bootstrap_expect = 1`, the
//! dev agent) initializes itself; larger regions find each other through
//! `retry_join` and bootstrap exactly once.
//!
//! Each round, a server that is not yet a voter says hello to every server
//! it knows of (`retry_join` plus whatever those answered, transitively):
//!
//! - if one of them already belongs to a formed region, it asks (through
//!   that server, which forwards to the leader) to be added as a voter;
//! - otherwise, once `bootstrap_expect` servers (itself included) answered
//!   in the same round, the one with the lowest Raft id among them
//!   initializes the region with all of them; the others wait for its
//!   leader to reach them.
//!
//! A restarted server that is already a voter does nothing: its Raft
//! membership is on disk, and `initialize` refuses to run twice anyway.

use std::future::Future;
use std::time::Duration;

use wren_state::{Bootstrap, NodeError, Peer};

use super::core::Core;
use super::membership::{self, Change, Membership, ServerInfo};
use crate::wire::Address;

/// Initializes a one-server region made of this server. Harmless when the
/// region already exists (a restart): nothing changes.
pub async fn single(core: &Core) -> Result<Bootstrap, NodeError> {
    let me = Peer {
        id: core.node.id(),
        addr: core.identity.addr.clone(),
    };
    let done = core.node.initialize([me]).await?;
    core.node.wait_for_leader(Duration::from_secs(30)).await;
    Ok(done)
}

/// Starts forming (or rejoining) the region in the background: a
/// one-server region initializes itself, a larger one runs [`join`].
pub fn spawn(server: &super::Server, config: &crate::config::AgentConfig) {
    let s = &config.server;
    let core = server.core.clone();
    if s.bootstrap_expect <= 1 && s.retry_join.is_empty() {
        core.ex
            .clone()
            .spawn(async move {
                if let Err(e) = single(&core).await {
                    eprintln!("wren agent: bootstrapping a one-server region failed: {e}");
                }
            })
            .detach();
        return;
    }
    let members = server.members.clone();
    let plan = JoinPlan {
        bootstrap_expect: s.bootstrap_expect.max(1),
        retry_join: s.retry_join.clone(),
        default_port: config.port,
        interval: Duration::from_secs(1).saturating_mul(s.raft_multiplier.max(1)),
    };
    core.ex
        .clone()
        .spawn(async move {
            match join(&core, &members, &plan).await {
                Joined::AlreadyMember => {
                    eprintln!("wren agent: rejoining the region from the state on disk");
                }
                Joined::Bootstrapped | Joined::Added => {}
            }
            // Names, datacenters and versions of the other servers, for
            // `server members` and `list-peers`.
            membership::learn_missing(&core, &members).await;
        })
        .detach();
}

/// How a server joins its region.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    /// Servers to wait for before bootstrapping.
    pub bootstrap_expect: u32,
    /// Servers to contact (`host`, `host:port` or `coaps+tcp://host:port`).
    pub retry_join: Vec<String>,
    /// The port of an entry that names none.
    pub default_port: u16,
    /// Pause between rounds.
    pub interval: Duration,
}

/// What [`join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// This server was a voter already (a restart).
    AlreadyMember,
    /// This server initialized the region.
    Bootstrapped,
    /// Another server initialized the region with this one in it, or the
    /// leader added it.
    Added,
}

/// Normalises a `retry_join` entry to `host:port`.
pub fn join_address(entry: &str, default_port: u16) -> Option<String> {
    let bare = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let has_port = if let Some(v6) = bare.strip_prefix('[') {
        v6.contains("]:")
    } else {
        bare.matches(':').count() == 1
    };
    let spelled = if has_port {
        entry.to_owned()
    } else if bare.matches(':').count() > 1 {
        format!("[{bare}]:{default_port}")
    } else {
        format!("{bare}:{default_port}")
    };
    let a: Address = spelled.parse().ok()?;
    Some(if a.host.contains(':') {
        format!("[{}]:{}", a.host, a.port)
    } else {
        format!("{}:{}", a.host, a.port)
    })
}

fn is_voter(core: &Core) -> bool {
    let me = core.node.id();
    core.node
        .status()
        .members
        .iter()
        .any(|m| m.id == me && m.voter)
}

/// Joins or forms the region; returns once this server is a voter. Runs
/// until then, round after round (a region waits for its servers).
pub async fn join(core: &Core, members: &Membership, plan: &JoinPlan) -> Joined {
    if is_voter(core) {
        return Joined::AlreadyMember;
    }
    let me = members.me().clone();
    let mut last_note = String::new();
    loop {
        if is_voter(core) {
            return Joined::Added;
        }
        let mut targets: Vec<String> = plan
            .retry_join
            .iter()
            .filter_map(|e| join_address(e, plan.default_port))
            .chain(members.known().into_iter().map(|s| s.addr))
            .filter(|a| *a != me.addr)
            .collect();
        targets.sort();
        targets.dedup();
        let calls = targets.iter().map(|addr| {
            let addr = addr.clone();
            async move {
                let r = membership::hello(core, members, &addr).await;
                (addr, r)
            }
        });
        let replies = join_all(calls.collect()).await;
        let mut alive: Vec<ServerInfo> = vec![me.clone()];
        // Servers of a formed region, with the leader they know.
        let mut formed: Vec<(ServerInfo, Option<String>)> = Vec::new();
        let mut failures = Vec::new();
        for (addr, r) in replies {
            match r {
                Ok(reply) if reply.me.id == me.id => {}
                Ok(reply) => {
                    if reply.initialized {
                        formed.push((reply.me.clone(), reply.leader.clone()));
                    }
                    alive.push(reply.me);
                }
                Err(e) => failures.push(format!("{addr}: {e}")),
            }
        }
        alive.sort_by_key(|s| s.id);
        alive.dedup_by_key(|s| s.id);

        let note = if let Some((server, leader)) = formed.first() {
            let Some(leader) = formed
                .iter()
                .find_map(|(_, l)| l.clone())
                .or_else(|| leader.clone())
            else {
                let note = format!(
                    "the region exists ({} answered) but elects a leader now",
                    server.name
                );
                if note != last_note {
                    eprintln!("wren agent: joining the region: {note}");
                    last_note = note;
                }
                core.node.wait_for_status(plan.interval, |_| false).await;
                continue;
            };
            match membership::send_change(core, &leader, &Change::AddVoter(me.clone())).await {
                Ok(()) => {
                    if core
                        .node
                        .wait_for_status(plan.interval.saturating_mul(10), |s| {
                            s.members.iter().any(|m| m.id == me.id && m.voter)
                        })
                        .await
                        .is_some()
                    {
                        eprintln!(
                            "wren agent: joined the region through {} ({})",
                            server.name, server.addr
                        );
                        return Joined::Added;
                    }
                    "added as a voter, waiting to hear from the leader".to_owned()
                }
                Err(e) => format!("asking the leader at {leader} to add this server: {e}"),
            }
        } else if alive.len() >= plan.bootstrap_expect as usize {
            if alive.first().is_some_and(|s| s.id == me.id) {
                let peers = alive.iter().map(|s| Peer {
                    id: s.id,
                    addr: s.addr.clone(),
                });
                match core.node.initialize(peers).await {
                    Ok(Bootstrap::Initialized) => {
                        let names: Vec<&str> = alive.iter().map(|s| s.name.as_str()).collect();
                        eprintln!(
                            "wren agent: bootstrapped the region with {}",
                            names.join(", ")
                        );
                        return Joined::Bootstrapped;
                    }
                    Ok(Bootstrap::AlreadyInitialized) => {
                        "the region exists already; waiting to be a voter".to_owned()
                    }
                    Err(e) => format!("bootstrapping: {e}"),
                }
            } else {
                format!(
                    "{} servers known; waiting for {} (lowest id) to bootstrap",
                    alive.len(),
                    alive.first().map_or("?", |s| s.name.as_str())
                )
            }
        } else {
            format!(
                "{} of {} servers known{}",
                alive.len(),
                plan.bootstrap_expect,
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(" (unreachable: {})", failures.join("; "))
                }
            )
        };
        if note != last_note {
            eprintln!("wren agent: joining the region: {note}");
            last_note = note;
        }
        // Wake early when a leader reaches this server.
        core.node
            .wait_for_status(plan.interval, |s| {
                s.members.iter().any(|m| m.id == me.id && m.voter)
            })
            .await;
    }
}

/// Runs every future to completion, concurrently.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut tasks: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = tasks.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (t, slot) in tasks.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match t.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(out.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_addresses_get_the_default_port() {
        let a = |s: &str| join_address(s, 5684);
        assert_eq!(a("10.0.0.1").as_deref(), Some("10.0.0.1:5684"));
        assert_eq!(a("10.0.0.1:6000").as_deref(), Some("10.0.0.1:6000"));
        assert_eq!(a("coaps+tcp://srv:7").as_deref(), Some("srv:7"));
        assert_eq!(a("srv").as_deref(), Some("srv:5684"));
        assert_eq!(a("fe80::1").as_deref(), Some("[fe80::1]:5684"));
        assert_eq!(a("[fe80::1]:9").as_deref(), Some("[fe80::1]:9"));
        assert_eq!(a(""), None);
        assert_eq!(a("srv:x"), None);
    }

    #[test]
    fn join_all_keeps_order() {
        let out = smol::block_on(join_all(vec![
            Box::pin(async {
                smol::Timer::after(Duration::from_millis(20)).await;
                1
            }) as std::pin::Pin<Box<dyn Future<Output = i32>>>,
            Box::pin(async { 2 }),
        ]));
        assert_eq!(out, [1, 2]);
    }
}
