//! Killing the leader of a three-server region with SIGKILL: a survivor
//! becomes leader and accepts writes. Each round measures the time from
//! the kill to the first write the region accepts (through the CLI, sent
//! to the survivors), and the killed server is restarted before the next
//! round; the test prints the p50 and p99 over all rounds.
//!
//! `WREN_REGION_KILLS=N` changes the number of rounds (default 20).
//! Timings are reported, never asserted.

mod region_support;

use std::time::{Duration, Instant};

use region_support::{Read, can_run, job_file, name, read, start, wait_for_leader};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn a_survivor_accepts_writes_after_the_leader_is_killed() {
    let test = "a_survivor_accepts_writes_after_the_leader_is_killed";
    if !can_run(test) {
        return;
    }
    let kills: usize = std::env::var("WREN_REGION_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut cluster = start(test, 3);
    let dir = cluster.dir().subdir("jobs").unwrap();
    let servers = cluster.servers();
    let mut times = Vec::new();
    for round in 0..kills as u64 {
        let leader = wait_for_leader(&cluster, &servers, Duration::from_secs(60));
        let survivors: Vec<_> = servers.iter().copied().filter(|&s| s != leader).collect();
        let cli = cluster.cli_to(&survivors).timeout(Duration::from_secs(30));
        let id = format!("failover-{round:02}");
        let file = job_file(&dir, &id, round);
        cluster.kill(leader).unwrap();
        let killed = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let o = cli.output([
                "job".as_ref(),
                "run".as_ref(),
                "--detach".as_ref(),
                file.as_os_str(),
            ]);
            match o {
                Ok(o) if o.status.success() => break,
                Ok(o) => eprintln!("round {round}: attempt {attempts}: {}", o.stderr.trim()),
                Err(e) => eprintln!("round {round}: attempt {attempts}: {e}"),
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no write accepted within 60 s of killing {}",
                name(&cluster, leader)
            );
        }
        let took = killed.elapsed();
        times.push(took);
        eprintln!(
            "round {round}: killed {}, first write accepted after {took:?} ({attempts} attempt{})",
            name(&cluster, leader),
            if attempts == 1 { "" } else { "s" }
        );
        // The write is there, read consistently through the survivors.
        assert_eq!(read(&cli, &id, false), Ok(Read::Present(round)));
        cluster.restart(leader).unwrap();
        wait_for_leader(&cluster, &servers, Duration::from_secs(60));
    }
    // Every acknowledged write survived all the kills.
    let cli = cluster.cli().timeout(Duration::from_secs(30));
    for round in 0..kills as u64 {
        assert_eq!(
            read(&cli, &format!("failover-{round:02}"), false),
            Ok(Read::Present(round))
        );
    }
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "leader kill -> first accepted write over {} kills: p50 {:?}, p99 {:?}, min {:?}, max {:?}",
        sorted.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted[0],
        sorted[sorted.len() - 1]
    );
}
