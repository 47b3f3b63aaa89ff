//! DESIGN.md's dependency rule, checked against `cargo metadata`:
//! `model` is the leaf; `sched`, `state`, `runtimes` and `fingerprint`
//! depend on `model` and never on each other; `agent` wires them together;
//! nothing depends on `agent` or `tests`. Dev- and build-dependencies
//! count. And no tokio anywhere in the tree: the agent owns one smol
//! executor.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn metadata(no_deps: bool) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--offline",
        "--manifest-path",
        manifest,
    ]);
    if no_deps {
        cmd.arg("--no-deps");
    }
    let out = cmd.output().expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints json")
}

fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        "wren-model" => &[],
        "wren-sched" | "wren-state" | "wren-runtimes" | "wren-fingerprint" => &["wren-model"],
        "wren-agent" => &[
            "wren-model",
            "wren-sched",
            "wren-state",
            "wren-runtimes",
            "wren-fingerprint",
        ],
        "wren-tests" => &[
            "wren-model",
            "wren-sched",
            "wren-state",
            "wren-runtimes",
            "wren-fingerprint",
        ],
        _ => &[],
    }
}

#[test]
fn crates_depend_only_as_the_design_allows() {
    let meta = metadata(true);
    let packages = meta["packages"].as_array().expect("packages");
    let ours: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for expected in [
        "wren-model",
        "wren-sched",
        "wren-state",
        "wren-runtimes",
        "wren-fingerprint",
        "wren-agent",
        "wren-tests",
    ] {
        assert!(
            ours.contains(&expected),
            "workspace member {expected} is missing"
        );
    }
    let mut violations = Vec::new();
    for p in packages {
        let from = p["name"].as_str().unwrap_or_default();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let to = d["name"].as_str().unwrap_or_default();
            if !to.starts_with("wren-") {
                continue;
            }
            let kind = d["kind"].as_str().unwrap_or("normal");
            if !allowed(from).contains(&to) {
                violations.push(format!("{from} -> {to} ({kind})"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "edges the dependency rule forbids:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_tokio_in_the_tree() {
    let meta = metadata(false);
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        if let Some(n) = p["name"].as_str() {
            *names.entry(n).or_default() += 1;
        }
    }
    for forbidden in ["tokio", "async-std"] {
        assert!(
            !names.contains_key(forbidden),
            "{forbidden} is in the dependency tree; wren runs on one smol executor"
        );
    }
}
