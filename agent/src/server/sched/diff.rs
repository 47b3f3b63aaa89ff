//! A readable diff between two versions of a job, for `job plan`: one
//! line per change, `+ path: value` (added), `- path: value` (removed),
//! `~ path: old => new` (changed). Lists of named things (groups, tasks,
//! services) are matched by name, so `task_groups[web].count` reads as
//! what it is. The servers' bookkeeping fields (indexes, version, status)
//! are not part of the specification and never show.

use serde_json::{Map, Value};
use wren_model::Job;

/// Top-level fields the servers own.
const BOOKKEEPING: &[&str] = &[
    "version",
    "create_index",
    "modify_index",
    "job_modify_index",
    "submit_time",
    "status",
    "status_description",
    "stable",
];

/// The changes from `old` (the current version, if any) to `new`.
pub fn jobs(old: Option<&Job>, new: &Job) -> Vec<String> {
    let Some(old) = old else {
        return vec![format!("+ job {:?}", new.id)];
    };
    let (mut a, mut b) = (spec(old), spec(new));
    for key in BOOKKEEPING {
        if let Value::Object(m) = &mut a {
            m.remove(*key);
        }
        if let Value::Object(m) = &mut b {
            m.remove(*key);
        }
    }
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

fn spec(job: &Job) -> Value {
    serde_json::to_value(job).unwrap_or(Value::Null)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".to_owned(),
        Value::Object(_) => "{...}".to_owned(),
        other => other.to_string(),
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => objects(path, x, y, out),
        (Value::Array(x), Value::Array(y)) if named(x) && named(y) => named_lists(path, x, y, out),
        _ => out.push(format!("~ {path}: {} => {}", show(a), show(b))),
    }
}

fn objects(path: &str, x: &Map<String, Value>, y: &Map<String, Value>, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let p = join(path, k);
        match (x.get(k), y.get(k)) {
            (Some(a), Some(b)) => walk(&p, a, b, out),
            (None, Some(b)) if !empty(b) => out.push(format!("+ {p}: {}", show(b))),
            (Some(a), None) if !empty(a) => out.push(format!("- {p}: {}", show(a))),
            _ => {}
        }
    }
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn name(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

/// A list whose elements all carry a distinct name.
fn named(list: &[Value]) -> bool {
    let mut names: Vec<&str> = Vec::with_capacity(list.len());
    for v in list {
        match name(v) {
            Some(n) if !names.contains(&n) => names.push(n),
            _ => return false,
        }
    }
    true
}

fn named_lists(path: &str, x: &[Value], y: &[Value], out: &mut Vec<String>) {
    for a in x {
        let n = name(a).unwrap_or_default();
        let p = format!("{path}[{n}]");
        match y.iter().find(|b| name(b) == Some(n)) {
            Some(b) => walk(&p, a, b, out),
            None => out.push(format!("- {p}")),
        }
    }
    for b in y {
        let n = name(b).unwrap_or_default();
        if !x.iter().any(|a| name(a) == Some(n)) {
            out.push(format!("+ {path}[{n}]"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{Task, TaskGroup};

    fn job() -> Job {
        Job {
            id: "web".into(),
            name: "web".into(),
            datacenters: vec!["dc1".into()],
            task_groups: vec![TaskGroup {
                name: "g".into(),
                count: 1,
                tasks: vec![Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        }
    }

    #[test]
    fn changes_read_by_name() {
        let old = job();
        let mut new = job();
        new.version = 7;
        new.modify_index = 99;
        assert!(
            jobs(Some(&old), &new).is_empty(),
            "bookkeeping is not a change"
        );
        new.task_groups[0].count = 3;
        new.task_groups[0].tasks[0].driver = "exec".into();
        new.datacenters.push("dc2".into());
        new.task_groups.push(TaskGroup {
            name: "api".into(),
            ..TaskGroup::default()
        });
        let d = jobs(Some(&old), &new);
        assert!(
            d.contains(&"~ task_groups[g].count: 1 => 3".to_owned()),
            "{d:#?}"
        );
        assert!(
            d.contains(&"~ task_groups[g].tasks[t].driver: \"raw_exec\" => \"exec\"".to_owned()),
            "{d:#?}"
        );
        assert!(
            d.contains(&"~ datacenters: [\"dc1\"] => [\"dc1\",\"dc2\"]".to_owned()),
            "{d:#?}"
        );
        assert!(d.contains(&"+ task_groups[api]".to_owned()), "{d:#?}");
        let back = jobs(Some(&new), &old);
        assert!(back.contains(&"- task_groups[api]".to_owned()), "{back:#?}");
        assert_eq!(jobs(None, &new), vec!["+ job \"web\"".to_owned()]);
    }
}
