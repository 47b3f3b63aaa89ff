//! What a task sees of where it runs: its environment variables (wren's
//! `WREN_*` names and Nomad's `NOMAD_*` names for the same values, so
//! existing scripts keep working) and Nomad's run-time interpolation of
//! `${...}` in the task's config, env and args.
//!
//! Interpolation resolves, as Nomad does:
//!
//! | written | value |
//! | --- | --- |
//! | `${node.unique.id}`, `${node.unique.name}` | the node's id and name |
//! | `${node.datacenter}`, `${node.region}`, `${node.class}`, `${node.pool}` | the node's |
//! | `${attr.<name>}` | a fingerprinted attribute (`attr.cpu.arch`), or a driver's (`attr.driver.qemu.version`) |
//! | `${meta.<key>}` | the node's meta |
//! | `${unique.<name>}` | the attribute `unique.<name>` |
//! | `${env.NAME}`, `${env["NAME"]}`, `${NAME}` | a variable of the task's environment (`${NOMAD_ALLOC_DIR}`) |
//!
//! Anything else is kept as written, so a literal `${x}` that means
//! something to the task's own program passes through untouched.

use std::collections::BTreeMap;
use std::path::Path;

use wren_model::{AllocatedPort, AllocatedTaskResources, Allocation, Job, Node, Task, Value};

/// The node facts interpolation and the environment draw on.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// The node.
    pub node: Node,
    /// The agent's region.
    pub region: String,
}

/// Everything that decides one task's environment.
#[derive(Debug)]
pub struct TaskEnvInput<'a> {
    /// The allocation.
    pub alloc: &'a Allocation,
    /// Its job version.
    pub job: &'a Job,
    /// The task.
    pub task: &'a Task,
    /// What the scheduler gave the task.
    pub resources: &'a AllocatedTaskResources,
    /// The allocation directory (`<alloc_dir>/<alloc id>`).
    pub alloc_dir: &'a Path,
    /// The task directory (`<alloc dir>/<task>`).
    pub task_dir: &'a Path,
    /// Device nodes handed to the task, in order.
    pub devices: &'a [String],
    /// The node.
    pub facts: &'a NodeFacts,
}

/// Variable names may hold letters, digits and underscores only; anything
/// else in a port label or meta key becomes `_` (as Nomad does).
fn var_suffix(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Sets `WREN_<name>` and `NOMAD_<name>` to `value`.
fn both(env: &mut BTreeMap<String, String>, name: &str, value: impl Into<String>) {
    let value = value.into();
    env.insert(format!("NOMAD_{name}"), value.clone());
    env.insert(format!("WREN_{name}"), value);
}

fn port_vars(env: &mut BTreeMap<String, String>, ports: &[AllocatedPort]) {
    for p in ports {
        let label = var_suffix(&p.label);
        let inside = if p.to > 0 { p.to } else { p.value };
        let ip = if p.host_ip.is_empty() {
            "127.0.0.1"
        } else {
            p.host_ip.as_str()
        };
        both(env, &format!("PORT_{label}"), inside.to_string());
        both(env, &format!("HOST_PORT_{label}"), p.value.to_string());
        both(env, &format!("IP_{label}"), ip);
        both(env, &format!("HOST_IP_{label}"), ip);
        both(env, &format!("ADDR_{label}"), format!("{ip}:{}", p.value));
        both(
            env,
            &format!("HOST_ADDR_{label}"),
            format!("{ip}:{}", p.value),
        );
    }
}

/// The task's environment: wren's and Nomad's variables, then the task's
/// own `env` block, interpolated (it may refer to the variables before it).
pub fn task_env(input: &TaskEnvInput<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let a = input.alloc;
    let node = &input.facts.node;
    let dir = |p: &Path| p.to_string_lossy().into_owned();
    both(&mut env, "ALLOC_ID", a.id.clone());
    both(
        &mut env,
        "SHORT_ALLOC_ID",
        a.id.get(..8).unwrap_or(&a.id).to_owned(),
    );
    both(&mut env, "ALLOC_NAME", a.name.clone());
    both(
        &mut env,
        "ALLOC_INDEX",
        a.index().map_or_else(String::new, |i| i.to_string()),
    );
    both(&mut env, "JOB_ID", input.job.id.clone());
    both(&mut env, "JOB_NAME", input.job.name.clone());
    if let Some(parent) = &input.job.parent_id {
        both(&mut env, "JOB_PARENT_ID", parent.clone());
    }
    both(&mut env, "GROUP_NAME", a.task_group.clone());
    both(&mut env, "TASK_NAME", input.task.name.clone());
    both(&mut env, "ALLOC_DIR", dir(&input.alloc_dir.join("alloc")));
    both(&mut env, "TASK_DIR", dir(&input.task_dir.join("local")));
    both(
        &mut env,
        "SECRETS_DIR",
        dir(&input.task_dir.join("secrets")),
    );
    both(&mut env, "REGION", input.facts.region.clone());
    both(&mut env, "DC", node.datacenter.clone());
    both(&mut env, "NODE_ID", node.id.clone());
    both(&mut env, "NODE_NAME", node.name.clone());
    let r = input.resources;
    both(&mut env, "CPU_LIMIT", r.cpu.to_string());
    if !r.cores.is_empty() {
        let cores: Vec<String> = r.cores.iter().map(u32::to_string).collect();
        both(&mut env, "CPU_CORES", cores.join(","));
    }
    both(&mut env, "MEMORY_LIMIT", r.memory_mb.to_string());
    if r.memory_max_mb > 0 {
        both(&mut env, "MEMORY_MAX_LIMIT", r.memory_max_mb.to_string());
    }
    port_vars(&mut env, &a.resources.ports);
    if let Some(first) = input.devices.first() {
        both(&mut env, "DEVICE_PATH", first.clone());
        both(&mut env, "DEVICE_PATHS", input.devices.join(","));
    }
    // Job, then group, then task meta: the narrower wins.
    let group_meta = input
        .job
        .group(&a.task_group)
        .map(|g| &g.meta)
        .into_iter()
        .flatten();
    for (k, v) in input
        .job
        .meta
        .iter()
        .chain(group_meta)
        .chain(&input.task.meta)
    {
        let key = var_suffix(k);
        both(&mut env, &format!("META_{key}"), v.clone());
        let upper = key.to_ascii_uppercase();
        if upper != key {
            both(&mut env, &format!("META_{upper}"), v.clone());
        }
    }
    let base = env.clone();
    for (k, v) in &input.task.env {
        env.insert(k.clone(), interpolate(v, &base, input.facts));
    }
    env
}

/// Interpolates every string in a driver config (keys stay as written).
pub fn interpolate_value(
    value: &Value,
    env: &BTreeMap<String, String>,
    facts: &NodeFacts,
) -> Value {
    match value {
        Value::String(s) => Value::String(interpolate(s, env, facts)),
        Value::List(items) => Value::List(
            items
                .iter()
                .map(|v| interpolate_value(v, env, facts))
                .collect(),
        ),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), interpolate_value(v, env, facts)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces each `${...}` that names something known; keeps the rest.
pub fn interpolate(s: &str, env: &BTreeMap<String, String>, facts: &NodeFacts) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = from.find('}') else {
            out.push_str(from);
            return out;
        };
        let (expr, after) = from.split_at(end + 1);
        let inner = expr
            .get(2..expr.len() - 1)
            .map(str::trim)
            .unwrap_or_default();
        match resolve(inner, env, facts) {
            Some(v) => out.push_str(&v),
            None => out.push_str(expr),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn resolve(expr: &str, env: &BTreeMap<String, String>, facts: &NodeFacts) -> Option<String> {
    let node = &facts.node;
    if let Some(name) = expr
        .strip_prefix("env[\"")
        .and_then(|r| r.strip_suffix("\"]"))
    {
        return env.get(name).cloned();
    }
    if let Some(name) = expr.strip_prefix("env.") {
        return env.get(name).cloned();
    }
    if let Some(key) = expr.strip_prefix("node.") {
        return match key {
            "unique.id" => Some(node.id.clone()),
            "unique.name" => Some(node.name.clone()),
            "datacenter" => Some(node.datacenter.clone()),
            "region" => Some(facts.region.clone()),
            "class" => Some(node.node_class.clone()),
            "pool" => Some(node.node_pool.clone()),
            _ => None,
        };
    }
    if let Some(name) = expr.strip_prefix("attr.") {
        return attribute(node, name);
    }
    if let Some(key) = expr.strip_prefix("meta.") {
        return node.meta.get(key).cloned();
    }
    if expr.starts_with("unique.") {
        return node.attributes.get(expr).cloned();
    }
    env.get(expr).cloned()
}

/// An attribute, with the drivers map standing in for `driver.<name>` and
/// `driver.<name>.<attr>` as the scheduler reads them.
fn attribute(node: &Node, name: &str) -> Option<String> {
    if let Some(v) = node.attributes.get(name) {
        return Some(v.clone());
    }
    let rest = name.strip_prefix("driver.")?;
    match rest.split_once('.') {
        Some((driver, attr)) => node.drivers.get(driver)?.attributes.get(attr).cloned(),
        None => {
            let d = node.drivers.get(rest)?;
            (d.detected && d.healthy).then(|| "1".to_owned())
        }
    }
}

/// The task with its config and env interpolated against `env`.
pub fn interpolated_task(task: &Task, env: &BTreeMap<String, String>, facts: &NodeFacts) -> Task {
    let mut t = task.clone();
    t.config = interpolate_value(&task.config, env, facts);
    t.env = env.clone();
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{AllocatedPort, DriverInfo, TaskGroup};

    fn facts() -> NodeFacts {
        let mut node = Node {
            id: "node-1".into(),
            name: "pi-01".into(),
            datacenter: "edge".into(),
            node_class: "pi4".into(),
            node_pool: "sensors".into(),
            ..Node::default()
        };
        node.attributes.insert("cpu.arch".into(), "arm64".into());
        node.attributes
            .insert("unique.hostname".into(), "pi-01.lan".into());
        node.meta.insert("rack".into(), "r7".into());
        let mut qemu = DriverInfo {
            detected: true,
            healthy: true,
            ..DriverInfo::default()
        };
        qemu.attributes.insert("version".into(), "10.0.2".into());
        node.drivers.insert("qemu".into(), qemu);
        NodeFacts {
            node,
            region: "eu".into(),
        }
    }

    fn fixture() -> (Allocation, Job, Task) {
        let mut task = Task {
            name: "web".into(),
            ..Task::default()
        };
        task.meta.insert("owner".into(), "task".into());
        task.env
            .insert("GREETING".into(), "hi from ${NOMAD_ALLOC_INDEX}".into());
        task.env.insert("ARCH".into(), "${attr.cpu.arch}".into());
        let mut group = TaskGroup {
            name: "api".into(),
            tasks: vec![task.clone()],
            ..TaskGroup::default()
        };
        group.meta.insert("owner".into(), "group".into());
        group.meta.insert("tier".into(), "front".into());
        let mut job = Job {
            id: "shop".into(),
            name: "shop".into(),
            task_groups: vec![group],
            ..Job::default()
        };
        job.meta.insert("owner".into(), "job".into());
        let mut alloc = Allocation {
            id: "0b5e7c1a-aaaa-4bbb-8ccc-123456789abc".into(),
            name: "shop.api[2]".into(),
            job_id: "shop".into(),
            task_group: "api".into(),
            ..Allocation::default()
        };
        alloc.resources.ports.push(AllocatedPort {
            label: "http".into(),
            value: 23456,
            to: 0,
            host_ip: "10.0.0.5".into(),
        });
        alloc.resources.ports.push(AllocatedPort {
            label: "my-admin".into(),
            value: 23457,
            to: 9000,
            host_ip: String::new(),
        });
        (alloc, job, task)
    }

    #[test]
    fn environment_has_wren_and_nomad_names() {
        let (alloc, job, task) = fixture();
        let facts = facts();
        let resources = AllocatedTaskResources {
            cpu: 250,
            memory_mb: 64,
            memory_max_mb: 128,
            ..AllocatedTaskResources::default()
        };
        let devices = vec!["/dev/ttyUSB0".to_owned(), "/dev/ttyUSB1".to_owned()];
        let env = task_env(&TaskEnvInput {
            alloc: &alloc,
            job: &job,
            task: &task,
            resources: &resources,
            alloc_dir: Path::new("/data/alloc/a1"),
            task_dir: Path::new("/data/alloc/a1/web"),
            devices: &devices,
            facts: &facts,
        });
        for prefix in ["WREN", "NOMAD"] {
            let get = |k: &str| env.get(&format!("{prefix}_{k}")).map(String::as_str);
            assert_eq!(get("ALLOC_ID"), Some(alloc.id.as_str()));
            assert_eq!(get("SHORT_ALLOC_ID"), Some("0b5e7c1a"));
            assert_eq!(get("ALLOC_NAME"), Some("shop.api[2]"));
            assert_eq!(get("ALLOC_INDEX"), Some("2"));
            assert_eq!(get("JOB_ID"), Some("shop"));
            assert_eq!(get("JOB_NAME"), Some("shop"));
            assert_eq!(get("GROUP_NAME"), Some("api"));
            assert_eq!(get("TASK_NAME"), Some("web"));
            assert_eq!(get("ALLOC_DIR"), Some("/data/alloc/a1/alloc"));
            assert_eq!(get("TASK_DIR"), Some("/data/alloc/a1/web/local"));
            assert_eq!(get("SECRETS_DIR"), Some("/data/alloc/a1/web/secrets"));
            assert_eq!(get("PORT_http"), Some("23456"));
            assert_eq!(get("HOST_PORT_http"), Some("23456"));
            assert_eq!(get("IP_http"), Some("10.0.0.5"));
            assert_eq!(get("ADDR_http"), Some("10.0.0.5:23456"));
            assert_eq!(get("PORT_my_admin"), Some("9000"));
            assert_eq!(get("HOST_PORT_my_admin"), Some("23457"));
            assert_eq!(get("CPU_LIMIT"), Some("250"));
            assert_eq!(get("MEMORY_LIMIT"), Some("64"));
            assert_eq!(get("MEMORY_MAX_LIMIT"), Some("128"));
            assert_eq!(get("REGION"), Some("eu"));
            assert_eq!(get("DC"), Some("edge"));
            assert_eq!(get("META_owner"), Some("task"));
            assert_eq!(get("META_OWNER"), Some("task"));
            assert_eq!(get("META_tier"), Some("front"));
            assert_eq!(get("DEVICE_PATH"), Some("/dev/ttyUSB0"));
            assert_eq!(get("DEVICE_PATHS"), Some("/dev/ttyUSB0,/dev/ttyUSB1"));
        }
        assert_eq!(env["GREETING"], "hi from 2");
        assert_eq!(env["ARCH"], "arm64");
    }

    #[test]
    fn interpolation_resolves_what_it_knows_and_keeps_the_rest() {
        let facts = facts();
        let mut env = BTreeMap::new();
        env.insert("NOMAD_TASK_DIR".to_owned(), "/t/local".to_owned());
        env.insert("HOME".to_owned(), "/root".to_owned());
        let i = |s: &str| interpolate(s, &env, &facts);
        assert_eq!(
            i("${node.unique.name}/${node.datacenter}/${node.region}"),
            "pi-01/edge/eu"
        );
        assert_eq!(
            i("${node.class} ${node.pool} ${node.unique.id}"),
            "pi4 sensors node-1"
        );
        assert_eq!(i("${ attr.cpu.arch }"), "arm64");
        assert_eq!(i("${attr.driver.qemu}"), "1");
        assert_eq!(i("${attr.driver.qemu.version}"), "10.0.2");
        assert_eq!(i("${unique.hostname}"), "pi-01.lan");
        assert_eq!(i("rack ${meta.rack}"), "rack r7");
        assert_eq!(i("${NOMAD_TASK_DIR}/bin"), "/t/local/bin");
        assert_eq!(i("${env.HOME}:${env[\"HOME\"]}"), "/root:/root");
        assert_eq!(
            i("${meta.nope} ${attr.nope} ${x}"),
            "${meta.nope} ${attr.nope} ${x}"
        );
        assert_eq!(
            i("unterminated ${attr.cpu.arch"),
            "unterminated ${attr.cpu.arch"
        );
        assert_eq!(i("$5 and ${} {}"), "$5 and ${} {}");
        assert_eq!(i("ü ${meta.rack} ü"), "ü r7 ü");
    }

    #[test]
    fn configs_are_interpolated_deeply() {
        let facts = facts();
        let env = BTreeMap::from([("WREN_ALLOC_ID".to_owned(), "a1".to_owned())]);
        let config = Value::Map(BTreeMap::from([
            (
                "command".to_owned(),
                Value::String("${attr.cpu.arch}/run".into()),
            ),
            (
                "args".to_owned(),
                Value::List(vec![
                    Value::String("--id=${WREN_ALLOC_ID}".into()),
                    Value::Int(3),
                ]),
            ),
        ]));
        let out = interpolate_value(&config, &env, &facts);
        assert_eq!(
            out.get("command").and_then(Value::as_str),
            Some("arm64/run")
        );
        let args = out.get("args").and_then(Value::as_list).unwrap();
        assert_eq!(args[0].as_str(), Some("--id=a1"));
        assert_eq!(args[1], Value::Int(3));
    }
}
