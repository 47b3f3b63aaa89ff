//! A `wren agent --dev` in a network namespace of its own, and the CLI
//! next to it finding the agent through the defaults the dev agent wrote
//! (`$XDG_CONFIG_HOME/wren/{address,ca.pem,cli.pem,cli-key.pem}`), as a
//! newcomer's CLI would.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wren_tests::cluster::Cli;
use wren_tests::{Net, Proc, ProcSpec, TestDir, bin, eventually, require, require_netns};

/// Whether the test can run here (root, namespaces, a `wren` binary with
/// the region's commands); skips or, under `CI=true`, fails otherwise.
pub fn can_run(test: &str) -> bool {
    if !require_netns(test) {
        return false;
    }
    let check = bin::wren().map_err(|e| e.to_string()).and_then(|wren| {
        let out = Command::new(wren)
            .args(["server", "members", "--help"])
            .output()
            .map_err(|e| format!("running {}: {e}", wren.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err("this wren binary has no `wren server members` yet".to_owned())
        }
    });
    require(test, check)
}

/// A running dev agent and a CLI pointed at it.
#[derive(Debug)]
pub struct DevAgent {
    /// The CLI, in the agent's namespace, with the agent's defaults.
    pub cli: Cli,
    // Field order is drop order: the agent stops before its namespace goes.
    proc: Proc,
    _net: Net,
    /// The test's directory.
    pub dir: TestDir,
    /// The agent's data directory (`alloc/` holds the allocations).
    pub data: PathBuf,
}

impl DevAgent {
    /// Starts `wren agent --dev` and waits until it leads its one-server
    /// region.
    pub fn start(test: &str) -> DevAgent {
        DevAgent::start_with(test, |_| None)
    }

    /// Like [`DevAgent::start`], with an agent config file holding what
    /// `config` returns (HCL, e.g. a plugin block; it may put files in the
    /// test directory first), read before the dev settings apply.
    pub fn start_with(test: &str, config: impl FnOnce(&TestDir) -> Option<String>) -> DevAgent {
        let wren = bin::wren().unwrap();
        let dir = TestDir::new(test).unwrap();
        let net = Net::new(&test.chars().take(8).collect::<String>(), &["dev"]).unwrap();
        let host = net.find("dev").unwrap();
        let home = dir.subdir("home").unwrap();
        let xdg = home.join(".config");
        let data = dir.join("data");
        let mut args: Vec<std::ffi::OsString> = vec![
            "agent".into(),
            "--dev".into(),
            "--data-dir".into(),
            data.clone().into(),
        ];
        if let Some(text) = config(&dir) {
            let file = dir.join("agent.hcl");
            std::fs::write(&file, text).unwrap();
            args.extend(["--config".into(), file.into()]);
        }
        let spec = ProcSpec::new("dev", wren)
            .args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &xdg)
            .cwd(dir.path())
            .netns(net.ns(host));
        let proc = Proc::start(spec, &dir.subdir("logs").unwrap()).unwrap();
        let cli = Cli::new(wren, Some(net.ns(host)))
            .env("HOME", home.to_string_lossy())
            .env("XDG_CONFIG_HOME", xdg.to_string_lossy())
            .timeout(Duration::from_secs(30));
        eventually("the dev agent to lead", Duration::from_secs(60), || {
            let p = cli
                .json(["operator", "raft", "list-peers", "--json"])
                .map_err(|e| e.to_string())?;
            if p["peers"][0]["leader"] == true {
                Ok(())
            } else {
                Err(format!("{p}"))
            }
        })
        .unwrap();
        DevAgent {
            cli,
            proc,
            _net: net,
            dir,
            data,
        }
    }

    /// Writes a file in the test directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `wren args...`; panics on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        self.cli
            .run(args)
            .unwrap_or_else(|e| panic!("wren {}: {e}", args.join(" ")))
    }

    /// Runs `wren args...` and parses its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        self.cli
            .json(args)
            .unwrap_or_else(|e| panic!("wren {}: {e}", args.join(" ")))
    }

    /// Runs `wren args...`, which must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.cli.output(args).unwrap();
        assert!(
            !o.status.success(),
            "wren {} succeeded: {}",
            args.join(" "),
            o.stdout
        );
        o.stderr
    }
}

/// A job file: job `id` with `meta { v = value }` and one raw_exec task.
pub fn job(id: &str, value: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["dc1"]
  meta {{
    v = "{value}"
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
    }}
  }}
}}
"#
    )
}

/// The UUID after `prefix` in `text` (e.g. `Evaluation ID: `).
pub fn uuid_after(text: &str, prefix: &str) -> Option<String> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    (id.len() == 36).then_some(id)
}
