//! Scheduler scenarios as data: every `testdata/*.json` file holds nodes,
//! existing allocations, job versions, the evaluation, and the expected
//! outcome. A file is one case, or a `base` shared by `cases` (each
//! deep-merged over the base). See `testdata/README.md` for the format.
//!
//! Besides each case's own expectations, every plan must pass the plan
//! verifier against the state it was made from: the scheduler never
//! proposes an over-committed node.

mod load;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde_json::Value;
use wren_model::{Allocation, ClientStatus, Node};

use crate::constraint::Target;
use crate::state::StateView;
use crate::{Outcome, schedule, verify};
use load::{S, load, merge};

fn ids<'a>(it: impl Iterator<Item = &'a Allocation>) -> Vec<String> {
    let mut v: Vec<String> = it.map(|a| a.id.clone()).collect();
    v.sort();
    v
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
        .collect()
}

/// Checks one outcome against a case's `expect`; returns what differs.
fn check(state: &crate::MemState, out: &Outcome, expect: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let mut fail = |what: String| errs.push(what);
    let plan = &out.plan;
    let existing: HashSet<&str> = state.allocs().map(|a| a.id.as_str()).collect();
    let placed: Vec<&Allocation> = plan
        .node_allocation
        .values()
        .flatten()
        .filter(|a| !existing.contains(a.id.as_str()))
        .collect();
    let updated: Vec<&Allocation> = plan
        .node_allocation
        .values()
        .flatten()
        .filter(|a| existing.contains(a.id.as_str()))
        .collect();
    let stopped: Vec<&Allocation> = plan.node_update.values().flatten().collect();
    let mut per_node: BTreeMap<String, u64> = BTreeMap::new();
    for a in &placed {
        *per_node.entry(a.node_id.clone()).or_insert(0) += 1;
    }
    let Some(expect) = expect.as_object() else {
        return vec!["expect must be an object".into()];
    };
    for (key, want) in expect {
        match key.as_str() {
            "placements" => {
                if placed.len() as u64 != want.as_u64().unwrap_or(u64::MAX) {
                    fail(format!("placements: got {}, want {want}", placed.len()));
                }
            }
            "placed_on" => {
                let want = counts(want);
                if per_node != want {
                    fail(format!("placed_on: got {per_node:?}, want {want:?}"));
                }
            }
            "max_per_node" => {
                let max = per_node.values().copied().max().unwrap_or(0);
                if max > want.as_u64().unwrap_or(0) {
                    fail(format!("max_per_node: got {max}, want at most {want}"));
                }
            }
            "not_on" => {
                for n in strings(want) {
                    if per_node.contains_key(&n) {
                        fail(format!("not_on: placed on {n}"));
                    }
                }
            }
            "only_on" => {
                let allowed: BTreeSet<String> = strings(want).into_iter().collect();
                for n in per_node.keys().filter(|n| !allowed.contains(*n)) {
                    fail(format!("only_on: placed on {n}"));
                }
            }
            "placed_by" => {
                let attr = want.get("attribute").and_then(Value::as_str).unwrap_or("");
                let target = Target::parse(attr);
                let mut got: BTreeMap<String, u64> = BTreeMap::new();
                for a in &placed {
                    let node: Option<&Node> = state.node(&a.node_id);
                    let v = node
                        .and_then(|n| target.node_value(n).map(|v| v.into_owned()))
                        .unwrap_or_else(|| "<unset>".into());
                    *got.entry(v).or_insert(0) += 1;
                }
                let w = counts(want.get("counts").unwrap_or(&Value::Null));
                if got != w {
                    fail(format!("placed_by {attr}: got {got:?}, want {w:?}"));
                }
            }
            "stops" => {
                let got = ids(stopped.iter().copied());
                if got != strings(want) {
                    fail(format!("stops: got {got:?}, want {want}"));
                }
            }
            "stop_count" => {
                if stopped.len() as u64 != want.as_u64().unwrap_or(u64::MAX) {
                    fail(format!("stop_count: got {}, want {want}", stopped.len()));
                }
            }
            "lost" => {
                let got = ids(stopped
                    .iter()
                    .copied()
                    .filter(|a| a.client_status == ClientStatus::Lost));
                if got != strings(want) {
                    fail(format!("lost: got {got:?}, want {want}"));
                }
            }
            "updates" => {
                let got = ids(updated.iter().copied());
                if got != strings(want) {
                    fail(format!("updates: got {got:?}, want {want}"));
                }
            }
            "unknown" => {
                let got = ids(updated
                    .iter()
                    .copied()
                    .filter(|a| a.client_status == ClientStatus::Unknown));
                if got != strings(want) {
                    fail(format!("unknown: got {got:?}, want {want}"));
                }
            }
            "reconnected" => {
                let got = ids(updated.iter().copied().filter(|a| {
                    a.disconnected_at.is_none()
                        && state
                            .alloc(&a.id)
                            .is_some_and(|o| o.disconnected_at.is_some())
                }));
                if got != strings(want) {
                    fail(format!("reconnected: got {got:?}, want {want}"));
                }
            }
            "versions" => {
                let mut got: BTreeMap<String, u64> = BTreeMap::new();
                for a in updated.iter().chain(placed.iter()) {
                    got.insert(a.id.clone(), a.job_version);
                }
                for (id, v) in counts(want) {
                    if !id.starts_with("new") && got.get(&id) != Some(&v) {
                        fail(format!("versions: {id} got {:?}, want {v}", got.get(&id)));
                    }
                }
            }
            "replacements" => {
                let mut got: BTreeMap<String, u64> = BTreeMap::new();
                for a in &placed {
                    if let Some(p) = &a.previous_allocation {
                        *got.entry(p.clone()).or_insert(0) += 1;
                    }
                }
                let w = counts(want);
                if got != w {
                    fail(format!("replacements: got {got:?}, want {w:?}"));
                }
            }
            "tracker" => {
                for (prev, n) in counts(want) {
                    let got = placed
                        .iter()
                        .find(|a| a.previous_allocation.as_deref() == Some(prev.as_str()))
                        .map(|a| a.reschedule_tracker.len() as u64);
                    if got != Some(n) {
                        fail(format!(
                            "tracker of {prev}'s replacement: got {got:?}, want {n}"
                        ));
                    }
                }
            }
            "desired" => {
                let ann = plan.annotations.as_ref().map(|a| &a.desired_tg_updates);
                for (g, fields) in want.as_object().into_iter().flatten() {
                    let got = ann
                        .and_then(|a| a.get(g))
                        .map(|d| serde_json::to_value(d).unwrap_or_default());
                    for (f, n) in fields.as_object().into_iter().flatten() {
                        let v = got
                            .as_ref()
                            .and_then(|d| d.get(f))
                            .cloned()
                            .unwrap_or(Value::Null);
                        if &v != n {
                            fail(format!("desired {g}.{f}: got {v}, want {n}"));
                        }
                    }
                }
            }
            "eval_status" => {
                if out.eval.status.as_str() != want.as_str().unwrap_or("") {
                    fail(format!("eval_status: got {}, want {want}", out.eval.status));
                }
            }
            "blocked" => {
                if out.blocked.is_some() != want.as_bool().unwrap_or(false) {
                    fail(format!(
                        "blocked: got {:?}",
                        out.blocked.as_ref().map(|b| &b.id)
                    ));
                }
            }
            "escaped" => {
                let got = out
                    .blocked
                    .as_ref()
                    .map_or(out.eval.escaped_computed_class, |b| {
                        b.escaped_computed_class
                    });
                if Some(got) != want.as_bool() {
                    fail(format!("escaped: got {got}, want {want}"));
                }
            }
            "queued" => {
                let got: BTreeMap<String, u64> = out
                    .eval
                    .queued_allocations
                    .iter()
                    .map(|(k, v)| (k.clone(), u64::from(*v)))
                    .collect();
                let w = counts(want);
                if got != w {
                    fail(format!("queued: got {got:?}, want {w:?}"));
                }
            }
            "explain" => {
                for (g, parts) in want.as_object().into_iter().flatten() {
                    let got = out
                        .eval
                        .failed_tg_allocs
                        .get(g)
                        .map(|m| m.explain())
                        .unwrap_or_default();
                    for p in strings(parts) {
                        if !got.contains(&p) {
                            fail(format!("explain {g}: {got:?} lacks {p:?}"));
                        }
                    }
                }
            }
            "no_failures" => {
                if !out.eval.failed_tg_allocs.is_empty() && want.as_bool() == Some(true) {
                    fail(format!("no_failures: got {:?}", out.explain()));
                }
            }
            "followups" => {
                let got: Vec<(String, i64)> = out
                    .followups
                    .iter()
                    .map(|e| (e.triggered_by.as_str().to_owned(), e.wait_until / S))
                    .collect();
                let w: Vec<(String, i64)> = want
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        (
                            f.get("triggered_by")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            f.get("wait_until_s").and_then(Value::as_i64).unwrap_or(0),
                        )
                    })
                    .collect();
                if got != w {
                    fail(format!("followups: got {got:?}, want {w:?}"));
                }
            }
            "deployment" => {
                let created = plan
                    .deployment
                    .as_ref()
                    .is_some_and(|d| state.deployment(&d.id).is_none());
                if let Some(c) = want.get("created").and_then(Value::as_bool)
                    && c != created
                {
                    fail(format!("deployment created: got {created}, want {c}"));
                }
                if let Some(dc) = want.get("desired_canaries") {
                    for (g, n) in counts(dc) {
                        let got = plan
                            .deployment
                            .as_ref()
                            .and_then(|d| d.task_groups.get(&g))
                            .map(|s| u64::from(s.desired_canaries));
                        if got != Some(n) {
                            fail(format!("desired_canaries {g}: got {got:?}, want {n}"));
                        }
                    }
                }
                if want.get("joined").and_then(Value::as_bool) == Some(true)
                    && placed.iter().any(|a| a.deployment_id.is_none())
                {
                    fail("deployment joined: a placement has no deployment id".into());
                }
            }
            "deployment_updates" => {
                let got: Vec<String> = plan
                    .deployment_updates
                    .iter()
                    .map(|u| u.status.as_str().to_owned())
                    .collect();
                if got != strings(want) {
                    fail(format!("deployment_updates: got {got:?}, want {want}"));
                }
            }
            "canaries" => {
                let got = placed
                    .iter()
                    .filter(|a| a.deployment_status.as_ref().is_some_and(|s| s.canary))
                    .count();
                if got as u64 != want.as_u64().unwrap_or(u64::MAX) {
                    fail(format!("canaries: got {got}, want {want}"));
                }
            }
            "devices" => {
                let mut got: BTreeSet<String> = BTreeSet::new();
                for a in &placed {
                    for t in a.resources.tasks.values() {
                        for d in &t.devices {
                            got.extend(d.device_ids.iter().map(|id| format!("{}:{id}", a.node_id)));
                        }
                    }
                }
                let w: BTreeSet<String> = strings(want).into_iter().collect();
                if got != w {
                    fail(format!("devices: got {got:?}, want {w:?}"));
                }
            }
            "cores" => {
                let got: u64 = placed
                    .iter()
                    .flat_map(|a| a.resources.tasks.values())
                    .map(|t| t.cores.len() as u64)
                    .sum();
                if got != want.as_u64().unwrap_or(u64::MAX) {
                    fail(format!("cores: got {got}, want {want}"));
                }
            }
            "ports" => {
                let mut got: Vec<u64> = placed
                    .iter()
                    .flat_map(|a| a.resources.ports.iter())
                    .filter(|p| p.value < 20_000)
                    .map(|p| u64::from(p.value))
                    .collect();
                got.sort_unstable();
                let w: Vec<u64> = want
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                if got != w {
                    fail(format!("fixed ports: got {got:?}, want {w:?}"));
                }
            }
            other => fail(format!("unknown expectation {other:?}")),
        }
    }
    errs
}

fn run_case(name: &str, case: &Value) -> Vec<String> {
    let loaded = match load(case) {
        Ok(l) => l,
        Err(e) => return vec![format!("{name}: cannot load: {e}")],
    };
    let out = schedule(
        &loaded.state,
        &loaded.eval,
        loaded.now,
        loaded.seed,
        &loaded.config,
    );
    if std::env::var("SCHED_SCENARIO_DUMP")
        .is_ok_and(|want| !want.is_empty() && name.contains(&want))
    {
        eprintln!(
            "{name}:\n{}\n{}",
            wren_model::codec::to_json_pretty(&out.plan),
            wren_model::codec::to_json_pretty(&out.eval)
        );
    }
    let mut errs: Vec<String> = check(
        &loaded.state,
        &out,
        case.get("expect").unwrap_or(&Value::Null),
    )
    .into_iter()
    .map(|e| format!("{name}: {e}"))
    .collect();
    let verdict = verify::verify_plan(&loaded.state, &out.plan);
    if !verdict.reasons.is_empty() {
        errs.push(format!(
            "{name}: plan verifier rejected the plan: {:?}",
            verdict.reasons
        ));
    }
    let again = schedule(
        &loaded.state,
        &loaded.eval,
        loaded.now,
        loaded.seed,
        &loaded.config,
    );
    if again != out {
        errs.push(format!("{name}: the same inputs gave a different outcome"));
    }
    errs
}

/// Runs every case of one file.
fn run_file(path: &Path) -> (usize, Vec<String>) {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return (0, vec![format!("{file}: {e}")]),
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return (0, vec![format!("{file}: invalid json: {e}")]),
    };
    let Some(cases) = doc.get("cases").and_then(Value::as_array) else {
        return (1, run_case(&file, &doc));
    };
    let base = doc
        .get("base")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let mut errs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut case = base.clone();
        merge(&mut case, c);
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{i}"), str::to_owned);
        errs.extend(run_case(&format!("{file} [{name}]"), &case));
    }
    (cases.len(), errs)
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata directory exists beside the crate")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    let mut total = 0;
    let mut errs = Vec::new();
    for f in &files {
        let (n, e) = run_file(f);
        total += n;
        errs.extend(e);
    }
    assert!(
        errs.is_empty(),
        "{} of {total} scenario checks failed:\n{}",
        errs.len(),
        errs.join("\n")
    );
    eprintln!("{total} scenarios in {} files passed", files.len());
}
