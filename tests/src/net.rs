//! Hosts on a shared L2, and the faults a test injects between them.
//!
//! Every [`Net`] has its own switch: a namespace holding a Linux bridge
//! (`br0`). Each host is a namespace with loopback up and an `eth0` whose
//! veth peer `h<i>` is a port of that bridge; host `i` has the address
//! `10.99.0.<i+1>/24`. Nets are separate L2 domains, so tests running in
//! parallel reuse the same addresses without meeting. Nothing in the root
//! namespace changes.
//!
//! Faults:
//! - [`Net::cut`] takes the host's bridge port down (a pulled cable: the
//!   host sees no carrier), [`Net::restore`] brings it back;
//! - [`Net::partition`] makes two groups of hosts unreachable from each
//!   other while both stay reachable from everyone else: each host gets a
//!   permanent neighbour entry for every host across the cut pointing at a
//!   MAC address the bridge sends into a sink, so packets vanish silently,
//!   as in a real partition (no ICMP, no RST; a blackhole route would fail
//!   `sendto` with EINVAL instead). There is no nftables or iptables
//!   binary on the build machine, so this uses only `ip` and `bridge`;
//! - [`Net::impair`] adds delay, jitter and loss to what a host sends
//!   ([`crate::impair`]);
//! - [`Net::heal`] undoes all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cmd::CmdError;
use crate::impair::{self, Backend, Impairment};
use crate::netns::{Netns, NetnsError};
use crate::owner;
use crate::relay::{Relay, RelayError, RelayStats};

/// The MAC address partitioned hosts are told their peers have; the bridge
/// forwards it into a dead port.
const SINK_MAC: &str = "02:77:72:65:6e:00";

/// Hosts per net (host `i` is `10.99.0.<i+1>`).
const MAX_HOSTS: usize = 250;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A namespace could not be made or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// `ip`, `tc` or `bridge` failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The packet relay could not start.
    #[error("relay for host {host}: {source}")]
    Relay {
        /// The host.
        host: String,
        /// The cause.
        source: RelayError,
    },
    /// [`Backend::Netem`] was asked for on a kernel without `sch_netem`.
    #[error("this kernel has no sch_netem qdisc (use the relay backend)")]
    NetemUnavailable,
    /// Too many hosts for one /24.
    #[error("a net holds at most {MAX_HOSTS} hosts")]
    TooManyHosts,
}

/// A host of a [`Net`]. Ids are only meaningful for the net that made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

/// A host: a namespace with an address on the net.
#[derive(Debug)]
pub struct Host {
    name: String,
    ip: Ipv4Addr,
    ns: Netns,
}

impl Host {
    /// The name given when the host was added.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address on the net.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its namespace (to run commands or make sockets inside).
    pub fn ns(&self) -> &Netns {
        &self.ns
    }
}

#[derive(Debug, Default)]
struct Faults {
    relays: BTreeMap<HostId, Relay>,
    netem: BTreeSet<HostId>,
    cut: BTreeSet<HostId>,
    partitioned: BTreeSet<HostId>,
}

/// Options for a new [`Net`].
#[derive(Debug, Clone, Default)]
pub struct NetBuilder {
    label: String,
    hosts: Vec<String>,
    backend: Backend,
}

impl NetBuilder {
    /// Adds a host.
    pub fn host(mut self, name: &str) -> NetBuilder {
        self.hosts.push(name.to_owned());
        self
    }

    /// Adds hosts.
    pub fn hosts(mut self, names: &[&str]) -> NetBuilder {
        self.hosts.extend(names.iter().map(|n| (*n).to_owned()));
        self
    }

    /// How delay and loss are applied (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> NetBuilder {
        self.backend = backend;
        self
    }

    /// Creates the switch and the hosts.
    pub fn build(self) -> Result<Net, NetError> {
        let switch = Netns::create(&short(&format!("{}sw", self.label)))?;
        // Quiet namespaces: no IPv6 autoconfiguration chatter.
        switch.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        switch.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        switch.ip_batch(
            "link add br0 type bridge\n\
             link set br0 up\n\
             link add sink0 type veth peer name sink1\n\
             link set sink0 master br0\n\
             link set sink0 up\n",
        )?;
        switch.bridge(["fdb", "add", SINK_MAC, "dev", "sink0", "master", "static"])?;
        let backend = match self.backend {
            Backend::Auto if impair::netem_available(&switch) => Backend::Netem,
            Backend::Auto => Backend::Relay,
            Backend::Netem if !impair::netem_available(&switch) => {
                return Err(NetError::NetemUnavailable);
            }
            b => b,
        };
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ owner::next_seq();
        let mut net = Net {
            faults: Mutex::new(Faults::default()),
            hosts: Vec::new(),
            switch,
            backend,
            seed,
        };
        for h in &self.hosts {
            net.add_host(h)?;
        }
        Ok(net)
    }
}

/// Hosts on one bridge, and the faults between them. Dropping it stops
/// relays, kills what runs in its namespaces and deletes them.
#[derive(Debug)]
pub struct Net {
    // Field order is drop order: relays stop before their interfaces go.
    faults: Mutex<Faults>,
    hosts: Vec<Host>,
    switch: Netns,
    backend: Backend,
    seed: u64,
}

impl Net {
    /// A net with these hosts and the default backend.
    pub fn new(label: &str, hosts: &[&str]) -> Result<Net, NetError> {
        Net::builder(label).hosts(hosts).build()
    }

    /// Options for a new net; `label` names its switch namespace.
    pub fn builder(label: &str) -> NetBuilder {
        NetBuilder {
            label: label.to_owned(),
            ..NetBuilder::default()
        }
    }

    /// Adds a host: a namespace, a veth to the bridge, the next address.
    pub fn add_host(&mut self, name: &str) -> Result<HostId, NetError> {
        let i = self.hosts.len();
        if i >= MAX_HOSTS {
            return Err(NetError::TooManyHosts);
        }
        let ip = Ipv4Addr::new(10, 99, 0, (i + 1) as u8);
        let ns = Netns::create(&short(name))?;
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        let port = port(HostId(i));
        self.switch.ip_batch(&format!(
            "link add {port} type veth peer name eth0 netns {host}\n\
             link set {port} master br0\n\
             link set {port} up\n",
            host = ns.name()
        ))?;
        ns.ip_batch(&format!(
            "addr add {ip}/24 dev eth0\n\
             link set eth0 up\n"
        ))?;
        self.hosts.push(Host {
            name: name.to_owned(),
            ip,
            ns,
        });
        Ok(HostId(i))
    }

    /// Every host, in the order added.
    pub fn ids(&self) -> impl Iterator<Item = HostId> + use<> {
        (0..self.hosts.len()).map(HostId)
    }

    /// A host.
    ///
    /// Panics when `id` comes from another net (an invariant of the test,
    /// not outside data).
    pub fn host(&self, id: HostId) -> &Host {
        self.hosts
            .get(id.0)
            .expect("a HostId is only used with the Net that made it")
    }

    /// The host with this name.
    pub fn find(&self, name: &str) -> Option<HostId> {
        self.hosts.iter().position(|h| h.name == name).map(HostId)
    }

    /// A host's address.
    pub fn ip(&self, id: HostId) -> Ipv4Addr {
        self.host(id).ip
    }

    /// A host's namespace.
    pub fn ns(&self, id: HostId) -> &Netns {
        &self.host(id).ns
    }

    /// The switch namespace (the bridge and its ports).
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// The backend impairments use here (never [`Backend::Auto`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pulls the host's cable: its bridge port goes down.
    pub fn cut(&self, id: HostId) -> Result<(), NetError> {
        self.switch.ip(["link", "set", &port(id), "down"])?;
        self.faults().cut.insert(id);
        Ok(())
    }

    /// Plugs the cable back in.
    pub fn restore(&self, id: HostId) -> Result<(), NetError> {
        self.switch.ip(["link", "set", &port(id), "up"])?;
        self.faults().cut.remove(&id);
        Ok(())
    }

    /// Hosts in `a` and hosts in `b` no longer reach each other; both still
    /// reach every other host. Adds to partitions already in place.
    pub fn partition(&self, a: &[HostId], b: &[HostId]) -> Result<(), NetError> {
        let mut lines: BTreeMap<HostId, String> = BTreeMap::new();
        for &x in a {
            for &y in b {
                if x == y {
                    continue;
                }
                for (from, to) in [(x, y), (y, x)] {
                    let line = lines.entry(from).or_default();
                    let _ = writeln!(
                        line,
                        "neigh replace {} lladdr {SINK_MAC} nud permanent dev eth0",
                        self.ip(to)
                    );
                }
            }
        }
        let mut faults = self.faults();
        for (host, batch) in lines {
            self.ns(host).ip_batch(&batch)?;
            faults.partitioned.insert(host);
        }
        Ok(())
    }

    /// The host reaches no other host and no host reaches it (its link
    /// stays up).
    pub fn isolate(&self, id: HostId) -> Result<(), NetError> {
        let others: Vec<HostId> = self.ids().filter(|&h| h != id).collect();
        self.partition(&[id], &others)
    }

    /// Removes every partition.
    pub fn heal_partitions(&self) -> Result<(), NetError> {
        let mut faults = self.faults();
        while let Some(&host) = faults.partitioned.first() {
            self.ns(host)
                .ip(["neigh", "flush", "dev", "eth0", "nud", "permanent"])?;
            faults.partitioned.remove(&host);
        }
        Ok(())
    }

    /// Delays and drops what `id` sends (replacing an earlier impairment).
    pub fn impair(&self, id: HostId, how: Impairment) -> Result<(), NetError> {
        let mut faults = self.faults();
        match self.backend {
            Backend::Netem | Backend::Auto => {
                let mut args = vec!["qdisc", "replace", "dev", "eth0", "root"];
                let netem = how.netem_args();
                args.extend(netem.iter().map(String::as_str));
                self.ns(id).tc(args)?;
                faults.netem.insert(id);
            }
            Backend::Relay => {
                if let Some(relay) = faults.relays.get(&id) {
                    relay.set(how);
                    return Ok(());
                }
                let relay = self.start_relay(id, how)?;
                faults.relays.insert(id, relay);
            }
        }
        Ok(())
    }

    fn start_relay(&self, id: HostId, how: Impairment) -> Result<Relay, NetError> {
        let (port, spare) = (port(id), spare(id));
        // The host's port leaves the bridge first, so no frame takes both
        // paths; the few frames sent meanwhile are lost, as on a re-plug.
        self.switch.ip_batch(&format!(
            "link add {spare}q type veth peer name {spare}r\n\
             link set {spare}q master br0\n\
             link set {spare}q up\n\
             link set {spare}r up\n\
             link set {port} nomaster\n"
        ))?;
        let seed = self.seed ^ (id.0 as u64).rotate_left(17);
        match Relay::start(&self.switch, &port, &format!("{spare}r"), how, seed) {
            Ok(r) => Ok(r),
            Err(source) => {
                let _ = self.reattach(id);
                Err(NetError::Relay {
                    host: self.host(id).name.clone(),
                    source,
                })
            }
        }
    }

    fn reattach(&self, id: HostId) -> Result<(), NetError> {
        self.switch.ip_batch(&format!(
            "link del {spare}q\n\
             link set {port} master br0\n",
            spare = spare(id),
            port = port(id)
        ))?;
        Ok(())
    }

    /// Ends the impairment of `id`; packets it delays are dropped.
    pub fn clear_impairment(&self, id: HostId) -> Result<(), NetError> {
        let mut faults = self.faults();
        if faults.netem.remove(&id) {
            self.ns(id).tc(["qdisc", "del", "dev", "eth0", "root"])?;
        }
        if let Some(relay) = faults.relays.remove(&id) {
            drop(relay);
            self.reattach(id)?;
        }
        Ok(())
    }

    /// What the relay did to `id`'s frames (`None` without a relay).
    pub fn relay_stats(&self, id: HostId) -> Option<RelayStats> {
        self.faults().relays.get(&id).map(Relay::stats)
    }

    /// Undoes every fault: cables back in, partitions and impairments gone.
    pub fn heal(&self) -> Result<(), NetError> {
        self.heal_partitions()?;
        let (cut, impaired): (Vec<HostId>, Vec<HostId>) = {
            let f = self.faults();
            (
                f.cut.iter().copied().collect(),
                f.netem.iter().chain(f.relays.keys()).copied().collect(),
            )
        };
        for id in cut {
            self.restore(id)?;
        }
        for id in impaired {
            self.clear_impairment(id)?;
        }
        Ok(())
    }
}

/// The host's port on the bridge.
fn port(id: HostId) -> String {
    format!("h{}", id.0)
}

/// The stem of the relay's spare veth pair for a host.
fn spare(id: HostId) -> String {
    format!("h{}", id.0)
}

/// A namespace label from a host name: lowercase letters and digits, at
/// most 12 of them.
fn short(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(12)
        .collect();
    if s.is_empty() { "host".into() } else { s }
}
