//! The host network: which interface carries the default route
//! (`/proc/net/route`, `/proc/net/ipv6_route`) and its addresses (from the
//! [`Probes`](crate::probe::Probes)), giving Nomad's
//! `unique.network.ip-address` and the node's host networks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use wren_model::NodeNetwork;

use crate::probe::{Interface, IpNet};
use crate::read::Ctx;

const AREA: &str = "network";
const RTF_UP: u32 = 0x1;

/// The interface of the best IPv4 default route in `/proc/net/route`.
pub(crate) fn default_route_v4(text: &str) -> Option<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) =
                (f.first()?, f.get(1)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric: u32 = metric.parse().ok()?;
            (*dest == "00000000" && *mask == "00000000" && flags & RTF_UP != 0)
                .then(|| (metric, (*iface).to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The interface of the best IPv6 default route in `/proc/net/ipv6_route`.
pub(crate) fn default_route_v6(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, plen, metric, flags, iface) =
                (f.first()?, f.get(1)?, f.get(5)?, f.get(8)?, f.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric = u32::from_str_radix(metric, 16).ok()?;
            let zero = dest.len() == 32 && dest.bytes().all(|b| b == b'0');
            (zero && *plen == "00" && flags & RTF_UP != 0 && *iface != "lo")
                .then(|| (metric, (*iface).to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

fn usable(n: &IpNet) -> bool {
    !n.addr.is_loopback() && !n.addr.is_unspecified() && !is_link_local(&n.addr)
}

/// Adds `unique.network.ip-address` and returns the host networks.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    interfaces: &[Interface],
    attrs: &mut BTreeMap<String, String>,
) -> Vec<NodeNetwork> {
    let by_route = match ctx
        .read(AREA, &ctx.roots.proc("net/route"))
        .and_then(|t| default_route_v4(&t))
    {
        Some(v4) => Some(v4),
        None => ctx
            .read(AREA, &ctx.roots.proc("net/ipv6_route"))
            .and_then(|t| default_route_v6(&t)),
    };
    let iface = by_route
        .as_deref()
        .and_then(|name| interfaces.iter().find(|i| i.name == name))
        .or_else(|| {
            interfaces
                .iter()
                .find(|i| i.name != "lo" && i.addresses.iter().any(usable))
        });
    let Some(iface) = iface else {
        if let Some(name) = by_route {
            ctx.warn(
                AREA,
                format!("the default route's interface {name} has no addresses"),
            );
        } else {
            ctx.warn(
                AREA,
                "no default route and no interface with an address".to_owned(),
            );
        }
        return Vec::new();
    };
    let mut addrs: Vec<&IpNet> = iface.addresses.iter().filter(|n| usable(n)).collect();
    addrs.sort_by_key(|n| (n.addr.is_ipv6(), n.addr));
    if let Some(first) = addrs.first() {
        attrs.insert("unique.network.ip-address".into(), first.addr.to_string());
    }
    addrs
        .into_iter()
        .map(|n| NodeNetwork {
            device: iface.name.clone(),
            ip: n.addr.to_string(),
            host_network: "default".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_v4(v4).as_deref(), Some("eth0"));
        assert_eq!(default_route_v4("junk\nmore junk"), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
        assert_eq!(default_route_v6(v6).as_deref(), Some("eth0"));
    }
}
