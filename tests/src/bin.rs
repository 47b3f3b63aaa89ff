//! The `wren` binary under test. Tests of another package cannot use
//! `CARGO_BIN_EXE_wren`, so the harness finds it itself, once per test
//! process:
//!
//! 1. `WREN_BIN`, when set, names it (e.g. a release or cross build);
//! 2. otherwise `cargo build -p wren-agent --bin wren --message-format=json`
//!    builds it (honouring `CARGO_TARGET_DIR`, and `WREN_BIN_PROFILE` for a
//!    profile other than dev) and the executable's path is taken from
//!    cargo's own report, not guessed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The binary could not be found or built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the wren binary: {0}")]
pub struct BinError(String);

/// The path of the `wren` binary (built on first use).
pub fn wren() -> Result<&'static Path, BinError> {
    static BIN: OnceLock<Result<PathBuf, BinError>> = OnceLock::new();
    BIN.get_or_init(locate)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

fn locate() -> Result<PathBuf, BinError> {
    if let Some(p) = std::env::var_os("WREN_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(BinError(format!("WREN_BIN={} is not a file", p.display())))
        };
    }
    build()
}

fn build() -> Result<PathBuf, BinError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut c = Command::new(cargo);
    c.args(["build", "-p", "wren-agent", "--bin", "wren"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest);
    if let Some(profile) = std::env::var_os("WREN_BIN_PROFILE") {
        c.arg("--profile").arg(profile);
    }
    eprintln!("wren-tests: building the wren binary (set WREN_BIN to skip)");
    let out = c
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BinError(format!("running cargo build: {e}")))?;
    if !out.status.success() {
        return Err(BinError(format!("cargo build failed: {}", out.status)));
    }
    executable(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| BinError("cargo build succeeded but reported no `wren` executable".into()))
}

/// The `wren` executable from cargo's JSON messages.
fn executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "wren")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_comes_from_the_bin_artifact() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"wren_agent","kind":["lib"]},"executable":null}"#,
            "not json",
            r#"{"reason":"compiler-artifact","target":{"name":"wren","kind":["bin"]},"executable":"/t/debug/wren"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(executable(&messages), Some(PathBuf::from("/t/debug/wren")));
        assert_eq!(executable(r#"{"reason":"build-finished"}"#), None);
    }
}
