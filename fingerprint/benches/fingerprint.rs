//! How long a fingerprint takes: on this machine from scratch (a new
//! Fingerprinter, so QEMU's version is asked by running it), from scratch
//! with the emulator versions an earlier run left on disk (an agent
//! restart, `wren node fingerprint`), re-run on a
//! kept Fingerprinter (what the agent does periodically), and on the Pi 4
//! fixture. Prints median, p99, min and max wall time over many runs, and
//! the CPU time per run (including children such as `qemu --version`),
//! which a busy machine disturbs less than wall time.
//!
//! `cargo bench -p wren-fingerprint` (add `-- N` to change the run count).

use std::path::Path;
use std::time::{Duration, Instant};

use wren_fingerprint::probe::Namespace;
use wren_fingerprint::{Fingerprinter, HostProbes, Probes};

/// CPU time this process and its reaped children used, in ms, from
/// `/proc/self/stat` (utime, stime, cutime, cstime in USER_HZ = 100 ticks/s).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_comm
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 * 10.0
}

fn report(name: &str, (mut times, cpu): (Vec<Duration>, f64)) {
    let per_run_cpu = cpu / times.len() as f64;
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<42} runs {:>5}  median {:>8.3} ms  p99 {:>8.3} ms  min {:>8.3} ms  max {:>8.3} ms  cpu/run {:>7.3} ms",
        times.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        per_run_cpu,
    );
}

/// Wall time of each run, and the CPU time all runs used together.
fn time(runs: usize, mut f: impl FnMut()) -> (Vec<Duration>, f64) {
    let cpu_before = cpu_ms();
    let times = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    (times, cpu_ms() - cpu_before)
}

fn main() {
    let runs: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(500);
    let data_dir = std::env::temp_dir();

    report(
        "host, cold (new Fingerprinter)",
        time((runs / 10).max(10), || {
            std::hint::black_box(Fingerprinter::host(&data_dir).fingerprint());
        }),
    );

    // What an agent (re)start does: a new Fingerprinter, but emulator
    // versions remembered in the data dir from an earlier run.
    let version_file = data_dir.join(format!("wren-bench-qemu-versions-{}", std::process::id()));
    Fingerprinter::host_with_cache(&data_dir, &version_file).fingerprint();
    report(
        "host, cold, emulator versions on disk",
        time((runs / 10).max(10), || {
            std::hint::black_box(
                Fingerprinter::host_with_cache(&data_dir, &version_file).fingerprint(),
            );
        }),
    );
    let _ = std::fs::remove_file(&version_file);

    let mut kept = Fingerprinter::host(&data_dir);
    kept.fingerprint();
    report(
        "host, re-fingerprint (kept Fingerprinter)",
        time(runs, || {
            std::hint::black_box(kept.fingerprint());
        }),
    );

    let mut probes = HostProbes::new();
    report(
        "host, namespace probes only (3 clones)",
        time(runs, || {
            for kind in Namespace::ALL {
                let _ = std::hint::black_box(probes.namespace(kind));
            }
        }),
    );

    report(
        "host, qemu emulators on PATH only",
        time(runs, || {
            std::hint::black_box(probes.qemu_emulators());
        }),
    );
    if let Some(emulator) = probes
        .qemu_emulators()
        .into_iter()
        .find(|e| e.name == format!("qemu-system-{}", std::env::consts::ARCH))
    {
        report(
            "host, one uncached qemu --version",
            time((runs / 10).max(10), || {
                let _ = std::hint::black_box(HostProbes::new().qemu_version(&emulator));
            }),
        );
    }
    report(
        "host, interfaces only (sysinfo)",
        time(runs, || {
            let _ = std::hint::black_box(probes.interfaces());
        }),
    );

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pi4");
    let mut pi = match Fingerprinter::fixture(&fixture, "/var/lib/wren") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pi4 fixture: {e}");
            return;
        }
    };
    report(
        "pi4 fixture, re-fingerprint",
        time(runs, || {
            std::hint::black_box(pi.fingerprint());
        }),
    );
}
