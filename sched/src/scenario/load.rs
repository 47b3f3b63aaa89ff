//! Loading a scenario file: defaults merged under what the file says,
//! `count` templates expanded (`{i}` is the copy's index), a few
//! second-based shorthands turned into the model's nanosecond fields.

use serde_json::{Map, Value, json};
use wren_model::{
    AllocatedResources, AllocatedTaskResources, Allocation, Deployment, Evaluation, Job, Node,
    RescheduleEvent, TaskState, TaskStatus,
};

use crate::SchedConfig;
use crate::state::MemState;

pub(crate) const S: i64 = 1_000_000_000;

/// A scenario's inputs, loaded.
pub(crate) struct Loaded {
    pub(crate) state: MemState,
    pub(crate) eval: Evaluation,
    pub(crate) now: i64,
    pub(crate) seed: u64,
    pub(crate) config: SchedConfig,
}

/// Deep-merges `over` into `base` (objects merge, anything else replaces).
pub(crate) fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn substitute(v: &Value, i: usize) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{i}", &i.to_string())),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, i)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute(x, i)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Expands `{"count": n, ...}` templates into n objects.
fn expand(list: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for t in list.and_then(Value::as_array).into_iter().flatten() {
        let n = t.get("count").and_then(Value::as_u64).unwrap_or(1) as usize;
        let mut t = t.clone();
        if let Some(o) = t.as_object_mut() {
            o.remove("count");
        }
        for i in 0..n {
            out.push(substitute(&t, i));
        }
    }
    out
}

fn take_i64(o: &mut Map<String, Value>, k: &str) -> Option<i64> {
    o.remove(k)
        .and_then(|v| v.as_f64())
        .map(|x| (x * S as f64) as i64)
}

fn node(v: &Value) -> Result<Node, String> {
    let mut n = json!({
        "datacenter": "dc1",
        "node_pool": "default",
        "status": "ready",
        "eligibility": "eligible",
        "attributes": {"cpu.arch": "amd64", "kernel.name": "linux", "kernel.version": "6.1.0"},
        "resources": {"cpu": 4000, "cores": 4, "memory_mb": 8192, "disk_mb": 50000},
        "drivers": {"exec": {"detected": true, "healthy": true}}
    });
    merge(&mut n, v);
    if n.get("name").is_none() {
        let id = n.get("id").cloned().unwrap_or(Value::Null);
        if let Some(o) = n.as_object_mut() {
            o.insert("name".into(), id);
        }
    }
    let mut node: Node = serde_json::from_value(n).map_err(|e| format!("node: {e}"))?;
    node.computed_class = node.compute_class();
    Ok(node)
}

fn job(v: &Value) -> Result<Job, String> {
    let mut j = json!({
        "region": "global", "datacenters": ["*"], "node_pool": "default",
        "type": "service", "priority": 50
    });
    merge(&mut j, v);
    let id = j.get("id").cloned().unwrap_or(Value::Null);
    if j.get("name").is_none()
        && let Some(o) = j.as_object_mut()
    {
        o.insert("name".into(), id);
    }
    let groups = j
        .get("task_groups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mut base = json!({"count": 1, "tasks": [{}], "ephemeral_disk": {"size_mb": 100}});
            merge(&mut base, g);
            let tasks = base
                .get("tasks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let tasks: Vec<Value> = tasks
                .iter()
                .map(|t| {
                    let mut tb = json!({"name": "task", "driver": "exec",
                                        "resources": {"cpu": 500, "memory_mb": 256}});
                    merge(&mut tb, t);
                    tb
                })
                .collect();
            if let Some(o) = base.as_object_mut() {
                o.insert("tasks".into(), Value::Array(tasks));
            }
            base
        })
        .collect();
    if let Some(o) = j.as_object_mut() {
        o.insert("task_groups".into(), Value::Array(groups));
    }
    serde_json::from_value(j).map_err(|e| format!("job: {e}"))
}

fn alloc(v: &Value, jobs: &[Job]) -> Result<Allocation, String> {
    let current = jobs.last().ok_or("allocations need a job")?;
    let mut a = json!({
        "job_id": current.id, "job_version": current.version,
        "task_group": current.task_groups.first().map(|g| g.name.clone()).unwrap_or_default(),
        "desired_status": "run", "client_status": "running", "eval_id": "earlier"
    });
    merge(&mut a, v);
    let o = a.as_object_mut().ok_or("allocation must be an object")?;
    let failed_at = take_i64(o, "failed_at_s");
    let started_at = take_i64(o, "started_at_s");
    let disconnected_at = take_i64(o, "disconnected_at_s");
    let reschedules = o.remove("reschedule_s");
    let score = o.remove("norm_score").and_then(|v| v.as_f64());
    let has_resources = o.contains_key("resources");
    let mut alloc: Allocation = serde_json::from_value(a).map_err(|e| format!("alloc: {e}"))?;
    let version = jobs
        .iter()
        .find(|j| j.id == alloc.job_id && j.version == alloc.job_version)
        .or(Some(current));
    let tg = version.and_then(|j| j.group(&alloc.task_group));
    if alloc.name.is_empty() {
        let i = alloc
            .id
            .rsplit('-')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        alloc.name = Allocation::name_for(&alloc.job_id, &alloc.task_group, i);
    }
    if !has_resources && let Some(tg) = tg {
        alloc.resources = AllocatedResources {
            tasks: tg
                .tasks
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        AllocatedTaskResources {
                            cpu: t.resources.cpu,
                            memory_mb: t.resources.memory_mb,
                            ..AllocatedTaskResources::default()
                        },
                    )
                })
                .collect(),
            disk_mb: tg.ephemeral_disk.size_mb,
            ports: Vec::new(),
        };
    }
    let task_names: Vec<String> = tg
        .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    if failed_at.is_some() || started_at.is_some() {
        let states: wren_model::VecMap<String, TaskState> = task_names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    TaskState {
                        state: if failed_at.is_some() {
                            TaskStatus::Dead
                        } else {
                            TaskStatus::Running
                        },
                        failed: failed_at.is_some(),
                        started_at: started_at.unwrap_or(1),
                        finished_at: failed_at.unwrap_or(0),
                        ..TaskState::default()
                    },
                )
            })
            .collect();
        alloc.task_states = states;
    }
    alloc.disconnected_at = disconnected_at.or(alloc.disconnected_at);
    if let Some(Value::Array(events)) = reschedules {
        for e in events {
            let f = |i: usize| e.get(i).and_then(Value::as_f64).unwrap_or(0.0);
            alloc.reschedule_tracker.push(RescheduleEvent {
                time: (f(0) * S as f64) as i64,
                delay: wren_model::Duration((f(1) * S as f64) as u64),
                prev_alloc_id: e
                    .get(2)
                    .and_then(Value::as_str)
                    .unwrap_or("earlier")
                    .to_owned(),
                prev_node_id: e.get(3).and_then(Value::as_str).unwrap_or("").to_owned(),
            });
        }
    }
    if let Some(score) = score {
        alloc.metrics = Some(wren_model::AllocMetric {
            scores: vec![wren_model::NodeScore {
                node_id: alloc.node_id.clone(),
                norm_score: score,
                ..wren_model::NodeScore::default()
            }],
            ..wren_model::AllocMetric::default()
        });
    }
    Ok(alloc)
}

/// Builds the state and evaluation of one case.
pub(crate) fn load(case: &Value) -> Result<Loaded, String> {
    let mut state = MemState::new();
    for n in expand(case.get("nodes")) {
        state.upsert_node(node(&n)?);
    }
    let mut jobs = Vec::new();
    let job_list: Vec<Value> = match (case.get("jobs"), case.get("job")) {
        (Some(Value::Array(js)), _) => js.clone(),
        (_, Some(j)) => vec![j.clone()],
        _ => Vec::new(),
    };
    for (i, j) in job_list.iter().enumerate() {
        let mut parsed = job(j)?;
        if j.get("version").is_none() {
            parsed.version = i as u64;
        }
        parsed.job_modify_index = parsed.version + 1;
        jobs.push(parsed);
    }
    if case.get("job_missing").and_then(Value::as_bool) != Some(true) {
        for j in &jobs {
            state.insert_job_version(j.clone());
        }
    }
    for d in case
        .get("deployments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d: Deployment =
            serde_json::from_value(d.clone()).map_err(|e| format!("deployment: {e}"))?;
        state.upsert_deployment(d);
    }
    for a in expand(case.get("allocs")) {
        state.upsert_alloc(alloc(&a, &jobs)?);
    }
    let current = jobs.last();
    let mut e = json!({
        "id": "eval-1", "status": "pending", "triggered_by": "job-register",
        "job_id": current.map(|j| j.id.clone()).unwrap_or_default(),
        "priority": current.map_or(50, |j| j.priority),
        "type": current.map_or("service", |j| j.job_type.as_str()),
    });
    if let Some(over) = case.get("eval") {
        merge(&mut e, over);
    }
    let eval: Evaluation = serde_json::from_value(e).map_err(|e| format!("eval: {e}"))?;
    let mut config = SchedConfig::default();
    if let Some(alg) = case.pointer("/config/algorithm").and_then(Value::as_str) {
        config.algorithm = if alg == "spread" {
            crate::Algorithm::Spread
        } else {
            crate::Algorithm::Binpack
        };
    }
    Ok(Loaded {
        state,
        eval,
        now: (case
            .get("now_s")
            .and_then(Value::as_f64)
            .unwrap_or(1_000_000.0)
            * S as f64) as i64,
        seed: case.get("seed").and_then(Value::as_u64).unwrap_or(1),
        config,
    })
}
