//! Per-node resource accounting: what a group asks ([`Ask`]), what a node
//! has handed out ([`NodeUsage`]), whether an ask fits and what it is
//! granted (cpu, memory, disk, exclusive cores, device instances, reserved
//! and dynamic ports).
//!
//! Usage is built once per node from its allocations and then updated
//! incrementally as a plan adds placements, so a placement never rescans a
//! node's allocations. The plan verifier uses the same accounting, which
//! keeps "fits when planned" and "fits when applied" the same question.

use wren_model::{
    AllocatedDevice, AllocatedPort, AllocatedResources, AllocatedTaskResources, Allocation,
    ClientStatus, DesiredStatus, Node, NodeDeviceResource, VecMap,
};

mod ask;

pub(crate) use ask::{Ask, DeviceAsk, PortAsk};

use crate::rng::Rng;

/// Default dynamic port range when a node does not say.
pub(crate) const DEFAULT_MIN_DYNAMIC_PORT: u16 = 20_000;
/// Default dynamic port range when a node does not say.
pub(crate) const DEFAULT_MAX_DYNAMIC_PORT: u16 = 32_000;

/// A node's allocatable capacity, flattened so the scan over candidates
/// does not touch the (large, scattered) node records.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cap {
    pub(crate) cpu: u64,
    pub(crate) memory_mb: u64,
    pub(crate) disk_mb: u64,
    /// MHz one exclusive core is worth.
    pub(crate) per_core: u64,
}

impl Cap {
    pub(crate) fn of(node: &Node) -> Cap {
        let a = node.allocatable();
        Cap {
            cpu: u64::from(a.cpu),
            memory_mb: a.memory_mb,
            disk_mb: a.disk_mb,
            per_core: u64::from(node.resources.cpu) / u64::from(node.resources.cores.max(1)),
        }
    }

    /// The cpu `ask` takes here (exclusive cores at this node's MHz).
    pub(crate) fn cpu_of(&self, ask: &Ask) -> u64 {
        ask.shared_cpu + u64::from(ask.cores) * self.per_core
    }

    /// Whether totals of cpu, memory and disk are within this capacity,
    /// naming the first dimension over it. The one comparison behind both
    /// "does this placement fit" ([`NodeUsage::check`]) and "does the node
    /// fit after the plan" ([`NodeUsage::within_capacity`]).
    pub(crate) fn holds(&self, cpu: u64, memory_mb: u64, disk_mb: u64) -> Result<(), Exhausted> {
        if cpu > self.cpu {
            return Err(Exhausted::Cpu);
        }
        if memory_mb > self.memory_mb {
            return Err(Exhausted::Memory);
        }
        if disk_mb > self.disk_mb {
            return Err(Exhausted::Disk);
        }
        Ok(())
    }
}

/// Whether an allocation holds capacity on its node: the servers want it
/// running and its client has not finished it. Stopped, evicted, complete,
/// failed and lost allocations hold nothing. The scheduler and the plan
/// verifier both count usage through this (see [`NodeUsage::of_allocs`]).
pub(crate) fn holds_capacity(a: &Allocation) -> bool {
    holds_capacity_as(a.desired_status, a.client_status)
}

/// [`holds_capacity`] for an allocation with these statuses.
pub(crate) fn holds_capacity_as(desired: DesiredStatus, client: ClientStatus) -> bool {
    desired == DesiredStatus::Run && !client.is_terminal()
}

/// The first dimension an ask did not fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Exhausted {
    Cpu,
    Memory,
    Disk,
    Cores,
    /// The n-th device ask (see [`Ask::device_asks`]).
    Device(usize),
    /// A fixed port is taken or reserved.
    ReservedPort(u16),
    /// No free port in the dynamic range.
    DynamicPorts,
}

impl Exhausted {
    /// The dimension's name in explanations.
    pub(crate) fn label(self, ask: &Ask) -> String {
        match self {
            Exhausted::Cpu => "cpu".into(),
            Exhausted::Memory => "memory".into(),
            Exhausted::Disk => "disk".into(),
            Exhausted::Cores => "cores".into(),
            Exhausted::Device(i) => match ask.device_asks().nth(i) {
                Some(d) => format!("devices: {}", d.name),
                None => "devices".into(),
            },
            Exhausted::ReservedPort(p) => format!("reserved port {p}"),
            Exhausted::DynamicPorts => "dynamic ports".into(),
        }
    }
}

/// What one node has handed out.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeUsage {
    pub(crate) cpu: u64,
    pub(crate) memory_mb: u64,
    pub(crate) disk_mb: u64,
    /// Bit set of core ids in use (reserved ones included).
    cores: Vec<u64>,
    /// Host ports in use, sorted.
    ports: Vec<u16>,
    /// Per device group, per instance: in use.
    devices: Vec<Vec<bool>>,
}

/// Why resources handed out on a node overlap (plan verification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Overlap {
    Core(u32),
    Port(u16),
    Device(String),
}

impl NodeUsage {
    /// Empty usage for a node: only its reserved cores are taken.
    pub(crate) fn new(node: &Node) -> NodeUsage {
        let mut u = NodeUsage {
            devices: node
                .resources
                .devices
                .iter()
                .map(|d| vec![false; d.instances.len()])
                .collect(),
            ..NodeUsage::default()
        };
        for &c in &node.reserved.cores {
            u.set_core(c);
        }
        u
    }

    /// The usage of `node` by `allocs` (its allocations, minus those the
    /// caller knows are going away): only those that
    /// [`holds_capacity`] count. Overlaps already in the state are the
    /// plan verifier's concern; they are counted either way.
    pub(crate) fn of_allocs<'a>(
        node: &Node,
        allocs: impl IntoIterator<Item = &'a Allocation>,
    ) -> NodeUsage {
        let mut u = NodeUsage::new(node);
        for a in allocs.into_iter().filter(|a| holds_capacity(a)) {
            let _ = u.add(node, &a.resources);
        }
        u
    }

    fn core_used(&self, c: u32) -> bool {
        let (w, b) = ((c / 64) as usize, c % 64);
        self.cores.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    /// Marks a core used; returns whether it already was.
    fn set_core(&mut self, c: u32) -> bool {
        let (w, b) = ((c / 64) as usize, c % 64);
        if self.cores.len() <= w {
            self.cores.resize(w + 1, 0);
        }
        let was = self.cores[w] & (1 << b) != 0;
        self.cores[w] |= 1 << b;
        was
    }

    fn clear_core(&mut self, c: u32) {
        let (w, b) = ((c / 64) as usize, c % 64);
        if let Some(word) = self.cores.get_mut(w) {
            *word &= !(1 << b);
        }
    }

    fn port_used(&self, p: u16) -> bool {
        self.ports.binary_search(&p).is_ok()
    }

    /// Adds an allocation's resources. Overlaps (a core, port or device
    /// handed out twice) are reported but still counted.
    pub(crate) fn add(&mut self, node: &Node, res: &AllocatedResources) -> Result<(), Overlap> {
        let mut overlap = None;
        self.disk_mb = self.disk_mb.saturating_add(res.disk_mb);
        for t in res.tasks.values() {
            self.cpu = self.cpu.saturating_add(u64::from(t.cpu));
            self.memory_mb = self.memory_mb.saturating_add(t.memory_mb);
            for &c in &t.cores {
                if self.set_core(c) {
                    overlap.get_or_insert(Overlap::Core(c));
                }
            }
            for d in &t.devices {
                for id in &d.device_ids {
                    match device_slot(node, d, id) {
                        Some((g, i)) => {
                            if let Some(used) = self.devices.get_mut(g).and_then(|v| v.get_mut(i)) {
                                if *used {
                                    overlap.get_or_insert(Overlap::Device(id.clone()));
                                }
                                *used = true;
                            }
                        }
                        None => {
                            overlap.get_or_insert(Overlap::Device(id.clone()));
                        }
                    }
                }
            }
        }
        for p in &res.ports {
            match self.ports.binary_search(&p.value) {
                Ok(_) => {
                    overlap.get_or_insert(Overlap::Port(p.value));
                }
                Err(at) => self.ports.insert(at, p.value),
            }
        }
        overlap.map_or(Ok(()), Err)
    }

    /// Removes an allocation's resources (an in-place update replaces
    /// them).
    pub(crate) fn remove(&mut self, node: &Node, res: &AllocatedResources) {
        self.disk_mb = self.disk_mb.saturating_sub(res.disk_mb);
        for t in res.tasks.values() {
            self.cpu = self.cpu.saturating_sub(u64::from(t.cpu));
            self.memory_mb = self.memory_mb.saturating_sub(t.memory_mb);
            for &c in &t.cores {
                if !node.reserved.cores.contains(&c) {
                    self.clear_core(c);
                }
            }
            for d in &t.devices {
                for id in &d.device_ids {
                    if let Some((g, i)) = device_slot(node, d, id)
                        && let Some(used) = self.devices.get_mut(g).and_then(|v| v.get_mut(i))
                    {
                        *used = false;
                    }
                }
            }
        }
        for p in &res.ports {
            if let Ok(at) = self.ports.binary_search(&p.value) {
                self.ports.remove(at);
            }
        }
    }

    /// Whether the totals are within the node's allocatable capacity,
    /// naming the first dimension over it.
    pub(crate) fn within_capacity(&self, node: &Node) -> Result<(), Exhausted> {
        Cap::of(node).holds(self.cpu, self.memory_mb, self.disk_mb)
    }

    /// Whether every handed-out core and port is one the node offers.
    pub(crate) fn outside_node(
        &self,
        node: &Node,
        reserved_ports: &[(u16, u16)],
    ) -> Option<Overlap> {
        for (w, word) in self.cores.iter().enumerate() {
            for b in 0..64u32 {
                let c = w as u32 * 64 + b;
                if word & (1 << b) != 0
                    && c >= node.resources.cores
                    && !node.reserved.cores.contains(&c)
                {
                    return Some(Overlap::Core(c));
                }
            }
        }
        self.ports
            .iter()
            .find(|p| in_ranges(reserved_ports, **p))
            .map(|p| Overlap::Port(*p))
    }

    /// Whether `ask` fits beside what is handed out, without building the
    /// grant (the scan over candidate nodes calls this for every node).
    pub(crate) fn check(
        &self,
        node: &Node,
        cap: &Cap,
        ask: &Ask,
        reserved_ports: &[(u16, u16)],
    ) -> Result<(), Exhausted> {
        cap.holds(
            self.cpu.saturating_add(cap.cpu_of(ask)),
            self.memory_mb.saturating_add(ask.memory_mb),
            self.disk_mb.saturating_add(ask.disk_mb),
        )?;
        if ask.simple {
            return Ok(());
        }
        if ask.cores > 0 {
            let used = (0..node.resources.cores)
                .filter(|&c| self.core_used(c))
                .count() as u32;
            if node.resources.cores.saturating_sub(used) < ask.cores {
                return Err(Exhausted::Cores);
            }
        }
        if ask.tasks.iter().any(|t| !t.devices.is_empty()) {
            let mut taken = Vec::new();
            for (i, d) in ask.device_asks().enumerate() {
                self.pick_devices(node, d, &mut taken)
                    .ok_or(Exhausted::Device(i))?;
            }
        }
        if !ask.ports.is_empty() {
            let mut dynamic = 0u32;
            let mut fixed: Vec<u16> = Vec::new();
            for p in &ask.ports {
                match p.value {
                    Some(v) => {
                        if self.port_used(v) || in_ranges(reserved_ports, v) || fixed.contains(&v) {
                            return Err(Exhausted::ReservedPort(v));
                        }
                        fixed.push(v);
                    }
                    None => dynamic += 1,
                }
            }
            if dynamic > 0 {
                let (lo, hi) = dynamic_range(node);
                if lo > hi {
                    return Err(Exhausted::DynamicPorts);
                }
                let span = u32::from(hi - lo) + 1;
                let blocked_by_ranges: u32 = reserved_ports
                    .iter()
                    .map(|&(a, b)| {
                        let (a, b) = (a.max(lo), b.min(hi));
                        if a <= b { u32::from(b - a) + 1 } else { 0 }
                    })
                    .sum();
                let blocked_by_use = self
                    .ports
                    .iter()
                    .chain(fixed.iter())
                    .filter(|&&p| lo <= p && p <= hi && !in_ranges(reserved_ports, p))
                    .count() as u32;
                if span.saturating_sub(blocked_by_ranges + blocked_by_use) < dynamic {
                    return Err(Exhausted::DynamicPorts);
                }
            }
        }
        Ok(())
    }

    /// What `ask` is granted on this node: cores, device instances and
    /// ports chosen (dynamic ports at random from the node's range). Fails
    /// like [`NodeUsage::check`] when it does not fit.
    pub(crate) fn fit(
        &self,
        node: &Node,
        ask: &Ask,
        reserved_ports: &[(u16, u16)],
        rng: &mut Rng,
    ) -> Result<AllocatedResources, Exhausted> {
        let cap = Cap::of(node);
        self.check(node, &cap, ask, reserved_ports)?;
        let per_core = cap.per_core;
        let mut next_core = 0u32;
        let mut taken_devices: Vec<(usize, usize)> = Vec::new();
        let mut device_index = 0usize;
        let mut tasks = VecMap::new();
        for t in &ask.tasks {
            let mut cores = Vec::with_capacity(t.cores as usize);
            while cores.len() < t.cores as usize {
                if next_core >= node.resources.cores {
                    return Err(Exhausted::Cores);
                }
                if !self.core_used(next_core) {
                    cores.push(next_core);
                }
                next_core += 1;
            }
            let mut devices = Vec::with_capacity(t.devices.len());
            for d in &t.devices {
                let granted = self
                    .pick_devices(node, d, &mut taken_devices)
                    .ok_or(Exhausted::Device(device_index))?;
                devices.push(granted);
                device_index += 1;
            }
            let task_cpu = if t.cores > 0 {
                u64::from(t.cores) * per_core
            } else {
                t.cpu
            };
            tasks.insert(
                t.name.clone(),
                AllocatedTaskResources {
                    cpu: u32::try_from(task_cpu).unwrap_or(u32::MAX),
                    cores,
                    memory_mb: t.memory_mb,
                    memory_max_mb: t.memory_max_mb,
                    devices,
                },
            );
        }
        let ports = self.pick_ports(node, ask, reserved_ports, rng)?;
        Ok(AllocatedResources {
            tasks,
            disk_mb: ask.disk_mb,
            ports,
        })
    }

    fn pick_devices(
        &self,
        node: &Node,
        d: &DeviceAsk,
        taken: &mut Vec<(usize, usize)>,
    ) -> Option<AllocatedDevice> {
        let mut best: Option<(usize, f64)> = None;
        for (g, dev) in node.resources.devices.iter().enumerate() {
            if !d.accepts(dev) {
                continue;
            }
            let free = self.free_instances(dev, g, taken).count();
            if free < d.count as usize {
                continue;
            }
            let score = d.affinity(dev);
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((g, score));
            }
        }
        let (g, _) = best?;
        let dev = node.resources.devices.get(g)?;
        let picked: Vec<usize> = self
            .free_instances(dev, g, taken)
            .take(d.count as usize)
            .collect();
        let ids = picked
            .iter()
            .filter_map(|&i| dev.instances.get(i).map(|x| x.id.clone()))
            .collect();
        taken.extend(picked.into_iter().map(|i| (g, i)));
        Some(AllocatedDevice {
            vendor: dev.vendor.clone(),
            device_type: dev.device_type.clone(),
            name: dev.name.clone(),
            device_ids: ids,
        })
    }

    fn free_instances<'a>(
        &'a self,
        dev: &'a NodeDeviceResource,
        g: usize,
        taken: &'a [(usize, usize)],
    ) -> impl Iterator<Item = usize> + 'a {
        dev.instances
            .iter()
            .enumerate()
            .filter_map(move |(i, inst)| {
                let used = self
                    .devices
                    .get(g)
                    .and_then(|v| v.get(i))
                    .copied()
                    .unwrap_or(true);
                (inst.healthy && !used && !taken.contains(&(g, i))).then_some(i)
            })
    }

    fn pick_ports(
        &self,
        node: &Node,
        ask: &Ask,
        reserved: &[(u16, u16)],
        rng: &mut Rng,
    ) -> Result<Vec<AllocatedPort>, Exhausted> {
        if ask.ports.is_empty() {
            return Ok(Vec::new());
        }
        let mut chosen: Vec<u16> = Vec::with_capacity(ask.ports.len());
        let mut out = Vec::with_capacity(ask.ports.len());
        let free = |p: u16, chosen: &[u16]| {
            !self.port_used(p) && !in_ranges(reserved, p) && !chosen.contains(&p)
        };
        for p in ask.ports.iter().filter(|p| p.value.is_some()) {
            let v = p.value.unwrap_or_default();
            if !free(v, &chosen) {
                return Err(Exhausted::ReservedPort(v));
            }
            chosen.push(v);
            out.push(port(node, p, v));
        }
        let (lo, hi) = dynamic_range(node);
        for p in ask.ports.iter().filter(|p| p.value.is_none()) {
            if lo > hi {
                return Err(Exhausted::DynamicPorts);
            }
            let span = u32::from(hi - lo) + 1;
            let start = rng.below(u64::from(span)) as u32;
            let found = (0..span)
                .map(|k| lo + ((start + k) % span) as u16)
                .find(|&v| free(v, &chosen))
                .ok_or(Exhausted::DynamicPorts)?;
            chosen.push(found);
            out.push(port(node, p, found));
        }
        Ok(out)
    }
}

fn port(node: &Node, p: &PortAsk, value: u16) -> AllocatedPort {
    let want = if p.host_network.is_empty() {
        "default"
    } else {
        p.host_network.as_str()
    };
    let ip = node
        .resources
        .networks
        .iter()
        .find(|n| n.host_network == want || (want == "default" && n.host_network.is_empty()))
        .or_else(|| node.resources.networks.first())
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    AllocatedPort {
        label: p.label.clone(),
        value,
        to: p.to,
        host_ip: ip,
    }
}

/// The node's dynamic port range.
pub(crate) fn dynamic_range(node: &Node) -> (u16, u16) {
    let r = &node.resources;
    if r.min_dynamic_port == 0 && r.max_dynamic_port == 0 {
        (DEFAULT_MIN_DYNAMIC_PORT, DEFAULT_MAX_DYNAMIC_PORT)
    } else {
        (r.min_dynamic_port, r.max_dynamic_port)
    }
}

fn device_slot(node: &Node, d: &AllocatedDevice, id: &str) -> Option<(usize, usize)> {
    node.resources
        .devices
        .iter()
        .enumerate()
        .find_map(|(g, dev)| {
            if dev.vendor != d.vendor || dev.device_type != d.device_type || dev.name != d.name {
                return None;
            }
            dev.instances
                .iter()
                .position(|i| i.id == id)
                .map(|i| (g, i))
        })
}

/// Parses a node's reserved ports (`22,80,8000-8100`). Entries that do not
/// parse are skipped (the client validates its config; a bad entry must not
/// make the node unschedulable).
pub(crate) fn parse_port_ranges(spec: &str) -> Vec<(u16, u16)> {
    let mut ranges: Vec<(u16, u16)> = spec
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    (a <= b).then_some((a, b))
                }
                None => part.parse().ok().map(|p| (p, p)),
            }
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

fn in_ranges(ranges: &[(u16, u16)], p: u16) -> bool {
    ranges.iter().any(|&(a, b)| a <= p && p <= b)
}

#[cfg(test)]
mod tests;
