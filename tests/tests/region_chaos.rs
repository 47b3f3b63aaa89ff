//! Chaos on a three-server region: while workers register, deregister
//! (stop and purge) and read jobs through the CLI, the main thread kills
//! and restarts servers, partitions one from the others, and puts 100 ms
//! of delay and 20 % loss on servers' links. Every operation is recorded
//! with its invoke and completion times (an operation that failed or timed
//! out has an unknown outcome); after healing, every key is read once
//! more. The history must be linearizable, which also means no
//! acknowledged write was lost.
//!
//! The suite runs it for 60 s; `WREN_CHAOS_SECS=300` runs the 5-minute
//! version. `WREN_TEST_SEED` replays a fault schedule.

mod region_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use region_support::{Read, can_run, name, purge, read, said_not_found, start, wait_for_leader};
use wren_tests::cluster::{AgentId, Cli};
use wren_tests::history::{JobInput, JobOutput, JobRecorder};
use wren_tests::impair::Impairment;
use wren_tests::linearizable::{Budget, Jobs, check};
use wren_tests::rng::Rng;

const KEYS: usize = 12;
const WORKERS: usize = 6;

fn key(i: usize) -> String {
    format!("k{i:02}")
}

/// One worker: random operations on random keys until `stop`.
fn worker(
    id: usize,
    cli: Cli,
    dir: std::path::PathBuf,
    rec: JobRecorder,
    values: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) {
    while !stop.load(Ordering::Relaxed) {
        let k = key(rng.index(KEYS));
        let roll = rng.below(100);
        if roll < 45 {
            let v = values.fetch_add(1, Ordering::Relaxed);
            // The file is written before the operation starts.
            let file = region_support::job_file(&dir, &k, v);
            let p = rec.invoke(id, &k, JobInput::Register(v));
            match cli.output([
                "job".as_ref(),
                "run".as_ref(),
                "--detach".as_ref(),
                file.as_os_str(),
            ]) {
                Ok(o) if o.status.success() => p.returned(JobOutput::Ok),
                _ => p.unknown(),
            }
        } else if roll < 60 {
            let p = rec.invoke(id, &k, JobInput::Deregister);
            match purge(&cli, &k) {
                Ok(o) if o.status.success() => p.returned(JobOutput::Ok),
                Ok(o) if said_not_found(&o) => p.returned(JobOutput::NotFound),
                _ => p.unknown(),
            }
        } else {
            let p = rec.invoke(id, &k, JobInput::Read);
            match read(&cli, &k, false) {
                Ok(Read::Absent) => p.returned(JobOutput::Absent),
                Ok(Read::Present(v)) => p.returned(JobOutput::Present(v)),
                Err(_) => p.unknown(),
            }
        }
    }
}

#[test]
fn job_history_stays_linearizable_through_kills_partitions_and_lossy_links() {
    let test = "job_history_stays_linearizable_through_kills_partitions_and_lossy_links";
    if !can_run(test) {
        return;
    }
    let secs: u64 = std::env::var("WREN_CHAOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut rng = Rng::from_env(test);
    let mut cluster = start(test, 3);
    let servers = cluster.servers();
    let dir = cluster.dir().subdir("jobs").unwrap();
    let rec = JobRecorder::new();
    let values = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let cli = cluster.cli().timeout(Duration::from_secs(30));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (cli, dir, rec, values, stop) = (
                cli.clone(),
                dir.clone(),
                rec.clone(),
                values.clone(),
                stop.clone(),
            );
            let seed = rng.next_u64();
            std::thread::spawn(move || worker(i, cli, dir, rec, values, stop, Rng::new(seed)))
        })
        .collect();

    let until = Instant::now() + Duration::from_secs(secs);
    let mut faults = Vec::new();
    let pause = |rng: &mut Rng, lo: u64, hi: u64| {
        std::thread::sleep(Duration::from_millis(lo + rng.below(hi - lo)));
    };
    while Instant::now() < until {
        let victim: AgentId = servers[rng.index(servers.len())];
        let host = cluster.agent(victim).host;
        match rng.below(4) {
            0 => {
                faults.push(format!("kill {}", name(&cluster, victim)));
                cluster.kill(victim).unwrap();
                pause(&mut rng, 500, 4000);
                cluster.restart(victim).unwrap();
            }
            1 => {
                faults.push(format!("partition {}", name(&cluster, victim)));
                let others: Vec<_> = servers
                    .iter()
                    .filter(|&&s| s != victim)
                    .map(|&s| cluster.agent(s).host)
                    .collect();
                cluster.net().partition(&[host], &others).unwrap();
                pause(&mut rng, 1000, 5000);
                cluster.net().heal_partitions().unwrap();
            }
            2 => {
                faults.push(format!(
                    "100 ms delay and 20 % loss on {}",
                    name(&cluster, victim)
                ));
                let how = Impairment::delay(Duration::from_millis(100)).with_loss(0.2);
                cluster.net().impair(host, how).unwrap();
                pause(&mut rng, 2000, 6000);
                cluster.net().clear_impairment(host).unwrap();
            }
            _ => {
                // Everything at once: a lossy slow link on every server, and
                // the leader killed meanwhile.
                faults.push("lossy links everywhere, then a kill".to_owned());
                let how = Impairment::delay(Duration::from_millis(100)).with_loss(0.2);
                for &s in &servers {
                    cluster.net().impair(cluster.agent(s).host, how).unwrap();
                }
                pause(&mut rng, 1000, 3000);
                cluster.kill(victim).unwrap();
                pause(&mut rng, 1000, 3000);
                for &s in &servers {
                    cluster
                        .net()
                        .clear_impairment(cluster.agent(s).host)
                        .unwrap();
                }
                cluster.restart(victim).unwrap();
            }
        }
        pause(&mut rng, 500, 2000);
    }
    eprintln!("faults: {}", faults.join("; "));

    // Heal everything; once one leader is back, stop the workers and read
    // every key one last time.
    cluster.net().heal().unwrap();
    wait_for_leader(&cluster, &servers, Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let last = cluster.cli().timeout(Duration::from_secs(60));
    for i in 0..KEYS {
        let k = key(i);
        let p = rec.invoke(WORKERS, &k, JobInput::Read);
        match read(&last, &k, false) {
            Ok(Read::Absent) => p.returned(JobOutput::Absent),
            Ok(Read::Present(v)) => p.returned(JobOutput::Present(v)),
            Err(e) => panic!("the final read of {k} failed after healing: {e}"),
        }
    }

    let h = rec.history();
    let count = |f: &dyn Fn(&JobInput, Option<&JobOutput>) -> bool| {
        h.ops.iter().filter(|o| f(&o.input, o.output())).count()
    };
    let acked_writes = count(&|i, o| !matches!(i, JobInput::Read) && o.is_some());
    let reads = count(&|i, o| matches!(i, JobInput::Read) && o.is_some());
    let unknown = count(&|_, o| o.is_none());
    eprintln!(
        "{} operations: {acked_writes} acknowledged writes, {reads} answered reads, {unknown} unknown outcomes",
        h.ops.len()
    );
    assert!(
        acked_writes > 0 && reads > 0,
        "the workers got nothing done"
    );
    let verdict = check(&Jobs, &h, Budget::default());
    if !verdict.is_linearizable() {
        let path = cluster.dir().join("history.jsonl");
        h.write_jsonl(&path).unwrap();
        panic!("{verdict}\n(history in {})", path.display());
    }
}
