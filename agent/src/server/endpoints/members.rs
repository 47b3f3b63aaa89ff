//! `GET /v1/agent/members`: every server of the region, as the answering
//! server knows them (the Raft membership and the servers it has heard
//! from), each asked for a hello now: `alive` if it answers in time,
//! `failed` if not.

use super::operators;
use crate::api::ServerMember;
use crate::server::core::Core;
use crate::server::membership::{self, Membership, ServerInfo};
use crate::wire::{HandlerResult, Method, Request, Router};
use std::collections::BTreeMap;

/// Registers the members route.
pub fn register(core: &Core, members: &Membership, router: &mut Router) {
    let (c, m) = (core.clone(), members.clone());
    router.route(Method::Get, "/v1/agent/members", operators(), move |req| {
        list(c.clone(), m.clone(), req)
    });
}

async fn list(core: Core, members: Membership, req: Request) -> HandlerResult {
    let status = core.node.status();
    let me = members.me().clone();
    let mut servers: BTreeMap<u64, ServerInfo> = BTreeMap::new();
    for s in members.known() {
        servers.insert(s.id, s);
    }
    for m in &status.members {
        servers.entry(m.id).or_insert_with(|| ServerInfo {
            id: m.id,
            addr: m.addr.clone(),
            ..ServerInfo::default()
        });
    }
    let mut probes = Vec::new();
    for s in servers.values().filter(|s| s.id != me.id) {
        let (core, members, addr) = (core.clone(), members.clone(), s.addr.clone());
        probes.push(
            core.ex
                .clone()
                .spawn(async move { membership::hello(&core, &members, &addr).await }),
        );
    }
    let mut alive = BTreeMap::from([(me.id, me.clone())]);
    for p in probes {
        if let Ok(reply) = p.await {
            alive.insert(reply.me.id, reply.me);
        }
    }
    let leader = status.leader.map(|l| l.id);
    let mut out: Vec<ServerMember> = servers
        .into_iter()
        .map(|(id, known)| {
            let (info, up) = match alive.get(&id) {
                Some(i) => (i.clone(), true),
                None => (known, false),
            };
            ServerMember {
                name: if info.name.is_empty() {
                    info.addr.clone()
                } else {
                    info.name.clone()
                },
                address: info.addr,
                region: if info.region.is_empty() {
                    core.identity.region.clone()
                } else {
                    info.region
                },
                datacenter: info.datacenter,
                status: if up { "alive" } else { "failed" }.to_owned(),
                leader: leader == Some(id),
                raft_id: id,
                version: info.version,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(req.reply(&out))
}
