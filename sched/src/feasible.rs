//! Feasibility of a node for a task group: drivers, constraints (job,
//! group and task) and device presence, cached per computed node class, and
//! the escaped checks (on unique attributes) evaluated per node.
//!
//! Datacenter, node pool, status, eligibility and drain are decided when
//! the candidate set is built (`select::Cluster`); the `distinct_*`
//! operators live in [`crate::distinct`]; resources in [`crate::usage`].

use wren_model::{Job, Node, TaskGroup};

use crate::constraint::Check;
use crate::usage::Ask;

/// Index into [`Feasibility::reasons`].
pub(crate) type Reason = u32;

/// A class's cached verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unknown,
    Feasible,
    Infeasible(Reason),
}

/// The node-level requirements of one group.
#[derive(Debug)]
pub(crate) struct Feasibility {
    /// Checks whose outcome depends only on the computed class.
    class_checks: Vec<Check>,
    /// Checks on unique attributes, run on every node.
    node_checks: Vec<Check>,
    drivers: Vec<String>,
    /// What each reason is called in explanations.
    reasons: Vec<String>,
    cache: Vec<Verdict>,
    /// Whether any check escapes the computed class.
    pub(crate) escaped: bool,
}

/// Where the reason labels start, by kind.
#[derive(Debug, Clone, Copy)]
struct Offsets {
    drivers: u32,
    devices: u32,
    node_checks: u32,
}

impl Feasibility {
    /// Prepares the checks for `tg` of `job`. Distinct operators are left
    /// out (see [`crate::distinct`]).
    pub(crate) fn new(job: &Job, tg: &TaskGroup, ask: &Ask) -> Feasibility {
        let all = job
            .constraints
            .iter()
            .chain(tg.constraints.iter())
            .chain(tg.tasks.iter().flat_map(|t| t.constraints.iter()))
            .filter(|c| !c.operator.is_distinct());
        let mut class_checks = Vec::new();
        let mut node_checks = Vec::new();
        let mut seen = Vec::new();
        for c in all {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
            let check = Check::constraint(c);
            if check.is_escaped() {
                node_checks.push(check);
            } else {
                class_checks.push(check);
            }
        }
        let mut drivers: Vec<String> = tg.tasks.iter().map(|t| t.driver.clone()).collect();
        drivers.sort();
        drivers.dedup();
        drivers.retain(|d| !d.is_empty());
        let mut reasons: Vec<String> = class_checks
            .iter()
            .map(|c| format!("constraint {}", c.label))
            .collect();
        reasons.extend(drivers.iter().map(|d| format!("missing driver {d}")));
        reasons.extend(
            ask.device_asks()
                .map(|d| format!("missing devices {}", d.name)),
        );
        reasons.extend(
            node_checks
                .iter()
                .map(|c| format!("constraint {}", c.label)),
        );
        Feasibility {
            escaped: !node_checks.is_empty(),
            class_checks,
            node_checks,
            drivers,
            reasons,
            cache: Vec::new(),
        }
    }

    fn offsets(&self, ask: &Ask) -> Offsets {
        let drivers = self.class_checks.len() as u32;
        let devices = drivers + self.drivers.len() as u32;
        Offsets {
            drivers,
            devices,
            node_checks: devices + ask.device_asks().count() as u32,
        }
    }

    /// The label of a reason.
    pub(crate) fn reason(&self, r: Reason) -> &str {
        self.reasons
            .get(r as usize)
            .map_or("unknown", String::as_str)
    }

    /// How many reasons there are.
    pub(crate) fn reason_count(&self) -> usize {
        self.reasons.len()
    }

    /// Whether `node`, of interned class `class`, may run the group.
    pub(crate) fn check(&mut self, node: &Node, class: u32, ask: &Ask) -> Result<(), Reason> {
        let c = class as usize;
        let cached = self.cache.get(c).copied().unwrap_or(Verdict::Unknown);
        let verdict = match cached {
            Verdict::Unknown => {
                let v = match self.class_verdict(node, ask) {
                    Ok(()) => Verdict::Feasible,
                    Err(r) => Verdict::Infeasible(r),
                };
                if self.cache.len() <= c {
                    self.cache.resize(c + 1, Verdict::Unknown);
                }
                self.cache[c] = v;
                v
            }
            v => v,
        };
        if let Verdict::Infeasible(r) = verdict {
            return Err(r);
        }
        self.node_verdict(node, ask)
    }

    /// The same decision without the cache (for nodes outside the
    /// candidate set, such as an in-place update's own node).
    pub(crate) fn check_uncached(&self, node: &Node, ask: &Ask) -> Result<(), Reason> {
        self.class_verdict(node, ask)?;
        self.node_verdict(node, ask)
    }

    /// Per class: `Some(true)` feasible, `Some(false)` not, `None` not
    /// seen. Used to fill a blocked evaluation's class eligibility.
    pub(crate) fn class_verdict_of(&self, class: u32) -> Option<bool> {
        match self.cache.get(class as usize) {
            Some(Verdict::Feasible) => Some(true),
            Some(Verdict::Infeasible(_)) => Some(false),
            _ => None,
        }
    }

    fn class_verdict(&self, node: &Node, ask: &Ask) -> Result<(), Reason> {
        let off = self.offsets(ask);
        for (i, check) in self.class_checks.iter().enumerate() {
            if !check.node_matches(node) {
                return Err(i as Reason);
            }
        }
        for (i, d) in self.drivers.iter().enumerate() {
            if !driver_usable(node, d) {
                return Err(off.drivers + i as Reason);
            }
        }
        for (i, d) in ask.device_asks().enumerate() {
            let present = node
                .resources
                .devices
                .iter()
                .any(|dev| d.accepts(dev) && dev.instances.len() >= d.count as usize);
            if !present {
                return Err(off.devices + i as Reason);
            }
        }
        Ok(())
    }

    fn node_verdict(&self, node: &Node, ask: &Ask) -> Result<(), Reason> {
        if self.node_checks.is_empty() {
            return Ok(());
        }
        let off = self.offsets(ask);
        for (i, check) in self.node_checks.iter().enumerate() {
            if !check.node_matches(node) {
                return Err(off.node_checks + i as Reason);
            }
        }
        Ok(())
    }
}

/// A driver is usable when the node reports it detected and healthy, or
/// (for nodes fingerprinted the Nomad way) sets `driver.<name>` truthy.
pub(crate) fn driver_usable(node: &Node, driver: &str) -> bool {
    if let Some(d) = node.drivers.get(driver) {
        return d.detected && d.healthy;
    }
    node.attributes
        .get(&format!("driver.{driver}"))
        .is_some_and(|v| matches!(v.as_str(), "1" | "true"))
}

/// Whether a datacenter matches one of the job's patterns (`*` globs).
pub(crate) fn datacenter_matches(patterns: &[String], dc: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    patterns.iter().any(|p| glob(p.as_bytes(), dc.as_bytes()))
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether a node is in the job's node pool (`all` takes every pool).
pub(crate) fn pool_matches(job_pool: &str, node_pool: &str) -> bool {
    let job_pool = if job_pool.is_empty() {
        "default"
    } else {
        job_pool
    };
    let node_pool = if node_pool.is_empty() {
        "default"
    } else {
        node_pool
    };
    job_pool == "all" || job_pool == node_pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{Constraint, DriverInfo, Operator, Task};

    #[test]
    fn globs() {
        let p = |s: &str| vec![s.to_owned()];
        assert!(datacenter_matches(&p("*"), "dc1"));
        assert!(datacenter_matches(&p("eu-*"), "eu-west"));
        assert!(!datacenter_matches(&p("eu-*"), "us-east"));
        assert!(datacenter_matches(&p("*-west-*"), "eu-west-1"));
        assert!(datacenter_matches(&p("dc1"), "dc1"));
        assert!(!datacenter_matches(&p("dc1"), "dc10"));
        assert!(datacenter_matches(&[], "anything"));
    }

    #[test]
    fn pools() {
        assert!(pool_matches("", "default"));
        assert!(pool_matches("all", "edge"));
        assert!(!pool_matches("edge", "default"));
    }

    #[test]
    fn class_cache_and_escaped_checks() {
        let job = Job {
            constraints: vec![
                Constraint::new("${attr.cpu.arch}", Operator::Eq, "arm64"),
                Constraint::new("${node.unique.name}", Operator::Ne, "bad"),
            ],
            ..Job::default()
        };
        let tg = TaskGroup {
            tasks: vec![Task {
                driver: "exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        };
        let ask = Ask::new(&tg);
        let mut f = Feasibility::new(&job, &tg, &ask);
        assert!(f.escaped);
        let mut good = Node {
            name: "good".into(),
            ..Node::default()
        };
        good.attributes.insert("cpu.arch".into(), "arm64".into());
        good.drivers.insert(
            "exec".into(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..DriverInfo::default()
            },
        );
        let mut bad = good.clone();
        bad.name = "bad".into();
        assert_eq!(f.check(&good, 0, &ask), Ok(()));
        let r = f.check(&bad, 0, &ask).unwrap_err();
        assert_eq!(f.reason(r), "constraint ${node.unique.name} != bad");
        let mut amd = good.clone();
        amd.attributes.insert("cpu.arch".into(), "amd64".into());
        // Same class id as `good`: the cache answers (wrongly, on purpose,
        // to prove it is consulted); a new class id evaluates.
        assert_eq!(f.check(&amd, 0, &ask), Ok(()));
        let r = f.check(&amd, 1, &ask).unwrap_err();
        assert_eq!(f.reason(r), "constraint ${attr.cpu.arch} = arm64");
        let mut sick = good.clone();
        sick.drivers.get_mut("exec").unwrap().healthy = false;
        let r = f.check(&sick, 2, &ask).unwrap_err();
        assert_eq!(f.reason(r), "missing driver exec");
        assert_eq!(f.class_verdict_of(1), Some(false));
        assert_eq!(f.class_verdict_of(0), Some(true));
        assert_eq!(f.class_verdict_of(9), None);
    }
}
