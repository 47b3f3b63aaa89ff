//! Prints what this machine's syscall probes answer, as a fixture's
//! `probes.json`: `record-probes [DATA_DIR]` (default `/var/lib/wren`).
//! `testdata/capture-host.sh` uses it.

use std::path::Path;
use std::process::ExitCode;

use wren_fingerprint::HostProbes;
use wren_fingerprint::probe::ProbeAnswers;

fn main() -> ExitCode {
    let data_dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/var/lib/wren".to_owned());
    let mut probes = HostProbes::new();
    let answers = ProbeAnswers::record(&mut probes, Path::new("/dev/kvm"), Path::new(&data_dir));
    match serde_json::to_string_pretty(&answers) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("record-probes: {e}");
            ExitCode::FAILURE
        }
    }
}
