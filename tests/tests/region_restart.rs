//! The state survives: every server of a region killed (SIGKILL) and
//! restarted from its data directory comes back with the same state; and a
//! snapshot saved on one region (`wren operator snapshot save`) and
//! restored on a fresh one (`restore`) gives the same objects there. States
//! are compared whole, by loading the snapshot files with `wren-state`.

mod region_support;

use std::path::Path;
use std::time::Duration;

use region_support::{Read, can_run, name, purge, read, register, start, wait_for_leader};
use wren_model::{Allocation, Deployment, Evaluation, Job, Node};
use wren_state::State;
use wren_tests::cluster::{Cli, Cluster};
use wren_tests::eventually;

/// Every object of a state (not the tables' change indexes, which a
/// restore sets to its own index).
#[derive(Debug, PartialEq)]
struct Objects {
    jobs: Vec<Job>,
    versions: Vec<Job>,
    nodes: Vec<Node>,
    evals: Vec<Evaluation>,
    allocs: Vec<Allocation>,
    deployments: Vec<Deployment>,
}

fn objects(s: &State) -> Objects {
    Objects {
        jobs: s.jobs().map(|j| (**j).clone()).collect(),
        versions: s
            .jobs()
            .flat_map(|j| s.job_versions(&j.id))
            .map(|j| (*j).clone())
            .collect(),
        nodes: s.nodes().map(|n| (**n).clone()).collect(),
        evals: s.evals().map(|e| (**e).clone()).collect(),
        allocs: s.allocs().map(|a| (**a).clone()).collect(),
        deployments: s.deployments().map(|d| (**d).clone()).collect(),
    }
}

fn save(cli: &Cli, path: &Path) -> State {
    let file = path.to_string_lossy().into_owned();
    let out = cli.run(["operator", "snapshot", "save", &file]).unwrap();
    assert!(out.contains("State file written"), "{out}");
    let bytes = std::fs::read(path).unwrap();
    State::load(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The state once the servers stop changing it: the scheduler finishes
/// its evaluations and tidies blocked ones asynchronously after the last
/// write, so a save taken at once may be followed by writes of its own.
/// Settled means two saves a second apart hold the same tables.
fn settled(cli: &Cli, path: &Path) -> State {
    let mut last = save(cli, path);
    eventually("the region to settle", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(1));
        let next = save(cli, path);
        let same = next.same_tables(&last);
        last = next;
        if same {
            Ok(())
        } else {
            Err("still changing".to_owned())
        }
    })
    .unwrap();
    last
}

/// Writes jobs `r00`..`r07`, gives `r03` a second version, stops `r01`
/// and purges `r02`. Returns what each job should read as.
fn write_jobs(cli: &Cli, dir: &Path) -> Vec<(String, Read)> {
    for i in 0..8u64 {
        let o = register(cli, dir, &format!("r{i:02}"), i).unwrap();
        assert!(o.status.success(), "{}", o.stderr);
    }
    let o = register(cli, dir, "r03", 33).unwrap();
    assert!(o.status.success(), "{}", o.stderr);
    let o = cli.output(["job", "stop", "--detach", "r01"]).unwrap();
    assert!(o.status.success(), "{}", o.stderr);
    let o = purge(cli, "r02").unwrap();
    assert!(o.status.success(), "{}", o.stderr);
    (0..8u64)
        .map(|i| {
            let want = match i {
                2 => Read::Absent,
                3 => Read::Present(33),
                i => Read::Present(i),
            };
            (format!("r{i:02}"), want)
        })
        .collect()
}

/// Every server, read alone and stale, holds the expected jobs.
fn each_server_holds(cluster: &Cluster, expected: &[(String, Read)]) {
    for &s in &cluster.servers() {
        let cli = cluster.cli_to(&[s]).timeout(Duration::from_secs(30));
        eventually(
            &format!("{} to hold every job", name(cluster, s)),
            Duration::from_secs(60),
            || {
                for (id, want) in expected {
                    let got = read(&cli, id, true)?;
                    if got != *want {
                        return Err(format!("{id}: {got:?}, expected {want:?}"));
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    }
}

#[test]
fn every_server_killed_and_restarted_from_disk_has_the_same_state() {
    let test = "every_server_killed_and_restarted_from_disk_has_the_same_state";
    if !can_run(test) {
        return;
    }
    let mut cluster = start(test, 3);
    let dir = cluster.dir().subdir("jobs").unwrap();
    let cli = cluster.cli().timeout(Duration::from_secs(30));
    let expected = write_jobs(&cli, &dir);
    let before = settled(&cli, &cluster.dir().join("before.snap"));
    assert_eq!(before.counts().jobs, 7);

    let servers = cluster.servers();
    for &s in &servers {
        cluster.kill(s).unwrap();
    }
    for &s in &servers {
        cluster.restart(s).unwrap();
    }
    wait_for_leader(&cluster, &servers, Duration::from_secs(60));
    let after = save(&cli, &cluster.dir().join("after.snap"));
    assert!(
        before.same_tables(&after),
        "the state changed across the restart:\nbefore {:?}\nafter  {:?}",
        objects(&before),
        objects(&after)
    );
    each_server_holds(&cluster, &expected);
}

#[test]
fn a_snapshot_saved_on_one_region_and_restored_on_a_fresh_one_gives_the_same_state() {
    let test = "a_snapshot_saved_on_one_region_and_restored_on_a_fresh_one_gives_the_same_state";
    if !can_run(test) {
        return;
    }
    let (snap, expected, saved) = {
        let first = start(test, 3);
        let dir = first.dir().subdir("jobs").unwrap();
        let cli = first.cli().timeout(Duration::from_secs(30));
        let expected = write_jobs(&cli, &dir);
        // Kept outside the region's directory, which goes with it.
        let snap =
            std::env::temp_dir().join(format!("wren-region-restore-{}.snap", std::process::id()));
        let saved = settled(&cli, &snap);
        (snap, expected, saved)
    };
    let second = start(test, 3);
    let cli = second.cli().timeout(Duration::from_secs(30));
    let fresh = save(&cli, &second.dir().join("fresh.snap"));
    assert_eq!(fresh.counts().jobs, 0);
    let out = cli
        .run(["operator", "snapshot", "restore", &snap.to_string_lossy()])
        .unwrap();
    assert!(out.contains("Snapshot restored"), "{out}");
    let _ = std::fs::remove_file(&snap);
    let restored = save(&cli, &second.dir().join("restored.snap"));
    assert_eq!(objects(&saved), objects(&restored));
    each_server_holds(&second, &expected);
}
