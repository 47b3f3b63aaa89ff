//! What the machine can do, and the skip rule: a test that needs root or
//! network namespaces prints why and skips when the capability is missing,
//! except under `CI=true`, where a missing capability is a failure (CI is
//! set up to have them, so a skip there would hide a broken setup).

use std::process::Command;
use std::sync::OnceLock;

use crate::cmd;
use crate::netns::Netns;

/// Whether this is a CI run (`CI=true`).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `true` when `check` passed. Otherwise prints why `test` skips and
/// returns `false`, or panics under `CI=true`.
pub fn require(test: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(reason) if ci() => {
            panic!("{test}: {reason} (CI=true: a missing capability fails the test)")
        }
        Err(reason) => {
            eprintln!("skipping {test}: {reason}");
            false
        }
    }
}

/// [`require`] for root plus network namespaces, iproute2 and nsenter.
pub fn require_netns(test: &str) -> bool {
    require(test, netns())
}

/// Whether network namespaces can be made here (probed once per process):
/// root, `ip` (iproute2), `nsenter` (util-linux), and a namespace that can
/// really be created and deleted.
pub fn netns() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe_netns).clone()
}

fn probe_netns() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (network namespaces, veth pairs, tc)".into());
    }
    for (program, flag, package) in [
        ("ip", "-V", "iproute2"),
        ("tc", "-V", "iproute2"),
        ("bridge", "-V", "iproute2"),
        ("nsenter", "-V", "util-linux"),
    ] {
        cmd::run(Command::new(program).arg(flag))
            .map_err(|e| format!("`{program}` ({package}) is unusable: {e}"))?;
    }
    let ns =
        Netns::create("probe").map_err(|e| format!("cannot create a network namespace: {e}"))?;
    drop(ns);
    Ok(())
}
